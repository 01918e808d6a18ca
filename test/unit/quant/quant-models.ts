/**
 * Models for the int8 tests, built with the onnx builders: a small float CNN (for calibration) and an
 * explicitly quantized one in onnxruntime's QDQ style (uint8 activations with zero points, int8
 * per-channel weights, int32 biases behind DequantizeLinear).
 */
import { InitSpec, NodeSpec, buildModel } from '../../helpers/model-builder';
import { rng } from '../ops/tactic-helpers';

const ONNX = { FLOAT: 1, UINT8: 2, INT8: 3, INT32: 6 } as const;

/** He-scaled random weights. */
function weights(n: number, fanIn: number, r: () => number): number[] {
  const s = Math.sqrt(2 / fanIn);
  return Array.from({ length: n }, () => (r() * 2 - 1) * s * Math.sqrt(3));
}

/**
 * x [1,3,16,16] → Conv 3→8 3x3 + bias → Relu → Conv 8→8 3x3 stride 2 + bias → Relu → Conv 8→8 1x1
 * + Add(residual) → Relu → GlobalAveragePool → Flatten → Gemm 8→10 (transB) → y [1,10].
 */
export function smallCnn(seed = 3): Uint8Array {
  const r = rng(seed);
  const init = (name: string, dims: number[], fanIn: number): InitSpec => ({ name, dims, floats: weights(dims.reduce((a, b) => a * b, 1), fanIn, r) });
  const bias = (name: string, n: number): InitSpec => ({ name, dims: [n], floats: Array.from({ length: n }, () => (r() - 0.5) * 0.2) });
  const nodes: NodeSpec[] = [
    { op: 'Conv', name: 'conv1', inputs: ['x', 'w1', 'b1'], outputs: ['c1'], attrs: { pads: [1, 1, 1, 1] } },
    { op: 'Relu', name: 'relu1', inputs: ['c1'], outputs: ['r1'] },
    { op: 'Conv', name: 'conv2', inputs: ['r1', 'w2', 'b2'], outputs: ['c2'], attrs: { pads: [1, 1, 1, 1], strides: [2, 2] } },
    { op: 'Relu', name: 'relu2', inputs: ['c2'], outputs: ['r2'] },
    { op: 'Conv', name: 'conv3', inputs: ['r2', 'w3', 'b3'], outputs: ['c3'] },
    { op: 'Add', name: 'add', inputs: ['c3', 'r2'], outputs: ['s3'] },
    { op: 'Relu', name: 'relu3', inputs: ['s3'], outputs: ['r3'] },
    { op: 'GlobalAveragePool', name: 'gap', inputs: ['r3'], outputs: ['p'] },
    { op: 'Flatten', name: 'flat', inputs: ['p'], outputs: ['f'] },
    { op: 'Gemm', name: 'fc', inputs: ['f', 'wf', 'bf'], outputs: ['y'], attrs: { transB: 1 } },
  ];
  return buildModel({
    nodes,
    inputs: [{ name: 'x', dims: [1, 3, 16, 16] }],
    outputs: [{ name: 'y', dims: [1, 10] }],
    initializers: [init('w1', [8, 3, 3, 3], 27), bias('b1', 8), init('w2', [8, 8, 3, 3], 72), bias('b2', 8), init('w3', [8, 8, 1, 1], 8), bias('b3', 8), init('wf', [10, 8], 8), bias('bf', 10)],
  });
}

const raw = (a: Int8Array | Uint8Array | Int32Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

/** Per-channel symmetric int8 of w ([C, ...] along axis 0, or [K, N] along axis 1 when `axis` is 1). */
function quantize(w: number[], dims: number[], axis: number): { q: Int8Array; scales: number[] } {
  const C = dims[axis];
  const inner = dims.slice(axis + 1).reduce((a, b) => a * b, 1);
  const amax = new Array(C).fill(0);
  w.forEach((v, i) => {
    const c = Math.floor(i / inner) % C;
    amax[c] = Math.max(amax[c], Math.abs(v));
  });
  const scales = amax.map((a) => Math.fround(a / 127));
  return { q: Int8Array.from(w, (v, i) => Math.max(-127, Math.min(127, Math.round(v / scales[Math.floor(i / inner) % C])))), scales };
}

/**
 * onnxruntime QDQ style: x [1,4,8,8] → Q/DQ (uint8) → Conv 4→8 3x3 (int8 per-channel W, int32 bias) →
 * Relu → Q/DQ → Conv 8→8 3x3 stride 2 → Q/DQ → Reshape [1,128] → Q/DQ → MatMul 128→10 (int8 W per
 * column) + bias → Q/DQ → y [1,10].
 */
export function qdqModel(seed = 5): Uint8Array {
  const r = rng(seed);
  const inits: InitSpec[] = [];
  const nodes: NodeSpec[] = [];
  const f32 = (name: string, dims: number[], v: number[]) => inits.push({ name, dims, floats: v });
  const qdq = (x: string, name: string, scale: number, zp: number) => {
    f32(`${name}_s`, [], [scale]);
    inits.push({ name: `${name}_z`, type: ONNX.UINT8, dims: [], raw: raw(Uint8Array.of(zp)) });
    nodes.push({ op: 'QuantizeLinear', name: `${name}_q`, inputs: [x, `${name}_s`, `${name}_z`], outputs: [`${name}_qv`] });
    nodes.push({ op: 'DequantizeLinear', name: `${name}_dq`, inputs: [`${name}_qv`, `${name}_s`, `${name}_z`], outputs: [`${name}_dqv`] });
    return { out: `${name}_dqv`, scale };
  };
  const weight = (name: string, dims: number[], fanIn: number, axis: number) => {
    const { q, scales } = quantize(weights(dims.reduce((a, b) => a * b, 1), fanIn, r), dims, axis);
    inits.push({ name: `${name}_q`, type: ONNX.INT8, dims, raw: raw(q) });
    f32(`${name}_s`, [scales.length], scales);
    inits.push({ name: `${name}_z`, type: ONNX.INT8, dims: [scales.length], raw: raw(new Int8Array(scales.length)) });
    nodes.push({ op: 'DequantizeLinear', name: `${name}_dq`, inputs: [`${name}_q`, `${name}_s`, `${name}_z`], outputs: [name], attrs: { axis } });
    return scales;
  };
  const intBias = (name: string, n: number, xs: number, ws: number[]) => {
    const b = Int32Array.from({ length: n }, () => Math.round(((r() - 0.5) * 0.2) / (xs * ws[0])));
    inits.push({ name: `${name}_q`, type: ONNX.INT32, dims: [n], raw: raw(b) });
    f32(`${name}_s`, [n], ws.map((w) => Math.fround(xs * w)));
    inits.push({ name: `${name}_z`, type: ONNX.INT32, dims: [n], raw: raw(new Int32Array(n)) });
    nodes.push({ op: 'DequantizeLinear', name: `${name}_dq`, inputs: [`${name}_q`, `${name}_s`, `${name}_z`], outputs: [name], attrs: { axis: 0 } });
  };
  const a0 = qdq('x', 'in', 2 / 255, 128);
  const ws1 = weight('w1', [8, 4, 3, 3], 36, 0);
  intBias('b1', 8, a0.scale, ws1);
  nodes.push({ op: 'Conv', name: 'conv1', inputs: [a0.out, 'w1', 'b1'], outputs: ['c1'], attrs: { pads: [1, 1, 1, 1] } });
  nodes.push({ op: 'Relu', name: 'relu1', inputs: ['c1'], outputs: ['r1'] });
  const a1 = qdq('r1', 'a1', 0.02, 0);
  const ws2 = weight('w2', [8, 8, 3, 3], 72, 0);
  intBias('b2', 8, a1.scale, ws2);
  nodes.push({ op: 'Conv', name: 'conv2', inputs: [a1.out, 'w2', 'b2'], outputs: ['c2'], attrs: { pads: [1, 1, 1, 1], strides: [2, 2] } });
  const a2 = qdq('c2', 'a2', 0.03, 128);
  inits.push({ name: 'shape', type: 7, dims: [2], int64s: [1, 128] });
  nodes.push({ op: 'Reshape', name: 'reshape', inputs: [a2.out, 'shape'], outputs: ['flat'] });
  const a3 = qdq('flat', 'a3', 0.03, 128);
  weight('wm', [128, 10], 128, 1);
  f32('bm', [10], Array.from({ length: 10 }, () => (r() - 0.5) * 0.2));
  nodes.push({ op: 'MatMul', name: 'fc', inputs: [a3.out, 'wm'], outputs: ['m'] });
  nodes.push({ op: 'Add', name: 'fc_bias', inputs: ['m', 'bm'], outputs: ['mb'] });
  const out = qdq('mb', 'out', 0.05, 128);
  nodes.push({ op: 'Identity', name: 'out_id', inputs: [out.out], outputs: ['y'] });
  return buildModel({ nodes, inputs: [{ name: 'x', dims: [1, 4, 8, 8] }], outputs: [{ name: 'y', dims: [1, 10] }], initializers: inits, opset: 13 });
}

/** The output scale of qdqModel (one quantization step of y). */
export const QDQ_OUT_STEP = 0.05;
