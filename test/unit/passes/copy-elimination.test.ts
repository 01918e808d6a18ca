import { Tensor, compile } from '../../../src';
import { buildModel } from '../../helpers/model-builder';
import { optimizedMatches } from '../../helpers/passes';

// Conv → Reshape → Split (outer axis, contiguous) → two consumers.
const model = () =>
  buildModel({
    nodes: [
      { op: 'Conv', name: 'c', inputs: ['x', 'W'], outputs: ['h'] },
      { op: 'Reshape', name: 'r', inputs: ['h', 'shape'], outputs: ['f'] },
      { op: 'Split', name: 's', inputs: ['f', 'sizes'], outputs: ['a', 'b'], attrs: { axis: 0 } },
      { op: 'Sigmoid', name: 'sa', inputs: ['a'], outputs: ['ya'] },
      { op: 'Neg', name: 'nb', inputs: ['b'], outputs: ['yb'] },
    ],
    inputs: [{ name: 'x', dims: [1, 2, 3, 3] }],
    outputs: [{ name: 'ya', dims: [2, 9] }, { name: 'yb', dims: [2, 9] }],
    initializers: [
      { name: 'W', dims: [4, 2, 1, 1], floats: [1, 0, 0, 1, 1, 1, -1, 2] },
      { name: 'shape', dims: [2], int64s: [4, 9], type: 7 },
      { name: 'sizes', dims: [2], int64s: [2, 2], type: 7 },
    ],
  });

test('a reshape and a contiguous split become views of the conv output', async () => {
  const e = await compile(model(), { optimize: { 'elementwise-fusion': false } });
  expect(e.report.layers.map((l) => l.kind)).toEqual(['Conv', 'Unary', 'Unary']);
  expect(e.report.passes.find((p) => p.name === 'copy-elimination')!.nodes.sort()).toEqual(['r', 's', 's']);
  const x = new Tensor('float32', Float32Array.from({ length: 18 }, (_, i) => i - 9), [1, 2, 3, 3]);
  const off = await compile(model(), { optimize: false });
  const [got, want] = [await e.infer({ x }), await off.infer({ x })];
  expect(Array.from(got.ya.data as Float32Array)).toEqual(Array.from(want.ya.data as Float32Array));
  expect(Array.from(got.yb.data as Float32Array)).toEqual(Array.from(want.yb.data as Float32Array));
  expect(await optimizedMatches(model())).toBeLessThan(1e-6);
  e.dispose();
  off.dispose();
});

test('a reshape of a graph input stays a copy', async () => {
  const m = buildModel({
    nodes: [
      { op: 'Reshape', name: 'r', inputs: ['x', 'shape'], outputs: ['f'] },
      { op: 'Relu', name: 'a', inputs: ['f'], outputs: ['y'] },
    ],
    inputs: [{ name: 'x', dims: [2, 3] }],
    outputs: [{ name: 'y', dims: [6] }],
    initializers: [{ name: 'shape', dims: [1], int64s: [6], type: 7 }],
  });
  const e = await compile(m);
  expect(e.report.layers.map((l) => l.kind)).toEqual(['Copy', 'Unary']);
  e.dispose();
});
