/**
 * Shape and type inference, with constant folding on the way: nodes are visited in topological
 * order; each op's `infer` gives its outputs' dtypes and shapes (and contents, for the shape arithmetic
 * TS evaluates itself); a node whose inputs are all known is then folded by running its own lowering
 * through the native CPU kernels, so no op is written twice.
 */
import { DataType, byteSize, dtypeName, isSupported, viewAs } from '../dtype';
import { KilnError } from '../errors';
import { getOp, makeContext, nativeOps } from '../ops/registry';
import { native, call } from '../native/binding';
import { encodePlan, Plan, PlanTensor } from '../lower/plan';
import { Graph, Node, Value, describeNode, elementCount, formatShape, isStatic, lookupValue } from './graph';

/** Folding stops above this many output elements (keeps engines small; the kernels run at infer). */
export const FOLD_LIMIT = 1 << 22;

export interface InferStats {
  folded: string[];
}

export function topoSort(g: Graph): Node[] {
  const producer = new Map<string, Node>();
  for (const n of g.nodes) for (const o of n.outputs) if (o) producer.set(o, n);
  const state = new Map<Node, number>();
  const order: Node[] = [];
  const visit = (n: Node): void => {
    const s = state.get(n);
    if (s === 2) return;
    if (s === 1) throw new KilnError('INVALID_MODEL', `${describeNode(n)}: the graph has a cycle through this node`);
    state.set(n, 1);
    for (const i of nodeReads(n)) {
      const p = producer.get(i);
      if (p) visit(p);
    }
    state.set(n, 2);
    order.push(n);
  };
  for (const n of g.nodes) visit(n);
  return order;
}

/** Every value a node reads: its inputs and the outer-scope names its sub-graphs read. */
export function nodeReads(n: Node): string[] {
  const out = n.inputs.filter((i) => i !== '');
  for (const a of n.attrs.values()) {
    const gs = a.type === 'graph' ? [a.value] : a.type === 'graphs' ? a.value : [];
    for (const g of gs) out.push(...outerReads(g));
  }
  return out;
}

/** Names a sub-graph reads from enclosing scopes. */
export function outerReads(g: Graph): string[] {
  const local = new Set<string>([...g.inputs]);
  for (const [k, v] of g.values) if (v.data) local.add(k);
  for (const n of g.nodes) for (const o of n.outputs) local.add(o);
  const out = new Set<string>();
  for (const n of g.nodes) for (const r of nodeReads(n)) if (!local.has(r)) out.add(r);
  return [...out];
}

/** Infers every value of `g` (its inputs must be typed and shaped), folding what can be folded. */
export function inferGraph(g: Graph, stats: InferStats = { folded: [] }, fold = true): InferStats {
  g.nodes = topoSort(g);
  g.nodes.forEach((node, index) => inferNode(g, node, index, stats, fold));
  for (const o of g.outputs) {
    const v = lookupValue(g, o);
    if (!v || v.dtype === DataType.UNDEFINED)
      throw new KilnError('INVALID_MODEL', `graph output '${o}' is not produced by any node, input or initializer`);
  }
  return stats;
}

function inferNode(g: Graph, node: Node, index: number, stats: InferStats, fold: boolean): void {
  const def = getOp(node.domain, node.opType);
  if (!def)
    throw new KilnError('UNSUPPORTED', `${describeNode(node, index)}: kiln has no implementation of ${node.domain ? node.domain + ':' : ''}${node.opType} yet (see docs/ops.md for the supported ops)`);
  const inputs = node.inputs.map((name) => {
    if (name === '') return undefined;
    const v = lookupValue(g, name);
    if (!v || v.dtype === DataType.UNDEFINED)
      throw new KilnError('INVALID_MODEL', `${describeNode(node, index)}: input '${name}' is not produced by any node, input or initializer`);
    return v;
  });
  const opset = g.opsets.get(node.domain) ?? 1;
  const ctx = makeContext(node, g, opset, inputs);
  const outs = def.infer(ctx);
  node.outputs.forEach((name, i) => {
    if (!name) return;
    const info = outs[i];
    if (!info) {
      if (i < outs.length || ctx.node.outputs.length > outs.length) ctx.fail(`output ${i} ('${name}') is not supported`, 'UNSUPPORTED');
      return;
    }
    if (!isSupported(info.dtype)) ctx.fail(`output '${name}' would have element type ${dtypeName(info.dtype)}, which kiln does not support`, 'UNSUPPORTED');
    const v: Value = { name, dtype: info.dtype, shape: info.shape };
    if (info.data) v.data = info.data;
    g.values.set(name, v);
  });
  if (!fold || def.foldable === false) return;
  const outVals = node.outputs.filter((o) => o).map((o) => g.values.get(o)!);
  if (outVals.every((v) => v.data)) {
    stats.folded.push(node.name);
    return;
  }
  const present = inputs.filter((v): v is Value => v !== undefined);
  const hasSubgraph = [...node.attrs.values()].some((a) => a.type === 'graph' || a.type === 'graphs');
  if (hasSubgraph || !present.every((v) => v.data)) return;
  if (!outVals.every((v) => isStatic(v.shape) && elementCount(v.shape) <= FOLD_LIMIT)) return;
  foldNode(g, node, ctx, outVals);
  stats.folded.push(node.name);
}

function foldNode(g: Graph, node: Node, ctx: ReturnType<typeof makeContext>, outVals: Value[]): void {
  const def = getOp(node.domain, node.opType)!;
  const nops = nativeOps(def, ctx);
  const plan: Plan = { tensors: [], ops: [], inputs: [], outputs: [] };
  const index = new Map<string, number>();
  const tensorOf = (name: string): number => {
    if (name === '') return -1;
    let i = index.get(name);
    if (i !== undefined) return i;
    const v = lookupValue(g, name);
    if (!v || !isStatic(v.shape)) ctx.fail(`internal: folding needs '${name}' with a static shape (got ${formatShape(v?.shape)})`);
    const t: PlanTensor = { name, dtype: v.dtype, shape: v.shape as number[], kind: v.data ? 'constant' : 'activation' };
    if (v.data) t.data = new Uint8Array(v.data.buffer, v.data.byteOffset, v.data.byteLength);
    i = plan.tensors.push(t) - 1;
    index.set(name, i);
    return i;
  };
  for (const op of nops)
    plan.ops.push({ kind: op.kind, name: node.name, inputs: op.inputs.map(tensorOf), outputs: op.outputs.map(tensorOf), attrs: op.attrs, origin: node.origin });
  for (const v of outVals) {
    const i = tensorOf(v.name);
    plan.tensors[i].kind = 'output';
    plan.outputs.push(i);
  }
  const results = call(() => native().runPlan(encodePlan(plan), []));
  outVals.forEach((v, i) => {
    v.data = viewAs(v.dtype, new Uint8Array(results[i], 0, elementCount(v.shape!) * byteSize(v.dtype)));
  });
}
