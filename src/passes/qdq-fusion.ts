/**
 * Q/DQ fusion (int8 builds; after epilogue fusion): the dequantize → float layer → quantize chains of an
 * explicitly quantized model — or of the Q/DQ pairs calibration inserted (src/quant/insert-qdq.ts) —
 * become int8 layers that read the quantized tensors directly.
 * Before: xq → DequantizeLinear(x_scale, x_zp) → P → [QuantizeLinear(y_scale, y_zp) → yq]
 *         P = Conv | Gemm | MatMul, with the bias, residual and activation epilogue-fusion gave it, and
 *         its weight either DequantizeLinear(wq int8 constant, w_scale, zero point 0) or a float constant
 *         that import folded from such a node (named in `folded`).
 * After:  kiln:Int8Conv | kiln:Int8Gemm (src/ops/int8-conv.ts, int8-gemm.ts) reading xq, int8 weights
 *         (Gemm/MatMul weights transposed to [N, K]) and the float bias/residual, writing yq when a
 *         QuantizeLinear was fused, else P's float output. Dequantize nodes nothing reads any more go.
 *         Quantized residuals: a residual r that a per-tensor QuantizeLinear q also reads (a ResNet
 *         block's input, quantized for the next convolution) is read as q's int8 output with q's scale
 *         (attributes residual_scale, residual_zero_point), as TensorRT's int8 residual adds do; an int8
 *         layer whose float output is then read by q alone writes q's output itself. A block's output
 *         then stays int8 end to end instead of being written in float32 and read back twice. So
 *         does a projection shortcut (ResNet's downsample convolution, read by the block's last
 *         convolution alone) that calibration quantized (src/quant/insert-qdq.ts). Otherwise only
 *         after a ReLU: a linear residual stream (MobileNetV2's bottlenecks) stays float, as its
 *         quantization error (entropy calibration clips it) compounds over the blocks (mobilenet_v2
 *         int8 cosine 0.85 instead of 0.93 on test/models' held-out images).
 * Handles: activations int8/uint8 with one scale and zero point; weights int8, symmetric, one scale per
 *          output channel or per tensor; Conv in the default layout; Gemm with transA 0, alpha 1 and a
 *          constant C of N elements; MatMul with a 2-D constant weight and rank >= 2 activations; the
 *          QuantizeLinear only when it is P's single reader. Anything else stays as it is (Q/DQ layers
 *          run as ordinary layers). Layers named in `skip` are left in float (accuracy guard, pins).
 */
import { DataType } from '../dtype';
import { AttrValue, Graph, Node, Value, lookupValue } from '../ir/graph';
import { getOp, makeContext, nativeOps, numbersOf } from '../ops/registry';
import { Uses } from './match';
import { Pass, PassResult } from './pass';

/** An int8 weight as the model (or calibration) quantized it. axis -1: one scale for the tensor. */
export interface QuantizedWeight {
  data: Int8Array;
  shape: number[];
  scales: number[];
  axis: number;
}

export interface QdqFusionOptions {
  /** Layer (node) names to leave in float. */
  skip?: ReadonlySet<string>;
  /** Float weight constants import folded from DequantizeLinear nodes, by value name. */
  folded?: ReadonlyMap<string, QuantizedWeight>;
}

const Q8 = [DataType.INT8, DataType.UINT8];

/** The constant contents of a value as numbers, or undefined. */
function constOf(g: Graph, name: string | undefined): { v: Value; n: number[] } | undefined {
  const v = name ? lookupValue(g, name) : undefined;
  return v?.data ? { v, n: numbersOf(v.dtype, v.data) } : undefined;
}

/** The scale and zero point of a per-tensor (de)quantize node, or undefined. */
function perTensor(g: Graph, n: Node): { scale: number; zp: number; type: DataType } | undefined {
  const s = constOf(g, n.inputs[1]);
  if (!s || s.n.length !== 1 || !(s.n[0] > 0) || !Number.isFinite(s.n[0])) return undefined;
  const z = n.inputs[2] ? constOf(g, n.inputs[2]) : undefined;
  if (n.inputs[2] && (!z || z.n.length !== 1)) return undefined;
  const type = z ? z.v.dtype : n.opType === 'QuantizeLinear' ? DataType.UINT8 : lookupValue(g, n.inputs[0])!.dtype;
  if (!Q8.includes(type)) return undefined;
  return { scale: s.n[0], zp: z ? z.n[0] : 0, type };
}

/** The int8 weight behind value `name`: a DequantizeLinear of int8 constants, or a folded one. */
export function weightOf(g: Graph, u: Uses, name: string, folded?: ReadonlyMap<string, QuantizedWeight>): QuantizedWeight | undefined {
  const dq = u.producedBy(name, 'DequantizeLinear');
  if (!dq) return folded?.get(name);
  return dequantizedWeight(g, dq);
}

/** The int8 weight a DequantizeLinear node of constants stands for (symmetric int8 only). */
export function dequantizedWeight(g: Graph, dq: Node): QuantizedWeight | undefined {
  const x = lookupValue(g, dq.inputs[0]);
  const s = constOf(g, dq.inputs[1]);
  if (!x?.data || x.dtype !== DataType.INT8 || !s || !x.shape || dq.attrs.has('block_size')) return undefined;
  if (s.n.some((k) => !(k > 0) || !Number.isFinite(k))) return undefined;
  if (dq.inputs[2]) {
    const z = constOf(g, dq.inputs[2]);
    if (!z || z.n.some((k) => k !== 0)) return undefined;
  }
  const shape = x.shape as number[];
  let axis = -1;
  // one scale (a scalar or a 1-element axis) is per tensor
  if (s.n.length > 1) {
    const a = dq.attrs.get('axis');
    axis = a?.type === 'int' ? a.value : 1;
    if (axis < 0) axis += shape.length;
    if (shape[axis] !== s.n.length) return undefined;
  }
  return { data: x.data as Int8Array, shape, scales: s.n, axis };
}

/** A weight's scales for `channels` output channels along `axis`, or undefined when it is quantized otherwise. */
function channelScales(w: QuantizedWeight, axis: number, channels: number): number[] | undefined {
  if (w.axis === -1) return [w.scales[0]];
  return w.axis === axis && w.scales.length === channels ? w.scales : undefined;
}

/** [K, N] int8 → [N, K]. */
function transposeInt8(d: Int8Array, K: number, N: number): Int8Array {
  const t = new Int8Array(K * N);
  for (let k = 0; k < K; k++) for (let n = 0; n < N; n++) t[n * K + k] = d[k * N + n];
  return t;
}

const shapeOf = (g: Graph, name: string): number[] | undefined => {
  const s = lookupValue(g, name)?.shape;
  return s && s.every((d) => typeof d === 'number') ? (s as number[]) : undefined;
};

interface Plan8 {
  opType: 'Int8Conv' | 'Int8Gemm';
  weight: { name: string; data: Int8Array; shape: number[] };
  scales: number[];
  bias?: string;
  attrs: [string, AttrValue][];
}

/** How P becomes an int8 layer (weights, bias, geometry), or undefined when it cannot. */
function planFor(g: Graph, u: Uses, p: Node, folded?: ReadonlyMap<string, QuantizedWeight>): Plan8 | undefined {
  const w = weightOf(g, u, p.inputs[1], folded);
  const xs = shapeOf(g, p.inputs[0]);
  if (!w || !xs) return undefined;
  const wname = `${p.name}__w_int8`;
  if (p.opType === 'Conv') {
    const scales = channelScales(w, 0, w.shape[0]);
    if (!scales) return undefined;
    const inputs = p.inputs.map((n) => (n ? lookupValue(g, n) : undefined));
    const op = nativeOps(getOp('', 'Conv')!, makeContext(p, g, g.opsets.get('') ?? 1, inputs))[0];
    if (op.attrs.channels_last && op.attrs.channels_last.v) return undefined;
    const attrs: [string, AttrValue][] = [];
    for (const k of ['group', 'strides', 'dilations', 'pads'] as const) {
      const a = op.attrs[k];
      attrs.push([k, a.t === 'i' ? { type: 'int', value: a.v as number } : { type: 'ints', value: a.v as number[] }]);
    }
    return { opType: 'Int8Conv', weight: { name: wname, data: w.data, shape: w.shape }, scales, bias: p.inputs[2] || undefined, attrs };
  }
  if (w.shape.length !== 2 || xs.length < 2) return undefined;
  let [K, N] = w.shape;
  let transB = false;
  let bias = p.inputs[2] || undefined;
  if (p.opType === 'Gemm') {
    const i = (k: string, d: number) => (p.attrs.get(k)?.type === 'int' ? (p.attrs.get(k)!.value as number) : d);
    const f = (k: string, d: number) => {
      const a = p.attrs.get(k);
      return a?.type === 'float' || a?.type === 'int' ? (a.value as number) : d;
    };
    if (i('transA', 0) !== 0 || f('alpha', 1) !== 1) return undefined;
    transB = i('transB', 0) !== 0;
    if (transB) [N, K] = w.shape;
    if (bias) {
      const c = constOf(g, bias);
      const beta = f('beta', 1);
      if (!c || c.v.dtype !== DataType.FLOAT || c.n.length !== N || (c.v.shape ?? []).some((d, k, s) => k < s.length - 1 && d !== 1)) return undefined;
      if (beta !== 1) {
        bias = `${p.name}__bias_beta`;
        g.values.set(bias, { name: bias, dtype: DataType.FLOAT, shape: [N], data: Float32Array.from(c.n, (x) => x * beta) });
      } else if ((c.v.shape ?? []).length !== 1) {
        bias = `${p.name}__bias1d`;
        g.values.set(bias, { name: bias, dtype: DataType.FLOAT, shape: [N], data: Float32Array.from(c.n) });
      }
    }
  } else {
    const b = bias ? constOf(g, bias) : undefined;
    if (bias && (!b || b.v.dtype !== DataType.FLOAT || b.n.length !== N)) return undefined;
  }
  if (xs[xs.length - 1] !== K) return undefined;
  const scales = channelScales(w, transB ? 0 : 1, N);
  if (!scales) return undefined;
  const data = transB ? w.data : transposeInt8(w.data, K, N);
  return { opType: 'Int8Gemm', weight: { name: wname, data, shape: [N, K] }, scales, bias, attrs: [] };
}

/**
 * Whether `name` is a residual this pass reads in int8 when a per-tensor QuantizeLinear also reads it:
 * the residual input of a Conv/Gemm/MatMul (epilogue fusion's) that a ReLU made (a Relu node, or a
 * layer with a fused relu epilogue), or a projection shortcut. Calibration keeps such a tensor's whole
 * range (src/quant/index.ts).
 */
export function int8Residual(g: Graph, name: string, u: Uses = new Uses(g)): boolean {
  return (
    (afterRelu(u, name) && u.readersOf(name).some((n) => n.domain === '' && ['Conv', 'Gemm', 'MatMul'].includes(n.opType) && n.inputs[3] === name)) ||
    projectionShortcut(u, name) !== undefined
  );
}

/**
 * The layer that reads `name` as its residual when `name` is a projection shortcut: the output of a
 * Conv/Gemm/MatMul that only that layer (a Conv/Gemm/MatMul with epilogue fusion's residual input 3)
 * reads, besides QuantizeLinear nodes whose outputs nothing reads yet (ResNet's downsample
 * convolution, added to the block's last convolution). Both stay int8 when it is quantized, as in
 * TensorRT: one hop, not a residual stream (whose blocks' outputs are quantized for the next block).
 */
export function projectionShortcut(u: Uses, name: string): Node | undefined {
  const p = u.producer.get(name);
  if (!p || p.domain !== '' || !['Conv', 'Gemm', 'MatMul'].includes(p.opType) || p.outputs[0] !== name) return undefined;
  const isQ = (n: Node) => n.domain === '' && n.opType === 'QuantizeLinear';
  // a QuantizeLinear whose output something reads quantizes it for another layer (a residual stream)
  if (u.readersOf(name).some((n) => isQ(n) && u.readersOf(n.outputs[0]).length > 0)) return undefined;
  const readers = u.readersOf(name).filter((n) => !isQ(n));
  const r = readers.length === 1 ? readers[0] : undefined;
  return r && r.domain === '' && ['Conv', 'Gemm', 'MatMul'].includes(r.opType) && r.inputs[3] === name && r.inputs[0] !== name ? r : undefined;
}

/** Whether `name` is a ReLU's output (a Relu node, or a layer with a fused relu epilogue). */
function afterRelu(u: Uses, name: string): boolean {
  const p = u.producer.get(name);
  const act = p?.attrs.get('kiln.activation');
  return !!p && ((p.domain === '' && p.opType === 'Relu') || (act?.type === 'string' && act.value === 'relu'));
}

/** The per-tensor QuantizeLinear that reads `name` (the only one that does), with its parameters. */
function quantizerOf(g: Graph, u: Uses, name: string): { q: Node; scale: number; zp: number } | undefined {
  const qs = u.readersOf(name).filter((n) => n.domain === '' && n.opType === 'QuantizeLinear' && n.inputs[0] === name);
  const pt = qs.length === 1 ? perTensor(g, qs[0]) : undefined;
  return pt ? { q: qs[0], scale: pt.scale, zp: pt.zp } : undefined;
}

/** The int8 layers (of `made`) with a float output that one per-tensor QuantizeLinear alone reads write its output instead. */
function foldLoneQuantizers(g: Graph, made: ReadonlySet<Node>): void {
  const u = new Uses(g);
  const removed = new Set<Node>();
  for (const n of made) {
    const out = n.outputs[0];
    if (n.attrs.has('y_scale') || !u.singleUse(out)) continue;
    const q = u.readersOf(out)[0];
    const yq = q.domain === '' && q.opType === 'QuantizeLinear' && q.inputs[0] === out ? perTensor(g, q) : undefined;
    if (!yq) continue;
    const v = lookupValue(g, q.outputs[0])!;
    n.outputs = [q.outputs[0]];
    n.attrs.set('y_scale', { type: 'float', value: yq.scale });
    n.attrs.set('y_zero_point', { type: 'int', value: yq.zp });
    n.attrs.set('kiln.shape', { type: 'ints', value: v.shape as number[] });
    n.attrs.set('kiln.dtype', { type: 'int', value: v.dtype });
    n.origin = [...n.origin, ...q.origin];
    removed.add(q);
  }
  if (removed.size) g.nodes = g.nodes.filter((n) => !removed.has(n));
}

/** Fuses the Q/DQ chains around Conv / Gemm / MatMul into int8 layers. */
export function fuseQdq(g: Graph, options: QdqFusionOptions = {}): PassResult {
  const changed: string[] = [];
  const u = new Uses(g);
  const replaced = new Map<Node, Node>();
  const removed = new Set<Node>();
  const touched = new Set<Node>();
  const outputs = new Set(g.outputs);
  for (const p of g.nodes) {
    if (p.domain !== '' || !['Conv', 'Gemm', 'MatMul'].includes(p.opType) || options.skip?.has(p.name)) continue;
    if (lookupValue(g, p.outputs[0])?.dtype !== DataType.FLOAT) continue;
    const dq = u.producedBy(p.inputs[0], 'DequantizeLinear');
    const xq = dq && perTensor(g, dq);
    if (!dq || !xq) continue;
    const plan = planFor(g, u, p, options.folded);
    if (!plan) continue;
    // the output: a QuantizeLinear that is P's single reader is fused
    const out0 = p.outputs[0];
    const reader = u.singleUse(out0) ? u.readersOf(out0)[0] : undefined;
    const q = reader && reader.domain === '' && reader.opType === 'QuantizeLinear' && reader.inputs[0] === out0 && !outputs.has(out0) ? reader : undefined;
    const yq = q && perTensor(g, q);
    const out = yq ? q!.outputs[0] : out0;
    const outValue = lookupValue(g, out)!;
    g.values.set(plan.weight.name, { name: plan.weight.name, dtype: DataType.INT8, shape: plan.weight.shape, data: plan.weight.data });
    const attrs = new Map<string, AttrValue>([...p.attrs].filter(([k]) => k.startsWith('kiln.')));
    for (const [k, v] of plan.attrs) attrs.set(k, v);
    attrs.set('x_scale', { type: 'float', value: xq.scale });
    attrs.set('x_zero_point', { type: 'int', value: xq.zp });
    attrs.set('w_scales', { type: 'floats', value: plan.scales });
    if (yq) {
      attrs.set('y_scale', { type: 'float', value: yq.scale });
      attrs.set('y_zero_point', { type: 'int', value: yq.zp });
    }
    // a residual that a per-tensor QuantizeLinear also reads is taken quantized (after a ReLU, or a
    // projection shortcut)
    const rq = p.inputs[3] && (afterRelu(u, p.inputs[3]) || projectionShortcut(u, p.inputs[3]) === p) ? quantizerOf(g, u, p.inputs[3]) : undefined;
    if (rq) {
      attrs.set('residual_scale', { type: 'float', value: rq.scale });
      attrs.set('residual_zero_point', { type: 'int', value: rq.zp });
    }
    attrs.set('kiln.shape', { type: 'ints', value: outValue.shape as number[] });
    attrs.set('kiln.dtype', { type: 'int', value: outValue.dtype });
    const n: Node = {
      name: p.name,
      opType: plan.opType,
      domain: 'kiln',
      inputs: [dq.inputs[0], plan.weight.name, plan.bias ?? '', rq ? rq.q.outputs[0] : (p.inputs[3] ?? '')],
      outputs: [out],
      attrs,
      origin: [...p.origin, ...(q ? q.origin : [])],
    };
    replaced.set(p, n);
    if (q) removed.add(q);
    touched.add(dq);
    const wdq = u.producedBy(p.inputs[1], 'DequantizeLinear');
    if (wdq) touched.add(wdq);
    changed.push(p.name);
  }
  if (!changed.length) return { changed };
  g.nodes = g.nodes.filter((n) => !removed.has(n)).map((n) => replaced.get(n) ?? n);
  foldLoneQuantizers(g, new Set(replaced.values()));
  // dequantize nodes whose readers were all fused
  const read = new Set<string>(g.outputs);
  for (const n of g.nodes) for (const i of n.inputs) if (i) read.add(i);
  g.nodes = g.nodes.filter((n) => !touched.has(n) || n.outputs.some((o) => o && read.has(o)));
  if (!g.opsets.has('kiln')) g.opsets.set('kiln', 1);
  return { changed };
}

export const qdqFusion: Pass = { name: 'qdq-fusion', run: (g) => fuseQdq(g) };
