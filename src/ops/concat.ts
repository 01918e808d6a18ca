/** Concat: the inputs joined along `axis` (native 'Concat'; a single input is a 'Copy'). */
import { Dim } from '../ir/graph';
import { int } from '../lower/plan';
import { OpContext, registerOp } from './registry';
import { normAxis, rankedShape } from './util';

function concatAxis(ctx: OpContext): number {
  const rank = rankedShape(ctx, 0).length;
  const a = ctx.int('axis', ctx.opset < 4 ? 1 : NaN);
  if (Number.isNaN(a)) ctx.fail(`attribute 'axis' is required`);
  return normAxis(ctx, a, rank);
}

registerOp({
  opType: 'Concat',
  infer(ctx) {
    const axis = concatAxis(ctx);
    const shapes = ctx.inputs.map((_, i) => rankedShape(ctx, i));
    const out: Dim[] = [...shapes[0]];
    let total: Dim = 0;
    shapes.forEach((s, i) => {
      if (s.length !== out.length) ctx.fail(`input ${i} has rank ${s.length}, input 0 has rank ${out.length}`, 'SHAPE');
      if (ctx.input(i).dtype !== ctx.input(0).dtype) ctx.fail(`input ${i} has another element type than input 0`);
      s.forEach((d, k) => {
        if (k !== axis && typeof d === 'number' && typeof out[k] === 'number' && d !== out[k])
          ctx.fail(`input ${i} [${s.join(',')}] does not match input 0 [${shapes[0].join(',')}] outside axis ${axis}`, 'SHAPE');
      });
      total = typeof total === 'number' && typeof s[axis] === 'number' ? total + (s[axis] as number) : `${ctx.node.outputs[0]}_dim${axis}`;
    });
    out[axis] = total;
    return [{ dtype: ctx.input(0).dtype, shape: out }];
  },
  lower(ctx) {
    const ins = ctx.node.inputs.filter((n) => n !== '');
    if (ins.length === 1) return [{ kind: 'Copy', inputs: ins, outputs: ctx.node.outputs, attrs: {} }];
    return [{ kind: 'Concat', inputs: ins, outputs: ctx.node.outputs, attrs: { axis: int(concatAxis(ctx)) } }];
  },
});
