/**
 * Slice: starts/ends/axes are attributes at opset 1 and build-time-known inputs (with optional steps)
 * from opset 10. Negative indices count from the end; indices are clamped as ONNX specifies (to
 * [0, n] for positive steps, [-1, n-1] for negative ones). Lowers to one native 'StridedCopy'.
 */
import { OpContext, registerOp } from './registry';
import { stridedCopy, stridesOf } from './transpose';
import { normAxis } from './util';

interface Window {
  start: number[];
  step: number[];
  count: number[];
}

function window(ctx: OpContext): Window {
  const s = ctx.shapeOf(0);
  const r = s.length;
  let starts: number[], ends: number[], axes: number[] | undefined, steps: number[] | undefined;
  if (ctx.opset < 10) {
    starts = ctx.ints('starts') ?? ctx.fail(`attribute 'starts' is required`);
    ends = ctx.ints('ends') ?? ctx.fail(`attribute 'ends' is required`);
    axes = ctx.ints('axes');
  } else {
    starts = ctx.requireConst(1, 'starts');
    ends = ctx.requireConst(2, 'ends');
    axes = ctx.inputs[3] ? ctx.requireConst(3, 'axes') : undefined;
    steps = ctx.inputs[4] ? ctx.requireConst(4, 'steps') : undefined;
  }
  axes ??= starts.map((_, i) => i);
  steps ??= starts.map(() => 1);
  if (ends.length !== starts.length || axes.length !== starts.length || steps.length !== starts.length)
    ctx.fail(`starts, ends, axes and steps must have the same length (${starts.length}, ${ends.length}, ${axes.length}, ${steps.length})`);
  const w: Window = { start: new Array<number>(r).fill(0), step: new Array<number>(r).fill(1), count: [...s] };
  const seen = new Set<number>();
  axes.forEach((a0, i) => {
    const a = normAxis(ctx, a0, r);
    if (seen.has(a)) ctx.fail(`axis ${a} is sliced twice`);
    seen.add(a);
    const n = s[a], step = steps![i];
    if (step === 0) ctx.fail(`step 0 on axis ${a}`);
    let b = starts[i] < 0 ? starts[i] + n : starts[i];
    let e = ends[i] < 0 ? ends[i] + n : ends[i];
    if (step > 0) {
      b = Math.min(Math.max(b, 0), n);
      e = Math.min(Math.max(e, 0), n);
    } else {
      b = Math.min(Math.max(b, 0), n - 1);
      e = Math.min(Math.max(e, -1), n - 1);
    }
    w.start[a] = b;
    w.step[a] = step;
    w.count[a] = Math.max(0, Math.ceil((e - b) / step));
  });
  return w;
}

registerOp({
  opType: 'Slice',
  infer(ctx) {
    return [{ dtype: ctx.input(0).dtype, shape: window(ctx).count }];
  },
  lower(ctx) {
    const w = window(ctx);
    const st = stridesOf(ctx.shapeOf(0));
    const offset = w.start.reduce((acc, b, d) => acc + (w.count[d] > 0 ? b * st[d] : 0), 0);
    return [stridedCopy(ctx.node.inputs[0], ctx.node.outputs[0], w.count, st.map((x, d) => x * w.step[d]), offset)];
  },
});
