/**
 * Gemm/MatMul and Conv on the cuda backend vs the CPU reference engine, on random shapes: every
 * candidate tactic the build lists (cuBLASLt algorithms, cuDNN algorithms; fp32 and TF32 math) is
 * built alone and checked (strict fp32: ‖err‖/‖ref‖ ≤ 1e-5, TF32: 1e-3). Also: strict builds list no
 * TF32 tactic, and the timings of a 512³ GEMM and a ResNet-style 3x3 conv are printed. Attention's
 * strided heads at batch 3 also run on the packed tactics (operands copied packed, one batched call).
 */
import { inferGraph } from '../../src/ir/infer';
import { lowerGraph } from '../../src/lower/lower';
import { Plan, encodePlan } from '../../src/lower/plan';
import { native } from '../../src/native/binding';
import { importModel } from '../../src/onnx/import';
import { fuseCopies } from '../../src/passes/copy-fusion';
import { runPasses } from '../../src/passes/manager';
import { foldOperandWindows } from '../../src/passes/strided-operands';
import { IOSpec, InitSpec, NodeSpec, buildModel } from '../helpers/model-builder';
import { randomArray, rng } from '../unit/ops/tactic-helpers';
import { buildCuda, layers, noCuda, reduced, relNorm, tolerance } from './cuda-helpers';

interface Case {
  name: string;
  /** batch dims that do not merge into one stride: cuda.cublaslt.packed.* are candidates */
  packed?: boolean;
  kind: 'Gemm' | 'Conv';
  spec: { nodes: NodeSpec[]; inputs: IOSpec[]; outputs: IOSpec[]; initializers?: InitSpec[] };
  /** Run the Plan passes that make GEMMs read strided windows in place (copy fusion, strided operands)
   *  before the cuda build; the reference runs the plan without them. */
  fold?: boolean;
}

/** The real pipeline with the graph optimizer on, so activations and residual adds fuse into the layer. */
function lowerModel(spec: Case['spec']): Plan {
  const g = importModel(buildModel(spec));
  inferGraph(g);
  runPasses(g, true);
  return lowerGraph(g);
}

const r = rng(20261124);
const pick = (lo: number, hi: number) => lo + Math.floor(r() * (hi - lo + 1));

function gemmCase(i: number): Case {
  const [M, K, N] = [pick(1, 67), pick(1, 90), pick(1, 71)];
  const transA = i % 2;
  const transB = (i >> 1) % 2;
  const cShapes = [[N], [M, N], [M, 1], [1, N], [1]];
  const c = cShapes[i % cShapes.length];
  const act = i % 3 === 1 ? 'Relu' : undefined;
  const alpha = i % 4 === 3 ? 0.5 : 1;
  const beta = i % 5 === 4 ? 2 : 1;
  const nodes: NodeSpec[] = [
    { op: 'Gemm', inputs: ['a', 'b', 'c'], outputs: [act ? 't' : 'y'], attrs: { transA, transB, alpha, beta } },
    ...(act ? [{ op: act, inputs: ['t'], outputs: ['y'] }] : []),
  ];
  return {
    name: `Gemm ${M}x${K}x${N} tA=${transA} tB=${transB} C[${c}] alpha=${alpha} beta=${beta}${act ? ' +' + act : ''}`,
    kind: 'Gemm',
    spec: {
      nodes,
      inputs: [
        { name: 'a', dims: transA ? [K, M] : [M, K] },
        { name: 'b', dims: transB ? [N, K] : [K, N] },
        { name: 'c', dims: c },
      ],
      outputs: [{ name: 'y', dims: [M, N] }],
    },
  };
}

function matmulCase(a: number[], b: number[], out: number[]): Case {
  return {
    name: `MatMul [${a}] x [${b}]`,
    kind: 'Gemm',
    spec: { nodes: [{ op: 'MatMul', inputs: ['a', 'b'], outputs: ['y'] }], inputs: [{ name: 'a', dims: a }, { name: 'b', dims: b }], outputs: [{ name: 'y', dims: out }] },
  };
}

function convCase(x: number[], w: number[], attrs: Record<string, number[] | number>, y: number[], bias: boolean, relu = false): Case {
  const ins = ['x', 'w', ...(bias ? ['b'] : [])];
  return {
    name: `Conv x[${x}] w[${w}] ${JSON.stringify(attrs)}${bias ? ' +bias' : ''}${relu ? ' +Relu' : ''}`,
    kind: 'Conv',
    spec: {
      nodes: [
        { op: 'Conv', inputs: ins, outputs: [relu ? 't' : 'y'], attrs },
        ...(relu ? [{ op: 'Relu', inputs: ['t'], outputs: ['y'] }] : []),
      ],
      inputs: [{ name: 'x', dims: x }, { name: 'w', dims: w }, ...(bias ? [{ name: 'b', dims: [w[0]] }] : [])],
      outputs: [{ name: 'y', dims: y }],
    },
  };
}

// attention's heads read and written in place: x [B,16,192] → three column windows of 64 → [B,16,4,16] →
// heads first (Kᵀ for the scores) → S = Q·Kᵀ → S·V → back to [B,16,4,16] → [B,16,64]. With B > 1 the
// batch and head strides do not merge: cuBLASLt loops over B on the host, or the packed tactics copy
// Q, Kᵀ and V packed and scatter S·V's output.
const headsCase = (B: number): Case => ({
  name: `Q·Kᵀ and S·V reading the heads in place from a merged projection, S·V writing token-major (batch ${B})`,
  kind: 'Gemm',
  fold: true,
  packed: B > 1,
  spec: {
    nodes: [
      { op: 'Split', inputs: ['x', 'sizes'], outputs: ['q2', 'k2', 'v2'], attrs: { axis: 2 } },
      { op: 'Reshape', inputs: ['q2', 'shape'], outputs: ['q3'] },
      { op: 'Reshape', inputs: ['k2', 'shape'], outputs: ['k3'] },
      { op: 'Reshape', inputs: ['v2', 'shape'], outputs: ['v3'] },
      { op: 'Transpose', inputs: ['q3'], outputs: ['q'], attrs: { perm: [0, 2, 1, 3] } },
      { op: 'Transpose', inputs: ['k3'], outputs: ['kt'], attrs: { perm: [0, 2, 3, 1] } },
      { op: 'Transpose', inputs: ['v3'], outputs: ['v'], attrs: { perm: [0, 2, 1, 3] } },
      { op: 'MatMul', inputs: ['q', 'kt'], outputs: ['s'] },
      { op: 'MatMul', inputs: ['s', 'v'], outputs: ['o4'] },
      { op: 'Transpose', inputs: ['o4'], outputs: ['o'], attrs: { perm: [0, 2, 1, 3] } },
      { op: 'Reshape', inputs: ['o', 'oshape'], outputs: ['y'] },
    ],
    inputs: [{ name: 'x', dims: [B, 16, 192] }],
    outputs: [{ name: 'y', dims: [B, 16, 64] }],
    initializers: [
      { name: 'sizes', dims: [3], int64s: [64, 64, 64], type: 7 },
      { name: 'shape', dims: [4], int64s: [B, 16, 4, 16], type: 7 },
      { name: 'oshape', dims: [3], int64s: [B, 16, 64], type: 7 },
    ],
  },
});

const CASES: Case[] = [
  headsCase(1),
  ...Array.from({ length: 8 }, (_, i) => gemmCase(i)),
  matmulCase([3, 37, 29], [29, 41], [3, 37, 41]),
  matmulCase([2, 3, 17, 19], [2, 3, 19, 23], [2, 3, 17, 23]),
  { ...matmulCase([2, 1, 9, 12], [1, 3, 12, 5], [2, 3, 9, 5]), packed: true },
  convCase([2, 16, 20, 20], [32, 16, 3, 3], { pads: [1, 1, 1, 1] }, [2, 32, 20, 20], true, true),
  convCase([1, 8, 17, 15], [12, 2, 3, 3], { group: 4, strides: [2, 2], dilations: [2, 1], pads: [2, 1, 2, 1] }, [1, 12, 9, 8], true),
  convCase([2, 6, 31], [4, 6, 5], { strides: [3], pads: [2, 2] }, [2, 4, 11], false),
  convCase([1, 4, 6, 7, 5], [3, 4, 3, 3, 3], { pads: [1, 1, 1, 1, 1, 1] }, [1, 3, 6, 7, 5], true),
  convCase([2, 24, 14, 14], [24, 1, 3, 3], { group: 24, pads: [1, 1, 1, 1] }, [2, 24, 14, 14], true, true),
  convCase([1, 32, 9, 9], [16, 32, 1, 1], {}, [1, 16, 9, 9], true),
  {
    name: 'Conv + residual Add + Relu',
    kind: 'Conv',
    spec: {
      nodes: [
        { op: 'Conv', inputs: ['x', 'w', 'b'], outputs: ['t'], attrs: { pads: [1, 1, 1, 1] } },
        { op: 'Add', inputs: ['t', 'z'], outputs: ['u'] },
        { op: 'Relu', inputs: ['u'], outputs: ['y'] },
      ],
      inputs: [{ name: 'x', dims: [1, 8, 10, 10] }, { name: 'w', dims: [8, 8, 3, 3] }, { name: 'b', dims: [8] }, { name: 'z', dims: [1, 8, 10, 10] }],
      outputs: [{ name: 'y', dims: [1, 8, 10, 10] }],
    },
  },
  headsCase(3),
];

function inputsFor(plan: Plan): Float32Array[] {
  return plan.inputs.map((t) => randomArray(plan.tensors[t].shape.reduce((a: number, b: number) => a * b, 1), r));
}

const d = noCuda ? describe.skip : describe;
if (noCuda) test.skip(`GPU tests skipped: ${noCuda}`, () => undefined);

d('cuda Gemm and Conv tactics vs the CPU reference', () => {
  test.each(CASES.map((c) => [c.name, c] as const))('%s: every candidate matches', async (_n, c) => {
    const plan = lowerModel(c.spec);
    const ins = inputsFor(plan);
    const ref = new Float32Array(native().runPlan(encodePlan(plan), ins)[0]);
    if (c.fold) {
      fuseCopies(plan);
      expect(foldOperandWindows(plan).length).toBe(4); // Q, Kᵀ, V read in place; S·V's output written token-major
    }
    const e = await buildCuda(plan);
    const layer = layers(e).find((l) => l.kind === c.kind)!;
    expect(layer.backend).toBe('cuda');
    const names = layer.candidates.map((x) => x.tactic);
    expect(names.length).toBeGreaterThan(0);
    // the packed tactics only where batch dims would loop on the host
    if (c.packed) expect(names).toEqual(expect.arrayContaining(['cuda.cublaslt.packed.algo0', 'cuda.cublaslt.tf32.packed.algo0']));
    else expect(names.filter((t) => t.includes('.packed.'))).toEqual([]);
    const errs: string[] = [];
    for (const t of names) {
      const one = await buildCuda(plan, { tactics: { [c.kind]: t }, timing: false });
      const got = new Float32Array((await one.infer(ins))[0]);
      const again = new Float32Array((await one.infer(ins))[0]); // the second run replays the CUDA graph
      const err = Math.max(relNorm(got, ref), relNorm(again, ref));
      if (!(err <= tolerance(t))) errs.push(`${t}: ${err.toExponential(2)}`);
      one.dispose();
    }
    const got = new Float32Array((await e.infer(ins))[0]);
    expect(relNorm(got, ref)).toBeLessThanOrEqual(tolerance(layer.tactic));
    e.dispose();
    console.log(`${c.name}: ${names.length} candidates, chosen ${layer.tactic}`);
    expect(errs).toEqual([]);
  });

  test('strict builds list no reduced-precision tactic', async () => {
    for (const c of [CASES[0], CASES[11]]) {
      const e = await buildCuda(lowerModel(c.spec), { strict: true });
      const names = layers(e).find((l) => l.kind === c.kind)!.candidates.map((x) => x.tactic);
      expect(names.length).toBeGreaterThan(0);
      expect(names.filter(reduced)).toEqual([]);
      e.dispose();
    }
  });

  test('timings: 512³ GEMM and a ResNet-style 3x3 conv (candidates in ms)', async () => {
    const report: Record<string, Record<string, number | null>> = {};
    for (const c of [
      matmulCase([512, 512], [512, 512], [512, 512]),
      convCase([8, 64, 56, 56], [64, 64, 3, 3], { pads: [1, 1, 1, 1] }, [8, 64, 56, 56], true, true),
    ]) {
      const e = await buildCuda(lowerModel(c.spec));
      const l = layers(e).find((x) => x.kind === c.kind)!;
      report[`${c.name} (chosen ${l.tactic})`] = Object.fromEntries(l.candidates.map((x) => [x.tactic, x.ms]));
      e.dispose();
    }
    console.log(`cuda timings:\n${JSON.stringify(report, null, 1)}`);
    if (process.env.KILN_GPU_TIMINGS) require('fs').writeFileSync(process.env.KILN_GPU_TIMINGS, JSON.stringify(report, null, 1));
  });
});
