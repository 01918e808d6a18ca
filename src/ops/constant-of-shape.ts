/**
 * ConstantOfShape: a tensor of the shape given by input 0 (which must be known at build), filled with
 * the one element of the `value` attribute (default float32 0). Lowers to the native kind 'Fill'.
 */
import { DataType, isFloat } from '../dtype';
import { PlanAttr, float, int } from '../lower/plan';
import { numbersOf } from './constant';
import { NativeOp, OpContext, registerOp } from './registry';

function fillValue(ctx: OpContext): { dtype: DataType; value: number } {
  const a = ctx.attr('value');
  if (!a) return { dtype: DataType.FLOAT, value: 0 };
  if (a.type !== 'tensor' || !a.value.data) return ctx.fail(`attribute 'value' must be a one-element tensor`);
  if (a.value.data.length !== 1) ctx.fail(`attribute 'value' must hold one element, it holds ${a.value.data.length}`);
  return { dtype: a.value.dtype, value: numbersOf(a.value)![0] };
}

/** A Fill op writing `value` into `output` of type `dtype`. */
export function fillOp(output: string, dtype: DataType, value: number): NativeOp {
  const attrs: Record<string, PlanAttr> = { value: float(value) };
  if (!isFloat(dtype)) attrs.ivalue = int(value);
  return { kind: 'Fill', inputs: [], outputs: [output], attrs };
}

registerOp({
  opType: 'ConstantOfShape',
  infer(ctx) {
    const shape = ctx.requireConst(0, 'input');
    if (shape.some((d) => d < 0 || !Number.isInteger(d))) ctx.fail(`shape [${shape.join(',')}] has a negative dim`, 'SHAPE');
    return [{ dtype: fillValue(ctx).dtype, shape }];
  },
  lower(ctx) {
    const { dtype, value } = fillValue(ctx);
    return [fillOp(ctx.node.outputs[0], dtype, value)];
  },
});
