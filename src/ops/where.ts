/** Where(condition, X, Y): X where condition else Y, the three broadcast together (numpy rules). */
import { DataType, dtypeName } from '../dtype';
import { registerOp } from './registry';
import { broadcastShapes, rankedShape } from './util';

registerOp({
  opType: 'Where',
  infer(ctx) {
    if (ctx.input(0).dtype !== DataType.BOOL) ctx.fail(`condition must be bool, got ${dtypeName(ctx.input(0).dtype)}`);
    const t = ctx.input(1).dtype;
    if (ctx.input(2).dtype !== t) ctx.fail(`X and Y must have one type, got ${dtypeName(t)} and ${dtypeName(ctx.input(2).dtype)}`);
    return [{ dtype: t, shape: broadcastShapes(ctx, [0, 1, 2].map((i) => rankedShape(ctx, i))) }];
  },
  lower: (ctx) => [{ kind: 'Where', inputs: ctx.node.inputs.slice(0, 3), outputs: [ctx.node.outputs[0]], attrs: {} }],
});
