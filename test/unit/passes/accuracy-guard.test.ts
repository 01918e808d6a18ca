/**
 * The fp16 accuracy guard on the Plan (CPU reference kernels): a layer that overflows float16 is
 * pinned to fp32 and the fp16 plan then matches fp32; a well-behaved model pins nothing; the findings
 * reach the engine report (EngineMeta) and each layer reports the precision it runs in; samples given
 * to the guard replace its generated input (a BERT's attention mask).
 */
import * as fs from 'fs';
import * as path from 'path';
import { DataType } from '../../../src/dtype';
import { bindShapes, guardWarnings } from '../../../src/compile';
import { Engine, EngineMeta } from '../../../src/engine';
import { inferGraph } from '../../../src/ir/infer';
import { lowerGraph } from '../../../src/lower/lower';
import { Plan, encodePlan } from '../../../src/lower/plan';
import { native } from '../../../src/native/binding';
import { importModel } from '../../../src/onnx/import';
import '../../../src/ops';
import { runPasses } from '../../../src/passes/manager';
import { guardHalfPrecision } from '../../../src/passes/accuracy-guard';
import { assignHalfPrecision } from '../../../src/passes/precision-assignment';
import { Tensor } from '../../../src/tensor';
import { buildModel } from '../../helpers/model-builder';
import { relL2 } from '../../helpers/metrics';

const N = 4;
const K = 512;
const M = 8;
let seed = 7;
const rand = () => ((seed = (seed * 1664525 + 1013904223) >>> 0) / 2 ** 32) * 2 - 1;

// (x + 1) ∈ [0, 2) · W (≈ 300, K = 512) reaches ~1.5e5, beyond float16; scaled by 1e-5, then Softmax.
const W_BIG = Array.from({ length: K * M }, () => 300 * (1 + 0.1 * rand()));
// The same shape with small weights: every value stays well inside float16.
const W_SMALL = Array.from({ length: K * M }, () => rand() / Math.sqrt(K));

function planOf(w: number[], scale: number): Plan {
  const g = importModel(
    buildModel({
      nodes: [
        { op: 'Add', name: 'shift', inputs: ['x', 'one'], outputs: ['xs'] },
        { op: 'MatMul', name: 'mm', inputs: ['xs', 'W'], outputs: ['h'] },
        { op: 'Mul', name: 'scale', inputs: ['h', 's'], outputs: ['hs'] },
        { op: 'Softmax', name: 'sm', inputs: ['hs'], outputs: ['y'], attrs: { axis: -1 } },
      ],
      inputs: [{ name: 'x', dims: [N, K] }],
      outputs: [{ name: 'y', dims: [N, M] }],
      initializers: [
        { name: 'one', dims: [], floats: [1] },
        { name: 'W', dims: [K, M], floats: w },
        { name: 's', dims: [], floats: [scale] },
      ],
    }),
  );
  bindShapes(g, {});
  inferGraph(g);
  return lowerGraph(g);
}

const X = Float32Array.from({ length: N * K }, rand);

function run(plan: Plan): Float32Array {
  return new Float32Array(native().runPlan(encodePlan(plan), [X])[0]);
}

describe('fp16 accuracy guard', () => {
  test('a MatMul beyond the float16 range is pinned; the fp16 plan then matches fp32', () => {
    const ref = run(planOf(W_BIG, 1e-5));
    expect(ref.every(Number.isFinite)).toBe(true);

    // Without the guard: the MatMul overflows to Inf and the Softmax gives NaN.
    const unguarded = planOf(W_BIG, 1e-5);
    assignHalfPrecision(unguarded, new Set());
    expect(run(unguarded).some((v) => !Number.isFinite(v))).toBe(true);

    const plan = planOf(W_BIG, 1e-5);
    const guard = guardHalfPrecision(plan);
    expect(guard.clean).toBe(true);
    expect(guard.checked).toBe(4);
    const byLayer = Object.fromEntries(guard.pinned.map((p) => [p.layer, p]));
    expect(byLayer.mm).toMatchObject({ kind: 'Gemm' });
    expect(byLayer.mm.reason).toMatch(/^its output 'h' reaches 1\.\d+e\+5 in fp32, beyond the float16 range \(±65504\): float16 overflow \(Inf\)$/);
    // The Mul reads the same out-of-range value; the layers around them stay fp16.
    expect(byLayer.scale.reason).toMatch(/its input 'h' .* when it is read in fp16/);
    expect(Object.keys(byLayer).sort()).toEqual(['mm', 'scale']);
    expect(guardWarnings(guard)[0]).toBe(`layer 'mm' (Gemm) pinned to fp32: ${byLayer.mm.reason}`);

    // The guard left its plan untouched: the pins go to the precision pass.
    const half = assignHalfPrecision(plan, new Set(guard.pinned.map((p) => p.layer))).half;
    expect(half.sort()).toEqual(['shift', 'sm']);
    const got = run(plan);
    expect(got.every(Number.isFinite)).toBe(true);
    expect(relL2(got, ref)).toBeLessThan(1e-2);
  });

  test('a well-behaved model pins nothing and stays fp16 throughout', () => {
    const plan = planOf(W_SMALL, 0.5);
    const guard = guardHalfPrecision(plan);
    expect(guard).toEqual({ checked: 4, pinned: [], rounds: 1, clean: true });
    expect(guardWarnings(guard)).toEqual([]);
    const ref = run(planOf(W_SMALL, 0.5));
    expect(assignHalfPrecision(plan, new Set()).half.sort()).toEqual(['mm', 'scale', 'shift', 'sm']);
    expect(relL2(run(plan), ref)).toBeLessThan(1e-2);
  });

  test('a layer whose fp16 error grows beyond the bound is pinned in a checking round', () => {
    // A tight bound makes ordinary fp16 rounding at the MatMul (K = 512 sums) count as a fault.
    const plan = planOf(W_SMALL, 0.5);
    const guard = guardHalfPrecision(plan, { tolerance: 1e-6 });
    expect(guard.pinned.length).toBeGreaterThan(0);
    expect(guard.rounds).toBeGreaterThan(1);
    for (const p of guard.pinned) expect(p.reason).toMatch(/^relative error .* in its output '.*' in fp16 \(bound 0\.000001; its inputs' [\d.e+-]+\)$/);
  });

  test('the findings and per-layer precision reach the engine report', async () => {
    const plan = planOf(W_BIG, 1e-5);
    const guard = guardHalfPrecision(plan);
    assignHalfPrecision(plan, new Set(guard.pinned.map((p) => p.layer)));
    const meta: EngineMeta = {
      inputs: [{ name: 'x', type: 'float32', dims: [N, K] }],
      outputs: [{ name: 'y', type: 'float32', dims: [N, M] }],
      passes: [],
      onnxNodes: 4,
      precision: 'fp16',
      warnings: guardWarnings(guard),
      precisionGuard: { checked: guard.checked, pinned: guard.pinned },
    };
    const engine = new Engine(
      await native().build(encodePlan(plan), { backend: 'cpu', timing: false, meta: JSON.stringify(meta), buildOptions: '{}' }),
    );
    try {
      const report = engine.report;
      expect(report.precisionGuard).toEqual({ checked: 4, pinned: guard.pinned });
      expect(report.warnings).toEqual(expect.arrayContaining([expect.stringMatching(/^layer 'mm' \(Gemm\) pinned to fp32: /)]));
      const precision = Object.fromEntries(report.layers.filter((l) => l.kind !== 'Cast').map((l) => [l.name, l.precision]));
      expect(precision).toEqual({ shift: 'fp16', mm: 'fp32', scale: 'fp32', sm: 'fp16' });
      const { y } = await engine.infer({ x: new Tensor('float32', X, [N, K]) });
      expect(relL2(y.data as Float32Array, run(planOf(W_BIG, 1e-5)))).toBeLessThan(1e-2);
    } finally {
      engine.dispose();
    }
  });

  test('an fp32 engine reports fp32 layers and no guard', async () => {
    const plan = planOf(W_SMALL, 0.5);
    const meta: EngineMeta = { inputs: [], outputs: [], passes: [], onnxNodes: 4, precision: 'fp32', warnings: [] };
    const engine = new Engine(await native().build(encodePlan(plan), { backend: 'cpu', timing: false, meta: JSON.stringify(meta), buildOptions: '{}' }));
    try {
      expect(engine.report.precisionGuard).toBeUndefined();
      expect(engine.report.layers.every((l) => l.precision === 'fp32')).toBe(true);
      expect(plan.tensors.every((t) => t.dtype !== DataType.FLOAT16)).toBe(true);
    } finally {
      engine.dispose();
    }
  });

  test("samples replace the generated input: bert-tiny's attention is pinned on a mask of zeros (every key masked: -3.4e38 beyond float16) and on a padded one, not on a mask of ones", () => {
    const g = importModel(new Uint8Array(fs.readFileSync(path.join(__dirname, '../../../models/bert-tiny-ts.onnx'))));
    bindShapes(g, {});
    inferGraph(g);
    runPasses(g, true, { target: 'cuda' });
    const plan = lowerGraph(g);
    expect(plan.inputs.map((i) => [plan.tensors[i].name, plan.tensors[i].shape])).toEqual([['input_ids', [1, 16]], ['attention_mask', [1, 16]]]);
    const ids = BigInt64Array.from({ length: 16 }, (_, i) => BigInt(1 + ((i * 7) % 50)));
    const mask = (n: number) => BigInt64Array.from({ length: 16 }, (_, i) => (i < n ? 1n : 0n));
    const attention = (pins: { layer: string; kind: string }[]) => pins.filter((p) => /attention\/self\/(MatMul|Softmax)$/.test(p.layer)).map((p) => p.kind);
    // the generated sample: integers zero
    expect(attention(guardHalfPrecision(plan).pinned)).toEqual(['Gemm', 'Softmax', 'Gemm', 'Softmax']);
    expect(attention(guardHalfPrecision(plan, { samples: [[ids, mask(12)]] }).pinned)).toEqual(['Gemm', 'Softmax', 'Gemm', 'Softmax']);
    expect(guardHalfPrecision(plan, { samples: [[ids, mask(16)]] }).pinned).toEqual([]);
  }, 60000);
});
