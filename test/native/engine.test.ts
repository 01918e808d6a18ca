/** Engine round trips, the memory plan and the build report. */
import { Tensor, compile, loadEngine } from '../../src';
import { buildModel } from '../helpers/model-builder';

// A chain of 6 Adds over [1,256] float32 (1 KiB each): lifetimes let the arena reuse memory.
const chain = () =>
  buildModel({
    nodes: Array.from({ length: 6 }, (_, i) => ({ op: 'Add', name: `add${i}`, inputs: [i ? `t${i - 1}` : 'x', 'x'], outputs: [i === 5 ? 'y' : `t${i}`] })),
    inputs: [{ name: 'x', dims: [1, 256] }],
    outputs: [{ name: 'y', dims: [1, 256] }],
  });

// Element-wise fusion would make the chain one layer: off where the test looks at single layers.
const UNFUSED = { optimize: { 'elementwise-fusion': false } };

test('the arena reuses memory of dead tensors', async () => {
  const e = await compile(chain(), UNFUSED);
  const { memory, layers } = e.report;
  expect(layers).toHaveLength(6);
  // 5 intermediates + the output would take 6 KiB without reuse; two live at a time at most.
  expect(memory.arenaBytes).toBeLessThanOrEqual(2 * 1024);
  expect(memory.arenaBytes).toBeGreaterThanOrEqual(1024);
  const out = await e.infer({ x: new Tensor('float32', new Float32Array(256).fill(1), [1, 256]) });
  expect(Array.from(out.y.data as Float32Array).every((v) => v === 7)).toBe(true);
  e.dispose();
});

test('report lists layers with fused-from nodes, tactics and passes', async () => {
  const e = await compile(chain(), UNFUSED);
  const r = e.report;
  expect(r.backend).toBe('cpu');
  expect(r.precision).toBe('fp32');
  expect(r.onnxNodes).toBe(6);
  expect(r.layers[0]).toMatchObject({ name: 'add0', kind: 'Binary', fusedFrom: ['add0'], tactic: 'cpu.binary' });
  expect(r.layers[0].candidates[0].tactic).toBe('cpu.binary');
  expect(r.passes.map((p) => p.name)).toEqual(expect.arrayContaining(['constant-folding', 'dead-layer-elimination', 'noop-removal']));
  expect(r.buildOptions).toMatchObject({ precision: 'fp32', device: 'auto' });
  e.dispose();
});

test('serialize → load gives the same engine and the same bytes', async () => {
  const e = await compile(chain(), UNFUSED);
  const bytes = e.serialize();
  const again = await loadEngine(bytes);
  expect(again.report.layers.map((l) => l.tactic)).toEqual(e.report.layers.map((l) => l.tactic));
  expect(again.report.passes).toEqual(e.report.passes);
  expect(Buffer.from(again.serialize())).toEqual(Buffer.from(bytes));
  const x = new Tensor('float32', new Float32Array(256).map((_, i) => i), [1, 256]);
  expect((await again.infer({ x })).y.data).toEqual((await e.infer({ x })).y.data);
  e.dispose();
  again.dispose();
});

test('constant subgraphs fold away and dead layers go', async () => {
  const m = buildModel({
    nodes: [
      { op: 'Add', name: 'const_add', inputs: ['c', 'c'], outputs: ['c2'] },
      { op: 'Mul', name: 'use', inputs: ['x', 'c2'], outputs: ['y'] },
      { op: 'Sub', name: 'dead', inputs: ['x', 'x'], outputs: ['unused'] },
      { op: 'Identity', name: 'noop', inputs: ['y'], outputs: ['y2'] },
      { op: 'Add', name: 'last', inputs: ['y2', 'x'], outputs: ['out'] },
    ],
    inputs: [{ name: 'x', dims: [2] }],
    outputs: [{ name: 'out', dims: [2] }],
    initializers: [{ name: 'c', dims: [2], floats: [1, 2] }],
  });
  const e = await compile(m, UNFUSED);
  const passes = Object.fromEntries(e.report.passes.map((p) => [p.name, p.nodes]));
  expect(passes['constant-folding']).toEqual(['const_add']);
  expect(passes['dead-layer-elimination']).toEqual(['dead']);
  expect(passes['noop-removal']).toEqual(['noop']);
  expect(e.report.layers.map((l) => l.name)).toEqual(['use', 'last']);
  const out = await e.infer({ x: new Tensor('float32', [1, 1], [2]) });
  expect(Array.from(out.out.data as Float32Array)).toEqual([3, 5]);
  const off = await compile(m, { optimize: false });
  expect(off.report.layers.map((l) => l.name)).toEqual(['use', 'dead', 'noop', 'last']);
  expect(Array.from((await off.infer({ x: new Tensor('float32', [1, 1], [2]) })).out.data as Float32Array)).toEqual([3, 5]);
  e.dispose();
  off.dispose();
});

test('element-wise fusion makes the chain one layer with the same numbers', async () => {
  const fused = await compile(chain());
  const plain = await compile(chain(), UNFUSED);
  expect(fused.report.layers).toHaveLength(1);
  expect(fused.report.layers[0].fusedFrom).toEqual(['add0', 'add1', 'add2', 'add3', 'add4', 'add5']);
  const x = new Tensor('float32', new Float32Array(256).map((_, i) => i / 7), [1, 256]);
  expect((await fused.infer({ x })).y.data).toEqual((await plain.infer({ x })).y.data);
  fused.dispose();
  plain.dispose();
});

test('a layer that fails on the generated timing data does not stop the timing of later layers', async () => {
  // GatherElements reads indices made from the float input (×100): out of range on the generated data,
  // so its run throws at build; the Conv after it must still have every candidate timed.
  const m = buildModel({
    nodes: [
      { op: 'Mul', name: 'scale', inputs: ['x', 'hundred'], outputs: ['xs'] },
      { op: 'Cast', name: 'idx', inputs: ['xs'], outputs: ['i'], attrs: { to: 7 } },
      { op: 'GatherElements', name: 'ge', inputs: ['d', 'i'], outputs: ['g'], attrs: { axis: 0 } },
      { op: 'Conv', name: 'conv', inputs: ['img', 'W'], outputs: ['c'], attrs: { pads: [1, 1, 1, 1] } },
    ],
    inputs: [{ name: 'x', dims: [4] }, { name: 'd', dims: [4] }, { name: 'img', dims: [1, 4, 8, 8] }],
    outputs: [{ name: 'g', dims: [4] }, { name: 'c', dims: [1, 8, 8, 8] }],
    initializers: [
      { name: 'hundred', dims: [], floats: [100] },
      { name: 'W', dims: [8, 4, 3, 3], floats: Array.from({ length: 288 }, (_, i) => Math.sin(i)) },
    ],
  });
  const e = await compile(m, UNFUSED);
  const conv = e.report.layers.find((l) => l.kind === 'Conv')!;
  expect(conv.candidates.length).toBeGreaterThan(1);
  expect(conv.candidates.every((c) => c.ms !== null)).toBe(true);
  // and the engine still refuses out-of-range indices at infer, naming the layer
  const x = new Tensor('float32', [0.5, 0, 0, 0], [4]);
  const d = new Tensor('float32', [1, 2, 3, 4], [4]);
  const img = new Tensor('float32', new Float32Array(256), [1, 4, 8, 8]);
  await expect(e.infer({ x, d, img })).rejects.toThrow(/ge.*GatherElements.*out of range|out of range/);
  e.dispose();
});
