/**
 * Shared by the GPU tests: whether this addon has a usable CUDA backend (and why not), native builds of
 * a lowered plan on 'cuda' with a forced tactic, and the error measure of METHOD.md.
 */
import { encodePlan, Plan } from '../../src/lower/plan';
import { NativeEngine, native } from '../../src/native/binding';

/** undefined when the cuda backend can run; else why the GPU tests skip. */
export const noCuda: string | undefined = (() => {
  try {
    const info = native().info() as unknown as { backends: string[]; devices?: Record<string, { device: string }> };
    if (!info.backends.includes('cuda')) return `this kiln addon has no cuda backend (it has: ${info.backends.join(', ')})`;
    const dev = info.devices?.cuda?.device ?? '';
    if (dev.startsWith('no CUDA device')) return `cuda backend without a device: ${dev}`;
    return undefined;
  } catch (e) {
    return `the addon does not load: ${(e as Error).message}`;
  }
})();

export interface LayerReport {
  name: string;
  kind: string;
  backend: string;
  tactic: string;
  candidates: { tactic: string; ms: number | null }[];
}

export async function buildCuda(plan: Plan, opts: { strict?: boolean; tactics?: Record<string, string>; timing?: boolean } = {}): Promise<NativeEngine> {
  return native().build(encodePlan(plan), {
    backend: 'cuda',
    timing: opts.timing ?? true,
    meta: '{}',
    buildOptions: '{}',
    strict: opts.strict ?? false,
    tactics: opts.tactics,
  });
}

export function layers(e: NativeEngine): LayerReport[] {
  return (JSON.parse(e.describe()) as { layers: LayerReport[] }).layers;
}

/** ‖got − ref‖ / ‖ref‖ (NaN anywhere: Infinity). */
export function relNorm(got: Float32Array, ref: Float32Array): number {
  if (got.length !== ref.length) return Infinity;
  let num = 0;
  let den = 0;
  for (let i = 0; i < got.length; i++) {
    if (Number.isNaN(got[i])) return Infinity;
    num += (got[i] - ref[i]) ** 2;
    den += ref[i] ** 2;
  }
  return Math.sqrt(num) / Math.max(Math.sqrt(den), 1e-30);
}

/** TF32 / tensor-core float32 tactics: the tolerance of reduced-precision math. */
export const reduced = (tactic: string) => /\.tf32\.|\.tc$/.test(tactic);
export const tolerance = (tactic: string) => (reduced(tactic) ? 1e-3 : 1e-5);
