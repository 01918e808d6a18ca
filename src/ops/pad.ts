/**
 * Pad: modes constant, reflect, edge and wrap (opset 19). Pads are attributes before opset 11
 * ('paddings' at opset 1) and a build-time-known input after, optionally over the listed axes
 * (opset 18); negative pads crop. The constant value is an attribute, or input 2, which may be known
 * only at run time. Native kind 'Pad' with pads as [begins…, ends…] over every dim.
 */
import { float, ints, str } from '../lower/plan';
import { numbersOf } from './constant';
import { OpContext, registerOp } from './registry';
import { normAxis } from './util';

interface PadSpec {
  pads: number[];
  mode: string;
  value: number;
  valueInput?: string;
}

function padSpec(ctx: OpContext): PadSpec {
  const s = ctx.shapeOf(0);
  const r = s.length;
  const mode = ctx.string('mode', 'constant');
  if (!['constant', 'reflect', 'edge', 'wrap'].includes(mode) || (mode === 'wrap' && ctx.opset < 19)) ctx.fail(`mode '${mode}' is not supported`);
  if (ctx.opset < 11) {
    const pads = (ctx.opset < 2 ? ctx.ints('paddings') : ctx.ints('pads')) ?? ctx.fail(`attribute 'pads' is required`);
    if (pads.length !== 2 * r) ctx.fail(`pads has ${pads.length} entries for rank ${r}`, 'SHAPE');
    return { pads, mode, value: ctx.float('value', 0) };
  }
  const raw = ctx.requireConst(1, 'pads');
  const axes = ctx.inputs[3] ? ctx.requireConst(3, 'axes').map((a) => normAxis(ctx, a, r)) : s.map((_, i) => i);
  if (raw.length !== 2 * axes.length) ctx.fail(`pads has ${raw.length} entries for ${axes.length} axes`, 'SHAPE');
  const pads = new Array<number>(2 * r).fill(0);
  axes.forEach((a, i) => {
    pads[a] = raw[i];
    pads[a + r] = raw[i + axes.length];
  });
  const spec: PadSpec = { pads, mode, value: 0 };
  if (ctx.inputs[2]) {
    const v = numbersOf(ctx.input(2));
    if (v) spec.value = v[0] ?? 0;
    else spec.valueInput = ctx.node.inputs[2];
  }
  return spec;
}

registerOp({
  opType: 'Pad',
  infer(ctx) {
    const s = ctx.shapeOf(0);
    const { pads } = padSpec(ctx);
    const out = s.map((d, i) => d + pads[i] + pads[i + s.length]);
    if (out.some((d) => d < 0)) ctx.fail(`pads [${pads.join(',')}] crop more than the input [${s.join(',')}] holds`, 'SHAPE');
    return [{ dtype: ctx.input(0).dtype, shape: out }];
  },
  lower(ctx) {
    const p = padSpec(ctx);
    const inputs = p.valueInput ? [ctx.node.inputs[0], p.valueInput] : [ctx.node.inputs[0]];
    return [{ kind: 'Pad', inputs, outputs: ctx.node.outputs, attrs: { pads: ints(p.pads), mode: str(p.mode), value: float(p.value) } }];
  },
});
