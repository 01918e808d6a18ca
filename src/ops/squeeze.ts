/**
 * Squeeze and Unsqueeze: axes are an attribute before opset 13 and a build-time-known input after
 * (Squeeze without axes drops every dim of size 1). Byte copies: native 'Copy'.
 */
import { Dim } from '../ir/graph';
import { OpContext, registerOp } from './registry';
import { copyOp } from './reshape';
import { normAxis, rankedShape } from './util';

function axes(ctx: OpContext, rank: number, required: boolean): number[] | undefined {
  const raw = ctx.opset < 13 ? ctx.ints('axes') : ctx.inputs[1] ? ctx.requireConst(1, 'axes') : undefined;
  if (!raw) return required ? ctx.fail(`axes are required`) : undefined;
  const norm = raw.map((a) => normAxis(ctx, a, rank));
  if (new Set(norm).size !== norm.length) ctx.fail(`axes [${raw.join(',')}] repeat an axis`, 'SHAPE');
  return norm;
}

registerOp({
  opType: 'Squeeze',
  infer(ctx) {
    const s = rankedShape(ctx, 0);
    const ax = axes(ctx, s.length, false);
    let out: Dim[];
    if (ax) {
      for (const a of ax) if (s[a] !== 1 && typeof s[a] === 'number') ctx.fail(`cannot squeeze axis ${a} of size ${s[a]} (input [${s.join(',')}])`, 'SHAPE');
      out = s.filter((_, i) => !ax.includes(i));
    } else {
      if (s.some((d) => typeof d !== 'number')) ctx.shapeOf(0);
      out = s.filter((d) => d !== 1);
    }
    return [{ dtype: ctx.input(0).dtype, shape: out }];
  },
  lower: (ctx) => [copyOp(ctx)],
});

registerOp({
  opType: 'Unsqueeze',
  infer(ctx) {
    const s = rankedShape(ctx, 0);
    const n = ctx.opset < 13 ? ctx.ints('axes')?.length ?? 0 : ctx.inputs[1] ? ctx.requireConst(1, 'axes').length : 0;
    const ax = axes(ctx, s.length + n, true)!;
    const out: Dim[] = [];
    let k = 0;
    for (let i = 0; i < s.length + ax.length; i++) out.push(ax.includes(i) ? 1 : s[k++]);
    return [{ dtype: ctx.input(0).dtype, shape: out }];
  },
  lower: (ctx) => [copyOp(ctx)],
});
