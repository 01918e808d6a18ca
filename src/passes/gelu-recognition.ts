/**
 * GELU recognition.
 * Before: the exporters' decompositions of GELU —
 *         erf form:  x · 0.5 · (1 + Erf(x / √2))   (Div by √2 or Mul by 1/√2; the 0.5 on x or on the product)
 *         tanh form: x · 0.5 · (1 + Tanh(√(2/π) · (x + 0.044715 · x³)))   (x³ as Pow(x, 3) or x·x·x)
 * After:  one Gelu(x) node (approximate = 'none' | 'tanh') carrying every matched node as its origin.
 * Handles: interior values with a single reader only; constants compared with a relative 1e-4.
 */
import { Graph, Node } from '../ir/graph';
import { Uses, near, other, scalarOf } from './match';
import { Pass } from './pass';

/** x for Erf's argument x/√2 or x·(1/√2). */
function erfHead(g: Graph, u: Uses, arg: string, nodes: Node[]): string | undefined {
  const div = u.producedBy(arg, 'Div');
  if (div && near(scalarOf(g, div.inputs[1]), Math.SQRT2)) return nodes.push(div), div.inputs[0];
  const mul = u.producedBy(arg, 'Mul');
  if (!mul) return undefined;
  for (const [x, c] of [mul.inputs, [...mul.inputs].reverse()])
    if (near(scalarOf(g, c), Math.SQRT1_2)) return nodes.push(mul), x;
  return undefined;
}

/** x for Tanh's argument √(2/π)·(x + 0.044715·x³). */
function tanhHead(g: Graph, u: Uses, arg: string, nodes: Node[]): string | undefined {
  const scale = u.producedBy(arg, 'Mul');
  if (!scale) return undefined;
  const k = Math.sqrt(2 / Math.PI);
  const inner = near(scalarOf(g, scale.inputs[1]), k) ? scale.inputs[0] : near(scalarOf(g, scale.inputs[0]), k) ? scale.inputs[1] : undefined;
  const add = u.producedBy(inner, 'Add');
  if (!add || !u.singleUse(inner!)) return undefined;
  for (const [x, w] of [add.inputs, [...add.inputs].reverse()]) {
    const cube = u.producedBy(w, 'Mul');
    if (!cube || !u.singleUse(w)) continue;
    const p = near(scalarOf(g, cube.inputs[1]), 0.044715) ? cube.inputs[0] : near(scalarOf(g, cube.inputs[0]), 0.044715) ? cube.inputs[1] : undefined;
    const pow = u.producedBy(p, 'Pow');
    if (pow && pow.inputs[0] === x && near(scalarOf(g, pow.inputs[1]), 3)) return nodes.push(scale, add, cube, pow), x;
    const m1 = u.producedBy(p, 'Mul');
    if (m1 && m1.inputs.includes(x)) {
      const sq = u.producedBy(other(m1, x), 'Mul');
      if (sq && sq.inputs[0] === x && sq.inputs[1] === x) return nodes.push(scale, add, cube, m1, sq), x;
    }
  }
  return undefined;
}

/** The tail shared by both forms: 1 + f → · x → · 0.5 (either order). Returns the output value. */
function tail(g: Graph, u: Uses, f: Node, x: string, nodes: Node[]): string | undefined {
  const out = f.outputs[0];
  if (!u.singleUse(out)) return undefined;
  const plus = u.readersOf(out)[0];
  if (plus.opType !== 'Add' || !near(scalarOf(g, other(plus, out)), 1) || !u.singleUse(plus.outputs[0])) return undefined;
  const m1 = u.readersOf(plus.outputs[0])[0];
  if (m1.opType !== 'Mul') return undefined;
  const o = other(m1, plus.outputs[0])!;
  if (o === x) {
    if (!u.singleUse(m1.outputs[0])) return undefined;
    const m2 = u.readersOf(m1.outputs[0])[0];
    if (m2.opType !== 'Mul' || !near(scalarOf(g, other(m2, m1.outputs[0])), 0.5)) return undefined;
    nodes.push(plus, m1, m2);
    return m2.outputs[0];
  }
  const half = u.producedBy(o, 'Mul');
  if (!half || !u.singleUse(o) || !half.inputs.includes(x) || !near(scalarOf(g, other(half, x)), 0.5)) return undefined;
  nodes.push(plus, m1, half);
  return m1.outputs[0];
}

export const geluRecognition: Pass = {
  name: 'gelu-recognition',
  run(g: Graph) {
    const changed: string[] = [];
    const u = new Uses(g);
    const removed = new Set<Node>();
    const replace = new Map<Node, Node>();
    for (const f of g.nodes) {
      if (f.domain !== '' || (f.opType !== 'Erf' && f.opType !== 'Tanh') || removed.has(f)) continue;
      const nodes: Node[] = [f];
      const x = f.opType === 'Erf' ? erfHead(g, u, f.inputs[0], nodes) : tanhHead(g, u, f.inputs[0], nodes);
      if (!x || !u.singleUse(f.inputs[0])) continue;
      const y = tail(g, u, f, x, nodes);
      if (!y || nodes.some((n) => removed.has(n))) continue;
      const gelu: Node = {
        name: `${f.name}_gelu`,
        opType: 'Gelu',
        domain: '',
        inputs: [x],
        outputs: [y],
        attrs: new Map([['approximate', { type: 'string', value: f.opType === 'Erf' ? 'none' : 'tanh' }]]),
        origin: nodes.flatMap((n) => n.origin),
      };
      for (const n of nodes) removed.add(n);
      // the fused node takes the place of the last matched node, so topological order holds
      replace.set(nodes[nodes.length - 1], gelu);
      changed.push(...nodes.map((n) => n.name));
    }
    g.nodes = g.nodes.flatMap((n) => (replace.has(n) ? [replace.get(n)!] : removed.has(n) ? [] : [n]));
    return { changed };
  },
};
