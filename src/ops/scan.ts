/**
 * Scan: one native 'Scan' op whose body is a sub-plan taking (states…, scan slices…, captures…) and
 * giving (states…, scan output slices…). Opset 9+: scan inputs are sliced along scan_input_axes in
 * scan_input_directions; scan outputs are stacked along scan_output_axes in scan_output_directions.
 * Opset 8: every input has a leading batch dim the body does not see, the scan axis is 1, and the first
 * input is the optional sequence_lens (per batch item; the rest of its scan outputs are zeros).
 * States must keep their shape through the body (static-shape engines).
 */
import { DataType, dtypeName } from '../dtype';
import { formatShape, lookupValue } from '../ir/graph';
import { int, ints, subplan } from '../lower/plan';
import { OpContext, registerOp } from './registry';
import { bodyPlan, captures, graphAttr, inferBody, sameShape } from './subgraph';
import { normAxis } from './util';

interface Layout {
  batched: boolean;
  first: number; // index of the first state input
  nState: number;
  nScan: number;
  inAxes: number[]; // scan axis of each scan input, in the outer tensor
  inRev: number[];
  T: number;
  B: number;
}

function layout(ctx: OpContext): Layout {
  const batched = ctx.opset < 9;
  const nScan = ctx.int('num_scan_inputs');
  if (nScan === undefined || nScan < 1) ctx.fail('attribute num_scan_inputs (>= 1) is required');
  const first = batched ? 1 : 0;
  const nState = ctx.node.inputs.length - first - nScan;
  if (nState < 0) ctx.fail(`has ${ctx.node.inputs.length - first} inputs, fewer than num_scan_inputs = ${nScan}`);
  const dirs = ctx.ints(batched ? 'directions' : 'scan_input_directions') ?? Array(nScan).fill(0);
  if (dirs.length !== nScan) ctx.fail(`scan input directions has ${dirs.length} entries for ${nScan} scan inputs`);
  const rawAxes = batched ? Array(nScan).fill(1) : ctx.ints('scan_input_axes') ?? Array(nScan).fill(0);
  if (rawAxes.length !== nScan) ctx.fail(`scan_input_axes has ${rawAxes.length} entries for ${nScan} scan inputs`);
  let T = -1;
  const inAxes = rawAxes.map((a, j) => {
    const shape = ctx.shapeOf(first + nState + j);
    const ax = normAxis(ctx, a, shape.length, `scan input ${j} axis`);
    if (T >= 0 && shape[ax] !== T) ctx.fail(`scan inputs have different sequence lengths (${T} and ${shape[ax]})`, 'SHAPE');
    T = shape[ax];
    return ax;
  });
  let B = 1;
  if (batched) {
    B = ctx.shapeOf(first + nState)[0];
    for (let k = 0; k < nState + nScan; k++)
      if (ctx.shapeOf(first + k)[0] !== B) ctx.fail(`input ${first + k} has batch size ${ctx.shapeOf(first + k)[0]}, expected ${B}`, 'SHAPE');
  }
  return { batched, first, nState, nScan, inAxes, inRev: dirs.map((d) => (d ? 1 : 0)), T, B };
}

function outAxes(ctx: OpContext, L: Layout, sliceRanks: number[]): { axes: number[]; rev: number[] } {
  const K = sliceRanks.length;
  if (L.batched) return { axes: Array(K).fill(1), rev: Array(K).fill(0) };
  const raw = ctx.ints('scan_output_axes') ?? Array(K).fill(0);
  const dirs = ctx.ints('scan_output_directions') ?? Array(K).fill(0);
  if (raw.length !== K || dirs.length !== K) ctx.fail(`scan_output_axes/directions need ${K} entries`);
  return { axes: raw.map((a, k) => normAxis(ctx, a, sliceRanks[k] + 1, `scan output ${k} axis`)), rev: dirs.map((d) => (d ? 1 : 0)) };
}

registerOp({
  opType: 'Scan',
  foldable: false,
  infer(ctx) {
    const L = layout(ctx);
    if (L.batched && ctx.inputs[0] && ctx.inputs[0].dtype !== DataType.INT64)
      ctx.fail(`sequence_lens must be int64, got ${dtypeName(ctx.inputs[0].dtype)}`);
    const strip = (s: number[]) => (L.batched ? s.slice(1) : s);
    const states = Array.from({ length: L.nState }, (_, k) => ({ dtype: ctx.input(L.first + k).dtype, shape: strip(ctx.shapeOf(L.first + k)) }));
    const slices = L.inAxes.map((ax, j) => {
      const i = L.first + L.nState + j;
      return { dtype: ctx.input(i).dtype, shape: ctx.shapeOf(i).filter((_, d) => d !== ax).slice(L.batched ? 1 : 0) };
    });
    const outs = inferBody(ctx, 'body', graphAttr(ctx, 'body'), [...states, ...slices]);
    const K = outs.length - L.nState;
    if (K < 0) ctx.fail(`the body gives ${outs.length} outputs, fewer than its ${L.nState} states`);
    states.forEach((t, k) => {
      const o = outs[k];
      if (o.dtype !== t.dtype || !sameShape(o.shape!, t.shape))
        ctx.fail(
          `state ${k} ('${ctx.node.inputs[L.first + k]}') enters as ${dtypeName(t.dtype)}${formatShape(t.shape)} but the body gives ${dtypeName(o.dtype)}${formatShape(o.shape)}; static-shape engines need states to keep their shape`,
          'SHAPE',
        );
    });
    const scanOuts = outs.slice(L.nState);
    const { axes } = outAxes(ctx, L, scanOuts.map((o) => o.shape!.length));
    const batch = (s: number[]) => (L.batched ? [L.B, ...s] : s);
    return [
      ...states.map((t) => ({ dtype: t.dtype, shape: batch(t.shape) })),
      ...scanOuts.map((o, k) => {
        const s = [...(o.shape as number[])];
        s.splice(axes[k] - (L.batched ? 1 : 0), 0, L.T);
        return { dtype: o.dtype, shape: batch(s) };
      }),
    ];
  },
  lower(ctx) {
    const L = layout(ctx);
    const body = graphAttr(ctx, 'body');
    const caps = captures(ctx, [body]);
    const scanOuts = body.outputs.slice(L.nState);
    const { axes, rev } = outAxes(
      ctx,
      L,
      scanOuts.map((o) => lookupValue(body, o)?.shape?.length ?? 0),
    );
    const seq = L.batched ? ctx.node.inputs[0] : '';
    return [
      {
        kind: 'Scan',
        inputs: [seq, ...ctx.node.inputs.slice(L.first), ...caps],
        outputs: ctx.node.outputs,
        attrs: {
          body: subplan(bodyPlan(body, caps)),
          n_state: int(L.nState),
          n_scan: int(L.nScan),
          batched: int(L.batched),
          in_axes: ints(L.inAxes),
          in_rev: ints(L.inRev),
          out_axes: ints(axes),
          out_rev: ints(rev),
        },
      },
    ];
  },
});
