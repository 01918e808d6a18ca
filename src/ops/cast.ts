/**
 * Cast and CastLike: element type conversion among the types kiln holds (float32/16, bfloat16,
 * float64, int8..64, uint8..64, bool, float8 variants, float4e2m1, int4/uint4, int2/uint2). One native
 * kind 'Cast' (the target type is the output tensor's); a cast to the same type is a Copy. Attributes:
 * `saturate` (opset 19+, default 1; only float8 targets use it) and `round_mode` (opset 25+, 'up' by
 * default; only float8e8m0 targets use it) → native int `round_mode` 0 up, 1 down, 2 nearest.
 */
import { DataType, dtypeName, isSupported } from '../dtype';
import { int } from '../lower/plan';
import { NativeOp, OpContext, registerOp } from './registry';
import { rankedShape } from './util';

function target(ctx: OpContext, to: DataType, what: string): DataType {
  if (to === DataType.STRING) ctx.fail(`${what}: casts to or from string are not supported (kiln engines hold numeric tensors)`, 'UNSUPPORTED');
  if (!isSupported(to)) ctx.fail(`${what}: element type ${DataType[to] ?? to} is not supported`, 'UNSUPPORTED');
  const from = ctx.input(0).dtype;
  if (!isSupported(from)) ctx.fail(`input element type ${dtypeName(from)} is not supported`, 'UNSUPPORTED');
  return to;
}

const ROUND_MODES = ['up', 'down', 'nearest'];

function lowerCast(ctx: OpContext, to: DataType): NativeOp[] {
  if (ctx.input(0).dtype === to) return [{ kind: 'Copy', inputs: [ctx.node.inputs[0]], outputs: [ctx.node.outputs[0]], attrs: {} }];
  const mode = ctx.string('round_mode', 'up');
  const round = ROUND_MODES.indexOf(mode);
  if (round < 0) ctx.fail(`round_mode '${mode}' is not one of ${ROUND_MODES.join(', ')}`);
  const attrs = { saturate: int(ctx.int('saturate', 1) ? 1 : 0), round_mode: int(round) };
  return [{ kind: 'Cast', inputs: [ctx.node.inputs[0]], outputs: [ctx.node.outputs[0]], attrs }];
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
