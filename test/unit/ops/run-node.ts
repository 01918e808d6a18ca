/**
 * Runs one ONNX node through kiln's own pipeline (op inference → lowering → Plan → native runPlan), for
 * the op unit tests. Inputs marked `constant` become known values (as initializers would).
 */
import { DataType, TypedArray } from '../../../src/dtype';
import { AttrValue, Graph } from '../../../src/ir/graph';
import { inferGraph } from '../../../src/ir/infer';
import { lowerGraph } from '../../../src/lower/lower';
import { encodePlan } from '../../../src/lower/plan';
import { native } from '../../../src/native/binding';
import '../../../src/ops';

export interface NodeInput {
  dtype: DataType;
  shape: number[];
  data: TypedArray;
  constant?: boolean;
}

export interface NodeSpec {
  op: string;
  /** undefined = an omitted optional input */
  inputs: (NodeInput | undefined)[];
  attrs?: Record<string, AttrValue>;
  opset?: number;
  outputs?: number;
}

export function buildGraph(spec: NodeSpec): Graph {
  const g: Graph = { name: 'g', inputs: [], outputs: [], nodes: [], values: new Map(), opsets: new Map([['', spec.opset ?? 21]]) };
  const names = spec.inputs.map((x, i) => {
    if (!x) return '';
    const name = `in${i}`;
    g.values.set(name, { name, dtype: x.dtype, shape: x.shape, data: x.constant ? x.data : undefined });
    if (!x.constant) g.inputs.push(name);
    return name;
  });
  const outs = Array.from({ length: spec.outputs ?? 1 }, (_, i) => `out${i}`);
  g.nodes.push({ name: 'n0', opType: spec.op, domain: '', inputs: names, outputs: outs, attrs: new Map(Object.entries(spec.attrs ?? {})), origin: ['n0'] });
  g.outputs = outs;
  return g;
}

/** Infers and runs the node; `tactics` picks tactics by native kind (default: the reference ones). */
export function runNode(spec: NodeSpec, tactics?: Record<string, string>): { dtype: DataType; shape: number[]; data: ArrayBuffer }[] {
  const g = buildGraph(spec);
  inferGraph(g, { folded: [] }, false);
  const plan = lowerGraph(g);
  const feeds = spec.inputs.filter((x): x is NodeInput => !!x && !x.constant).map((x) => x.data);
  const bufs = native().runPlan(encodePlan(plan), feeds, tactics);
  return g.outputs.map((o, i) => {
    const v = g.values.get(o)!;
    return { dtype: v.dtype, shape: v.shape as number[], data: bufs[i] };
  });
}

export const f32 = (shape: number[], data: number[], constant = false): NodeInput => ({ dtype: DataType.FLOAT, shape, data: Float32Array.from(data), constant });
export const attrF = (value: number): AttrValue => ({ type: 'float', value });
export const attrI = (value: number): AttrValue => ({ type: 'int', value });
export const attrS = (value: string): AttrValue => ({ type: 'string', value });
