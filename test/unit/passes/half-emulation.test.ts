/** float16 emulation in float32 storage (the accuracy guard's CPU runs) against the float16 plan itself. */
import { DataType } from '../../../src/dtype';
import { bindShapes } from '../../../src/compile';
import { inferGraph } from '../../../src/ir/infer';
import { lowerGraph } from '../../../src/lower/lower';
import { Plan, encodePlan } from '../../../src/lower/plan';
import { FAST_CPU, native } from '../../../src/native/binding';
import { importModel } from '../../../src/onnx/import';
import '../../../src/ops';
import { emulateHalf } from '../../../src/passes/half-emulation';
import { assignHalfPrecision } from '../../../src/passes/precision-assignment';
import { buildModel } from '../../helpers/model-builder';

let seed = 11;
const rand = () => ((seed = (seed * 1664525 + 1013904223) >>> 0) / 2 ** 32) * 2 - 1;
const C = 8;
const M = 16;

// Conv 3x3 + bias → Relu → global average pool: a layer kind whose fast CPU tactics take float32 only.
function halfPlan(scale: number): Plan {
  const g = importModel(
    buildModel({
      nodes: [
        { op: 'Conv', name: 'conv', inputs: ['x', 'W', 'b'], outputs: ['c'], attrs: { kernel_shape: [3, 3], pads: [1, 1, 1, 1] } },
        { op: 'Relu', name: 'act', inputs: ['c'], outputs: ['r'] },
        { op: 'GlobalAveragePool', name: 'gap', inputs: ['r'], outputs: ['y'] },
      ],
      inputs: [{ name: 'x', dims: [1, C, 10, 10] }],
      outputs: [{ name: 'y', dims: [1, M, 1, 1] }],
      initializers: [
        { name: 'W', dims: [M, C, 3, 3], floats: Array.from({ length: M * C * 9 }, () => rand() * scale) },
        { name: 'b', dims: [M], floats: Array.from({ length: M }, rand) },
      ],
    }),
  );
  bindShapes(g, {});
  inferGraph(g);
  const plan = lowerGraph(g);
  assignHalfPrecision(plan, new Set());
  return plan;
}

const x = Float32Array.from({ length: C * 100 }, rand);

test('the emulated plan stores float32 only, with a rounding cast pair after each float16 producer', () => {
  const plan = halfPlan(1);
  const halfOutputs = plan.ops.flatMap((op) => op.outputs).filter((o) => plan.tensors[o].dtype === DataType.FLOAT16).length;
  expect(halfOutputs).toBeGreaterThan(0);
  const e = emulateHalf(plan);
  expect(e.ops.length).toBe(plan.ops.length + 2 * halfOutputs);
  const named = new Set(plan.tensors.map((t) => t.name));
  for (const [i, t] of e.tensors.entries()) if (named.has(t.name)) expect(t.dtype === DataType.FLOAT16 ? i : -1).toBe(-1);
  // the input plan is left as it was
  expect(plan.tensors.some((t) => t.dtype === DataType.FLOAT16)).toBe(true);
});

test('the emulated plan on the fast CPU tactics computes what the float16 plan computes', () => {
  const plan = halfPlan(1);
  const ref = new Float32Array(native().runPlan(encodePlan(plan), [x])[0]);
  const got = new Float32Array(native().runPlan(encodePlan(emulateHalf(plan)), [x], FAST_CPU)[0]);
  let num = 0;
  let den = 0;
  for (let i = 0; i < ref.length; i++) {
    num += (got[i] - ref[i]) ** 2;
    den += ref[i] ** 2;
  }
  // both round every stored value to float16 and accumulate in float32 or wider: float16 steps apart at most
  expect(Math.sqrt(num / den)).toBeLessThan(2e-3);
});

test('float16 overflow still becomes Inf in the emulated plan', () => {
  const plan = halfPlan(1e5);
  const got = new Float32Array(native().runPlan(encodePlan(emulateHalf(plan)), [x], FAST_CPU)[0]);
  expect(got.some((v) => !Number.isFinite(v))).toBe(true);
});
