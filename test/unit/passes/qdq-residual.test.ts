/**
 * Quantized residuals (src/passes/qdq-fusion.ts): in a calibrated int8 build of a residual CNN, a
 * block's input that is both quantized for the next convolution and added as a residual is read by
 * the residual add in int8 (with the quantizer's scale), and the convolution that makes it writes int8:
 * no QuantizeLinear layer and no float32 tensor is left between the blocks. The engine still matches
 * the fp32 one (cosine >= 0.99), and the CPU int8 epilogue dequantizes the residual as
 * (r - residual_zero_point) * residual_scale.
 */
import { Tensor, compile } from '../../../src';
import { buildModel } from '../../helpers/model-builder';
import { rng } from '../ops/tactic-helpers';
import { cosine } from '../../helpers/metrics';

const r = rng(11);
const w = (n: number, fanIn: number) => Array.from({ length: n }, () => (r() * 2 - 1) * Math.sqrt(6 / fanIn));

// x [1,8,10,10] → conv0 + Relu → a; block 1: conv1 + Relu → conv2, + a, Relu → c; block 2: conv3, + c, Relu → d → GAP
const C = 8;
const model = buildModel({
  nodes: [
    { op: 'Conv', name: 'conv0', inputs: ['x', 'w0'], outputs: ['c0'], attrs: { pads: [1, 1, 1, 1] } },
    { op: 'Relu', name: 'relu0', inputs: ['c0'], outputs: ['a'] },
    { op: 'Conv', name: 'conv1', inputs: ['a', 'w1'], outputs: ['c1'], attrs: { pads: [1, 1, 1, 1] } },
    { op: 'Relu', name: 'relu1', inputs: ['c1'], outputs: ['b'] },
    { op: 'Conv', name: 'conv2', inputs: ['b', 'w2'], outputs: ['c2'], attrs: { pads: [1, 1, 1, 1] } },
    { op: 'Add', name: 'add2', inputs: ['c2', 'a'], outputs: ['s2'] },
    { op: 'Relu', name: 'relu2', inputs: ['s2'], outputs: ['c'] },
    { op: 'Conv', name: 'conv3', inputs: ['c', 'w3'], outputs: ['c3'] },
    { op: 'Add', name: 'add3', inputs: ['c3', 'c'], outputs: ['s3'] },
    { op: 'Relu', name: 'relu3', inputs: ['s3'], outputs: ['d'] },
    { op: 'GlobalAveragePool', name: 'gap', inputs: ['d'], outputs: ['y'] },
  ],
  inputs: [{ name: 'x', dims: [1, C, 10, 10] }],
  outputs: [{ name: 'y', dims: [1, C, 1, 1] }],
  initializers: [
    { name: 'w0', dims: [C, C, 3, 3], floats: w(C * C * 9, C * 9) },
    { name: 'w1', dims: [C, C, 3, 3], floats: w(C * C * 9, C * 9) },
    { name: 'w2', dims: [C, C, 3, 3], floats: w(C * C * 9, C * 9) },
    { name: 'w3', dims: [C, C, 1, 1], floats: w(C * C, C) },
  ],
});

const feeds = (n: number, seed: number) => {
  const g = rng(seed);
  return Array.from({ length: n }, () => ({ x: new Tensor('float32', Float32Array.from({ length: C * 100 }, () => g() * 2 - 1), [1, C, 10, 10]) }));
};

test('a residual that is also quantized for the next convolution is read in int8; the blocks pass int8 tensors only', async () => {
  const e = await compile(model, { precision: 'int8', calibration: feeds(8, 1) });
  const layers = e.report.layers;
  // one quantize of the graph input, no other
  expect(layers.map((l) => l.kind)).toEqual(['QuantizeLinear', 'Int8Conv', 'Int8Conv', 'Int8Conv', 'Int8Conv', 'Pool']);
  const sig = (name: string) => layers.find((l) => l.name === name)!.signature;
  // the residual adds read int8 tensors; conv0 and conv2 (block outputs) write int8, conv3 float for the pool
  expect(sig('conv2')).toMatch(/\(int8\[1,8,10,10\],int8\[8,8,3,3\]c,-,int8\[1,8,10,10\],\)\(int8\[1,8,10,10\],\)$/);
  expect(sig('conv3')).toMatch(/,int8\[1,8,10,10\],\)\(float32\[1,8,10,10\],\)$/);
  expect(sig('conv0')).toMatch(/\)\(int8\[1,8,10,10\],\)$/);
  expect(sig('conv2')).toMatch(/residual_scale=0\.0\d+/);
  const ref = await compile(model, {});
  for (const f of feeds(4, 7)) {
    const got = (await e.infer(f)).y.data as Float32Array;
    const want = (await ref.infer(f)).y.data as Float32Array;
    expect(cosine(got, want)).toBeGreaterThanOrEqual(0.99);
  }
  e.dispose();
  ref.dispose();
});

// a projection shortcut: x → conv0 + Relu → a; conv1 + Relu → conv2, + convd(a) (1x1), Relu → d → conv3 → GAP
const shortcutModel = buildModel({
  nodes: [
    { op: 'Conv', name: 'conv0', inputs: ['x', 'w0'], outputs: ['c0'], attrs: { pads: [1, 1, 1, 1] } },
    { op: 'Relu', name: 'relu0', inputs: ['c0'], outputs: ['a'] },
    { op: 'Conv', name: 'conv1', inputs: ['a', 'w1'], outputs: ['c1'], attrs: { pads: [1, 1, 1, 1] } },
    { op: 'Relu', name: 'relu1', inputs: ['c1'], outputs: ['b'] },
    { op: 'Conv', name: 'conv2', inputs: ['b', 'w2'], outputs: ['c2'], attrs: { pads: [1, 1, 1, 1] } },
    { op: 'Conv', name: 'convd', inputs: ['a', 'wd'], outputs: ['cd'] },
    { op: 'Add', name: 'add2', inputs: ['c2', 'cd'], outputs: ['s2'] },
    { op: 'Relu', name: 'relu2', inputs: ['s2'], outputs: ['d'] },
    { op: 'Conv', name: 'conv3', inputs: ['d', 'w3'], outputs: ['y0'] },
    { op: 'GlobalAveragePool', name: 'gap', inputs: ['y0'], outputs: ['y'] },
  ],
  inputs: [{ name: 'x', dims: [1, C, 10, 10] }],
  outputs: [{ name: 'y', dims: [1, C, 1, 1] }],
  initializers: [
    { name: 'w0', dims: [C, C, 3, 3], floats: w(C * C * 9, C * 9) },
    { name: 'w1', dims: [C, C, 3, 3], floats: w(C * C * 9, C * 9) },
    { name: 'w2', dims: [C, C, 3, 3], floats: w(C * C * 9, C * 9) },
    { name: 'wd', dims: [C, C, 1, 1], floats: w(C * C, C) },
    { name: 'w3', dims: [C, C, 1, 1], floats: w(C * C, C) },
  ],
});

test('a projection shortcut (a convolution only the residual add reads) is quantized: it writes int8 and the add reads it in int8', async () => {
  const e = await compile(shortcutModel, { precision: 'int8', calibration: feeds(8, 3) });
  const layers = e.report.layers;
  expect(layers.map((l) => l.kind)).toEqual(['QuantizeLinear', 'Int8Conv', 'Int8Conv', 'Int8Conv', 'Int8Conv', 'Int8Conv', 'Pool']);
  const sig = (name: string) => layers.find((l) => l.name === name)!.signature;
  // one of conv2 / convd takes the add as its epilogue and reads the other's int8 output as its residual
  const [fused, shortcut] = /int8\[1,8,10,10\],\)\(/.test(sig('conv2')) && /residual_scale/.test(sig('conv2')) ? ['conv2', 'convd'] : ['convd', 'conv2'];
  expect(sig(fused)).toMatch(/,int8\[1,8,10,10\],\)\(int8\[1,8,10,10\],\)$/);
  expect(sig(fused)).toMatch(/residual_scale=0\.0\d+/);
  expect(sig(shortcut)).toMatch(/\)\(int8\[1,8,10,10\],\)$/);
  const ref = await compile(shortcutModel, {});
  for (const f of feeds(4, 9)) {
    const got = (await e.infer(f)).y.data as Float32Array;
    const want = (await ref.infer(f)).y.data as Float32Array;
    expect(cosine(got, want)).toBeGreaterThanOrEqual(0.99);
  }
  e.dispose();
  ref.dispose();
});
