import { DataType } from '../../../src/dtype';
import { AttrValue } from '../../../src/ir/graph';
import { NodeInput, NodeSpec, attrI, attrS, f32, runNode } from './run-node';

const roundEven = (x: number) => {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
};
const sat = (v: number, lo: number, hi: number) => Math.min(hi, Math.max(lo, v));
const u8 = (shape: number[], data: number[], constant = true) => ({ dtype: DataType.UINT8, shape, data: Uint8Array.from(data), constant });
const i8 = (shape: number[], data: number[], constant = true) => ({ dtype: DataType.INT8, shape, data: Int8Array.from(data), constant });

describe('QuantizeLinear', () => {
  test('per-tensor uint8 with rounding half to even and saturation', () => {
    const xs = [0, 1, 2.5, 3.5, -3, 1000, -1000, 5];
    const [y] = runNode({ op: 'QuantizeLinear', inputs: [f32([8], xs), f32([], [2], true), u8([], [10])] });
    expect(y.dtype).toBe(DataType.UINT8);
    expect(Array.from(new Uint8Array(y.data))).toEqual(xs.map((x) => sat(roundEven(x / 2) + 10, 0, 255)));
  });

  test('no zero point gives uint8; output_dtype picks int16', () => {
    const [y] = runNode({ op: 'QuantizeLinear', inputs: [f32([3], [-1, 1, 600]), f32([], [1], true)] });
    expect(y.dtype).toBe(DataType.UINT8);
    expect(Array.from(new Uint8Array(y.data))).toEqual([0, 1, 255]);
    const [z] = runNode({ op: 'QuantizeLinear', inputs: [f32([3], [-1, 1, 60000]), f32([], [1], true)], attrs: { output_dtype: attrI(DataType.INT16) } });
    expect(z.dtype).toBe(DataType.INT16);
    expect(Array.from(new Int16Array(z.data))).toEqual([-1, 1, 32767]);
  });

  test('per-axis and blocked scales against a JS reference; threaded equals reference', () => {
    // x [2,4,3], axis 1: per-axis scale [4]; blocked along axis 1 with block 3: scale [2,2,3]
    const x = Array.from({ length: 24 }, (_, i) => (i - 11) * 1.7);
    const sAxis = [0.5, 1, 2, 4], zAxis = [0, 1, -2, 3];
    const [pa] = runNode({ op: 'QuantizeLinear', inputs: [f32([2, 4, 3], x), f32([4], sAxis, true), i8([4], zAxis)], attrs: { axis: attrI(1) } });
    const want = x.map((v, i) => {
      const a = Math.floor(i / 3) % 4;
      return sat(roundEven(Math.fround(v) / sAxis[a]) + zAxis[a], -128, 127);
    });
    expect(Array.from(new Int8Array(pa.data))).toEqual(want);

    const sB = Array.from({ length: 12 }, (_, i) => 0.25 * (i + 1));
    const [pb] = runNode({ op: 'QuantizeLinear', inputs: [f32([2, 4, 3], x), f32([2, 2, 3], sB, true)], attrs: { axis: attrI(-2), block_size: attrI(3), output_dtype: attrI(DataType.INT8) } });
    const wantB = x.map((v, i) => {
      const o = Math.floor(i / 12), a = Math.floor(i / 3) % 4, j = i % 3;
      return sat(roundEven(Math.fround(Math.fround(v) / Math.fround(sB[(o * 2 + Math.floor(a / 3)) * 3 + j]))), -128, 127);
    });
    expect(Array.from(new Int8Array(pb.data))).toEqual(wantB);

    const big = Array.from({ length: 40000 }, (_, i) => Math.sin(i) * 300);
    const cases: [NodeInput, Record<string, AttrValue>][] = [
      [f32([], [1.3], true), {}],
      [f32([4], [0.5, 1, 2, 4], true), { axis: attrI(1) }],
    ];
    for (const [scale, attrs] of cases) {
      const spec: NodeSpec = { op: 'QuantizeLinear', inputs: [f32([100, 4, 100], big), scale], attrs };
      expect(new Uint8Array(runNode(spec, { QuantizeLinear: 'cpu.quantize.threaded' })[0].data)).toEqual(new Uint8Array(runNode(spec)[0].data));
    }
  });

  test('bad granularity is refused naming the node', () => {
    expect(() => runNode({ op: 'QuantizeLinear', inputs: [f32([2, 3], [1, 2, 3, 4, 5, 6]), f32([2], [1, 1], true)] })).toThrow(/n0.*per-axis scale has 2/);
    expect(() => runNode({ op: 'QuantizeLinear', inputs: [f32([2, 3], [1, 2, 3, 4, 5, 6]), f32([2, 3], [1, 1, 1, 1, 1, 1], true)] })).toThrow(/block_size/);
  });
});

describe('DequantizeLinear', () => {
  test('per-tensor, per-axis and blocked against a JS reference', () => {
    const [y] = runNode({ op: 'DequantizeLinear', inputs: [u8([4], [0, 3, 128, 255], false), f32([], [0.5], true), u8([], [128])] });
    expect(y.dtype).toBe(DataType.FLOAT);
    expect(Array.from(new Float32Array(y.data))).toEqual([-64, -62.5, 0, 63.5]);

    const x = Array.from({ length: 12 }, (_, i) => i * 20 - 120);
    const [pa] = runNode({ op: 'DequantizeLinear', inputs: [i8([3, 4], x, false), f32([3], [1, 2, 4], true), i8([3], [1, -1, 0])], attrs: { axis: attrI(0) } });
    expect(Array.from(new Float32Array(pa.data))).toEqual(x.map((v, i) => (v - [1, -1, 0][Math.floor(i / 4)]) * [1, 2, 4][Math.floor(i / 4)]));

    const [pb] = runNode({ op: 'DequantizeLinear', inputs: [i8([3, 4], x, false), f32([3, 2], [1, 2, 3, 4, 5, 6], true)], attrs: { axis: attrI(1), block_size: attrI(2) } });
    expect(Array.from(new Float32Array(pb.data))).toEqual(x.map((v, i) => v * [1, 2, 3, 4, 5, 6][Math.floor(i / 4) * 2 + Math.floor((i % 4) / 2)]));
  });

  test('int32 input, float16 output; threaded equals reference', () => {
    const x = { dtype: DataType.INT32, shape: [2], data: Int32Array.from([-3, 1000]) };
    const [y] = runNode({ op: 'DequantizeLinear', inputs: [x, { dtype: DataType.FLOAT16, shape: [], data: Uint16Array.from([0x3800]), constant: true }] });
    expect(y.dtype).toBe(DataType.FLOAT16);
    expect(Array.from(new Uint16Array(y.data))).toEqual([0xbe00, 0x5fd0]); // -1.5, 500
    const n = 40000;
    const spec = { op: 'DequantizeLinear', inputs: [u8([n / 8, 8], Array.from({ length: n }, (_, i) => i % 256), false), f32([8], [1, 2, 3, 4, 5, 6, 7, 8], true)], attrs: { axis: attrI(1) } };
    expect(new Float32Array(runNode(spec, { DequantizeLinear: 'cpu.dequantize.threaded' })[0].data)).toEqual(new Float32Array(runNode(spec)[0].data));
  });
});

describe('DynamicQuantizeLinear', () => {
  test('scale and zero point from the range including 0', () => {
    const xs = [0, 2, -3, 5.5, 1];
    const [y, s, z] = runNode({ op: 'DynamicQuantizeLinear', inputs: [f32([5], xs)], outputs: 3 });
    const scale = Math.fround(Math.fround(5.5 - -3) / 255);
    const zp = sat(roundEven(Math.fround(3 / scale)), 0, 255);
    expect(new Float32Array(s.data)[0]).toBe(scale);
    expect(new Uint8Array(z.data)[0]).toBe(zp);
    expect(s.shape).toEqual([]);
    expect(Array.from(new Uint8Array(y.data))).toEqual(xs.map((x) => sat(roundEven(Math.fround(Math.fround(x) / scale)) + zp, 0, 255)));
    const [y2, s2, z2] = runNode({ op: 'DynamicQuantizeLinear', inputs: [f32([2], [0, 0])], outputs: 3 });
    expect([...new Uint8Array(y2.data), new Float32Array(s2.data)[0], new Uint8Array(z2.data)[0]]).toEqual([0, 0, 0, 0]);
  });
});

describe('integer matmul and convolution', () => {
  test('MatMulInteger with batch broadcast and per-row / per-column zero points', () => {
    // A [2,2,3] uint8, B [3,2] int8; a_zp per row [2], b_zp per column [2]
    const A = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];
    const B = [1, -1, 2, 0, -3, 5];
    const azp = [1, 2], bzp = [0, -1];
    const [y] = runNode({ op: 'MatMulInteger', inputs: [u8([2, 2, 3], A, false), i8([3, 2], B, false), u8([2], azp), i8([2], bzp)], opset: 10 });
    expect(y.dtype).toBe(DataType.INT32);
    expect(y.shape).toEqual([2, 2, 2]);
    const want: number[] = [];
    for (let b = 0; b < 2; b++)
      for (let m = 0; m < 2; m++)
        for (let n = 0; n < 2; n++) {
          let acc = 0;
          for (let k = 0; k < 3; k++) acc += (A[b * 6 + m * 3 + k] - azp[m]) * (B[k * 2 + n] - bzp[n]);
          want.push(acc);
        }
    expect(Array.from(new Int32Array(y.data))).toEqual(want);
  });

  test('QLinearMatMul requantizes with rounding half to even', () => {
    const a = u8([1, 2], [10, 20], false), b = u8([2, 1], [3, 4], false);
    // acc = (10-0)*(3-1) + (20-0)*(4-1) = 80; 80 * 0.5 * 0.25 / 4 = 2.5 -> 2 (+ zp 100)
    const [y] = runNode({
      op: 'QLinearMatMul',
      inputs: [a, f32([], [0.5], true), u8([], [0]), b, f32([], [0.25], true), u8([], [1]), f32([], [4], true), u8([], [100])],
      opset: 21,
    });
    expect(y.dtype).toBe(DataType.UINT8);
    expect(Array.from(new Uint8Array(y.data))).toEqual([102]);
  });

  test('ConvInteger against a JS reference (pads, stride, zero points) and SAME_UPPER shapes', () => {
    // x [1,1,4,4], w [2,1,3,3], pads 1, stride 2
    const X = Array.from({ length: 16 }, (_, i) => (i * 7) % 13);
    const Wt = Array.from({ length: 18 }, (_, i) => ((i * 5) % 7) - 3);
    const xzp = 3;
    const [y] = runNode({
      op: 'ConvInteger',
      inputs: [u8([1, 1, 4, 4], X, false), i8([2, 1, 3, 3], Wt), u8([], [xzp])],
      attrs: { pads: { type: 'ints', value: [1, 1, 1, 1] }, strides: { type: 'ints', value: [2, 2] } },
      opset: 10,
    });
    expect(y.shape).toEqual([1, 2, 2, 2]);
    const want: number[] = [];
    for (let oc = 0; oc < 2; oc++)
      for (let oy = 0; oy < 2; oy++)
        for (let ox = 0; ox < 2; ox++) {
          let acc = 0;
          for (let ky = 0; ky < 3; ky++)
            for (let kx = 0; kx < 3; kx++) {
              const iy = oy * 2 - 1 + ky, ix = ox * 2 - 1 + kx;
              if (iy < 0 || iy >= 4 || ix < 0 || ix >= 4) continue;
              acc += (X[iy * 4 + ix] - xzp) * Wt[oc * 9 + ky * 3 + kx];
            }
          want.push(acc);
        }
    expect(Array.from(new Int32Array(y.data))).toEqual(want);
    const [s] = runNode({ op: 'ConvInteger', inputs: [u8([1, 1, 5, 5], new Array(25).fill(1), false), i8([1, 1, 2, 2], [1, 1, 1, 1])], attrs: { auto_pad: attrS('SAME_UPPER'), strides: { type: 'ints', value: [2, 2] } }, opset: 10 });
    expect(s.shape).toEqual([1, 1, 3, 3]);
    // SAME_UPPER: total pad 1 at the end: the last row/column sees half the window
    expect(Array.from(new Int32Array(s.data))).toEqual([4, 4, 2, 4, 4, 2, 2, 2, 1]);
  });

  test('QLinearConv with bias and per-channel weight scales', () => {
    // 1x1 conv, x [1,2,1,1], w [2,2,1,1]
    const x = u8([1, 2, 1, 1], [4, 6], false);
    const w = i8([2, 2, 1, 1], [1, 2, -1, 1]);
    const bias = { dtype: DataType.INT32, shape: [2], data: Int32Array.from([10, -10]), constant: true };
    const [y] = runNode({
      op: 'QLinearConv',
      inputs: [x, f32([], [1], true), u8([], [2]), w, f32([2], [1, 2], true), i8([], [0]), f32([], [2], true), u8([], [128]), bias],
      opset: 10,
    });
    // acc0 = 10 + (2*1 + 4*2) = 20 -> 20*1*1/2 = 10 -> 138; acc1 = -10 + (2*-1 + 4*1) = -8 -> -8*1*2/2 = -8 -> 120
    expect(Array.from(new Uint8Array(y.data))).toEqual([138, 120]);
  });
});
