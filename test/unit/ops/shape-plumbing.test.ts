/**
 * Shape plumbing evaluated at compile time (Shape, Size, Constant, ConstantOfShape, Range, NonZero,
 * and chains of them folded through the kernels), the byte-copy reshapes (Reshape, Flatten, Squeeze,
 * Unsqueeze, Identity, Dropout), and the small kernels (Trilu, EyeLike, OneHot, CumSum,
 * ReverseSequence).
 */
import { DataType } from '../../../src/dtype';
import { AttrValue, Graph } from '../../../src/ir/graph';
import { inferGraph } from '../../../src/ir/infer';
import { NodeInput, attrI, buildGraph, f32, runNode } from './run-node';

const ints = (value: number[]): AttrValue => ({ type: 'ints', value });
const i64 = (shape: number[], data: number[], constant = true): NodeInput => ({ dtype: DataType.INT64, shape, data: BigInt64Array.from(data.map(BigInt)), constant });
const iota = (shape: number[], constant = false) => f32(shape, Array.from({ length: shape.reduce((a, b) => a * b, 1) }, (_, i) => i), constant);
const vals = (o: { data: ArrayBuffer }) => Array.from(new Float32Array(o.data));
const bigs = (o: { data: ArrayBuffer }) => Array.from(new BigInt64Array(o.data), Number);
const infer = (g: Graph) => {
  inferGraph(g);
  return g.values.get('out0')!;
};

describe('compile-time shape values', () => {
  test('Shape with start/end (opset 15) and Size give int64 data at inference', () => {
    const s = infer(buildGraph({ op: 'Shape', inputs: [iota([2, 3, 4])], attrs: { start: attrI(-2) } }));
    expect(s.dtype).toBe(DataType.INT64);
    expect(Array.from(s.data as BigInt64Array, Number)).toEqual([3, 4]);
    const old = infer(buildGraph({ op: 'Shape', opset: 13, inputs: [iota([2, 3, 4])], attrs: { start: attrI(1) } }));
    expect(Array.from(old.data as BigInt64Array, Number)).toEqual([2, 3, 4]);
    const n = infer(buildGraph({ op: 'Size', inputs: [iota([2, 3, 4])] }));
    expect(n.shape).toEqual([]);
    expect(Number((n.data as BigInt64Array)[0])).toBe(24);
  });

  test('Constant forms; string constants are unsupported', () => {
    const v = infer(buildGraph({ op: 'Constant', inputs: [], attrs: { value_ints: ints([3, -1]) } }));
    expect(v.dtype).toBe(DataType.INT64);
    expect(v.shape).toEqual([2]);
    const f = infer(buildGraph({ op: 'Constant', inputs: [], attrs: { value_float: { type: 'float', value: 1.5 } } }));
    expect(f.shape).toEqual([]);
    expect(Array.from(f.data as Float32Array)).toEqual([1.5]);
    expect(() => infer(buildGraph({ op: 'Constant', inputs: [], attrs: { value_string: { type: 'string', value: 'x' } } }))).toThrow(/string constants are not supported/);
  });

  test('ConstantOfShape, Range and NonZero of known inputs fold through the kernels', () => {
    const c = infer(buildGraph({ op: 'ConstantOfShape', inputs: [i64([2], [2, 3])] }));
    expect(c.dtype).toBe(DataType.FLOAT);
    expect(Array.from(c.data as Float32Array)).toEqual([0, 0, 0, 0, 0, 0]);
    const r = infer(buildGraph({ op: 'Range', inputs: [i64([], [10]), i64([], [4]), i64([], [-3])] }));
    expect(r.shape).toEqual([2]);
    expect(Array.from(r.data as BigInt64Array, Number)).toEqual([10, 7]);
    const nz = infer(buildGraph({ op: 'NonZero', inputs: [f32([2, 2], [1, 0, 0, 3], true)] }));
    expect(nz.shape).toEqual([2, 2]);
    expect(Array.from(nz.data as BigInt64Array, Number)).toEqual([0, 1, 0, 1]);
  });

  test('NonZero of a value only known at run time is refused', () => {
    const g = buildGraph({ op: 'NonZero', inputs: [iota([3])] });
    g.nodes.unshift({ name: 'relu', opType: 'Relu', domain: '', inputs: ['in0'], outputs: ['r'], attrs: new Map(), origin: ['relu'] });
    g.nodes[1].inputs = ['r'];
    expect(() => inferGraph(g)).toThrow(/data-dependent output shape/);
  });
});

describe('reshapes (byte copies)', () => {
  test('Reshape with 0, -1 and allowzero', () => {
    const [o] = runNode({ op: 'Reshape', inputs: [iota([2, 3, 4]), i64([3], [0, -1, 2])] });
    expect(o.shape).toEqual([2, 6, 2]);
    expect(vals(o)).toEqual(Array.from({ length: 24 }, (_, i) => i));
    const [z] = runNode({ op: 'Reshape', inputs: [iota([0, 3]), i64([2], [3, 0])], attrs: { allowzero: attrI(1) } });
    expect(z.shape).toEqual([3, 0]);
    expect(() => runNode({ op: 'Reshape', inputs: [iota([2, 3]), i64([1], [4])] })).toThrow(/cannot reshape \[2,3\]/);
  });

  test('Flatten (default axis 1, negative axis), Squeeze, Unsqueeze (attribute before opset 13)', () => {
    expect(runNode({ op: 'Flatten', inputs: [iota([2, 3, 4])] })[0].shape).toEqual([2, 12]);
    expect(runNode({ op: 'Flatten', inputs: [iota([2, 3, 4])], attrs: { axis: attrI(-1) } })[0].shape).toEqual([6, 4]);
    expect(runNode({ op: 'Flatten', inputs: [iota([2, 3, 4])], attrs: { axis: attrI(0) } })[0].shape).toEqual([1, 24]);
    expect(runNode({ op: 'Squeeze', inputs: [iota([1, 3, 1])] })[0].shape).toEqual([3]);
    expect(runNode({ op: 'Squeeze', inputs: [iota([1, 3, 1]), i64([1], [-1])] })[0].shape).toEqual([1, 3]);
    expect(() => runNode({ op: 'Squeeze', inputs: [iota([1, 3, 1]), i64([1], [1])] })).toThrow(/cannot squeeze axis 1 of size 3/);
    expect(runNode({ op: 'Unsqueeze', inputs: [iota([3, 4]), i64([2], [0, -1])] })[0].shape).toEqual([1, 3, 4, 1]);
    expect(runNode({ op: 'Unsqueeze', opset: 11, inputs: [iota([3])], attrs: { axes: ints([1]) } })[0].shape).toEqual([3, 1]);
  });

  test('Dropout is the identity with an all-true mask; training_mode true is refused', () => {
    const out = runNode({ op: 'Dropout', inputs: [iota([4])], outputs: 2 });
    expect(vals(out[0])).toEqual([0, 1, 2, 3]);
    expect(out[1].dtype).toBe(DataType.BOOL);
    expect(Array.from(new Uint8Array(out[1].data))).toEqual([1, 1, 1, 1]);
    const t = { dtype: DataType.BOOL, shape: [], data: Uint8Array.from([1]), constant: true };
    expect(() => runNode({ op: 'Dropout', inputs: [iota([4]), undefined, t] })).toThrow(/training_mode is true/);
  });
});

describe('small kernels', () => {
  test('Trilu upper (default) and lower with k, k known at build or only at run time', () => {
    const x = iota([3, 3]);
    expect(vals(runNode({ op: 'Trilu', inputs: [x] })[0])).toEqual([0, 1, 2, 0, 4, 5, 0, 0, 8]);
    expect(vals(runNode({ op: 'Trilu', inputs: [x, i64([], [-1])], attrs: { upper: attrI(0) } })[0])).toEqual([0, 0, 0, 3, 0, 0, 6, 7, 0]);
    expect(vals(runNode({ op: 'Trilu', inputs: [x, i64([], [1], false)] })[0])).toEqual([0, 1, 2, 0, 0, 5, 0, 0, 0]);
  });

  test('EyeLike with k and dtype', () => {
    const [o] = runNode({ op: 'EyeLike', inputs: [iota([2, 3])], attrs: { k: attrI(1), dtype: attrI(DataType.INT32) } });
    expect(o.dtype).toBe(DataType.INT32);
    expect(Array.from(new Int32Array(o.data))).toEqual([0, 1, 0, 0, 0, 1]);
  });

  test('OneHot: default last axis, negative indices wrap, out-of-range gives all off', () => {
    const [o] = runNode({ op: 'OneHot', inputs: [i64([3], [1, -1, 5], false), i64([], [3]), f32([2], [-1, 4])] });
    expect(o.shape).toEqual([3, 3]);
    expect(vals(o)).toEqual([-1, 4, -1, -1, -1, 4, -1, -1, -1]);
    const [a] = runNode({ op: 'OneHot', inputs: [i64([2], [0, 2], false), i64([], [3]), f32([2], [0, 1])], attrs: { axis: attrI(0) } });
    expect(a.shape).toEqual([3, 2]);
    expect(vals(a)).toEqual([1, 0, 0, 0, 0, 1]);
  });

  test('CumSum: inclusive, exclusive, reverse', () => {
    const x = f32([2, 3], [1, 2, 3, 4, 5, 6]);
    const cs = (attrs: Record<string, AttrValue>) => vals(runNode({ op: 'CumSum', inputs: [x, i64([], [1])], attrs })[0]);
    expect(cs({})).toEqual([1, 3, 6, 4, 9, 15]);
    expect(cs({ exclusive: attrI(1) })).toEqual([0, 1, 3, 0, 4, 9]);
    expect(cs({ reverse: attrI(1) })).toEqual([6, 5, 3, 15, 11, 6]);
    expect(vals(runNode({ op: 'CumSum', inputs: [x, i64([], [0])] })[0])).toEqual([1, 2, 3, 5, 7, 9]);
  });

  test('ReverseSequence: time-major default axes; lengths out of range are refused', () => {
    // [time 3, batch 2]
    const x = iota([3, 2]);
    const [o] = runNode({ op: 'ReverseSequence', inputs: [x, i64([2], [3, 1], false)] });
    expect(vals(o)).toEqual([4, 1, 2, 3, 0, 5]);
    expect(() => runNode({ op: 'ReverseSequence', inputs: [x, i64([2], [4, 1], false)] })).toThrow(/sequence_lens\[0\] = 4 is out of range/);
  });
});
