/**
 * LSTM, GRU, RNN against a plain JS reference written from the ONNX equations: directions, layouts,
 * sequence lengths, initial states, peepholes, input_forget, clip, linear_before_reset, activations
 * with alpha/beta; plus shape inference and attribute errors.
 */
import { DataType } from '../../../src/dtype';
import { AttrValue } from '../../../src/ir/graph';
import { NodeInput, attrF, attrI, attrS, f32, runNode } from './run-node';

type Cell = 'LSTM' | 'GRU' | 'RNN';
const GATES: Record<Cell, number> = { LSTM: 4, GRU: 3, RNN: 1 };

function rng(seed: number) {
  let s = seed;
  return () => {
    s = (s * 1103515245 + 12345) & 0x7fffffff;
    return (s / 0x7fffffff) * 2 - 1;
  };
}
const sig = (x: number) => 1 / (1 + Math.exp(-x));
const ACT: Record<string, (x: number, a: number, b: number) => number> = {
  Sigmoid: sig,
  Tanh: Math.tanh,
  Relu: (x) => Math.max(0, x),
  LeakyRelu: (x, a) => (x < 0 ? a * x : x),
  HardSigmoid: (x, a, b) => Math.max(0, Math.min(1, a * x + b)),
  ScaledTanh: (x, a, b) => a * Math.tanh(b * x),
  Affine: (x, a, b) => a * x + b,
};

interface Case {
  cell: Cell;
  S: number;
  B: number;
  I: number;
  H: number;
  dir?: 'forward' | 'reverse' | 'bidirectional';
  layout?: number;
  lens?: number[];
  initial?: boolean;
  bias?: boolean;
  peep?: boolean;
  inputForget?: boolean;
  clip?: number;
  lbr?: boolean;
  acts?: [string, number, number][]; // per direction list, with alpha/beta actually used
}

/** Reference outputs [Y, Y_h, Y_c] in layout 0 order, then rearranged for layout 1. */
function reference(c: Case, X: number[], W: number[], R: number[], Bv: number[] | null, H0: number[] | null, C0: number[] | null, P: number[] | null) {
  const D = c.dir === 'bidirectional' ? 2 : 1, G = GATES[c.cell], { S, B, I, H } = c;
  const L1 = c.layout === 1;
  const defaults: Record<Cell, string[]> = { LSTM: ['Sigmoid', 'Tanh', 'Tanh'], GRU: ['Sigmoid', 'Tanh'], RNN: ['Tanh'] };
  const nA = defaults[c.cell].length;
  const acts = c.acts ?? Array.from({ length: D }, () => defaults[c.cell].map((n) => [n, 0, 0] as [string, number, number])).flat();
  const Y = new Array(S * D * B * H).fill(0), Yh = new Array(D * B * H).fill(0), Yc = new Array(D * B * H).fill(0);
  const xi = (t: number, b: number) => (L1 ? (b * S + t) * I : (t * B + b) * I);
  const yi = (t: number, d: number, b: number) => (L1 ? ((b * S + t) * D + d) * H : ((t * D + d) * B + b) * H);
  const si = (d: number, b: number) => (L1 ? (b * D + d) * H : (d * B + b) * H);
  const clip = (x: number) => (c.clip === undefined ? x : Math.max(-c.clip, Math.min(c.clip, x)));
  for (let d = 0; d < D; d++) {
    const f = (k: number, x: number) => {
      const [n, a, b] = acts[d * nA + k];
      return ACT[n](x, a, b);
    };
    const rev = d === 1 || c.dir === 'reverse';
    const dot = (M: number[], off: number, v: number[], n: number) => v.reduce((s, x, k) => s + M[off + k] * x, 0) + 0 * n;
    for (let b = 0; b < B; b++) {
      let h = Array.from({ length: H }, (_, j) => (H0 ? H0[si(d, b) + j] : 0));
      let cs = Array.from({ length: H }, (_, j) => (C0 ? C0[si(d, b) + j] : 0));
      const len = c.lens ? c.lens[b] : S;
      for (let step = 0; step < len; step++) {
        const t = rev ? len - 1 - step : step;
        const x = X.slice(xi(t, b), xi(t, b) + I);
        const wx = (r: number) => dot(W, (d * G * H + r) * I, x, I) + (Bv ? Bv[d * 2 * G * H + r] : 0);
        const rhv = (r: number, v: number[]) => dot(R, (d * G * H + r) * H, v, H);
        const rbias = (r: number) => (Bv ? Bv[d * 2 * G * H + G * H + r] : 0);
        const p = (k: number, j: number) => (P ? P[d * 3 * H + k * H + j] : 0);
        const nh: number[] = [], nc: number[] = [];
        for (let j = 0; j < H; j++) {
          if (c.cell === 'RNN') nh.push(f(0, clip(wx(j) + rhv(j, h) + rbias(j))));
          else if (c.cell === 'LSTM') {
            const it = f(0, clip(wx(j) + rhv(j, h) + rbias(j) + p(0, j) * cs[j]));
            const ft = c.inputForget ? 1 - it : f(0, clip(wx(2 * H + j) + rhv(2 * H + j, h) + rbias(2 * H + j) + p(2, j) * cs[j]));
            const ct = f(1, clip(wx(3 * H + j) + rhv(3 * H + j, h) + rbias(3 * H + j)));
            const C = ft * cs[j] + it * ct;
            const ot = f(0, clip(wx(H + j) + rhv(H + j, h) + rbias(H + j) + p(1, j) * C));
            nc.push(C);
            nh.push(ot * f(2, C));
          } else {
            const z = f(0, clip(wx(j) + rhv(j, h) + rbias(j)));
            const r = h.map((_, k) => f(0, clip(wx(H + k) + rhv(H + k, h) + rbias(H + k))));
            const hh = c.lbr
              ? f(1, clip(wx(2 * H + j) + r[j] * (rhv(2 * H + j, h) + rbias(2 * H + j))))
              : f(1, clip(wx(2 * H + j) + rhv(2 * H + j, h.map((v, k) => v * r[k])) + rbias(2 * H + j)));
            nh.push((1 - z) * hh + z * h[j]);
          }
        }
        h = nh;
        if (c.cell === 'LSTM') cs = nc;
        for (let j = 0; j < H; j++) Y[yi(t, d, b) + j] = h[j];
      }
      for (let j = 0; j < H; j++) {
        Yh[si(d, b) + j] = h[j];
        Yc[si(d, b) + j] = cs[j];
      }
    }
  }
  return [Y, Yh, Yc];
}

function runCase(c: Case, seed = 1) {
  const r = rng(seed);
  const D = c.dir === 'bidirectional' ? 2 : 1, G = GATES[c.cell], { S, B, I, H } = c;
  const rand = (n: number) => Array.from({ length: n }, () => r());
  const X = rand(S * B * I), W = rand(D * G * H * I), R = rand(D * G * H * H);
  const Bv = c.bias ? rand(D * 2 * G * H) : null;
  const H0 = c.initial ? rand(D * B * H) : null;
  const C0 = c.initial && c.cell === 'LSTM' ? rand(D * B * H) : null;
  const P = c.peep ? rand(D * 3 * H) : null;
  const L1 = c.layout === 1;
  const state = L1 ? [B, D, H] : [D, B, H];
  const inputs: (NodeInput | undefined)[] = [
    f32(L1 ? [B, S, I] : [S, B, I], X),
    f32([D, G * H, I], W, true),
    f32([D, G * H, H], R, true),
    Bv ? f32([D, 2 * G * H], Bv, true) : undefined,
    c.lens ? { dtype: DataType.INT32, shape: [B], data: Int32Array.from(c.lens) } : undefined,
    H0 ? f32(state, H0) : undefined,
  ];
  if (c.cell === 'LSTM') inputs.push(C0 ? f32(state, C0) : undefined, P ? f32([D, 3 * H], P, true) : undefined);
  while (inputs.length && !inputs[inputs.length - 1]) inputs.pop();
  const attrs: Record<string, AttrValue> = { hidden_size: attrI(H) };
  if (c.dir) attrs.direction = attrS(c.dir);
  if (c.layout) attrs.layout = attrI(c.layout);
  if (c.clip !== undefined) attrs.clip = attrF(c.clip);
  if (c.inputForget) attrs.input_forget = attrI(1);
  if (c.lbr) attrs.linear_before_reset = attrI(1);
  if (c.acts) {
    attrs.activations = { type: 'strings', value: c.acts.map((a) => a[0]) };
    const alphas: number[] = [], betas: number[] = [];
    for (const [n, a, b] of c.acts) {
      if (['LeakyRelu', 'HardSigmoid', 'ScaledTanh', 'Affine'].includes(n)) alphas.push(a);
      if (['HardSigmoid', 'ScaledTanh', 'Affine'].includes(n)) betas.push(b);
    }
    if (alphas.length) attrs.activation_alpha = { type: 'floats', value: alphas };
    if (betas.length) attrs.activation_beta = { type: 'floats', value: betas };
  }
  const nOut = c.cell === 'LSTM' ? 3 : 2;
  const got = runNode({ op: c.cell, inputs, attrs, outputs: nOut, opset: 22 });
  const exp = reference(c, X, W, R, Bv, H0, C0, P);
  got.forEach((o, k) => {
    expect(o.shape).toEqual(k === 0 ? (L1 ? [B, S, D, H] : [S, D, B, H]) : state);
    const a = Array.from(new Float32Array(o.data));
    expect(a.length).toBe(exp[k].length);
    a.forEach((v, i) => expect(Math.abs(v - exp[k][i])).toBeLessThan(1e-5));
  });
}

describe('recurrent ops', () => {
  test('RNN forward, defaults', () => runCase({ cell: 'RNN', S: 3, B: 2, I: 3, H: 4 }));
  test('RNN bidirectional with bias, initial state, sequence lengths, layout 1', () =>
    runCase({ cell: 'RNN', S: 4, B: 3, I: 2, H: 3, dir: 'bidirectional', bias: true, initial: true, lens: [4, 2, 0], layout: 1 }));
  test('GRU reverse, linear_before_reset=0 and 1, clip', () => {
    runCase({ cell: 'GRU', S: 3, B: 2, I: 3, H: 2, dir: 'reverse', bias: true, initial: true });
    runCase({ cell: 'GRU', S: 3, B: 2, I: 3, H: 2, bias: true, lbr: true, clip: 0.5 }, 7);
  });
  test('GRU bidirectional with activations taking alpha/beta', () =>
    runCase({
      cell: 'GRU',
      S: 2,
      B: 1,
      I: 2,
      H: 3,
      dir: 'bidirectional',
      acts: [['HardSigmoid', 0.3, 0.4], ['LeakyRelu', 0.2, 0], ['Sigmoid', 0, 0], ['ScaledTanh', 0.9, 1.1]],
    }));
  test('LSTM: peepholes, initial states, sequence lengths, bidirectional', () =>
    runCase({ cell: 'LSTM', S: 3, B: 2, I: 2, H: 3, dir: 'bidirectional', bias: true, initial: true, peep: true, lens: [3, 1] }));
  test('LSTM: input_forget, clip, layout 1', () => runCase({ cell: 'LSTM', S: 2, B: 2, I: 3, H: 2, inputForget: true, clip: 0.3, layout: 1, bias: true }));
  test('wrong activation count names the node', () => {
    expect(() =>
      runNode({ op: 'RNN', inputs: [f32([1, 1, 1], [1]), f32([1, 1, 1], [1], true), f32([1, 1, 1], [1], true)], attrs: { hidden_size: attrI(1), activations: { type: 'strings', value: ['Tanh', 'Tanh'] } }, outputs: 2 }),
    ).toThrow(/node 'n0' \(RNN\).*activations lists 2 functions/);
  });
});
