/**
 * Data movement through the one StridedCopy kernel (Transpose, Slice, Split, Expand, Tile,
 * DepthToSpace, SpaceToDepth), Concat and Pad: shapes and attribute defaults, numbers against JS
 * references computed by index arithmetic, and the 'rows' tactic against the reference.
 */
import { DataType } from '../../../src/dtype';
import { AttrValue } from '../../../src/ir/graph';
import { Plan, encodePlan, int as pInt, ints as pInts } from '../../../src/lower/plan';
import { call, native } from '../../../src/native/binding';
import { NodeInput, NodeSpec, attrI, attrS, f32, runNode } from './run-node';

const ints = (value: number[]): AttrValue => ({ type: 'ints', value });
const i64 = (data: number[], constant = true): NodeInput => ({ dtype: DataType.INT64, shape: [data.length], data: BigInt64Array.from(data.map(BigInt)), constant });
const iota = (shape: number[]) => f32(shape, Array.from({ length: shape.reduce((a, b) => a * b, 1) }, (_, i) => i));
const strides = (s: number[]) => s.map((_, d) => s.slice(d + 1).reduce((a, b) => a * b, 1));
/** Row-major coordinates of linear index i. */
const coords = (i: number, s: number[]) => s.map((n, d) => Math.floor(i / strides(s)[d]) % n);

/** Runs with the reference and with the 'rows' StridedCopy tactic; both must agree. */
function run(spec: NodeSpec, out = 0): { shape: number[]; values: number[] } {
  const res = runNode(spec);
  const rows = runNode(spec, { StridedCopy: 'cpu.strided_copy.rows' });
  const values = Array.from(new Float32Array(res[out].data));
  expect(Array.from(new Float32Array(rows[out].data))).toEqual(values);
  return { shape: res[out].shape, values };
}

describe('Transpose', () => {
  test('default perm reverses the dims; explicit perm', () => {
    const s = [2, 3, 4];
    const a = run({ op: 'Transpose', inputs: [iota(s)] });
    expect(a.shape).toEqual([4, 3, 2]);
    a.values.forEach((v, i) => {
      const [k, j, n] = coords(i, [4, 3, 2]);
      expect(v).toBe(n * 12 + j * 4 + k);
    });
    const b = run({ op: 'Transpose', inputs: [iota(s)], attrs: { perm: ints([1, 0, 2]) } });
    expect(b.shape).toEqual([3, 2, 4]);
    b.values.forEach((v, i) => {
      const [j, n, k] = coords(i, [3, 2, 4]);
      expect(v).toBe(n * 12 + j * 4 + k);
    });
  });

  test('bad perm names the node', () => {
    expect(() => runNode({ op: 'Transpose', inputs: [iota([2, 3])], attrs: { perm: ints([0, 0]) } })).toThrow(/n0.*not a permutation/);
  });
});

describe('Slice', () => {
  test('negative steps, negative and clamped bounds, omitted axes (opset 13)', () => {
    // x [4, 5]: axis 1 from -1 backwards by 2 → cols 4, 2, 0; axis 0 from 1 to a huge end → rows 1..3
    const x = iota([4, 5]);
    const r = run({ op: 'Slice', inputs: [x, i64([1, -1]), i64([1e15, -100]), i64([0, 1]), i64([1, -2])] });
    expect(r.shape).toEqual([3, 3]);
    expect(r.values).toEqual([9, 7, 5, 14, 12, 10, 19, 17, 15]);
    const whole = run({ op: 'Slice', inputs: [x, i64([0]), i64([2])] });
    expect(whole.shape).toEqual([2, 5]);
    const [empty] = runNode({ op: 'Slice', inputs: [x, i64([3]), i64([1])] });
    expect(empty.shape).toEqual([0, 5]);
  });

  test('opset 1 takes attributes', () => {
    const r = run({ op: 'Slice', opset: 9, inputs: [iota([3, 4])], attrs: { starts: ints([1]), ends: ints([3]), axes: ints([1]) } });
    expect(r.shape).toEqual([3, 2]);
    expect(r.values).toEqual([1, 2, 5, 6, 9, 10]);
  });

  test('starts must be known at build', () => {
    expect(() => runNode({ op: 'Slice', inputs: [iota([3]), i64([0], false), i64([1])] })).toThrow(/'starts'.*known at build/);
  });
});

describe('Split', () => {
  test('even split by default, sizes from the input, num_outputs with a smaller last chunk', () => {
    const x = iota([2, 5]);
    const a = runNode({ op: 'Split', inputs: [x, i64([2, 3])], attrs: { axis: attrI(1) }, outputs: 2 });
    expect(a.map((o) => o.shape)).toEqual([[2, 2], [2, 3]]);
    expect(Array.from(new Float32Array(a[1].data))).toEqual([2, 3, 4, 7, 8, 9]);
    const b = runNode({ op: 'Split', inputs: [x], attrs: { axis: attrI(-1), num_outputs: attrI(2) }, outputs: 2, opset: 18 });
    expect(b.map((o) => o.shape)).toEqual([[2, 3], [2, 2]]);
    const c = runNode({ op: 'Split', inputs: [x], outputs: 2 });
    expect(c.map((o) => o.shape)).toEqual([[1, 5], [1, 5]]);
    expect(Array.from(new Float32Array(c[1].data))).toEqual([5, 6, 7, 8, 9]);
    expect(() => runNode({ op: 'Split', inputs: [x], attrs: { axis: attrI(1) }, outputs: 2 })).toThrow(/does not split evenly/);
  });
});

describe('Concat', () => {
  test('joins along a negative axis; inputs of different sizes', () => {
    const [o] = runNode({ op: 'Concat', inputs: [iota([2, 1]), f32([2, 2], [10, 11, 12, 13])], attrs: { axis: attrI(-1) } });
    expect(o.shape).toEqual([2, 3]);
    expect(Array.from(new Float32Array(o.data))).toEqual([0, 10, 11, 1, 12, 13]);
    expect(() => runNode({ op: 'Concat', inputs: [iota([2, 1]), iota([3, 1])], attrs: { axis: attrI(1) } })).toThrow(/does not match/);
  });
});

describe('Expand and Tile', () => {
  test('Expand broadcasts both ways', () => {
    const r = run({ op: 'Expand', inputs: [f32([3, 1], [1, 2, 3]), i64([2, 1, 4])] });
    expect(r.shape).toEqual([2, 3, 4]);
    r.values.forEach((v, i) => expect(v).toBe(coords(i, [2, 3, 4])[1] + 1));
  });

  test('Tile repeats each dim', () => {
    const r = run({ op: 'Tile', inputs: [iota([2, 3]), i64([2, 2])] });
    expect(r.shape).toEqual([4, 6]);
    r.values.forEach((v, i) => {
      const [a, b] = coords(i, [4, 6]);
      expect(v).toBe((a % 2) * 3 + (b % 3));
    });
  });
});

describe('DepthToSpace and SpaceToDepth', () => {
  const [n, c, h, w, b] = [1, 8, 2, 3, 2];
  test('DCR (default) and CRD against the ONNX definitions', () => {
    const x = iota([n, c, h, w]);
    const c2 = c / (b * b);
    for (const mode of ['DCR', 'CRD']) {
      const r = run({ op: 'DepthToSpace', inputs: [x], attrs: { blocksize: attrI(b), ...(mode === 'CRD' ? { mode: attrS('CRD') } : {}) } });
      expect(r.shape).toEqual([n, c2, h * b, w * b]);
      r.values.forEach((v, i) => {
        const [, cc, y, xx] = coords(i, r.shape);
        const [hy, by, wx, bx] = [Math.floor(y / b), y % b, Math.floor(xx / b), xx % b];
        const ch = mode === 'DCR' ? (by * b + bx) * c2 + cc : cc * b * b + by * b + bx;
        expect(v).toBe(ch * h * w + hy * w + wx);
      });
    }
  });

  test('SpaceToDepth inverts DepthToSpace (DCR)', () => {
    const x = iota([1, 2, 4, 6]);
    const s2d = runNode({ op: 'SpaceToDepth', inputs: [x], attrs: { blocksize: attrI(2) } })[0];
    expect(s2d.shape).toEqual([1, 8, 2, 3]);
    const back = runNode({ op: 'DepthToSpace', inputs: [f32(s2d.shape, Array.from(new Float32Array(s2d.data)))], attrs: { blocksize: attrI(2) } })[0];
    expect(Array.from(new Float32Array(back.data))).toEqual(Array.from(x.data as Float32Array));
  });
});

describe('Pad', () => {
  const x = f32([2, 3], [1, 2, 3, 4, 5, 6]);
  const pad = (mode: string, pads: number[], opset = 21) =>
    runNode({ op: 'Pad', inputs: [x, i64(pads)], attrs: { mode: attrS(mode) }, opset })[0];
  const vals = (o: { data: ArrayBuffer }) => Array.from(new Float32Array(o.data));

  test('constant (default value 0) with a negative pad that crops', () => {
    const o = runNode({ op: 'Pad', inputs: [x, i64([1, 0, 0, -1])] })[0];
    expect(o.shape).toEqual([3, 2]);
    expect(vals(o)).toEqual([0, 0, 1, 2, 4, 5]);
    const v = runNode({ op: 'Pad', inputs: [x, i64([0, 1, 0, 0]), f32([], [9], true)] })[0];
    expect(vals(v)).toEqual([9, 1, 2, 3, 9, 4, 5, 6]);
  });

  test('reflect, edge and wrap along the last axis', () => {
    expect(vals(pad('reflect', [0, 2, 0, 2]))).toEqual([3, 2, 1, 2, 3, 2, 1, 6, 5, 4, 5, 6, 5, 4]);
    expect(vals(pad('edge', [0, 2, 0, 1]))).toEqual([1, 1, 1, 2, 3, 3, 4, 4, 4, 5, 6, 6]);
    expect(vals(pad('wrap', [0, 2, 0, 1]))).toEqual([2, 3, 1, 2, 3, 1, 5, 6, 4, 5, 6, 4]);
    expect(vals(pad('edge', [1, 0, 0, 0]))).toEqual([1, 2, 3, 1, 2, 3, 4, 5, 6]);
  });

  test('axes input (opset 18) and opset 2 attributes', () => {
    const o = runNode({ op: 'Pad', inputs: [x, i64([1, 1]), undefined, i64([-1])] })[0];
    expect(o.shape).toEqual([2, 5]);
    const a = runNode({ op: 'Pad', opset: 2, inputs: [x], attrs: { pads: ints([0, 0, 1, 0]), value: { type: 'float', value: 7 } } })[0];
    expect(vals(a)).toEqual([1, 2, 3, 4, 5, 6, 7, 7, 7]);
  });

  test('a constant value known only at run time', () => {
    const o = runNode({ op: 'Pad', inputs: [x, i64([0, 0, 0, 1]), f32([], [-3])] })[0];
    expect(vals(o)).toEqual([1, 2, 3, -3, 4, 5, 6, -3]);
  });
});

describe('StridedCopy kernel', () => {
  const plan = (shape: number[], strides: number[], offset: number): Plan => ({
    tensors: [
      { name: 'x', dtype: DataType.FLOAT, shape: [4], kind: 'input' },
      { name: 'y', dtype: DataType.FLOAT, shape: [2], kind: 'output' },
    ],
    ops: [{ kind: 'StridedCopy', name: 'sc', inputs: [0], outputs: [1], attrs: { shape: pInts(shape), strides: pInts(strides), offset: pInt(offset) }, origin: ['sc'] }],
    inputs: [0],
    outputs: [1],
  });
  const x = Float32Array.from([10, 11, 12, 13]);
  test.each(['cpu.strided_copy', 'cpu.strided_copy.rows'])('%s: a negative stride reads backwards', (tactic) => {
    const [y] = native().runPlan(encodePlan(plan([2], [-3], 3)), [x], { StridedCopy: tactic });
    expect(Array.from(new Float32Array(y))).toEqual([13, 10]);
  });
  test('a view reaching outside its input is refused before any read', () => {
    expect(() => call(() => native().runPlan(encodePlan(plan([2], [3], 1)), [x]))).toThrow(/layer 'sc' \(StridedCopy\): the view reads elements \[1, 4\] of an input of 4/);
    expect(() => call(() => native().runPlan(encodePlan(plan([2], [-1], 0)), [x]))).toThrow(/reads elements \[-1, 0\]/);
  });
});
