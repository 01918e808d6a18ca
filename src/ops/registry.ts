/**
 * The op registry: the only list of the ONNX ops kiln knows. One entry per op type (families of
 * trivially parameterized ops, such as the element-wise unaries, are generated from one table) holds
 * its attribute handling with ONNX defaults per opset version, shape and type inference, and how it
 * lowers to native ops. Computation lives in the native kernels: constant folding runs them too.
 */
import { DataType, TypedArray, bfloat16ToFloat, halfToFloat } from '../dtype';
import { KilnError } from '../errors';
import { AttrValue, Dim, Graph, Node, Value, describeNode } from '../ir/graph';
import { PlanAttr } from '../lower/plan';

export interface OutputInfo {
  dtype: DataType;
  shape: Dim[];
  /** Known contents, for ops that TS evaluates itself (shape arithmetic: Shape, Size, …). */
  data?: TypedArray;
}

export interface OpContext {
  node: Node;
  graph: Graph;
  /** The opset version of the node's domain that the model imports. */
  opset: number;
  /** The node's inputs; undefined where an optional input is omitted. */
  inputs: (Value | undefined)[];
  /** Throws a KilnError naming the node. */
  fail(message: string, code?: 'SHAPE' | 'UNSUPPORTED' | 'INVALID_MODEL'): never;
  /** The input at `i`, or a failure naming it when it is missing. */
  input(i: number): Value;
  /** The static shape of input `i`, or a failure when some dim is unknown. */
  shapeOf(i: number): number[];
  /** Known contents of input `i` as numbers (int64 included), or undefined. */
  constValues(i: number): number[] | undefined;
  /**
   * Known contents of input `i`, or a SHAPE error naming the value: static-shape engines need the
   * inputs that decide output shapes (Reshape's shape, Reduce's axes, TopK's k…) known at build.
   * When such a value is a graph input, compile's `constants` option can fix it.
   */
  requireConst(i: number, what: string): number[];
  /** Attribute accessors with defaults. */
  int(name: string, dflt: number): number;
  int(name: string): number | undefined;
  float(name: string, dflt: number): number;
  float(name: string): number | undefined;
  ints(name: string): number[] | undefined;
  floats(name: string): number[] | undefined;
  string(name: string, dflt: string): string;
  string(name: string): string | undefined;
  attr(name: string): AttrValue | undefined;
}

/** One native op emitted by lowering. Tensor references are value names ('' = omitted). */
export interface NativeOp {
  kind: string;
  inputs: string[];
  outputs: string[];
  attrs: Record<string, PlanAttr>;
}

export interface OpDef {
  opType: string;
  /** '' (default) for ai.onnx. */
  domain?: string;
  /** Output dtypes and shapes (and contents, where TS evaluates the op). */
  infer(ctx: OpContext): OutputInfo[];
  /**
   * The native ops this node becomes. Default: one native op of kind `opType`, all inputs, no attrs.
   * Constant inputs that the kernel takes as attributes are read here and left out of `inputs`.
   */
  lower?(ctx: OpContext): NativeOp[];
  /** When false the op is never folded at compile time (random ops, ops with side outputs). */
  foldable?: boolean;
}

/** The values of known contents as numbers: float16/bfloat16 decoded from their bits, int64 converted. */
export function numbersOf(dtype: DataType, data: TypedArray): number[] {
  if (dtype === DataType.FLOAT16) return Array.from(data as Uint16Array, halfToFloat);
  if (dtype === DataType.BFLOAT16) return Array.from(data as Uint16Array, bfloat16ToFloat);
  return Array.from(data as ArrayLike<number | bigint>, (x) => Number(x));
}


/** The graph inputs a value is computed from (the top-level graph's, for a value inside a sub-graph). */
export function graphInputsBehind(g: Graph, name: string): string[] {
  let top = g;
  while (top.parent) top = top.parent;
  const producer = new Map<string, Node>();
  for (let s: Graph | undefined = g; s; s = s.parent) for (const n of s.nodes) for (const o of n.outputs) if (o && !producer.has(o)) producer.set(o, n);
  const inputs = new Set(top.inputs);
  const found = new Set<string>();
  const seen = new Set<string>();
  const stack = [name];
  while (stack.length) {
    const v = stack.pop()!;
    if (seen.has(v)) continue;
    seen.add(v);
    if (inputs.has(v)) found.add(v);
    const p = producer.get(v);
    if (p) for (const i of p.inputs) if (i) stack.push(i);
  }
  return [...found];
}

const REGISTRY = new Map<string, OpDef>();

function key(domain: string, opType: string): string {
  return domain === '' || domain === 'ai.onnx' ? opType : `${domain}:${opType}`;
}

/**
 * Inference for kiln-domain ops the optimizer creates from already-inferred nodes: the output's type
 * and shape were fixed then ('kiln.dtype', 'kiln.shape').
 */
export function fixedOutput(ctx: OpContext): OutputInfo[] {
  const shape = ctx.ints('kiln.shape');
  const dtype = ctx.int('kiln.dtype');
  if (!shape || dtype === undefined) return ctx.fail("needs 'kiln.shape' and 'kiln.dtype'");
  return [{ dtype: dtype as DataType, shape }];
}

/** The native ops a node lowers to: its op's `lower`, or one native op named after the ONNX op. */
export function nativeOps(def: OpDef, ctx: OpContext): NativeOp[] {
  const n = ctx.node;
  return def.lower ? def.lower(ctx) : [{ kind: n.opType, inputs: n.inputs, outputs: n.outputs, attrs: {} }];
}

export function registerOp(def: OpDef): void {
  const k = key(def.domain ?? '', def.opType);
  if (REGISTRY.has(k)) throw new Error(`op ${k} registered twice`);
  REGISTRY.set(k, def);
}

export function getOp(domain: string, opType: string): OpDef | undefined {
  return REGISTRY.get(key(domain, opType));
}

export function registeredOps(): string[] {
  return [...REGISTRY.keys()].sort();
}

export function makeContext(node: Node, graph: Graph, opset: number, inputs: (Value | undefined)[]): OpContext {
  const fail = (message: string, code: 'SHAPE' | 'UNSUPPORTED' | 'INVALID_MODEL' = 'INVALID_MODEL'): never => {
    throw new KilnError(code, `${describeNode(node)}: ${message}`);
  };
  const attr = (name: string) => node.attrs.get(name);
  const ctx: OpContext = {
    node,
    graph,
    opset,
    inputs,
    fail,
    input(i) {
      const v = inputs[i];
      if (!v) return fail(`input ${i} is required but missing`);
      return v;
    },
    shapeOf(i) {
      const v = ctx.input(i);
      if (!v.shape || v.shape.some((d) => typeof d !== 'number'))
        return fail(`input ${i} ('${v.name}') needs a static shape here, got ${v.shape ? '[' + v.shape.join(',') + ']' : 'unknown rank'}; give symbolic dims values with the 'shapes' option`, 'SHAPE');
      return v.shape as number[];
    },
    constValues(i) {
      const v = inputs[i];
      if (!v?.data) return undefined;
      return numbersOf(v.dtype, v.data);
    },
    requireConst(i, what) {
      const known = ctx.constValues(i);
      if (known) return known;
      const name = ctx.input(i).name;
      const from = graphInputsBehind(graph, name);
      const fix = graph.inputs.includes(name)
        ? `; it is a graph input: fix its value at build with the 'constants' option, e.g. constants: { ${name}: tensor }`
        : from.length
          ? `; it is computed from graph input${from.length > 1 ? 's' : ''} ${from.map((n) => `'${n}'`).join(', ')}: fix ${from.length > 1 ? 'their values' : 'its value'} at build with the 'constants' option`
          : '';
      throw new KilnError('SHAPE', `${describeNode(node)}: input '${what}' ('${name}') must be known at build time, since output shapes depend on it${fix}`, graph.inputs.includes(name) ? name : from[0] ?? name);
    },
    int: ((name: string, dflt?: number) => {
      const a = attr(name);
      return a?.type === 'int' ? a.value : dflt;
    }) as OpContext['int'],
    float: ((name: string, dflt?: number) => {
      const a = attr(name);
      return a?.type === 'float' || a?.type === 'int' ? a.value : dflt;
    }) as OpContext['float'],
    ints(name) {
      const a = attr(name);
      return a?.type === 'ints' ? a.value : a?.type === 'int' ? [a.value] : undefined;
    },
    floats(name) {
      const a = attr(name);
      return a?.type === 'floats' ? a.value : a?.type === 'float' ? [a.value] : undefined;
    },
    string: ((name: string, dflt?: string) => {
      const a = attr(name);
      return a?.type === 'string' ? a.value : dflt;
    }) as OpContext['string'],
    attr,
  };
  return ctx;
}
