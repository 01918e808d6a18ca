/**
 * The fused kinds in float16 on the CPU: 'Elementwise' (native/cpu/elementwise.cc) and 'Attention'
 * (native/cpu/attention.cc). A model is optimized and lowered, assigned fp16 (src/passes/
 * precision-assignment.ts) and run on the CPU kernels; its error against the fp32 plan must stay within
 * a small multiple of the error of a naive fp16 implementation, the same model unfused (every op a
 * layer of its own, rounded to fp16 between ops) — STYLE.md's fp16 rule.
 */
import * as fs from 'fs';
import * as path from 'path';
import { DataType } from '../../../src/dtype';
import { bindShapes } from '../../../src/compile';
import { inferGraph } from '../../../src/ir/infer';
import { lowerGraph } from '../../../src/lower/lower';
import { Plan, encodePlan } from '../../../src/lower/plan';
import { native } from '../../../src/native/binding';
import { importModel } from '../../../src/onnx/import';
import '../../../src/ops';
import { runPasses } from '../../../src/passes/manager';
import { assignHalfPrecision } from '../../../src/passes/precision-assignment';
import { attentionModel, buildModel, elementwiseChainModel } from '../../helpers/model-builder';
import { randomArray, rng } from './tactic-helpers';

/** The model's Plan for the CPU, optimized or not, and in fp16 or not. */
function planOf(model: Uint8Array, optimize: boolean, half: boolean): { plan: Plan; half: string[]; casts: number } {
  const g = importModel(model);
  bindShapes(g, {});
  inferGraph(g);
  runPasses(g, optimize, { target: 'cpu' });
  const plan = lowerGraph(g);
  const r = half ? assignHalfPrecision(plan, new Set()) : { half: [], casts: 0 };
  return { plan, ...r };
}

function run(plan: Plan, inputs: ArrayBufferView[], overrides: Record<string, string> = {}): Float32Array[] {
  return native()
    .runPlan(encodePlan(plan), inputs, overrides)
    .map((b) => new Float32Array(b));
}

function relL2(got: Float32Array, ref: Float32Array): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < ref.length; i++) {
    if (Number.isNaN(got[i])) return Infinity;
    num += (got[i] - ref[i]) ** 2;
    den += ref[i] ** 2;
  }
  return Math.sqrt(num / Math.max(den, 1e-30));
}

/**
 * Fused fp16 error vs. fp32, and the naive fp16 error (unfused) beside it; checks the rule
 * fused ≤ 2 · naive + 1e-4 (the floor: fp16's own resolution when the naive error happens to be tiny).
 */
function expectWithinFp16Rule(model: Uint8Array, inputs: ArrayBufferView[], kinds: string[]) {
  const ref = run(planOf(model, true, false).plan, inputs);
  const fused = planOf(model, true, true);
  for (const k of kinds) {
    const ofKind = fused.plan.ops.filter((o) => o.kind === k);
    expect([k, ofKind.length > 0]).toEqual([k, true]);
    for (const o of ofKind) expect([o.name, fused.half.includes(o.name)]).toEqual([o.name, true]);
  }
  const got = run(fused.plan, inputs);
  const naive = run(planOf(model, false, true).plan, inputs);
  ref.forEach((r, i) => {
    const e = relL2(got[i], r);
    const bound = 2 * relL2(naive[i], r) + 1e-4;
    expect({ output: i, e, ok: e <= bound }).toEqual({ output: i, e, ok: true });
  });
  return fused;
}

const chain = elementwiseChainModel;

test('an fp16 Elementwise reads its float32 input and constants as they are: no casts in, fp16 out', () => {
  const dims = [3, 33, 70];
  const x = randomArray(3 * 33 * 70, rng(1));
  const fused = expectWithinFp16Rule(chain(dims), [x], ['Elementwise']);
  const ew = fused.plan.ops.find((o) => o.kind === 'Elementwise')!;
  // x (graph input) and the constants two, b stay float32; the output is float16
  expect(ew.inputs.map((i) => fused.plan.tensors[i].dtype)).toEqual([DataType.FLOAT, DataType.FLOAT, DataType.FLOAT]);
  expect(fused.plan.tensors[ew.outputs[0]].dtype).toBe(DataType.FLOAT16);
  // the only casts: the Softmax's fp16 result back into the float32 graph output
  expect(fused.casts).toBe(1);
  const viaBlock = run(fused.plan, [x], { Elementwise: 'cpu.elementwise.block' });
  const viaRef = run(fused.plan, [x], { Elementwise: 'cpu.elementwise.ref' });
  expect(relL2(viaBlock[0], viaRef[0])).toBe(0);
});

test('an Elementwise mixing a float32 graph input, a float16 activation and broadcasting, both tactics', () => {
  // h = x · W (fp16 MatMul), y = Sigmoid(h + x) * h / (1 + |c|): inputs h (fp16), x (fp32), c (fp32 [K])
  const [N, K] = [37, 24];
  const r = rng(2);
  const m = buildModel({
    nodes: [
      { op: 'MatMul', inputs: ['x', 'W'], outputs: ['h'] },
      { op: 'Add', inputs: ['h', 'x'], outputs: ['a'] },
      { op: 'Sigmoid', inputs: ['a'], outputs: ['s'] },
      { op: 'Mul', inputs: ['s', 'h'], outputs: ['p'] },
      { op: 'Abs', inputs: ['c'], outputs: ['ac'] },
      { op: 'Add', inputs: ['ac', 'one'], outputs: ['ac1'] },
      { op: 'Div', inputs: ['p', 'ac1'], outputs: ['y'] },
    ],
    inputs: [{ name: 'x', dims: [N, K] }],
    outputs: [{ name: 'y', dims: [N, K] }],
    initializers: [
      { name: 'W', dims: [K, K], floats: Array.from(randomArray(K * K, r)) },
      { name: 'c', dims: [K], floats: Array.from(randomArray(K, r)) },
      { name: 'one', dims: [], floats: [1] },
    ],
  });
  const x = randomArray(N * K, r);
  const fused = expectWithinFp16Rule(m, [x], ['Elementwise']);
  const ew = fused.plan.ops.find((o) => o.kind === 'Elementwise')!;
  const types = new Set(ew.inputs.map((i) => fused.plan.tensors[i].dtype));
  expect(types).toEqual(new Set([DataType.FLOAT, DataType.FLOAT16]));
  const viaBlock = run(fused.plan, [x], { Elementwise: 'cpu.elementwise.block' });
  const viaRef = run(fused.plan, [x], { Elementwise: 'cpu.elementwise.ref' });
  expect(relL2(viaBlock[0], viaRef[0])).toBe(0);
});

const attention = (B: number, S: number, H: number, D: number, withMask: boolean) => attentionModel({ B, S, H, D, mask: withMask ? 'padding' : 'none' });

test.each([
  [2, 5, 3, 4, true],
  [1, 37, 2, 40, true],
  [2, 19, 3, 16, false],
])('an fp16 Attention (B %i, S %i, H %i, D %i, mask %s) within the fp16 rule', (B, S, H, D, withMask) => {
  const r = rng(B * 1000 + S);
  const n = B * S * H * D;
  const inputs: Float32Array[] = [randomArray(n, r), randomArray(n, r), randomArray(n, r)].map((a) => a.map((v) => 2 * v));
  if (withMask) {
    const m = new Float32Array(B * S);
    for (let b = 0; b < B; b++) for (let j = 0; j < S; j++) m[b * S + j] = j >= S - Math.floor(S / 4) ? -10000 : 0;
    inputs.push(m);
  }
  const fused = expectWithinFp16Rule(attention(B, S, H, D, withMask), inputs, ['Attention']);
  const at = fused.plan.ops.find((o) => o.kind === 'Attention')!;
  for (const i of [...at.inputs, ...at.outputs]) expect(fused.plan.tensors[i].dtype).toBe(DataType.FLOAT16);
});

test('models/bert-tiny-ts.onnx in fp16: Attention and Elementwise layers run in fp16 within the fp16 rule', () => {
  const model = new Uint8Array(fs.readFileSync(path.join(__dirname, '..', '..', '..', 'models', 'bert-tiny-ts.onnx')));
  const SEQ = 16;
  const r = rng(7);
  const ids = new BigInt64Array(SEQ);
  const mask = new BigInt64Array(SEQ);
  for (let i = 0; i < SEQ; i++) {
    ids[i] = BigInt(Math.floor(r() * 1000));
    mask[i] = i < SEQ - 5 ? 1n : 0n;
  }
  const names = planOf(model, false, false).plan.inputs.map((i) => planOf(model, false, false).plan.tensors[i].name);
  const feeds = names.map((n) => (n === 'input_ids' ? ids : mask));
  expectWithinFp16Rule(model, feeds, ['Attention', 'Elementwise']);
});
