/** ONNX conformance on device 'cuda', tests ^test_[i-q] (see conformance-cuda.ts). */
import { conformanceShard } from './conformance-cuda';

conformanceShard('i-q', '^test_[i-q]');
