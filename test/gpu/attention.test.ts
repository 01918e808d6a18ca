/**
 * Every cuda 'Attention' tactic (cuda/attention.cu: cuda.attention.warp, cuda.attention.mma,
 * cuda.attention.mma.split) against the CPU reference on exporter-style attention — Q [B,S,H,D] and K, V
 * [B,T,H,D] read through the transposes' strides, an optional additive mask broadcast from [B,1,1,T] or
 * [1,H,S,T], output transposed back. Each candidate the build lists is built alone and run twice (the
 * second run replays the CUDA graph). float16 engines must stay within STYLE.md's fp16 rule: error vs.
 * the fp32 CPU reference ≤ 2 · (the error of a naive fp16 implementation, the unfused MatMul/Softmax/
 * MatMul plan in fp16 on the CPU) + 2e-4; float32 engines within 1e-5. Also prints the candidates'
 * timings for BERT-base's attention (S = T = 128, H = 12, D = 64, batch 1, fp16).
 */
import { bindShapes } from '../../src/compile';
import { inferGraph } from '../../src/ir/infer';
import { lowerGraph } from '../../src/lower/lower';
import { Plan, encodePlan } from '../../src/lower/plan';
import { native } from '../../src/native/binding';
import { importModel } from '../../src/onnx/import';
import '../../src/ops';
import { runPasses } from '../../src/passes/manager';
import { assignHalfPrecision } from '../../src/passes/precision-assignment';
import { attentionModel } from '../helpers/model-builder';
import { rng } from '../unit/ops/tactic-helpers';
import { buildCuda, layers, noCuda, relNorm } from './cuda-helpers';

type MaskKind = 'none' | 'padding' | 'full';
interface Shape {
  B: number;
  S: number;
  T: number;
  H: number;
  D: number;
  mask: MaskKind;
}

const model = (shape: Shape): Uint8Array => attentionModel(shape);

/** The model's CPU-optimized Plan (attention recognized), in fp16 when `half`; unfused when !optimize. */
function planOf(m: Uint8Array, half: boolean, optimize = true): Plan {
  const g = importModel(m);
  bindShapes(g, {});
  inferGraph(g);
  runPasses(g, optimize, { target: 'cpu' });
  const plan = lowerGraph(g);
  if (half) assignHalfPrecision(plan, new Set());
  return plan;
}

function feeds({ B, S, T, H, D, mask }: Shape, seed: number): Float32Array[] {
  const r = rng(seed);
  const u = (n: number) => Float32Array.from({ length: n }, () => 4 * r() - 2);
  const ins = [u(B * S * H * D), u(B * T * H * D), u(B * T * H * D)];
  if (mask === 'padding') {
    // the last quarter of each batch's keys masked off; -Infinity on the very last one
    const m = new Float32Array(B * T);
    for (let b = 0; b < B; b++) for (let j = 0; j < T; j++) m[b * T + j] = j === T - 1 && T > 1 ? -Infinity : j >= T - Math.floor(T / 4) ? -10000 : 0;
    ins.push(m);
  } else if (mask === 'full') {
    ins.push(Float32Array.from({ length: H * S * T }, () => (r() < 0.2 ? -10000 : r() - 0.5)));
  }
  return ins;
}

const run = (plan: Plan, ins: Float32Array[]) => new Float32Array(native().runPlan(encodePlan(plan), ins)[0]);

const SHAPES: Shape[] = [
  { B: 1, S: 128, T: 128, H: 12, D: 64, mask: 'padding' },
  { B: 1, S: 128, T: 128, H: 12, D: 64, mask: 'none' },
  { B: 1, S: 77, T: 77, H: 4, D: 64, mask: 'padding' },
  { B: 2, S: 77, T: 77, H: 3, D: 32, mask: 'none' },
  { B: 2, S: 33, T: 150, H: 2, D: 80, mask: 'padding' },
  { B: 1, S: 200, T: 9, H: 2, D: 128, mask: 'full' },
  { B: 2, S: 64, T: 64, H: 2, D: 128, mask: 'padding' },
  { B: 1, S: 5, T: 3, H: 3, D: 20, mask: 'full' },
];

const d = noCuda ? describe.skip : describe;
if (noCuda) test.skip(`GPU tests skipped: ${noCuda}`, () => undefined);

d('cuda Attention tactics vs the CPU reference', () => {
  test.each(SHAPES.map((s, i) => [`B ${s.B} S ${s.S} T ${s.T} H ${s.H} D ${s.D} mask ${s.mask}`, s, i] as const))(
    '%s: every fp16 and fp32 candidate',
    async (_n, shape, i) => {
      const m = model(shape);
      const ins = feeds(shape, 100 + i);
      const ref = run(planOf(m, false), ins);
      const naive = relNorm(run(planOf(m, true, false), ins), ref);
      const bound16 = 2 * naive + 2e-4;
      const errs: string[] = [];
      const seen: string[] = [];
      for (const [half, bound] of [
        [true, bound16],
        [false, 1e-5],
      ] as const) {
        const plan = planOf(m, half);
        const e = await buildCuda(plan);
        const layer = layers(e).find((l) => l.kind === 'Attention')!;
        expect(layer.backend).toBe('cuda');
        e.dispose();
        for (const t of layer.candidates.map((c) => c.tactic)) {
          seen.push(`${half ? 'fp16' : 'fp32'} ${t}`);
          const one = await buildCuda(plan, { tactics: { Attention: t }, timing: false });
          const got = new Float32Array((await one.infer(ins))[0]);
          const again = new Float32Array((await one.infer(ins))[0]);
          one.dispose();
          const err = Math.max(relNorm(got, ref), relNorm(again, ref));
          if (!(err <= bound)) errs.push(`${half ? 'fp16' : 'fp32'} ${t}: ${err.toExponential(2)} > ${bound.toExponential(2)}`);
        }
      }
      console.log(`${_n}: naive fp16 error ${naive.toExponential(2)}; ran ${seen.join(', ')}`);
      expect(seen).toEqual(expect.arrayContaining(['fp16 cuda.attention.mma', 'fp16 cuda.attention.mma.split', 'fp32 cuda.attention.warp']));
      expect(errs).toEqual([]);
    },
  );

  test('D over 128 and float32 layers are not for the tensor-core tactics', async () => {
    const plan = planOf(model({ B: 1, S: 16, T: 16, H: 2, D: 160, mask: 'none' }), true);
    const e = await buildCuda(plan);
    const names = layers(e).find((l) => l.kind === 'Attention')!.candidates.map((c) => c.tactic);
    e.dispose();
    expect(names).toEqual(['cuda.attention.warp']);
    const e32 = await buildCuda(planOf(model({ B: 1, S: 16, T: 16, H: 2, D: 64, mask: 'none' }), false));
    expect(layers(e32).find((l) => l.kind === 'Attention')!.candidates.map((c) => c.tactic)).toEqual(['cuda.attention.warp']);
    e32.dispose();
  });

  test('timings: BERT-base attention, S = T = 128, H = 12, D = 64, batch 1, fp16 (candidates in ms)', async () => {
    const e = await buildCuda(planOf(model({ B: 1, S: 128, T: 128, H: 12, D: 64, mask: 'padding' }), true));
    const l = layers(e).find((x) => x.kind === 'Attention')!;
    console.log(`attention timings (chosen ${l.tactic}): ${JSON.stringify(Object.fromEntries(l.candidates.map((x) => [x.tactic, x.ms])))}`);
    e.dispose();
  });
});
