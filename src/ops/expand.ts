/**
 * Expand (bidirectional broadcast to a build-time-known shape) and Tile (build-time-known repeats):
 * both are one native 'StridedCopy' reading the input with zero strides along repeated dims.
 */
import { NativeOp, OpContext, registerOp } from './registry';
import { stridedCopy, stridesOf } from './transpose';
import { broadcastShapes } from './util';

function expandShape(ctx: OpContext): number[] {
  const target = ctx.requireConst(1, 'shape');
  return broadcastShapes(ctx, [ctx.shapeOf(0), target]) as number[];
}

registerOp({
  opType: 'Expand',
  infer(ctx) {
    return [{ dtype: ctx.input(0).dtype, shape: expandShape(ctx) }];
  },
  lower(ctx): NativeOp[] {
    const out = expandShape(ctx);
    const s = ctx.shapeOf(0);
    const own = stridesOf(s);
    const lead = out.length - s.length;
    const st = out.map((d, i) => (i < lead || s[i - lead] === 1 ? 0 : own[i - lead]));
    return [stridedCopy(ctx.node.inputs[0], ctx.node.outputs[0], out, st)];
  },
});

function repeats(ctx: OpContext): number[] {
  const s = ctx.shapeOf(0);
  const r = ctx.requireConst(1, 'repeats');
  if (r.length !== s.length) ctx.fail(`repeats has ${r.length} entries for an input of rank ${s.length}`, 'SHAPE');
  if (r.some((x) => x < 0)) ctx.fail(`repeats [${r.join(',')}] has a negative entry`, 'SHAPE');
  return r;
}

registerOp({
  opType: 'Tile',
  infer(ctx) {
    const r = repeats(ctx);
    return [{ dtype: ctx.input(0).dtype, shape: ctx.shapeOf(0).map((d, i) => d * r[i]) }];
  },
  lower(ctx) {
    const r = repeats(ctx);
    const s = ctx.shapeOf(0);
    const own = stridesOf(s);
    // out viewed as [r0, d0, r1, d1, …]: the repeat dims read with stride 0
    return [stridedCopy(ctx.node.inputs[0], ctx.node.outputs[0], s.flatMap((d, i) => [r[i], d]), own.flatMap((x) => [0, x]))];
  },
});
