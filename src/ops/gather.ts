/**
 * Gather (axis), GatherElements (axis) and GatherND (batch_dims): native kinds of the same names
 * (native/cpu/gather.cc), which check every index at run time (negative ones count from the end).
 */
import { DataType } from '../dtype';
import { Dim } from '../ir/graph';
import { int } from '../lower/plan';
import { OpContext, registerOp } from './registry';
import { normAxis, rankedShape } from './util';

function checkIndices(ctx: OpContext): void {
  const t = ctx.input(1).dtype;
  if (t !== DataType.INT32 && t !== DataType.INT64) ctx.fail(`indices must be int32 or int64`);
}

const gatherAxis = (ctx: OpContext) => normAxis(ctx, ctx.int('axis', 0), rankedShape(ctx, 0).length);

registerOp({
  opType: 'Gather',
  infer(ctx) {
    checkIndices(ctx);
    const d = rankedShape(ctx, 0), ix = rankedShape(ctx, 1);
    const a = gatherAxis(ctx);
    return [{ dtype: ctx.input(0).dtype, shape: [...d.slice(0, a), ...ix, ...d.slice(a + 1)] }];
  },
  lower: (ctx) => [{ kind: 'Gather', inputs: ctx.node.inputs.slice(0, 2), outputs: ctx.node.outputs, attrs: { axis: int(gatherAxis(ctx)) } }],
});

registerOp({
  opType: 'GatherElements',
  infer(ctx) {
    checkIndices(ctx);
    const d = rankedShape(ctx, 0), ix = rankedShape(ctx, 1);
    if (d.length !== ix.length) ctx.fail(`indices have rank ${ix.length}, data has rank ${d.length}; they must be equal`, 'SHAPE');
    gatherAxis(ctx);
    return [{ dtype: ctx.input(0).dtype, shape: [...ix] }];
  },
  lower: (ctx) => [{ kind: 'GatherElements', inputs: ctx.node.inputs.slice(0, 2), outputs: ctx.node.outputs, attrs: { axis: int(gatherAxis(ctx)) } }],
});

/** GatherND's output shape: indices.shape[:-1] + data.shape[batch_dims + k:]. */
export function gatherNDShape(ctx: OpContext, d: Dim[], ix: Dim[], b: number): Dim[] {
  const k = ix[ix.length - 1];
  if (ix.length < 1 || typeof k !== 'number') return ctx.fail(`indices need a static last dim`, 'SHAPE');
  if (b < 0 || b >= Math.min(d.length, ix.length)) ctx.fail(`batch_dims ${b} must be less than the ranks of data (${d.length}) and indices (${ix.length})`, 'SHAPE');
  if (b + k > d.length) ctx.fail(`index tuples of ${k} coordinates exceed data rank ${d.length} (batch_dims ${b})`, 'SHAPE');
  for (let i = 0; i < b; i++)
    if (typeof d[i] === 'number' && typeof ix[i] === 'number' && d[i] !== ix[i]) ctx.fail(`batch dim ${i} differs: data ${d[i]}, indices ${ix[i]}`, 'SHAPE');
  return [...ix.slice(0, -1), ...d.slice(b + k)];
}

registerOp({
  opType: 'GatherND',
  infer(ctx) {
    if (ctx.input(1).dtype !== DataType.INT64) ctx.fail(`indices must be int64`);
    const b = ctx.int('batch_dims', 0);
    return [{ dtype: ctx.input(0).dtype, shape: gatherNDShape(ctx, rankedShape(ctx, 0), rankedShape(ctx, 1), b) }];
  },
  lower: (ctx) => [{ kind: 'GatherND', inputs: ctx.node.inputs.slice(0, 2), outputs: ctx.node.outputs, attrs: { batch_dims: int(ctx.int('batch_dims', 0)) } }],
});
