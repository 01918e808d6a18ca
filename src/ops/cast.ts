/**
 * Cast and CastLike: element type conversion among the types kiln holds (float32/16, bfloat16,
 * float64, int8..64, uint8..64, bool). One native kind 'Cast' (the target type is the output
 * tensor's); a cast to the same type is a Copy. `saturate` only changes float8 targets, which kiln
 * does not hold, so it is accepted and has no effect here.
 */
import { DataType, dtypeName, isSupported } from '../dtype';
import { NativeOp, OpContext, registerOp } from './registry';
import { rankedShape } from './util';

function target(ctx: OpContext, to: DataType, what: string): DataType {
  if (to === DataType.STRING) ctx.fail(`${what}: casts to or from string are not supported (kiln engines hold numeric tensors)`, 'UNSUPPORTED');
  if (!isSupported(to)) ctx.fail(`${what}: element type ${DataType[to] ?? to} is not supported`, 'UNSUPPORTED');
  const from = ctx.input(0).dtype;
  if (!isSupported(from)) ctx.fail(`input element type ${dtypeName(from)} is not supported`, 'UNSUPPORTED');
  return to;
}

function lowerCast(ctx: OpContext, to: DataType): NativeOp[] {
  const kind = ctx.input(0).dtype === to ? 'Copy' : 'Cast';
  return [{ kind, inputs: [ctx.node.inputs[0]], outputs: [ctx.node.outputs[0]], attrs: {} }];
}

const castTo = (ctx: OpContext): DataType => {
  const to = ctx.int('to');
  if (to === undefined) return ctx.fail("attribute 'to' is required");
  return target(ctx, to, `'to' = ${dtypeName(to as DataType)}`);
};
const likeTo = (ctx: OpContext): DataType => target(ctx, ctx.input(1).dtype, `target_type input`);

for (const [opType, to] of [
  ['Cast', castTo],
  ['CastLike', likeTo],
] as const) {
  registerOp({
    opType,
    infer: (ctx) => [{ dtype: to(ctx), shape: rankedShape(ctx, 0) }],
    lower: (ctx) => lowerCast(ctx, to(ctx)),
  });
}
