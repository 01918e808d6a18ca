/**
 * ScatterND and ScatterElements (reduction none/add/mul/max/min) and the deprecated Scatter (=
 * ScatterElements without reduction): the output is the data with the updates written at the indexed
 * positions, in order. Native kinds 'ScatterND' and 'ScatterElements' (native/cpu/gather.cc), which
 * check every index.
 */
import { DataType } from '../dtype';
import { int, str } from '../lower/plan';
import { OpContext, registerOp } from './registry';
import { normAxis, rankedShape } from './util';

function reduction(ctx: OpContext): string {
  const r = ctx.string('reduction', 'none');
  if (!['none', 'add', 'mul', 'max', 'min'].includes(r)) ctx.fail(`reduction '${r}' is not one of none, add, mul, max, min`);
  return r;
}

function checkTypes(ctx: OpContext): void {
  const t = ctx.input(1).dtype;
  if (t !== DataType.INT32 && t !== DataType.INT64) ctx.fail(`indices must be int32 or int64`);
  if (ctx.input(2).dtype !== ctx.input(0).dtype) ctx.fail(`updates must have the data's element type`);
}

for (const opType of ['ScatterElements', 'Scatter']) {
  registerOp({
    opType,
    infer(ctx) {
      checkTypes(ctx);
      const d = rankedShape(ctx, 0), ix = rankedShape(ctx, 1);
      if (d.length !== ix.length) ctx.fail(`indices have rank ${ix.length}, data has rank ${d.length}; they must be equal`, 'SHAPE');
      normAxis(ctx, ctx.int('axis', 0), d.length);
      return [{ dtype: ctx.input(0).dtype, shape: [...d] }];
    },
    lower(ctx) {
      const axis = normAxis(ctx, ctx.int('axis', 0), rankedShape(ctx, 0).length);
      const red = opType === 'Scatter' ? 'none' : reduction(ctx);
      return [{ kind: 'ScatterElements', inputs: ctx.node.inputs.slice(0, 3), outputs: ctx.node.outputs, attrs: { axis: int(axis), reduction: str(red) } }];
    },
  });
}

registerOp({
  opType: 'ScatterND',
  infer(ctx) {
    checkTypes(ctx);
    const d = rankedShape(ctx, 0), ix = rankedShape(ctx, 1);
    const k = ix[ix.length - 1];
    if (typeof k === 'number' && k > d.length) ctx.fail(`index tuples of ${k} coordinates exceed data rank ${d.length}`, 'SHAPE');
    reduction(ctx);
    return [{ dtype: ctx.input(0).dtype, shape: [...d] }];
  },
  lower: (ctx) => [{ kind: 'ScatterND', inputs: ctx.node.inputs.slice(0, 3), outputs: ctx.node.outputs, attrs: { reduction: str(reduction(ctx)) } }],
});
