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
