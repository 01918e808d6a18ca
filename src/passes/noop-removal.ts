/**
 * No-op removal.
 * Before: Identity, Dropout (inference, mask unused), Cast to the same type, Reshape/Expand/Transpose
 *         that leave the tensor unchanged.
 * After:  readers of the node's output read its input instead; the node is gone.
 * Handles: graph outputs (the node stays when its output is a graph output, so names are kept).
 */
import { Graph, Node, lookupValue } from '../ir/graph';
import { nodeReads } from '../ir/infer';
import { Pass } from './pass';

function isNoop(g: Graph, n: Node): boolean {
  if (n.domain !== '') return false;
  const inV = n.inputs[0] ? lookupValue(g, n.inputs[0]) : undefined;
  const outV = n.outputs[0] ? g.values.get(n.outputs[0]) : undefined;
  if (!inV || !outV || outV.data) return false;
  const sameShape = !!inV.shape && !!outV.shape && inV.shape.length === outV.shape.length && inV.shape.every((d, i) => d === outV.shape![i]);
  switch (n.opType) {
    case 'Identity':
      return true;
    case 'Dropout':
      return n.outputs.length < 2 || n.outputs[1] === '';
    case 'Cast':
      return inV.dtype === outV.dtype;
    case 'Reshape':
    case 'Expand':
    case 'Flatten':
    case 'Squeeze':
    case 'Unsqueeze':
      return sameShape && inV.dtype === outV.dtype;
    case 'Transpose': {
      const a = n.attrs.get('perm');
      return a?.type === 'ints' && a.value.every((p, i) => p === i);
    }
    default:
      return false;
  }
}

export const noopRemoval: Pass = {
  name: 'noop-removal',
  run(g: Graph) {
    // Values read by sub-graphs keep their names: bodies refer to them by name.
    const outputs = new Set([...g.outputs, ...g.nodes.flatMap((n) => nodeReads(n).filter((r) => !n.inputs.includes(r)))]);
    const changed: string[] = [];
    const rename = new Map<string, string>();
    const resolve = (x: string) => {
      while (rename.has(x)) x = rename.get(x)!;
      return x;
    };
    const kept: Node[] = [];
    for (const n of g.nodes) {
      n.inputs = n.inputs.map((i) => (i ? resolve(i) : i));
      if (isNoop(g, n) && !outputs.has(n.outputs[0])) {
        rename.set(n.outputs[0], n.inputs[0]);
        changed.push(n.name);
      } else kept.push(n);
    }
    g.nodes = kept;
    return { changed };
  },
};
