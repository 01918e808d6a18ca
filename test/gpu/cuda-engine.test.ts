/**
 * Engines on the cuda backend: built through compile(), they serialize and load back with identical
 * outputs and tactics, runs in parallel agree, and an engine whose header names another GPU or other
 * library versions is refused with ENGINE_MISMATCH.
 */
import { KilnError, Tensor, compile, loadEngine } from '../../src';
import { buildModel } from '../helpers/model-builder';
import { native } from '../../src/native/binding';
import { noCuda } from './cuda-helpers';

const cudaInfo = () => (native().info() as unknown as { devices: Record<string, { device: string; libraries: string }> }).devices.cuda;

function model(): Uint8Array {
  const w = Array.from({ length: 16 * 8 * 9 }, (_, i) => Math.sin(i) * 0.1);
  return buildModel({
    nodes: [
      { op: 'Conv', inputs: ['x', 'w'], outputs: ['c'], attrs: { pads: [1, 1, 1, 1] } },
      { op: 'Relu', inputs: ['c'], outputs: ['r'] },
      { op: 'Flatten', inputs: ['r'], outputs: ['f'] },
      { op: 'Gemm', inputs: ['f', 'g'], outputs: ['y'], attrs: { transB: 1 } },
    ],
    inputs: [{ name: 'x', dims: [2, 8, 6, 6] }],
    outputs: [{ name: 'y', dims: [2, 10] }],
    initializers: [
      { name: 'w', dims: [16, 8, 3, 3], floats: w },
      { name: 'g', dims: [10, 16 * 36], floats: Array.from({ length: 10 * 576 }, (_, i) => Math.cos(i) * 0.05) },
    ],
  });
}

const x = new Tensor('float32', Float32Array.from({ length: 2 * 8 * 36 }, (_, i) => Math.sin(i * 0.37)), [2, 8, 6, 6]);

// crc32 of the engine trailer (engine_format.cc), to forge a header that passes the checksum.
function crc32(b: Uint8Array): number {
  let c = 0xffffffff;
  for (const v of b) {
    c ^= v;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0xedb88320 : c >>> 1;
  }
  return (c ^ 0xffffffff) >>> 0;
}
function forge(bytes: Uint8Array, from: string, to: string): Uint8Array {
  const b = new Uint8Array(bytes);
  const at = Buffer.from(b).indexOf(Buffer.from(from));
  expect(at).toBeGreaterThan(0);
  b.set(Buffer.from(to), at);
  new DataView(b.buffer).setUint32(b.length - 8, crc32(b.subarray(0, b.length - 8)), true);
  return b;
}

const d = noCuda ? describe.skip : describe;
if (noCuda) test.skip(`GPU tests skipped: ${noCuda}`, () => undefined);

d('cuda engines', () => {
  test('build, serialize, load: same outputs, same tactics, header names the GPU', async () => {
    const e = await compile(model(), { device: 'cuda' });
    const cpu = await compile(model(), { device: 'cpu' });
    const ref = (await cpu.infer({ x })).y.data as Float32Array;
    const out = (await e.infer({ x })).y.data as Float32Array;
    for (let i = 0; i < ref.length; i++) expect(Math.abs(out[i] - ref[i])).toBeLessThan(1e-3 * (1 + Math.abs(ref[i])));
    const info = e.report;
    expect(info.backend).toBe('cuda');
    expect(info.device).toMatch(/NVIDIA|GPU|Tesla|H100|H200|A100/);
    const bytes = e.serialize();
    const back = await loadEngine(bytes);
    expect(back.report.layers.map((l) => l.tactic)).toEqual(info.layers.map((l) => l.tactic));
    const outs = await Promise.all([0, 1, 2, 3].map(() => back.infer({ x })));
    for (const o of outs) expect(Array.from(o.y.data as Float32Array)).toEqual(Array.from(out));
    expect(back.serialize()).toEqual(bytes);
    back.dispose();
    e.dispose();
    cpu.dispose();
  });

  test('a header for another GPU or other libraries is refused', async () => {
    const e = await compile(model(), { device: 'cuda' });
    const h = { device: e.report.device, libraries: JSON.parse(cudaInfo().libraries) as Record<string, number> };
    const bytes = e.serialize();
    e.dispose();
    const other = h.device.slice(0, -1) + (h.device.endsWith('X') ? 'Y' : 'X');
    let err = await loadEngine(forge(bytes, h.device, other)).then(() => undefined, (x: KilnError) => x);
    expect(err?.code).toBe('ENGINE_MISMATCH');
    expect(err?.message).toMatch(/rebuild the engine on this machine/);
    const lib = `"cudnn":${h.libraries.cudnn}`;
    const bumped = `"cudnn":${String(h.libraries.cudnn).slice(0, -1)}${(Number(String(h.libraries.cudnn).slice(-1)) + 1) % 10}`;
    err = await loadEngine(forge(bytes, lib, bumped)).then(() => undefined, (x: KilnError) => x);
    expect(err?.code).toBe('ENGINE_MISMATCH');
    expect(err?.message).toMatch(/built with libraries/);
  });

  test('deviceId out of range is a clear error', async () => {
    await expect(compile(model(), { device: 'cuda', deviceId: 99 })).rejects.toThrow(/deviceId 99 is out of range/);
    const e = await compile(model(), { device: 'cuda' });
    const bytes = e.serialize();
    e.dispose();
    await expect(loadEngine(bytes, { deviceId: 99 })).rejects.toThrow(/deviceId 99 is out of range/);
    const again = await loadEngine(bytes, { deviceId: 0 });
    expect((await again.infer({ x })).y.dims).toEqual([2, 10]);
    again.dispose();
  });

  test('an fp16 rebuild with the timing cache reuses the accuracy guard\'s findings', async () => {
    const fs = await import('fs');
    const os = await import('os');
    const path = await import('path');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-guard-'));
    const file = path.join(dir, 'cache.json');
    try {
      const a = await compile(model(), { device: 'cuda', precision: 'fp16', timingCache: file });
      const cache = JSON.parse(fs.readFileSync(file, 'utf8'));
      const keys = Object.keys(cache.guards ?? {});
      expect(keys).toHaveLength(1);
      expect(cache.guards[keys[0]]).toMatchObject({ checked: a.report.precisionGuard!.checked, pinned: a.report.precisionGuard!.pinned });
      expect(a.report.passes.some((p) => p.name === 'precision-guard-cached')).toBe(false);
      // Doctor the entry: the rebuild must take its pin from the cache (the guard would find none).
      const conv = a.report.layers.find((l) => l.kind === 'Conv')!;
      cache.guards[keys[0]].pinned = [{ layer: conv.name, kind: 'Conv', reason: 'doctored' }];
      fs.writeFileSync(file, JSON.stringify(cache));
      const b = await compile(model(), { device: 'cuda', precision: 'fp16', timingCache: file });
      expect(b.report.passes.find((p) => p.name === 'precision-guard-cached')).toMatchObject({ changed: 1, nodes: [conv.name] });
      expect(b.report.layers.find((l) => l.name === conv.name)!.precision).toBe('fp32');
      // Other options are another key: the guard runs again.
      const c = await compile(model(), { device: 'cuda', precision: 'fp16', timingCache: file, tolerance: 0.05 });
      expect(c.report.passes.some((p) => p.name === 'precision-guard-cached')).toBe(false);
      expect(Object.keys(JSON.parse(fs.readFileSync(file, 'utf8')).guards)).toHaveLength(2);
      for (const e of [a, b, c]) e.dispose();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
