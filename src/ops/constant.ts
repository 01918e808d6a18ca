/**
 * Constant: its value (a tensor, or value_float(s) / value_int(s)) is known data, so the node always
 * folds. String values and sparse tensors are not supported (engines hold numeric tensors).
 */
import { DataType } from '../dtype';
import { Value } from '../ir/graph';
import { OpContext, numbersOf as numbersOfData, registerOp } from './registry';

/** The known contents of `v` as numbers, float16 and bfloat16 decoded from their bits. */
export function numbersOf(v: Value): number[] | undefined {
  return v.data ? numbersOfData(v.dtype, v.data) : undefined;
}

/** Like ctx.requireConst, with float16/bfloat16 contents decoded. */
export function requireNumbers(ctx: OpContext, i: number, what: string): number[] {
  ctx.requireConst(i, what);
  return numbersOf(ctx.input(i))!;
}

registerOp({
  opType: 'Constant',
  infer(ctx) {
    const a = ctx.attr('value');
    if (a?.type === 'tensor') {
      if (!a.value.data || !a.value.shape) return ctx.fail(`attribute 'value' holds no data`);
      return [{ dtype: a.value.dtype, shape: a.value.shape, data: a.value.data }];
    }
    const f = ctx.attr('value_float');
    if (f) return [{ dtype: DataType.FLOAT, shape: [], data: Float32Array.from([ctx.float('value_float', 0)]) }];
    const fs = ctx.floats('value_floats');
    if (fs) return [{ dtype: DataType.FLOAT, shape: [fs.length], data: Float32Array.from(fs) }];
    const i = ctx.int('value_int');
    if (i !== undefined) return [{ dtype: DataType.INT64, shape: [], data: BigInt64Array.from([BigInt(i)]) }];
    const is = ctx.ints('value_ints');
    if (is) return [{ dtype: DataType.INT64, shape: [is.length], data: BigInt64Array.from(is, (x) => BigInt(x)) }];
    if (ctx.attr('value_string') || ctx.attr('value_strings')) return ctx.fail('string constants are not supported: kiln engines hold numeric tensors only', 'UNSUPPORTED');
    if (ctx.attr('sparse_value')) return ctx.fail('sparse tensor constants are not supported', 'UNSUPPORTED');
    return ctx.fail('has none of the attributes value, value_float(s), value_int(s)');
  },
});
