/**
 * Conv (1-D/2-D/3-D): group, dilations, strides, pads and auto_pad (NOTSET, VALID, SAME_UPPER,
 * SAME_LOWER), optional bias; kernel_shape defaults to W's spatial dims. Lowers to the native 'Conv'
 * kind with every attribute resolved (pads as [begins..., ends...]) and the fused epilogue the graph
 * optimizer recorded (epilogue.ts: a residual input and an activation).
 */
import { int, ints } from '../lower/plan';
import { epilogueAttrs, residualOf } from './epilogue';
import { Dim } from '../ir/graph';
import { OpContext, OutputInfo, registerOp } from './registry';
import { rankedShape } from './util';

export interface SpatialAttrs {
  kernel: number[];
  strides: number[];
  dilations: number[];
  /** Explicit pads [begins..., ends...] (ignored for auto_pad other than NOTSET). */
  pads: number[];
  autoPad: string;
  group: number;
}

/** Reads the attributes Conv and ConvTranspose share, checked against the spatial rank. */
export function spatialAttrs(ctx: OpContext, rank: number, wSpatial: Dim[]): SpatialAttrs {
  const list = (name: string, dflt: number, len = rank): number[] => {
    const v = ctx.ints(name) ?? new Array(len).fill(dflt);
    if (v.length !== len) ctx.fail(`attribute '${name}' has ${v.length} values, the input has ${rank} spatial dims (expected ${len})`);
    return v;
  };
  const kAttr = ctx.ints('kernel_shape');
  if (kAttr && kAttr.length !== rank) ctx.fail(`attribute 'kernel_shape' has ${kAttr.length} values, the input has ${rank} spatial dims`);
  const kernel = wSpatial.map((d, i) => {
    const k = kAttr ? kAttr[i] : d;
    if (typeof k !== 'number') return ctx.fail(`W needs a static spatial shape, got [${wSpatial.join(',')}]`, 'SHAPE');
    if (typeof d === 'number' && k !== d) ctx.fail(`kernel_shape [${kAttr!.join(',')}] does not match W's spatial dims [${wSpatial.join(',')}]`, 'SHAPE');
    return k;
  });
  const a: SpatialAttrs = {
    kernel,
    strides: list('strides', 1),
    dilations: list('dilations', 1),
    pads: list('pads', 0, 2 * rank),
    autoPad: ctx.string('auto_pad', 'NOTSET'),
    group: ctx.int('group', 1),
  };
  if (!['NOTSET', 'VALID', 'SAME_UPPER', 'SAME_LOWER'].includes(a.autoPad)) ctx.fail(`unknown auto_pad '${a.autoPad}'`);
  if (a.strides.some((s) => s < 1)) ctx.fail(`strides must be >= 1, got [${a.strides.join(',')}]`);
  if (a.dilations.some((s) => s < 1)) ctx.fail(`dilations must be >= 1, got [${a.dilations.join(',')}]`);
  if (a.group < 1) ctx.fail(`group must be >= 1, got ${a.group}`);
  if (a.kernel.some((k) => k < 1)) ctx.fail(`kernel dims must be >= 1, got [${a.kernel.join(',')}]`, 'SHAPE');
  return a;
}

/** Output spatial dims and resolved pads [begins..., ends...] of a convolution. */
function convGeometry(ctx: OpContext, inDims: number[], a: SpatialAttrs): { out: number[]; pads: number[] } {
  const r = inDims.length;
  const pads = a.autoPad === 'NOTSET' ? [...a.pads] : new Array(2 * r).fill(0);
  const out = inDims.map((n, i) => {
    const dk = (a.kernel[i] - 1) * a.dilations[i] + 1;
    const s = a.strides[i];
    if (a.autoPad === 'SAME_UPPER' || a.autoPad === 'SAME_LOWER') {
      const o = Math.ceil(n / s);
      const total = Math.max(0, (o - 1) * s + dk - n);
      const small = Math.floor(total / 2);
      pads[i] = a.autoPad === 'SAME_UPPER' ? small : total - small;
      pads[i + r] = total - pads[i];
    }
    const span = n + pads[i] + pads[i + r] - dk;
    if (span < 0) ctx.fail(`the (dilated) kernel extent ${dk} is larger than the padded input dim ${n + pads[i] + pads[i + r]} (spatial dim ${i})`, 'SHAPE');
    return Math.floor(span / s) + 1;
  });
  return { out, pads };
}

function analyze(ctx: OpContext, x: Dim[], w: Dim[]) {
  if (x.length < 3 || x.length > 5) ctx.fail(`X must have rank 3 to 5 ([N, C, spatial...]), got [${x.join(',')}]`, 'SHAPE');
  if (w.length !== x.length) ctx.fail(`W [${w.join(',')}] must have the rank of X [${x.join(',')}]`, 'SHAPE');
  const rank = x.length - 2;
  const a = spatialAttrs(ctx, rank, w.slice(2));
  const spatial = x.slice(2);
  if (spatial.some((d) => typeof d !== 'number')) ctx.fail(`X needs static spatial dims, got [${x.join(',')}]`, 'SHAPE');
  const [C, M, Cw] = [x[1], w[0], w[1]];
  if (typeof C === 'number' && typeof Cw === 'number' && C !== Cw * a.group)
    ctx.fail(`X has ${C} channels but W [${w.join(',')}] with group ${a.group} expects ${Number(Cw) * a.group}`, 'SHAPE');
  if (typeof M === 'number' && M % a.group !== 0) ctx.fail(`W's ${M} output channels are not divisible by group ${a.group}`, 'SHAPE');
  const g = convGeometry(ctx, spatial as number[], a);
  return { a, M, ...g };
}

/** Conv and ConvTranspose inference: Y is [N, M, spatial...] and a bias B has M elements. */
export function convLikeInfer(ctx: OpContext, geometry: (ctx: OpContext, x: Dim[], w: Dim[]) => { M: Dim; out: Dim[] }): OutputInfo[] {
  const x = rankedShape(ctx, 0);
  const { M, out } = geometry(ctx, x, rankedShape(ctx, 1));
  const b = ctx.inputs[2]?.shape;
  if (b && (b.length !== 1 || (typeof b[0] === 'number' && typeof M === 'number' && b[0] !== M)))
    ctx.fail(`bias B must be 1-D with ${M} elements, got [${b.join(',')}]`, 'SHAPE');
  return [{ dtype: ctx.input(0).dtype, shape: [x[0], M, ...out] }];
}

registerOp({
  opType: 'Conv',
  infer: (ctx) => convLikeInfer(ctx, analyze),
  lower(ctx) {
    const { a, pads } = analyze(ctx, ctx.shapeOf(0), ctx.shapeOf(1));
    // [X, W, B?, residual?] — trailing omitted inputs dropped
    const ins = [...ctx.node.inputs.slice(0, 3), residualOf(ctx.node)];
    while (ins.length > 2 && ins[ins.length - 1] === '') ins.pop();
    return [
      {
        kind: 'Conv',
        inputs: ins,
        outputs: [ctx.node.outputs[0]],
        attrs: { group: int(a.group), strides: ints(a.strides), dilations: ints(a.dilations), pads: ints(pads), ...epilogueAttrs(ctx.node) },
      },
    ];
  },
});
