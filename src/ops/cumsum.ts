/** CumSum along a build-time-known axis, optionally exclusive and/or reversed (native 'CumSum'). */
import { int } from '../lower/plan';
import { OpContext, registerOp } from './registry';
import { normAxis, rankedShape } from './util';

function axis(ctx: OpContext): number {
  const a = ctx.requireConst(1, 'axis');
  if (a.length !== 1) ctx.fail(`axis must hold one value, it has ${a.length}`);
  return normAxis(ctx, a[0], rankedShape(ctx, 0).length);
}

registerOp({
  opType: 'CumSum',
  infer(ctx) {
    axis(ctx);
    return [{ dtype: ctx.input(0).dtype, shape: [...rankedShape(ctx, 0)] }];
  },
  lower(ctx) {
    const attrs = { axis: int(axis(ctx)), exclusive: int(ctx.int('exclusive', 0) !== 0), reverse: int(ctx.int('reverse', 0) !== 0) };
    return [{ kind: 'CumSum', inputs: [ctx.node.inputs[0]], outputs: ctx.node.outputs, attrs }];
  },
});
