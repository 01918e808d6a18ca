/**
 * Identity, and Dropout at inference (a copy; the optional mask output is all true). Dropout's
 * training_mode must be a known false: kiln builds inference engines. Both lower to the native 'Copy'.
 */
import { DataType } from '../dtype';
import { NativeOp, OpContext, registerOp } from './registry';
import { fillOp } from './constant-of-shape';
import { rankedShape } from './util';

const copy = (ctx: OpContext): NativeOp => ({ kind: 'Copy', inputs: [ctx.node.inputs[0]], outputs: [ctx.node.outputs[0]], attrs: {} });

registerOp({
  opType: 'Identity',
  infer(ctx) {
    const v = ctx.input(0);
    return [{ dtype: v.dtype, shape: rankedShape(ctx, 0), data: v.data }];
  },
  lower: (ctx) => [copy(ctx)],
});

registerOp({
  opType: 'Dropout',
  infer(ctx) {
    const training = ctx.opset >= 12 ? ctx.inputs[2] : undefined;
    if (training) {
      const t = ctx.constValues(2);
      if (!t) return ctx.fail(`training_mode ('${training.name}') must be a constant false: kiln builds inference engines`, 'UNSUPPORTED');
      if (t.some((x) => x !== 0)) ctx.fail('training_mode is true: kiln builds inference engines, where Dropout is the identity', 'UNSUPPORTED');
    }
    if (ctx.opset < 7 && ctx.int('is_test', 0) === 0) ctx.fail('is_test is 0 (training): kiln builds inference engines', 'UNSUPPORTED');
    const x = ctx.input(0);
    const shape = rankedShape(ctx, 0);
    const mask = ctx.opset >= 10 ? DataType.BOOL : x.dtype;
    return [
      { dtype: x.dtype, shape, data: x.data },
      { dtype: mask, shape: [...shape] },
    ];
  },
  lower(ctx) {
    const ops = [copy(ctx)];
    const m = ctx.node.outputs[1];
    if (m) ops.push(fillOp(m, ctx.opset >= 10 ? DataType.BOOL : ctx.input(0).dtype, 1));
    return ops;
  },
});
