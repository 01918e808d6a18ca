/**
 * The int8 layer kinds (native Int8Conv, Int8Gemm) on hand-built Plans: the reference tactics against
 * a JS computation of the same formula, and the packed/im2col tactics against the reference, with
 * uint8 and int8 activations, per-channel and per-tensor weight scales, bias, residual, activation,
 * float and requantized outputs, padding, strides, groups.
 */
import { DataType } from '../../../src/dtype';
import { PlanAttr, encodePlan, float, floats, int, ints, str } from '../../../src/lower/plan';
import { native } from '../../../src/native/binding';
import { Int8LayerCase, int8LayerPlan } from './int8-helpers';
import { rng } from './tactic-helpers';


type Case = Int8LayerCase;

const planOf = int8LayerPlan;

function run(c: Case, tactic?: string): number[] {
  const { plan, inputs } = planOf(c);
  const out = native().runPlan(encodePlan(plan), inputs, tactic ? { [c.kind]: tactic } : {})[0];
  const T = c.out.dtype === DataType.FLOAT ? Float32Array : c.out.dtype === DataType.INT8 ? Int8Array : Uint8Array;
  return Array.from(new T(out));
}

/** fl(a * b + c) rounded once (fmaf): the product of floats is exact in double, the sum rounded to odd there. */
const f64 = new Float64Array(1);
const u64 = new BigUint64Array(f64.buffer);
function fma32(a: number, b: number, c: number): number {
  const p = a * b;
  const s = p + c;
  const bv = s - p;
  const err = p - (s - bv) + (c - bv);
  f64[0] = s;
  if (err !== 0 && Number.isFinite(s) && (u64[0] & 1n) === 0n) u64[0] += (err > 0) === (s > 0) ? 1n : -1n;
  return Math.fround(f64[0]);
}

const roundHalfEven = (v: number) => (Math.abs(v % 1) === 0.5 ? 2 * Math.round(v / 2) : Math.round(v));

/**
 * The epilogue of one element, as the native Store does it (float32 math): float32 outputs
 * act(acc * mult + b + r); requantized ones in folded form (native/cpu/int8_fold.h), where `r` is the
 * residual before its scale and `rs` that scale (1 for float32).
 */
function epilogue(acc: number, mult: number, b: number, r: number, relu: boolean, out: DataType, ys: number, yzp: number, rs = 1, clip?: [number, number]): number {
  if (out === DataType.FLOAT) {
    let v = Math.fround(Math.fround(acc * mult) + b);
    v = Math.fround(v + Math.fround(r * rs));
    return relu ? Math.max(0, v) : v;
  }
  ys = Math.fround(ys);
  let v = fma32(Math.fround(acc), Math.fround(mult / ys), Math.fround(Math.fround(b / ys) + yzp));
  v = fma32(r, Math.fround(Math.fround(rs) / ys), v);
  let lo = out === DataType.INT8 ? -128 : 0;
  let hi = out === DataType.INT8 ? 127 : 255;
  if (relu) lo = Math.max(lo, yzp);
  if (clip) [lo, hi] = [Math.max(lo, Math.fround(Math.fround(Math.fround(clip[0]) / ys) + yzp)), Math.min(hi, Math.fround(Math.fround(Math.fround(clip[1]) / ys) + yzp))];
  return roundHalfEven(Math.min(Math.max(v, lo), hi));
}

function randInt(n: number, lo: number, hi: number, r: () => number): number[] {
  return Array.from({ length: n }, () => lo + Math.floor(r() * (hi - lo + 1)));
}

describe('Int8Gemm', () => {
  const r = rng(7);
  const [M, N, K] = [5, 7, 37];
  const a = Uint8Array.from(randInt(M * K, 0, 255, r));
  const w = Int8Array.from(randInt(N * K, -127, 127, r));
  const ws = Array.from({ length: N }, () => 0.001 + r() * 0.01);
  const bias = Float32Array.from({ length: N }, () => r() - 0.5);
  const residual = Float32Array.from({ length: M * N }, () => r() - 0.5);
  const base = (out: DataType, extra: Record<string, PlanAttr> = {}): Case => ({
    kind: 'Int8Gemm',
    x: { dtype: DataType.UINT8, shape: [M, K], data: a },
    w: { shape: [N, K], data: w },
    bias,
    residual,
    out: { dtype: out, shape: [M, N] },
    attrs: { M: int(M), N: int(N), K: int(K), x_scale: float(0.02), x_zero_point: int(128), w_scales: floats(ws), y_scale: float(0.01), y_zero_point: int(3), activation: str('relu'), ...extra },
  });

  test.each([DataType.FLOAT, DataType.INT8, DataType.UINT8])('reference = the formula (output type %p)', (out) => {
    const got = run(base(out));
    for (let m = 0; m < M; m++)
      for (let n = 0; n < N; n++) {
        let acc = 0;
        for (let k = 0; k < K; k++) acc += (a[m * K + k] - 128) * w[n * K + k];
        const want = epilogue(acc, Math.fround(Math.fround(0.02) * ws[n]), bias[n], residual[m * N + n], true, out, 0.01, 3);
        if (out === DataType.FLOAT) expect(got[m * N + n]).toBeCloseTo(want, 4);
        else expect(got[m * N + n]).toBe(want);
      }
  });

  test.each([DataType.FLOAT, DataType.UINT8])('packed tactic = reference (output type %p)', (out) => {
    expect(run(base(out), 'cpu.int8_gemm.packed')).toEqual(run(base(out), 'cpu.int8_gemm'));
    const one = { ...base(out), attrs: { ...base(out).attrs, w_scales: floats([0.004]) } };
    expect(run(one, 'cpu.int8_gemm.packed')).toEqual(run(one, 'cpu.int8_gemm'));
  });

  test.each([DataType.INT8, DataType.UINT8])('a quantized residual (%p) is read as (r - residual_zero_point) * residual_scale', (rt) => {
    const rq = rt === DataType.INT8 ? Int8Array.from(randInt(M * N, -128, 127, r)) : Uint8Array.from(randInt(M * N, 0, 255, r));
    const rzp = rt === DataType.INT8 ? -2 : 130;
    const c: Case = { ...base(DataType.FLOAT, { residual_scale: float(0.015), residual_zero_point: int(rzp) }), residual: rq };
    const got = run(c);
    for (let m = 0; m < M; m++)
      for (let n = 0; n < N; n++) {
        let acc = 0;
        for (let k = 0; k < K; k++) acc += (a[m * K + k] - 128) * w[n * K + k];
        expect(got[m * N + n]).toBeCloseTo(epilogue(acc, Math.fround(Math.fround(0.02) * ws[n]), bias[n], rq[m * N + n] - rzp, true, DataType.FLOAT, 0.01, 3, 0.015), 5);
      }
    expect(run(c, 'cpu.int8_gemm.packed')).toEqual(got);
    // requantized: the folded form, exactly
    const cq: Case = { ...c, out: { dtype: DataType.INT8, shape: [M, N] } };
    const gq = run(cq);
    for (let m = 0; m < M; m++)
      for (let n = 0; n < N; n++) {
        let acc = 0;
        for (let k = 0; k < K; k++) acc += (a[m * K + k] - 128) * w[n * K + k];
        expect(gq[m * N + n]).toBe(epilogue(acc, Math.fround(Math.fround(0.02) * ws[n]), bias[n], rq[m * N + n] - rzp, true, DataType.INT8, 0.01, 3, 0.015));
      }
    expect(run(cq, 'cpu.int8_gemm.packed')).toEqual(gq);
    // a residual_zero_point outside the residual's type is an error naming the layer
    const bad: Case = { ...c, attrs: { ...c.attrs, residual_zero_point: int(rt === DataType.INT8 ? 200 : -1) } };
    expect(() => run(bad)).toThrow(/layer 'q' \(Int8Gemm\): residual_zero_point is out of the residual type's range/);
  });

  test.each([DataType.INT8, DataType.UINT8])('Clip requantizes in folded form: its bounds over y_scale plus y_zero_point (output type %p)', (out) => {
    const c = base(out, { activation: str('clip'), activation_min: float(-0.3), activation_max: float(0.45) });
    const got = run(c);
    let clipped = 0;
    for (let m = 0; m < M; m++)
      for (let n = 0; n < N; n++) {
        let acc = 0;
        for (let k = 0; k < K; k++) acc += (a[m * K + k] - 128) * w[n * K + k];
        const want = epilogue(acc, Math.fround(Math.fround(0.02) * ws[n]), bias[n], residual[m * N + n], false, out, 0.01, 3, 1, [-0.3, 0.45]);
        expect(got[m * N + n]).toBe(want);
        if (want === Math.round(0.45 / 0.01) + 3 || want === Math.round(-0.3 / 0.01) + 3) clipped++;
      }
    expect(clipped).toBeGreaterThan(0);
    expect(run(c, 'cpu.int8_gemm.packed')).toEqual(got);
  });

  test('a bad w_scales count is an error naming the layer', () => {
    expect(() => run({ ...base(DataType.FLOAT), attrs: { ...base(DataType.FLOAT).attrs, w_scales: floats([1, 2]) } })).toThrow(/layer 'q' \(Int8Gemm\): w_scales has 2 values, expected 1 or 7/);
  });
});

describe('Int8Conv', () => {
  const r = rng(9);
  const cases: [string, { C: number; M: number; G: number; H: number; k: number; s: number; p: number; xt: DataType }][] = [
    ['3x3 pad 1, uint8', { C: 4, M: 6, G: 1, H: 7, k: 3, s: 1, p: 1, xt: DataType.UINT8 }],
    ['3x3 stride 2, int8', { C: 3, M: 5, G: 1, H: 9, k: 3, s: 2, p: 1, xt: DataType.INT8 }],
    ['grouped 2, 1x1', { C: 4, M: 4, G: 2, H: 5, k: 1, s: 1, p: 0, xt: DataType.UINT8 }],
  ];
  test.each(cases)('%s: reference = direct formula, im2col = reference', (_name, { C, M, G, H, k, s, p, xt }) => {
    const OH = Math.floor((H + 2 * p - k) / s) + 1;
    const zp = xt === DataType.UINT8 ? 100 : -3;
    const x = xt === DataType.UINT8 ? Uint8Array.from(randInt(C * H * H, 0, 255, r)) : Int8Array.from(randInt(C * H * H, -128, 127, r));
    const Cg = C / G;
    const w = Int8Array.from(randInt(M * Cg * k * k, -127, 127, r));
    const ws = Array.from({ length: M }, () => 0.001 + r() * 0.01);
    const bias = Float32Array.from({ length: M }, () => r() - 0.5);
    const c = (out: DataType): Case => ({
      kind: 'Int8Conv',
      x: { dtype: xt, shape: [1, C, H, H], data: x },
      w: { shape: [M, Cg, k, k], data: w },
      bias,
      out: { dtype: out, shape: [1, M, OH, OH] },
      attrs: { group: int(G), strides: ints([s, s]), dilations: ints([1, 1]), pads: ints([p, p, p, p]), x_scale: float(0.05), x_zero_point: int(zp), w_scales: floats(ws), y_scale: float(0.03), y_zero_point: int(0), activation: str('none') },
    });
    const got = run(c(DataType.FLOAT));
    for (let m = 0; m < M; m++)
      for (let oy = 0; oy < OH; oy++)
        for (let ox = 0; ox < OH; ox++) {
          let acc = 0;
          const g = Math.floor(m / (M / G));
          for (let ci = 0; ci < Cg; ci++)
            for (let ky = 0; ky < k; ky++)
              for (let kx = 0; kx < k; kx++) {
                const iy = oy * s - p + ky;
                const ix = ox * s - p + kx;
                if (iy < 0 || iy >= H || ix < 0 || ix >= H) continue;
                acc += (x[((g * Cg + ci) * H + iy) * H + ix] - zp) * w[((m * Cg + ci) * k + ky) * k + kx];
              }
          expect(got[(m * OH + oy) * OH + ox]).toBeCloseTo(epilogue(acc, Math.fround(Math.fround(0.05) * ws[m]), bias[m], 0, false, DataType.FLOAT, 1, 0), 4);
        }
    for (const out of [DataType.FLOAT, DataType.INT8]) expect(run(c(out), 'cpu.int8_conv.im2col')).toEqual(run(c(out), 'cpu.int8_conv'));
  });
});
