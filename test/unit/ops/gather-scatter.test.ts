/**
 * Gather, GatherElements, GatherND, ScatterElements, ScatterND and Scatter: shapes, negative indices,
 * reductions, and out-of-range indices refused with INVALID_INPUT naming the layer.
 */
import { DataType } from '../../../src/dtype';
import { KilnError } from '../../../src/errors';
import { AttrValue } from '../../../src/ir/graph';
import { call } from '../../../src/native/binding';
import { NodeInput, attrI, attrS, f32, runNode } from './run-node';

const idx = (shape: number[], data: number[], constant = false): NodeInput => ({ dtype: DataType.INT64, shape, data: BigInt64Array.from(data.map(BigInt)), constant });
const i32 = (shape: number[], data: number[]): NodeInput => ({ dtype: DataType.INT32, shape, data: Int32Array.from(data) });
const iota = (shape: number[]) => f32(shape, Array.from({ length: shape.reduce((a, b) => a * b, 1) }, (_, i) => i));
const vals = (o: { data: ArrayBuffer }) => Array.from(new Float32Array(o.data));
const one = (op: string, inputs: NodeInput[], attrs: Record<string, AttrValue> = {}, opset?: number) => runNode({ op, inputs, attrs, opset })[0];

function invalid(f: () => unknown, re: RegExp): void {
  let err: unknown;
  try {
    call(f);
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(KilnError);
  expect((err as KilnError).code).toBe('INVALID_INPUT');
  expect((err as Error).message).toMatch(re);
}

describe('Gather', () => {
  test('axis 1, 2-D indices, negative indices, int32 indices', () => {
    const o = one('Gather', [iota([2, 3]), idx([2, 2], [0, -1, 2, 1])], { axis: attrI(1) });
    expect(o.shape).toEqual([2, 2, 2]);
    expect(vals(o)).toEqual([0, 2, 2, 1, 3, 5, 5, 4]);
    const d = one('Gather', [iota([3, 2]), i32([2], [2, 0])]);
    expect(d.shape).toEqual([2, 2]);
    expect(vals(d)).toEqual([4, 5, 0, 1]);
    const s = one('Gather', [iota([3, 2]), idx([], [1])]);
    expect(s.shape).toEqual([2]);
  });

  test('an out-of-range index fails naming the layer, the index and the axis', () => {
    invalid(() => one('Gather', [iota([5, 2]), idx([2], [0, 7])]), /layer 'n0' \(Gather\): index 7 is out of range for axis 0 of size 5/);
    invalid(() => one('Gather', [iota([5, 2]), idx([1], [-6])]), /index -6/);
  });
});

describe('GatherElements', () => {
  test('picks along the axis; output has the indices shape', () => {
    const o = one('GatherElements', [iota([2, 3]), idx([2, 2], [2, 0, -1, 1])], { axis: attrI(1) });
    expect(o.shape).toEqual([2, 2]);
    expect(vals(o)).toEqual([2, 0, 5, 4]);
    invalid(() => one('GatherElements', [iota([2, 3]), idx([1, 1], [3])], { axis: attrI(1) }), /index 3 is out of range for axis 1 of size 3/);
  });
});

describe('GatherND', () => {
  test('full tuples, partial tuples and batch_dims', () => {
    const x = iota([2, 2, 2]);
    const a = one('GatherND', [x, idx([2, 3], [0, 1, 1, 1, 0, 0])]);
    expect(a.shape).toEqual([2]);
    expect(vals(a)).toEqual([3, 4]);
    const b = one('GatherND', [x, idx([1, 1], [1])]);
    expect(b.shape).toEqual([1, 2, 2]);
    expect(vals(b)).toEqual([4, 5, 6, 7]);
    const c = one('GatherND', [x, idx([2, 1], [1, 0])], { batch_dims: attrI(1) });
    expect(c.shape).toEqual([2, 2]);
    expect(vals(c)).toEqual([2, 3, 4, 5]);
    invalid(() => one('GatherND', [x, idx([1, 2], [0, 2])]), /out of range for axis 1 of size 2/);
  });
});

describe('Scatter', () => {
  test('ScatterElements with and without reduction, negative indices; later updates win', () => {
    const data = f32([2, 3], [1, 1, 1, 1, 1, 1]);
    const ix = idx([2, 2], [0, 2, -1, 2]);
    const up = f32([2, 2], [5, 6, 7, 8]);
    expect(vals(one('ScatterElements', [data, ix, up], { axis: attrI(1) }))).toEqual([5, 1, 6, 1, 1, 8]);
    expect(vals(one('ScatterElements', [data, ix, up], { axis: attrI(1), reduction: attrS('add') }))).toEqual([6, 1, 7, 1, 1, 16]);
    expect(vals(one('ScatterElements', [data, ix, up], { axis: attrI(1), reduction: attrS('max') }))).toEqual([5, 1, 6, 1, 1, 8]);
    expect(vals(one('Scatter', [data, ix, up], { axis: attrI(1) }, 10))).toEqual([5, 1, 6, 1, 1, 8]);
    invalid(() => one('ScatterElements', [data, idx([1, 1], [3]), f32([1, 1], [0])], { axis: attrI(1) }), /ScatterElements.*index 3/);
  });

  test('ScatterND writes slices; mul reduction', () => {
    const data = iota([3, 2]);
    const o = one('ScatterND', [data, idx([2, 1], [2, 0]), f32([2, 2], [10, 11, 12, 13])]);
    expect(vals(o)).toEqual([12, 13, 2, 3, 10, 11]);
    const m = one('ScatterND', [data, idx([2, 2], [1, 1, 1, 1]), f32([2], [2, 5])], { reduction: attrS('mul') });
    expect(vals(m)).toEqual([0, 1, 2, 30, 4, 5]);
    invalid(() => one('ScatterND', [data, idx([1, 1], [-4]), f32([1, 2], [0, 0])]), /index -4 is out of range for axis 0 of size 3/);
  });
});
