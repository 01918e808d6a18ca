/**
 * The small element types (float8 variants, float4e2m1, float8e8m0, int4/uint4, int2/uint2): conversion
 * tables at the edge values through Cast, QuantizeLinear/DequantizeLinear to and from them, and the
 * unpacking of ONNX's packed wire format in import.
 */
import { onnx } from 'onnx-proto';
import { DataType, smallFloatValue } from '../../../src/dtype';
import { KilnError } from '../../../src/errors';
import { decodeTensor } from '../../../src/onnx/import';
import { NodeInput, attrI, attrS, f32, runNode } from './run-node';

const F8 = [DataType.FLOAT8E4M3FN, DataType.FLOAT8E4M3FNUZ, DataType.FLOAT8E5M2, DataType.FLOAT8E5M2FNUZ] as const;
const codes = (dtype: DataType, data: number[]): NodeInput => ({ dtype, shape: [data.length], data: Uint8Array.from(data) });

/** Cast float32 values to `to`; the output's bytes. */
function castTo(to: DataType, xs: number[], attrs: Record<string, ReturnType<typeof attrI>> = {}, tactic?: string): number[] {
  const [y] = runNode({ op: 'Cast', inputs: [f32([xs.length], xs)], attrs: { to: attrI(to), ...attrs }, opset: 25 }, tactic ? { Cast: tactic } : undefined);
  expect(y.dtype).toBe(to);
  return Array.from(to === DataType.INT4 || to === DataType.INT2 ? new Int8Array(y.data) : new Uint8Array(y.data));
}
function castToFloat(from: DataType, data: number[]): number[] {
  const [y] = runNode({ op: 'Cast', inputs: [codes(from, data)], attrs: { to: attrI(DataType.FLOAT) }, opset: 25 });
  return Array.from(new Float32Array(y.data));
}
const sat = (s: number) => ({ saturate: attrI(s) });

describe('float → float8: round to nearest even, saturate', () => {
  // [input, code with saturate=1, code with saturate=0]
  const table: Record<(typeof F8)[number], [number, number, number][]> = {
    [DataType.FLOAT8E4M3FN]: [
      [448, 0x7e, 0x7e], // max finite
      [464, 0x7e, 0x7e], // tie between 448 and 480: mantissa 110 is even → 448
      [465, 0x7e, 0x7f], // rounds past max: max, or NaN
      [Infinity, 0x7e, 0x7f], // no Inf: max, or NaN
      [-Infinity, 0xfe, 0xff],
      [NaN, 0x7f, 0x7f],
      [0, 0x00, 0x00],
      [-0, 0x80, 0x80],
      [2 ** -9, 0x01, 0x01], // smallest subnormal
      [2 ** -10, 0x00, 0x00], // tie with 0 → 0
      [3 * 2 ** -10, 0x02, 0x02], // tie between subnormals 1 and 2 → 2
      [-(2 ** -11), 0x80, 0x80], // underflow keeps the sign
      [1, 0x38, 0x38],
      [1.0625, 0x38, 0x38], // tie → even mantissa 000
      [1.1875, 0x3a, 0x3a], // tie → even mantissa 010
      [2 ** -6, 0x08, 0x08], // smallest normal
    ],
    [DataType.FLOAT8E4M3FNUZ]: [
      [240, 0x7f, 0x7f], // max finite
      [248, 0x7f, 0x80], // tie rounds up (mantissa 111 is odd) past max: max, or the NaN 0x80
      [Infinity, 0x7f, 0x80],
      [-Infinity, 0xff, 0x80],
      [NaN, 0x80, 0x80],
      [-0, 0x00, 0x00], // no -0
      [-(2 ** -12), 0x00, 0x00],
      [2 ** -10, 0x01, 0x01], // smallest subnormal
      [1, 0x40, 0x40],
    ],
    [DataType.FLOAT8E5M2]: [
      [57344, 0x7b, 0x7b], // max finite
      [61440, 0x7b, 0x7c], // tie rounds up (odd mantissa) past max: max, or Inf
      [Infinity, 0x7b, 0x7c],
      [-Infinity, 0xfb, 0xfc],
      [-0, 0x80, 0x80],
      [2 ** -16, 0x01, 0x01], // smallest subnormal
      [2 ** -17, 0x00, 0x00], // tie with 0
      [1, 0x3c, 0x3c],
      [1.125, 0x3c, 0x3c], // tie → even
      [1.375, 0x3e, 0x3e], // tie → even mantissa 10
    ],
    [DataType.FLOAT8E5M2FNUZ]: [
      [57344, 0x7f, 0x7f],
      [1e6, 0x7f, 0x80],
      [-Infinity, 0xff, 0x80],
      [NaN, 0x80, 0x80],
      [-0, 0x00, 0x00],
      [2 ** -17, 0x01, 0x01],
      [1, 0x40, 0x40],
    ],
  };
  for (const t of F8) {
    test(`${DataType[t]}`, () => {
      const xs = table[t].map((r) => r[0]);
      expect(castTo(t, xs, sat(1))).toEqual(table[t].map((r) => r[1]));
      expect(castTo(t, xs, sat(0))).toEqual(table[t].map((r) => r[2]));
      expect(castTo(t, xs)).toEqual(table[t].map((r) => r[1])); // saturate defaults to 1
    });
  }

  test('e5m2 NaN is a NaN code of the sign', () => {
    const [pos, neg] = castTo(DataType.FLOAT8E5M2, [NaN, -NaN]);
    expect(Number.isNaN(smallFloatValue(DataType.FLOAT8E5M2, pos))).toBe(true);
    expect(pos & 0x80).toBe(0);
    expect(Number.isNaN(smallFloatValue(DataType.FLOAT8E5M2, neg))).toBe(true);
  });

  test('float16 input rounds the same way', () => {
    // float16 bits of 464 (0x5f40, a tie: → 448), 466 (0x5f48: past the tie → 480 → NaN) and Inf
    const [y] = runNode({
      op: 'Cast',
      inputs: [{ dtype: DataType.FLOAT16, shape: [3], data: Uint16Array.from([0x5f40, 0x5f48, 0x7c00]) }],
      attrs: { to: attrI(DataType.FLOAT8E4M3FN), saturate: attrI(0) },
      opset: 25,
    });
    expect(Array.from(new Uint8Array(y.data))).toEqual([0x7e, 0x7f, 0x7f]);
  });
});

describe('float8/float4 → float', () => {
  test('edge codes', () => {
    expect(castToFloat(DataType.FLOAT8E4M3FN, [0x7e, 0xfe, 0x01, 0x08, 0x80, 0x38])).toEqual([448, -448, 2 ** -9, 2 ** -6, -0, 1]);
    expect(castToFloat(DataType.FLOAT8E4M3FN, [0x7f, 0xff]).every(Number.isNaN)).toBe(true);
    expect(castToFloat(DataType.FLOAT8E4M3FNUZ, [0x7f, 0xff, 0x01, 0x40])).toEqual([240, -240, 2 ** -10, 1]);
    expect(Number.isNaN(castToFloat(DataType.FLOAT8E4M3FNUZ, [0x80])[0])).toBe(true);
    expect(castToFloat(DataType.FLOAT8E5M2, [0x7b, 0x7c, 0xfc, 0x01, 0x3c])).toEqual([57344, Infinity, -Infinity, 2 ** -16, 1]);
    expect(castToFloat(DataType.FLOAT8E5M2, [0x7d, 0x7e, 0x7f]).every(Number.isNaN)).toBe(true);
    expect(castToFloat(DataType.FLOAT8E5M2FNUZ, [0x7f, 0x01, 0x40])).toEqual([57344, 2 ** -17, 1]);
    expect(castToFloat(DataType.FLOAT4E2M1, [0x0, 0x1, 0x2, 0x3, 0x4, 0x5, 0x6, 0x7, 0x8, 0xf])).toEqual([0, 0.5, 1, 1.5, 2, 3, 4, 6, -0, -6]);
    expect(castToFloat(DataType.FLOAT8E8M0, [0, 127, 130, 254])).toEqual([2 ** -127, 1, 8, 2 ** 127]);
    expect(Number.isNaN(castToFloat(DataType.FLOAT8E8M0, [255])[0])).toBe(true);
  });

  test('every code: native decoding equals smallFloatValue, and float → code gives the code back', () => {
    const all = Array.from({ length: 256 }, (_, i) => i);
    for (const t of [...F8, DataType.FLOAT8E8M0]) {
      const vals = castToFloat(t, all);
      vals.forEach((v, c) => {
        const js = smallFloatValue(t, c);
        if (Number.isNaN(js)) expect(v).toBeNaN();
        else expect(v).toBe(Math.fround(js));
      });
      // (e8m0's code 0, 2^-127, is a float32 subnormal: ONNX's 'up' rounding takes it to code 1)
      const finite = all.filter((c) => Number.isFinite(vals[c]) && !(t === DataType.FLOAT8E8M0 && c === 0));
      const back = t === DataType.FLOAT8E8M0 ? castTo(t, finite.map((c) => vals[c])) : castTo(t, finite.map((c) => vals[c]), sat(0));
      expect(back).toEqual(finite);
    }
    const f4 = Array.from({ length: 16 }, (_, i) => i);
    expect(castTo(DataType.FLOAT4E2M1, castToFloat(DataType.FLOAT4E2M1, f4))).toEqual(f4);
  });
});

describe('float → float4e2m1 and float8e8m0', () => {
  test('float4e2m1: nearest even, always saturating, NaN → 0x8', () => {
    expect(castTo(DataType.FLOAT4E2M1, [6, 7, 1e9, Infinity, -Infinity, 5, 0.25, 0.75, -0, NaN, 2.5, 0.5], sat(0))).toEqual([
      0x7, 0x7, 0x7, 0x7, 0xf, 0x6, 0x0, 0x2, 0x8, 0x8, 0x4, 0x1,
    ]);
  });

  test('float8e8m0: round_mode up / down / nearest, saturate', () => {
    const xs = [1, 1.1, 1.5, 1.6, 0, -4, NaN, Infinity, 3e38, 2 ** -130];
    const mode = (m: string, s = 1) => castTo(DataType.FLOAT8E8M0, xs, { round_mode: attrS(m), saturate: attrI(s) });
    expect(mode('up')).toEqual([127, 128, 128, 128, 0, 129, 255, 255, 254, 1]);
    expect(mode('down')).toEqual([127, 127, 127, 127, 0, 129, 255, 255, 254, 0]);
    expect(mode('nearest')).toEqual([127, 127, 128, 128, 0, 129, 255, 255, 254, 0]);
    expect(mode('up', 0)[8]).toBe(255); // 3e38 rounds up past 2^127: NaN without saturate
    expect(castTo(DataType.FLOAT8E8M0, [1.1])).toEqual([128]); // 'up' is the default
    expect(() => mode('sideways')).toThrow(/round_mode 'sideways'/);
  });
});

describe('int4 / uint4 / int2 / uint2', () => {
  test('Cast wraps modulo 2^bits (truncating floats), like the other integer casts', () => {
    expect(castTo(DataType.INT4, [-9, -8, 7, 8, 9, 2.7, -2.7, 15])).toEqual([7, -8, 7, -8, -7, 2, -2, -1]);
    expect(castTo(DataType.UINT4, [16, 17, -1, 15, 3.9])).toEqual([0, 1, 15, 15, 3]);
    expect(castTo(DataType.INT2, [2, -3, 1, -2])).toEqual([-2, 1, 1, -2]);
    expect(castTo(DataType.UINT2, [4, 5, -1, 3])).toEqual([0, 1, 3, 3]);
    const [y] = runNode({ op: 'Cast', inputs: [{ dtype: DataType.INT4, shape: [3], data: Int8Array.from([-8, -1, 7]) }], attrs: { to: attrI(DataType.UINT8) } });
    expect(Array.from(new Uint8Array(y.data))).toEqual([248, 255, 7]);
  });

  test('the threaded Cast equals the reference on every small type', () => {
    const xs = Array.from({ length: 70000 }, (_, i) => Math.sin(i) * 600);
    for (const t of [...F8, DataType.FLOAT4E2M1, DataType.FLOAT8E8M0, DataType.INT4, DataType.UINT4, DataType.INT2, DataType.UINT2])
      expect(castTo(t, xs, {}, 'cpu.cast.threaded')).toEqual(castTo(t, xs, {}, 'cpu.cast'));
  });
});

describe('QuantizeLinear / DequantizeLinear with the small types', () => {
  const q = (out: DataType, xs: number[], scale: number, attrs = {}) => {
    const [y] = runNode({ op: 'QuantizeLinear', inputs: [f32([xs.length], xs), f32([], [scale], true)], attrs: { output_dtype: attrI(out), ...attrs }, opset: 21 });
    expect(y.dtype).toBe(out);
    return Array.from(out === DataType.INT4 || out === DataType.INT2 ? new Int8Array(y.data) : new Uint8Array(y.data));
  };

  test('integer targets round half to even and clamp to their range', () => {
    expect(q(DataType.INT4, [-100, 100, 5, 3, -3], 2)).toEqual([-8, 7, 2, 2, -2]);
    expect(q(DataType.UINT4, [-100, 100, 7], 2)).toEqual([0, 15, 4]);
    expect(q(DataType.INT2, [-100, 100, 1], 2)).toEqual([-2, 1, 0]);
    expect(q(DataType.UINT2, [-100, 100, 3], 2)).toEqual([0, 3, 2]);
  });

  test('float8 targets follow saturate; float4e2m1 always saturates', () => {
    expect(q(DataType.FLOAT8E4M3FN, [1000, 2, -1000], 1)).toEqual([0x7e, 0x40, 0xfe]);
    expect(q(DataType.FLOAT8E4M3FN, [1000, 2, -1000], 1, { saturate: attrI(0) })).toEqual([0x7f, 0x40, 0xff]);
    expect(q(DataType.FLOAT8E5M2, [1e6], 1, { saturate: attrI(0) })).toEqual([0x7c]);
    expect(q(DataType.FLOAT4E2M1, [100, 1, -3], 1)).toEqual([0x7, 0x2, 0xd]);
  });

  test('dequantize from int4 (zero point), float8 and float4e2m1', () => {
    const dq = (x: NodeInput, scale: number, zp?: NodeInput) =>
      Array.from(new Float32Array(runNode({ op: 'DequantizeLinear', inputs: [x, f32([], [scale], true), zp], opset: 21 })[0].data));
    const i4 = (d: number[], constant = false): NodeInput => ({ dtype: DataType.INT4, shape: [d.length], data: Int8Array.from(d), constant });
    expect(dq(i4([-8, 7, 0]), 2, i4([-1], true))).toEqual([-14, 16, 2]);
    expect(dq(codes(DataType.FLOAT8E4M3FN, [0x38, 0x7e, 0xb8]), 0.5)).toEqual([0.5, 224, -0.5]);
    expect(dq(codes(DataType.FLOAT4E2M1, [0x7, 0x9]), 2)).toEqual([12, -1]);
    expect(dq(codes(DataType.UINT2, [0, 3]), 1.5, { ...codes(DataType.UINT2, [1]), shape: [1], constant: true })).toEqual([-1.5, 3]);
  });
});

describe('import unpacks the sub-byte wire format', () => {
  const proto = (dataType: DataType, dims: number[], raw?: number[], int32?: number[]) =>
    onnx.TensorProto.create({ name: 't', dataType, dims, rawData: raw ? Uint8Array.from(raw) : undefined, int32Data: int32 });

  test('int4 raw_data, low nibble first, odd count, sign-extended', () => {
    const vals = [-8, 7, -1, 0, 3];
    const packed = [0, 2, 4].map((i) => (vals[i] & 0xf) | ((i + 1 < vals.length ? vals[i + 1] & 0xf : 0) << 4));
    const v = decodeTensor(proto(DataType.INT4, [5], packed), {}, 'test');
    expect(v.data).toBeInstanceOf(Int8Array);
    expect(Array.from(v.data as Int8Array)).toEqual(vals);
  });

  test('uint4 and float4e2m1 stay unsigned; int32_data packs two 4-bit or four 2-bit elements each', () => {
    expect(Array.from(decodeTensor(proto(DataType.UINT4, [3], [0xf1, 0x0e]), {}, 't').data as Uint8Array)).toEqual([1, 15, 14]);
    expect(Array.from(decodeTensor(proto(DataType.FLOAT4E2M1, [2], undefined, [0x8f]), {}, 't').data as Uint8Array)).toEqual([0xf, 0x8]);
    // int2: 0b11_10_01_00 = 0xe4 → 0, 1, -2, -1; then 0b01 → 1
    expect(Array.from(decodeTensor(proto(DataType.INT2, [5], undefined, [0xe4, 0x01]), {}, 't').data as Int8Array)).toEqual([0, 1, -2, -1, 1]);
    expect(Array.from(decodeTensor(proto(DataType.UINT2, [5], [0xe4, 0x03]), {}, 't').data as Uint8Array)).toEqual([0, 1, 2, 3, 3]);
    // float8 in int32_data: one code per entry
    expect(Array.from(decodeTensor(proto(DataType.FLOAT8E4M3FN, [2], undefined, [0x7e, 0x38]), {}, 't').data as Uint8Array)).toEqual([0x7e, 0x38]);
  });

  test('a wrong packed size is refused', () => {
    expect(() => decodeTensor(proto(DataType.INT4, [5], [1, 2]), {}, "initializer 'w'")).toThrow(KilnError);
    expect(() => decodeTensor(proto(DataType.INT4, [5], [1, 2]), {}, "initializer 'w'")).toThrow(/initializer 'w'.*needs 3/);
    expect(() => decodeTensor(proto(DataType.UINT2, [5], undefined, [1]), {}, 't')).toThrow(/needs 2/);
  });
});
