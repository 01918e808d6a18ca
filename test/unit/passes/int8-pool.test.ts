/**
 * int8 max pooling: in a calibrated build the quantize after a MaxPool moves in front of it (the pool
 * runs on int8 values and the conv before it writes int8), and an explicitly quantized
 * DequantizeLinear → MaxPool → QuantizeLinear with one scale and zero point becomes a pool of the int8
 * tensor; both give what the float pool gives (quantization is monotonic).
 */
import { Tensor, compile } from '../../../src';
import { buildModel } from '../../helpers/model-builder';
import { rng } from '../ops/tactic-helpers';

const r = rng(5);
const w = (n: number, fanIn: number) => Array.from({ length: n }, () => (r() * 2 - 1) * Math.sqrt(6 / fanIn));

// x [1,3,12,12] → Conv 3→8 + Relu → MaxPool 2x2 → Conv 8→8 + Relu → GlobalAveragePool → y
const cnn = buildModel({
  nodes: [
    { op: 'Conv', name: 'conv1', inputs: ['x', 'w1'], outputs: ['c1'], attrs: { pads: [1, 1, 1, 1] } },
    { op: 'Relu', name: 'relu1', inputs: ['c1'], outputs: ['r1'] },
    { op: 'MaxPool', name: 'pool', inputs: ['r1'], outputs: ['p'], attrs: { kernel_shape: [2, 2], strides: [2, 2] } },
    { op: 'Conv', name: 'conv2', inputs: ['p', 'w2'], outputs: ['c2'], attrs: { pads: [1, 1, 1, 1] } },
    { op: 'Relu', name: 'relu2', inputs: ['c2'], outputs: ['r2'] },
    { op: 'GlobalAveragePool', name: 'gap', inputs: ['r2'], outputs: ['y'] },
  ],
  inputs: [{ name: 'x', dims: [1, 3, 12, 12] }],
  outputs: [{ name: 'y', dims: [1, 8, 1, 1] }],
  initializers: [
    { name: 'w1', dims: [8, 3, 3, 3], floats: w(216, 27) },
    { name: 'w2', dims: [8, 8, 3, 3], floats: w(576, 72) },
  ],
});

const feeds = (n: number, seed: number) => {
  const g = rng(seed);
  return Array.from({ length: n }, () => ({ x: new Tensor('float32', Float32Array.from({ length: 432 }, () => g() * 2 - 1), [1, 3, 12, 12]) }));
};
const CALIB = feeds(8, 1);

test('calibrated build: the pool runs on int8 values, the conv before it writes int8, no quantize layer between', async () => {
  const on = await compile(cnn, { precision: 'int8', calibration: CALIB });
  const off = await compile(cnn, { precision: 'int8', calibration: CALIB, optimize: { 'int8-pool': false } });
  expect(on.report.passes.find((p) => p.name === 'int8-pool')).toMatchObject({ changed: 1, nodes: ['pool'] });
  const kinds = (e: typeof on) => e.report.layers.map((l) => `${l.kind}:${l.precision}`);
  expect(kinds(off)).toEqual(['QuantizeLinear:fp32', 'Int8Conv:int8', 'Pool:fp32', 'QuantizeLinear:fp32', 'Int8Conv:int8', 'Pool:fp32']);
  expect(kinds(on)).toEqual(['QuantizeLinear:fp32', 'Int8Conv:int8', 'Pool:int8', 'Int8Conv:int8', 'Pool:fp32']);
  // the same numbers: max of quantized values = quantized max
  for (const f of feeds(3, 9)) expect(Array.from((await on.infer(f)).y.data as Float32Array)).toEqual(Array.from((await off.infer(f)).y.data as Float32Array));
  on.dispose();
  off.dispose();
});

// x → Q(s, z) → DQ(s, z) → MaxPool → Q(s, z) → DQ(s, z) → y, uint8 with a zero point (ONNX Runtime's style)
const qdq = buildModel({
  nodes: [
    { op: 'QuantizeLinear', name: 'q0', inputs: ['x', 's', 'z'], outputs: ['xq'] },
    { op: 'DequantizeLinear', name: 'dq0', inputs: ['xq', 's', 'z'], outputs: ['xf'] },
    { op: 'MaxPool', name: 'pool', inputs: ['xf'], outputs: ['p'], attrs: { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] } },
    { op: 'QuantizeLinear', name: 'q1', inputs: ['p', 's', 'z'], outputs: ['pq'] },
    { op: 'DequantizeLinear', name: 'dq1', inputs: ['pq', 's', 'z'], outputs: ['y'] },
  ],
  inputs: [{ name: 'x', dims: [1, 4, 9, 9] }],
  outputs: [{ name: 'y', dims: [1, 4, 5, 5] }],
  initializers: [
    { name: 's', dims: [], floats: [0.02] },
    { name: 'z', dims: [], type: 2, raw: Uint8Array.of(128) },
  ],
});

test('explicit Q/DQ: DequantizeLinear → MaxPool → QuantizeLinear with one scale and zero point pools the uint8 tensor', async () => {
  const g = rng(4);
  const x = new Tensor('float32', Float32Array.from({ length: 324 }, () => (g() * 2 - 1) * 3), [1, 4, 9, 9]);
  const on = await compile(qdq, { precision: 'int8' });
  const off = await compile(qdq, { precision: 'int8', optimize: { 'int8-pool': false } });
  expect(on.report.passes.find((p) => p.name === 'int8-pool')).toMatchObject({ changed: 1 });
  expect(on.report.layers.map((l) => l.kind)).toEqual(['QuantizeLinear', 'Pool', 'DequantizeLinear']);
  expect(on.report.layers.find((l) => l.kind === 'Pool')!.fusedFrom.sort()).toEqual(['dq0', 'pool', 'q1']);
  expect(Array.from((await on.infer({ x })).y.data as Float32Array)).toEqual(Array.from((await off.infer({ x })).y.data as Float32Array));
  on.dispose();
  off.dispose();
});
