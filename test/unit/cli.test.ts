/**
 * The `kiln` CLI end to end on a tiny model (z = (x + b)²): build → inspect --json → run (random and
 * .npy input) → bench, and its error exits. main() runs in-process with captured streams; one test runs
 * the built bin (dist/cli/main.js) as a child process for the shebang and the exit code.
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Writable } from 'stream';
import { onnx } from 'onnx-proto';
import { demo } from '../../src/cli/demo';
import { main, parseShapes } from '../../src/cli/main';
import { getOp } from '../../src/ops/registry';
import { smallCnn } from './quant/quant-models';

const B = [1, 2, 3, 4];
let dir: string;
let modelFile: string;
let engineFile: string;

function tinyModel(): Uint8Array {
  const T = onnx.TensorProto.DataType.FLOAT;
  const vi = (name: string) => ({ name, type: { tensorType: { elemType: T, shape: { dim: [{ dimParam: 'N' }, { dimValue: 4 }] } } } });
  return onnx.ModelProto.encode({
    irVersion: 8,
    opsetImport: [{ domain: '', version: 17 }],
    graph: {
      name: 'tiny',
      node: [
        { name: 'add', opType: 'Add', input: ['x', 'b'], output: ['y'] },
        { name: 'square', opType: 'Mul', input: ['y', 'y'], output: ['z'] },
      ],
      initializer: [{ name: 'b', dims: [4], dataType: T, floatData: B }],
      input: [vi('x')],
      output: [vi('z')],
    },
  }).finish();
}

function npy(data: Float32Array, dims: number[]): Buffer {
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': (${dims.join(', ')}${dims.length === 1 ? ',' : ''}), }`;
  header += ' '.repeat(63 - ((10 + header.length) % 64)) + '\n';
  const pre = Buffer.alloc(10);
  pre[0] = 0x93;
  pre.write('NUMPY', 1, 'latin1');
  pre[6] = 1;
  pre.writeUInt16LE(header.length, 8);
  return Buffer.concat([pre, Buffer.from(header, 'latin1'), Buffer.from(data.buffer)]);
}

class Capture extends Writable {
  text = '';
  override _write(chunk: Buffer, _enc: string, done: () => void): void {
    this.text += chunk.toString();
    done();
  }
}

async function kiln(args: string[], signal?: AbortSignal): Promise<{ code: number; out: string; err: string }> {
  const stdout = new Capture();
  const stderr = new Capture();
  const code = await main(args, { stdout, stderr, signal });
  return { code, out: stdout.text, err: stderr.text };
}

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-cli-'));
  modelFile = path.join(dir, 'tiny.onnx');
  engineFile = path.join(dir, 'tiny.kiln');
  fs.writeFileSync(modelFile, tinyModel());
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('kiln CLI', () => {
  test('build writes an engine and reports what it built', async () => {
    const r = await kiln(['build', modelFile, '-o', engineFile, '--shapes', 'x=2x4']);
    expect(r.err).not.toContain('kiln: ');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^kiln: wrote .*tiny\.kiln .* 2 layers from 2 ONNX nodes, cpu fp32/);
    expect(fs.readFileSync(engineFile).subarray(0, 8).toString('latin1')).toBe('KILNENG\0');
    // Progress goes to stderr, one line per phase when it is not a terminal.
    expect(r.err).toMatch(/kiln build import/);
    expect(r.err).toMatch(/kiln build tactics .* layer \d\/2/);
  });

  test('inspect --json gives header, sections, layers, memory and passes', async () => {
    const r = await kiln(['inspect', engineFile, '--json']);
    expect(r.code).toBe(0);
    const j = JSON.parse(r.out);
    expect(j.source).toBe('engine');
    expect(j.header.formatVersion).toBe(1);
    expect(j.header.backend).toBe('cpu');
    expect(j.header.buildOptions.shapes).toEqual({ x: [2, 4] });
    expect(j.header.sections.map((s: { tag: string }) => s.tag)).toEqual(['PLAN', 'TACT', 'META']);
    expect(j.inputs).toEqual([{ name: 'x', type: 'float32', dims: [2, 4] }]);
    expect(j.report.layers.map((l: { kind: string; fusedFrom: string[] }) => [l.kind, l.fusedFrom])).toEqual([
      ['Binary', ['add']],
      ['Binary', ['square']],
    ]);
    for (const l of j.report.layers) expect(l.candidates.map((c: { tactic: string }) => c.tactic)).toContain(l.tactic);
    expect(j.report.memory).toEqual(expect.objectContaining({ arenaBytes: expect.any(Number), constantBytes: expect.any(Number) }));
    expect(j.report.passes.map((p: { name: string }) => p.name)).toContain('constant-folding');
  });

  test('inspect prints a readable report, also straight from an .onnx model', async () => {
    const r = await kiln(['inspect', modelFile, '--shapes', 'x=1x4']);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/ONNX model, built in/);
    expect(r.out).toMatch(/layers \(2, from 2 ONNX nodes\)/);
    expect(r.out).toMatch(/square\s+Binary/);
  });

  test('run with a .npy input prints the output statistics of (x + b)²', async () => {
    const x = Float32Array.from([0, 1, -1, 2, 0.5, -2, 3, -4]);
    fs.writeFileSync(path.join(dir, 'x.npy'), npy(x, [2, 4]));
    const r = await kiln(['run', engineFile, '--input', `x=${path.join(dir, 'x.npy')}`, '--json']);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    const z = Array.from(x, (v, i) => (v + B[i % 4]) ** 2);
    const [out] = JSON.parse(r.out).outputs;
    expect(out).toEqual(expect.objectContaining({ name: 'z', type: 'float32', dims: [2, 4], nan: 0 }));
    expect(out.head).toEqual(z);
    expect(out.min).toBeCloseTo(Math.min(...z), 5);
    expect(out.max).toBeCloseTo(Math.max(...z), 5);
  });

  test('run with random inputs, and a raw .bin input', async () => {
    const random = await kiln(['run', engineFile]);
    expect(random.code).toBe(0);
    expect(random.out).toMatch(/input {2}x float32 \[2,4\] random/);
    expect(random.out).toMatch(/output z float32 \[2,4\] {2}min /);
    fs.writeFileSync(path.join(dir, 'x.bin'), Buffer.from(new Float32Array(8).buffer));
    const bin = await kiln(['run', engineFile, '--input', path.join(dir, 'x.bin'), '--json']);
    expect(bin.code).toBe(0);
    expect(JSON.parse(bin.out).outputs[0].head).toEqual([1, 4, 9, 16, 1, 4, 9, 16]);
  });

  test('bench reports percentiles and throughput', async () => {
    const r = await kiln(['bench', engineFile, '--iterations', '20', '--warmup', '2', '--concurrency', '2', '--json']);
    expect(r.code).toBe(0);
    const j = JSON.parse(r.out);
    expect(j.iterations).toBe(20);
    expect(j.concurrency).toBe(2);
    expect(j.p50_ms).toBeGreaterThan(0);
    expect(j.p50_ms).toBeLessThanOrEqual(j.p90_ms);
    expect(j.p90_ms).toBeLessThanOrEqual(j.p99_ms);
    expect(j.throughput).toBeGreaterThan(0);
    const table = await kiln(['bench', modelFile, '-n', '3', '--warmup', '0', '--shapes', 'x=1x4']);
    expect(table.code).toBe(0);
    expect(table.out).toMatch(/latency p99 +[\d.]+ ms/);
  });

  test('bench gives compute-only percentiles and, with --profile, every layer slowest first', async () => {
    const r = await kiln(['bench', engineFile, '-n', '5', '--warmup', '1', '--profile', '--json']);
    expect(r.code).toBe(0);
    const j = JSON.parse(r.out);
    expect(j.compute_p50_ms).toBeGreaterThanOrEqual(0);
    expect(j.compute_p50_ms).toBeLessThanOrEqual(j.compute_p99_ms);
    expect(j.profile.length).toBeGreaterThan(0);
    expect(j.profile[0]).toEqual(expect.objectContaining({ name: expect.any(String), kind: expect.any(String), tactic: expect.any(String) }));
    for (let i = 1; i < j.profile.length; i++) expect(j.profile[i - 1].ms).toBeGreaterThanOrEqual(j.profile[i].ms);
    const text = await kiln(['bench', engineFile, '-n', '3', '--warmup', '0', '--profile']);
    expect(text.out).toMatch(/per-layer time \(mean of 3 runs, slowest first\)/);
  });

  test('doctor lists backends, device and versions', async () => {
    const r = await kiln(['doctor', '--json']);
    expect(r.code).toBe(0);
    const j = JSON.parse(r.out);
    expect(j.backends).toContain('cpu');
    expect(j.threads).toBeGreaterThan(0);
    expect(j.engineFormatVersion).toBe(1);
    expect(j.node).toBe(process.versions.node);
  });

  test.each([
    [['build', '/nonexistent/m.onnx'], /\nkiln: model: cannot read '\/nonexistent\/m\.onnx' \(ENOENT\)\n$/],
    [['frobnicate'], /^kiln: unknown command 'frobnicate'; the commands are build, run, inspect, bench, compare, doctor\n/],
    [['run', 'a', 'b'], /^kiln: run: expected one model file, received a b\n/],
    [['build', 'm.onnx', '--fast'], /^kiln: Unknown option '--fast'/],
    [['bench', 'm.kiln', '--iterations', '0'], /^kiln: --iterations: expected an integer >= 1, received '0'\n/],
  ])('%p fails with exit code 1 and a one-line reason', async (args, message) => {
    const r = await kiln(args);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(message);
    expect(r.err).not.toMatch(/\n\s+at /);
  });

  test('compile errors are KilnErrors: printed without a stack, exit 1', async () => {
    const r = await kiln(['build', modelFile, '-o', path.join(dir, 'x.kiln'), '-q']);
    expect(r.code).toBe(1);
    expect(r.err).toBe("kiln: input 'x' has symbolic dim 'N' (dim 0 of [N,4]); give it a value with the 'shapes' option, e.g. shapes: { x: [1, 4] }\n");
    expect(fs.existsSync(path.join(dir, 'x.kiln'))).toBe(false);
    const bad = await kiln(['build', modelFile, '--shapes', 'x=1xfour']);
    expect(bad.code).toBe(1);
    expect(bad.err).toMatch(/^kiln: --shapes: expected name=DxDx… \(e\.g\. input=1x3x224x224\), received 'x=1xfour'\n/);
    const precision = await kiln(['build', modelFile, '--shapes', 'x=1x4', '--precision', 'fp7', '-q']);
    expect(precision.err).toBe("kiln: Expected 'fp32' | 'fp16' | 'int8' | 'best' for option 'precision' but received 'fp7'\n");
  });

  test('a corrupted engine is refused naming the check that failed', async () => {
    const bytes = fs.readFileSync(engineFile);
    bytes[bytes.length - 20] ^= 0xff;
    const file = path.join(dir, 'bad.kiln');
    fs.writeFileSync(file, bytes);
    const r = await kiln(['run', file]);
    expect(r.code).toBe(1);
    expect(r.err).toBe('kiln: engine trailer: checksum mismatch; the engine bytes are corrupt\n');
    const flags = await kiln(['run', engineFile, '--shapes', 'x=1x4']);
    expect(flags.code).toBe(1);
    expect(flags.err).toMatch(/^kiln: --shapes applies to ONNX models;/);
  });

  test('a cancelled build exits 130 with "build cancelled" and writes nothing', async () => {
    const ac = new AbortController();
    ac.abort();
    const out = path.join(dir, 'cancelled.kiln');
    const r = await kiln(['build', modelFile, '-o', out, '--shapes', 'x=1x4'], ac.signal);
    expect(r.code).toBe(130);
    expect(r.err).toMatch(/kiln: build cancelled\n$/);
    expect(fs.existsSync(out)).toBe(false);
  });

  test('parseShapes reads several inputs', () => {
    expect(parseShapes('input_ids=1x128, mask=1x128')).toEqual({ input_ids: [1, 128], mask: [1, 128] });
  });
});

// The bin itself, as `npm install` leaves it (dist/ comes from `tsc`, run by npm's prepare script).
const BIN = path.join(__dirname, '..', '..', 'dist', 'cli', 'main.js');
const binBuilt = fs.existsSync(BIN) && fs.statSync(BIN).mtimeMs >= fs.statSync(path.join(__dirname, '..', '..', 'src', 'cli', 'main.ts')).mtimeMs;
(binBuilt ? describe : describe.skip)('the kiln bin (dist/cli/main.js; skipped when dist is older than src: run npm run build:ts)', () => {
  test('has a node shebang, exits 1 with a one-line error, 0 on success', () => {
    expect(fs.readFileSync(BIN, 'utf8').startsWith('#!/usr/bin/env node\n')).toBe(true);
    const fail = spawnSync(process.execPath, [BIN, 'run', path.join(dir, 'missing.kiln')], { encoding: 'utf8' });
    expect(fail.status).toBe(1);
    expect(fail.stderr).toMatch(/^kiln: cannot read '.*missing\.kiln' \(ENOENT\)\n$/);
    const ok = spawnSync(process.execPath, [BIN, 'run', engineFile], { encoding: 'utf8' });
    expect(ok.stderr).toBe('');
    expect(ok.status).toBe(0);
  });
});

describe('npm start (the demo)', () => {
  test('compiles, reloads, matches a reference output and reports; a wrong reference fails it', async () => {
    // The reference output for the tiny model on the demo's seeded input: (x + b)², computed here.
    const bytes = tinyModel();
    const { randomInputs } = await import('../../src/cli/inputs');
    const x = randomInputs([{ name: 'x', type: 'float32', dims: [2, 4] }], 7).x;
    const z = Array.from(x.data as Float32Array, (v, i) => Math.fround(Math.fround(v + B[i % 4]) ** 2));
    const ref = { input: { name: 'x', dims: [2, 4], seed: 7 }, outputs: { z: { dims: [2, 4], data: z } }, tolerance: { rtol: 1e-4, atol: 1e-5 } };
    const refFile = path.join(dir, 'ref.json');
    fs.writeFileSync(refFile, JSON.stringify(ref));
    const staticModel = path.join(dir, 'static.kiln.onnx');
    // demo() compiles without options, so give it a model with the shape fixed.
    const m = onnx.ModelProto.decode(bytes);
    for (const v of [...m.graph!.input!, ...m.graph!.output!]) v.type!.tensorType!.shape!.dim![0] = { dimValue: 2 };
    fs.writeFileSync(staticModel, onnx.ModelProto.encode(m).finish());
    let text = '';
    expect(await demo(staticModel, refFile, (t) => (text += t))).toBe(true);
    expect(text).toMatch(/1\. compiled in .* 2 ONNX nodes → 2 layers/);
    expect(text).toMatch(/3\. infer 'z' \[2,4\] vs onnxruntime-node: .* → MATCH/);
    expect(text).toMatch(/4\. bench \(200 runs after 20 warm-up\): p50 [\d.]+ ms/);
    expect(text).toMatch(/demo passed\n$/);
    ref.outputs.z.data[3] += 0.5;
    fs.writeFileSync(refFile, JSON.stringify(ref));
    text = '';
    expect(await demo(staticModel, refFile, (t) => (text += t))).toBe(false);
    expect(text).toMatch(/1 of 8 outside tolerance/);
  });

  // The bundled CNN needs Conv, pooling, Flatten, Gemm and Softmax; until every one is registered it cannot build.
  const DEMO = path.join(__dirname, '..', '..', 'models', 'demo');
  const demoOps = onnx.ModelProto.decode(fs.readFileSync(path.join(DEMO, 'model.onnx'))).graph!.node!.map((n) => n.opType!);
  const missing = [...new Set(demoOps.filter((op) => !getOp('', op)))];
  (missing.length ? test.skip : test)(`the bundled demo CNN matches onnxruntime-node${missing.length ? ` (waits for ops: ${missing.join(', ')})` : ''}`, async () => {
    let text = '';
    const ok = await demo(path.join(DEMO, 'model.onnx'), path.join(DEMO, 'reference.json'), (t) => (text += t));
    expect(text).toMatch(/MATCH/);
    expect(ok).toBe(true);
  });
});

describe('kiln build --precision int8', () => {
  const cnn = () => smallCnn();
  test('calibrates from a folder of .npy feeds, writes the calibration cache, and rebuilds from the cache alone', async () => {
    const m = path.join(dir, 'cnn.onnx');
    fs.writeFileSync(m, cnn());
    const calib = path.join(dir, 'calib');
    fs.mkdirSync(calib, { recursive: true });
    let s = 5;
    const r = () => ((s = (s * 1664525 + 1013904223) >>> 0) / 2 ** 32) * 2 - 1;
    for (let k = 0; k < 6; k++) fs.writeFileSync(path.join(calib, `feed${k}.npy`), npy(Float32Array.from({ length: 3 * 16 * 16 }, r), [1, 3, 16, 16]));
    const cache = path.join(dir, 'calib.json');
    const out = path.join(dir, 'cnn.kiln');
    const a = await kiln(['build', m, '-o', out, '--precision', 'int8', '--calibration', calib, '--calibration-cache', cache, '--calibrator', 'minmax', '-q']);
    expect(a.err).toBe('');
    expect(a.code).toBe(0);
    expect(a.out).toMatch(/cpu int8/);
    expect(JSON.parse(fs.readFileSync(cache, 'utf8')).calibrator).toBe('minmax');
    // no feeds this time: the cache has the ranges
    const b = await kiln(['build', m, '-o', out, '--precision', 'int8', '--calibration-cache', cache, '--calibrator', 'minmax', '--layer-precision', 'conv1=fp32', '-q']);
    expect(b.code).toBe(0);
    const i = await kiln(['inspect', out, '--json']);
    const layers = JSON.parse(i.out).report.layers as { name: string; precision: string }[];
    expect(layers.find((l) => l.name === 'conv1')!.precision).toBe('fp32');
    expect(layers.some((l) => l.precision === 'int8')).toBe(true);
  });

  test('an empty calibration folder and a bad --layer-precision are clear errors', async () => {
    const m = path.join(dir, 'cnn.onnx');
    fs.writeFileSync(m, cnn());
    const empty = path.join(dir, 'empty');
    fs.mkdirSync(empty, { recursive: true });
    const a = await kiln(['build', m, '-o', path.join(dir, 'x.kiln'), '--precision', 'int8', '--calibration', empty]);
    expect(a.code).toBe(1);
    expect(a.err).toMatch(/--calibration: no feeds in '.*empty' \(expected \.npy files\)/);
    const b = await kiln(['build', m, '-o', path.join(dir, 'x.kiln'), '--layer-precision', 'conv1=fp8']);
    expect(b.code).not.toBe(0);
    expect(b.err).toMatch(/--layer-precision: expected name=fp32\|fp16\|int8, received 'conv1=fp8'/);
  });
});
