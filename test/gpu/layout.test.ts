/**
 * Channels-last (NHWC) layers on the CUDA backend (src/passes/layout-assignment.ts): the Pool kernel's
 * channels_last path (cuda/pool.cu) alone against the CPU reference on the same Plan, and whole models
 * built with the pass (fp32 requested, fp16 by default) against the CPU's NCHW build — the latter
 * needs the cuDNN Conv tactic to honour `channels_last` (native/cuda/conv_cudnn.cc).
 * Runs only where the addon has a usable cuda backend.
 */
import { Tensor, compile } from '../../src';
import { lowerGraph } from '../../src/lower/lower';
import { DataType } from '../../src/dtype';
import { Plan, encodePlan } from '../../src/lower/plan';
import { native } from '../../src/native/binding';
import { assignLayout } from '../../src/passes/layout-assignment';
import { NodeSpec, buildModel } from '../helpers/model-builder';
import { optimized } from '../helpers/passes';
import { buildCuda, layers, noCuda, relNorm } from './cuda-helpers';

const suite = noCuda ? describe.skip : describe;
if (noCuda) test.skip(`channels-last cuda layers: ${noCuda}`, () => {});

let seed = 99;
const rnd = () => ((seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) / 2 ** 32) * 2 - 1;
const randoms = (n: number) => Float32Array.from({ length: n }, rnd);
const numel = (d: number[]) => d.reduce((a, b) => a * b, 1);

/** Conv (1x1) then the pool: the pass makes the pool channels-last. */
function convPool(op: string, x: number[], attrs: Record<string, number | number[]>): Uint8Array {
  const C = x[1];
  const nodes: NodeSpec[] = [
    { op: 'Conv', inputs: ['x', 'w'], outputs: ['c'] },
    { op, inputs: ['c'], outputs: ['y'], attrs },
  ];
  return buildModel({ nodes, inputs: [{ name: 'x', dims: x }], outputs: [{ name: 'y', dims: null }], initializers: [{ name: 'w', dims: [C, C, 1, 1], floats: Array.from(randoms(C * C)) }] });
}

/** The channels-last Pool layer of the converted plan as a plan of its own (input and output NHWC). */
function poolOnly(model: Uint8Array): Plan {
  const p = lowerGraph(optimized(model).g);
  assignLayout(p);
  const pool = p.ops.find((o) => o.kind === 'Pool')!;
  expect(pool.attrs.channels_last).toEqual({ t: 'i', v: 1 });
  const [xi, yi] = [pool.inputs[0], pool.outputs[0]];
  const tensors = [{ ...p.tensors[xi], kind: 'input' as const }, { ...p.tensors[yi], kind: 'output' as const }];
  return { tensors, ops: [{ ...pool, inputs: [0], outputs: [1] }], inputs: [0], outputs: [1] };
}

suite('channels-last on cuda', () => {
  const cases: [string, number[], Record<string, number | number[]>][] = [
    ['MaxPool', [2, 5, 9, 8], { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] }],
    ['AveragePool', [1, 70, 7, 7], { kernel_shape: [3, 2], strides: [2, 1], pads: [1, 0, 1, 1] }],
    ['AveragePool', [1, 3, 6, 6], { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1], count_include_pad: 1, ceil_mode: 1 }],
    ['GlobalAveragePool', [2, 33, 5, 3], {}],
    ['LpPool', [1, 3, 5, 5], { kernel_shape: [2, 2], p: 3 }],
  ];
  // cuda.pool.2d: 2-D max and average pooling only
  const tacticCases = cases.flatMap(([op, x, attrs]) => (op === 'LpPool' ? ['cuda.pool'] : ['cuda.pool', 'cuda.pool.2d']).map((t) => [t, op, x, attrs] as const));
  test.each(tacticCases)('%s channels_last %s %j %j matches cpu.pool', async (tactic, op, x, attrs) => {
    const plan = poolOnly(convPool(op, x, attrs));
    const ins = [randoms(numel(plan.tensors[0].shape))];
    const ref = new Float32Array(native().runPlan(encodePlan(plan), ins, { Pool: 'cpu.pool' })[0]);
    const e = await buildCuda(plan, { tactics: { Pool: tactic }, timing: false });
    expect(layers(e)[0].backend).toBe('cuda');
    const got = new Float32Array((await e.infer(ins))[0]);
    e.dispose();
    expect(relNorm(got, ref)).toBeLessThanOrEqual(1e-5);
  });

  // int8 engines' max pools: the byte kernels of cuda.pool.2d (16 channels per thread for C 32, 4 for
  // C 20, the per-channel kernel for C 5), exactly the CPU's
  test.each([
    [[2, 32, 9, 8], DataType.INT8],
    [[1, 20, 7, 7], DataType.UINT8],
    [[1, 5, 6, 6], DataType.INT8],
  ])('cuda.pool.2d channels_last int8/uint8 MaxPool %j (type %d) equals cpu.pool', async (x, dtype) => {
    const f = poolOnly(convPool('MaxPool', x, { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] }));
    const plan: Plan = { ...f, tensors: f.tensors.map((t) => ({ ...t, dtype })) };
    const n = numel(plan.tensors[0].shape);
    const data = dtype === DataType.INT8 ? Int8Array.from({ length: n }, () => Math.round(rnd() * 127)) : Uint8Array.from({ length: n }, () => Math.round((rnd() + 1) * 127));
    const ref = new Uint8Array(native().runPlan(encodePlan(plan), [data], { Pool: 'cpu.pool' })[0]);
    const e = await buildCuda(plan, { tactics: { Pool: 'cuda.pool.2d' }, timing: false });
    const got = new Uint8Array((await e.infer([data]))[0]);
    e.dispose();
    expect(Buffer.from(got).equals(Buffer.from(ref))).toBe(true);
  });

  /** A small ResNet-like stem + block + GAP tail. */
  const model = (() => {
    const C = 16;
    const w = (name: string, dims: number[]) => ({ name, dims, floats: Array.from(randoms(numel(dims)), (v) => v / Math.sqrt(numel(dims.slice(1)))) });
    return buildModel({
      nodes: [
        { op: 'Conv', inputs: ['x', 'w0'], outputs: ['a'], attrs: { pads: [1, 1, 1, 1], strides: [2, 2] } },
        { op: 'Relu', inputs: ['a'], outputs: ['b'] },
        { op: 'MaxPool', inputs: ['b'], outputs: ['c'], attrs: { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] } },
        { op: 'Conv', inputs: ['c', 'w1'], outputs: ['d'], attrs: { pads: [1, 1, 1, 1] } },
        { op: 'Add', inputs: ['d', 'c'], outputs: ['e'] },
        { op: 'Relu', inputs: ['e'], outputs: ['f'] },
        { op: 'GlobalAveragePool', inputs: ['f'], outputs: ['g'] },
        { op: 'Flatten', inputs: ['g'], outputs: ['y'] },
      ],
      inputs: [{ name: 'x', dims: [1, 3, 32, 32] }],
      outputs: [{ name: 'y', dims: [1, C] }],
      initializers: [w('w0', [C, 3, 3, 3]), w('w1', [C, C, 3, 3])],
    });
  })();

  test.each([
    ['fp32', { optimize: { 'layout-assignment': true }, strict: true }, 1e-5],
    ['fp16 (layout on by default)', { precision: 'fp16' as const }, 1e-2],
  ])('a ResNet-like model, %s, matches the CPU NCHW build', async (_, opts, tol) => {
    const x = new Tensor('float32', randoms(3 * 32 * 32), [1, 3, 32, 32]);
    const cpu = await compile(model, { device: 'cpu' });
    const gpu = await compile(model, { device: 'cuda', ...opts });
    expect(gpu.report.passes.find((p) => p.name === 'layout-assignment')?.reformats).toBe(1);
    expect(gpu.report.layers.filter((l) => l.kind === 'Conv' || l.kind === 'Pool').every((l) => l.backend === 'cuda')).toBe(true);
    const ref = (await cpu.infer({ x })).y.data as Float32Array;
    const got = (await gpu.infer({ x })).y.data as Float32Array;
    cpu.dispose();
    gpu.dispose();
    expect(relNorm(Float32Array.from(got), ref)).toBeLessThanOrEqual(tol);
  });
});
