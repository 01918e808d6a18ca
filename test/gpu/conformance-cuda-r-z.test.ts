/** ONNX conformance on device 'cuda', tests ^test_[r-z] (see conformance-cuda.ts). */
import { conformanceShard } from './conformance-cuda';

conformanceShard('r-z', '^test_[r-z]');
