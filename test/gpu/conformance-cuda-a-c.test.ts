/** ONNX conformance on device 'cuda', tests ^test_[a-c] (see conformance-cuda.ts). */
import { conformanceShard } from './conformance-cuda';

conformanceShard('a-c', '^test_[a-c]');
