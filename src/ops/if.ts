/**
 * If: one native 'If' op whose branches are sub-plans (attributes then_branch, else_branch) taking the
 * same captures; the condition is read at run time. Engines are static-shape, so both branches must
 * give outputs of the same types and shapes. A condition known at build lowers only the taken branch
 * (the other need not even infer), and folds away when that branch's outputs are all known.
 */
import { DataType, dtypeName } from '../dtype';
import { formatShape } from '../ir/graph';
import { subplan } from '../lower/plan';
import { registerOp } from './registry';
import { bodyPlan, captures, graphAttr, inferBody, sameShape } from './subgraph';

registerOp({
  opType: 'If',
  foldable: false,
  infer(ctx) {
    const cond = ctx.input(0);
    if (cond.dtype !== DataType.BOOL) ctx.fail(`condition '${cond.name}' must be bool, got ${dtypeName(cond.dtype)}`);
    const known = ctx.constValues(0);
    if (known) {
      if (known.length !== 1) ctx.fail(`condition '${cond.name}' must have one element, got ${known.length}`, 'SHAPE');
      const name = known[0] ? 'then_branch' : 'else_branch';
      return inferBody(ctx, name, graphAttr(ctx, name), []).map((v) => ({ dtype: v.dtype, shape: v.shape!, data: v.data }));
    }
    const thenOut = inferBody(ctx, 'then_branch', graphAttr(ctx, 'then_branch'), []);
    const elseOut = inferBody(ctx, 'else_branch', graphAttr(ctx, 'else_branch'), []);
    if (thenOut.length !== elseOut.length)
      ctx.fail(`then_branch has ${thenOut.length} outputs but else_branch has ${elseOut.length}`);
    if (ctx.node.outputs.length > thenOut.length)
      ctx.fail(`the node has ${ctx.node.outputs.length} outputs but its branches give ${thenOut.length}`);
    return thenOut.map((t, i) => {
      const e = elseOut[i];
      if (t.dtype !== e.dtype)
        ctx.fail(`output ${i}: then_branch gives ${dtypeName(t.dtype)} but else_branch gives ${dtypeName(e.dtype)}`);
      if (!sameShape(t.shape!, e.shape!))
        ctx.fail(
          `output ${i}: then_branch gives shape ${formatShape(t.shape)} but else_branch gives ${formatShape(e.shape)}; static-shape engines need both branches of an If whose condition is known only at run time to give the same shapes`,
          'SHAPE',
        );
      return { dtype: t.dtype, shape: t.shape! };
    });
  },
  lower(ctx) {
    const known = ctx.constValues(0);
    const thenG = graphAttr(ctx, 'then_branch');
    const elseG = graphAttr(ctx, 'else_branch');
    const [a, b] = known ? (known[0] ? [thenG, thenG] : [elseG, elseG]) : [thenG, elseG];
    const caps = captures(ctx, a === b ? [a] : [a, b]);
    const pa = bodyPlan(a, caps);
    const pb = a === b ? pa : bodyPlan(b, caps);
    return [
      {
        kind: 'If',
        inputs: [ctx.node.inputs[0], ...caps],
        outputs: ctx.node.outputs,
        attrs: { then_branch: subplan(pa), else_branch: subplan(pb) },
      },
    ];
  },
});
