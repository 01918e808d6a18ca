/**
 * Linear quantization: QuantizeLinear, DequantizeLinear (per-tensor, per-axis and blocked scales;
 * quantized types int8/uint8/int16/uint16, int4/uint4, int2/uint2, the float8 variants and float4e2m1,
 * plus int32 for dequantization; QuantizeLinear's `saturate` is passed for float8 targets) and
 * DynamicQuantizeLinear.
 * Native kinds of the same names. The granularity is resolved here: attribute `mode` is 0 (one scale),
 * 1 (one scale per index of `axis`) or 2 (blocks of `block` along `axis`); `axis` is normalized.
 */
import { DataType, dtypeName } from '../dtype';
import { int, ints } from '../lower/plan';
import { NativeOp, OpContext, registerOp } from './registry';
import { broadcastShapes, normAxis } from './util';

const Q_TYPES = [
  DataType.INT8,
  DataType.UINT8,
  DataType.INT16,
  DataType.UINT16,
  DataType.INT4,
  DataType.UINT4,
  DataType.INT2,
  DataType.UINT2,
  DataType.FLOAT8E4M3FN,
  DataType.FLOAT8E4M3FNUZ,
  DataType.FLOAT8E5M2,
  DataType.FLOAT8E5M2FNUZ,
  DataType.FLOAT4E2M1,
];
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
    // a scalar and a one-element 1-D tensor are both per-tensor parameters
    const single = (s: readonly number[]) => s.length === 0 || (s.length === 1 && s[0] === 1);
    if (!(single(zs) && single(ss)) && (zs.length !== ss.length || zs.some((d, i) => d !== ss[i])))
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
    return lowerQ(ctx, 'QuantizeLinear', { precision: int(precision), saturate: int(ctx.int('saturate', 1) ? 1 : 0) });
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

// ---- Integer matmul and convolution (reference kernels): native kinds 'QMatMul' and 'QConv'. ----
// Inputs are always [A/x, B/w, a_zp, b_zp, a_scale, b_scale, y_scale, y_zp(, bias)] ('' where absent);
// `requant` 1 gives y = saturate(round_half_even(acc * a_scale * b_scale / y_scale) + y_zp), 0 the int32 acc.

const Q8 = [DataType.INT8, DataType.UINT8];

/** numpy matmul output shape (1-D operands promoted and their dim dropped). */
function matmulShape(ctx: OpContext, ai: number, bi: number): number[] {
  const a = ctx.shapeOf(ai), b = ctx.shapeOf(bi);
  if (a.length === 0 || b.length === 0) ctx.fail('matmul operands must have rank >= 1', 'SHAPE');
  const a2 = a.length === 1 ? [1, a[0]] : a, b2 = b.length === 1 ? [b[0], 1] : b;
  const K = a2[a2.length - 1];
  if (b2[b2.length - 2] !== K) ctx.fail(`inner dims differ: [${a.join(',')}] x [${b.join(',')}]`, 'SHAPE');
  const batch = broadcastShapes(ctx, [a2.slice(0, -2), b2.slice(0, -2)]) as number[];
  return [...batch, ...(a.length === 1 ? [] : [a2[a2.length - 2]]), ...(b.length === 1 ? [] : [b2[b2.length - 1]])];
}

function inputsAt(ctx: OpContext, idx: (number | undefined)[]): string[] {
  return idx.map((i) => (i === undefined ? '' : ctx.node.inputs[i] ?? ''));
}

function checkQ(ctx: OpContext, i: number, what: string): void {
  if (ctx.inputs[i]) checkType(ctx, ctx.inputs[i]!.dtype, Q8, what);
}

registerOp({
  opType: 'MatMulInteger',
  infer(ctx) {
    checkQ(ctx, 0, 'A');
    checkQ(ctx, 1, 'B');
    return [{ dtype: DataType.INT32, shape: matmulShape(ctx, 0, 1) }];
  },
  lower: (ctx) => [{ kind: 'QMatMul', inputs: inputsAt(ctx, [0, 1, 2, 3]), outputs: [ctx.node.outputs[0]], attrs: { requant: int(0) } }],
});

registerOp({
  opType: 'QLinearMatMul',
  infer(ctx) {
    checkQ(ctx, 0, 'a');
    checkQ(ctx, 3, 'b');
    checkQ(ctx, 7, 'y_zero_point');
    return [{ dtype: ctx.input(7).dtype, shape: matmulShape(ctx, 0, 3) }];
  },
  lower: (ctx) => [{ kind: 'QMatMul', inputs: inputsAt(ctx, [0, 3, 2, 5, 1, 4, 6, 7]), outputs: [ctx.node.outputs[0]], attrs: { requant: int(1) } }],
});

/** Conv geometry with ONNX defaults and auto_pad resolved: strides, dilations, pads [begins..., ends...], output dims. */
function convGeometry(ctx: OpContext, xi: number, wi: number) {
  const x = ctx.shapeOf(xi), w = ctx.shapeOf(wi);
  const nsp = x.length - 2;
  if (nsp < 1 || w.length !== x.length) ctx.fail(`x [${x.join(',')}] and w [${w.join(',')}] must have one rank >= 3`, 'SHAPE');
  const group = ctx.int('group', 1);
  if (group < 1 || x[1] % group !== 0 || w[0] % group !== 0 || w[1] * group !== x[1])
    ctx.fail(`channels do not fit group ${group}: x has ${x[1]}, w is [${w.join(',')}]`, 'SHAPE');
  const kernel = w.slice(2);
  const ks = ctx.ints('kernel_shape');
  if (ks && ks.some((k, i) => k !== kernel[i])) ctx.fail(`kernel_shape [${ks.join(',')}] differs from w's [${kernel.join(',')}]`, 'SHAPE');
  const strides = ctx.ints('strides') ?? kernel.map(() => 1);
  const dilations = ctx.ints('dilations') ?? kernel.map(() => 1);
  let pads = ctx.ints('pads') ?? new Array(2 * nsp).fill(0);
  const autoPad = ctx.string('auto_pad', 'NOTSET');
  if (strides.length !== nsp || dilations.length !== nsp || pads.length !== 2 * nsp) ctx.fail('strides/dilations/pads do not match the spatial rank', 'SHAPE');
  if (autoPad === 'VALID') pads = new Array(2 * nsp).fill(0);
  else if (autoPad === 'SAME_UPPER' || autoPad === 'SAME_LOWER') {
    pads = new Array(2 * nsp).fill(0);
    for (let d = 0; d < nsp; d++) {
      const out = Math.ceil(x[d + 2] / strides[d]);
      const total = Math.max(0, (out - 1) * strides[d] + (kernel[d] - 1) * dilations[d] + 1 - x[d + 2]);
      const small = Math.floor(total / 2);
      pads[d] = autoPad === 'SAME_UPPER' ? small : total - small;
      pads[d + nsp] = total - pads[d];
    }
  } else if (autoPad !== 'NOTSET') ctx.fail(`unknown auto_pad '${autoPad}'`);
  const spatial = kernel.map((k, d) => Math.floor((x[d + 2] + pads[d] + pads[d + nsp] - ((k - 1) * dilations[d] + 1)) / strides[d]) + 1);
  if (spatial.some((s) => s < 1)) ctx.fail(`output spatial dims [${spatial.join(',')}] are empty`, 'SHAPE');
  return { group, strides, dilations, pads, shape: [x[0], w[0], ...spatial] };
}

for (const [opType, requant] of [
  ['ConvInteger', false],
  ['QLinearConv', true],
] as const) {
  // input positions: x, w, x_zp, w_zp, x_scale, w_scale, y_scale, y_zp, bias
  const at = requant ? [0, 3, 2, 5, 1, 4, 6, 7, 8] : [0, 1, 2, 3];
  registerOp({
    opType,
    infer(ctx) {
      checkQ(ctx, at[0], 'x');
      checkQ(ctx, at[1], 'w');
      const g = convGeometry(ctx, at[0], at[1]);
      return [{ dtype: requant ? ctx.input(7).dtype : DataType.INT32, shape: g.shape }];
    },
    lower(ctx) {
      const g = convGeometry(ctx, at[0], at[1]);
      return [
        {
          kind: 'QConv',
          inputs: inputsAt(ctx, at),
          outputs: [ctx.node.outputs[0]],
          attrs: { requant: int(requant), group: int(g.group), strides: ints(g.strides), dilations: ints(g.dilations), pads: ints(g.pads) },
        },
      ];
    },
  });
}
