/** Errors a user can cause at compile time say where and why. */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { KilnError, compile } from '../../src';
import { addModel, buildModel } from '../helpers/model-builder';

test('malformed ONNX bytes', async () => {
  const err = await compile(new Uint8Array([0xff, 0xff, 0xff, 0xff, 0x0f, 1, 2])).catch((e) => e);
  expect(err).toBeInstanceOf(KilnError);
  expect(err.code).toBe('INVALID_MODEL');
  expect(err.message).toMatch(/^model: the bytes are not a valid ONNX ModelProto/);
});

test('random garbage never crashes the importer', async () => {
  let seed = 1;
  for (let k = 0; k < 50; k++) {
    const b = new Uint8Array(64 + k * 7);
    for (let i = 0; i < b.length; i++) b[i] = (seed = (seed * 1664525 + 1013904223) >>> 0) >>> 24;
    const err = await compile(b).catch((e) => e);
    expect(err).toBeInstanceOf(KilnError);
  }
});

test('a missing file', async () => {
  await expect(compile('/nonexistent/model.onnx')).rejects.toThrow("model: cannot read '/nonexistent/model.onnx' (ENOENT)");
});

test('an op kiln does not know names the node', async () => {
  const m = buildModel({
    nodes: [{ op: 'FancyOp', inputs: ['x'], outputs: ['y'], name: 'mystery', domain: 'com.example' }],
    inputs: [{ name: 'x', dims: [2] }],
    outputs: [{ name: 'y', dims: [2] }],
  });
  const err = await compile(m).catch((e) => e);
  expect(err.code).toBe('UNSUPPORTED');
  expect(err.message).toMatch(/^node 'mystery' \(com\.example:FancyOp, #0\): kiln has no implementation of com\.example:FancyOp/);
});

test('a value nothing produces', async () => {
  const m = buildModel({
    nodes: [{ op: 'Add', inputs: ['x', 'ghost'], outputs: ['y'], name: 'add' }],
    inputs: [{ name: 'x', dims: [2] }],
    outputs: [{ name: 'y', dims: [2] }],
  });
  await expect(compile(m)).rejects.toThrow("node 'add' (Add, #0): input 'ghost' is not produced by any node, input or initializer");
});

test('shapes that do not broadcast name the node', async () => {
  const m = buildModel({
    nodes: [{ op: 'Add', inputs: ['x', 'z'], outputs: ['y'], name: 'add' }],
    inputs: [{ name: 'x', dims: [2, 3] }, { name: 'z', dims: [4] }],
    outputs: [{ name: 'y' }],
  });
  await expect(compile(m)).rejects.toThrow("node 'add' (Add): shapes [2,3] and [4] do not broadcast");
});

describe('symbolic dims', () => {
  const m = buildModel({
    nodes: [{ op: 'Add', inputs: ['x', 'x'], outputs: ['y'] }],
    inputs: [{ name: 'x', dims: ['batch', 4] }],
    outputs: [{ name: 'y', dims: ['batch', 4] }],
  });
  test('left without a value is an error naming input and dim, showing the option', async () => {
    await expect(compile(m)).rejects.toThrow(
      "input 'x' has symbolic dim 'batch' (dim 0 of [batch,4]); give it a value with the 'shapes' option, e.g. shapes: { x: [1, 4] }",
    );
  });
  test('given a value, the engine takes that shape', async () => {
    const e = await compile(m, { shapes: { x: [3, 4] } });
    expect(e.inputs[0].dims).toEqual([3, 4]);
    expect(e.outputs[0].dims).toEqual([3, 4]);
    e.dispose();
  });
  test('a shape that contradicts a fixed dim', async () => {
    await expect(compile(m, { shapes: { x: [3, 5] } })).rejects.toThrow("Option 'shapes.x' sets dim 1 to 5 but the model fixes it at 4");
  });
  test('a shape of the wrong rank', async () => {
    await expect(compile(m, { shapes: { x: [3] } })).rejects.toThrow("Option 'shapes.x' has rank 1 but input 'x' has shape [batch,4] (rank 2)");
  });
  test('a shape for an input that does not exist', async () => {
    await expect(compile(m, { shapes: { nope: [1] } })).rejects.toThrow("Option 'shapes' names 'nope', which is not an input of the model; its inputs are 'x'");
  });
});

test('a precision the cpu backend cannot do is an error, not a fallback', async () => {
  await expect(compile(addModel(), { precision: 'fp16', device: 'cpu' })).rejects.toThrow(
    "Option 'precision' is 'fp16' but the cpu backend runs fp32 and int8 only; use precision: 'fp32', 'int8' or a CUDA device",
  );
});

test('unknown option names it', async () => {
  await expect(compile(addModel(), { precison: 'fp32' } as never)).rejects.toThrow(/^Unknown option 'precison'; the options are precision, device/);
});

test('an already-aborted signal cancels before any work', async () => {
  const ac = new AbortController();
  ac.abort();
  await expect(compile(addModel(), { signal: ac.signal })).rejects.toMatchObject({ code: 'CANCELLED' });
});

test('aborting during the build cancels it cleanly', async () => {
  const ac = new AbortController();
  const phases: string[] = [];
  const p = compile(addModel(), {
    signal: ac.signal,
    onProgress: (ev) => {
      phases.push(ev.phase);
      if (ev.phase === 'passes') ac.abort();
    },
  });
  await expect(p).rejects.toMatchObject({ code: 'CANCELLED' });
  expect(phases).toContain('passes');
  expect(phases).not.toContain('done');
});

test('progress reports every phase in order', async () => {
  const phases: string[] = [];
  const e = await compile(addModel(), { onProgress: (ev) => phases.push(ev.phase) });
  const order = ['import', 'infer', 'passes', 'lower', 'tactics', 'done'];
  expect([...new Set(phases)]).toEqual(order);
  e.dispose();
});

describe('external data', () => {
  let dir: string;
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-ext-'));
    const w = new Float32Array([0, 0, 10, 20, 30, 40]);
    fs.writeFileSync(path.join(dir, 'weights.bin'), Buffer.from(w.buffer));
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
  const model = (external: { location: string; offset?: number; length?: number }) =>
    buildModel({
      nodes: [{ op: 'Add', inputs: ['x', 'b'], outputs: ['y'] }],
      inputs: [{ name: 'x', dims: [4] }],
      outputs: [{ name: 'y', dims: [4] }],
      initializers: [{ name: 'b', dims: [4], external }],
    });
  test('is read relative to the model file with offset and length', async () => {
    const file = path.join(dir, 'm.onnx');
    fs.writeFileSync(file, model({ location: 'weights.bin', offset: 8, length: 16 }));
    const e = await compile(file);
    const { Tensor } = await import('../../src');
    const out = await e.infer({ x: new Tensor('float32', [1, 1, 1, 1], [4]) });
    expect(Array.from(out.y.data as Float32Array)).toEqual([11, 21, 31, 41]);
    e.dispose();
  });
  test('a range past the end of the file is refused', async () => {
    const file = path.join(dir, 'm2.onnx');
    fs.writeFileSync(file, model({ location: 'weights.bin', offset: 16, length: 16 }));
    await expect(compile(file)).rejects.toThrow("initializer 'b': external data range offset 16 length 16 is outside 'weights.bin' (24 bytes)");
  });
  test('a location outside the model directory is refused', async () => {
    const file = path.join(dir, 'm3.onnx');
    fs.writeFileSync(file, model({ location: '../etc/passwd' }));
    await expect(compile(file)).rejects.toThrow("initializer 'b': external data location '../etc/passwd' points outside the model's directory");
  });
  test('from bytes, external data needs the path', async () => {
    await expect(compile(model({ location: 'weights.bin' }))).rejects.toThrow(/compile the model from its path/);
  });
});

test("precision 'int8' without calibration data is refused, not built with made-up scales", async () => {
  const conv = buildModel({
    nodes: [{ op: 'Conv', name: 'c', inputs: ['x', 'w'], outputs: ['y'] }],
    inputs: [{ name: 'x', dims: [1, 2, 4, 4] }],
    outputs: [{ name: 'y', dims: [1, 3, 4, 4] }],
    initializers: [{ name: 'w', dims: [3, 2, 1, 1], floats: [1, 2, 3, 4, 5, 6] }],
  });
  await expect(compile(conv, { precision: 'int8' })).rejects.toThrow(/^precision 'int8' needs calibration data: pass 'calibration'/);
});

test("precision 'best' without calibration builds float only and says so; a pin it cannot run is an error naming it", async () => {
  const e = await compile(addModel(), { precision: 'best', device: 'cpu' });
  expect(e.report.precision).toBe('best');
  expect(e.report.warnings).toContain("precision 'best': int8 not considered: no calibration data (give 'calibration' or a 'calibrationCache'); only fp32 compared");
  e.dispose();
  await expect(compile(addModel(), { precision: 'best', device: 'cpu', layerPrecisions: { add0: 'fp16' } })).rejects.toThrow(
    "Option 'layerPrecisions' pins 'add0' to fp16, which precision 'best' cannot run here: it compares fp32 on the cpu backend",
  );
  await expect(compile(addModel(), { precision: 'best', device: 'cpu', layerPrecisions: { add0: 'int8' } })).rejects.toThrow(
    "Option 'layerPrecisions' pins 'add0' to int8, which precision 'best' cannot run here: it compares fp32 on the cpu backend (int8 needs 'calibration' or a 'calibrationCache')",
  );
});
