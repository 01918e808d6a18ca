/**
 * kiln:Int8Conv — a convolution over quantized activations with int8 weights, made by the Q/DQ fusion
 * pass (src/passes/qdq-fusion.ts) from DequantizeLinear → Conv (→ QuantizeLinear). Lowered to the
 * native 'Int8Conv' kind (native/cpu/qconv_int8.cc).
 * Inputs: x (int8/uint8 [N, C, spatial...]), w (int8 [M, C/G, k...], symmetric), optional float bias
 * [M] ('' when absent), optional residual of the output's shape (the fused epilogue, epilogue.ts): float,
 * or int8/uint8 read as (r − residual_zero_point)·residual_scale (Q/DQ fusion's quantized residuals).
 * Attributes: x_scale, x_zero_point; w_scales (1 or M values); y_scale, y_zero_point (read when the
 * output is int8/uint8, i.e. a QuantizeLinear was fused); residual_scale, residual_zero_point; group, strides, dilations, pads (resolved,
 * [begins..., ends...]); the epilogue's 'kiln.*' activation; 'kiln.shape' and 'kiln.dtype' (output).
 * The layer computes y = act(Σ (x − x_zp)·w · x_scale·w_scale[m] + bias[m] + residual), int32 sums.
 */
import { PlanAttr, float, int, ints, floats } from '../lower/plan';
import { epilogueAttrs } from './epilogue';
import { OpContext, fixedOutput, registerOp } from './registry';

/** The int8 parameter attributes Int8Conv and Int8Gemm share, for the native kinds. */
export function int8Attrs(ctx: OpContext): Record<string, PlanAttr> {
  const need = (name: string): number => ctx.float(name) ?? ctx.fail(`needs attribute '${name}'`);
  return {
    x_scale: float(need('x_scale')),
    x_zero_point: int(ctx.int('x_zero_point', 0)),
    w_scales: floats(ctx.floats('w_scales') ?? ctx.fail("needs attribute 'w_scales'")),
    y_scale: float(ctx.float('y_scale', 1)),
    y_zero_point: int(ctx.int('y_zero_point', 0)),
    residual_scale: float(ctx.float('residual_scale', 1)),
    residual_zero_point: int(ctx.int('residual_zero_point', 0)),
    ...epilogueAttrs(ctx.node),
  };
}

/** [x, w, bias?, residual?] with trailing omitted inputs dropped ('' keeps a slot). */
export function int8Inputs(ctx: OpContext): string[] {
  const ins = [0, 1, 2, 3].map((i) => ctx.node.inputs[i] ?? '');
  while (ins.length > 2 && ins[ins.length - 1] === '') ins.pop();
  return ins;
}

registerOp({
  opType: 'Int8Conv',
  domain: 'kiln',
  infer: fixedOutput,
  lower(ctx) {
    const list = (name: string) => ctx.ints(name) ?? ctx.fail(`needs attribute '${name}'`);
    return [
      {
        kind: 'Int8Conv',
        inputs: int8Inputs(ctx),
        outputs: [ctx.node.outputs[0]],
        attrs: { group: int(ctx.int('group', 1)), strides: ints(list('strides')), dilations: ints(list('dilations')), pads: ints(list('pads')), ...int8Attrs(ctx) },
      },
    ];
  },
});
