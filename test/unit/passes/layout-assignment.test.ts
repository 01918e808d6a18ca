/**
 * Layout assignment: the Plans before and after (which layers turn channels-last, where the reformats
 * go, what the constants become), and numbers with the pass on vs off on the CPU (the reference and
 * the channels-last tactics of Conv and Pool against the NCHW reference). int8 plans: Int8Conv and
 * per-tensor Quantize/Dequantize join regions for cuda only; compile() turns the pass on for int8 CUDA
 * builds ('best' candidates included), checked on the plan since no GPU runs here.
 */
import * as fs from 'fs';
import * as path from 'path';
import { Tensor, compile } from '../../../src';
import { MixedBuild, layoutPlan, layoutWanted } from '../../../src/compile';
import { DataType } from '../../../src/dtype';
import type { Engine } from '../../../src/engine';
import { inferGraph } from '../../../src/ir/infer';
import { lowerGraph } from '../../../src/lower/lower';
import { Plan, PlanOp, PlanTensor, encodePlan, float, floats, int, ints } from '../../../src/lower/plan';
import { FAST_CPU, native } from '../../../src/native/binding';
import { importModel } from '../../../src/onnx/import';
import { ResolvedOptions, resolveOptions } from '../../../src/options';
import { CHANNELS_LAST, assignLayout } from '../../../src/passes/layout-assignment';
import { runPasses } from '../../../src/passes/manager';
import { quantizeGraph } from '../../../src/quant';
import { bestHooks, buildBest } from '../../../src/quant/best';
import { InitSpec, NodeSpec, buildModel } from '../../helpers/model-builder';
import { optimized } from '../../helpers/passes';
import { maxRelErr, randomArray, rng, runF32 } from '../ops/tactic-helpers';
import { smallCnn } from '../quant/quant-models';

const r = rng(21);
const vals = (n: number) => Array.from(randomArray(n, r));
const LAYOUT = { optimize: { 'layout-assignment': true } };

/** The optimized Plan of a model, before the layout pass. */
function planOf(model: Uint8Array): Plan {
  return lowerGraph(optimized(model).g);
}

const kinds = (p: Plan) => p.ops.map((op) => op.kind);
const cl = (op: PlanOp) => op.attrs.channels_last?.v === 1;

/** Stem Conv+Relu, MaxPool, `blocks` residual blocks (Conv-Relu-Conv-Add-Relu), GAP, Flatten, Gemm. */
function resnetLike(blocks: number, C = 8): Uint8Array {
  const nodes: NodeSpec[] = [
    { op: 'Conv', name: 'stem', inputs: ['x', 'w0', 'b0'], outputs: ['s'], attrs: { pads: [1, 1, 1, 1], strides: [2, 2] } },
    { op: 'Relu', name: 'stem_relu', inputs: ['s'], outputs: ['s1'] },
    { op: 'MaxPool', name: 'pool', inputs: ['s1'], outputs: ['h0'], attrs: { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] } },
  ];
  const inits: InitSpec[] = [
    { name: 'w0', dims: [C, 3, 3, 3], floats: vals(C * 27) },
    { name: 'b0', dims: [C], floats: vals(C) },
  ];
  for (let b = 0; b < blocks; b++) {
    const h = `h${b}`;
    nodes.push(
      { op: 'Conv', name: `c${b}a`, inputs: [h, `w${b}a`, `b${b}a`], outputs: [`${h}a`], attrs: { pads: [1, 1, 1, 1] } },
      { op: 'Relu', name: `r${b}a`, inputs: [`${h}a`], outputs: [`${h}b`] },
      { op: 'Conv', name: `c${b}b`, inputs: [`${h}b`, `w${b}b`, `b${b}b`], outputs: [`${h}c`], attrs: { pads: [1, 1, 1, 1] } },
      { op: 'Add', name: `add${b}`, inputs: [`${h}c`, h], outputs: [`${h}d`] },
      { op: 'Relu', name: `r${b}b`, inputs: [`${h}d`], outputs: [`h${b + 1}`] },
    );
    for (const s of ['a', 'b']) inits.push({ name: `w${b}${s}`, dims: [C, C, 3, 3], floats: vals(C * C * 9) }, { name: `b${b}${s}`, dims: [C], floats: vals(C) });
  }
  nodes.push(
    { op: 'GlobalAveragePool', name: 'gap', inputs: [`h${blocks}`], outputs: ['g'] },
    { op: 'Flatten', name: 'flat', inputs: ['g'], outputs: ['f'] },
    { op: 'Gemm', name: 'fc', inputs: ['f', 'wf', 'bf'], outputs: ['y'], attrs: { transB: 1 } },
  );
  inits.push({ name: 'wf', dims: [5, C], floats: vals(5 * C) }, { name: 'bf', dims: [5], floats: vals(5) });
  return buildModel({ nodes, inputs: [{ name: 'x', dims: [1, 3, 16, 16] }], outputs: [{ name: 'y', dims: [1, 5] }], initializers: inits });
}

/** GoogLeNet-like inception block: 1x1, 1x1→3x3, 1x1→5x5 and pool→1x1 branches, channel concat. */
function inception(batch: number): Uint8Array {
  const C = 6;
  const conv = (name: string, x: string, m: number, c: number, k: number): NodeSpec => ({
    op: 'Conv',
    name,
    inputs: [x, `${name}_w`, `${name}_b`],
    outputs: [`${name}_o`],
    attrs: { pads: [k >> 1, k >> 1, k >> 1, k >> 1] },
  });
  const specs: [string, string, number, number, number][] = [
    ['b1', 'x', 4, C, 1],
    ['b2r', 'x', 3, C, 1],
    ['b2', 'b2r_r', 5, 3, 3],
    ['b3r', 'x', 2, C, 1],
    ['b3', 'b3r_r', 3, 2, 5],
    ['b4', 'p', 2, C, 1],
  ];
  const nodes: NodeSpec[] = [{ op: 'MaxPool', name: 'pool', inputs: ['x'], outputs: ['p'], attrs: { kernel_shape: [3, 3], pads: [1, 1, 1, 1] } }];
  const inits: InitSpec[] = [];
  for (const [name, x, m, c, k] of specs) {
    nodes.push(conv(name, x, m, c, k), { op: 'Relu', name: `${name}_relu`, inputs: [`${name}_o`], outputs: [`${name}_r`] });
    inits.push({ name: `${name}_w`, dims: [m, c, k, k], floats: vals(m * c * k * k) }, { name: `${name}_b`, dims: [m], floats: vals(m) });
  }
  nodes.push({ op: 'Concat', name: 'cat', inputs: ['b1_r', 'b2_r', 'b3_r', 'b4_r'], outputs: ['y'], attrs: { axis: 1 } });
  return buildModel({ nodes, inputs: [{ name: 'x', dims: [batch, C, 7, 7] }], outputs: [{ name: 'y', dims: [batch, 14, 7, 7] }], initializers: inits });
}

async function onVsOff(model: Uint8Array | string, shape?: number[]): Promise<{ err: number; passes: { name: string; changed: number; reformats?: number }[] }> {
  const on = await compile(model, { device: 'cpu', ...LAYOUT });
  const off = await compile(model, { device: 'cpu' });
  const feeds = Object.fromEntries(
    on.inputs.map((i) => [i.name, new Tensor('float32', randomArray((shape ?? i.dims).reduce((a, b) => a * b, 1), r), shape ?? i.dims)]),
  );
  const a = await on.infer(feeds);
  const b = await off.infer(feeds);
  let err = 0;
  for (const k of Object.keys(b)) {
    const x = a[k].data as Float32Array;
    const y = b[k].data as Float32Array;
    let num = 0;
    let den = 0;
    for (let i = 0; i < y.length; i++) (num += (x[i] - y[i]) ** 2), (den += y[i] ** 2);
    err = Math.max(err, Math.sqrt(num / Math.max(den, 1e-30)));
  }
  const passes = on.report.passes;
  on.dispose();
  off.dispose();
  return { err, passes };
}

describe('layout assignment: Plans before and after', () => {
  test('a ResNet-style chain: one reformat in, none before the GlobalAveragePool + Flatten + Gemm tail', () => {
    const p = planOf(resnetLike(2));
    const before = kinds(p);
    const res = assignLayout(p);
    expect(res.reformats).toBe(1);
    expect(res.aliases).toBe(1);
    // the reformat of the graph input first, then the region, then the alias of the pooled vector
    expect(kinds(p)).toEqual(['StridedCopy', ...before.slice(0, before.indexOf('Pool', 2) + 1), 'Copy', ...before.slice(before.indexOf('Pool', 2) + 1)]);
    const region = p.ops.filter((op) => op.kind === 'Conv' || op.kind === 'Pool');
    expect(region.every(cl)).toBe(true);
    expect(res.converted).toEqual(p.ops.filter((op) => !['StridedCopy', 'Copy', 'Gemm'].includes(op.kind)).map((op) => op.name));
    // tensors in the region are stored [N, H, W, C]; the graph input keeps NCHW
    expect(p.tensors[p.inputs[0]].shape).toEqual([1, 3, 16, 16]);
    expect(p.tensors[p.ops[0].outputs[0]].shape).toEqual([1, 16, 16, 3]);
    const stem = p.ops.find((op) => op.name === 'stem')!;
    expect(p.tensors[stem.inputs[1]].shape).toEqual([8, 3, 3, 3]); // W [M, kH, kW, C]
    expect(p.tensors[stem.outputs[0]].shape).toEqual([1, 8, 8, 8]);
    const gap = p.ops.find((op) => op.kind === 'Pool' && op.attrs.mode.v === 'avg')!;
    expect(p.tensors[gap.outputs[0]].shape).toEqual([1, 1, 1, 8]);
  });

  test('the weight constant is transposed to [M, kH, kW, C/G]', () => {
    const w = vals(2 * 3 * 2 * 2);
    const m = buildModel({
      nodes: [{ op: 'Conv', inputs: ['x', 'w'], outputs: ['y'] }],
      inputs: [{ name: 'x', dims: [1, 3, 4, 4] }],
      outputs: [{ name: 'y', dims: [1, 2, 3, 3] }],
      initializers: [{ name: 'w', dims: [2, 3, 2, 2], floats: w }],
    });
    const p = planOf(m);
    assignLayout(p);
    const conv = p.ops.find((op) => op.kind === 'Conv')!;
    const t = p.tensors[conv.inputs[1]];
    const got = new Float32Array(t.data!.buffer.slice(t.data!.byteOffset, t.data!.byteOffset + t.data!.byteLength));
    // got[m][ky][kx][c] = w[m][c][ky][kx]
    for (let mm = 0; mm < 2; mm++)
      for (let c = 0; c < 3; c++)
        for (let ky = 0; ky < 2; ky++) for (let kx = 0; kx < 2; kx++) expect(got[((mm * 2 + ky) * 2 + kx) * 3 + c]).toBeCloseTo(w[((mm * 3 + c) * 2 + ky) * 2 + kx], 6);
  });

  test('a region without a Conv stays NCHW', () => {
    const m = buildModel({
      nodes: [
        { op: 'Relu', inputs: ['x'], outputs: ['a'] },
        { op: 'MaxPool', inputs: ['a'], outputs: ['y'], attrs: { kernel_shape: [2, 2] } },
      ],
      inputs: [{ name: 'x', dims: [1, 3, 4, 4] }],
      outputs: [{ name: 'y', dims: [1, 3, 3, 3] }],
    });
    const p = planOf(m);
    const before = JSON.stringify(p, (_, v) => (v instanceof Uint8Array ? [...v] : v));
    expect(assignLayout(p)).toEqual({ converted: [], reformats: 0, aliases: 0 });
    expect(JSON.stringify(p, (_, v) => (v instanceof Uint8Array ? [...v] : v))).toBe(before);
  });

  test('an inception block: every branch and the Concat (axis 3) in one region, one reformat in and one out', () => {
    const p = planOf(inception(1));
    const res = assignLayout(p);
    expect(res.reformats).toBe(2);
    const cat = p.ops.find((op) => op.kind === 'Concat');
    if (cat) expect(cat.attrs.axis).toEqual({ t: 'i', v: 3 });
    expect(p.ops.filter((op) => op.kind === 'Conv').every(cl)).toBe(true);
    expect(kinds(p)[0]).toBe('StridedCopy');
    expect(kinds(p)[p.ops.length - 1]).toBe('StridedCopy');
  });

  test('a broadcast constant [C,1,1] becomes [1,1,1,C]; an NCHW reader of a region tensor gets one shared reformat', () => {
    const m = buildModel({
      nodes: [
        { op: 'Conv', inputs: ['x', 'w'], outputs: ['c'] },
        { op: 'Mul', inputs: ['c', 's'], outputs: ['y'] },
        { op: 'ReduceSum', inputs: ['c'], outputs: ['r1'], attrs: { keepdims: 1 } },
        { op: 'Transpose', inputs: ['c'], outputs: ['r2'], attrs: { perm: [0, 2, 3, 1] } },
      ],
      inputs: [{ name: 'x', dims: [1, 2, 3, 3] }],
      outputs: [
        { name: 'y', dims: [1, 4, 3, 3] },
        { name: 'r1', dims: [1, 1, 1, 1] },
        { name: 'r2', dims: [1, 3, 3, 4] },
      ],
      initializers: [
        { name: 'w', dims: [4, 2, 1, 1], floats: vals(8) },
        { name: 's', dims: [4, 1, 1], floats: [1, 2, 3, 4] },
      ],
    });
    const p = planOf(m);
    const res = assignLayout(p);
    const mul = p.ops.find((op) => op.kind === 'Binary')!;
    expect(p.tensors[mul.inputs[1]].shape).toEqual([1, 1, 1, 4]);
    // in, the conv output back to NCHW once for both readers, the output y back to NCHW
    expect(res.reformats).toBe(3);
    expect(p.ops.filter((op) => op.kind === 'StridedCopy' && op.name.endsWith('__to_nchw')).length).toBe(2);
  });
});

test('ReduceMean over H, W (the dynamo exporter\'s GlobalAveragePool) joins the region; without keepdims its output needs nothing', () => {
  const m = buildModel({
    nodes: [
      { op: 'Conv', inputs: ['x', 'w'], outputs: ['c'] },
      { op: 'ReduceMean', inputs: ['c', 'axes'], outputs: ['y'], attrs: { keepdims: 0 } },
    ],
    inputs: [{ name: 'x', dims: [1, 2, 3, 3] }],
    outputs: [{ name: 'y', dims: [1, 4] }],
    initializers: [
      { name: 'w', dims: [4, 2, 1, 1], floats: vals(8) },
      { name: 'axes', dims: [2], type: 7, int64s: [2, 3] },
    ],
    opset: 18,
  });
  const p = planOf(m);
  const x = randomArray(18, r);
  const [ref] = runF32(p, [x]);
  const res = assignLayout(p);
  expect(res).toEqual({ converted: ['', ''].map((_, k) => p.ops[k + 1].name), reformats: 1, aliases: 0 });
  expect(p.ops[2].attrs.axes).toEqual({ t: 'I', v: [1, 2] });
  expect(maxRelErr(runF32(p, [x])[0], ref)).toBeLessThan(1e-6);
});

describe('layout assignment: the same numbers on the CPU (rel L2 <= 1e-5)', () => {
  test('ResNet-style chain, and the report counts converted layers and reformats', async () => {
    const { err, passes } = await onVsOff(resnetLike(2));
    expect(err).toBeLessThan(1e-5);
    const s = passes.find((q) => q.name === 'layout-assignment')!;
    expect(s.changed).toBeGreaterThan(5);
    expect(s.reformats).toBe(1);
  });

  test.each([1, 2])('inception block at batch %i', async (batch) => {
    expect((await onVsOff(inception(batch))).err).toBeLessThan(1e-5);
  });

  test('off by default on the CPU', async () => {
    const e = await compile(resnetLike(1), { device: 'cpu' });
    expect(e.report.passes.map((q) => q.name)).not.toContain('layout-assignment');
    e.dispose();
  });

  test.each(['mobilenet_v2-ts.onnx', 'mobilenet_v2-dynamo.onnx', 'resnet-tiny-ts.onnx', 'resnet-tiny-dynamo.onnx'])('test model %s', async (file) => {
    const { err, passes } = await onVsOff(path.join(__dirname, '../../../models', file));
    expect(err).toBeLessThan(1e-5);
    expect(passes.find((q) => q.name === 'layout-assignment')!.reformats).toBe(1);
  }, 60000);
});

describe('channels-last Conv and Pool tactics match the NCHW reference', () => {
  const size = (s: number[]) => s.reduce((a, b) => a * b, 1);
  const convCases: { x: number[]; w: number[]; attrs?: Record<string, number | number[]>; bias?: boolean }[] = [
    { x: [1, 8, 9, 9], w: [6, 8, 3, 3], bias: true, attrs: { pads: [1, 1, 1, 1] } },
    { x: [2, 6, 11, 9], w: [4, 3, 3, 2], bias: true, attrs: { group: 2, strides: [2, 1], dilations: [1, 2], pads: [1, 0, 2, 1] } },
    { x: [2, 12, 7, 5], w: [20, 12, 1, 1], bias: true },
    { x: [1, 12, 8, 8], w: [12, 1, 3, 3], bias: true, attrs: { group: 12, strides: [2, 2], pads: [1, 1, 1, 1] } },
    { x: [2, 10, 13, 11], w: [10, 1, 5, 3], attrs: { group: 10, strides: [2, 3], dilations: [2, 1], pads: [2, 0, 3, 4] } },
    { x: [1, 5, 10, 10], w: [7, 5, 1, 1], attrs: { strides: [2, 2] } },
  ];
  test.each(convCases.map((c, i) => [i, c] as const))('Conv case %i %j (+ relu, + residual)', (_, c) => {
    const inits: InitSpec[] = [{ name: 'w', dims: c.w, floats: vals(size(c.w)) }, ...(c.bias ? [{ name: 'b', dims: [c.w[0]], floats: vals(c.w[0]) }] : [])];
    for (const epi of ['none', 'relu', 'residual'] as const) {
      const nodes: NodeSpec[] = [{ op: 'Conv', name: 'conv', inputs: ['x', 'w', ...(c.bias ? ['b'] : [])], outputs: ['c'], attrs: c.attrs ?? {} }];
      if (epi === 'relu') nodes.push({ op: 'Relu', inputs: ['c'], outputs: ['y'] });
      // a residual Add of the Conv's output with a copy of itself through a second Conv
      if (epi === 'residual') nodes.push({ op: 'Conv', name: 'conv2', inputs: ['x', 'w', ...(c.bias ? ['b'] : [])], outputs: ['c2'], attrs: c.attrs ?? {} }, { op: 'Add', inputs: ['c', 'c2'], outputs: ['y'] });
      if (epi === 'none') nodes[0].outputs = ['y'];
      const m = buildModel({ nodes, inputs: [{ name: 'x', dims: c.x }], outputs: [{ name: 'y', dims: null }], initializers: inits });
      const p = planOf(m);
      const x = randomArray(size(c.x), r);
      const [ref] = runF32(p, [x], { Conv: 'cpu.conv.ref' });
      assignLayout(p);
      expect(p.ops.filter((op) => op.kind === 'Conv').every(cl)).toBe(true);
      const ran: string[] = [];
      for (const t of ['cpu.conv.ref', 'cpu.conv.nhwc.gemm', 'cpu.conv.nhwc.depthwise']) {
        let got: Float32Array;
        try {
          got = runF32(p, [x], { Conv: t })[0];
        } catch (e) {
          expect((e as Error).message).toMatch(/cannot run layer/);
          expect(t).not.toBe('cpu.conv.ref');
          continue;
        }
        expect({ t, epi, ok: maxRelErr(got, ref) < 1e-5 }).toEqual({ t, epi, ok: true });
        ran.push(t);
      }
      const G = c.attrs?.group ?? 1;
      expect(ran).toContain(G === 1 ? 'cpu.conv.nhwc.gemm' : G === c.x[1] ? 'cpu.conv.nhwc.depthwise' : 'cpu.conv.ref');
      // the NCHW tactics refuse a channels-last layer instead of computing garbage
      for (const t of ['cpu.conv.im2col', 'cpu.conv.depthwise']) expect(() => runF32(p, [x], { Conv: t })).toThrow(/cannot run layer/);
    }
  });

  const poolCases: [string, number[], Record<string, number | number[]>][] = [
    ['MaxPool', [1, 5, 9, 8], { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] }],
    ['AveragePool', [2, 4, 7, 7], { kernel_shape: [3, 2], strides: [2, 1], pads: [1, 0, 1, 1] }],
    ['AveragePool', [1, 3, 6, 6], { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1], count_include_pad: 1, ceil_mode: 1 }],
    ['MaxPool', [1, 3, 8, 8], { kernel_shape: [2, 2], dilations: [2, 2] }],
    ['GlobalAveragePool', [2, 6, 5, 3], {}],
    ['GlobalMaxPool', [1, 6, 4, 4], {}],
    ['LpPool', [1, 3, 5, 5], { kernel_shape: [2, 2], p: 3 }],
  ];
  test.each(poolCases.map((c, i) => [i, ...c] as const))('Pool case %i %s %j %j after a Conv', (_, op, x, attrs) => {
    const C = x[1];
    const w = { name: 'w', dims: [C, C, 1, 1], floats: vals(C * C) };
    const m = buildModel({
      nodes: [
        { op: 'Conv', inputs: ['x', 'w'], outputs: ['c'] },
        { op, inputs: ['c'], outputs: ['y'], attrs },
      ],
      inputs: [{ name: 'x', dims: x }],
      outputs: [{ name: 'y', dims: null }],
      initializers: [w],
    });
    const p = planOf(m);
    const xin = randomArray(size(x), r);
    const [ref] = runF32(p, [xin], { Conv: 'cpu.conv.ref', Pool: 'cpu.pool' });
    assignLayout(p);
    expect(p.ops.filter((o) => o.kind === 'Pool').every(cl)).toBe(true);
    const ran: string[] = [];
    for (const t of ['cpu.pool', 'cpu.pool.mt', 'cpu.pool.nhwc']) {
      let got: Float32Array;
      try {
        got = runF32(p, [xin], { Conv: 'cpu.conv.ref', Pool: t })[0];
      } catch (e) {
        expect((e as Error).message).toMatch(/cannot run layer/);
        expect(t).toBe('cpu.pool.nhwc');
        continue;
      }
      expect({ t, ok: maxRelErr(got, ref) < 1e-5 }).toEqual({ t, ok: true });
    }
    expect(() => runF32(p, [xin], { Pool: 'cpu.pool.2d' })).toThrow(/cannot run layer/);
  });

  test('a MaxPool with an Indices output stays NCHW', () => {
    const m = buildModel({
      nodes: [
        { op: 'Conv', inputs: ['x', 'w'], outputs: ['c'] },
        { op: 'MaxPool', inputs: ['c'], outputs: ['y', 'i'], attrs: { kernel_shape: [2, 2] } },
      ],
      inputs: [{ name: 'x', dims: [1, 2, 4, 4] }],
      outputs: [
        { name: 'y', dims: null },
        { name: 'i', dims: null, type: 7 },
      ],
      initializers: [{ name: 'w', dims: [2, 2, 1, 1], floats: vals(4) }],
    });
    const p = planOf(m);
    assignLayout(p);
    expect(cl(p.ops.find((o) => o.kind === 'Pool')!)).toBe(false);
    expect(cl(p.ops.find((o) => o.kind === 'Conv')!)).toBe(true);
  });
});

describe('layout assignment: int8 plans', () => {
  // x [1,16,3,5] → QuantizeLinear → Int8Conv 3x3 16→32 (+bias) → Int8Conv 1x1 32→16 (+x, a float residual)
  // → DequantizeLinear → y; H ≠ W so that a wrong permutation shows
  const [C, M, H, W] = [16, 32, 3, 5];
  const w1 = Int8Array.from({ length: M * C * 9 }, (_, i) => ((i * 37) % 255) - 127);
  const w2 = Int8Array.from({ length: C * M }, (_, i) => ((i * 53) % 255) - 127);
  const bytes = (a: Int8Array | Float32Array) => new Uint8Array(a.buffer.slice(a.byteOffset, a.byteOffset + a.byteLength));
  const t = (name: string, dtype: DataType, shape: number[], kind: PlanTensor['kind'] = 'activation', data?: Uint8Array): PlanTensor => ({ name, dtype, shape, kind, ...(data ? { data } : {}) });
  const q8 = { x_scale: float(0.05), x_zero_point: int(0), w_scales: floats([0.01]), y_scale: float(0.1), y_zero_point: int(0) };
  const geom = (k: number) => ({ group: int(1), strides: ints([1, 1]), dilations: ints([1, 1]), pads: ints(Array(4).fill(k >> 1)) });
  /** The Plan before the pass; `perAxis`: the QuantizeLinear has one scale per channel. */
  function int8Plan(perAxis = false): Plan {
    const tensors = [
      t('x', DataType.FLOAT, [1, C, H, W], 'input'),
      t('x_scale', DataType.FLOAT, perAxis ? [C] : [], 'constant', bytes(new Float32Array(perAxis ? C : 1).fill(0.05))),
      t('x_zp', DataType.INT8, perAxis ? [C] : [], 'constant', new Uint8Array(perAxis ? C : 1)),
      t('xq', DataType.INT8, [1, C, H, W]),
      t('w1', DataType.INT8, [M, C, 3, 3], 'constant', bytes(w1)),
      t('b1', DataType.FLOAT, [M], 'constant', bytes(new Float32Array(M).fill(0.5))),
      t('y1', DataType.INT8, [1, M, H, W]),
      t('w2', DataType.INT8, [C, M, 1, 1], 'constant', bytes(w2)),
      t('y2', DataType.INT8, [1, C, H, W]),
      t('y_scale', DataType.FLOAT, [], 'constant', bytes(new Float32Array([0.1]))),
      t('y_zp', DataType.INT8, [], 'constant', new Uint8Array(1)),
      t('y', DataType.FLOAT, [1, C, H, W], 'output'),
    ];
    const q = (kind: string, a: number, b: number, c: number, out: number, mode: number): PlanOp => ({
      kind,
      name: kind === 'QuantizeLinear' ? 'quant' : 'dequant',
      inputs: [a, b, c],
      outputs: [out],
      attrs: { mode: int(mode), axis: int(mode ? 1 : 0), block: int(1), ...(kind === 'QuantizeLinear' ? { precision: int(DataType.FLOAT), saturate: int(1) } : {}) },
      origin: [],
    });
    return {
      tensors,
      ops: [
        q('QuantizeLinear', 0, 1, 2, 3, perAxis ? 1 : 0),
        { kind: 'Int8Conv', name: 'c1', inputs: [3, 4, 5], outputs: [6], attrs: { ...geom(3), ...q8 }, origin: ['c1'] },
        { kind: 'Int8Conv', name: 'c2', inputs: [6, 7, -1, 0], outputs: [8], attrs: { ...geom(1), ...q8 }, origin: ['c2'] },
        q('DequantizeLinear', 8, 9, 10, 11, 0),
      ],
      inputs: [0],
      outputs: [11],
    };
  }
  const CUDA = { channelsLast: CHANNELS_LAST.cuda };
  /** w [m][c][ky][kx] → [m][ky][kx][c], computed here independently of the pass. */
  function nhwcWeight(w: Int8Array, m: number, c: number, k: number): Uint8Array {
    const out = new Int8Array(w.length);
    for (let a = 0; a < m; a++)
      for (let b = 0; b < c; b++) for (let ky = 0; ky < k; ky++) for (let kx = 0; kx < k; kx++) out[((a * k + ky) * k + kx) * c + b] = w[((a * c + b) * k + ky) * k + kx];
    return new Uint8Array(out.buffer);
  }

  test('Quantize → Int8Conv → Int8Conv (+ float residual) → Dequantize for cuda: all channels-last, weights transposed, reformats only at the graph input and output', () => {
    const p = int8Plan();
    const res = assignLayout(p, CUDA);
    expect(res).toEqual({ converted: ['quant', 'c1', 'c2', 'dequant'], reformats: 2, aliases: 0 });
    const before = int8Plan();
    const nhwc = (s: number[]) => [s[0], s[2], s[3], s[1]];
    const cl1 = { channels_last: int(1) };
    const expected: Plan = {
      tensors: [
        ...before.tensors.map((x) => (['xq', 'y1', 'y2'].includes(x.name) ? { ...x, shape: nhwc(x.shape) } : x)).map((x) =>
          x.name === 'w1' ? { ...x, shape: [M, 3, 3, C], data: nhwcWeight(w1, M, C, 3) } : x.name === 'w2' ? { ...x, shape: [C, 1, 1, M], data: nhwcWeight(w2, C, M, 1) } : x,
        ),
        t('x__nhwc', DataType.FLOAT, [1, H, W, C]),
        t('y__nhwc', DataType.FLOAT, [1, H, W, C]),
      ],
      ops: [
        // x [1,16,3,5] (strides 240,15,5,1) read as [1,3,5,16]
        { kind: 'StridedCopy', name: 'x__to_nhwc', inputs: [0], outputs: [12], attrs: { shape: ints([1, H, W, C]), strides: ints([240, 5, 1, 15]), offset: int(0) }, origin: [] },
        { ...before.ops[0], inputs: [12, 1, 2] },
        { ...before.ops[1], attrs: { ...before.ops[1].attrs, ...cl1 } },
        { ...before.ops[2], inputs: [6, 7, -1, 12], attrs: { ...before.ops[2].attrs, ...cl1 } },
        { ...before.ops[3], outputs: [13] },
        // y__nhwc [1,3,5,16] (strides 240,80,16,1) read as [1,16,3,5]
        { kind: 'StridedCopy', name: 'y__to_nchw', inputs: [13], outputs: [11], attrs: { shape: ints([1, C, H, W]), strides: ints([240, 1, 80, 16]), offset: int(0) }, origin: [] },
      ],
      inputs: [0],
      outputs: [11],
    };
    expect(p).toEqual(expected);
    // the transposed bytes themselves: W1[m][ky][kx][c] = w1[m][c][ky][kx]
    const got = new Int8Array(p.tensors[4].data!.buffer, p.tensors[4].data!.byteOffset, p.tensors[4].data!.byteLength);
    for (const [m, c, ky, kx] of [[0, 0, 0, 1], [1, 2, 0, 0], [31, 15, 2, 2], [7, 9, 1, 2]]) expect(got[((m * 3 + ky) * 3 + kx) * C + c]).toBe(w1[((m * C + c) * 3 + ky) * 3 + kx]);
  });

  test('a per-axis QuantizeLinear stays NCHW: its int8 output is reformatted for the Int8Conv', () => {
    const p = int8Plan(true);
    const res = assignLayout(p, CUDA);
    expect(res.converted).toEqual(['c1', 'c2', 'dequant']);
    const quant = p.ops.find((op) => op.name === 'quant')!;
    expect(quant.inputs[0]).toBe(0);
    expect(p.tensors[quant.outputs[0]].shape).toEqual([1, C, H, W]);
    expect(kinds(p)).toEqual(['QuantizeLinear', 'StridedCopy', 'Int8Conv', 'StridedCopy', 'Int8Conv', 'DequantizeLinear', 'StridedCopy']);
    expect(p.ops.filter((op) => op.kind === 'StridedCopy').map((op) => op.name)).toEqual(['xq__to_nhwc', 'x__to_nhwc', 'y__to_nchw']);
    expect(p.ops.filter((op) => op.kind === 'Int8Conv').every(cl)).toBe(true);
  });

  test('a QuantizeLinear that alone reads the graph input stays NCHW: the reformat moves its int8 output', () => {
    const p = int8Plan();
    p.ops[2] = { ...p.ops[2], inputs: [6, 7] };  // no residual: x's only reader is the QuantizeLinear
    const res = assignLayout(p, CUDA);
    expect(res).toEqual({ converted: ['c1', 'c2', 'dequant'], reformats: 2, aliases: 0 });
    const quant = p.ops.find((op) => op.name === 'quant')!;
    expect(quant.inputs[0]).toBe(0);
    expect(p.tensors[quant.outputs[0]]).toMatchObject({ name: 'xq', dtype: DataType.INT8, shape: [1, C, H, W] });
    expect(kinds(p)).toEqual(['QuantizeLinear', 'StridedCopy', 'Int8Conv', 'Int8Conv', 'DequantizeLinear', 'StridedCopy']);
    const reformat = p.ops[1];
    expect(reformat).toMatchObject({ name: 'xq__to_nhwc', inputs: [quant.outputs[0]], attrs: { shape: ints([1, H, W, C]), strides: ints([240, 5, 1, 15]), offset: int(0) } });
    expect(p.tensors[reformat.outputs[0]]).toMatchObject({ dtype: DataType.INT8, shape: [1, H, W, C] });
    expect(p.ops[2].inputs[0]).toBe(reformat.outputs[0]);
  });

  test('for the cpu (the default kinds) Int8Conv stays NCHW, and a region of Quantize/Dequantize without a Conv is not converted', () => {
    for (const options of [{}, { channelsLast: CHANNELS_LAST.cpu }]) {
      const p = int8Plan();
      expect(assignLayout(p, options)).toEqual({ converted: [], reformats: 0, aliases: 0 });
      expect(p).toEqual(int8Plan());
    }
  });
});

describe('layout assignment of int8 builds in compile()', () => {
  const r8 = rng(8);
  /** `n` feeds of input `name`, uniform in [-1, 1). */
  const feeds = (n: number, name: string, dims: number[]) =>
    Array.from({ length: n }, () => ({ [name]: new Tensor('float32', Float32Array.from({ length: dims.reduce((a, b) => a * b, 1) }, () => r8() * 2 - 1), dims) }));

  test('on by default for int8 on cuda; not on the cpu unless requested; off when disabled', () => {
    const o = (opts: Parameters<typeof resolveOptions>[0]) => resolveOptions(opts);
    expect(layoutWanted(o({ precision: 'int8' }), 'cuda')).toBe(true);
    expect(layoutWanted(o({ precision: 'fp16' }), 'cuda')).toBe(true);
    expect(layoutWanted(o({ precision: 'fp32' }), 'cuda')).toBe(false);
    expect(layoutWanted(o({ precision: 'int8' }), 'cpu')).toBe(false);
    expect(layoutWanted(o({ precision: 'int8', optimize: { 'layout-assignment': false } }), 'cuda')).toBe(false);
    expect(layoutWanted(o({ precision: 'int8', ...LAYOUT }), 'cpu')).toBe(true);
  });

  test('the int8 plan of resnet-tiny for cuda: every Int8Conv channels-last, at most 2 reformats; the fp16 guard gets the NCHW plan the CPU can run', async () => {
    const file = path.join(__dirname, '../../../models/resnet-tiny-ts.onnx');
    const bytes = new Uint8Array(fs.readFileSync(file));
    const o = resolveOptions({ precision: 'int8', device: 'cuda', calibration: feeds(4, 'input', [1, 3, 64, 64]) });
    const g = importModel(bytes);
    inferGraph(g);
    runPasses(g, true, { target: 'cuda' });
    await quantizeGraph(g, bytes, o, () => {});
    const plan = lowerGraph(g);
    const { layout, cpuPlan } = layoutPlan(plan, o, 'cuda');
    const convs = plan.ops.filter((op) => op.kind === 'Int8Conv');
    expect(convs.length).toBeGreaterThan(5);
    expect(convs.every(cl)).toBe(true);
    expect(layout!.converted).toEqual(expect.arrayContaining(convs.map((op) => op.name)));
    expect(layout!.reformats).toBeLessThanOrEqual(2);
    expect(plan.ops.filter((op) => op.kind === 'StridedCopy' && /__to_nhwc$|__to_nchw$/.test(op.name)).length).toBe(layout!.reformats);
    // the CPU's int8 convolution is NCHW only: the guard's plan is the one from before the pass
    expect(cpuPlan).not.toBe(plan);
    expect(cpuPlan.ops.filter((op) => op.kind === 'Int8Conv').some(cl)).toBe(false);
    const x = [randomArray(3 * 64 * 64, r8)];
    expect(() => native().runPlan(encodePlan(plan), x, FAST_CPU)).toThrow();
    expect(new Float32Array(native().runPlan(encodePlan(cpuPlan), x, FAST_CPU)[0]).length).toBe(10);
  }, 60000);

  test('a cpu int8 build with the pass requested builds and leaves every Int8Conv NCHW', async () => {
    const e = await compile(smallCnn(), { device: 'cpu', precision: 'int8', calibration: feeds(8, 'x', [1, 3, 16, 16]), ...LAYOUT });
    const s = e.report.passes.find((q) => q.name === 'layout-assignment')!;
    expect(s).toBeDefined();
    expect(e.report.layers.some((l) => l.kind === 'Int8Conv')).toBe(true);
    expect(s.nodes.filter((n) => e.report.layers.find((l) => l.name === n)?.kind === 'Int8Conv')).toEqual([]);
    const y = await e.infer(feeds(1, 'x', [1, 3, 16, 16])[0]);
    expect(Object.values(y)[0].dims).toEqual([1, 10]);
    e.dispose();
  });

  test("a 'best' build on cuda: the int8 candidate and the int8 last build are laid out channels-last", async () => {
    const calls: { precision: string; half: boolean; layout: boolean }[] = [];
    const layer = (kind: string) => ({ name: 'conv', kind, fusedFrom: ['conv'], candidates: [], tactic: 't' });
    const fake = async (_m: unknown, o: ResolvedOptions, mixed?: MixedBuild): Promise<Engine> => {
      const half = o.precision === 'fp16' || (mixed?.half ?? false);
      calls.push({ precision: o.precision, half, layout: layoutWanted(o, 'cuda', half) });
      return { report: { layers: [layer(o.precision === 'int8' ? 'Int8Conv' : 'Conv')] }, dispose: () => {} } as unknown as Engine;
    };
    bestHooks.layerMs = (precision) => (precision === 'int8' ? 0.1 : 1);
    try {
      await buildBest(smallCnn(), resolveOptions({ precision: 'best', calibration: feeds(2, 'x', [1, 3, 16, 16]) }), 'cuda', fake);
    } finally {
      bestHooks.layerMs = undefined;
    }
    expect(calls).toEqual([
      { precision: 'fp32', half: false, layout: false },
      { precision: 'fp16', half: true, layout: true },
      { precision: 'int8', half: false, layout: true },
      { precision: 'int8', half: true, layout: true },
    ]);
  });
});
