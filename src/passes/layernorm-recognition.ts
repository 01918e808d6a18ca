/**
 * LayerNorm recognition.
 * Before: the decomposed form exporters write below opset 17 —
 *         m = ReduceMean(x, [-1]); d = x − m; v = ReduceMean(d² or d·d, [-1]);
 *         n = d / Sqrt(v + ε)   [· γ]   [+ β]
 * After:  LayerNormalization(x, γ or ones, β or zeros, axis = −1, epsilon = ε), origin = every matched node.
 * Handles: reduction over the last axis only (attribute or input axes, keepdims = 1); d read by exactly
 *          the square and the division; γ/β constants of the normalized size (or scalars).
 */
import { DataType } from '../dtype';
import { Graph, Node, attrInt, attrInts, lookupValue } from '../ir/graph';
import { Uses, near, other, scalarOf } from './match';
import { Pass } from './pass';

function lastAxisMean(g: Graph, n: Node | undefined): boolean {
  if (!n || attrInt(n, 'keepdims', 1) !== 1) return false;
  const rank = lookupValue(g, n.inputs[0])?.shape?.length;
  const axes = attrInts(n, 'axes') ?? (n.inputs[1] ? Array.from(lookupValue(g, n.inputs[1])?.data ?? [], Number) : undefined);
  return !!rank && !!axes && axes.length === 1 && (axes[0] === -1 || axes[0] === rank - 1);
}

let counter = 0;
function constant(g: Graph, base: string, values: Float32Array): string {
  const name = `${base}__ln${counter++}`;
  g.values.set(name, { name, dtype: DataType.FLOAT, shape: [values.length], data: values });
  return name;
}

/** A per-channel constant of size C (a scalar is broadcast), or undefined. */
function channelConst(g: Graph, name: string | undefined, C: number, base: string): string | undefined {
  const v = name ? lookupValue(g, name) : undefined;
  if (!v?.data || v.dtype !== DataType.FLOAT) return undefined;
  if (v.data.length === C && (v.shape ?? []).filter((d) => d !== 1).length <= 1) return v.shape?.length === 1 ? name : constant(g, base, v.data as Float32Array);
  if (v.data.length === 1) return constant(g, base, new Float32Array(C).fill(Number(v.data[0])));
  return undefined;
}

export const layernormRecognition: Pass = {
  name: 'layernorm-recognition',
  run(g: Graph) {
    const changed: string[] = [];
    const u = new Uses(g);
    const removed = new Set<Node>();
    const replace = new Map<Node, Node>();
    for (const div of g.nodes) {
      if (div.opType !== 'Div' || div.domain !== '' || removed.has(div)) continue;
      const [d, sd] = div.inputs;
      const sqrt = u.producedBy(sd, 'Sqrt');
      const addEps = u.producedBy(sqrt?.inputs[0], 'Add');
      const sub = u.producedBy(d, 'Sub');
      if (!sqrt || !addEps || !sub || !u.singleUse(sd) || !u.singleUse(sqrt.inputs[0])) continue;
      const mean = u.producedBy(sub.inputs[1], 'ReduceMean');
      const x = sub.inputs[0];
      if (!mean || mean.inputs[0] !== x || !lastAxisMean(g, mean) || !u.singleUse(sub.inputs[1])) continue;
      const varName = addEps.inputs.find((i) => u.producedBy(i, 'ReduceMean'));
      const eps = scalarOf(g, other(addEps, varName ?? ''));
      const varNode = u.producedBy(varName, 'ReduceMean');
      if (!varNode || eps === undefined || !lastAxisMean(g, varNode) || !u.singleUse(varName!)) continue;
      const sq = u.producedBy(varNode.inputs[0], 'Pow', 'Mul');
      if (!sq || !u.singleUse(varNode.inputs[0])) continue;
      if (sq.opType === 'Pow' ? sq.inputs[0] !== d || !near(scalarOf(g, sq.inputs[1]), 2) : sq.inputs[0] !== d || sq.inputs[1] !== d) continue;
      const dReaders = u.readersOf(d);
      if (new Set(dReaders).size !== 2 || g.outputs.includes(d)) continue; // read by the square and the division only
      const xShape = lookupValue(g, x)?.shape;
      const C = xShape?.[xShape.length - 1];
      if (typeof C !== 'number' || lookupValue(g, x)?.dtype !== DataType.FLOAT) continue;
      const nodes = [mean, sub, sq, varNode, addEps, sqrt, div];
      let out = div.outputs[0];
      let gamma: string | undefined;
      let beta: string | undefined;
      const mul = u.singleUse(out) ? u.readersOf(out)[0] : undefined;
      if (mul?.opType === 'Mul' && (gamma = channelConst(g, other(mul, out), C, `${div.name}_gamma`))) {
        nodes.push(mul);
        out = mul.outputs[0];
        const add = u.singleUse(out) ? u.readersOf(out)[0] : undefined;
        if (add?.opType === 'Add' && (beta = channelConst(g, other(add, out), C, `${div.name}_beta`))) {
          nodes.push(add);
          out = add.outputs[0];
        }
      }
      if (nodes.some((n) => removed.has(n))) continue;
      const ln: Node = {
        name: `${div.name}_layernorm`,
        opType: 'LayerNormalization',
        domain: '',
        inputs: [x, gamma ?? constant(g, `${div.name}_gamma`, new Float32Array(C).fill(1)), beta ?? constant(g, `${div.name}_beta`, new Float32Array(C))],
        outputs: [out],
        attrs: new Map([
          ['axis', { type: 'int', value: -1 }],
          ['epsilon', { type: 'float', value: eps }],
        ]),
        origin: nodes.flatMap((n) => n.origin),
      };
      for (const n of nodes) removed.add(n);
      replace.set(nodes[nodes.length - 1], ln);
      changed.push(...nodes.map((n) => n.name));
    }
    g.nodes = g.nodes.flatMap((n) => (replace.has(n) ? [replace.get(n)!] : removed.has(n) ? [] : [n]));
    return { changed };
  },
};
