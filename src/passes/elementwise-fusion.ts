/**
 * Element-wise fusion.
 * Before: a connected run of element-wise nodes (the Unary and Binary families, broadcasting allowed)
 *         whose intermediate values each have a single reader inside the run.
 * After:  one kiln:Elementwise node (src/ops/fused-elementwise.ts) computing the whole run in one loop;
 *         its inputs are the run's outside inputs, its program the nodes' own lowerings.
 * Handles: float32 only; ops that lower to exactly one native Unary or Binary op of two operands
 *          (comparisons and bool logic stay out, as does Clip with run-time bounds); a run's root is a
 *          node whose output leaves the run; runs of one node are left alone.
 */
import { DataType } from '../dtype';
import { Graph, Node, lookupValue } from '../ir/graph';
import { NativeOp, getOp, makeContext } from '../ops/registry';
import { Uses } from './match';
import { Pass } from './pass';

const BINARY = new Set(['Add', 'Sub', 'Mul', 'Div', 'Pow', 'Max', 'Min']);
const UNARY_EXCLUDED = new Set(['IsNaN', 'IsInf', 'Not', 'BitwiseNot']);
const NONE = -1000;

/** The node's single native op when it can join a fused run, else undefined. */
function fusible(g: Graph, n: Node): NativeOp | undefined {
  const def = getOp(n.domain, n.opType);
  if (!def?.lower || n.outputs.filter((o) => o).length !== 1) return undefined;
  const values = n.inputs.map((i) => (i ? lookupValue(g, i) : undefined));
  const out = g.values.get(n.outputs[0]);
  if (!out || out.dtype !== DataType.FLOAT || out.data || values.some((v) => !v || v.dtype !== DataType.FLOAT)) return undefined;
  let ops: NativeOp[];
  try {
    ops = def.lower(makeContext(n, g, g.opsets.get(n.domain) ?? 1, values));
  } catch {
    return undefined;
  }
  if (ops.length !== 1) return undefined;
  const op = ops[0];
  const name = op.attrs.op?.t === 's' ? op.attrs.op.v : '';
  if (op.kind === 'Unary' && op.inputs.length === 1 && !UNARY_EXCLUDED.has(name)) return op;
  if (op.kind === 'Binary' && op.inputs.length === 2 && BINARY.has(name)) return op;
  return undefined;
}

export const elementwiseFusion: Pass = {
  name: 'elementwise-fusion',
  run(g: Graph) {
    const changed: string[] = [];
    const u = new Uses(g);
    const native = new Map<Node, NativeOp>();
    for (const n of g.nodes) {
      const op = fusible(g, n);
      if (op) native.set(n, op);
    }
    const taken = new Set<Node>();
    const replace = new Map<Node, Node>();
    // Roots from the end: a root's run absorbs fusible producers read only by the run.
    for (let r = g.nodes.length - 1; r >= 0; r--) {
      const root = g.nodes[r];
      if (!native.has(root) || taken.has(root)) continue;
      const run = new Set<Node>([root]);
      const grow = (n: Node) => {
        for (const i of n.inputs) {
          const p = u.producer.get(i);
          if (!p || run.has(p) || taken.has(p) || !native.has(p) || !u.singleUse(i)) continue;
          run.add(p);
          grow(p);
        }
      };
      grow(root);
      if (run.size < 2) continue;
      const order = g.nodes.filter((n) => run.has(n)); // topological
      const inputs: string[] = [];
      const result = new Map<string, number>(); // value → instruction index
      const ops: string[] = [];
      const args: number[] = [];
      const params: number[] = [];
      const ref = (v: string): number => {
        const k = result.get(v);
        if (k !== undefined) return -(k + 1);
        let i = inputs.indexOf(v);
        if (i < 0) i = inputs.push(v) - 1;
        return i;
      };
      for (const n of order) {
        const op = native.get(n)!;
        const name = (op.attrs.op as { v: string }).v;
        ops.push(`${op.kind === 'Unary' ? 'u' : 'b'}:${name}`);
        args.push(ref(op.inputs[0]), op.inputs[1] !== undefined ? ref(op.inputs[1]) : NONE);
        const f = (k: string) => (op.attrs[k]?.t === 'f' ? (op.attrs[k] as { v: number }).v : 0);
        params.push(f('alpha'), f('beta'), f('gamma'));
        result.set(n.outputs[0], ops.length - 1);
      }
      const out = g.values.get(root.outputs[0])!;
      const fused: Node = {
        name: `${root.name}_fused`,
        opType: 'Elementwise',
        domain: 'kiln',
        inputs,
        outputs: [root.outputs[0]],
        attrs: new Map([
          ['ops', { type: 'strings', value: ops }],
          ['args', { type: 'ints', value: args }],
          ['params', { type: 'floats', value: params }],
          ['kiln.shape', { type: 'ints', value: out.shape as number[] }],
          ['kiln.dtype', { type: 'int', value: out.dtype }],
        ]),
        origin: order.flatMap((n) => n.origin),
      };
      for (const n of run) taken.add(n);
      replace.set(root, fused);
      changed.push(...order.map((n) => n.name));
    }
    g.nodes = g.nodes.flatMap((n) => (replace.has(n) ? [replace.get(n)!] : taken.has(n) ? [] : [n]));
    return { changed };
  },
};
