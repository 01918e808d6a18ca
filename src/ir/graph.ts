/**
 * kiln's IR: a typed graph of values and nodes. Values carry a dtype and a shape whose dims are numbers
 * or symbols (strings); a value whose contents are known at compile time carries them (`data`).
 * Import fills it from ONNX, shape inference and folding complete it, passes rewrite it, lowering reads it.
 */
import { DataType, TypedArray } from '../dtype';

/** A dimension: a known size, or a symbol (an ONNX dim_param, or one invented for an unknown size). */
export type Dim = number | string;

export interface Value {
  name: string;
  dtype: DataType;
  /** Undefined until shape inference knows the rank. */
  shape?: Dim[];
  /** Known contents (initializers, Constant outputs, folded results). Row-major, `dtype` elements. */
  data?: TypedArray;
}

/** Attribute values, decoded from ONNX. Graph attributes hold sub-graphs (If, Loop, Scan bodies). */
export type AttrValue =
  | { type: 'int'; value: number }
  | { type: 'float'; value: number }
  | { type: 'string'; value: string }
  | { type: 'ints'; value: number[] }
  | { type: 'floats'; value: number[] }
  | { type: 'strings'; value: string[] }
  | { type: 'tensor'; value: Value }
  | { type: 'graph'; value: Graph }
  | { type: 'graphs'; value: Graph[] };

export interface Node {
  /** The ONNX node name, or a generated `<op>_<index>` when the model gave none. */
  name: string;
  opType: string;
  /** '' for the default ai.onnx domain. */
  domain: string;
  /** Value names; '' marks an omitted optional input or output. */
  inputs: string[];
  outputs: string[];
  attrs: Map<string, AttrValue>;
  /** The ONNX node names this node stands for (itself unless a pass fused several). */
  origin: string[];
}

export interface Graph {
  name: string;
  /** Graph input names, in ONNX order (initializers excluded). */
  inputs: string[];
  outputs: string[];
  nodes: Node[];
  values: Map<string, Value>;
  /** Opset version per domain ('' = ai.onnx), inherited by sub-graphs. */
  opsets: Map<string, number>;
  /** Set for sub-graphs: the graph whose values they may read by name. */
  parent?: Graph;
}

/** Looks a value up in a graph or, for sub-graphs, in the scopes around it. */
export function lookupValue(g: Graph, name: string): Value | undefined {
  for (let s: Graph | undefined = g; s; s = s.parent) {
    const v = s.values.get(name);
    if (v) return v;
  }
  return undefined;
}

export function elementCount(shape: Dim[]): number {
  let n = 1;
  for (const d of shape) {
    if (typeof d !== 'number') return NaN;
    n *= d;
  }
  return n;
}

export function isStatic(shape: Dim[] | undefined): shape is number[] {
  return shape !== undefined && shape.every((d) => typeof d === 'number');
}

export function formatShape(shape: Dim[] | undefined): string {
  return shape ? `[${shape.join(',')}]` : '[?]';
}

/** Names the node for error messages: `node 'conv1' (Conv, #3)`. */
export function describeNode(n: Node, index?: number): string {
  return `node '${n.name}' (${n.domain ? n.domain + ':' : ''}${n.opType}${index === undefined ? '' : ', #' + index})`;
}

export function attrInt(n: Node, key: string, dflt: number): number;
export function attrInt(n: Node, key: string): number | undefined;
export function attrInt(n: Node, key: string, dflt?: number): number | undefined {
  const a = n.attrs.get(key);
  return a && a.type === 'int' ? a.value : dflt;
}

export function attrFloat(n: Node, key: string, dflt: number): number;
export function attrFloat(n: Node, key: string): number | undefined;
export function attrFloat(n: Node, key: string, dflt?: number): number | undefined {
  const a = n.attrs.get(key);
  return a && (a.type === 'float' || a.type === 'int') ? a.value : dflt;
}

export function attrInts(n: Node, key: string): number[] | undefined {
  const a = n.attrs.get(key);
  return a && a.type === 'ints' ? a.value : undefined;
}

export function attrFloats(n: Node, key: string): number[] | undefined {
  const a = n.attrs.get(key);
  return a && a.type === 'floats' ? a.value : undefined;
}

export function attrString(n: Node, key: string, dflt: string): string;
export function attrString(n: Node, key: string): string | undefined;
export function attrString(n: Node, key: string, dflt?: string): string | undefined {
  const a = n.attrs.get(key);
  return a && a.type === 'string' ? a.value : dflt;
}
