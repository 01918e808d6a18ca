/**
 * precision 'best' on the CPU backend: the small CNN with calibration builds from its fp32 and int8
 * candidates, reports per layer the choice with the candidates' times and stays within tolerance of
 * fp32; injected layer times (bestHooks) make the choice deterministic: a slow candidate is never
 * chosen, layerPrecisions pins override the choice, and without calibration only fp32 is compared.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Tensor, compile } from '../../../src';
import { DataType } from '../../../src/dtype';
import type { LayerReport } from '../../../src/engine';
import { inferGraph } from '../../../src/ir/infer';
import { lowerGraph } from '../../../src/lower/lower';
import { encodePlan } from '../../../src/lower/plan';
import { FAST_CPU, native } from '../../../src/native/binding';
import { importModel } from '../../../src/onnx/import';
import { resolveOptions } from '../../../src/options';
import { guardHalfPrecision } from '../../../src/passes/accuracy-guard';
import { emulateHalf } from '../../../src/passes/half-emulation';
import { runPasses } from '../../../src/passes/manager';
import { assignHalfPrecision } from '../../../src/passes/precision-assignment';
import { quantizeGraph } from '../../../src/quant';
import type { Engine } from '../../../src/engine';
import { bestHooks, buildBest, chooseGroups, uniformInstead } from '../../../src/quant/best';
import { rng } from '../ops/tactic-helpers';
import { smallCnn } from './quant-models';
import { relL2 } from '../../helpers/metrics';

function feeds(n: number, seed: number): Record<string, Tensor>[] {
  const r = rng(seed);
  return Array.from({ length: n }, () => ({ x: new Tensor('float32', Float32Array.from({ length: 3 * 16 * 16 }, () => r() * 2 - 1), [1, 3, 16, 16]) }));
}

const CALIB = feeds(16, 11);
const HELD_OUT = feeds(3, 99);

/** Layer times that make int8 layers (and the quantize layers they need) cost `int8` ms, float ones 1 ms. */
const inject = (int8: number) => (precision: string, l: LayerReport) => (precision === 'int8' && (l.kind.startsWith('Int8') || l.kind === 'QuantizeLinear') ? int8 : 1);

afterEach(() => {
  bestHooks.layerMs = undefined;
  bestHooks.engineMs = undefined;
});

describe("precision 'best'", () => {
  test('builds the calibrated CNN, reports each layer with the candidates times, stays within tolerance of fp32', async () => {
    const e = await compile(smallCnn(), { precision: 'best', calibration: CALIB });
    const r = e.report;
    expect(r.precision).toBe('best');
    expect(r.best!.candidates).toEqual(['fp32', 'int8']);
    expect(r.best!.notes).toEqual([]);
    const conv1 = r.layers.find((l) => l.fusedFrom.includes('conv1'))!;
    expect(conv1.choice).toBeDefined();
    expect(Object.keys(conv1.choice!.ms).sort()).toEqual(['fp32', 'int8']);
    for (const ms of Object.values(conv1.choice!.ms)) expect(ms).toBeGreaterThan(0);
    expect(conv1.choice!.reason).toMatch(/int8/);
    // what the report says a layer runs in is what was chosen (the guard may only move int8 up)
    for (const l of r.layers.filter((l) => l.choice && l.kind !== 'QuantizeLinear')) {
      if (l.choice!.chosen === 'fp32') expect(l.precision).toBe('fp32');
      if (l.precision === 'int8') expect(l.choice!.chosen).toBe('int8');
    }
    expect(r.warnings.some((w) => /^precision 'best' \(fp32, int8 compared\): .*node group/.test(w))).toBe(true);
    const ref = await compile(smallCnn(), {});
    for (const f of HELD_OUT) expect(relL2((await e.infer(f)).y.data as Float32Array, (await ref.infer(f)).y.data as Float32Array)).toBeLessThan(0.1);
    ref.dispose();
    e.dispose();
  });

  test('a slow candidate is not chosen: slow int8 → every layer fp32, fast int8 → the Conv/Gemm layers int8', async () => {
    bestHooks.layerMs = inject(100);
    const slow = await compile(smallCnn(), { precision: 'best', calibration: CALIB });
    expect(slow.report.layers.filter((l) => l.precision === 'int8')).toEqual([]);
    const conv1 = slow.report.layers.find((l) => l.fusedFrom.includes('conv1'))!;
    expect(conv1.choice!.chosen).toBe('fp32');
    expect(conv1.choice!.ms.int8).toBeGreaterThanOrEqual(100);
    expect(conv1.choice!.reason).toMatch(/^int8 is not faster with its quantize layers \(fp32 .* ms, int8 .* ms\); fp32 kept$/);
    slow.dispose();
    bestHooks.layerMs = inject(0.01);
    const fast = await compile(smallCnn(), { precision: 'best', calibration: CALIB, guard: false });
    const int8 = fast.report.layers.filter((l) => l.precision === 'int8').map((l) => l.name);
    expect(int8).toEqual(expect.arrayContaining(['conv1', 'conv2']));
    expect(fast.report.layers.find((l) => l.name === 'conv1')!.choice!.reason).toMatch(/^int8 is the fastest, its quantize layers included/);
    fast.dispose();
  });

  test('the accuracy guard of the mixed build: within tolerance of fp32; a tolerance int8 cannot meet moves chosen int8 layers up to fp32', async () => {
    bestHooks.layerMs = inject(0.01);
    const ref = await compile(smallCnn(), {});
    const mixed = await compile(smallCnn(), { precision: 'best', calibration: CALIB });
    const int8 = mixed.report.layers.filter((l) => l.precision === 'int8').map((l) => l.name);
    expect(int8).toContain('conv1');
    expect(mixed.report.precisionGuard).toBeDefined();
    for (const f of HELD_OUT) expect(relL2((await mixed.infer(f)).y.data as Float32Array, (await ref.infer(f)).y.data as Float32Array)).toBeLessThan(0.1);
    mixed.dispose();
    const strict = await compile(smallCnn(), { precision: 'best', calibration: CALIB, tolerance: 1e-7 });
    const conv1 = strict.report.layers.find((l) => l.name === 'conv1')!;
    expect([conv1.precision, conv1.choice!.chosen]).toEqual(['fp32', 'int8']);
    expect(strict.report.precisionGuard!.pinned.map((p) => p.layer)).toContain('conv1');
    expect(strict.report.layers.filter((l) => l.precision === 'int8').length).toBeLessThan(int8.length);
    strict.dispose();
    ref.dispose();
  });

  test('layerPrecisions pins override the choice', async () => {
    bestHooks.layerMs = inject(0.01);
    const e = await compile(smallCnn(), { precision: 'best', calibration: CALIB, guard: false, layerPrecisions: { conv2: 'fp32' } });
    const conv2 = e.report.layers.find((l) => l.fusedFrom.includes('conv2'))!;
    expect(conv2.precision).toBe('fp32');
    expect(conv2.choice!.chosen).toBe('fp32');
    expect(conv2.choice!.reason).toMatch(/^pinned to fp32 by layerPrecisions/);
    expect(e.report.layers.find((l) => l.name === 'conv1')!.precision).toBe('int8');
    e.dispose();
  });

  test('without calibration data only the float precisions are compared, and the report says so', async () => {
    const e = await compile(smallCnn(), { precision: 'best' });
    expect(e.report.best!.candidates).toEqual(['fp32']);
    expect(e.report.best!.notes).toEqual(["precision 'best': int8 not considered: no calibration data (give 'calibration' or a 'calibrationCache'); only fp32 compared"]);
    expect(e.report.warnings).toContain(e.report.best!.notes[0]);
    expect(e.report.layers.every((l) => l.precision === 'fp32')).toBe(true);
    e.dispose();
  });

  test('the candidates share the timing cache the user gives, which the last build reuses', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-best-'));
    try {
      const file = path.join(dir, 'timing.json');
      const e = await compile(smallCnn(), { precision: 'best', calibration: CALIB, timingCache: file });
      const entries = Object.keys(JSON.parse(fs.readFileSync(file, 'utf8')).entries);
      expect(entries.some((k) => k.startsWith('Int8Conv'))).toBe(true);
      expect(entries.some((k) => k.startsWith('Conv'))).toBe(true);
      e.dispose();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("the mixed int8 + fp16 plan of a 'best' build on cuda", () => {
  test('int8 layers keep their float32 scales, bias and outputs, the float layers around them run in fp16, and the plan computes what the int8 one does (CPU emulation)', async () => {
    const g = importModel(smallCnn());
    inferGraph(g);
    runPasses(g, true, { target: 'cuda' });
    await quantizeGraph(g, smallCnn(), resolveOptions({ precision: 'int8', calibration: CALIB, guard: false }), () => {});
    const int8Plan = lowerGraph(g);
    const plan = lowerGraph(g);
    const guard = guardHalfPrecision(plan);
    const r = assignHalfPrecision(plan, new Set(guard.pinned.map((p) => p.layer)));
    const quantized = plan.ops.filter((op) => op.kind.startsWith('Int8') || op.kind === 'QuantizeLinear');
    expect(quantized.length).toBeGreaterThan(1);
    for (const op of quantized) for (const t of [...op.inputs, ...op.outputs]) if (t >= 0) expect(plan.tensors[t].dtype).not.toBe(DataType.FLOAT16);
    expect(r.half).toEqual(expect.arrayContaining(['gap']));
    expect(r.casts).toBeGreaterThan(0);
    const x = [HELD_OUT[0].x.data as Float32Array];
    const want = new Float32Array(native().runPlan(encodePlan(int8Plan), x, FAST_CPU)[0]);
    const got = new Float32Array(native().runPlan(encodePlan(emulateHalf(plan)), x, FAST_CPU)[0]);
    expect(relL2(got, want)).toBeLessThan(1e-2);
  });
});

describe("precision 'best' on cuda, step 6: whole engines decide", () => {
  // fake builds (no GPU): one layer per engine in the precision built, report.precision 'best' for the
  // fourth (the mixed build after the three candidates); the hooks give the layer and engine times
  const run = async (layerMs: Record<string, number>, engineMs: Record<string, number>) => {
    const built: { precision: string; disposed: boolean }[] = [];
    const fake = async (_m: unknown, o: { precision: string }): Promise<Engine> => {
      const rec = { precision: built.length === 3 ? 'best' : o.precision, disposed: false };
      built.push(rec);
      const layer = { name: 'conv', kind: o.precision === 'int8' ? 'Int8Conv' : 'Conv', fusedFrom: ['conv'], candidates: [], tactic: 't', precision: o.precision };
      const report = { precision: rec.precision, layers: [layer], warnings: [], best: { notes: [] }, precisionGuard: { checked: 1, pinned: [{ layer: 'conv' }] } };
      return { report, dispose: () => (rec.disposed = true) } as unknown as Engine;
    };
    bestHooks.layerMs = (precision) => layerMs[precision];
    bestHooks.engineMs = (e) => engineMs[e.report.precision];
    const e = await buildBest(smallCnn(), resolveOptions({ precision: 'best', calibration: CALIB }), 'cuda', fake as never);
    return { e, built };
  };

  test('an int8 engine slower as a whole than fp16 everywhere (its guard moved layers up) is replaced by the fp16 one', async () => {
    const { e, built } = await run({ int8: 0.1, fp16: 0.5, fp32: 1 }, { best: 1.5, int8: 0.5, fp16: 1, fp32: 2 });
    expect(built.map((b) => b.precision)).toEqual(['fp32', 'fp16', 'int8', 'best', 'fp16']);
    expect(e.report.precision).toBe('fp16');
    expect(built[3].disposed).toBe(true);
    expect(e.report.warnings).toContain("precision 'best': the int8 engine (its accuracy guard moved 1 layer(s) to higher precision) runs in 1.5 ms against 1 ms for fp16 everywhere: built fp16");
    expect(e.report.best!.notes).toEqual(e.report.warnings.slice(-1));
  });

  test('an int8 engine faster as a whole is kept, and the fp16 one built to compare is disposed', async () => {
    const { e, built } = await run({ int8: 0.1, fp16: 0.5, fp32: 1 }, { best: 0.6, int8: 0.5, fp16: 1, fp32: 2 });
    expect(built.map((b) => b.precision)).toEqual(['fp32', 'fp16', 'int8', 'best', 'fp16']);
    expect(e.report.precision).toBe('best');
    expect(built[4].disposed).toBe(true);
    expect(e.report.warnings).toEqual([]);
  });

  test('fp32 chosen from layer times (fp16 cast layers counted) but fp16 faster as a whole: fp16 everywhere', async () => {
    const { e, built } = await run({ int8: 5, fp16: 1.5, fp32: 1 }, { best: 2, int8: 3, fp16: 1, fp32: 2 });
    expect(built.map((b) => b.precision)).toEqual(['fp32', 'fp16', 'int8', 'best', 'fp16']);
    expect(e.report.precision).toBe('fp16');
    expect(e.report.warnings).toContain("precision 'best': the fp32 engine (its accuracy guard moved 1 layer(s) to higher precision) runs in 2 ms against 1 ms for fp16 everywhere: built fp16");
  });
});

describe('chooseGroups', () => {
  const layer = (name: string, kind: string, fusedFrom: string[], ms: number) => ({ name, kind, fusedFrom, ms });
  test('groups layers by ONNX origin across engines, counts origin-less layers against the next group, ties keep fp32', () => {
    const c = chooseGroups([
      { precision: 'fp32', layers: [layer('conv', 'Conv', ['conv', 'relu'], 2), layer('fc', 'Gemm', ['fc'], 1)] },
      { precision: 'fp16', layers: [layer('x__cast', 'Cast', [], 0.5), layer('conv', 'Conv', ['conv'], 1), layer('relu', 'Elementwise', ['relu'], 1), layer('fc', 'Gemm', ['fc'], 1)] },
      { precision: 'int8', layers: [layer('x__quantize', 'QuantizeLinear', [], 0.2), layer('conv', 'Int8Conv', ['conv', 'relu'], 1), layer('fc', 'Gemm', ['fc'], 0.1)] },
    ]);
    const byNode = (n: string) => c.find((g) => g.nodes.includes(n))!;
    expect(byNode('conv').nodes.sort()).toEqual(['conv', 'relu']);
    expect(byNode('conv').ms).toEqual({ fp32: 2, fp16: 2.5, int8: 1.2 });
    expect(byNode('conv').chosen).toBe('int8');
    // fc has no int8 layer in the int8 engine: int8 is no candidate for it; fp32 and fp16 tie
    expect(byNode('fc').ms).toEqual({ fp32: 1, fp16: 1 });
    expect(byNode('fc').chosen).toBe('fp32');
    expect(byNode('fc').reason).toBe('fp32 is the fastest float precision (fp32 1 ms, fp16 1 ms); no int8 layer runs it');
  });
});

describe("precision 'best': a mixed engine slower than one precision everywhere", () => {
  const layer = (name: string, ms: number) => ({ name, kind: 'Conv', fusedFrom: [name], ms });
  const cands = [
    { precision: 'fp32' as const, layers: [layer('a', 1), layer('b', 1)] },
    { precision: 'fp16' as const, layers: [layer('a', 0.4), layer('b', 0.5)] },
  ];
  test('the fastest candidate in total replaces a mixed engine that is slower than it by the margin', () => {
    expect(uniformInstead(cands, 1.2)).toEqual({ precision: 'fp16', ms: 0.9 });
  });
  test('a mixed engine within the margin, or faster, is kept', () => {
    expect(uniformInstead(cands, 0.92)).toBeUndefined();
    expect(uniformInstead(cands, 0.8)).toBeUndefined();
    expect(uniformInstead([], 1)).toBeUndefined();
  });
});

