/**
 * Softmax, LogSoftmax and Hardmax: one native kind 'Softmax' (attr `op`) over the input viewed as
 * [outer, n, inner]. Before opset 13 the ops coerce the input to 2-D at `axis` (default 1): the
 * normalized group is every dim from `axis` on. From opset 13 they work along `axis` (default -1).
 */
import { int, str } from '../lower/plan';
import { registerOp } from './registry';
import { normAxis, rankedShape } from './util';

for (const opType of ['Softmax', 'LogSoftmax', 'Hardmax']) {
  registerOp({
    opType,
    infer(ctx) {
      const shape = rankedShape(ctx, 0);
      if (shape.length > 0 || ctx.opset < 13) normAxis(ctx, ctx.int('axis', ctx.opset < 13 ? 1 : -1), Math.max(shape.length, 1));
      return [{ dtype: ctx.input(0).dtype, shape: [...shape] }];
    },
    lower(ctx) {
      const shape = ctx.shapeOf(0);
      const rank = shape.length;
      const prod = (a: number, b: number) => shape.slice(a, b).reduce((x, y) => x * y, 1);
      let outer: number, n: number, inner: number;
      if (rank === 0) [outer, n, inner] = [1, 1, 1];
      else if (ctx.opset < 13) {
        // axis == rank is allowed by the 2-D coercion (groups of one element)
        const raw = ctx.int('axis', 1);
        const axis = raw < 0 ? raw + rank : raw;
        if (axis < 0 || axis > rank) ctx.fail(`axis ${raw} is out of range for rank ${rank}`, 'SHAPE');
        [outer, n, inner] = [prod(0, axis), prod(axis, rank), 1];
      } else {
        const axis = normAxis(ctx, ctx.int('axis', -1), rank);
        [outer, n, inner] = [prod(0, axis), shape[axis], prod(axis + 1, rank)];
      }
      const attrs = { op: str(opType), outer: int(outer), n: int(n), inner: int(inner) };
      return [{ kind: 'Softmax', inputs: [ctx.node.inputs[0]], outputs: ctx.node.outputs, attrs }];
    },
  });
}
