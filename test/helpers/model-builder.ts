/** Builds small ONNX models in tests (onnx-proto encode), so edge cases need no binary fixtures. */
import { onnx } from 'onnx-proto';

export interface NodeSpec {
  op: string;
  inputs: string[];
  outputs: string[];
  name?: string;
  attrs?: Record<string, number | number[] | string>;
  domain?: string;
}

export interface IOSpec {
  name: string;
  type?: number; // ONNX DataType, default FLOAT
  dims?: (number | string)[] | null; // null: no shape
}

export interface InitSpec {
  name: string;
  type?: number;
  dims: number[];
  floats?: number[];
  int64s?: number[];
  raw?: Uint8Array;
  external?: { location: string; offset?: number; length?: number };
}

function valueInfo(v: IOSpec): onnx.IValueInfoProto {
  return {
    name: v.name,
    type: {
      tensorType: {
        elemType: v.type ?? 1,
        shape: v.dims === null ? undefined : { dim: (v.dims ?? []).map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) },
      },
    },
  };
}

function attr(name: string, v: number | number[] | string): onnx.IAttributeProto {
  const T = onnx.AttributeProto.AttributeType;
  if (typeof v === 'string') return { name, type: T.STRING, s: Buffer.from(v) };
  if (Array.isArray(v)) return v.every(Number.isInteger) ? { name, type: T.INTS, ints: v } : { name, type: T.FLOATS, floats: v };
  return Number.isInteger(v) ? { name, type: T.INT, i: v } : { name, type: T.FLOAT, f: v };
}

export function buildModel(spec: {
  nodes: NodeSpec[];
  inputs: IOSpec[];
  outputs: IOSpec[];
  initializers?: InitSpec[];
  opset?: number;
}): Uint8Array {
  const model: onnx.IModelProto = {
    irVersion: 8,
    producerName: 'kiln-test',
    opsetImport: [{ domain: '', version: spec.opset ?? 17 }],
    graph: {
      name: 'test',
      node: spec.nodes.map((n, i) => ({
        name: n.name ?? `${n.op}_${i}`,
        opType: n.op,
        domain: n.domain ?? '',
        input: n.inputs,
        output: n.outputs,
        attribute: Object.entries(n.attrs ?? {}).map(([k, v]) => attr(k, v)),
      })),
      input: spec.inputs.map(valueInfo),
      output: spec.outputs.map(valueInfo),
      initializer: (spec.initializers ?? []).map((t) => ({
        name: t.name,
        dataType: t.type ?? 1,
        dims: t.dims,
        floatData: t.floats,
        int64Data: t.int64s,
        rawData: t.raw,
        dataLocation: t.external ? onnx.TensorProto.DataLocation.EXTERNAL : undefined,
        externalData: t.external
          ? Object.entries(t.external).map(([key, value]) => ({ key, value: String(value) }))
          : undefined,
      })),
    },
  };
  return onnx.ModelProto.encode(model).finish();
}

/** y = x + b, the smallest useful model (float32 [1,4]). */
export function addModel(): Uint8Array {
  return buildModel({
    nodes: [{ op: 'Add', inputs: ['x', 'b'], outputs: ['y'], name: 'add0' }],
    inputs: [{ name: 'x', dims: [1, 4] }],
    outputs: [{ name: 'y', dims: [1, 4] }],
    initializers: [{ name: 'b', dims: [4], floats: [1, 2, 3, 4] }],
  });
}

export interface AttentionSpec {
  B: number;
  /** query positions */
  S: number;
  /** key/value positions (default S) */
  T?: number;
  H: number;
  D: number;
  /** none; padding: an additive [B,1,1,T] mask; full: an additive [1,H,S,T] mask */
  mask?: 'none' | 'padding' | 'full';
  /** how the scores are scaled (default Div by √D; Mul by 1/√D) */
  scaleOp?: 'Div' | 'Mul';
}

/**
 * Exporter-style scaled dot-product attention: [B,S,H,D] projections transposed to [B,H,S,D] (K to
 * [B,H,D,T]), scores scaled, an optional additive mask, Softmax, MatMul with V, transposed back to
 * [B,S,H,D]. Inputs q, k, v (and m); output y; nodes named tq, tk, tv, qk, scale, mask, sm, pv, to.
 */
export function attentionModel({ B, S, T = S, H, D, mask = 'none', scaleOp = 'Div' }: AttentionSpec): Uint8Array {
  const withMask = mask !== 'none';
  return buildModel({
    nodes: [
      { op: 'Transpose', name: 'tq', inputs: ['q'], outputs: ['qt'], attrs: { perm: [0, 2, 1, 3] } },
      { op: 'Transpose', name: 'tk', inputs: ['k'], outputs: ['kt'], attrs: { perm: [0, 2, 3, 1] } },
      { op: 'Transpose', name: 'tv', inputs: ['v'], outputs: ['vt'], attrs: { perm: [0, 2, 1, 3] } },
      { op: 'MatMul', name: 'qk', inputs: ['qt', 'kt'], outputs: ['s0'] },
      { op: scaleOp, name: 'scale', inputs: ['s0', 'c'], outputs: ['s1'] },
      ...(withMask ? [{ op: 'Add', name: 'mask', inputs: ['s1', 'm'], outputs: ['s2'] }] : []),
      { op: 'Softmax', name: 'sm', inputs: [withMask ? 's2' : 's1'], outputs: ['p'], attrs: { axis: -1 } },
      { op: 'MatMul', name: 'pv', inputs: ['p', 'vt'], outputs: ['o'] },
      { op: 'Transpose', name: 'to', inputs: ['o'], outputs: ['y'], attrs: { perm: [0, 2, 1, 3] } },
    ],
    inputs: [
      { name: 'q', dims: [B, S, H, D] },
      { name: 'k', dims: [B, T, H, D] },
      { name: 'v', dims: [B, T, H, D] },
      ...(withMask ? [{ name: 'm', dims: mask === 'padding' ? [B, 1, 1, T] : [1, H, S, T] }] : []),
    ],
    outputs: [{ name: 'y', dims: [B, S, H, D] }],
    initializers: [{ name: 'c', dims: [], floats: [scaleOp === 'Div' ? Math.sqrt(D) : 1 / Math.sqrt(D)] }],
  });
}

/** y = Softmax(LeakyRelu(tanh(x·2 + b) − x)) with b broadcast along the last dim: a fusable element-wise chain, then Softmax. */
export function elementwiseChainModel(dims: number[]): Uint8Array {
  const last = dims[dims.length - 1];
  return buildModel({
    nodes: [
      { op: 'Mul', inputs: ['x', 'two'], outputs: ['a'] },
      { op: 'Add', inputs: ['a', 'b'], outputs: ['c'] },
      { op: 'Tanh', inputs: ['c'], outputs: ['d'] },
      { op: 'Sub', inputs: ['d', 'x'], outputs: ['e'] },
      { op: 'LeakyRelu', inputs: ['e'], outputs: ['f'], attrs: { alpha: 0.3 } },
      { op: 'Softmax', inputs: ['f'], outputs: ['y'], attrs: { axis: -1 } },
    ],
    inputs: [{ name: 'x', dims }],
    outputs: [{ name: 'y', dims }],
    initializers: [
      { name: 'two', dims: [], floats: [2] },
      { name: 'b', dims: [last], floats: Array.from({ length: last }, (_, i) => Math.sin(i)) },
    ],
  });
}
