/**
 * Normalizations: LayerNormalization (with Mean/InvStdDev), RMSNormalization, InstanceNormalization,
 * GroupNormalization (opset 18 per-group and 21 per-channel scale), MeanVarianceNormalization,
 * LpNormalization, BatchNormalization (inference; training mode refused), LRN; numbers against JS
 * references; the threaded Normalize tactic against the reference tactic.
 */
import { DataType } from '../../../src/dtype';
import { AttrValue } from '../../../src/ir/graph';
import { NodeInput, attrF, attrI, f32, runNode } from './run-node';
import { randomArray, rng } from './tactic-helpers';

const ints = (value: number[]): AttrValue => ({ type: 'ints', value });
const vals = (r: { data: ArrayBuffer }) => [...new Float32Array(r.data)];
const near = (got: number[], want: number[], tol = 1e-4) => {
  expect(got.length).toBe(want.length);
  want.forEach((w, i) => expect(Math.abs(got[i] - w)).toBeLessThanOrEqual(tol * (1 + Math.abs(w))));
};
const rand = (n: number, seed: number) => Array.from(randomArray(n, rng(seed)));

/** Normalizes consecutive groups of `g` elements; scale/bias indexed by fs(i)/fb(i) of the flat index. */
function refGroups(x: number[], g: number, mode: 'meanvar' | 'rms', eps: number, sc?: (i: number) => number, bi?: (i: number) => number) {
  const y: number[] = [];
  const means: number[] = [];
  const invs: number[] = [];
  for (let s = 0; s < x.length; s += g) {
    const grp = x.slice(s, s + g);
    const mean = mode === 'meanvar' ? grp.reduce((a, b) => a + b, 0) / g : 0;
    const v = grp.reduce((a, b) => a + (b - mean) ** 2, 0) / g;
    const inv = 1 / Math.sqrt(v + eps);
    means.push(mean);
    invs.push(inv);
    grp.forEach((xv, k) => y.push((xv - mean) * inv * (sc ? sc(s + k) : 1) + (bi ? bi(s + k) : 0)));
  }
  return { y, means, invs };
}

describe('LayerNormalization / RMSNormalization', () => {
  const x = rand(2 * 3 * 4, 1);
  const scale = rand(12, 2);
  const bias = rand(12, 3);
  test('axis 1 with Mean and InvStdDev outputs; defaults epsilon 1e-5', () => {
    const [y, m, inv] = runNode({ op: 'LayerNormalization', opset: 17, inputs: [f32([2, 3, 4], x), f32([3, 4], scale), f32([3, 4], bias)], attrs: { axis: attrI(1) }, outputs: 3 });
    const want = refGroups(x, 12, 'meanvar', 1e-5, (i) => scale[i % 12], (i) => bias[i % 12]);
    near(vals(y), want.y);
    expect(m.shape).toEqual([2, 1, 1]);
    expect(m.dtype).toBe(DataType.FLOAT);
    near(vals(m), want.means);
    near(vals(inv), want.invs);
  });
  test('default axis -1, scale broadcast from [4], no bias', () => {
    const sc = scale.slice(0, 4);
    const [y] = runNode({ op: 'LayerNormalization', opset: 17, inputs: [f32([2, 3, 4], x), f32([4], sc)], attrs: { epsilon: attrF(0.1) } });
    near(vals(y), refGroups(x, 4, 'meanvar', 0.1, (i) => sc[i % 4]).y);
  });
  test('RMSNormalization', () => {
    const [y] = runNode({ op: 'RMSNormalization', opset: 23, inputs: [f32([2, 3, 4], x), f32([3, 4], scale)], attrs: { axis: attrI(-2) } });
    near(vals(y), refGroups(x, 12, 'rms', 1e-5, (i) => scale[i % 12]).y);
  });
  test('threaded tactic matches the reference', () => {
    const spec = { op: 'LayerNormalization', opset: 17, inputs: [f32([2, 3, 4], x), f32([4], scale.slice(0, 4)), f32([4], bias.slice(0, 4))], outputs: 3 };
    const a = runNode(spec);
    const b = runNode(spec, { Normalize: 'cpu.normalize.mt' });
    a.forEach((r, i) => expect(vals(b[i])).toEqual(vals(r)));
  });
  test('a scale that does not broadcast names the node', () => {
    expect(() => runNode({ op: 'LayerNormalization', opset: 17, inputs: [f32([2, 3, 4], x), f32([3], [1, 1, 1])] })).toThrow(/n0.*Scale of shape \[3\] does not broadcast/);
  });
});

describe('Instance / Group / MVN / Lp', () => {
  const x = rand(2 * 4 * 3, 4); // [2, 4, 3]
  test('InstanceNormalization: per (n, c) over the spatial dims, per-channel scale and bias', () => {
    const s = [1, 2, 3, 4];
    const b = [0.5, 0, -1, 2];
    const [y] = runNode({ op: 'InstanceNormalization', opset: 6, inputs: [f32([2, 4, 3], x), f32([4], s), f32([4], b)] });
    near(vals(y), refGroups(x, 3, 'meanvar', 1e-5, (i) => s[Math.floor(i / 3) % 4], (i) => b[Math.floor(i / 3) % 4]).y);
  });
  test('GroupNormalization: opset 21 per-channel, opset 18 per-group parameters', () => {
    const s = [1, 2, 3, 4];
    const b = [0.5, 0, -1, 2];
    const [y] = runNode({ op: 'GroupNormalization', opset: 21, inputs: [f32([2, 4, 3], x), f32([4], s), f32([4], b)], attrs: { num_groups: attrI(2) } });
    near(vals(y), refGroups(x, 6, 'meanvar', 1e-5, (i) => s[Math.floor(i / 3) % 4], (i) => b[Math.floor(i / 3) % 4]).y);
    const [y18] = runNode({ op: 'GroupNormalization', opset: 18, inputs: [f32([2, 4, 3], x), f32([2], [2, 3]), f32([2], [1, -1])], attrs: { num_groups: attrI(2) } });
    near(vals(y18), refGroups(x, 6, 'meanvar', 1e-5, (i) => [2, 3][Math.floor(i / 6) % 2], (i) => [1, -1][Math.floor(i / 6) % 2]).y);
    expect(() => runNode({ op: 'GroupNormalization', opset: 21, inputs: [f32([2, 4, 3], x), f32([4], s), f32([4], b)], attrs: { num_groups: attrI(3) } })).toThrow(/n0.*num_groups 3 does not divide the 4 channels/);
  });
  test('MeanVarianceNormalization over axes [0, 2]', () => {
    const [y] = runNode({ op: 'MeanVarianceNormalization', opset: 13, inputs: [f32([2, 1, 3], [1, 2, 3, 4, 5, 6])], attrs: { axes: ints([0, 2]) } });
    const m = 3.5;
    const sd = Math.sqrt([1, 2, 3, 4, 5, 6].reduce((a, v) => a + (v - m) ** 2, 0) / 6);
    near(vals(y), [1, 2, 3, 4, 5, 6].map((v) => (v - m) / (sd + 1e-9)));
  });
  test('LpNormalization p=1 and p=2; an all-zero row stays zero', () => {
    near(vals(runNode({ op: 'LpNormalization', opset: 22, inputs: [f32([2, 2], [3, 4, 0, 0])] })[0]), [0.6, 0.8, 0, 0]);
    near(vals(runNode({ op: 'LpNormalization', opset: 22, inputs: [f32([2, 2], [1, 3, 2, -2])], attrs: { p: attrI(1), axis: attrI(0) } })[0]), [1 / 3, 0.6, 2 / 3, -0.4]);
  });
});

describe('BatchNormalization and LRN', () => {
  const c = (d: number[]): NodeInput => f32([2], d, true);
  test('inference with given statistics, channel axis 1', () => {
    const [y] = runNode({ op: 'BatchNormalization', opset: 15, inputs: [f32([1, 2, 2], [1, 2, 3, 4]), c([2, 1]), c([0, 1]), c([1, 3]), c([4, 1])], attrs: { epsilon: attrF(0) } });
    near(vals(y), [0, 1, 1, 2]);
  });
  test('per-channel parameters of the wrong size name the node', () => {
    expect(() => runNode({ op: 'BatchNormalization', opset: 15, inputs: [f32([1, 3, 2], [1, 2, 3, 4, 5, 6]), c([1, 1]), c([0, 0]), c([0, 0]), c([1, 1])] })).toThrow(
      /n0.*scale has 2 elements; expected one per channel \(3\)/,
    );
  });
  test('training mode is refused with the reason', () => {
    expect(() =>
      runNode({ op: 'BatchNormalization', opset: 15, inputs: [f32([1, 2, 2], [1, 2, 3, 4]), c([1, 1]), c([0, 0]), c([0, 0]), c([1, 1])], attrs: { training_mode: attrI(1) } }),
    ).toThrow(/n0.*training_mode=1.*not supported/);
  });
  test('LRN across channels', () => {
    const x = [1, 2, 3, 4, 5, 6]; // [1, 3, 2]: channels (1,2) (3,4) (5,6)
    const [y] = runNode({ op: 'LRN', opset: 13, inputs: [f32([1, 3, 2], x)], attrs: { size: attrI(3), alpha: attrF(0.3), beta: attrF(0.75), bias: attrF(2) } });
    const want = x.map((v, i) => {
      const ch = Math.floor(i / 2);
      const j = i % 2;
      let s = 0;
      for (let k = Math.max(0, ch - 1); k <= Math.min(2, ch + 1); k++) s += x[k * 2 + j] ** 2;
      return v / (2 + (0.3 / 3) * s) ** 0.75;
    });
    near(vals(y), want);
  });
});
