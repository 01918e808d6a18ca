import { DataType, TypedArray } from '../../../src/dtype';
import { NodeInput, attrI, runNode } from './run-node';

const ARR: Partial<Record<DataType, { new (b: ArrayBuffer): TypedArray }>> = {
  [DataType.FLOAT]: Float32Array,
  [DataType.DOUBLE]: Float64Array,
  [DataType.INT8]: Int8Array,
  [DataType.INT16]: Int16Array,
  [DataType.INT32]: Int32Array,
  [DataType.INT64]: BigInt64Array,
  [DataType.UINT8]: Uint8Array,
  [DataType.UINT16]: Uint16Array,
  [DataType.UINT32]: Uint32Array,
  [DataType.UINT64]: BigUint64Array,
  [DataType.BOOL]: Uint8Array,
  [DataType.FLOAT16]: Uint16Array,
  [DataType.BFLOAT16]: Uint16Array,
};
const values = (t: DataType, b: ArrayBuffer) => Array.from(new ARR[t]!(b) as ArrayLike<number | bigint>, (v) => Number(v));

function cast(x: NodeInput, to: DataType, tactics?: Record<string, string>): number[] {
  const [y] = runNode({ op: 'Cast', inputs: [x], attrs: { to: attrI(to) } }, tactics);
  expect(y.dtype).toBe(to);
  return values(to, y.data);
}
const f = (data: number[]): NodeInput => ({ dtype: DataType.FLOAT, shape: [data.length], data: Float32Array.from(data) });

describe('Cast', () => {
  test('float to integers truncates toward zero and wraps like numpy on x86-64', () => {
    const x = f([2.9, -2.9, 300, -1, 0]);
    expect(cast(x, DataType.INT32)).toEqual([2, -2, 300, -1, 0]);
    expect(cast(x, DataType.INT8)).toEqual([2, -2, 44, -1, 0]);
    expect(cast(x, DataType.UINT8)).toEqual([2, 254, 44, 255, 0]);
    expect(cast(x, DataType.INT64)).toEqual([2, -2, 300, -1, 0]);
    expect(cast(f([NaN, 3e9, -3e9]), DataType.INT32)).toEqual([-2147483648, -2147483648, -2147483648]);
    expect(cast(f([NaN]), DataType.INT8)).toEqual([0]);
    expect(cast(f([1e19]), DataType.UINT64)).toEqual([Math.fround(1e19)]);
  });

  test('to bool is != 0 (NaN is true); from bool is 0/1', () => {
    expect(cast(f([0, -0, 0.1, NaN]), DataType.BOOL)).toEqual([0, 0, 1, 1]);
    const b: NodeInput = { dtype: DataType.BOOL, shape: [2], data: Uint8Array.from([1, 0]) };
    expect(cast(b, DataType.FLOAT)).toEqual([1, 0]);
    expect(cast(b, DataType.INT64)).toEqual([1, 0]);
  });

  test('float16 / bfloat16 round to nearest even; integers wrap', () => {
    // 1 + 2^-11 is halfway between 1 and the next float16: rounds to even (1.0 = 0x3c00)
    expect(cast(f([1, 1 + 2 ** -11, 65504, 1e6]), DataType.FLOAT16)).toEqual([0x3c00, 0x3c00, 0x7bff, 0x7c00]);
    expect(cast(f([1, -2]), DataType.BFLOAT16)).toEqual([0x3f80, 0xc000]);
    const h: NodeInput = { dtype: DataType.FLOAT16, shape: [2], data: Uint16Array.from([0x3c00, 0xc000]) };
    expect(cast(h, DataType.DOUBLE)).toEqual([1, -2]);
    const i: NodeInput = { dtype: DataType.INT32, shape: [3], data: Int32Array.from([-1, 256, 70000]) };
    expect(cast(i, DataType.UINT8)).toEqual([255, 0, 112]);
    expect(cast(i, DataType.INT16)).toEqual([-1, 256, 4464]);
    expect(cast(i, DataType.UINT64)).toEqual([2 ** 64, 256, 70000]);
  });

  test('every held type round-trips small integers, threaded tactic equal to the reference', () => {
    const types = Object.keys(ARR).map(Number) as DataType[];
    const n = 70000;
    const src = Array.from({ length: n }, (_, k) => k % 100);
    for (const from of types) {
      const data = from === DataType.FLOAT16 || from === DataType.BFLOAT16 ? undefined : from === DataType.BOOL ? src.map((v) => (v ? 1 : 0)) : src;
      if (!data) continue;
      const ctor = ARR[from]! as unknown as { from(a: ArrayLike<number | bigint>): TypedArray };
      const big = from === DataType.INT64 || from === DataType.UINT64;
      const x: NodeInput = { dtype: from, shape: [n], data: ctor.from(big ? data.map(BigInt) : data) };
      for (const to of types) {
        if (to === from) continue;
        const a = cast(x, to);
        const b = cast(x, to, { Cast: 'cpu.cast.threaded' });
        expect(b).toEqual(a);
        if (to !== DataType.FLOAT16 && to !== DataType.BFLOAT16) expect(a.slice(0, 100)).toEqual(to === DataType.BOOL ? data.slice(0, 100).map((v) => (v ? 1 : 0)) : data.slice(0, 100));
      }
    }
  });

  test('CastLike takes the type of its second input; a same-type cast is a copy', () => {
    const like: NodeInput = { dtype: DataType.INT16, shape: [0], data: new Int16Array(0) };
    const [y] = runNode({ op: 'CastLike', inputs: [f([1.5, -7.9]), like] });
    expect(y.dtype).toBe(DataType.INT16);
    expect(values(DataType.INT16, y.data)).toEqual([1, -7]);
    expect(cast(f([1.5]), DataType.FLOAT)).toEqual([1.5]);
  });

  test('unsupported targets are refused naming the node', () => {
    expect(() => runNode({ op: 'Cast', inputs: [f([1])], attrs: { to: attrI(DataType.STRING) } })).toThrow(/n0.*string/);
    expect(() => runNode({ op: 'Cast', inputs: [f([1])], attrs: { to: attrI(DataType.COMPLEX64) } })).toThrow(/n0.*not supported/);
    expect(() => runNode({ op: 'Cast', inputs: [f([1])] })).toThrow(/'to' is required/);
  });
});
