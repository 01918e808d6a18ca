#!/usr/bin/env node
// Writes the bundled demo model models/demo/model.onnx (a small CNN: Conv, Relu, MaxPool, Conv, Relu,
// AveragePool, GlobalAveragePool, Flatten, Gemm, Softmax on a 1x3x32x32 image) with deterministic
// weights from a seeded PRNG, and models/demo/reference.json: a seeded input and the output that
// onnxruntime-node computes for it (the demo compares kiln's output with it).
// Usage: node scripts/make-demo-model.js   (re-running gives byte-identical files)
'use strict';
const fs = require('fs');
const path = require('path');
const { onnx } = require('onnx-proto');

const dir = path.join(__dirname, '..', 'models', 'demo');
const FLOAT = onnx.TensorProto.DataType.FLOAT;

// mulberry32, the same generator as src/cli/inputs.ts
function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const rand = prng(20240601);
const uniform = (n, scale) => Array.from({ length: n }, () => Math.fround((rand() * 2 - 1) * scale));

function init(name, dims, fanIn) {
  const n = dims.reduce((a, b) => a * b, 1);
  return { name, dims, dataType: FLOAT, floatData: uniform(n, Math.sqrt(6 / fanIn)) };
}
const valueInfo = (name, dims) => ({ name, type: { tensorType: { elemType: FLOAT, shape: { dim: dims.map((d) => ({ dimValue: d })) } } } });
const ints = (name, v) => ({ name, type: onnx.AttributeProto.AttributeType.INTS, ints: v });
const int = (name, v) => ({ name, type: onnx.AttributeProto.AttributeType.INT, i: v });
const float = (name, v) => ({ name, type: onnx.AttributeProto.AttributeType.FLOAT, f: v });

const C1 = 8;
const C2 = 16;
const CLASSES = 10;
const graph = {
  name: 'kiln_demo_cnn',
  node: [
    { name: 'conv1', opType: 'Conv', input: ['image', 'conv1.w', 'conv1.b'], output: ['c1'], attribute: [ints('kernel_shape', [3, 3]), ints('pads', [1, 1, 1, 1])] },
    { name: 'relu1', opType: 'Relu', input: ['c1'], output: ['r1'] },
    { name: 'pool1', opType: 'MaxPool', input: ['r1'], output: ['p1'], attribute: [ints('kernel_shape', [2, 2]), ints('strides', [2, 2])] },
    { name: 'conv2', opType: 'Conv', input: ['p1', 'conv2.w', 'conv2.b'], output: ['c2'], attribute: [ints('kernel_shape', [3, 3]), ints('pads', [1, 1, 1, 1]), ints('strides', [1, 1])] },
    { name: 'relu2', opType: 'Relu', input: ['c2'], output: ['r2'] },
    { name: 'pool2', opType: 'AveragePool', input: ['r2'], output: ['p2'], attribute: [ints('kernel_shape', [2, 2]), ints('strides', [2, 2])] },
    { name: 'gap', opType: 'GlobalAveragePool', input: ['p2'], output: ['g'] },
    { name: 'flatten', opType: 'Flatten', input: ['g'], output: ['f'], attribute: [int('axis', 1)] },
    { name: 'fc', opType: 'Gemm', input: ['f', 'fc.w', 'fc.b'], output: ['logits'], attribute: [int('transB', 1), float('alpha', 1), float('beta', 1)] },
    { name: 'softmax', opType: 'Softmax', input: ['logits'], output: ['probs'], attribute: [int('axis', -1)] },
  ],
  initializer: [
    init('conv1.w', [C1, 3, 3, 3], 27),
    init('conv1.b', [C1], 27),
    init('conv2.w', [C2, C1, 3, 3], C1 * 9),
    init('conv2.b', [C2], C1 * 9),
    init('fc.w', [CLASSES, C2], C2),
    init('fc.b', [CLASSES], C2),
  ],
  input: [valueInfo('image', [1, 3, 32, 32])],
  output: [valueInfo('probs', [1, CLASSES])],
};
const model = { irVersion: 8, opsetImport: [{ domain: '', version: 17 }], producerName: 'kiln scripts/make-demo-model.js', graph };

async function main() {
  fs.mkdirSync(dir, { recursive: true });
  const bytes = onnx.ModelProto.encode(model).finish();
  fs.writeFileSync(path.join(dir, 'model.onnx'), bytes);
  const input = { name: 'image', dims: [1, 3, 32, 32], seed: 7 };
  const r = prng(input.seed);
  const data = Float32Array.from({ length: 3 * 32 * 32 }, () => r() * 2 - 1);
  const ort = require('onnxruntime-node');
  const session = await ort.InferenceSession.create(bytes);
  const out = await session.run({ image: new ort.Tensor('float32', data, input.dims) });
  const probs = out.probs;
  const reference = {
    about: 'Output of onnxruntime-node for models/demo/model.onnx on the seeded input (src/cli/inputs.ts prng(seed) * 2 - 1, row-major).',
    producer: `onnxruntime-node ${require('onnxruntime-node/package.json').version}`,
    input,
    outputs: { probs: { dims: [...probs.dims], data: Array.from(probs.data) } },
    tolerance: { rtol: 1e-4, atol: 1e-5 },
  };
  fs.writeFileSync(path.join(dir, 'reference.json'), JSON.stringify(reference, null, 2) + '\n');
  process.stdout.write(`wrote ${path.relative(process.cwd(), dir)}/model.onnx (${bytes.length} bytes) and reference.json\n`);
}

main().catch((e) => {
  process.stderr.write(`make-demo-model: ${e.stack || e}\n`);
  process.exit(1);
});
