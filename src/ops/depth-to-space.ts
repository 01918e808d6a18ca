/**
 * DepthToSpace (modes DCR, the default, and CRD from opset 11) and SpaceToDepth: a reshape, a
 * transpose and a reshape, so one native 'StridedCopy' over a 6-D view of the NCHW input.
 */
import { OpContext, registerOp } from './registry';
import { stridedCopy } from './transpose';

function dims(ctx: OpContext): { n: number; c: number; h: number; w: number; b: number } {
  const s = ctx.shapeOf(0);
  if (s.length !== 4) ctx.fail(`input must be 4-D (NCHW), got [${s.join(',')}]`, 'SHAPE');
  const b = ctx.int('blocksize') ?? ctx.fail(`attribute 'blocksize' is required`);
  if (b < 1) ctx.fail(`blocksize must be positive, got ${b}`);
  const [n, c, h, w] = s;
  return { n, c, h, w, b };
}

/** A StridedCopy reading a 6-D view (extents `view`, strides `vs`) in the order `perm`. */
function permuted(ctx: OpContext, view: number[], vs: number[], perm: number[]) {
  return stridedCopy(ctx.node.inputs[0], ctx.node.outputs[0], perm.map((p) => view[p]), perm.map((p) => vs[p]));
}

registerOp({
  opType: 'DepthToSpace',
  infer(ctx) {
    const { n, c, h, w, b } = dims(ctx);
    if (c % (b * b) !== 0) ctx.fail(`channels (${c}) must be a multiple of blocksize² (${b * b})`, 'SHAPE');
    return [{ dtype: ctx.input(0).dtype, shape: [n, c / (b * b), h * b, w * b] }];
  },
  lower(ctx) {
    const { n, c, h, w, b } = dims(ctx);
    const c2 = c / (b * b), hw = h * w;
    if (ctx.string('mode', 'DCR') === 'CRD')
      return [permuted(ctx, [n, c2, b, b, h, w], [c * hw, b * b * hw, b * hw, hw, w, 1], [0, 1, 4, 2, 5, 3])];
    return [permuted(ctx, [n, b, b, c2, h, w], [c * hw, b * c2 * hw, c2 * hw, hw, w, 1], [0, 3, 4, 1, 5, 2])];
  },
});

registerOp({
  opType: 'SpaceToDepth',
  infer(ctx) {
    const { n, c, h, w, b } = dims(ctx);
    if (h % b !== 0 || w % b !== 0) ctx.fail(`height ${h} and width ${w} must be multiples of blocksize ${b}`, 'SHAPE');
    return [{ dtype: ctx.input(0).dtype, shape: [n, c * b * b, h / b, w / b] }];
  },
  lower(ctx) {
    const { n, c, h, w, b } = dims(ctx);
    return [permuted(ctx, [n, c, h / b, b, w / b, b], [c * h * w, h * w, b * w, w, b, 1], [0, 3, 5, 1, 2, 4])];
  },
});
