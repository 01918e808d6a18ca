import { Tensor, compile } from '../../../src';
import { buildModel } from '../../helpers/model-builder';
import { optimizedMatches } from '../../helpers/passes';

let seed = 5;
const rand = () => ((seed = (seed * 1664525 + 1013904223) >>> 0) / 2 ** 32) * 2 - 1;
const W1 = Array.from({ length: 3 * 4 }, rand);
const W2 = Array.from({ length: 5 * 4 * 9 }, rand);

// Inception-style: two branches concatenated on channels, then a consumer.
const inception = (batch: number) =>
  buildModel({
    nodes: [
      { op: 'Conv', name: 'b1', inputs: ['x', 'W1'], outputs: ['p'] },
      { op: 'Conv', name: 'b2', inputs: ['x', 'W2'], outputs: ['q'], attrs: { pads: [1, 1, 1, 1] } },
      { op: 'Concat', name: 'cat', inputs: ['p', 'q'], outputs: ['c'], attrs: { axis: 1 } },
      { op: 'Sigmoid', name: 'after', inputs: ['c'], outputs: ['y'] },
    ],
    inputs: [{ name: 'x', dims: [batch, 4, 6, 6] }],
    outputs: [{ name: 'y', dims: [batch, 8, 6, 6] }],
    initializers: [
      { name: 'W1', dims: [3, 4, 1, 1], floats: W1 },
      { name: 'W2', dims: [5, 4, 3, 3], floats: W2 },
    ],
  });

test('channel concat at batch 1: producers write into the output, no Concat layer', async () => {
  const e = await compile(inception(1));
  expect(e.report.layers.map((l) => l.kind)).toEqual(['Conv', 'Conv', 'Unary']);
  expect(e.report.passes.find((p) => p.name === 'concat-elimination')!.nodes).toEqual(['cat']);
  const x = new Tensor('float32', Float32Array.from({ length: 144 }, rand), [1, 4, 6, 6]);
  const off = await compile(inception(1), { optimize: false });
  expect(Array.from((await e.infer({ x })).y.data as Float32Array)).toEqual(Array.from((await off.infer({ x })).y.data as Float32Array));
  e.dispose();
  off.dispose();
});

test('batch 2 slices are not contiguous: the Concat stays', async () => {
  const e = await compile(inception(2));
  expect(e.report.layers.map((l) => l.kind)).toContain('Concat');
  expect(await optimizedMatches(inception(2))).toBeLessThan(1e-6);
  e.dispose();
});

test('a concat input that is also a graph output keeps its own storage', async () => {
  const m = buildModel({
    nodes: [
      { op: 'Relu', name: 'a', inputs: ['x'], outputs: ['p'] },
      { op: 'Neg', name: 'b', inputs: ['x'], outputs: ['q'] },
      { op: 'Concat', name: 'cat', inputs: ['p', 'q'], outputs: ['y'], attrs: { axis: 0 } },
    ],
    inputs: [{ name: 'x', dims: [3] }],
    outputs: [{ name: 'y', dims: [6] }, { name: 'p', dims: [3] }],
  });
  const e = await compile(m);
  expect(e.report.layers.map((l) => l.kind)).toContain('Concat');
  const out = await e.infer({ x: new Tensor('float32', [1, -2, 3], [3]) });
  expect(Array.from(out.y.data as Float32Array)).toEqual([1, 0, 3, -1, 2, -3]);
  e.dispose();
});
