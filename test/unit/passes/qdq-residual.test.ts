/**
 * Quantized residuals (src/passes/qdq-fusion.ts): in a calibrated int8 build of a residual CNN, a
 * block's input that is both quantized for the next convolution and added as a residual is read by
 * the residual add in int8 (with the quantizer's scale), and the convolution that makes it writes int8:
 * no QuantizeLinear layer and no float32 tensor is left between the blocks. The engine still matches
 * the fp32 one (cosine >= 0.99), and the CPU int8 epilogue dequantizes the residual as
 * (r - residual_zero_point) * residual_scale. A projection shortcut (a convolution only the add reads,
 * ResNet's downsample) is quantized too: it writes int8 and the add reads it so.
 */
import { Tensor, compile } from '../../../src';
import { buildModel } from '../../helpers/model-builder';
import { rng } from '../ops/tactic-helpers';
import { cosine } from '../../helpers/metrics';

const r = rng(11);
const w = (n: number, fanIn: number) => Array.from({ length: n }, () => (r() * 2 - 1) * Math.sqrt(6 / fanIn));

// x [1,8,10,10] → conv0 + Relu → a; conv1 + Relu → conv2 → c2: the first layers of both models
const C = 8;
const head = [
  { op: 'Conv', name: 'conv0', inputs: ['x', 'w0'], outputs: ['c0'], attrs: { pads: [1, 1, 1, 1] } },
  { op: 'Relu', name: 'relu0', inputs: ['c0'], outputs: ['a'] },
  { op: 'Conv', name: 'conv1', inputs: ['a', 'w1'], outputs: ['c1'], attrs: { pads: [1, 1, 1, 1] } },
  { op: 'Relu', name: 'relu1', inputs: ['c1'], outputs: ['b'] },
  { op: 'Conv', name: 'conv2', inputs: ['b', 'w2'], outputs: ['c2'], attrs: { pads: [1, 1, 1, 1] } },
];
const io = { inputs: [{ name: 'x', dims: [1, C, 10, 10] }], outputs: [{ name: 'y', dims: [1, C, 1, 1] }] };
// a C x C x k x k weight
const weight = (name: string, k: number) => ({ name, dims: [C, C, k, k], floats: w(C * C * k * k, C * k * k) });

// block 1: c2 + a, Relu → c; block 2: conv3, + c, Relu → d → GAP
const model = buildModel({
  nodes: [
    ...head,
    { op: 'Add', name: 'add2', inputs: ['c2', 'a'], outputs: ['s2'] },
    { op: 'Relu', name: 'relu2', inputs: ['s2'], outputs: ['c'] },
    { op: 'Conv', name: 'conv3', inputs: ['c', 'w3'], outputs: ['c3'] },
    { op: 'Add', name: 'add3', inputs: ['c3', 'c'], outputs: ['s3'] },
    { op: 'Relu', name: 'relu3', inputs: ['s3'], outputs: ['d'] },
    { op: 'GlobalAveragePool', name: 'gap', inputs: ['d'], outputs: ['y'] },
  ],
  ...io,
  initializers: [weight('w0', 3), weight('w1', 3), weight('w2', 3), weight('w3', 1)],
});

const feeds = (n: number, seed: number) => {
  const g = rng(seed);
  return Array.from({ length: n }, () => ({ x: new Tensor('float32', Float32Array.from({ length: C * 100 }, () => g() * 2 - 1), [1, C, 10, 10]) }));
};

// The int8 engine of `m` (calibrated on 8 feeds of `seed`) with its layers' signatures by name; after
// `check`, its outputs on 4 held-out feeds match the fp32 engine's (cosine >= 0.99).
async function int8Build(m: Uint8Array, seed: number, check: (layers: { kind: string; name: string; signature: string }[], sig: (name: string) => string) => void) {
  const e = await compile(m, { precision: 'int8', calibration: feeds(8, seed) });
  const ref = await compile(m, {});
  try {
    const layers = e.report.layers;
    check(layers, (name) => layers.find((l) => l.name === name)!.signature);
    for (const f of feeds(4, seed + 6)) {
      const got = (await e.infer(f)).y.data as Float32Array;
      const want = (await ref.infer(f)).y.data as Float32Array;
      expect(cosine(got, want)).toBeGreaterThanOrEqual(0.99);
    }
  } finally {
    e.dispose();
    ref.dispose();
  }
}

test('a residual that is also quantized for the next convolution is read in int8; the blocks pass int8 tensors only', () =>
  int8Build(model, 1, (layers, sig) => {
  // one quantize of the graph input, no other
    expect(layers.map((l) => l.kind)).toEqual(['QuantizeLinear', 'Int8Conv', 'Int8Conv', 'Int8Conv', 'Int8Conv', 'Pool']);
    // the residual adds read int8 tensors; conv0 and conv2 (block outputs) write int8, conv3 float for the pool
    expect(sig('conv2')).toMatch(/\(int8\[1,8,10,10\],int8\[8,8,3,3\]c,-,int8\[1,8,10,10\],\)\(int8\[1,8,10,10\],\)$/);
    expect(sig('conv3')).toMatch(/,int8\[1,8,10,10\],\)\(float32\[1,8,10,10\],\)$/);
    expect(sig('conv0')).toMatch(/\)\(int8\[1,8,10,10\],\)$/);
    expect(sig('conv2')).toMatch(/residual_scale=0\.0\d+/);
  }));

// a projection shortcut: c2 + convd(a) (1x1), Relu → d → conv3 → GAP
const shortcutModel = buildModel({
  nodes: [
    ...head,
    { op: 'Conv', name: 'convd', inputs: ['a', 'wd'], outputs: ['cd'] },
    { op: 'Add', name: 'add2', inputs: ['c2', 'cd'], outputs: ['s2'] },
    { op: 'Relu', name: 'relu2', inputs: ['s2'], outputs: ['d'] },
    { op: 'Conv', name: 'conv3', inputs: ['d', 'w3'], outputs: ['y0'] },
    { op: 'GlobalAveragePool', name: 'gap', inputs: ['y0'], outputs: ['y'] },
  ],
  ...io,
  initializers: [weight('w0', 3), weight('w1', 3), weight('w2', 3), weight('wd', 1), weight('w3', 1)],
});

test('a projection shortcut (a convolution only the residual add reads) is quantized: it writes int8 and the add reads it in int8', () =>
  int8Build(shortcutModel, 3, (layers, sig) => {
    expect(layers.map((l) => l.kind)).toEqual(['QuantizeLinear', 'Int8Conv', 'Int8Conv', 'Int8Conv', 'Int8Conv', 'Int8Conv', 'Pool']);
    // one of conv2 / convd takes the add as its epilogue and reads the other's int8 output as its residual
    const [fused, shortcut] = /residual_scale/.test(sig('conv2')) ? ['conv2', 'convd'] : ['convd', 'conv2'];
    expect(sig(fused)).toMatch(/,int8\[1,8,10,10\],\)\(int8\[1,8,10,10\],\)$/);
    expect(sig(fused)).toMatch(/residual_scale=0\.0\d+/);
    expect(sig(shortcut)).toMatch(/\)\(int8\[1,8,10,10\],\)$/);
  }));
