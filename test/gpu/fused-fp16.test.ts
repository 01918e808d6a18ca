/**
 * The fused kinds in fp16 engines on cuda: 'Elementwise' (cuda/fused_elementwise.cu: both the element
 * and the half2 pairs kernel, float32 inputs and constants read beside float16 activations) and
 * 'Attention', and models/bert-tiny-ts.onnx whole. Each model is compiled for cuda in fp16 (accuracy
 * guard off, so every layer runs in fp16) and compared with the fp32 CPU engine; the error must stay
 * within STYLE.md's fp16 rule: ≤ 2 · the error of a naive fp16 engine (the same model with the
 * optimizer off, every op its own fp16 layer on cuda) + 2e-4. The fused layers must run on cuda.
 */
import * as fs from 'fs';
import * as path from 'path';
import { Tensor, compile } from '../../src';
import { buildModel } from '../helpers/model-builder';
import { noCuda, relNorm } from './cuda-helpers';

const d = noCuda ? describe.skip : describe;
if (noCuda) test.skip(`GPU tests skipped: ${noCuda}`, () => undefined);

let seed = 99;
const rnd = () => ((seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) / 2 ** 32);
const numel = (dims: number[]) => dims.reduce((a, b) => a * b, 1);
const f32 = (dims: number[]) => new Tensor('float32', Float32Array.from({ length: numel(dims) }, () => 4 * rnd() - 2), dims);

async function outputs(model: Uint8Array, feeds: Record<string, Tensor>, opts: Parameters<typeof compile>[1]) {
  const e = await compile(model, { ...opts, optimize: opts?.optimize ?? { 'attention-recognition': true } });
  try {
    return { out: await e.infer(feeds), layers: e.report.layers };
  } finally {
    e.dispose();
  }
}

async function expectFp16Rule(model: Uint8Array, feeds: Record<string, Tensor>, kinds: string[]) {
  const ref = (await outputs(model, feeds, { device: 'cpu' })).out;
  const half = await outputs(model, feeds, { device: 'cuda', precision: 'fp16', guard: false });
  const naive = (await outputs(model, feeds, { device: 'cuda', precision: 'fp16', guard: false, optimize: false })).out;
  for (const k of kinds) {
    const of = half.layers.filter((l) => l.kind === k);
    expect([k, of.length > 0]).toEqual([k, true]);
    expect(of.filter((l) => l.backend !== 'cuda').map((l) => l.name)).toEqual([]);
  }
  const report: Record<string, unknown> = {};
  for (const [name, want] of Object.entries(ref)) {
    const e = relNorm(half.out[name].data as Float32Array, want.data as Float32Array);
    const bound = 2 * relNorm(naive[name].data as Float32Array, want.data as Float32Array) + 2e-4;
    report[name] = { e, bound };
    expect({ name, ok: e <= bound }).toEqual({ name, ok: true });
  }
  console.log(`${kinds.join('+')}: ${JSON.stringify(report)}; tactics ${JSON.stringify(half.layers.filter((l) => kinds.includes(l.kind)).map((l) => l.tactic))}`);
}

d('fused kinds in fp16 on cuda', () => {
  test.each([
    [[3, 33, 70], [70]], // pairs kernel: inner dim even, b broadcast along the outer dims
    [[2, 3, 5], [3, 1]], // element kernel: odd inner dim
    [[8, 1, 64, 34], [7, 1, 34]],
  ])('Elementwise x %j, b %j: Sigmoid(x + b) * x / (1 + |b|), then Softmax', async (xs, bs) => {
    const m = buildModel({
      nodes: [
        { op: 'Add', inputs: ['x', 'b'], outputs: ['a'] },
        { op: 'Sigmoid', inputs: ['a'], outputs: ['c'] },
        { op: 'Mul', inputs: ['c', 'x'], outputs: ['e'] },
        { op: 'Abs', inputs: ['b'], outputs: ['ab'] },
        { op: 'Add', inputs: ['ab', 'one'], outputs: ['ab1'] },
        { op: 'Div', inputs: ['e', 'ab1'], outputs: ['f'] },
        { op: 'Softmax', inputs: ['f'], outputs: ['y'], attrs: { axis: -1 } },
      ],
      inputs: [{ name: 'x', dims: xs }, { name: 'b', dims: bs }],
      outputs: [{ name: 'y' }],
      initializers: [{ name: 'one', dims: [], floats: [1] }],
    });
    await expectFp16Rule(m, { x: f32(xs), b: f32(bs) }, ['Elementwise']);
  });

  test('models/bert-tiny-ts.onnx in fp16: Attention and Elementwise on cuda', async () => {
    const file = path.join(__dirname, '..', '..', 'models', 'bert-tiny-ts.onnx');
    const SEQ = 16;
    const ids = new BigInt64Array(SEQ);
    const mask = new BigInt64Array(SEQ);
    for (let i = 0; i < SEQ; i++) {
      ids[i] = BigInt(Math.floor(rnd() * 1000));
      mask[i] = i < SEQ - 5 ? 1n : 0n;
    }
    const feeds = { input_ids: new Tensor('int64', ids, [1, SEQ]), attention_mask: new Tensor('int64', mask, [1, SEQ]) };
    await expectFp16Rule(new Uint8Array(fs.readFileSync(file)), feeds, ['Attention', 'Elementwise']);
  });

  test("the fp16 guard takes calibration feeds as its samples: bert-tiny's attention stays fp16 on an unpadded mask, and is pinned on the generated one (every key masked)", async () => {
    const file = path.join(__dirname, '..', '..', 'models', 'bert-tiny-ts.onnx');
    const model = new Uint8Array(fs.readFileSync(file));
    const SEQ = 16;
    const feed = {
      input_ids: new Tensor('int64', BigInt64Array.from({ length: SEQ }, (_, i) => BigInt(1 + ((i * 7) % 50))), [1, SEQ]),
      attention_mask: new Tensor('int64', new BigInt64Array(SEQ).fill(1n), [1, SEQ]),
    };
    const generated = await compile(model, { device: 'cuda', precision: 'fp16' });
    const sampled = await compile(model, { device: 'cuda', precision: 'fp16', calibration: [feed] });
    try {
      expect(generated.report.precisionGuard!.pinned.length).toBeGreaterThan(0);
      expect(sampled.report.precisionGuard!.pinned).toEqual([]);
      // a malformed feed is the user's error, named
      await expect(compile(model, { device: 'cuda', precision: 'fp16', calibration: [{ input_ids: feed.input_ids }] })).rejects.toThrow(/calibration feed 0: input 'attention_mask' is missing/);
    } finally {
      generated.dispose();
      sampled.dispose();
    }
  });
});
