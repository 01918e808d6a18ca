import { DataType } from '../../../src/dtype';
import { KilnError } from '../../../src/errors';
import { attrF, attrI, attrS, f32, runNode } from './run-node';

// erf to ~1e-7 (Abramowitz–Stegun 7.1.26 is too coarse near 0; this is the series / continued form)
function erf(x: number): number {
  const ax = Math.abs(x);
  let r: number;
  if (ax < 2.5) {
    // Maclaurin series
    let term = ax, sum = ax;
    for (let n = 1; n < 60; n++) {
      term *= (-ax * ax) / n;
      sum += term / (2 * n + 1);
    }
    r = (2 / Math.sqrt(Math.PI)) * sum;
  } else {
    // asymptotic continued fraction for erfc
    let f = 0;
    for (let n = 60; n >= 1; n--) f = n / 2 / (ax + f);
    r = 1 - Math.exp(-ax * ax) / Math.sqrt(Math.PI) / (ax + f);
  }
  return x < 0 ? -r : r;
}
const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));
const softplus = (x: number) => Math.log1p(Math.exp(-Math.abs(x))) + Math.max(x, 0);
const roundEven = (x: number) => {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
};

type Case = [op: string, ref: (x: number) => number, lo: number, hi: number, attrs?: Record<string, number | string>];
const CASES: Case[] = [
  ['Abs', Math.abs, -5, 5],
  ['Neg', (x) => -x, -5, 5],
  ['Sign', Math.sign, -5, 5],
  ['Exp', Math.exp, -5, 5],
  ['Log', Math.log, 0.01, 10],
  ['Sqrt', Math.sqrt, 0, 10],
  ['Reciprocal', (x) => 1 / x, 0.1, 10],
  ['Floor', Math.floor, -5, 5],
  ['Ceil', Math.ceil, -5, 5],
  ['Round', roundEven, -5, 5],
  ['Sin', Math.sin, -5, 5],
  ['Cos', Math.cos, -5, 5],
  ['Tan', Math.tan, -1.5, 1.5],
  ['Asin', Math.asin, -1, 1],
  ['Acos', Math.acos, -1, 1],
  ['Atan', Math.atan, -5, 5],
  ['Sinh', Math.sinh, -5, 5],
  ['Cosh', Math.cosh, -5, 5],
  ['Asinh', Math.asinh, -5, 5],
  ['Acosh', Math.acosh, 1, 10],
  ['Atanh', Math.atanh, -0.99, 0.99],
  ['Erf', erf, -4, 4],
  ['Sigmoid', sigmoid, -10, 10],
  ['Tanh', Math.tanh, -5, 5],
  ['Relu', (x) => Math.max(x, 0), -5, 5],
  ['LeakyRelu', (x) => (x < 0 ? 0.01 * x : x), -5, 5],
  ['LeakyRelu', (x) => (x < 0 ? 0.3 * x : x), -5, 5, { alpha: 0.3 }],
  ['Elu', (x) => (x < 0 ? Math.exp(x) - 1 : x), -5, 5],
  ['Selu', (x) => 1.0507009873554805 * (x <= 0 ? 1.6732632423543772 * (Math.exp(x) - 1) : x), -5, 5],
  ['Celu', (x) => Math.max(0, x) + Math.min(0, 2 * (Math.exp(x / 2) - 1)), -5, 5, { alpha: 2 }],
  ['HardSigmoid', (x) => Math.max(0, Math.min(1, 0.2 * x + 0.5)), -5, 5],
  ['HardSwish', (x) => x * Math.max(0, Math.min(1, x / 6 + 0.5)), -5, 5],
  ['Softplus', softplus, -20, 20],
  ['Softsign', (x) => x / (1 + Math.abs(x)), -5, 5],
  ['Gelu', (x) => 0.5 * x * (1 + erf(x / Math.SQRT2)), -5, 5],
  ['Gelu', (x) => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3))), -5, 5, { approximate: 'tanh' }],
  ['Mish', (x) => x * Math.tanh(softplus(x)), -5, 5],
  ['ThresholdedRelu', (x) => (x > 1 ? x : 0), -5, 5],
  ['Shrink', (x) => (x < -1.5 ? x + 0.5 : x > 1.5 ? x - 0.5 : 0), -5, 5, { lambd: 1.5, bias: 0.5 }],
  ['Swish', (x) => x * sigmoid(0.5 * x), -5, 5, { alpha: 0.5 }],
];

const toAttrs = (a: Record<string, number | string> = {}) =>
  Object.fromEntries(Object.entries(a).map(([k, v]) => [k, typeof v === 'string' ? attrS(v) : attrF(v)]));

function grid(lo: number, hi: number, n: number): number[] {
  // includes the endpoints and halves (Round)
  return Array.from({ length: n }, (_, i) => lo + ((hi - lo) * i) / (n - 1));
}

describe('Unary (float32) against a JS reference', () => {
  for (const [op, ref, lo, hi, attrs] of CASES) {
    test(`${op} ${attrs ? JSON.stringify(attrs) : ''}`, () => {
      const xs = grid(lo, hi, 41);
      const [y] = runNode({ op, inputs: [f32([41], xs)], attrs: toAttrs(attrs), opset: 24 });
      expect(y.dtype).toBe(DataType.FLOAT);
      expect(y.shape).toEqual([41]);
      const got = new Float32Array(y.data);
      xs.forEach((x, i) => {
        const want = ref(Math.fround(x));
        expect(Math.abs(got[i] - want)).toBeLessThanOrEqual(1e-5 + 2e-6 * Math.abs(want));
      });
    });
  }

  test('threaded tactic matches the reference on every float op', () => {
    const n = 70000;
    for (const [op, , lo, hi, attrs] of CASES) {
      const xs = grid(lo, hi, n);
      const spec = { op, inputs: [f32([7, n / 7], xs)], attrs: toAttrs(attrs), opset: 24 };
      const a = new Float32Array(runNode(spec)[0].data);
      const b = new Float32Array(runNode(spec, { Unary: 'cpu.unary.threaded' })[0].data);
      expect(Buffer.from(b.buffer).equals(Buffer.from(a.buffer))).toBe(true);
    }
  });
});

describe('Unary special cases', () => {
  test('Round is half to even; Sign and Relu keep NaN', () => {
    const [r] = runNode({ op: 'Round', inputs: [f32([8], [0.5, 1.5, 2.5, -0.5, -2.5, 2.4, 2.6, -0])] });
    expect(Array.from(new Float32Array(r.data))).toEqual([0, 2, 2, -0, -2, 2, 3, -0]);
    const [s] = runNode({ op: 'Sign', inputs: [f32([3], [NaN, -3, 0])] });
    expect(Array.from(new Float32Array(s.data))).toEqual([NaN, -1, 0]);
    const [q] = runNode({ op: 'Relu', inputs: [f32([2], [NaN, -1])] });
    expect(Array.from(new Float32Array(q.data))).toEqual([NaN, 0]);
  });

  test('IsNaN / IsInf give bool and honour detect_negative/detect_positive', () => {
    const x = f32([4], [NaN, Infinity, -Infinity, 1]);
    const [n] = runNode({ op: 'IsNaN', inputs: [x] });
    expect(n.dtype).toBe(DataType.BOOL);
    expect(Array.from(new Uint8Array(n.data))).toEqual([1, 0, 0, 0]);
    expect(Array.from(new Uint8Array(runNode({ op: 'IsInf', inputs: [x] })[0].data))).toEqual([0, 1, 1, 0]);
    const neg = runNode({ op: 'IsInf', inputs: [x], attrs: { detect_positive: attrI(0) } })[0];
    expect(Array.from(new Uint8Array(neg.data))).toEqual([0, 0, 1, 0]);
  });

  test('integer Abs/Neg/Sign/Relu, BitwiseNot and Not', () => {
    const i32 = { dtype: DataType.INT32, shape: [4], data: Int32Array.from([-7, 0, 5, -2147483647]) };
    const out = (op: string, x = i32) => Array.from(new Int32Array(runNode({ op, inputs: [x] })[0].data));
    expect(out('Abs')).toEqual([7, 0, 5, 2147483647]);
    expect(out('Neg')).toEqual([7, 0, -5, 2147483647]);
    expect(out('Sign')).toEqual([-1, 0, 1, -1]);
    expect(out('Relu')).toEqual([0, 0, 5, 0]);
    expect(out('BitwiseNot')).toEqual([6, -1, -6, 2147483646]);
    const i64 = { dtype: DataType.INT64, shape: [3], data: BigInt64Array.from([-(2n ** 63n), -5n, 2n ** 62n]) };
    expect(Array.from(new BigInt64Array(runNode({ op: 'Abs', inputs: [i64] })[0].data))).toEqual([-(2n ** 63n), 5n, 2n ** 62n]);
    expect(Array.from(new BigInt64Array(runNode({ op: 'Neg', inputs: [i64] })[0].data))).toEqual([-(2n ** 63n), 5n, -(2n ** 62n)]);
    const u8 = { dtype: DataType.UINT8, shape: [3], data: Uint8Array.from([0, 1, 255]) };
    expect(Array.from(new Uint8Array(runNode({ op: 'BitwiseNot', inputs: [u8] })[0].data))).toEqual([255, 254, 0]);
    const b = { dtype: DataType.BOOL, shape: [2], data: Uint8Array.from([0, 1]) };
    expect(Array.from(new Uint8Array(runNode({ op: 'Not', inputs: [b] })[0].data))).toEqual([1, 0]);
  });

  test('float16 Exp and float64 Sqrt', () => {
    // 1.0 and 2.0 in float16: 0x3c00, 0x4000; exp(1) = 2.71875 in float16 (0x4170)
    const [h] = runNode({ op: 'Exp', inputs: [{ dtype: DataType.FLOAT16, shape: [2], data: Uint16Array.from([0x0000, 0x3c00]) }] });
    expect(Array.from(new Uint16Array(h.data))).toEqual([0x3c00, 0x4170]);
    const [d] = runNode({ op: 'Sqrt', inputs: [{ dtype: DataType.DOUBLE, shape: [2], data: Float64Array.from([2, 9]) }] });
    expect(Array.from(new Float64Array(d.data))).toEqual([Math.SQRT2, 3]);
  });

  test('types outside an op\'s constraint are refused naming the node', () => {
    const i32 = { dtype: DataType.INT32, shape: [1], data: Int32Array.from([1]) };
    expect(() => runNode({ op: 'Exp', inputs: [i32] })).toThrow(KilnError);
    expect(() => runNode({ op: 'Exp', inputs: [i32] })).toThrow(/n0.*INT32 is not supported/);
    expect(() => runNode({ op: 'Gelu', inputs: [f32([1], [1])], attrs: { approximate: attrS('erf') } })).toThrow(/approximate/);
  });
});

describe('Clip', () => {
  const xs = [-3, -1, 0, 1, 3, NaN];
  const clip = (lo: number, hi: number) => xs.map((x) => (Number.isNaN(x) ? NaN : Math.min(Math.max(x, lo), hi)));
  const run = (spec: Parameters<typeof runNode>[0], tactics?: Record<string, string>) => Array.from(new Float32Array(runNode(spec, tactics)[0].data));

  test('opset 6 attributes, with defaults', () => {
    expect(run({ op: 'Clip', inputs: [f32([6], xs)], attrs: { min: attrF(-1), max: attrF(2) }, opset: 6 })).toEqual(clip(-1, 2));
    expect(run({ op: 'Clip', inputs: [f32([6], xs)], attrs: { max: attrF(0) }, opset: 6 })).toEqual(clip(-Infinity, 0));
  });

  test('opset 13 constant, omitted and run-time bounds; min > max gives max', () => {
    for (const t of [undefined, { Unary: 'cpu.unary.threaded' }]) {
      expect(run({ op: 'Clip', inputs: [f32([6], xs), f32([], [-1], true), f32([], [2], true)], opset: 13 }, t)).toEqual(clip(-1, 2));
      expect(run({ op: 'Clip', inputs: [f32([6], xs), undefined, f32([], [0.5], true)], opset: 13 }, t)).toEqual(clip(-Infinity, 0.5));
      expect(run({ op: 'Clip', inputs: [f32([6], xs), f32([], [-2]), f32([], [1], true)], opset: 13 }, t)).toEqual(clip(-2, 1));
      expect(run({ op: 'Clip', inputs: [f32([6], xs), f32([], [2]), f32([], [1])], opset: 13 }, t)).toEqual(clip(2, 1));
      expect(run({ op: 'Clip', inputs: [f32([6], xs)], opset: 13 }, t)).toEqual(xs);
    }
  });

  test('integer Clip saturates bounds to the type', () => {
    const i8 = { dtype: DataType.INT8, shape: [4], data: Int8Array.from([-128, -5, 5, 127]) };
    const lo = { dtype: DataType.INT8, shape: [], data: Int8Array.from([-6]), constant: true };
    const [y] = runNode({ op: 'Clip', inputs: [i8, lo, undefined], opset: 13 });
    expect(Array.from(new Int8Array(y.data))).toEqual([-6, -5, 5, 127]);
    const i64 = { dtype: DataType.INT64, shape: [2], data: BigInt64Array.from([-(2n ** 62n), 2n ** 62n]) };
    const hi = { dtype: DataType.INT64, shape: [], data: BigInt64Array.from([2n ** 60n + 1n]), constant: true };
    const [z] = runNode({ op: 'Clip', inputs: [i64, undefined, hi], opset: 13 });
    expect(Array.from(new BigInt64Array(z.data))).toEqual([-(2n ** 62n), 2n ** 60n + 1n]);
  });

  test('a non-scalar bound is refused', () => {
    expect(() => runNode({ op: 'Clip', inputs: [f32([2], [1, 2]), f32([2], [0, 0], true)], opset: 13 })).toThrow(/scalar/);
  });
});
