/**
 * Split: `split` sizes from the attribute (before opset 13) or a build-time-known input; otherwise
 * num_outputs (opset 18: equal chunks of ceil(n / num_outputs), the last smaller) or an even split over
 * the node's outputs. Each output is one native 'StridedCopy' of its window.
 */
import { NativeOp, OpContext, registerOp } from './registry';
import { stridedCopy, stridesOf } from './transpose';
import { normAxis } from './util';

function splitSizes(ctx: OpContext): { axis: number; sizes: number[] } {
  const s = ctx.shapeOf(0);
  const axis = normAxis(ctx, ctx.int('axis', 0), s.length);
  const n = s[axis];
  const outs = ctx.node.outputs.length;
  let sizes = ctx.opset < 13 ? ctx.ints('split') : ctx.inputs[1] ? ctx.requireConst(1, 'split') : undefined;
  if (!sizes) {
    const num = ctx.opset >= 18 ? ctx.int('num_outputs') : undefined;
    if (num !== undefined) {
      if (num !== outs) ctx.fail(`num_outputs is ${num} but the node has ${outs} outputs`);
      const chunk = Math.ceil(n / num);
      sizes = Array.from({ length: num }, (_, i) => Math.max(0, Math.min(chunk, n - i * chunk)));
    } else {
      if (n % outs !== 0) ctx.fail(`axis ${axis} of size ${n} does not split evenly into ${outs} outputs`, 'SHAPE');
      sizes = new Array<number>(outs).fill(n / outs);
    }
  }
  if (sizes.length !== outs) ctx.fail(`split has ${sizes.length} sizes for ${outs} outputs`);
  if (sizes.some((x) => x < 0) || sizes.reduce((a, b) => a + b, 0) !== n)
    ctx.fail(`split sizes [${sizes.join(',')}] do not add up to ${n}, the size of axis ${axis}`, 'SHAPE');
  return { axis, sizes };
}

registerOp({
  opType: 'Split',
  infer(ctx) {
    const { axis, sizes } = splitSizes(ctx);
    const s = ctx.shapeOf(0);
    return sizes.map((k) => ({ dtype: ctx.input(0).dtype, shape: s.map((d, i) => (i === axis ? k : d)) }));
  },
  lower(ctx) {
    const { axis, sizes } = splitSizes(ctx);
    const s = ctx.shapeOf(0);
    const st = stridesOf(s);
    const ops: NativeOp[] = [];
    let at = 0;
    sizes.forEach((k, i) => {
      const o = ctx.node.outputs[i];
      if (o) ops.push(stridedCopy(ctx.node.inputs[0], o, s.map((d, j) => (j === axis ? k : d)), st, at * st[axis]));
      at += k;
    });
    return ops;
  },
});
