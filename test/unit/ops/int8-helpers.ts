/** One-layer Plans of the int8 kinds (Int8Conv, Int8Gemm), shared by the CPU and GPU tactic tests. */
import { DataType } from '../../../src/dtype';
import { Plan, PlanAttr } from '../../../src/lower/plan';

type Arr = Int8Array | Uint8Array | Float32Array;
export const bytes = (a: Arr) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

/** [n, ch, h, w] → [n, h, w, ch] (the channels-last copy of an NCHW tensor). */
export function nhwc<T extends Arr>(a: T, ch: number, h: number, w: number, n: number): T {
  const t = new (a.constructor as new (n: number) => T)(a.length);
  for (let b = 0; b < n; b++) for (let q = 0; q < ch; q++) for (let i = 0; i < h * w; i++) t[(b * h * w + i) * ch + q] = a[(b * ch + q) * h * w + i];
  return t;
}

export interface Int8LayerCase {
  kind: 'Int8Conv' | 'Int8Gemm';
  x: { dtype: DataType; shape: number[]; data: Int8Array | Uint8Array };
  w: { shape: number[]; data: Int8Array };
  bias?: Float32Array;
  /** float32, or int8/uint8 with attributes residual_scale and residual_zero_point */
  residual?: Float32Array | Int8Array | Uint8Array;
  out: { dtype: DataType; shape: number[] };
  attrs: Record<string, PlanAttr>;
}

/** The layer as a Plan (x and the residual are inputs; w and the bias constants), and its input buffers. */
export function int8LayerPlan(c: Int8LayerCase): { plan: Plan; inputs: ArrayBufferView[] } {
  const tensors: Plan['tensors'] = [
    { name: 'x', dtype: c.x.dtype, shape: c.x.shape, kind: 'input' },
    { name: 'w', dtype: DataType.INT8, shape: c.w.shape, kind: 'constant', data: bytes(c.w.data) },
    { name: 'y', dtype: c.out.dtype, shape: c.out.shape, kind: 'output' },
  ];
  const inputs: ArrayBufferView[] = [c.x.data];
  const ins = [0, 1];
  if (c.bias || c.residual) ins.push(c.bias ? tensors.push({ name: 'b', dtype: DataType.FLOAT, shape: [c.bias.length], kind: 'constant', data: bytes(c.bias) }) - 1 : -1);
  if (c.residual) {
    const rtype = c.residual instanceof Int8Array ? DataType.INT8 : c.residual instanceof Uint8Array ? DataType.UINT8 : DataType.FLOAT;
    ins.push(tensors.push({ name: 'r', dtype: rtype, shape: c.out.shape, kind: 'input' }) - 1);
    inputs.push(c.residual);
  }
  const planInputs = [0, ...(c.residual ? [ins[3]] : [])];
  return { plan: { tensors, ops: [{ kind: c.kind, name: 'q', inputs: ins, outputs: [2], attrs: c.attrs, origin: ['q'] }], inputs: planInputs, outputs: [2] }, inputs };
}

/** A max pool after an int8 convolution: window, strides, pads [begins..., ends...], output spatial dims. */
export interface PoolSpec {
  k: number[];
  s: number[];
  pads: number[];
  out: number[];
}

/**
 * An Int8Conv case (NCHW) followed by a max Pool as a two-layer Plan: `channelsLast` stores every
 * activation [N, spatial..., C] and W [M, k..., C] (the layout CUDA int8 engines use; the caller gives
 * the data in that layout) and marks both layers channels_last, as layout assignment does.
 */
export function int8ConvPoolPlan(c: Int8LayerCase, pool: PoolSpec, channelsLast: boolean): Plan {
  const { plan } = int8LayerPlan(c);
  const [N, M] = c.out.shape;
  const cl = (s: number[]) => (channelsLast ? [s[0], ...s.slice(2), s[1]] : s);
  const conv = plan.ops[0];
  const y = plan.tensors[2];
  const pooled = plan.tensors.push({ name: 'pooled', dtype: y.dtype, shape: cl([N, M, ...pool.out]), kind: 'output' }) - 1;
  plan.tensors[0].shape = cl(plan.tensors[0].shape);
  plan.tensors[1].shape = cl(plan.tensors[1].shape);
  plan.tensors[2] = { ...y, shape: cl(y.shape), kind: 'activation' };
  const mark = channelsLast ? { channels_last: { t: 'i' as const, v: 1 } } : {};
  conv.attrs = { ...conv.attrs, ...mark };
  plan.ops.push({
    kind: 'Pool',
    name: 'pool',
    inputs: [2],
    outputs: [pooled],
    attrs: {
      mode: { t: 's', v: 'max' },
      kernel: { t: 'I', v: pool.k },
      strides: { t: 'I', v: pool.s },
      dilations: { t: 'I', v: pool.k.map(() => 1) },
      pads: { t: 'I', v: pool.pads },
      count_include_pad: { t: 'i', v: 0 },
      storage_order: { t: 'i', v: 0 },
      p: { t: 'f', v: 2 },
      ...mark,
    },
    origin: ['pool'],
  });
  plan.outputs = [pooled];
  return plan;
}
