/**
 * ConvTranspose (1-D/2-D/3-D): group, dilations, strides, pads, output_padding, output_shape and
 * auto_pad, optional bias. W is [C, M/group, k...]. The output dims and the pads are resolved here
 * (output_shape and SAME_* give the pads by the spec's total_padding rule; pads may come out
 * negative, which the kernels handle); the native 'ConvTranspose' kind gets group, strides,
 * dilations, pads [begins..., ends...] and the `activation` slot.
 */
import { int, ints, str } from '../lower/plan';
import { Dim } from '../ir/graph';
import { OpContext, registerOp } from './registry';
import { convLikeInfer, spatialAttrs } from './conv';

function analyze(ctx: OpContext, x: Dim[], w: Dim[]) {
  if (x.length < 3 || x.length > 5) ctx.fail(`X must have rank 3 to 5 ([N, C, spatial...]), got [${x.join(',')}]`, 'SHAPE');
  if (w.length !== x.length) ctx.fail(`W [${w.join(',')}] must have the rank of X [${x.join(',')}]`, 'SHAPE');
  const r = x.length - 2;
  const a = spatialAttrs(ctx, r, w.slice(2));
  const spatial = x.slice(2);
  if (spatial.some((d) => typeof d !== 'number')) ctx.fail(`X needs static spatial dims, got [${x.join(',')}]`, 'SHAPE');
  const inDims = spatial as number[];
  if (typeof x[1] === 'number' && typeof w[0] === 'number' && x[1] !== w[0])
    ctx.fail(`X has ${x[1]} channels but W [${w.join(',')}] has ${w[0]} input channels`, 'SHAPE');
  if (typeof w[0] === 'number' && w[0] % a.group !== 0) ctx.fail(`W's ${w[0]} input channels are not divisible by group ${a.group}`, 'SHAPE');
  const M = typeof w[1] === 'number' ? w[1] * a.group : w[1];
  const outPad = ctx.ints('output_padding') ?? new Array(r).fill(0);
  if (outPad.length !== r) ctx.fail(`attribute 'output_padding' has ${outPad.length} values, the input has ${r} spatial dims`);
  let shapeAttr = ctx.ints('output_shape');
  if (shapeAttr && shapeAttr.length === r + 2) shapeAttr = shapeAttr.slice(2);
  if (shapeAttr && shapeAttr.length !== r) ctx.fail(`attribute 'output_shape' has ${shapeAttr.length} values, the input has ${r} spatial dims`);
  const pads = a.autoPad === 'NOTSET' && !shapeAttr ? [...a.pads] : new Array(2 * r).fill(0);
  const out = inDims.map((n, i) => {
    const dk = (a.kernel[i] - 1) * a.dilations[i] + 1;
    const full = a.strides[i] * (n - 1) + outPad[i] + dk;
    const target = shapeAttr ? shapeAttr[i] : a.autoPad === 'SAME_UPPER' || a.autoPad === 'SAME_LOWER' ? n * a.strides[i] : undefined;
    if (target !== undefined) {
      const total = full - target;
      const half = Math.floor(total / 2); // floor as the spec (Python //): negative totals pad the end
      pads[i] = a.autoPad === 'SAME_UPPER' ? half : total - half;
      pads[i + r] = total - pads[i];
    }
    const o = full - pads[i] - pads[i + r];
    if (o < 1) ctx.fail(`output spatial dim ${i} comes out ${o}; check pads, output_padding and output_shape`, 'SHAPE');
    return o;
  });
  return { a, M, out, pads };
}

registerOp({
  opType: 'ConvTranspose',
  infer: (ctx) => convLikeInfer(ctx, analyze),
  lower(ctx) {
    const { a, pads } = analyze(ctx, ctx.shapeOf(0), ctx.shapeOf(1));
    const ins = ctx.node.inputs.slice(0, 3);
    if (ins[2] === '') ins.pop();
    return [
      {
        kind: 'ConvTranspose',
        inputs: ins,
        outputs: [ctx.node.outputs[0]],
        attrs: { group: int(a.group), strides: ints(a.strides), dilations: ints(a.dilations), pads: ints(pads), activation: str('none') },
      },
    ];
  },
});
