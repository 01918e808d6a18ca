/**
 * Dead-layer elimination.
 * Before: nodes whose outputs reach no graph output (directly or through other nodes).
 * After:  those nodes are gone, with the values only they produced.
 * Handles: sub-graph reads (a node feeding an If/Loop body stays alive).
 */
import { Graph } from '../ir/graph';
import { nodeReads } from '../ir/infer';
import { Pass } from './pass';

export const deadLayerElimination: Pass = {
  name: 'dead-layer-elimination',
  run(g: Graph) {
    const live = new Set(g.outputs);
    const keep = new Set<number>();
    for (let i = g.nodes.length - 1; i >= 0; i--) {
      const n = g.nodes[i];
      if (!n.outputs.some((o) => o && live.has(o))) continue;
      keep.add(i);
      for (const r of nodeReads(n)) live.add(r);
    }
    const changed = g.nodes.filter((_, i) => !keep.has(i)).map((n) => n.name);
    g.nodes = g.nodes.filter((_, i) => keep.has(i));
    return { changed };
  },
};
