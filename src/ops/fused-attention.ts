/**
 * kiln:Attention — scaled dot-product attention recognized by the optimizer
 * (src/passes/attention-recognition.ts), lowered to the native 'Attention' kind (native/cpu/attention.cc).
 * Inputs: Q, K, V (any layout: read through 'q_strides', 'k_strides', 'v_strides' over
 * (b, h, position, d)), optional additive mask (broadcast to [B, H, S, T]). Attributes: 'dims'
 * [B, H, S, T, D, Dv], 'o_strides' (how the output [B, H, S, Dv] lands in the output tensor), 'scale',
 * 'kiln.shape' and 'kiln.dtype' (the output tensor's).
 */
import { float, ints } from '../lower/plan';
import { broadcastStrides } from './gemm';
import { fixedOutput, registerOp } from './registry';

registerOp({
  opType: 'Attention',
  domain: 'kiln',
  infer: fixedOutput,
  lower(ctx) {
    const dims = ctx.ints('dims')!;
    const [B, H, S, T] = dims;
    const hasMask = !!ctx.node.inputs[3];
    return [
      {
        kind: 'Attention',
        inputs: ctx.node.inputs.slice(0, hasMask ? 4 : 3),
        outputs: ctx.node.outputs,
        attrs: {
          dims: ints(dims),
          q_strides: ints(ctx.ints('q_strides')!),
          k_strides: ints(ctx.ints('k_strides')!),
          v_strides: ints(ctx.ints('v_strides')!),
          o_strides: ints(ctx.ints('o_strides')!),
          scale: float(ctx.float('scale', 1)),
          ...(hasMask ? { mask_strides: ints(broadcastStrides(ctx.shapeOf(3), [B, H, S, T])) } : {}),
        },
      },
    ];
  },
});
