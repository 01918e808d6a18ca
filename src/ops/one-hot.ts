/**
 * OneHot: depth (decides the output shape) must be known at build; values [off, on] may come at run
 * time. Indices outside [-depth, depth) give all-'off' rows. Native kind 'OneHot'.
 */
import { int } from '../lower/plan';
import { OpContext, registerOp } from './registry';
import { rankedShape } from './util';

function params(ctx: OpContext): { axis: number; depth: number } {
  const r = rankedShape(ctx, 0).length + 1;
  const d = ctx.requireConst(1, 'depth');
  if (d.length !== 1) ctx.fail(`depth must hold one value, it has ${d.length}`);
  const depth = Math.trunc(d[0]);
  if (!(depth >= 1)) ctx.fail(`depth must be positive, got ${d[0]}`);
  const a0 = ctx.int('axis', -1);
  const axis = a0 < 0 ? a0 + r : a0;
  if (axis < 0 || axis >= r) ctx.fail(`axis ${a0} is out of range for output rank ${r}`, 'SHAPE');
  return { axis, depth };
}

registerOp({
  opType: 'OneHot',
  infer(ctx) {
    const { axis, depth } = params(ctx);
    const s = [...rankedShape(ctx, 0)];
    s.splice(axis, 0, depth);
    return [{ dtype: ctx.input(2).dtype, shape: s }];
  },
  lower(ctx) {
    const { axis, depth } = params(ctx);
    return [{ kind: 'OneHot', inputs: [ctx.node.inputs[0], ctx.node.inputs[2]], outputs: ctx.node.outputs, attrs: { axis: int(axis), depth: int(depth) } }];
  },
});
