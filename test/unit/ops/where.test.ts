import { DataType } from '../../../src/dtype';
import { f32, runNode } from './run-node';

const bool = (shape: number[], data: number[]) => ({ dtype: DataType.BOOL, shape, data: Uint8Array.from(data) });

describe('Where', () => {
  test('three-way broadcast against a JS reference', () => {
    // cond [2,1,3], x [4,1], y [] -> out [2,4,3]
    const c = [1, 0, 1, 0, 1, 1];
    const x = [10, 20, 30, 40];
    const [o] = runNode({ op: 'Where', inputs: [bool([2, 1, 3], c), f32([4, 1], x), f32([], [-1])] });
    expect(o.shape).toEqual([2, 4, 3]);
    const want: number[] = [];
    for (let i = 0; i < 2; i++) for (let j = 0; j < 4; j++) for (let k = 0; k < 3; k++) want.push(c[i * 3 + k] ? x[j] : -1);
    expect(Array.from(new Float32Array(o.data))).toEqual(want);
  });

  test('int64 and bool values; flat tactic equal to the reference', () => {
    const n = 50000;
    const c = Array.from({ length: n }, (_, i) => (i * 7) % 3 === 0 ? 1 : 0);
    const x = { dtype: DataType.INT64, shape: [n], data: BigInt64Array.from({ length: n }, (_, i) => BigInt(i) * 10000000000n) };
    const y = { dtype: DataType.INT64, shape: [], data: BigInt64Array.from([-5n]) };
    const spec = { op: 'Where', inputs: [bool([n], c), x, y] };
    const a = new BigInt64Array(runNode(spec)[0].data);
    const b = new BigInt64Array(runNode(spec, { Where: 'cpu.where.flat' })[0].data);
    expect(b).toEqual(a);
    expect(a[0]).toBe(0n);
    expect(a[1]).toBe(-5n);
    expect(a[3]).toBe(30000000000n);
    const [bb] = runNode({ op: 'Where', inputs: [bool([2], [1, 0]), bool([2], [0, 0]), bool([2], [1, 1])] });
    expect(bb.dtype).toBe(DataType.BOOL);
    expect(Array.from(new Uint8Array(bb.data))).toEqual([0, 1]);
  });

  test('mismatched shapes and types are refused naming the node', () => {
    expect(() => runNode({ op: 'Where', inputs: [bool([3], [1, 0, 1]), f32([2], [1, 2]), f32([1], [0])] })).toThrow(/n0.*broadcast/);
    expect(() => runNode({ op: 'Where', inputs: [f32([1], [1]), f32([1], [1]), f32([1], [0])] })).toThrow(/condition must be bool/);
  });
});
