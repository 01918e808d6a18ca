/**
 * Conv-pool fusion: a channels-last int8 stem convolution and the max pool that alone reads it become
 * one Int8ConvPool layer (the CUDA stem kernel's), and its CPU reference (cpu.int8_conv_pool) equals
 * the two layers it replaced, run NCHW on the CPU references and transposed. What the stem kernel
 * does not take stays two layers.
 */
import { DataType } from '../../../src/dtype';
import { Plan, encodePlan, float, floats, int, ints, str } from '../../../src/lower/plan';
import { native } from '../../../src/native/binding';
import { fuseConvPool, poolTile } from '../../../src/passes/conv-pool-fusion';
import { Int8LayerCase, PoolSpec, int8ConvPoolPlan, nhwc } from '../ops/int8-helpers';
import { rng } from '../ops/tactic-helpers';

const r = rng(71);
const ints8 = (n: number, lo: number, hi: number) => Int8Array.from({ length: n }, () => lo + Math.floor(r() * (hi - lo + 1)));

interface Stem {
  N?: number;
  C?: number;
  M?: number;
  H?: number;
  W?: number;
  k?: number;
  p?: number;
  s?: number;
  out?: DataType;
  yzp?: number;
  act?: string;
  xt?: DataType;
}

/** A stem-like Int8Conv (NCHW data) and its output dims. */
function stem(o: Stem = {}): Int8LayerCase {
  const { N = 2, C = 3, M = 64, H = 40, W = 36, k = 7, p = 3, s = 2, out = DataType.INT8, yzp = 0, act = 'relu', xt = DataType.INT8 } = o;
  const oh = Math.floor((H + 2 * p - k) / s) + 1;
  const ow = Math.floor((W + 2 * p - k) / s) + 1;
  return {
    kind: 'Int8Conv',
    x: { dtype: xt, shape: [N, C, H, W], data: xt === DataType.UINT8 ? new Uint8Array(ints8(N * C * H * W, 0, 127).buffer) : ints8(N * C * H * W, -128, 127) },
    w: { shape: [M, C, k, k], data: ints8(M * C * k * k, -127, 127) },
    bias: Float32Array.from({ length: M }, () => r() - 0.5),
    out: { dtype: out, shape: [N, M, oh, ow] },
    attrs: {
      group: int(1),
      strides: ints([s, s]),
      dilations: ints([1, 1]),
      pads: ints([p, p, p, p]),
      x_scale: float(0.02),
      x_zero_point: int(0),
      w_scales: floats(Array.from({ length: M }, () => 0.001 + r() * 0.004)),
      y_scale: float(0.05),
      y_zero_point: int(yzp),
      activation: str(act),
    },
  };
}

/** ResNet's pool (3x3 stride 2 pad 1) over the case's output; `ceil` the ceil-mode output size. */
function pool3(c: Int8LayerCase, ceil = false, k = 3, s = 2, p = 1): PoolSpec {
  const [, , oh, ow] = c.out.shape;
  const size = (x: number) => (ceil ? Math.ceil : Math.floor)((x + 2 * p - k) / s) + 1;
  return { k: [k, k], s: [s, s], pads: [p, p, p, p], out: [size(oh), size(ow)] };
}

/** The case stored channels-last (X, W). */
function channelsLast(c: Int8LayerCase): Int8LayerCase {
  const [N, C, H, W] = c.x.shape;
  const [M, , KH, KW] = c.w.shape;
  return { ...c, x: { ...c.x, data: nhwc(c.x.data, C, H, W, N) }, w: { ...c.w, data: nhwc(c.w.data, C, KH, KW, M) } };
}

const run = (plan: Plan, x: ArrayBufferView) => new Uint8Array(native().runPlan(encodePlan(plan), [x])[0]);

test.each([
  ['ResNet stem, int8 + relu, y zero point 0', stem(), false],
  ['ResNet stem, no activation, y zero point -4, ceil-mode pool', stem({ act: 'none', yzp: -4 }), true],
  ['uint8 output, odd map (33 x 29), batch 1', stem({ N: 1, H: 33, W: 29, out: DataType.UINT8, yzp: 3 }), false],
  ['8x8 window pad 4 over 4 channels', stem({ C: 4, k: 8, p: 4, H: 30, W: 30 }), false],
])('%s: fused into one Int8ConvPool equal to conv then pool', (_, c, ceil) => {
  const pool = pool3(c, ceil);
  const ref = run(int8ConvPoolPlan(c, pool, false), c.x.data);
  const cl = channelsLast(c);
  const plan = int8ConvPoolPlan(cl, pool, true);
  expect(fuseConvPool(plan)).toEqual(['q']);
  expect(plan.ops.map((o) => o.kind)).toEqual(['Int8ConvPool']);
  expect(plan.ops[0].origin.sort()).toEqual(['pool', 'q']);
  expect(plan.ops[0].attrs.pool_kernel).toEqual(ints(pool.k));
  const got = run(plan, cl.x.data);
  const [N, M, ph, pw] = [c.out.shape[0], c.out.shape[1], ...pool.out];
  expect(got.length).toBe(N * M * ph * pw);
  expect(Buffer.from(got).equals(Buffer.from(nhwc(ref, M, ph, pw, N)))).toBe(true);
});

test('what the stem kernel does not take stays a convolution and a pool', () => {
  const cases: [string, Plan][] = [];
  const mk = (name: string, c: Int8LayerCase, pool = pool3(c), edit?: (p: Plan) => void) => {
    const p = int8ConvPoolPlan(channelsLast(c), pool, true);
    edit?.(p);
    cases.push([name, p]);
  };
  mk('32 output channels', stem({ M: 32 }));
  mk('stride 1', stem({ s: 1, k: 3, p: 1 }));
  mk('8 input channels', stem({ C: 8 }));
  mk('3x3 window (2x2 blocks)', stem({ k: 3, p: 1 }));
  mk('sigmoid (no folded epilogue)', stem({ act: 'sigmoid' }));
  mk('uint8 activations', stem({ xt: DataType.UINT8 }));
  mk('average pool', stem(), undefined, (p) => (p.ops[1].attrs.mode = str('avg')));
  mk('pool window 19 wide', stem(), { k: [3, 19], s: [2, 2], pads: [1, 1, 1, 1], out: [10, 1] });
  mk('the convolution output read twice', stem(), undefined, (p) => {
    p.ops.push({ ...p.ops[1], name: 'pool2', outputs: [p.tensors.push({ ...p.tensors[3], name: 'pooled2' }) - 1] });
    p.outputs.push(p.tensors.length - 1);
  });
  mk('NCHW layers', stem(), undefined, (p) => p.ops.forEach((o) => delete o.attrs.channels_last));
  for (const [name, p] of cases) expect([name, fuseConvPool(p), p.ops.length]).toEqual([name, [], p.ops.length]);
});

test('pool tiles: ResNet 3x3 stride 2 takes 7 x 8 pool outputs (a 15 x 17 region)', () => {
  expect(poolTile([3, 3], [2, 2])).toEqual([7, 8]);
  expect(poolTile([2, 2], [2, 2])).toEqual([8, 8]);
  expect(poolTile([3, 18], [1, 1])).toBeUndefined();
});
