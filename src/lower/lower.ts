/**
 * Lowering: the inferred, optimized graph becomes the Plan. Every node whose outputs are not all
 * known at compile time lowers through its op's `lower` (default: one native op named after the ONNX
 * op); values become the tensor table (inputs, constants, activations, outputs).
 */
import { KilnError } from '../errors';
import { Graph, Node, describeNode, formatShape, isStatic, lookupValue } from '../ir/graph';
import { NativeOp, getOp, makeContext, nativeOps } from '../ops/registry';
import { Plan, PlanTensor } from './plan';

export function lowerGraph(g: Graph): Plan {
  const plan: Plan = { tensors: [], ops: [], inputs: [], outputs: [] };
  const index = new Map<string, number>();
  const outputs = new Set(g.outputs);
  const tensorOf = (name: string, where: string): number => {
    if (name === '') return -1;
    const have = index.get(name);
    if (have !== undefined) return have;
    const v = lookupValue(g, name);
    if (!v) throw new KilnError('INTERNAL', `${where}: value '${name}' is unknown`);
    if (!isStatic(v.shape))
      throw new KilnError('SHAPE', `${where}: value '${name}' has shape ${formatShape(v.shape)}; engines need static shapes — give symbolic input dims values with the 'shapes' option`);
    const t: PlanTensor = { name, dtype: v.dtype, shape: v.shape, kind: v.data ? 'constant' : outputs.has(name) ? 'output' : 'activation' };
    if (v.data) t.data = new Uint8Array(v.data.buffer, v.data.byteOffset, v.data.byteLength);
    const i = plan.tensors.push(t) - 1;
    index.set(name, i);
    return i;
  };
  for (const name of g.inputs) {
    const i = tensorOf(name, `graph input '${name}'`);
    plan.tensors[i].kind = 'input';
    plan.inputs.push(i);
  }
  g.nodes.forEach((node, k) => {
    const outs = node.outputs.filter((o) => o);
    if (outs.length && outs.every((o) => g.values.get(o)?.data)) return; // folded
    for (const op of lowerNode(g, node, k))
      plan.ops.push({
        kind: op.kind,
        name: node.name,
        inputs: op.inputs.map((n) => tensorOf(n, describeNode(node, k))),
        outputs: op.outputs.map((n) => tensorOf(n, describeNode(node, k))),
        attrs: op.attrs,
        origin: node.origin,
      });
  });
  for (const o of g.outputs) plan.outputs.push(tensorOf(o, `graph output '${o}'`));
  return plan;
}

export function lowerNode(g: Graph, node: Node, k: number): NativeOp[] {
  const def = getOp(node.domain, node.opType);
  if (!def) throw new KilnError('UNSUPPORTED', `${describeNode(node, k)}: no implementation`);
  const inputs = node.inputs.map((n) => (n === '' ? undefined : lookupValue(g, n)));
  const ctx = makeContext(node, g, g.opsets.get(node.domain) ?? 1, inputs);
  return nativeOps(def, ctx);
}

/**
 * A sub-graph (If branch, Loop/Scan body) as a self-contained Plan: its inputs are the body's formal
 * inputs followed by `extraInputs`, the values it reads from enclosing scopes (captures), which the
 * control-flow op passes in. Outer constants it reads become constants of the sub-plan.
 */
export function lowerSubgraph(g: Graph, extraInputs: string[]): Plan {
  return lowerGraph({ ...g, inputs: [...g.inputs, ...extraInputs] });
}

/**
 * Debugging (compile option `debug.exposeAll`): every activation a layer writes becomes an output of
 * the plan, after the graph's own outputs, so a run returns each intermediate value by its name.
 */
export function exposeIntermediates(plan: Plan): void {
  const outputs = new Set(plan.outputs);
  for (const op of plan.ops)
    for (const o of op.outputs) {
      if (o < 0 || outputs.has(o) || plan.tensors[o].kind !== 'activation') continue;
      plan.tensors[o].kind = 'output';
      plan.outputs.push(o);
      outputs.add(o);
    }
}
