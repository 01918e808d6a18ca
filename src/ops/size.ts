/** Size: the input's element count as an int64 scalar, known at compile time; the node always folds. */
import { DataType } from '../dtype';
import { registerOp } from './registry';

registerOp({
  opType: 'Size',
  infer(ctx) {
    const n = ctx.shapeOf(0).reduce((a, b) => a * b, 1);
    return [{ dtype: DataType.INT64, shape: [], data: BigInt64Array.from([BigInt(n)]) }];
  },
});
