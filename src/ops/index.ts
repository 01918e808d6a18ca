/** Loads every op module (each registers itself). One line per module. */
import './elementwise-binary';
import './elementwise-unary';
import './cast';
import './where';
import './reduce';
import './quantize';
import './softmax';
import './gemm';
import './matmul';
import './conv';
import './conv-transpose';
import './normalization';
import './pool';
import './topk';
import './resize';
