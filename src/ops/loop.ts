/**
 * Loop: one native 'Loop' op whose body is a sub-plan taking (iteration number, condition, carried
 * values…, captures…) and giving (condition, carried values…, scan slices…). The trip count M and the
 * condition are read at run time. Engines are static-shape: loop-carried values must keep their shape
 * through the body, and scan outputs ([trip count, …slice]) need M known at build; a loop that stops
 * early while it has scan outputs is a run-time error.
 * A body whose shapes depend on the iteration number (a Slice at [i, i+1], say) cannot be one static
 * sub-plan: with M known at build (at most MAX_SPECIALIZED), the body is specialized per iteration
 * (attributes body, body_1 … body_{M-1}; the native op runs body_i at iteration i).
 */
import { DataType, dtypeName } from '../dtype';
import { KilnError } from '../errors';
import { Graph, Node, Value, describeNode, formatShape } from '../ir/graph';
import { PlanAttr, int, subplan } from '../lower/plan';
import { OpContext, OutputInfo, registerOp } from './registry';
import { BodyType, bodyPlan, captures, cloneGraph, graphAttr, inferBody, sameShape, scalarShape } from './subgraph';

/** Scan outputs above this many rows would make engines huge: refuse at build. */
const MAX_SCAN_TRIPS = 1 << 24;
/** Bodies specialized per iteration: at most this many. */
const MAX_SPECIALIZED = 64;

/** Per-iteration bodies of the Loop nodes that needed them (set by infer, read by lower). */
const specialized = new WeakMap<Node, Graph[]>();

function bodyTypes(ctx: OpContext, body: Graph, nCarried: number, iter?: number): BodyType[] {
  const iterShape = scalarShape(body.values.get(body.inputs[0]));
  const condShape = scalarShape(body.values.get(body.inputs[1]));
  const carried = Array.from({ length: nCarried }, (_, k) => ({ dtype: ctx.input(2 + k).dtype, shape: ctx.shapeOf(2 + k) }));
  const it: BodyType = { dtype: DataType.INT64, shape: iterShape };
  if (iter !== undefined) it.data = BigInt64Array.of(BigInt(iter));
  return [it, { dtype: DataType.BOOL, shape: condShape }, ...carried];
}

/** Checks one inferred body against the node; returns the scan slices' values. */
function checkBody(ctx: OpContext, outs: Value[], nCarried: number): Value[] {
  const nScan = outs.length - 1 - nCarried;
  if (nScan < 0) ctx.fail(`the body gives ${outs.length} outputs; it needs the condition and ${nCarried} carried values`);
  if (ctx.node.outputs.length > nCarried + nScan)
    ctx.fail(`the node has ${ctx.node.outputs.length} outputs but the body gives ${nCarried} carried values and ${nScan} scan outputs`);
  if (outs[0].dtype !== DataType.BOOL || scalarShape(outs[0]).length !== outs[0].shape!.length)
    ctx.fail(`the body's first output ('${outs[0].name}') must be a one-element bool condition`);
  for (let k = 0; k < nCarried; k++) {
    const t = ctx.input(2 + k);
    const o = outs[1 + k];
    if (o.dtype !== t.dtype) ctx.fail(`loop-carried value ${k} enters as ${dtypeName(t.dtype)} but the body gives ${dtypeName(o.dtype)}`);
    if (!sameShape(o.shape!, ctx.shapeOf(2 + k)))
      ctx.fail(
        `loop-carried value ${k} ('${ctx.node.inputs[2 + k]}') enters with shape ${formatShape(t.shape)} but the body gives ${formatShape(o.shape)}; static-shape engines need loop-carried values to keep their shape`,
        'SHAPE',
      );
  }
  return outs.slice(1 + nCarried);
}

function tripCount(ctx: OpContext, why: string): number {
  if (!ctx.inputs[0]) ctx.fail(`has no trip count M; ${why}`, 'UNSUPPORTED');
  return Math.max(0, ctx.requireConst(0, `M (trip count; ${why})`)[0]);
}

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
    specialized.delete(ctx.node);
    let scans: Value[] = [];
    let generic: Value[] | undefined;
    try {
      generic = inferBody(ctx, 'body', body, bodyTypes(ctx, body, nCarried));
    } catch (e) {
      // Shapes in the body that depend on the iteration number: specialize the body per iteration.
      if (!(e instanceof KilnError) || e.code !== 'SHAPE' || !m || (e.value !== undefined && e.value === m.name)) throw e;
      const trips = tripCount(ctx, 'the body needs values that depend on the iteration number, so kiln specializes it per iteration');
      if (trips < 1 || trips > MAX_SPECIALIZED) throw e;
      const bodies = Array.from({ length: trips }, () => cloneGraph(body));
      const all = bodies.map((b, i) => checkBody(ctx, inferBody(ctx, `body (iteration ${i})`, b, bodyTypes(ctx, b, nCarried, i)), nCarried));
      all.forEach((s, i) =>
        s.forEach((v, k) => {
          if (v.dtype !== all[0][k].dtype || !sameShape(v.shape!, all[0][k].shape!))
            ctx.fail(`scan output ${k} has shape ${formatShape(all[0][k].shape)} at iteration 0 but ${formatShape(v.shape)} at iteration ${i}`, 'SHAPE');
        }),
      );
      specialized.set(ctx.node, bodies);
      scans = all[0];
    }
    if (generic) scans = checkBody(ctx, generic, nCarried);
    let trips = 0;
    if (scans.length > 0) {
      trips = tripCount(ctx, `it sizes the ${scans.length} scan outputs, and static-shape engines need it known at build`);
      if (trips > MAX_SCAN_TRIPS) ctx.fail(`trip count ${trips} is too large for scan outputs (at most ${MAX_SCAN_TRIPS})`, 'UNSUPPORTED');
    }
    const outs: OutputInfo[] = [];
    for (let k = 0; k < nCarried; k++) outs.push({ dtype: ctx.input(2 + k).dtype, shape: ctx.shapeOf(2 + k) });
    for (const s of scans) outs.push({ dtype: s.dtype, shape: [trips, ...(s.shape as number[])] });
    return outs;
  },
  lower(ctx) {
    const bodies = specialized.get(ctx.node) ?? [graphAttr(ctx, 'body')];
    const caps = captures(ctx, bodies);
    const attrs: Record<string, PlanAttr> = { n_carried: int(ctx.node.inputs.length - 2), specialized: int(specialized.has(ctx.node)), n_bodies: int(bodies.length) };
    bodies.forEach((b, i) => (attrs[i === 0 ? 'body' : `body_${i}`] = subplan(bodyPlan(b, caps))));
    return [{ kind: 'Loop', inputs: [...ctx.node.inputs, ...caps], outputs: ctx.node.outputs, attrs }];
  },
});
