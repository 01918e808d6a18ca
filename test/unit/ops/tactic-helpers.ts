/**
 * Helpers for op tests that compare tactics: an ONNX model (graph inputs, so nothing folds) is
 * imported, inferred and lowered by the real pipeline, then run through runPlan with a tactic forced.
 */
import { inferGraph } from '../../../src/ir/infer';
import { lowerGraph } from '../../../src/lower/lower';
import { Plan, encodePlan } from '../../../src/lower/plan';
import { native } from '../../../src/native/binding';
import { importModel } from '../../../src/onnx/import';
import '../../../src/ops';
import { IOSpec, NodeSpec, buildModel } from '../../helpers/model-builder';

export function lowerModel(spec: { nodes: NodeSpec[]; inputs: IOSpec[]; outputs: IOSpec[]; opset?: number }): Plan {
  const g = importModel(buildModel(spec));
  inferGraph(g);
  return lowerGraph(g);
}

/** Runs the plan with `overrides` ({ Kind: tactic }) and returns the float32 outputs. */
export function runF32(plan: Plan, inputs: Float32Array[], overrides: Record<string, string> = {}): Float32Array[] {
  return native()
    .runPlan(encodePlan(plan), inputs, overrides)
    .map((b) => new Float32Array(b));
}

/** A deterministic pseudo-random generator (LCG) for test data. */
export function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

export function randomArray(n: number, r: () => number): Float32Array {
  return Float32Array.from({ length: n }, () => r() * 2 - 1);
}

/** Largest |a - b| / (1 + |b|) over the elements: relative error with an absolute floor near zero. */
export function maxRelErr(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) return Infinity;
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]) / (1 + Math.abs(b[i])));
  return m;
}
