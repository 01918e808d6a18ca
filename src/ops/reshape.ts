/**
 * Reshape (0 copies the input dim unless allowzero, -1 is inferred; the shape is an attribute before
 * opset 5 and a build-time-known input after) and Flatten. Both are byte copies: native 'Copy'.
 */
import { Dim } from '../ir/graph';
import { NativeOp, OpContext, registerOp } from './registry';
import { rankedShape } from './util';

export const copyOp = (ctx: OpContext): NativeOp => ({ kind: 'Copy', inputs: [ctx.node.inputs[0]], outputs: [ctx.node.outputs[0]], attrs: {} });

function reshape(ctx: OpContext): number[] {
  const inShape = ctx.shapeOf(0);
  const spec = ctx.opset < 5 ? ctx.ints('shape') ?? ctx.fail(`attribute 'shape' is required`) : ctx.requireConst(1, 'shape');
  const allowzero = ctx.int('allowzero', 0) !== 0;
  const total = inShape.reduce((a, b) => a * b, 1);
  let infer = -1;
  const out = spec.map((d, i) => {
    if (d === 0 && !allowzero) {
      if (i >= inShape.length) ctx.fail(`shape [${spec.join(',')}] copies dim ${i} (0), which the input ([${inShape.join(',')}]) lacks`, 'SHAPE');
      return inShape[i];
    }
    if (d === -1) {
      if (infer >= 0) ctx.fail(`shape [${spec.join(',')}] has more than one -1`, 'SHAPE');
      infer = i;
      return 1;
    }
    if (d < 0) ctx.fail(`shape [${spec.join(',')}] has the invalid dim ${d}`, 'SHAPE');
    return d;
  });
  if (allowzero && infer >= 0 && spec.includes(0)) ctx.fail(`shape [${spec.join(',')}] has both 0 and -1 with allowzero`, 'SHAPE');
  const known = out.reduce((a, b) => a * b, 1);
  if (infer >= 0) {
    if (known === 0 || total % known !== 0)
      ctx.fail(`cannot reshape [${inShape.join(',')}] (${total} elements) to [${spec.join(',')}]`, 'SHAPE');
    out[infer] = total / known;
  } else if (known !== total) ctx.fail(`cannot reshape [${inShape.join(',')}] (${total} elements) to [${spec.join(',')}] (${known} elements)`, 'SHAPE');
  return out;
}

registerOp({
  opType: 'Reshape',
  infer(ctx) {
    return [{ dtype: ctx.input(0).dtype, shape: reshape(ctx) }];
  },
  lower: (ctx) => [copyOp(ctx)],
});

registerOp({
  opType: 'Flatten',
  infer(ctx) {
    const s = rankedShape(ctx, 0);
    const r = s.length;
    const a0 = ctx.int('axis', 1);
    const axis = a0 < 0 ? a0 + r : a0;
    if (axis < 0 || axis > r) ctx.fail(`axis ${a0} is out of range for rank ${r}`, 'SHAPE');
    const prod = (ds: Dim[]): Dim => (ds.every((d) => typeof d === 'number') ? (ds as number[]).reduce((a, b) => a * b, 1) : `${ctx.node.outputs[0]}_flat${ds.length}`);
    return [{ dtype: ctx.input(0).dtype, shape: [prod(s.slice(0, axis)), prod(s.slice(axis))] }];
  },
  lower: (ctx) => [copyOp(ctx)],
});
