/**
 * The int8 layer kinds (Int8Conv, Int8Gemm) on the cuda backend vs the CPU reference tactics, on
 * hand-built Plans: every candidate the build lists (cuBLASLt IMMA algorithms, the tensor-core
 * implicit GEMM, the direct kernel) is built alone and run twice (the second run replays the CUDA
 * graph). The sums are exact int32 and the epilogue rounds as the CPU's, so requantized outputs must
 * be equal and float32 outputs equal within 1e-5 relative (sigmoid's expf may differ in a last bit).
 * Shapes: ResNet-like 3x3 and 1x1, stride 2, groups, dilation, depthwise, 1-D and 3-D, uint8 with a
 * zero point, int8 outputs, residual + relu, per-tensor scales, a channels-last conv (vs the reference
 * transposed), GEMMs that cuBLASLt takes (K, N multiples of 4) and ones it does not, channels-last 1x1
 * convolutions on cuBLASLt's own int8 epilogue and cuDNN's fused int8 graphs (within one step:
 * diffStep). Then an int8 build
 * of a small CNN on cuda against the CPU int8 engine built from the same calibration cache.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Tensor, compile } from '../../src';
import { DataType } from '../../src/dtype';
import { encodePlan, float, floats, int, ints, str } from '../../src/lower/plan';
import { native } from '../../src/native/binding';
import { smallCnn } from '../unit/quant/quant-models';
import { fuseConvPool } from '../../src/passes/conv-pool-fusion';
import { Int8LayerCase, PoolSpec, int8ConvPoolPlan, int8LayerPlan, nhwc } from '../unit/ops/int8-helpers';

type Arr = Int8Array | Uint8Array | Float32Array;
import { rng } from '../unit/ops/tactic-helpers';
import { buildCuda, layers, noCuda, relNorm } from './cuda-helpers';


interface Case extends Int8LayerCase {
  name: string;
  /** Tactics that must be among the candidates. */
  expect: string[];
}

const planOf = int8LayerPlan;

function typed(dtype: DataType, buf: ArrayBuffer): Arr {
  return dtype === DataType.FLOAT ? new Float32Array(buf) : dtype === DataType.INT8 ? new Int8Array(buf) : new Uint8Array(buf);
}

/**
 * cuBLASLt's int8 epilogue (cuda.int8_conv.lt.*) and cuDNN's fused int8 graphs (cuda.int8_conv.cudnn.*)
 * sum alpha * acc, beta * residual and the bias in their own order: an output next to a tie may round
 * the other way. At most one step, on at most 1 in 1000
 * outputs (and one).
 */
function diffStep(got: Arr, ref: Arr): string[] {
  if (got.length !== ref.length) return [`length ${got.length} vs ${ref.length}`];
  const out: string[] = [];
  let steps = 0;
  for (let i = 0; i < ref.length; i++) {
    const dv = Math.abs(got[i] - ref[i]);
    if (dv > 1 && out.length < 3) out.push(`[${i}] ${got[i]} vs ${ref[i]}`);
    if (dv === 1) steps++;
  }
  if (steps > Math.max(1, ref.length / 1000)) out.push(`${steps} of ${ref.length} outputs one step off`);
  return out;
}

/** Differences of got from ref as messages (at most 3): equal integers, float32 within 1e-5 relative. */
function diff(got: Arr, ref: Arr, dtype: DataType): string[] {
  const out: string[] = [];
  if (got.length !== ref.length) return [`length ${got.length} vs ${ref.length}`];
  for (let i = 0; i < ref.length && out.length < 3; i++) {
    const ok = dtype === DataType.FLOAT ? Math.abs(got[i] - ref[i]) <= 1e-5 * Math.max(Math.abs(ref[i]), 1e-3) : got[i] === ref[i];
    if (!ok) out.push(`[${i}] ${got[i]} vs ${ref[i]}`);
  }
  return out;
}

const r = rng(20261125);
const randInt = (n: number, lo: number, hi: number) => Array.from({ length: n }, () => lo + Math.floor(r() * (hi - lo + 1)));
const activations = (dtype: DataType, n: number) =>
  dtype === DataType.UINT8 ? Uint8Array.from(randInt(n, 0, 255)) : Int8Array.from(randInt(n, -128, 127));
const size = (s: number[]) => s.reduce((a, b) => a * b, 1);

interface ConvSpec {
  N: number;
  C: number;
  M: number;
  G?: number;
  spatial: number[];
  k: number[];
  s?: number[];
  d?: number[];
  p?: number[];
  xt: DataType;
  zp: number;
  out: DataType;
  act?: string;
  /** activation 'clip' with these bounds (MobileNet's ReLU6: [0, 6]) */
  clip?: [number, number];
  bias?: boolean;
  residual?: boolean;
  /** an int8/uint8 residual (residual_scale 0.03, residual_zero_point 4 for uint8) instead of float32 */
  residualType?: DataType;
  perTensor?: boolean;
  /** the output's zero point (default: 11 for uint8, -4 for int8) */
  yzp?: number;
}

/** A residual of `n` elements of type `t` (float32 in [-1, 1), else quantized values). */
function residualOf(t: DataType | undefined, n: number): Float32Array | Int8Array | Uint8Array {
  if (t === DataType.INT8) return Int8Array.from(randInt(n, -128, 127));
  if (t === DataType.UINT8) return Uint8Array.from(randInt(n, 0, 255));
  return Float32Array.from({ length: n }, () => (r() - 0.5) * 2);
}

function convCase(name: string, o: ConvSpec): Case {
  const G = o.G ?? 1;
  const n = o.spatial.length;
  const s = o.s ?? o.spatial.map(() => 1);
  const d = o.d ?? o.spatial.map(() => 1);
  const p = o.p ?? o.spatial.map(() => 0);
  const outSp = o.spatial.map((x, i) => Math.floor((x + 2 * p[i] - d[i] * (o.k[i] - 1) - 1) / s[i]) + 1);
  const yShape = [o.N, o.M, ...outSp];
  const wShape = [o.M, o.C / G, ...o.k];
  return {
    name,
    kind: 'Int8Conv',
    x: { dtype: o.xt, shape: [o.N, o.C, ...o.spatial], data: activations(o.xt, o.N * o.C * size(o.spatial)) },
    w: { shape: wShape, data: Int8Array.from(randInt(size(wShape), -127, 127)) },
    bias: o.bias === false ? undefined : Float32Array.from({ length: o.M }, () => r() - 0.5),
    residual: o.residual || o.residualType ? residualOf(o.residualType, size(yShape)) : undefined,
    out: { dtype: o.out, shape: yShape },
    attrs: {
      group: int(G),
      strides: ints(s),
      dilations: ints(d),
      pads: ints([...p, ...p]),
      x_scale: float(0.02),
      x_zero_point: int(o.zp),
      w_scales: floats(o.perTensor ? [0.003] : Array.from({ length: o.M }, () => 0.001 + r() * 0.004)),
      y_scale: float(0.05),
      y_zero_point: int(o.yzp ?? (o.out === DataType.UINT8 ? 11 : -4)),
      activation: str(o.clip ? 'clip' : (o.act ?? 'none')),
      ...(o.clip ? { activation_min: float(o.clip[0]), activation_max: float(o.clip[1]) } : {}),
      ...(o.residualType ? { residual_scale: float(0.03), residual_zero_point: int(o.residualType === DataType.UINT8 ? 4 : 0) } : {}),
    },
    expect: ['cuda.int8_conv.mma', 'cuda.int8_conv.direct'],
  };
}

function gemmCase(name: string, o: { M: number; K: number; N: number; xt: DataType; zp: number; out: DataType; act?: string; residual?: boolean; perTensor?: boolean }, imma: boolean): Case {
  return {
    name,
    kind: 'Int8Gemm',
    x: { dtype: o.xt, shape: [o.M, o.K], data: activations(o.xt, o.M * o.K) },
    w: { shape: [o.N, o.K], data: Int8Array.from(randInt(o.N * o.K, -127, 127)) },
    bias: Float32Array.from({ length: o.N }, () => r() - 0.5),
    residual: o.residual ? Float32Array.from({ length: o.M * o.N }, () => (r() - 0.5) * 2) : undefined,
    out: { dtype: o.out, shape: [o.M, o.N] },
    attrs: {
      M: int(o.M),
      N: int(o.N),
      K: int(o.K),
      x_scale: float(0.02),
      x_zero_point: int(o.zp),
      w_scales: floats(o.perTensor ? [0.002] : Array.from({ length: o.N }, () => 0.001 + r() * 0.003)),
      y_scale: float(0.04),
      y_zero_point: int(o.out === DataType.UINT8 ? 5 : 2),
      activation: str(o.act ?? 'none'),
    },
    expect: [...(imma ? ['cuda.int8_gemm.imma.algo0'] : []), 'cuda.int8_gemm.mma', 'cuda.int8_gemm.direct'],
  };
}

const U8 = DataType.UINT8;
const I8 = DataType.INT8;
const F32 = DataType.FLOAT;

const CASES: Case[] = [
  convCase('ResNet 3x3, uint8 zp 100 → float32 + relu', { N: 2, C: 32, M: 64, spatial: [14, 14], k: [3, 3], p: [1, 1], xt: U8, zp: 100, out: F32, act: 'relu' }),
  convCase('1x1, int8 zp -3 → int8', { N: 1, C: 64, M: 128, spatial: [7, 7], k: [1, 1], xt: I8, zp: -3, out: I8 }),
  convCase('3x3 stride 2, uint8 zp 128 → uint8, residual + relu', { N: 2, C: 16, M: 32, spatial: [15, 15], k: [3, 3], s: [2, 2], p: [1, 1], xt: U8, zp: 128, out: U8, act: 'relu', residual: true }),
  convCase('groups 4, dilation 2, uneven map → float32 + sigmoid', { N: 1, C: 16, M: 24, G: 4, spatial: [11, 9], k: [3, 3], d: [2, 2], p: [2, 2], xt: U8, zp: 37, out: F32, act: 'sigmoid' }),
  convCase('depthwise 3x3, int8 → int8 + relu, per-tensor scale', { N: 2, C: 32, M: 32, G: 32, spatial: [12, 12], k: [3, 3], p: [1, 1], xt: I8, zp: 0, out: I8, act: 'relu', perTensor: true }),
  convCase('1-D k5 stride 3, no bias', { N: 2, C: 8, M: 12, spatial: [31], k: [5], s: [3], p: [2], xt: U8, zp: 200, out: F32, bias: false }),
  convCase('3-D 3x3x3 → uint8, residual', { N: 1, C: 4, M: 8, spatial: [5, 6, 5], k: [3, 3, 3], p: [1, 1, 1], xt: U8, zp: 9, out: U8, residual: true }),
  convCase('depthwise 3x3, uint8 → uint8 + clip [0, 6] (MobileNet\'s ReLU6, folded bounds)', { N: 2, C: 32, M: 32, G: 32, spatial: [12, 12], k: [3, 3], p: [1, 1], xt: U8, zp: 128, out: U8, clip: [0, 6] }),
  convCase('3x3, int8 → int8, int8 residual + relu (a ResNet block in an int8 engine)', { N: 2, C: 16, M: 32, spatial: [10, 10], k: [3, 3], p: [1, 1], xt: I8, zp: 0, out: I8, act: 'relu', residualType: I8 }),
  convCase('1x1, uint8 → float32, uint8 residual with a zero point', { N: 1, C: 8, M: 12, spatial: [6, 7], k: [1, 1], xt: U8, zp: 120, out: F32, residualType: U8 }),
  convCase('wide K (C 96, 3x3) and 70 channels: partial tiles', { N: 1, C: 96, M: 70, spatial: [9, 10], k: [3, 3], p: [1, 1], xt: U8, zp: 128, out: I8, act: 'relu' }),
  gemmCase('GEMM 64x256x128 uint8 → float32 (IMMA)', { M: 64, K: 256, N: 128, xt: U8, zp: 128, out: F32 }, true),
  gemmCase('GEMM 33x64x20 int8 zp 5 → int8, per-tensor (IMMA)', { M: 33, K: 64, N: 20, xt: I8, zp: 5, out: I8, perTensor: true }, true),
  gemmCase('GEMM 1x512x1000 (batch-1 FC) → float32 (IMMA)', { M: 1, K: 512, N: 1000, xt: I8, zp: 0, out: F32 }, true),
  gemmCase('GEMM 5x37x7 uint8 → uint8, residual + relu (K odd: no IMMA)', { M: 5, K: 37, N: 7, xt: U8, zp: 131, out: U8, act: 'relu', residual: true }, false),
];

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-int8-gpu-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const d = noCuda ? describe.skip : describe;
if (noCuda) test.skip(`GPU tests skipped: ${noCuda}`, () => undefined);

d('cuda int8 tactics vs the CPU reference', () => {
  test.each(CASES.map((c) => [c.name, c] as const))('%s: every candidate matches', async (_n, c) => {
    const { plan, inputs } = planOf(c);
    const reference = c.kind === 'Int8Conv' ? 'cpu.int8_conv' : 'cpu.int8_gemm';
    const ref = typed(c.out.dtype, native().runPlan(encodePlan(plan), inputs, { [c.kind]: reference })[0]);
    const e = await buildCuda(plan);
    const layer = layers(e).find((l) => l.kind === c.kind)!;
    expect(layer.backend).toBe('cuda');
    const names = layer.candidates.map((x) => x.tactic);
    expect(names).toEqual(expect.arrayContaining(c.expect));
    const errs: string[] = [];
    for (const t of names) {
      const one = await buildCuda(plan, { tactics: { [c.kind]: t }, timing: false });
      for (const run of ['first', 'replay']) {
        const bad = diff(typed(c.out.dtype, (await one.infer(inputs))[0]), ref, c.out.dtype);
        if (bad.length) errs.push(`${t} (${run} run): ${bad.join(', ')}`);
      }
      one.dispose();
    }
    expect(diff(typed(c.out.dtype, (await e.infer(inputs))[0]), ref, c.out.dtype)).toEqual([]);
    console.log(`${c.name}: ${JSON.stringify(Object.fromEntries(layer.candidates.map((x) => [x.tactic, x.ms])))}, chosen ${layer.tactic}`);
    e.dispose();
    expect(errs).toEqual([]);
  });

  test('a channels-last Int8Conv equals the reference of the same conv in NCHW, transposed', async () => {
    const c = convCase('NHWC', { N: 2, C: 12, M: 20, G: 2, spatial: [9, 8], k: [3, 3], s: [2, 1], p: [1, 1], xt: U8, zp: 90, out: I8, act: 'relu', residual: true });
    const [N, C, H, W] = c.x.shape;
    const [, M, OH, OW] = c.out.shape;
    const Cg = C / 2;
    const { plan, inputs } = planOf(c);
    const ref = typed(I8, native().runPlan(encodePlan(plan), inputs, { Int8Conv: 'cpu.int8_conv' })[0]);
    const cl: Case = {
      ...c,
      x: { ...c.x, shape: [N, H, W, C], data: nhwc(c.x.data, C, H, W, N) },
      w: { shape: [M, 3, 3, Cg], data: nhwc(c.w.data, Cg, 3, 3, M) },
      residual: nhwc(c.residual as Float32Array, M, OH, OW, N),
      out: { ...c.out, shape: [N, OH, OW, M] },
      attrs: { ...c.attrs, channels_last: int(1) },
    };
    const p2 = planOf(cl);
    const e = await buildCuda(p2.plan);
    const names = layers(e).find((l) => l.kind === 'Int8Conv')!.candidates.map((x) => x.tactic);
    expect(names).toEqual(expect.arrayContaining(['cuda.int8_conv.mma', 'cuda.int8_conv.direct']));
    const want = nhwc(ref as Int8Array, M, OH, OW, N);
    for (const t of names) {
      const one = await buildCuda(p2.plan, { tactics: { Int8Conv: t }, timing: false });
      expect([t, diff(typed(I8, (await one.infer(p2.inputs))[0]), want, I8)]).toEqual([t, []]);
      one.dispose();
    }
    e.dispose();
  });

  // channels-last layers (the layout int8 CUDA engines use): int8 activations with zero point 0 and
  // channels in multiples of 16 also run on the cp.async implicit GEMM (cuda.int8_conv.mma_cl.*)
  const CL_CASES: [string, ConvSpec, boolean][] = [
    ['ResNet 3x3 64→64, int8 → int8, int8 residual + relu', { N: 2, C: 64, M: 64, spatial: [14, 14], k: [3, 3], p: [1, 1], xt: I8, zp: 0, out: I8, act: 'relu', residualType: I8 }, true],
    ['1x1 stride 2, 32→48 (a partial channel tile) → float32', { N: 3, C: 32, M: 48, spatial: [13, 11], k: [1, 1], s: [2, 2], xt: I8, zp: 0, out: F32 }, true],
    ['3x3, C 48 (K 432: a partial K tile), 130 positions → int8, float residual', { N: 1, C: 48, M: 80, spatial: [10, 13], k: [3, 3], p: [1, 1], xt: I8, zp: 0, out: I8, residual: true }, true],
    ['7x7 stride 2 pad 3, C 16 → uint8 + relu', { N: 2, C: 16, M: 24, spatial: [15, 17], k: [7, 7], s: [2, 2], p: [3, 3], xt: I8, zp: 0, out: U8, act: 'relu' }, true],
    ['groups 2 (Cg 16), dilation 2 → float32 + sigmoid', { N: 1, C: 32, M: 40, G: 2, spatial: [9, 9], k: [3, 3], d: [2, 2], p: [2, 2], xt: I8, zp: 0, out: F32, act: 'sigmoid' }, true],
    ["3x3 512→512 on 7x7, int8 residual (batch 1's last stage: K split among blocks)", { N: 1, C: 512, M: 512, spatial: [7, 7], k: [3, 3], p: [1, 1], xt: I8, zp: 0, out: I8, act: 'relu', residualType: I8 }, true],
    // at least a wave of 128-channel blocks: the 64 x 64-warp shapes (mma_cl.bm128n128, .bm256n128)
    ['large: 1x1 64→512 on 2x72x72, int8 residual + relu', { N: 2, C: 64, M: 512, spatial: [72, 72], k: [1, 1], xt: I8, zp: 0, out: I8, act: 'relu', residualType: I8 }, true],
    ['large: 3x3 32→200 on 2x96x96 (a partial 128-channel block) → float32 + bias, float residual', { N: 2, C: 32, M: 200, spatial: [96, 96], k: [3, 3], p: [1, 1], xt: I8, zp: 0, out: F32, bias: true, residual: true }, true],
    ['large: 3x3 stride 2, 48→136 on 2x224x224 (K 432: a partial K tile) → uint8 + relu, uint8 residual', { N: 2, C: 48, M: 136, spatial: [224, 224], k: [3, 3], s: [2, 2], p: [1, 1], xt: I8, zp: 0, out: U8, act: 'relu', residualType: U8 }, true],
    ['1x1 32→48, int8 → int8 + clip [-0.4, 0.3] (folded bounds)', { N: 2, C: 32, M: 48, spatial: [9, 9], k: [1, 1], xt: I8, zp: 0, out: I8, clip: [-0.4, 0.3] }, true],
    ['1x1 64→48, int8 → int8 without activation, uint8 residual', { N: 2, C: 64, M: 48, spatial: [9, 9], k: [1, 1], xt: I8, zp: 0, out: I8, residualType: U8 }, true],
    ['uint8 activations: not for mma_cl', { N: 1, C: 16, M: 16, spatial: [6, 6], k: [3, 3], p: [1, 1], xt: U8, zp: 128, out: I8 }, false],
    ['zero point 3: not for mma_cl', { N: 1, C: 16, M: 16, spatial: [6, 6], k: [3, 3], p: [1, 1], xt: I8, zp: 3, out: I8 }, false],
    ['C 24 (not a multiple of 16): not for mma_cl', { N: 1, C: 24, M: 16, spatial: [6, 6], k: [3, 3], p: [1, 1], xt: I8, zp: 0, out: I8 }, false],
    ['3x3 stride 2 pad 1 on an odd map, C 8 → uint8 (space-to-depth: 2x2 window over 32 channels)', { N: 2, C: 8, M: 24, spatial: [15, 17], k: [3, 3], s: [2, 2], p: [1, 1], xt: I8, zp: 0, out: U8 }, false],
    ['4x4 stride 4, C 3 (a patch embedding: space-to-depth makes it 1x1 over 48 channels)', { N: 1, C: 3, M: 32, spatial: [16, 20], k: [4, 4], s: [4, 4], xt: I8, zp: 0, out: I8, act: 'relu' }, false],
    ['stem: 7x7 stride 2 pad 3, C 3 → int8 + relu', { N: 2, C: 3, M: 64, spatial: [40, 36], k: [7, 7], s: [2, 2], p: [3, 3], xt: I8, zp: 0, out: I8, act: 'relu' }, false],
    // 1x1 layers whose epilogue is cuBLASLt's (int8 out, ReLU with y zero point 0 or none, an int8
    // residual with zero point 0): cuda.int8_conv.lt.* too
    ['1x1 64→256 on 2x28x28, int8 residual + relu, y zero point 0 (a bottleneck\'s last conv)', { N: 2, C: 64, M: 256, spatial: [28, 28], k: [1, 1], xt: I8, zp: 0, out: I8, act: 'relu', residualType: I8, yzp: 0 }, true],
    ['1x1 256→64 + relu, y zero point 0', { N: 1, C: 256, M: 64, spatial: [20, 20], k: [1, 1], xt: I8, zp: 0, out: I8, act: 'relu', yzp: 0 }, true],
    ['1x1 128→68 without activation, y zero point -4 (in the folded bias), no bias', { N: 3, C: 128, M: 68, spatial: [5, 7], k: [1, 1], xt: I8, zp: 0, out: I8, bias: false }, true],
    // the streaming pointwise kernel: a partial last tile (63 positions), a uint8 residual, two 256-channel slices
    ['1x1 128→512 on 1x9x7, uint8 residual, no activation', { N: 1, C: 128, M: 512, spatial: [9, 7], k: [1, 1], xt: I8, zp: 0, out: I8, residualType: U8 }, true],
    ['1x1 64→256 on 3x20x20 → uint8 + relu, no residual', { N: 3, C: 64, M: 256, spatial: [20, 20], k: [1, 1], xt: I8, zp: 0, out: U8, act: 'relu' }, true],
    // cuDNN's fused int8 graphs (cuda.int8_conv.cudnn.*) take 3x3 and strided layers too
    ['3x3 64→64 on 2x14x14, int8 residual + relu, y zero point 0', { N: 2, C: 64, M: 64, spatial: [14, 14], k: [3, 3], p: [1, 1], xt: I8, zp: 0, out: I8, act: 'relu', residualType: I8, yzp: 0 }, true],
    ['1x1 stride 2, 64→128 on 2x14x14 (a projection shortcut: no post padding), no activation', { N: 2, C: 64, M: 128, spatial: [14, 14], k: [1, 1], s: [2, 2], xt: I8, zp: 0, out: I8 }, true],
    // few channels: cuDNN after the im2col gather (cuda.int8_conv.cudnn.im2col.*)
    ['stem: 7x7 stride 2 pad 3, C 3 → int8 + relu, y zero point 0', { N: 2, C: 3, M: 64, spatial: [40, 36], k: [7, 7], s: [2, 2], p: [3, 3], xt: I8, zp: 0, out: I8, act: 'relu', yzp: 0 }, false],
  ];
  /** Whether cuBLASLt's int8 epilogue computes the layer (int8_conv_cublaslt.cc's conditions). */
  const ltTakes = (o: ConvSpec) =>
    o.k.every((k) => k === 1) && (o.s ?? [1]).every((s) => s === 1) && (o.G ?? 1) === 1 && o.xt === I8 && o.zp === 0 && o.out === I8 && !o.clip &&
    (o.act === undefined || (o.act === 'relu' && o.yzp === 0)) && !o.residual && (o.residualType === undefined || o.residualType === I8) && o.C % 4 === 0 && o.M % 4 === 0;
  /**
   * Whether int8_conv_cudnn.cc's conditions hold (cuDNN itself may still have no engine), and where
   * cuDNN must have one (channels in multiples of 16).
   */
  const cudnnTakes = (o: ConvSpec) =>
    (o.G ?? 1) === 1 && o.xt === I8 && o.zp === 0 && o.out === I8 && !o.clip && (o.act === undefined || (o.act === 'relu' && o.yzp === 0)) && !o.residual &&
    (o.residualType === undefined || o.residualType === I8);
  const cudnnHas = (o: ConvSpec) => cudnnTakes(o) && o.C % 16 === 0 && o.M % 16 === 0;
  /** Whether the streaming pointwise kernel's conditions hold (int8_conv_pw.cu's pw_fits, the folded epilogue). */
  const pwTakes = (o: ConvSpec) =>
    o.k.every((k) => k === 1) && (o.s ?? [1]).every((s) => s === 1) && (o.G ?? 1) === 1 && (o.C === 64 || o.C === 128) && o.M % 256 === 0 && o.xt === I8 && o.zp === 0 &&
    o.out !== F32 && !o.residual && (o.act === undefined || o.act === 'relu');
  /** Whether the stem kernel's conditions hold (int8_conv_stem.cu's stem_fits, the folded epilogue). */
  const stemTakes = (o: ConvSpec) =>
    o.C <= 4 && o.M === 64 && (o.G ?? 1) === 1 && !o.d && o.k.every((k) => k === 7) && (o.s ?? [1]).every((s) => s === 2) && (o.p ?? [0]).every((p) => p === 3) &&
    o.xt === I8 && o.zp === 0 && o.out !== F32 && !o.residual && o.residualType === undefined && (o.act === undefined || o.act === 'relu');
  /** Tactics whose epilogue rounds in a library's order (within one step of the CPU: diffStep). */
  const oneStep = (t: string) => t.includes('.lt.') || t.includes('.cudnn.');
  test.each(CL_CASES)('channels-last %s: every candidate equals the NCHW reference, transposed', async (name, spec, cl) => {
    const c = convCase(name, spec);
    const [N, C, H, W] = c.x.shape;
    const [, M, OH, OW] = c.out.shape;
    const [, Cg, KH, KW] = c.w.shape;
    const { plan, inputs } = planOf(c);
    const ref = typed(c.out.dtype, native().runPlan(encodePlan(plan), inputs, { Int8Conv: 'cpu.int8_conv' })[0]);
    const p2 = planOf({
      ...c,
      x: { ...c.x, shape: [N, H, W, C], data: nhwc(c.x.data, C, H, W, N) },
      w: { shape: [M, KH, KW, Cg], data: nhwc(c.w.data, Cg, KH, KW, M) },
      residual: c.residual && nhwc(c.residual, M, OH, OW, N),
      out: { ...c.out, shape: [N, OH, OW, M] },
      attrs: { ...c.attrs, channels_last: int(1) },
    });
    const e = await buildCuda(p2.plan);
    const layer = layers(e).find((l) => l.kind === 'Int8Conv')!;
    const names = layer.candidates.map((x) => x.tactic);
    const fast = ['cuda.int8_conv.mma_cl.bm128', 'cuda.int8_conv.mma_cl.bm64', 'cuda.int8_conv.mma_cl.bm64.b6', 'cuda.int8_conv.mma_cl.bm128.w4'];
    if (cl) expect(names).toEqual(expect.arrayContaining(fast));
    else expect(names.filter((t) => t.includes('mma_cl'))).toEqual([]);
    // channels not a multiple of 16 (int8, zero point 0, one group): the im2col variants, and for
    // strided 2-D layers the space-to-depth ones
    const gather = !cl && Cg % 16 !== 0 && spec.xt === I8 && spec.zp === 0 && (spec.G ?? 1) === 1;
    const im2col = ['cuda.int8_conv.im2col.bm64', 'cuda.int8_conv.im2col.bm128.w4'];
    if (gather) expect(names).toEqual(expect.arrayContaining(im2col));
    else expect(names.filter((t) => t.startsWith('cuda.int8_conv.im2col'))).toEqual([]);
    const s2d = ['cuda.int8_conv.s2d.bm64', 'cuda.int8_conv.s2d.bm128.w4'];
    if (gather && (spec.s ?? [1, 1]).some((x) => x > 1) && !spec.d) expect(names).toEqual(expect.arrayContaining(s2d));
    else expect(names.filter((t) => t.includes('s2d'))).toEqual([]);
    // few output tiles and at least 4 K tiles of 64: the split-K variant is a candidate too
    if (cl && Cg * KH * KW >= 256 && !name.startsWith('large')) expect(names).toContain('cuda.int8_conv.mma_cl.bm64.splitk');
    if (name.startsWith('large')) expect(names).toEqual(expect.arrayContaining(['cuda.int8_conv.mma_cl.bm128n128', 'cuda.int8_conv.mma_cl.bm256n128', 'cuda.int8_conv.mma_cl.bm128n128.w8']));
    if (ltTakes(spec)) expect(names).toContain('cuda.int8_conv.lt.algo0');
    else expect(names.filter((t) => t.includes('.lt.'))).toEqual([]);
    if (cudnnHas(spec)) expect(names).toContain('cuda.int8_conv.cudnn.0');
    // the gathered form where the channels are few (its 1x1 graph has Kc, a multiple of 16, channels)
    if (cudnnTakes(spec) && spec.C % 16 !== 0 && spec.M % 16 === 0) expect(names).toContain('cuda.int8_conv.cudnn.im2col.0');
    if (spec.C % 16 === 0) expect(names.filter((t) => t.includes('.cudnn.im2col.'))).toEqual([]);
    if (!cudnnTakes(spec)) expect(names.filter((t) => t.includes('.cudnn.'))).toEqual([]);
    // 1x1 layers of 64 or 128 channels into multiples of 256: the streaming pointwise kernel
    if (pwTakes(spec)) expect(names).toContain('cuda.int8_conv.pw.bn256');
    else expect(names.filter((t) => t.includes('.pw.'))).toEqual([]);
    // ResNet's stem (7x7 stride 2 pad 3 over at most 4 channels into 64): the stem kernel
    if (stemTakes(spec)) expect(names).toContain('cuda.int8_conv.stem');
    else expect(names.filter((t) => t.endsWith('.stem'))).toEqual([]);
    const want = nhwc(ref, M, OH, OW, N);
    for (const t of names) {
      const one = await buildCuda(p2.plan, { tactics: { Int8Conv: t }, timing: false });
      for (const run of ['first', 'replay']) {
        const got = typed(c.out.dtype, (await one.infer(p2.inputs))[0]);
        expect([t, run, oneStep(t) ? diffStep(got, want) : diff(got, want, c.out.dtype)]).toEqual([t, run, []]);
      }
      one.dispose();
    }
    console.log(`channels-last ${name}: ${JSON.stringify(Object.fromEntries(layer.candidates.map((x) => [x.tactic, x.ms])))}, chosen ${layer.tactic}`);
    e.dispose();
  }, 180_000); // the large cases build and check nine candidates: 40-60 s on the H100 machine

  // ResNet's stem and its max pool as one layer (src/passes/conv-pool-fusion.ts): the stem kernel
  // pools in shared memory; against the CPU reference of the fused kind (cpu.int8_conv_pool, equal to
  // the convolution and pool it replaces: test/unit/passes/conv-pool-fusion.test.ts)
  const POOL_CASES: [string, ConvSpec, boolean][] = [
    ['2x40x36, int8 + relu, y zero point 0', { N: 2, C: 3, M: 64, spatial: [40, 36], k: [7, 7], s: [2, 2], p: [3, 3], xt: I8, zp: 0, out: I8, act: 'relu', yzp: 0 }, false],
    ['1x33x29, uint8 output, ceil-mode pool', { N: 1, C: 3, M: 64, spatial: [33, 29], k: [7, 7], s: [2, 2], p: [3, 3], xt: I8, zp: 0, out: U8, act: 'relu' }, true],
    ['2x224x224 (ResNet-50\'s), no activation, y zero point -4', { N: 2, C: 3, M: 64, spatial: [224, 224], k: [7, 7], s: [2, 2], p: [3, 3], xt: I8, zp: 0, out: I8 }, false],
  ];
  test.each(POOL_CASES)('stem + max pool (Int8ConvPool) %s: equal to the CPU reference', async (name, spec, ceil) => {
    const c = convCase(name, spec);
    const [N, C, H, W] = c.x.shape;
    const [, M, OH, OW] = c.out.shape;
    const size = (x: number) => (ceil ? Math.ceil : Math.floor)((x + 2 - 3) / 2) + 1;
    const pool: PoolSpec = { k: [3, 3], s: [2, 2], pads: [1, 1, 1, 1], out: [size(OH), size(OW)] };
    const plan = int8ConvPoolPlan({ ...c, x: { ...c.x, data: nhwc(c.x.data, C, H, W, N) }, w: { shape: c.w.shape, data: nhwc(c.w.data, C, 7, 7, M) } }, pool, true);
    expect(fuseConvPool(plan)).toEqual(['q']);
    const x = nhwc(c.x.data, C, H, W, N);
    const want = typed(c.out.dtype, native().runPlan(encodePlan(plan), [x], { Int8ConvPool: 'cpu.int8_conv_pool' })[0]);
    expect(want.length).toBe(N * M * pool.out[0] * pool.out[1]);
    const e = await buildCuda(plan);
    expect(layers(e).map((l) => [l.kind, l.tactic])).toEqual([['Int8ConvPool', 'cuda.int8_conv_pool.stem']]);
    for (const run of ['first', 'replay']) {
      const got = typed(c.out.dtype, (await e.infer([x]))[0]);
      expect([run, diff(got, want, c.out.dtype)]).toEqual([run, []]);
    }
    e.dispose();
  }, 120_000);

  test('an int8 build of a small CNN on cuda runs its int8 layers there and matches the CPU int8 engine', async () => {
    const r2 = rng(11);
    const feed = () => ({ x: new Tensor('float32', Float32Array.from({ length: 3 * 16 * 16 }, () => r2() * 2 - 1), [1, 3, 16, 16]) });
    const calibration = Array.from({ length: 16 }, feed);
    const held = Array.from({ length: 4 }, feed);
    const cache = path.join(tmp, 'cnn.calib.json');
    const cpu = await compile(smallCnn(), { device: 'cpu', precision: 'int8', calibration, calibrationCache: cache, guard: false });
    const gpu = await compile(smallCnn(), { device: 'cuda', precision: 'int8', calibrationCache: cache, guard: false });
    const int8Layers = gpu.report.layers.filter((l) => l.kind.startsWith('Int8'));
    expect(int8Layers.length).toBeGreaterThanOrEqual(2);
    for (const l of int8Layers) expect([l.name, l.backend, l.tactic]).toEqual([l.name, 'cuda', expect.stringMatching(/^cuda\.int8_/)]);
    for (const f of held) {
      const want = (await cpu.infer(f)).y.data as Float32Array;
      const got = (await gpu.infer(f)).y.data as Float32Array;
      // the int8 layers are exact; the float layers between them (pooling) may round differently,
      // which can move a requantized value by one step
      expect(relNorm(got, want)).toBeLessThanOrEqual(1e-2);
    }
    cpu.dispose();
    gpu.dispose();
  });
});
