/**
 * Layout assignment: the Plans before and after (which layers turn channels-last, where the reformats
 * go, what the constants become), and numbers with the pass on vs off on the CPU (the reference and
 * the channels-last tactics of Conv and Pool against the NCHW reference).
 */
import * as path from 'path';
import { Tensor, compile } from '../../../src';
import { lowerGraph } from '../../../src/lower/lower';
import { Plan, PlanOp } from '../../../src/lower/plan';
import { assignLayout } from '../../../src/passes/layout-assignment';
import { InitSpec, NodeSpec, buildModel } from '../../helpers/model-builder';
import { optimized } from '../../helpers/passes';
import { maxRelErr, randomArray, rng, runF32 } from '../ops/tactic-helpers';

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
