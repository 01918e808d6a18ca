/**
 * Reduce* and ArgMax/ArgMin: shapes and attribute defaults per opset, numbers against a JS reference,
 * empty reductions, and the block tactic against the reference tactic.
 */
import { DataType } from '../../../src/dtype';
import { AttrValue } from '../../../src/ir/graph';
import { NodeInput, attrI, f32, runNode } from './run-node';
import { rng } from './tactic-helpers';

const ints = (value: number[]): AttrValue => ({ type: 'ints', value });
const i64 = (data: number[], constant = true): NodeInput => ({ dtype: DataType.INT64, shape: [data.length], data: BigInt64Array.from(data.map(BigInt)), constant });
const rand = (n: number, seed: number) => {
  const r = rng(seed);
  return Array.from({ length: n }, () => Math.round((r() * 4 - 2) * 100) / 100);
};

/** JS reference: reduce `x` of `shape` over `axes` with (init, step, finish). */
function refReduce(x: number[], shape: number[], axes: number[], op: string): number[] {
  const outShape = shape.map((d, k) => (axes.includes(k) ? 1 : d));
  const n = outShape.reduce((a, b) => a * b, 1);
  const groups: number[][] = Array.from({ length: n }, () => []);
  x.forEach((v, i) => {
    let o = 0;
    let rest = i;
    const idx: number[] = [];
    for (let k = shape.length - 1; k >= 0; k--) {
      idx[k] = rest % shape[k];
      rest = Math.floor(rest / shape[k]);
    }
    for (let k = 0; k < shape.length; k++) o = o * outShape[k] + (axes.includes(k) ? 0 : idx[k]);
    groups[o].push(v);
  });
  const sum = (g: number[]) => g.reduce((a, b) => a + b, 0);
  const f: Record<string, (g: number[]) => number> = {
    ReduceSum: sum,
    ReduceMean: (g) => sum(g) / g.length,
    ReduceMax: (g) => Math.max(...g),
    ReduceMin: (g) => Math.min(...g),
    ReduceProd: (g) => g.reduce((a, b) => a * b, 1),
    ReduceL1: (g) => sum(g.map(Math.abs)),
    ReduceL2: (g) => Math.sqrt(sum(g.map((v) => v * v))),
    ReduceLogSum: (g) => Math.log(sum(g)),
    ReduceLogSumExp: (g) => Math.log(sum(g.map(Math.exp))),
    ReduceSumSquare: (g) => sum(g.map((v) => v * v)),
  };
  return groups.map(f[op]);
}

const OPS = ['ReduceSum', 'ReduceMean', 'ReduceMax', 'ReduceMin', 'ReduceProd', 'ReduceL1', 'ReduceL2', 'ReduceLogSum', 'ReduceLogSumExp', 'ReduceSumSquare'];

function close(got: Float32Array, want: number[]) {
  expect(got.length).toBe(want.length);
  want.forEach((w, i) => {
    if (Number.isNaN(w)) expect(got[i]).toBeNaN();
    else expect(Math.abs(got[i] - w)).toBeLessThanOrEqual(1e-4 * (1 + Math.abs(w)));
  });
}

describe('Reduce shapes and defaults', () => {
  const shapeOf = (opset: number, attrs: Record<string, AttrValue>, axes?: NodeInput, op = 'ReduceMean') =>
    runNode({ op, opset, inputs: [f32([2, 3, 4], rand(24, 1)), axes], attrs })[0].shape;
  test('axes attribute before opset 18, input from 18 (13 for ReduceSum); keepdims defaults to 1', () => {
    expect(shapeOf(17, { axes: ints([1]) })).toEqual([2, 1, 4]);
    expect(shapeOf(18, {}, i64([-1]))).toEqual([2, 3, 1]);
    expect(shapeOf(13, { keepdims: attrI(0) }, i64([0, 2]), 'ReduceSum')).toEqual([3]);
    expect(shapeOf(11, { axes: ints([0, 2]), keepdims: attrI(0) }, undefined, 'ReduceSum')).toEqual([3]);
  });
  test('no axes: all axes, or a copy with noop_with_empty_axes', () => {
    expect(shapeOf(18, {})).toEqual([1, 1, 1]);
    expect(shapeOf(18, { keepdims: attrI(0) })).toEqual([]);
    const y = runNode({ op: 'ReduceSum', opset: 13, inputs: [f32([2, 2], [1, 2, 3, 4]), i64([])], attrs: { noop_with_empty_axes: attrI(1) } })[0];
    expect(y.shape).toEqual([2, 2]);
    expect([...new Float32Array(y.data)]).toEqual([1, 2, 3, 4]);
  });
  test('errors name the node and say why', () => {
    expect(() => shapeOf(18, {}, i64([3]))).toThrow(/n0.*reduce axis 3 is out of range for rank 3/);
    expect(() => shapeOf(18, {}, i64([1, -2]))).toThrow(/n0.*name an axis twice/);
    expect(() => shapeOf(18, {}, i64([1], false))).toThrow(/n0.*'axes'.*must be known at build time/);
  });
});

describe('Reduce numbers', () => {
  const shape = [3, 4, 5];
  const x = rand(60, 7).map((v) => v + 2.5); // positive, so LogSum is defined
  for (const op of OPS)
    for (const axes of [[1], [0, 2], [0, 1, 2]])
      test(`${op} over [${axes}] (reference and block tactics)`, () => {
        const want = refReduce(x, shape, axes, op);
        const spec = { op, opset: 18, inputs: [f32(shape, x), i64(axes)] };
        close(new Float32Array(runNode(spec)[0].data), want);
        const block = axes.length === 1 || axes.length === 3; // [0,2] is not one contiguous block
        if (block) close(new Float32Array(runNode(spec, { Reduce: 'cpu.reduce.block' })[0].data), want);
      });

  test('empty reductions give the identity', () => {
    const run = (op: string) => [...new Float32Array(runNode({ op, opset: 18, inputs: [f32([2, 0, 2], []), i64([1])] })[0].data)];
    expect(run('ReduceSum')).toEqual([0, 0, 0, 0]);
    expect(run('ReduceProd')).toEqual([1, 1, 1, 1]);
    expect(run('ReduceMax')).toEqual([-Infinity, -Infinity, -Infinity, -Infinity]);
    expect(run('ReduceMin')).toEqual([Infinity, Infinity, Infinity, Infinity]);
    expect(run('ReduceLogSumExp')).toEqual([-Infinity, -Infinity, -Infinity, -Infinity]);
    expect(run('ReduceMean').every(Number.isNaN)).toBe(true);
  });

  test('integer and bool inputs', () => {
    const x: NodeInput = { dtype: DataType.INT32, shape: [2, 3], data: Int32Array.from([1, -7, 3, 4, 5, -6]) };
    const run = (op: string) => [...new Int32Array(runNode({ op, opset: 18, inputs: [x, i64([1])], attrs: { keepdims: attrI(0) } })[0].data)];
    expect(run('ReduceSum')).toEqual([-3, 3]);
    expect(run('ReduceMax')).toEqual([3, 5]);
    expect(run('ReduceProd')).toEqual([-21, -120]);
    expect(run('ReduceL1')).toEqual([11, 15]);
    const b: NodeInput = { dtype: DataType.BOOL, shape: [2, 2], data: Uint8Array.from([0, 1, 0, 0]) };
    expect([...new Uint8Array(runNode({ op: 'ReduceMax', opset: 20, inputs: [b, i64([1])] })[0].data)]).toEqual([1, 0]);
  });
});

describe('ArgMax / ArgMin', () => {
  const x = f32([2, 4], [1, 5, 5, 2, 3, 0, 3, 0]);
  const run = (op: string, attrs: Record<string, AttrValue>) => {
    const y = runNode({ op, opset: 13, inputs: [x], attrs })[0];
    return { shape: y.shape, data: [...new BigInt64Array(y.data)].map(Number) };
  };
  test('first or last index of the extreme, keepdims', () => {
    expect(run('ArgMax', { axis: attrI(1) })).toEqual({ shape: [2, 1], data: [1, 0] });
    expect(run('ArgMax', { axis: attrI(-1), select_last_index: attrI(1), keepdims: attrI(0) })).toEqual({ shape: [2], data: [2, 2] });
    expect(run('ArgMin', { axis: attrI(1), keepdims: attrI(0) })).toEqual({ shape: [2], data: [0, 1] });
    expect(run('ArgMin', { axis: attrI(1), select_last_index: attrI(1), keepdims: attrI(0) })).toEqual({ shape: [2], data: [0, 3] });
    expect(run('ArgMax', {})).toEqual({ shape: [1, 4], data: [1, 0, 0, 0] });
  });
});
