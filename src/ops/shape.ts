/**
 * Shape: the input's dims (opset 15+: the slice [start, end), clamped) as int64 data, known at
 * compile time; the node always folds.
 */
import { DataType } from '../dtype';
import { registerOp } from './registry';
import { rankedShape } from './util';

registerOp({
  opType: 'Shape',
  infer(ctx) {
    const s = rankedShape(ctx, 0);
    const r = s.length;
    const clamp = (x: number) => Math.min(Math.max(x < 0 ? x + r : x, 0), r);
    const start = ctx.opset >= 15 ? clamp(ctx.int('start', 0)) : 0;
    const end = ctx.opset >= 15 ? clamp(ctx.int('end', r)) : r;
    const dims = s.slice(start, Math.max(start, end));
    if (dims.some((d) => typeof d !== 'number'))
      ctx.fail(`input ('${ctx.input(0).name}') has symbolic dims [${s.join(',')}]; give them values with the 'shapes' option`, 'SHAPE');
    return [{ dtype: DataType.INT64, shape: [dims.length], data: BigInt64Array.from(dims, (d) => BigInt(d)) }];
  },
});
