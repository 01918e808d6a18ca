/** fp16 precision assignment on the Plan: storage types, casts at the boundaries, numbers within fp16 error. */
import { DataType } from '../../../src/dtype';
import { bindShapes } from '../../../src/compile';
import { inferGraph } from '../../../src/ir/infer';
import { lowerGraph } from '../../../src/lower/lower';
import { Plan, encodePlan } from '../../../src/lower/plan';
import { native } from '../../../src/native/binding';
import { importModel } from '../../../src/onnx/import';
import '../../../src/ops';
import { floatToHalf as toHalfBits } from '../../../src/dtype';
import { assignHalfPrecision } from '../../../src/passes/precision-assignment';
import { buildModel } from '../../helpers/model-builder';

const N = 16;
const K = 32;
const M = 8;
let seed = 3;
const rand = () => ((seed = (seed * 1664525 + 1013904223) >>> 0) / 2 ** 32) * 2 - 1;

const W = Array.from({ length: K * M }, rand);
const B = Array.from({ length: M }, rand);

// x[N,K] · W[K,M] + b → Relu → Softmax, and a second output straight from the MatMul.
const model = () =>
  buildModel({
    nodes: [
      { op: 'MatMul', name: 'mm', inputs: ['x', 'W'], outputs: ['h'] },
      { op: 'Add', name: 'bias', inputs: ['h', 'b'], outputs: ['hb'] },
      { op: 'Relu', name: 'act', inputs: ['hb'], outputs: ['r'] },
      { op: 'Softmax', name: 'sm', inputs: ['r'], outputs: ['y'], attrs: { axis: -1 } },
    ],
    inputs: [{ name: 'x', dims: [N, K] }],
    outputs: [{ name: 'y', dims: [N, M] }, { name: 'h', dims: [N, M] }],
    initializers: [
      { name: 'W', dims: [K, M], floats: W },
      { name: 'b', dims: [M], floats: B },
    ],
  });

function planOf(): Plan {
  const g = importModel(model());
  bindShapes(g, {});
  inferGraph(g);
  return lowerGraph(g);
}

function run(plan: Plan, x: Float32Array): Float32Array[] {
  return native().runPlan(encodePlan(plan), [x]).map((b) => new Float32Array(b));
}

test('half bits round to nearest even like the native converter', () => {
  expect(toHalfBits(1)).toBe(0x3c00);
  expect(toHalfBits(-2)).toBe(0xc000);
  expect(toHalfBits(65504)).toBe(0x7bff);
  expect(toHalfBits(1e6)).toBe(0x7c00);
  expect(toHalfBits(5.960464477539063e-8)).toBe(1);
  expect(toHalfBits(NaN) & 0x7e00).toBe(0x7e00);
});

test('every layer runs in fp16; inputs and outputs keep float32 through casts', () => {
  const plan = planOf();
  const r = assignHalfPrecision(plan, new Set());
  expect(r.half.sort()).toEqual(['act', 'bias', 'mm', 'sm']);
  const byName = Object.fromEntries(plan.tensors.map((t) => [t.name, t]));
  expect(byName.W.dtype).toBe(DataType.FLOAT16);
  expect(byName.W.data!.byteLength).toBe(K * M * 2);
  expect(byName.x.dtype).toBe(DataType.FLOAT);
  expect(byName.y.dtype).toBe(DataType.FLOAT);
  expect(byName.h.dtype).toBe(DataType.FLOAT);
  // one cast in (x), two out (y, h)
  expect(r.casts).toBe(3);
  expect(plan.ops[0]).toMatchObject({ kind: 'Cast' });
});

test('fp16 results stay within fp16 error of fp32', () => {
  const x = Float32Array.from({ length: N * K }, rand);
  const ref = run(planOf(), x);
  const half = planOf();
  assignHalfPrecision(half, new Set());
  const got = run(half, x);
  for (let o = 0; o < ref.length; o++) {
    let num = 0;
    let den = 0;
    for (let i = 0; i < ref[o].length; i++) {
      num += (got[o][i] - ref[o][i]) ** 2;
      den += ref[o][i] ** 2;
    }
    expect(Math.sqrt(num / den)).toBeLessThan(5e-3);
  }
});

test('a pinned layer stays fp32 with casts around it', () => {
  const plan = planOf();
  const r = assignHalfPrecision(plan, new Set(['act']));
  expect(r.half).not.toContain('act');
  const act = plan.ops.find((o) => o.name === 'act')!;
  expect(plan.tensors[act.inputs[0]].dtype).toBe(DataType.FLOAT);
  expect(plan.tensors[act.outputs[0]].dtype).toBe(DataType.FLOAT);
  const x = Float32Array.from({ length: N * K }, rand);
  expect(run(plan, x)).toHaveLength(2);
});
