/**
 * The cuda kernels of the optimizer's fused kinds against the CPU: 'Elementwise' (cuda/fused_elementwise.cu)
 * on fused chains with broadcasting, 'Attention' (cuda/attention.cu) on exporter-style attention with
 * transposes read through strides and an additive mask, and models/bert-tiny-ts.onnx whole. Each model
 * is built for device 'cuda' and for 'cpu' and run on the same inputs; the fused layers of the cuda
 * engine must run on the cuda backend (no CPU fallback), so a case proves the kernel ran.
 * Skipped, with the reason, when the addon has no cuda backend. KILN_FUSED_SELFCHECK=1 runs every
 * comparison CPU against CPU (checks the cases themselves, e.g. that the fused kinds appear, without a GPU).
 */
import * as fs from 'fs';
import * as path from 'path';
import { Tensor, compile } from '../../src';
import { attentionModel, buildModel, elementwiseChainModel } from '../helpers/model-builder';
import { noCuda } from './cuda-helpers';

const selfcheck = process.env.KILN_FUSED_SELFCHECK === '1';
const skip = selfcheck ? undefined : noCuda;
const suite = skip ? describe.skip : describe;
if (skip) test.skip(`fused cuda kernels: ${skip}`, () => {});

let seed = 4242;
function rnd(): number {
  seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
  return seed / 2 ** 32;
}
const numel = (d: number[]) => d.reduce((a, b) => a * b, 1);
const f32 = (dims: number[], lo = -2, hi = 2) => new Tensor('float32', Float32Array.from({ length: numel(dims) }, () => lo + (hi - lo) * rnd()), dims);

interface Outcome {
  out: Record<string, Tensor>;
  layers: { name: string; kind: string; backend: string; tactic: string }[];
}

async function runOn(device: 'cpu' | 'cuda', model: Uint8Array, feeds: Record<string, Tensor>): Promise<Outcome> {
  // attention-recognition is off by default on CUDA (its kernel is slower than the unfused layers there)
  const e = await compile(model, { device: selfcheck ? 'cpu' : device, optimize: { 'attention-recognition': true } });
  try {
    return { out: await e.infer(feeds), layers: e.report.layers.map((l) => ({ name: l.name, kind: l.kind, backend: l.backend, tactic: l.tactic })) };
  } finally {
    e.dispose();
  }
}

function relL2(got: Float32Array, ref: Float32Array): number {
  if (got.length !== ref.length) return Infinity;
  let num = 0, den = 0;
  for (let i = 0; i < ref.length; i++) {
    if (Number.isNaN(got[i]) !== Number.isNaN(ref[i])) return Infinity;
    if (Number.isNaN(ref[i])) continue;
    num += (got[i] - ref[i]) ** 2;
    den += ref[i] ** 2;
  }
  return Math.sqrt(num) / Math.max(Math.sqrt(den), 1e-30);
}
function maxRel(got: Float32Array, ref: Float32Array): number {
  if (got.length !== ref.length) return Infinity;
  let m = 0;
  for (let i = 0; i < ref.length; i++) {
    const d = Math.abs(got[i] - ref[i]) / (1 + Math.abs(ref[i]));
    if (Number.isNaN(d)) return Infinity;
    m = Math.max(m, d);
  }
  return m;
}

/**
 * Builds on both devices, requires `kinds` among the cuda engine's layers and all of them on cuda
 * (`allCuda`: every layer), and returns the error of each output under `measure`.
 */
async function compare(model: Uint8Array, feeds: Record<string, Tensor>, kinds: string[], allCuda: boolean, measure: (g: Float32Array, r: Float32Array) => number) {
  const gpu = await runOn('cuda', model, feeds);
  const cpu = await runOn('cpu', model, feeds);
  for (const k of kinds) expect(gpu.layers.filter((l) => l.kind === k).length).toBeGreaterThan(0);
  if (!selfcheck) {
    const off = gpu.layers.filter((l) => l.backend !== 'cuda' && (allCuda || kinds.includes(l.kind))).map((l) => `${l.name} (${l.kind})`);
    expect(off).toEqual([]);
  }
  const errs: Record<string, number> = {};
  for (const [name, want] of Object.entries(cpu.out)) {
    const got = gpu.out[name];
    expect(got.dims).toEqual(want.dims);
    errs[name] = measure(got.data as Float32Array, want.data as Float32Array);
  }
  return { errs, tactics: gpu.layers.filter((l) => kinds.includes(l.kind)).map((l) => l.tactic) };
}

suite('Elementwise on cuda', () => {
  // y = LeakyRelu(tanh(x * 2 + b) - x) with b broadcast per column, then a Softmax (not element-wise).
  test('a fused chain with a broadcast operand and scalar constants, then Softmax', async () => {
    const dims = [3, 33, 70];
    const m = elementwiseChainModel(dims);
    const { errs } = await compare(m, { x: f32(dims) }, ['Elementwise'], true, maxRel);
    expect(errs.y).toBeLessThanOrEqual(1e-5);
  });

  test.each([
    [[2, 3, 5], [5]],
    [[2, 3, 5], [3, 1]],
    [[1, 1, 300], [1]],
    [[4, 1, 6], [1, 5, 1]],
    [[8, 1, 64, 33], [7, 1, 33]],
  ])('broadcasting x %j against b %j: (Sigmoid(x + b) * x) / (1 + |b|) → Gelu-style Erf', async (xs, bs) => {
    const m = buildModel({
      nodes: [
        { op: 'Add', inputs: ['x', 'b'], outputs: ['a'] },
        { op: 'Sigmoid', inputs: ['a'], outputs: ['c'] },
        { op: 'Mul', inputs: ['c', 'x'], outputs: ['d'] },
        { op: 'Abs', inputs: ['b'], outputs: ['ab'] },
        { op: 'Add', inputs: ['ab', 'one'], outputs: ['ab1'] },
        { op: 'Div', inputs: ['d', 'ab1'], outputs: ['e'] },
        { op: 'Erf', inputs: ['e'], outputs: ['y'] },
      ],
      inputs: [{ name: 'x', dims: xs }, { name: 'b', dims: bs }],
      outputs: [{ name: 'y' }],
      initializers: [{ name: 'one', dims: [], floats: [1] }],
    });
    const { errs } = await compare(m, { x: f32(xs), b: f32(bs) }, ['Elementwise'], true, maxRel);
    expect(errs.y).toBeLessThanOrEqual(1e-5);
  });
});

const attention = (B: number, S: number, H: number, D: number, withMask: boolean): Uint8Array => attentionModel({ B, S, H, D, mask: withMask ? 'padding' : 'none' });

suite('Attention on cuda', () => {
  test.each([
    [2, 5, 3, 4, true],
    [2, 37, 3, 40, true],
    [1, 128, 4, 64, true],
    [1, 300, 2, 96, false],
    [2, 17, 2, 256, true],
  ])('B %i, S %i, H %i, D %i, mask %s', async (B, S, H, D, withMask) => {
    const feeds: Record<string, Tensor> = { q: f32([B, S, H, D]), k: f32([B, S, H, D]), v: f32([B, S, H, D]) };
    if (withMask) {
      // padding-style mask: the last quarter of each batch's keys masked off with a large negative value
      const m = new Float32Array(B * S);
      for (let b = 0; b < B; b++) for (let j = 0; j < S; j++) m[b * S + j] = j >= S - Math.floor(S / 4) ? -10000 : 0;
      feeds.m = new Tensor('float32', m, [B, 1, 1, S]);
    }
    const { errs } = await compare(attention(B, S, H, D, withMask), feeds, ['Attention'], true, relL2);
    expect(errs.y).toBeLessThanOrEqual(1e-5);
  });
});

suite('bert-tiny on cuda', () => {
  test('models/bert-tiny-ts.onnx: cuda vs cpu, fused layers on the GPU', async () => {
    const file = path.join(__dirname, '..', '..', 'models', 'bert-tiny-ts.onnx');
    const SEQ = 16;
    const ids = new BigInt64Array(SEQ), mask = new BigInt64Array(SEQ);
    for (let i = 0; i < SEQ; i++) {
      ids[i] = BigInt(Math.floor(rnd() * 1000));
      mask[i] = i < SEQ - 5 ? 1n : 0n;
    }
    const feeds = { input_ids: new Tensor('int64', ids, [1, SEQ]), attention_mask: new Tensor('int64', mask, [1, SEQ]) };
    const { errs } = await compare(new Uint8Array(fs.readFileSync(file)), feeds, ['Attention', 'Elementwise'], false, relL2);
    for (const [name, e] of Object.entries(errs)) expect([name, e <= 1e-4]).toEqual([name, true]);
  });
});
