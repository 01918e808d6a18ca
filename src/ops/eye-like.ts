/** EyeLike: a 2-D tensor of the input's shape with ones on diagonal k (native 'EyeLike'). */
import { DataType } from '../dtype';
import { int } from '../lower/plan';
import { registerOp } from './registry';

registerOp({
  opType: 'EyeLike',
  infer(ctx) {
    const s = ctx.shapeOf(0);
    if (s.length !== 2) ctx.fail(`input must be 2-D, got [${s.join(',')}]`, 'SHAPE');
    return [{ dtype: (ctx.int('dtype') ?? ctx.input(0).dtype) as DataType, shape: [...s] }];
  },
  lower: (ctx) => [{ kind: 'EyeLike', inputs: [], outputs: ctx.node.outputs, attrs: { k: int(ctx.int('k', 0)) } }],
});
