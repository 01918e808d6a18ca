/** ReverseSequence: reverses the first sequence_lens[b] time steps of each batch entry (native 'ReverseSequence'). */
import { DataType } from '../dtype';
import { int } from '../lower/plan';
import { OpContext, registerOp } from './registry';
import { rankedShape } from './util';

function axes(ctx: OpContext): { batch: number; time: number } {
  const r = rankedShape(ctx, 0).length;
  const batch = ctx.int('batch_axis', 1), time = ctx.int('time_axis', 0);
  if (r < 2) ctx.fail(`input must have rank >= 2`, 'SHAPE');
  if (![0, 1].includes(batch) || ![0, 1].includes(time) || batch === time) ctx.fail(`batch_axis (${batch}) and time_axis (${time}) must be 0 and 1 in some order`);
  return { batch, time };
}

registerOp({
  opType: 'ReverseSequence',
  infer(ctx) {
    axes(ctx);
    const t = ctx.input(1).dtype;
    if (t !== DataType.INT64 && t !== DataType.INT32) ctx.fail(`sequence_lens must be int64`);
    return [{ dtype: ctx.input(0).dtype, shape: [...rankedShape(ctx, 0)] }];
  },
  lower(ctx) {
    const { batch, time } = axes(ctx);
    return [{ kind: 'ReverseSequence', inputs: ctx.node.inputs.slice(0, 2), outputs: ctx.node.outputs, attrs: { batch_axis: int(batch), time_axis: int(time) } }];
  },
});
