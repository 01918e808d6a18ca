/** Trilu: the upper (default) or lower triangle of the last two dims, offset by k (native 'Trilu'). */
import { int } from '../lower/plan';
import { registerOp } from './registry';
import { rankedShape } from './util';

registerOp({
  opType: 'Trilu',
  infer(ctx) {
    const s = rankedShape(ctx, 0);
    if (s.length < 2) ctx.fail(`input must have rank >= 2, got [${s.join(',')}]`, 'SHAPE');
    return [{ dtype: ctx.input(0).dtype, shape: [...s] }];
  },
  lower(ctx) {
    const upper = int(ctx.int('upper', 1) !== 0);
    if (!ctx.inputs[1]) return [{ kind: 'Trilu', inputs: [ctx.node.inputs[0]], outputs: ctx.node.outputs, attrs: { upper, k: int(0) } }];
    const k = ctx.constValues(1);
    // k known at build becomes an attribute; otherwise the kernel reads it from its input 1
    if (k) return [{ kind: 'Trilu', inputs: [ctx.node.inputs[0]], outputs: ctx.node.outputs, attrs: { upper, k: int(k[0]) } }];
    return [{ kind: 'Trilu', inputs: ctx.node.inputs.slice(0, 2), outputs: ctx.node.outputs, attrs: { upper, k: int(0) } }];
  },
});
