/**
 * Linear quantization: QuantizeLinear, DequantizeLinear (per-tensor, per-axis and blocked scales;
 * int8/uint8/int16/uint16 quantized types, int32 for dequantization) and DynamicQuantizeLinear.
 * Native kinds of the same names. The granularity is resolved here: attribute `mode` is 0 (one scale),
 * 1 (one scale per index of `axis`) or 2 (blocks of `block` along `axis`); `axis` is normalized.
 */
import { DataType, dtypeName } from '../dtype';
import { int } from '../lower/plan';
import { NativeOp, OpContext, registerOp } from './registry';
import { normAxis } from './util';

const Q_TYPES = [DataType.INT8, DataType.UINT8, DataType.INT16, DataType.UINT16];
const SCALE_TYPES = [DataType.FLOAT, DataType.FLOAT16, DataType.BFLOAT16, DataType.DOUBLE];

function checkType(ctx: OpContext, t: DataType, allowed: DataType[], what: string): void {
  if (!allowed.includes(t))
    ctx.fail(`${what} has type ${dtypeName(t)}; kiln takes ${allowed.map(dtypeName).join(', ')}`, 'UNSUPPORTED');
}

/** Granularity attributes from the shapes of x and the scale (the zero point must match the scale). */
function granularity(ctx: OpContext): { mode: number; axis: number; block: number } {
  const xs = ctx.shapeOf(0);
  const ss = ctx.shapeOf(1);
  if (ctx.inputs[2]) {
    const zs = ctx.shapeOf(2);
    if (zs.length !== ss.length || zs.some((d, i) => d !== ss[i]))
      ctx.fail(`zero point shape [${zs.join(',')}] differs from scale shape [${ss.join(',')}]`, 'SHAPE');
  }
  const blockSize = ctx.int('block_size', 0);
  if (ss.length === 0 || (ss.length === 1 && ss[0] === 1 && blockSize === 0)) return { mode: 0, axis: 0, block: 1 };
  const axis = normAxis(ctx, ctx.int('axis', 1), xs.length);
  if (ss.length === 1 && blockSize === 0) {
    if (ss[0] !== xs[axis]) ctx.fail(`per-axis scale has ${ss[0]} elements, input dim ${axis} is ${xs[axis]}`, 'SHAPE');
    return { mode: 1, axis, block: 1 };
  }
  if (blockSize <= 0) ctx.fail(`scale of shape [${ss.join(',')}] needs a positive block_size (blocked quantization)`, 'SHAPE');
  if (ss.length !== xs.length) ctx.fail(`blocked scale rank ${ss.length} differs from input rank ${xs.length}`, 'SHAPE');
  for (let i = 0; i < xs.length; i++) {
    const want = i === axis ? Math.ceil(xs[i] / blockSize) : xs[i];
    if (ss[i] !== want) ctx.fail(`blocked scale shape [${ss.join(',')}] does not fit input [${xs.join(',')}] with block_size ${blockSize} on axis ${axis}`, 'SHAPE');
  }
  return { mode: 2, axis, block: blockSize };
}

function lowerQ(ctx: OpContext, kind: string, extra: NativeOp['attrs'] = {}): NativeOp[] {
  const g = granularity(ctx);
  const inputs = [ctx.node.inputs[0], ctx.node.inputs[1], ctx.node.inputs[2] ?? ''];
  return [{ kind, inputs, outputs: [ctx.node.outputs[0]], attrs: { mode: int(g.mode), axis: int(g.axis), block: int(g.block), ...extra } }];
}

registerOp({
  opType: 'QuantizeLinear',
  infer(ctx) {
    checkType(ctx, ctx.input(0).dtype, [...SCALE_TYPES, DataType.INT32], 'input x');
    checkType(ctx, ctx.input(1).dtype, SCALE_TYPES, 'y_scale');
    const zp = ctx.inputs[2];
    const od = ctx.int('output_dtype', 0);
    if (zp && od && zp.dtype !== od) ctx.fail(`output_dtype ${dtypeName(od)} differs from the zero point type ${dtypeName(zp.dtype)}`);
    const t: DataType = zp?.dtype ?? (od || DataType.UINT8);
    checkType(ctx, t, Q_TYPES, 'the quantized type');
    granularity(ctx);
    return [{ dtype: t, shape: ctx.shapeOf(0) }];
  },
  lower(ctx) {
    // The division runs in the scale's precision, or in `precision` (opset 25) when given.
    const precision = ctx.int('precision', 0) || ctx.input(1).dtype;
    checkType(ctx, precision, SCALE_TYPES, 'precision');
    return lowerQ(ctx, 'QuantizeLinear', { precision: int(precision) });
  },
});

registerOp({
  opType: 'DequantizeLinear',
  infer(ctx) {
    const xt = ctx.input(0).dtype;
    checkType(ctx, xt, [...Q_TYPES, DataType.INT32], 'input x');
    checkType(ctx, ctx.input(1).dtype, SCALE_TYPES, 'x_scale');
    const zp = ctx.inputs[2];
    if (zp && zp.dtype !== xt) ctx.fail(`zero point type ${dtypeName(zp.dtype)} differs from x type ${dtypeName(xt)}`);
    const t: DataType = ctx.int('output_dtype', 0) || ctx.input(1).dtype;
    checkType(ctx, t, SCALE_TYPES, 'the output type');
    granularity(ctx);
    return [{ dtype: t, shape: ctx.shapeOf(0) }];
  },
  lower: (ctx) => lowerQ(ctx, 'DequantizeLinear'),
});

registerOp({
  opType: 'DynamicQuantizeLinear',
  infer(ctx) {
    checkType(ctx, ctx.input(0).dtype, [DataType.FLOAT], 'input x');
    return [
      { dtype: DataType.UINT8, shape: ctx.shapeOf(0) },
      { dtype: DataType.FLOAT, shape: [] },
      { dtype: DataType.UINT8, shape: [] },
    ];
  },
  lower: (ctx) => [{ kind: 'DynamicQuantizeLinear', inputs: [ctx.node.inputs[0]], outputs: ctx.node.outputs.slice(0, 3), attrs: {} }],
});
