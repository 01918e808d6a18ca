/** Pass tests: the graph after inference and passes, and optimized vs. unoptimized numbers. */
import { Tensor, compile } from '../../src';
import { bindShapes } from '../../src/compile';
import { Graph } from '../../src/ir/graph';
import { inferGraph } from '../../src/ir/infer';
import { importModel } from '../../src/onnx/import';
import '../../src/ops';
import { PassSummary, runPasses } from '../../src/passes/manager';

export function optimized(model: Uint8Array, enabled: boolean | Record<string, boolean> = true, target: 'cpu' | 'cuda' = 'cpu'): { g: Graph; passes: PassSummary[] } {
  const g = importModel(model);
  bindShapes(g, {});
  inferGraph(g);
  return { g, passes: runPasses(g, enabled, { target }) };
}

/** Op types of the graph's nodes, in order. */
export const opTypes = (g: Graph) => g.nodes.map((n) => n.opType);

/** Max relative L2 error between the optimized and the unoptimized engine on seeded random feeds. */
export async function optimizedMatches(model: Uint8Array, seed = 1): Promise<number> {
  const on = await compile(model);
  const off = await compile(model, { optimize: false });
  let s = seed;
  const rand = () => ((s = (s * 1664525 + 1013904223) >>> 0) / 2 ** 32) * 4 - 2;
  const feeds = Object.fromEntries(on.inputs.map((i) => [i.name, new Tensor('float32', Float32Array.from({ length: i.dims.reduce((a, b) => a * b, 1) }, rand), i.dims)]));
  const a = await on.infer(feeds);
  const b = await off.infer(feeds);
  let worst = 0;
  for (const k of Object.keys(b)) {
    let num = 0;
    let den = 0;
    const x = a[k].data as Float32Array;
    const y = b[k].data as Float32Array;
    for (let i = 0; i < y.length; i++) {
      num += (x[i] - y[i]) ** 2;
      den += y[i] ** 2;
    }
    worst = Math.max(worst, Math.sqrt(num / Math.max(den, 1e-30)));
  }
  on.dispose();
  off.dispose();
  return worst;
}
