/**
 * TopK: the k largest or smallest elements along an axis and their int64 indices (native kind
 * 'TopK'). k is the attribute before opset 10 and input 1 after; it must be a constant, because the
 * outputs' shapes depend on it.
 */
import { DataType } from '../dtype';
import { int } from '../lower/plan';
import { OpContext, registerOp } from './registry';
import { normAxis, rankedShape } from './util';

function topK(ctx: OpContext): { axis: number; k: number } {
  const shape = rankedShape(ctx, 0);
  const axis = normAxis(ctx, ctx.int('axis', -1), shape.length);
  let k: number | undefined;
  if (ctx.opset < 10) k = ctx.int('k');
  else {
    const v = ctx.requireConst(1, 'K');
    if (v.length !== 1) ctx.fail(`input 'K' must hold one value, got ${v.length}`);
    k = v[0];
  }
  if (k === undefined || k < 0) return ctx.fail(`k must be a non-negative integer, got ${k}`);
  const n = shape[axis];
  if (typeof n === 'number' && k > n) ctx.fail(`k = ${k} is larger than axis ${axis} (${n} elements)`, 'SHAPE');
  return { axis, k };
}

registerOp({
  opType: 'TopK',
  infer(ctx) {
    const { axis, k } = topK(ctx);
    const shape = rankedShape(ctx, 0).map((d, i) => (i === axis ? k : d));
    return [
      { dtype: ctx.input(0).dtype, shape },
      { dtype: DataType.INT64, shape: [...shape] },
    ];
  },
  lower(ctx) {
    const { axis, k } = topK(ctx);
    const attrs = { axis: int(axis), k: int(k), largest: int(ctx.int('largest', 1) !== 0), sorted: int(ctx.int('sorted', 1) !== 0) };
    return [{ kind: 'TopK', inputs: [ctx.node.inputs[0]], outputs: ctx.node.outputs, attrs }];
  },
});
