/**
 * Copy fusion: a strided window read through reshapes by another strided window becomes one window
 * (attention's head split: merged Q/K/V projection → column window → Reshape → Transpose).
 */
import { Tensor, compile } from '../../../src';
import { composeWindows } from '../../../src/passes/copy-fusion';
import { buildModel } from '../../helpers/model-builder';
import { optimizedMatches } from '../../helpers/passes';

// x [1, 4, 12] → Split on the last axis (column windows of 6) → Reshape [1, 4, 2, 3] → Transpose to
// [1, 2, 4, 3] (heads first), then an element-wise op on each so the copies have one reader.
const model = () =>
  buildModel({
    nodes: [
      { op: 'Relu', name: 'pre', inputs: ['x'], outputs: ['h'] },
      { op: 'Split', name: 's', inputs: ['h', 'sizes'], outputs: ['a', 'b'], attrs: { axis: 2 } },
      { op: 'Reshape', name: 'ra', inputs: ['a', 'shape'], outputs: ['a4'] },
      { op: 'Transpose', name: 'ta', inputs: ['a4'], outputs: ['at'], attrs: { perm: [0, 2, 1, 3] } },
      { op: 'Reshape', name: 'rb', inputs: ['b', 'shape'], outputs: ['b4'] },
      { op: 'Transpose', name: 'tb', inputs: ['b4'], outputs: ['bt'], attrs: { perm: [0, 2, 3, 1] } },
      { op: 'Sigmoid', name: 'ya', inputs: ['at'], outputs: ['y1'] },
      { op: 'Neg', name: 'yb', inputs: ['bt'], outputs: ['y2'] },
    ],
    inputs: [{ name: 'x', dims: [1, 4, 12] }],
    outputs: [{ name: 'y1', dims: [1, 2, 4, 3] }, { name: 'y2', dims: [1, 2, 3, 4] }],
    initializers: [
      { name: 'sizes', dims: [2], int64s: [6, 6], type: 7 },
      { name: 'shape', dims: [4], int64s: [1, 4, 2, 3], type: 7 },
    ],
  });

test('a column window, a reshape and a transpose become one strided copy per head tensor', async () => {
  const e = await compile(model(), { optimize: { 'elementwise-fusion': false } });
  const fused = e.report.passes.find((p) => p.name === 'copy-fusion')!;
  expect(fused.nodes.sort()).toEqual(['ta', 'tb']);
  expect(e.report.layers.map((l) => l.kind)).toEqual(['Unary', 'StridedCopy', 'StridedCopy', 'Unary', 'Unary']);
  // the fused layer names every ONNX node it was made from
  expect(e.report.layers.find((l) => l.name === 'ta')!.fusedFrom.sort()).toEqual(['ra', 's', 'ta']);
  const x = new Tensor('float32', Float32Array.from({ length: 48 }, (_, i) => i - 20), [1, 4, 12]);
  const off = await compile(model(), { optimize: false });
  const [got, want] = [await e.infer({ x }), await off.infer({ x })];
  expect(Array.from(got.y1.data as Float32Array)).toEqual(Array.from(want.y1.data as Float32Array));
  expect(Array.from(got.y2.data as Float32Array)).toEqual(Array.from(want.y2.data as Float32Array));
  expect(await optimizedMatches(model())).toBeLessThan(1e-6);
  e.dispose();
  off.dispose();
});

test('copy-fusion off: the windows and transposes stay separate copies', async () => {
  const e = await compile(model(), { optimize: { 'elementwise-fusion': false, 'copy-fusion': false } });
  expect(e.report.layers.filter((l) => l.kind === 'StridedCopy').length).toBe(4);
  e.dispose();
});

describe('composeWindows', () => {
  test('a window of a window is a window: offsets and strides compose', () => {
    // inner: rows 1..2 of a [4, 5] matrix, columns 1..3 → [2, 3]; outer: its transpose [3, 2]
    const inner = { shape: [2, 3], strides: [5, 1], offset: 6 };
    const outer = { shape: [3, 2], strides: [1, 3], offset: 0 };
    expect(composeWindows(inner, outer)).toEqual({ shape: [3, 2], strides: [1, 5], offset: 6 });
  });
  test('a flattening of a transpose is not a window: undefined', () => {
    const transpose = { shape: [3, 2], strides: [1, 3], offset: 0 };
    expect(composeWindows(transpose, { shape: [6], strides: [1], offset: 0 })).toBeUndefined();
  });
});
