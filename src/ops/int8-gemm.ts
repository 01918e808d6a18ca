/**
 * kiln:Int8Gemm — a matrix product over quantized activations with int8 weights, made by the Q/DQ
 * fusion pass (src/passes/qdq-fusion.ts) from DequantizeLinear → Gemm/MatMul (→ QuantizeLinear).
 * Lowered to the native 'Int8Gemm' kind (native/cpu/qgemm_int8.cc).
 * Inputs: a (int8/uint8 [..., K]: the leading dims are the rows M), w (int8 [N, K]: one row per output
 * channel, the pass transposes MatMul's [K, N]), optional float bias [N], optional residual of
 * the output's shape [..., N] (float, or int8/uint8 with residual_scale and residual_zero_point). Attributes as kiln:Int8Conv's int8 ones (int8-conv.ts), with
 * 'kiln.shape' and 'kiln.dtype' the output's.
 */
import { int } from '../lower/plan';
import { int8Attrs, int8Inputs } from './int8-conv';
import { fixedOutput, registerOp } from './registry';

registerOp({
  opType: 'Int8Gemm',
  domain: 'kiln',
  infer: fixedOutput,
  lower(ctx) {
    const a = ctx.shapeOf(0);
    const [N, K] = ctx.shapeOf(1);
    if (a[a.length - 1] !== K) ctx.fail(`a [${a.join(',')}] and w [${N},${K}] differ in K`, 'SHAPE');
    const M = a.slice(0, -1).reduce((x, y) => x * y, 1);
    return [{ kind: 'Int8Gemm', inputs: int8Inputs(ctx), outputs: [ctx.node.outputs[0]], attrs: { M: int(M), N: int(N), K: int(K), ...int8Attrs(ctx) } }];
  },
});
