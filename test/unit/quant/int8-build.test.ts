/**
 * int8 builds end to end on the CPU backend: calibration of a small CNN (int8 engine vs fp32: cosine
 * >= 0.99 on inputs not used for calibration), the calibration cache (a rebuild reads no feed), the
 * error without calibration data, layer pins, and an onnxruntime-style Q/DQ model fused into int8
 * layers that matches onnxruntime-node within one quantization step of its output.
 */
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Tensor, compile, loadEngine } from '../../../src';
import { KilnError } from '../../../src/errors';
import { rng } from '../ops/tactic-helpers';
import { QDQ_OUT_STEP, qdqModel, smallCnn } from './quant-models';
import { cosine } from '../../helpers/metrics';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-int8-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function feeds(n: number, seed: number, dims = [1, 3, 16, 16]): Record<string, Tensor>[] {
  const r = rng(seed);
  const size = dims.reduce((a, b) => a * b, 1);
  return Array.from({ length: n }, () => ({ x: new Tensor('float32', Float32Array.from({ length: size }, () => r() * 2 - 1), dims) }));
}

async function outputs(model: Uint8Array, options: Parameters<typeof compile>[1], inputs: Record<string, Tensor>[]): Promise<Float32Array[]> {
  const e = await compile(model, options);
  const out: Float32Array[] = [];
  for (const f of inputs) out.push((await e.infer(f)).y.data as Float32Array);
  e.dispose();
  return out;
}

const CALIB = feeds(32, 11);
const HELD_OUT = feeds(4, 99);

describe('int8 post-training quantization', () => {
  test('a calibrated CNN runs its Conv and Gemm layers in int8 and matches fp32 (cosine >= 0.99)', async () => {
    const e = await compile(smallCnn(), { precision: 'int8', calibration: CALIB });
    const int8 = e.report.layers.filter((l) => l.precision === 'int8').map((l) => `${l.name}:${l.kind}`);
    expect(int8).toEqual(expect.arrayContaining(['conv1:Int8Conv']));
    expect(int8.length).toBeGreaterThanOrEqual(2);
    expect(e.report.passes.find((p) => p.name === 'int8-calibration')!.nodes).toEqual(['x', 'r1', 'r2', 'f']);
    const fp32 = await outputs(smallCnn(), {}, HELD_OUT);
    for (let i = 0; i < HELD_OUT.length; i++) expect(cosine((await e.infer(HELD_OUT[i])).y.data as Float32Array, fp32[i])).toBeGreaterThanOrEqual(0.99);
    e.dispose();
  });

  test.each(['minmax', 'percentile'] as const)('calibrator %s also stays within cosine 0.99', async (calibrator) => {
    const got = await outputs(smallCnn(), { precision: 'int8', calibration: CALIB, calibrator, guard: false }, HELD_OUT);
    const fp32 = await outputs(smallCnn(), {}, HELD_OUT);
    got.forEach((g, i) => expect(cosine(g, fp32[i])).toBeGreaterThanOrEqual(0.99));
  });

  test('without calibration data or a cache, int8 is an error that says so', async () => {
    const e = await compile(smallCnn(), { precision: 'int8' }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(KilnError);
    expect((e as KilnError).code).toBe('INVALID_OPTION');
    expect((e as KilnError).message).toMatch(/^precision 'int8' needs calibration data: pass 'calibration' .* or a 'calibrationCache' written by an earlier build; kiln never quantizes with made-up scales/);
    const missing = path.join(tmp, 'none.json');
    const e2 = await compile(smallCnn(), { precision: 'int8', calibrationCache: missing }).catch((x: unknown) => x);
    expect((e2 as KilnError).message).toContain(`('${missing}' does not exist yet)`);
  });

  test("the int8 guard's findings are kept in the calibration cache: a rebuild on the same samples reuses them", async () => {
    const file = path.join(tmp, 'guard.calib.json');
    const a = await compile(smallCnn(), { precision: 'int8', calibration: CALIB, calibrationCache: file });
    const cache = JSON.parse(fs.readFileSync(file, 'utf8'));
    const keys = Object.keys(cache.guards ?? {});
    expect(keys).toHaveLength(1);
    expect(cache.guards[keys[0]]).toMatchObject({ checked: a.report.precisionGuard!.checked, pinned: a.report.precisionGuard!.pinned });
    // doctor the entry: the rebuild takes its pin from the cache instead of running the guard
    const conv = a.report.layers.find((l) => l.kind === 'Int8Conv')!;
    cache.guards[keys[0]].pinned = [{ layer: conv.name, kind: 'Int8Conv', reason: 'doctored' }];
    fs.writeFileSync(file, JSON.stringify(cache));
    const b = await compile(smallCnn(), { precision: 'int8', calibration: CALIB, calibrationCache: file });
    expect(b.report.passes.find((p) => p.name === 'int8-guard-cached')).toMatchObject({ changed: 1 });
    expect(b.report.precisionGuard!.pinned.map((p) => p.reason)).toEqual(['doctored']);
    expect(b.report.layers.filter((l) => l.kind === 'Int8Conv').length).toBe(a.report.layers.filter((l) => l.kind === 'Int8Conv').length - 1);
    // another tolerance is another verdict: the guard runs again and adds its own entry
    const c = await compile(smallCnn(), { precision: 'int8', calibration: CALIB, calibrationCache: file, tolerance: 0.05 });
    expect(c.report.passes.some((p) => p.name === 'int8-guard-cached')).toBe(false);
    expect(Object.keys(JSON.parse(fs.readFileSync(file, 'utf8')).guards)).toHaveLength(2);
    for (const e of [a, b, c]) e.dispose();
  });

  test('the calibration cache is written once and a rebuild reads no feed', async () => {
    const file = path.join(tmp, 'cnn.calib.json');
    const first = await outputs(smallCnn(), { precision: 'int8', calibration: CALIB, calibrationCache: file }, HELD_OUT);
    const cache = JSON.parse(fs.readFileSync(file, 'utf8'));
    expect(cache).toMatchObject({ format: 1, calibrator: 'entropy' });
    expect(Object.keys(cache.amax).sort()).toEqual(['f', 'r1', 'r2', 'x']);
    expect(cache.model).toMatch(/^[0-9a-f]{64}$/);
    // no calibration option at all: the cache alone builds the same engine
    expect(await outputs(smallCnn(), { precision: 'int8', calibrationCache: file }, HELD_OUT)).toEqual(first);
    // calibration given but the cache matches: no feed is read (guard off: it would sample a few)
    let pulled = 0;
    async function* counting() {
      for (const f of CALIB) {
        pulled++;
        yield f;
      }
    }
    const e = await compile(smallCnn(), { precision: 'int8', calibration: counting(), calibrationCache: file, guard: false });
    expect(pulled).toBe(0);
    expect(e.report.passes.some((p) => p.name === 'int8-calibration')).toBe(false);
    e.dispose();
    // another calibrator does not match the cache: calibrate again (the iterable is read once)
    const again = await compile(smallCnn(), { precision: 'int8', calibration: counting(), calibrationCache: file, calibrator: 'minmax', guard: false });
    expect(pulled).toBe(CALIB.length);
    expect(again.report.warnings.join('\n')).toMatch(/was made for another calibrator \(entropy, this build: minmax\); calibrating again/);
    again.dispose();
  });

  test('layerPrecisions keeps a pinned layer in fp32, and an unknown name is an error naming it', async () => {
    const e = await compile(smallCnn(), { precision: 'int8', calibration: CALIB, layerPrecisions: { conv1: 'fp32' } });
    const conv1 = e.report.layers.find((l) => l.name === 'conv1')!;
    expect(conv1).toMatchObject({ kind: 'Conv', precision: 'fp32' });
    e.dispose();
    // the ONNX node 'relu1' was fused into conv1: its name pins that layer too
    const e2 = await compile(smallCnn(), { precision: 'int8', calibration: CALIB, layerPrecisions: { relu1: 'fp32' } });
    expect(e2.report.layers.find((l) => l.name === 'conv1')!.kind).toBe('Conv');
    e2.dispose();
    const err = await compile(smallCnn(), { precision: 'int8', calibration: CALIB, layerPrecisions: { conv9: 'fp32' } }).catch((x: unknown) => x);
    expect((err as KilnError).message).toBe("Option 'layerPrecisions' names 'conv9', which is neither a layer nor an ONNX node of the model (or it was folded into a constant at build)");
  });

  test('the int8 guard demotes a layer whose error grows beyond the bound, and says so', async () => {
    const e = await compile(smallCnn(), { precision: 'int8', calibration: CALIB, tolerance: 1e-4 });
    const g = e.report.precisionGuard!;
    expect(g.pinned.length).toBeGreaterThan(0);
    // per layer (its own error over the bound), then for the outputs' budget (the layers adding the most)
    const local = /^relative error .* in its output '.*' in int8 \(bound 0\.0001; its inputs' [\d.e+-]+\)$/;
    const budget = /^the model's output error [\d.e+-]+ is over the budget 0\.0001 in int8; this layer adds [\d.e+-]+ in '.*'$/;
    expect(g.pinned.some((p) => local.test(p.reason))).toBe(true);
    for (const p of g.pinned) {
      expect(local.test(p.reason) || budget.test(p.reason) ? 'ok' : p.reason).toBe('ok');
      expect(e.report.layers.find((l) => l.name === p.layer)!.precision).toBe('fp32');
    }
    expect(e.report.warnings).toEqual(expect.arrayContaining([expect.stringMatching(/^layer '.*' \(Int8(Conv|Gemm)\) pinned to fp32: relative error/)]));
    e.dispose();
  });
});

describe('compare on int8 engines', () => {
  test('an int8 engine is rebuilt from its recorded ranges (no calibration data) to locate the first divergence', async () => {
    const e = await compile(smallCnn(), { precision: 'int8', calibration: CALIB });
    const ranges = (e.report.buildOptions as { calibrationRanges?: Record<string, number> }).calibrationRanges!;
    expect(Object.keys(ranges).length).toBeGreaterThan(0);
    // loaded from bytes: nothing but the engine and the model
    const loaded = await loadEngine(e.serialize());
    e.dispose();
    try {
      const r = await loaded.compare(HELD_OUT[0], { model: smallCnn(), tolerance: 1e-6 });
      expect(r.pass).toBe(false);
      const d = r.firstDivergence!;
      expect(d.source).toBe('rebuild');
      // the first value both have in float: conv1 and conv2 write their outputs quantized (conv2's is
      // also conv3's residual, read in int8), so the first compared value is conv3's
      expect(d.kind).toMatch(/^Int8/);
      expect(d.fusedFrom).toContain('conv3');
      expect(d.relL2).toBeGreaterThan(1e-6);
    } finally {
      loaded.dispose();
    }
  });
});

/** onnxruntime-node's output for each feed (test/helpers/ort-run.js, in a child process). */
function ortRun(file: string, runs: Record<string, Tensor>[]): Float32Array[] {
  const req = {
    model: file,
    runs: runs.map((f) => Object.entries(f).map(([name, t]) => ({ name, type: t.type, dims: [...t.dims], data: Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength).toString('base64') }))),
  };
  const out = execFileSync(process.execPath, [path.join(__dirname, '..', '..', 'helpers', 'ort-run.js')], { input: JSON.stringify(req) });
  const parsed = JSON.parse(out.toString('utf8')) as { outputs: { data: string }[][] };
  return parsed.outputs.map((o) => new Float32Array(new Uint8Array(Buffer.from(o[0].data, 'base64')).buffer));
}

describe('explicitly quantized (Q/DQ) models', () => {
  test('an onnxruntime-style Q/DQ model fuses into int8 layers without calibration and matches onnxruntime within one step', async () => {
    const model = qdqModel();
    const file = path.join(tmp, 'qdq.onnx');
    fs.writeFileSync(file, model);
    const e = await compile(model, { precision: 'int8' });
    expect(e.report.layers.filter((l) => l.kind.startsWith('Int8')).map((l) => `${l.name}:${l.kind}`)).toEqual(['conv1:Int8Conv', 'conv2:Int8Conv', 'fc:Int8Gemm']);
    expect(e.report.passes.find((p) => p.name === 'qdq-fusion')).toMatchObject({ changed: 3 });
    const inputs = feeds(6, 21, [1, 4, 8, 8]);
    const ort = ortRun(file, inputs);
    let exact = 0;
    let total = 0;
    for (let i = 0; i < inputs.length; i++) {
      const got = (await e.infer(inputs[i])).y.data as Float32Array;
      for (let k = 0; k < got.length; k++) {
        expect(Math.abs(got[k] - ort[i][k])).toBeLessThanOrEqual(QDQ_OUT_STEP * 1.001);
        if (Math.abs(got[k] - ort[i][k]) < 1e-6) exact++;
        total++;
      }
    }
    expect(exact / total).toBeGreaterThan(0.8);
    // fp32 builds of the same model keep running it in float (fake quantization), as before
    const f = await compile(model);
    expect(f.report.layers.some((l) => l.kind.startsWith('Int8'))).toBe(false);
    e.dispose();
    f.dispose();
  });
});
