/**
 * kiln:Elementwise — a chain of element-wise ops fused by the optimizer (src/passes/elementwise-fusion.ts)
 * into one layer, lowered to the native 'Elementwise' kind (native/cpu/elementwise.cc): one loop over the
 * output instead of one pass per op. Attributes: 'ops' (strings, "u:<Unary op>" or "b:<Binary op>"),
 * 'args' (ints, two per instruction: an input index >= 0, the result of instruction k as -(k+1), or
 * -1000 for none), 'params' (floats, alpha/beta/gamma per instruction), 'kiln.shape' and 'kiln.dtype'
 * (the output's, fixed when the chain was fused).
 */
import { floats, ints, str } from '../lower/plan';
import { fixedOutput, registerOp } from './registry';

registerOp({
  opType: 'Elementwise',
  domain: 'kiln',
  infer: fixedOutput,
  lower(ctx) {
    const a = ctx.attr('ops');
    const ops = a?.type === 'strings' ? a.value : [];
    return [
      {
        kind: 'Elementwise',
        inputs: ctx.node.inputs,
        outputs: ctx.node.outputs,
        attrs: { ops: str(ops.join(',')), args: ints(ctx.ints('args') ?? []), params: floats(ctx.floats('params') ?? []) },
      },
    ];
  },
});
