/**
 * Range: start, start + delta, … up to (not including) limit. The three scalar inputs decide the
 * output's length, so they must be known at build; the node then folds through the native 'Range'.
 */
import { float } from '../lower/plan';
import { requireNumbers } from './constant';
import { OpContext, registerOp } from './registry';

function params(ctx: OpContext): { start: number; delta: number; n: number } {
  const one = (i: number, what: string): number => {
    const v = requireNumbers(ctx, i, what);
    if (v.length !== 1) ctx.fail(`input '${what}' must be a scalar, it has ${v.length} elements`);
    return v[0];
  };
  const start = one(0, 'start'), limit = one(1, 'limit'), delta = one(2, 'delta');
  if (delta === 0) ctx.fail(`delta must not be 0`);
  return { start, delta, n: Math.max(Math.ceil((limit - start) / delta), 0) };
}

registerOp({
  opType: 'Range',
  infer(ctx) {
    return [{ dtype: ctx.input(0).dtype, shape: [params(ctx).n] }];
  },
  lower(ctx) {
    const { start, delta } = params(ctx);
    return [{ kind: 'Range', inputs: [], outputs: [ctx.node.outputs[0]], attrs: { start: float(start), delta: float(delta) } }];
  },
});
