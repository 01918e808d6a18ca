/**
 * Loop: one native 'Loop' op whose body is a sub-plan taking (iteration number, condition, carried
 * values…, captures…) and giving (condition, carried values…, scan slices…). The trip count M and the
 * condition are read at run time. Engines are static-shape: loop-carried values must keep their shape
 * through the body, and scan outputs ([trip count, …slice]) need M known at build; a loop that stops
 * early while it has scan outputs is a run-time error.
 */
import { DataType, dtypeName } from '../dtype';
import { formatShape } from '../ir/graph';
import { int, subplan } from '../lower/plan';
import { registerOp } from './registry';
import { bodyPlan, captures, graphAttr, inferBody, sameShape, scalarShape } from './subgraph';

/** Scan outputs above this many rows would make engines huge: refuse at build. */
const MAX_SCAN_TRIPS = 1 << 24;

registerOp({
  opType: 'Loop',
  foldable: false,
  infer(ctx) {
    const body = graphAttr(ctx, 'body');
    const nCarried = ctx.node.inputs.length - 2;
    if (nCarried < 0) ctx.fail('needs inputs M and cond (either may be empty)');
    const m = ctx.inputs[0];
    if (m && m.dtype !== DataType.INT64) ctx.fail(`trip count M ('${m.name}') must be int64, got ${dtypeName(m.dtype)}`);
    const c = ctx.inputs[1];
    if (c && c.dtype !== DataType.BOOL) ctx.fail(`condition ('${c.name}') must be bool, got ${dtypeName(c.dtype)}`);
    const carried = Array.from({ length: nCarried }, (_, k) => ({ dtype: ctx.input(2 + k).dtype, shape: ctx.shapeOf(2 + k) }));
    const iterShape = scalarShape(body.values.get(body.inputs[0]));
    const condShape = scalarShape(body.values.get(body.inputs[1]));
    const outs = inferBody(ctx, 'body', body, [{ dtype: DataType.INT64, shape: iterShape }, { dtype: DataType.BOOL, shape: condShape }, ...carried]);
    const nScan = outs.length - 1 - nCarried;
    if (nScan < 0) ctx.fail(`the body gives ${outs.length} outputs; it needs the condition and ${nCarried} carried values`);
    if (ctx.node.outputs.length > nCarried + nScan)
      ctx.fail(`the node has ${ctx.node.outputs.length} outputs but the body gives ${nCarried} carried values and ${nScan} scan outputs`);
    if (outs[0].dtype !== DataType.BOOL || scalarShape(outs[0]).length !== outs[0].shape!.length)
      ctx.fail(`the body's first output ('${outs[0].name}') must be a one-element bool condition`);
    carried.forEach((t, k) => {
      const o = outs[1 + k];
      if (o.dtype !== t.dtype) ctx.fail(`loop-carried value ${k} enters as ${dtypeName(t.dtype)} but the body gives ${dtypeName(o.dtype)}`);
      if (!sameShape(o.shape!, t.shape))
        ctx.fail(
          `loop-carried value ${k} ('${ctx.node.inputs[2 + k]}') enters with shape ${formatShape(t.shape)} but the body gives ${formatShape(o.shape)}; static-shape engines need loop-carried values to keep their shape`,
          'SHAPE',
        );
    });
    let trips = 0;
    if (nScan > 0) {
      if (!m)
        ctx.fail(`has ${nScan} scan outputs but no trip count M; static-shape engines need M known at build for scan outputs`, 'UNSUPPORTED');
      const mv = ctx.requireConst(0, 'M (trip count, which sizes the scan outputs)');
      trips = Math.max(0, mv[0]);
      if (trips > MAX_SCAN_TRIPS) ctx.fail(`trip count ${trips} is too large for scan outputs (at most ${MAX_SCAN_TRIPS})`, 'UNSUPPORTED');
    }
    return [
      ...carried.map((t) => ({ dtype: t.dtype, shape: t.shape })),
      ...outs.slice(1 + nCarried).map((o) => ({ dtype: o.dtype, shape: [trips, ...(o.shape as number[])] })),
    ];
  },
  lower(ctx) {
    const body = graphAttr(ctx, 'body');
    const caps = captures(ctx, [body]);
    return [
      {
        kind: 'Loop',
        inputs: [...ctx.node.inputs, ...caps],
        outputs: ctx.node.outputs,
        attrs: { body: subplan(bodyPlan(body, caps)), n_carried: int(ctx.node.inputs.length - 2) },
      },
    ];
  },
});
