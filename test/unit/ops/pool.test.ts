/**
 * Pooling: output shapes (pads, strides, dilations, ceil_mode, auto_pad), hand-checked numbers
 * (MaxPool Indices in both storage orders, AveragePool count_include_pad, LpPool, Global*), and the
 * threaded tactic against the reference tactic.
 */
import { DataType } from '../../../src/dtype';
import { AttrValue } from '../../../src/ir/graph';
import { attrI, attrS, f32, runNode } from './run-node';
import { randomArray, rng } from './tactic-helpers';

const ints = (value: number[]): AttrValue => ({ type: 'ints', value });
const x44 = Array.from({ length: 16 }, (_, i) => i + 1); // [[1..4],[5..8],[9..12],[13..16]]

function pool(op: string, shape: number[], data: number[], attrs: Record<string, AttrValue>, outputs = 1, tactics?: Record<string, string>) {
  return runNode({ op, opset: 19, inputs: [f32(shape, data)], attrs, outputs }, tactics);
}
const vals = (r: { data: ArrayBuffer }) => [...new Float32Array(r.data)];

describe('pool output shapes', () => {
  const shape = (attrs: Record<string, AttrValue>, x = [1, 1, 5, 5]) => pool('MaxPool', x, Array(x.reduce((a, b) => a * b)).fill(0), attrs)[0].shape;
  test.each([
    [{ kernel_shape: ints([3, 3]) }, [1, 1, 3, 3]],
    [{ kernel_shape: ints([3, 3]), pads: ints([1, 1, 1, 1]) }, [1, 1, 5, 5]],
    [{ kernel_shape: ints([2, 2]), strides: ints([2, 2]) }, [1, 1, 2, 2]],
    [{ kernel_shape: ints([2, 2]), strides: ints([2, 2]), ceil_mode: attrI(1) }, [1, 1, 3, 3]],
    [{ kernel_shape: ints([2, 2]), strides: ints([2, 2]), auto_pad: attrS('SAME_UPPER') }, [1, 1, 3, 3]],
    [{ kernel_shape: ints([3, 3]), strides: ints([2, 2]), auto_pad: attrS('VALID') }, [1, 1, 2, 2]],
    [{ kernel_shape: ints([2, 2]), dilations: ints([2, 2]) }, [1, 1, 3, 3]],
  ] as [Record<string, AttrValue>, number[]][])('%j -> %j', (attrs, want) => expect(shape(attrs)).toEqual(want));
  test('ceil_mode drops a last window that would start in the end padding', () => {
    expect(shape({ kernel_shape: ints([2]), strides: ints([2]), pads: ints([1, 1]), ceil_mode: attrI(1) }, [1, 1, 4])).toEqual([1, 1, 3]);
  });
  test('errors name the node and say why', () => {
    expect(() => shape({})).toThrow(/n0.*'kernel_shape' is required/);
    expect(() => shape({ kernel_shape: ints([6, 6]) })).toThrow(/n0.*window .* is larger than the padded input/);
    expect(() => shape({ kernel_shape: ints([2, 2]), auto_pad: attrS('BOGUS') })).toThrow(/n0.*auto_pad 'BOGUS'/);
  });
});

describe('pool numbers', () => {
  test('MaxPool with Indices, row- and column-major', () => {
    const [y, i] = pool('MaxPool', [1, 1, 4, 4], x44, { kernel_shape: ints([2, 2]), strides: ints([2, 2]) }, 2);
    expect(vals(y)).toEqual([6, 8, 14, 16]);
    expect(i.dtype).toBe(DataType.INT64);
    expect([...new BigInt64Array(i.data)].map(Number)).toEqual([5, 7, 13, 15]);
    const [, ic] = pool('MaxPool', [1, 1, 4, 4], x44, { kernel_shape: ints([2, 2]), strides: ints([2, 2]), storage_order: attrI(1) }, 2);
    expect([...new BigInt64Array(ic.data)].map(Number)).toEqual([5, 13, 7, 15]);
  });
  test('AveragePool: count_include_pad changes the divisor at the border', () => {
    const attrs = { kernel_shape: ints([3, 3]), pads: ints([1, 1, 1, 1]), strides: ints([3, 3]) };
    // window at (0,0) covers rows -1..1, cols -1..1: valid 1,2,5,6
    expect(vals(pool('AveragePool', [1, 1, 4, 4], x44, attrs)[0])[0]).toBeCloseTo(14 / 4);
    expect(vals(pool('AveragePool', [1, 1, 4, 4], x44, { ...attrs, count_include_pad: attrI(1) })[0])[0]).toBeCloseTo(14 / 9);
  });
  test('LpPool and the Global pools', () => {
    expect(vals(pool('LpPool', [1, 1, 2], [3, 4], { kernel_shape: ints([2]) })[0])).toEqual([5]);
    expect(vals(pool('LpPool', [1, 1, 2], [3, -4], { kernel_shape: ints([2]), p: attrI(1) })[0])).toEqual([7]);
    expect(vals(pool('GlobalAveragePool', [1, 2, 2], [1, 2, 3, 5], {})[0])).toEqual([1.5, 4]);
    expect(vals(pool('GlobalMaxPool', [1, 2, 2], [1, 2, 3, 5], {})[0])).toEqual([2, 5]);
    const g = pool('GlobalLpPool', [1, 1, 2, 1], [3, 4], {})[0];
    expect(g.shape).toEqual([1, 1, 1, 1]);
    expect(vals(g)).toEqual([5]);
  });
});

describe('threaded tactic matches the reference', () => {
  const x = Array.from(randomArray(2 * 3 * 7 * 6, rng(5)));
  const cases: [string, Record<string, AttrValue>][] = [
    ['MaxPool', { kernel_shape: ints([3, 2]), strides: ints([2, 1]), pads: ints([1, 0, 1, 1]), ceil_mode: attrI(1) }],
    ['AveragePool', { kernel_shape: ints([3, 3]), auto_pad: attrS('SAME_LOWER'), count_include_pad: attrI(1) }],
    ['LpPool', { kernel_shape: ints([2, 2]), dilations: ints([2, 2]), p: attrI(3) }],
  ];
  test.each(cases)('%s %j', (op, attrs) => {
    const outs = op === 'MaxPool' ? 2 : 1;
    const ref = pool(op, [2, 3, 7, 6], x, attrs, outs);
    const mt = pool(op, [2, 3, 7, 6], x, attrs, outs, { Pool: 'cpu.pool.mt' });
    expect(vals(mt[0])).toEqual(vals(ref[0]));
    if (outs === 2) expect(new BigInt64Array(mt[1].data)).toEqual(new BigInt64Array(ref[1].data));
  });
});

describe('2-D tactic matches the reference', () => {
  const r = rng(11);
  const x = Array.from(randomArray(2 * 3 * 13 * 17, r));
  const cases: [string, Record<string, AttrValue>][] = [
    ['MaxPool', { kernel_shape: ints([3, 3]), strides: ints([2, 2]), pads: ints([1, 1, 1, 1]) }],
    ['MaxPool', { kernel_shape: ints([2, 3]), strides: ints([1, 1]), pads: ints([0, 2, 1, 0]) }],
    ['MaxPool', { kernel_shape: ints([3, 2]), strides: ints([2, 3]), dilations: ints([2, 3]), ceil_mode: attrI(1) }],
    ['AveragePool', { kernel_shape: ints([3, 3]), strides: ints([2, 2]), pads: ints([1, 1, 1, 1]) }],
    ['AveragePool', { kernel_shape: ints([3, 3]), auto_pad: attrS('SAME_LOWER'), count_include_pad: attrI(1) }],
    ['AveragePool', { kernel_shape: ints([4, 2]), strides: ints([3, 3]), pads: ints([2, 1, 2, 1]), ceil_mode: attrI(1), count_include_pad: attrI(1) }],
    ['GlobalAveragePool', {}],
    ['GlobalMaxPool', {}],
  ];
  test.each(cases)('%s %j', (op, attrs) => {
    const ref = pool(op, [2, 3, 13, 17], x, attrs);
    const fast = pool(op, [2, 3, 13, 17], x, attrs, 1, { Pool: 'cpu.pool.2d' });
    expect(fast[0].shape).toEqual(ref[0].shape);
    const a = vals(fast[0]), b = vals(ref[0]);
    if (op.includes('Max')) expect(a).toEqual(b);
    else expect(a.every((v, i) => Math.abs(v - b[i]) <= 1e-5 * (1 + Math.abs(b[i])))).toBe(true);
  });
  test('is not offered for Indices, 1-D or LpPool', () => {
    const attrs = { kernel_shape: ints([2, 2]) };
    expect(() => pool('MaxPool', [2, 3, 13, 17], x, attrs, 2, { Pool: 'cpu.pool.2d' })).toThrow(/cannot run layer/);
    expect(() => pool('LpPool', [2, 3, 13, 17], x, attrs, 1, { Pool: 'cpu.pool.2d' })).toThrow(/cannot run layer/);
    expect(() => pool('MaxPool', [1, 2, 6], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12], { kernel_shape: ints([2]) }, 1, { Pool: 'cpu.pool.2d' })).toThrow(/cannot run layer/);
  });
});
