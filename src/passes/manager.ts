/**
 * The pass manager: runs the passes in order to a bounded fixed point, checks the graph after every
 * pass (every read value exists), and dumps the IR around each pass when KILN_DEBUG is set.
 */
import { KilnError } from '../errors';
import { Graph, describeNode, lookupValue } from '../ir/graph';
import { nodeReads } from '../ir/infer';
import { attentionRecognition } from './attention-recognition';
import { batchnormFolding } from './batchnorm-folding';
import { deadLayerElimination } from './dead-layer-elimination';
import { elementwiseFusion } from './elementwise-fusion';
import { epilogueFusion } from './epilogue-fusion';
import { geluRecognition } from './gelu-recognition';
import { horizontalMerge } from './horizontal-merge';
import { layernormRecognition } from './layernorm-recognition';
import { noopRemoval } from './noop-removal';
import { Pass, PassContext } from './pass';

/** The passes in the order they run. */
export const PASSES: Pass[] = [noopRemoval, batchnormFolding, layernormRecognition, geluRecognition, attentionRecognition, epilogueFusion, horizontalMerge, elementwiseFusion, deadLayerElimination];

export interface PassSummary {
  name: string;
  changed: number;
  nodes: string[];
  /** layout-assignment: the reformat layers it placed. */
  reformats?: number;
}

function verify(g: Graph, after: string): void {
  const produced = new Set<string>();
  for (const n of g.nodes) {
    for (const r of nodeReads(n)) {
      const v = lookupValue(g, r);
      if (!produced.has(r) && !(v && (v.data || g.inputs.includes(r) || (g.parent && lookupValue(g.parent, r)))))
        throw new KilnError('INTERNAL', `after pass '${after}': ${describeNode(n)} reads '${r}', which nothing produces`);
    }
    for (const o of n.outputs) if (o) produced.add(o);
  }
}

function dump(g: Graph, label: string): void {
  if (!process.env.KILN_DEBUG) return;
  const lines = g.nodes.map((n) => `  ${n.name}: ${n.opType}(${n.inputs.join(', ')}) -> ${n.outputs.join(', ')}`);
  process.stderr.write(`[kiln] ${label} (${g.nodes.length} nodes)\n${lines.join('\n')}\n`);
}

/** Whether a pass runs: `enabled` false turns all off, an object turns single passes off by name. */
export function passEnabled(enabled: boolean | Record<string, boolean>, name: string): boolean {
  return typeof enabled === 'boolean' ? enabled : enabled[name] !== false;
}

/** Runs the enabled graph passes to a bounded fixed point. */
export function runPasses(g: Graph, enabled: boolean | Record<string, boolean>, ctx: PassContext = { target: 'cpu' }, maxRounds = 4): PassSummary[] {
  const on = (p: Pass) => passEnabled(enabled, p.name);
  const summary = new Map<string, PassSummary>(PASSES.filter(on).map((p) => [p.name, { name: p.name, changed: 0, nodes: [] }]));
  for (let round = 0; round < maxRounds; round++) {
    let any = false;
    for (const p of PASSES.filter(on)) {
      dump(g, `before ${p.name}`);
      const r = p.run(g, ctx);
      verify(g, p.name);
      dump(g, `after ${p.name}`);
      const s = summary.get(p.name)!;
      s.changed += r.changed.length;
      s.nodes.push(...r.changed);
      any ||= r.changed.length > 0;
    }
    if (!any) break;
  }
  return [...summary.values()];
}
