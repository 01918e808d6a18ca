/**
 * engine.compare() and `kiln compare`: an engine checked against the fp32 CPU reference of an ONNX
 * model. A small CNN (Conv → Relu → Conv → Relu → GlobalAveragePool → Flatten → Gemm) is built as is
 * and with one weight tensor scaled; the perturbed engine must diverge exactly at that layer.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Writable } from 'stream';
import { compile, loadEngine, KilnError, Tensor } from '../../src/index';
import { errorStats } from '../../src/compare';
import { main } from '../../src/cli/main';
import { addModel, buildModel } from '../helpers/model-builder';

let seed = 5;
const rand = () => ((seed = (seed * 1664525 + 1013904223) >>> 0) / 2 ** 32) * 2 - 1;
const W1 = Array.from({ length: 4 * 3 * 3 * 3 }, rand);
const B1 = Array.from({ length: 4 }, rand);
const W2 = Array.from({ length: 4 * 4 * 3 * 3 }, rand);
const B2 = Array.from({ length: 4 }, rand);
const WF = Array.from({ length: 4 * 5 }, rand);
const BF = Array.from({ length: 5 }, rand);
const X = new Tensor('float32', Float32Array.from({ length: 3 * 8 * 8 }, rand), [1, 3, 8, 8]);

/** The CNN, with the weight tensors named in `scale` multiplied by their factor. */
function cnn(scale: Record<string, number> = {}): Uint8Array {
  const w = (name: string, v: number[]) => v.map((x) => x * (scale[name] ?? 1));
  return buildModel({
    nodes: [
      { op: 'Conv', name: 'c1', inputs: ['x', 'W1', 'B1'], outputs: ['a'], attrs: { pads: [1, 1, 1, 1] } },
      { op: 'Relu', name: 'r1', inputs: ['a'], outputs: ['ar'] },
      { op: 'Conv', name: 'c2', inputs: ['ar', 'W2', 'B2'], outputs: ['b'], attrs: { pads: [1, 1, 1, 1] } },
      { op: 'Relu', name: 'r2', inputs: ['b'], outputs: ['br'] },
      { op: 'GlobalAveragePool', name: 'gap', inputs: ['br'], outputs: ['p'] },
      { op: 'Flatten', name: 'flat', inputs: ['p'], outputs: ['f'] },
      { op: 'Gemm', name: 'fc', inputs: ['f', 'WF', 'BF'], outputs: ['y'] },
    ],
    inputs: [{ name: 'x', dims: [1, 3, 8, 8] }],
    outputs: [{ name: 'y', dims: [1, 5] }],
    initializers: [
      { name: 'W1', dims: [4, 3, 3, 3], floats: w('W1', W1) },
      { name: 'B1', dims: [4], floats: B1 },
      { name: 'W2', dims: [4, 4, 3, 3], floats: w('W2', W2) },
      { name: 'B2', dims: [4], floats: B2 },
      { name: 'WF', dims: [4, 5], floats: w('WF', WF) },
      { name: 'BF', dims: [5], floats: BF },
    ],
  });
}

describe('engine.compare', () => {
  test('an engine built from the same model compares clean', async () => {
    const engine = await compile(cnn(), { device: 'cpu' });
    try {
      const r = await engine.compare({ x: X }, { model: cnn() });
      expect(r.pass).toBe(true);
      expect(r.tolerance).toBe(1e-3);
      expect(r.outputs).toHaveLength(1);
      const [y] = r.outputs;
      expect(y).toEqual(expect.objectContaining({ name: 'y', nan: 0, inf: 0, pass: true }));
      expect(y.relL2).toBeLessThan(1e-5);
      expect(y.cosine).toBeCloseTo(1, 6);
      expect(r.firstDivergence).toBeUndefined();
    } finally {
      engine.dispose();
    }
  });

  test('a scaled Conv weight is found at that Conv, no earlier', async () => {
    const engine = await compile(cnn({ W2: 1.5 }), { device: 'cpu', debug: { exposeAll: true } });
    try {
      const r = await engine.compare({ x: X }, { model: cnn() });
      expect(r.pass).toBe(false);
      expect(r.outputs[0].pass).toBe(false);
      const d = r.firstDivergence!;
      expect(d).toBeDefined();
      expect(d.source).toBe('engine');
      // The engine's layer for c2 (Relu r2 may be fused into it: then it writes r2's value 'br').
      expect(d.fusedFrom).toContain('c2');
      expect(d.fusedFrom).not.toContain('c1');
      expect(d.layer).toBe('c2');
      expect(['b', 'br']).toContain(d.value);
      expect(['c2', 'r2']).toContain(d.onnxNode);
      expect(d.relL2).toBeGreaterThan(1e-3);
      // The earlier layer's value was compared and passed.
      expect(r.checked).toBeGreaterThanOrEqual(2);
    } finally {
      engine.dispose();
    }
  });

  test('a perturbation late in the graph is found there, not earlier', async () => {
    const engine = await compile(cnn({ WF: 0.5 }), { device: 'cpu', debug: { exposeAll: true } });
    try {
      const r = await engine.compare({ x: X }, { model: cnn(), tolerance: 1e-4 });
      expect(r.tolerance).toBe(1e-4);
      const d = r.firstDivergence!;
      expect(d.value).toBe('y');
      expect(d.onnxNode).toBe('fc');
      expect(d.fusedFrom).toContain('fc');
      expect(r.checked).toBeGreaterThanOrEqual(4); // ar, br, p, f… passed before y
    } finally {
      engine.dispose();
    }
  });

  test('an engine loaded from bytes is rebuilt from the model to locate a divergence', async () => {
    const built = await compile(cnn({ W1: 2 }), { device: 'cpu', timing: false });
    const engine = await loadEngine(built.serialize());
    built.dispose();
    try {
      const r = await engine.compare({ x: X }, { model: cnn() });
      expect(r.pass).toBe(false);
      // The rebuild from the unperturbed model matches the reference: the engine is not of this model.
      expect(r.firstDivergence).toBeUndefined();
      expect(r.note).toMatch(/rebuilt from the model .* matches the reference/);
    } finally {
      engine.dispose();
    }
  });

  test('a loaded engine that diverges from the reference is located in a rebuild (mobilenet_v2, tolerance 0)', async () => {
    // BatchNorm folding and Conv+Clip fusion change fp32 rounding: at tolerance 0 the output fails and
    // the rebuild with the engine's options names the first layer whose value is not bit-exact.
    const model = path.join(__dirname, '../../models/mobilenet_v2-ts.onnx');
    const built = await compile(model, { device: 'cpu', timing: false });
    const engine = await loadEngine(built.serialize());
    built.dispose();
    try {
      const x = engine.inputs[0];
      const data = Float32Array.from({ length: x.dims.reduce((a, b) => a * b, 1) }, (_, i) => Math.sin(i));
      const r = await engine.compare({ [x.name]: new Tensor('float32', data, x.dims) }, { model, tolerance: 0 });
      expect(r.pass).toBe(false);
      expect(r.outputs[0].relL2).toBeLessThan(1e-4);
      const d = r.firstDivergence!;
      expect(d.source).toBe('rebuild');
      expect(engine.report.layers.map((l) => l.name)).toContain(d.layer);
      expect(d.fusedFrom).toContain(d.onnxNode);
      expect(d.relL2).toBeGreaterThan(0);
    } finally {
      engine.dispose();
    }
  });

  test('the exposeAll debug build keeps outputs unchanged and returns every intermediate value', async () => {
    const engine = await compile(cnn(), { device: 'cpu', debug: { exposeAll: true } });
    try {
      expect(engine.outputs.map((o) => o.name)).toEqual(['y']);
      const out = await engine.infer({ x: X });
      expect(Object.keys(out)).toEqual(['y']);
      const all = await engine.inferAll({ x: X });
      expect([...all.keys()]).toEqual(expect.arrayContaining(['y', 'ar', 'p', 'f']));
      expect(Array.from(all.get('y')!.data as Float32Array)).toEqual(Array.from(out.y.data as Float32Array));
      expect(engine.report.buildOptions.debug).toEqual({ exposeAll: true });
    } finally {
      engine.dispose();
    }
  });

  test('errors: a model whose inputs are not the engine\'s, bad options', async () => {
    const engine = await compile(cnn(), { device: 'cpu', timing: false });
    try {
      const err = await engine.compare({ x: X }, { model: addModel() }).catch((e) => e);
      expect(err).toBeInstanceOf(KilnError);
      expect(err.code).toBe('ENGINE_MISMATCH');
      expect(err.message).toMatch(/the model's inputs \('x' float32 \[1,4\]\) are not the engine's \('x' float32 \[1,3,8,8\]\)/);
      await expect(engine.compare({ x: X }, { model: cnn(), tolerance: -1 })).rejects.toThrow(/'tolerance'/);
      await expect(engine.compare({ x: X }, {} as never)).rejects.toThrow(/option 'model' must be the ONNX model/);
      await expect(engine.compare({ x: X }, { model: cnn(), extra: 1 } as never)).rejects.toThrow(/unknown option 'extra'/);
      await expect(engine.compare({ z: X }, { model: cnn() })).rejects.toThrow(/unknown input 'z'/);
      await expect(compile(cnn(), { debug: { exposeAll: 'yes' } as never })).rejects.toThrow(
        "Expected { exposeAll?: boolean } for option 'debug' but received {\"exposeAll\":\"yes\"}",
      );
      await expect(compile(cnn(), { debug: { everything: true } as never })).rejects.toThrow(/option 'debug'/);
    } finally {
      engine.dispose();
    }
  });
});

describe('errorStats', () => {
  const t = (v: number[]) => new Tensor('float32', Float32Array.from(v), [v.length]);
  test('max abs, rel L2, cosine; NaN/Inf counted, mismatched ones fail', () => {
    const s = errorStats('v', t([1, 2, 2]), t([1, 2, 3]), 1e-3);
    expect(s.maxAbs).toBe(1);
    expect(s.relL2).toBeCloseTo(1 / Math.sqrt(14), 12);
    expect(s.cosine).toBeCloseTo(11 / Math.sqrt(9 * 14), 12);
    expect(s.pass).toBe(false);
    expect(errorStats('z', t([0, 0]), t([0, 0]), 0)).toEqual({ name: 'z', maxAbs: 0, relL2: 0, cosine: 1, nan: 0, inf: 0, pass: true });
    const same = errorStats('n', t([NaN, Infinity, 1]), t([NaN, Infinity, 1]), 1e-3);
    expect(same).toEqual(expect.objectContaining({ nan: 1, inf: 1, relL2: 0, pass: true }));
    const bad = errorStats('n', t([NaN, 1]), t([0, 1]), 1e-3);
    expect(bad).toEqual(expect.objectContaining({ nan: 1, relL2: Infinity, maxAbs: Infinity, pass: false }));
  });
});

class Capture extends Writable {
  text = '';
  override _write(chunk: Buffer, _enc: string, done: () => void): void {
    this.text += chunk.toString();
    done();
  }
}
async function kiln(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const stdout = new Capture();
  const stderr = new Capture();
  const code = await main(args, { stdout, stderr });
  return { code, out: stdout.text, err: stderr.text };
}

describe('kiln compare', () => {
  let dir: string;
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-compare-'));
    fs.writeFileSync(path.join(dir, 'cnn.onnx'), cnn());
    fs.writeFileSync(path.join(dir, 'add.onnx'), addModel());
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  test('an ONNX model against its own build passes (text and --json)', async () => {
    const r = await kiln(['compare', path.join(dir, 'cnn.onnx'), '--device', 'cpu', '--no-timing']);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/output y .*rel L2 .* PASS/);
    const j = await kiln(['compare', path.join(dir, 'cnn.onnx'), '--device', 'cpu', '--no-timing', '--json']);
    expect(j.code).toBe(0);
    expect(JSON.parse(j.out)).toEqual(expect.objectContaining({ pass: true, tolerance: 1e-3 }));
  });

  test('--engine of a perturbed model fails with exit 2; a mismatched model is an error', async () => {
    const built = await compile(cnn({ W2: 1.5 }), { device: 'cpu', timing: false, debug: { exposeAll: true } });
    fs.writeFileSync(path.join(dir, 'bad.kiln'), built.serialize());
    built.dispose();
    const r = await kiln(['compare', path.join(dir, 'cnn.onnx'), '--engine', path.join(dir, 'bad.kiln'), '--json']);
    expect(r.code).toBe(2);
    const j = JSON.parse(r.out);
    expect(j.pass).toBe(false);
    expect(j.firstDivergence.layer).toBe('c2');
    const text = await kiln(['compare', path.join(dir, 'cnn.onnx'), '--engine', path.join(dir, 'bad.kiln'), '--tolerance', '0.01']);
    expect(text.code).toBe(2);
    expect(text.out).toMatch(/FAIL/);
    expect(text.out).toMatch(/first divergence: value '(b|br)' .*layer 'c2'/);
    const mismatch = await kiln(['compare', path.join(dir, 'add.onnx'), '--engine', path.join(dir, 'bad.kiln')]);
    expect(mismatch.code).toBe(1);
    expect(mismatch.err).toMatch(/^kiln: compare: the model's inputs/);
    const badTol = await kiln(['compare', path.join(dir, 'cnn.onnx'), '--tolerance', 'x']);
    expect(badTol.code).toBe(1);
    expect(badTol.err).toMatch(/--tolerance/);
  });
});
