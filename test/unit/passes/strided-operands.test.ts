/**
 * Strided operands: a Gemm reads its operand in place when it is a strided window (offset, leading
 * dimension, batch strides, transpose) of a larger tensor — attention's heads split out of a merged
 * projection — and the copy goes.
 */
import { Tensor, compile } from '../../../src';
import { operandThrough, outputThrough } from '../../../src/passes/strided-operands';
import { sources } from '../../../src/passes/copy-fusion';
import { buildModel } from '../../helpers/model-builder';
import { optimizedMatches } from '../../helpers/passes';

// x [1, 4, 12] → Relu → Split (two column windows of 6) → Reshape [1, 4, 2, 3] → Transpose: q to
// [1, 2, 4, 3], k to [1, 2, 3, 4] (Kᵀ) → MatMul(q, kᵀ) [1, 2, 4, 4] → Tanh (no Softmax: attention
// recognition leaves it)
const model = () =>
  buildModel({
    nodes: [
      { op: 'Relu', name: 'pre', inputs: ['x'], outputs: ['h'] },
      { op: 'Split', name: 's', inputs: ['h', 'sizes'], outputs: ['a', 'b'], attrs: { axis: 2 } },
      { op: 'Reshape', name: 'ra', inputs: ['a', 'shape'], outputs: ['a4'] },
      { op: 'Transpose', name: 'tq', inputs: ['a4'], outputs: ['q'], attrs: { perm: [0, 2, 1, 3] } },
      { op: 'Reshape', name: 'rb', inputs: ['b', 'shape'], outputs: ['b4'] },
      { op: 'Transpose', name: 'tk', inputs: ['b4'], outputs: ['kt'], attrs: { perm: [0, 2, 3, 1] } },
      { op: 'MatMul', name: 'qk', inputs: ['q', 'kt'], outputs: ['s4'] },
      { op: 'Tanh', name: 't', inputs: ['s4'], outputs: ['y'] },
    ],
    inputs: [{ name: 'x', dims: [1, 4, 12] }],
    outputs: [{ name: 'y', dims: [1, 2, 4, 4] }],
    initializers: [
      { name: 'sizes', dims: [2], int64s: [6, 6], type: 7 },
      { name: 'shape', dims: [4], int64s: [1, 4, 2, 3], type: 7 },
    ],
  });

test('the Q·Kᵀ GEMM reads both heads straight out of the projection: no copy left', async () => {
  const e = await compile(model(), { optimize: { 'elementwise-fusion': false } });
  expect(e.report.layers.map((l) => l.kind)).toEqual(['Unary', 'Gemm']);
  expect(e.report.passes.find((p) => p.name === 'strided-operands')).toMatchObject({ changed: 2, nodes: ['qk', 'qk'] });
  expect(e.report.layers[1].fusedFrom.sort()).toEqual(['qk', 'ra', 'rb', 's', 't', 'tk', 'tq']);
  const x = new Tensor('float32', Float32Array.from({ length: 48 }, (_, i) => Math.sin(i)), [1, 4, 12]);
  const off = await compile(model(), { optimize: false });
  // (the fused Tanh and the blocked GEMM round differently from the unoptimized chain: within 1 ulp)
  const [got, want] = [(await e.infer({ x })).y.data as Float32Array, (await off.infer({ x })).y.data as Float32Array];
  for (let i = 0; i < want.length; i++) expect(Math.abs(got[i] - want[i])).toBeLessThanOrEqual(1e-6);
  expect(await optimizedMatches(model())).toBeLessThan(1e-6);
  e.dispose();
  off.dispose();
});

test('strided-operands off: the copies stay', async () => {
  const e = await compile(model(), { optimize: { 'elementwise-fusion': false, 'strided-operands': false } });
  expect(e.report.layers.map((l) => l.kind)).toEqual(['Unary', 'StridedCopy', 'StridedCopy', 'Gemm']);
  e.dispose();
});

describe('operandThrough', () => {
  const contiguous = (R: number, C: number) => ({ offset: 0, ld: C, trans: false, batchStrides: [] as number[] });
  test('a column window of a wider matrix: offset and leading dimension', () => {
    // rows of 10, columns 2..5 → a 3 x 4 operand
    const win = sources({ shape: [3, 4], strides: [10, 1], offset: 2 });
    expect(operandThrough(win, [], contiguous(3, 4), 3, 4)).toEqual({ offset: 2, ld: 10, trans: false, batchStrides: [] });
  });
  test('a transposed window: the transpose flag', () => {
    const win = sources({ shape: [3, 4], strides: [1, 5], offset: 0 });
    expect(operandThrough(win, [], contiguous(3, 4), 3, 4)).toEqual({ offset: 0, ld: 5, trans: true, batchStrides: [] });
  });
  test('every other column (no unit step either way): left as it is', () => {
    const win = sources({ shape: [3, 4], strides: [10, 2], offset: 0 });
    expect(operandThrough(win, [], contiguous(3, 4), 3, 4)).toBeUndefined();
  });
});

// the whole head round trip: heads split out, S = Q·Kᵀ, S·V, heads merged back ([1, 2, 4, 3] → [1, 4, 2, 3]
// → [1, 4, 6])
const roundTrip = () =>
  buildModel({
    nodes: [
      { op: 'Relu', name: 'pre', inputs: ['x'], outputs: ['h'] },
      { op: 'Split', name: 's', inputs: ['h', 'sizes'], outputs: ['a', 'b', 'c'], attrs: { axis: 2 } },
      { op: 'Reshape', name: 'ra', inputs: ['a', 'shape'], outputs: ['a4'] },
      { op: 'Transpose', name: 'tq', inputs: ['a4'], outputs: ['q'], attrs: { perm: [0, 2, 1, 3] } },
      { op: 'Reshape', name: 'rb', inputs: ['b', 'shape'], outputs: ['b4'] },
      { op: 'Transpose', name: 'tk', inputs: ['b4'], outputs: ['kt'], attrs: { perm: [0, 2, 3, 1] } },
      { op: 'Reshape', name: 'rc', inputs: ['c', 'shape'], outputs: ['c4'] },
      { op: 'Transpose', name: 'tv', inputs: ['c4'], outputs: ['v'], attrs: { perm: [0, 2, 1, 3] } },
      { op: 'MatMul', name: 'qk', inputs: ['q', 'kt'], outputs: ['sc'] },
      { op: 'Tanh', name: 't', inputs: ['sc'], outputs: ['p'] },
      { op: 'MatMul', name: 'pv', inputs: ['p', 'v'], outputs: ['o4'] },
      { op: 'Transpose', name: 'to', inputs: ['o4'], outputs: ['o'], attrs: { perm: [0, 2, 1, 3] } },
      { op: 'Reshape', name: 'ro', inputs: ['o', 'oshape'], outputs: ['y'] },
    ],
    inputs: [{ name: 'x', dims: [1, 4, 18] }],
    outputs: [{ name: 'y', dims: [1, 4, 6] }],
    initializers: [
      { name: 'sizes', dims: [3], int64s: [6, 6, 6], type: 7 },
      { name: 'shape', dims: [4], int64s: [1, 4, 2, 3], type: 7 },
      { name: 'oshape', dims: [3], int64s: [1, 4, 6], type: 7 },
    ],
  });

test('heads split out and merged back: the GEMMs read and write the token-major layout, no copy left', async () => {
  const e = await compile(roundTrip(), { optimize: { 'elementwise-fusion': false } });
  expect(e.report.layers.map((l) => l.kind)).toEqual(['Unary', 'Gemm', 'Gemm']);
  const x = new Tensor('float32', Float32Array.from({ length: 72 }, (_, i) => Math.cos(i * 0.7)), [1, 4, 18]);
  const off = await compile(roundTrip(), { optimize: false });
  const [got, want] = [(await e.infer({ x })).y.data as Float32Array, (await off.infer({ x })).y.data as Float32Array];
  for (let i = 0; i < want.length; i++) expect(Math.abs(got[i] - want[i])).toBeLessThanOrEqual(1e-6);
  e.dispose();
  off.dispose();
});

describe('outputThrough', () => {
  test('heads back to token-major: batch strides and row stride of the permuted layout', () => {
    // result [1, 2, 4, 3] (batch [1, 2], 4 x 3) read by a transpose to [1, 4, 2, 3]
    const win = sources({ shape: [1, 4, 2, 3], strides: [24, 3, 12, 1], offset: 0 });
    expect(outputThrough(win, [1, 2], 4, 3)).toEqual({ batchStrides: [0, 3], ld: 6 });
  });
  test('a window that drops elements is no layout: undefined', () => {
    expect(outputThrough(sources({ shape: [2, 2], strides: [3, 1], offset: 0 }), [], 2, 3)).toBeUndefined();
  });
});
