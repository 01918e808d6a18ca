/** ONNX conformance on device 'cuda', tests ^test_[d-h] (see conformance-cuda.ts). */
import { conformanceShard } from './conformance-cuda';

conformanceShard('d-h', '^test_[d-h]');
