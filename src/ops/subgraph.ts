/**
 * Helpers for the control-flow ops (If, Loop, Scan): reading a sub-graph attribute, inferring a body
 * with typed formal inputs, and the captures (values a body reads from enclosing scopes), which become
 * explicit extra inputs of the native op so that every sub-plan is self-contained.
 */
import { DataType, TypedArray, dtypeName } from '../dtype';
import { KilnError } from '../errors';
import { AttrValue, Dim, Graph, Value, formatShape, isStatic, lookupValue } from '../ir/graph';
import { inferGraph, outerReads } from '../ir/infer';
import { lowerSubgraph } from '../lower/lower';
import { Plan } from '../lower/plan';
import { OpContext } from './registry';

export interface BodyType {
  dtype: DataType;
  shape: number[];
  /** Known contents (a body specialized for one iteration number). */
  data?: TypedArray;
}

/** The graph attribute `name`, or a failure naming the node. */
export function graphAttr(ctx: OpContext, name: string): Graph {
  const a = ctx.attr(name);
  if (a?.type !== 'graph') return ctx.fail(`attribute '${name}' (a graph) is required`);
  return a.value;
}

/**
 * Types the body's formal inputs, infers (and folds inside) the body, and returns its outputs' values,
 * each with a static shape. Errors from inside the body are prefixed with the node and attribute.
 */
export function inferBody(ctx: OpContext, attrName: string, body: Graph, inputs: BodyType[]): Value[] {
  if (body.inputs.length !== inputs.length)
    ctx.fail(`sub-graph '${attrName}' has ${body.inputs.length} inputs, expected ${inputs.length}`);
  body.inputs.forEach((name, i) => {
    const declared = body.values.get(name);
    if (declared && declared.dtype !== DataType.UNDEFINED && declared.dtype !== inputs[i].dtype)
      ctx.fail(`sub-graph '${attrName}' input ${i} ('${name}') is declared ${dtypeName(declared.dtype)} but receives ${dtypeName(inputs[i].dtype)}`);
    body.values.set(name, { name, dtype: inputs[i].dtype, shape: [...inputs[i].shape], ...(inputs[i].data ? { data: inputs[i].data } : {}) });
  });
  // An output that names an outer value has only a declaration here: let lookups reach the outer one.
  for (const o of outerOutputs(body)) body.values.delete(o);
  try {
    inferGraph(body, { folded: [] }, true);
  } catch (e) {
    if (e instanceof KilnError && !e.message.startsWith(`${describe(ctx)}`))
      throw new KilnError(e.code, `${describe(ctx)}: in sub-graph '${attrName}': ${e.message}`, e.value);
    throw e;
  }
  return body.outputs.map((o, i) => {
    const v = lookupValue(body, o)!;
    if (!isStatic(v.shape))
      ctx.fail(`sub-graph '${attrName}' output ${i} ('${o}') has shape ${formatShape(v.shape)}; engines need static shapes inside bodies too`, 'SHAPE');
    return v;
  });
}

function describe(ctx: OpContext): string {
  return `node '${ctx.node.name}' (${ctx.node.opType})`;
}

/**
 * The non-constant values the bodies read from enclosing scopes (their union, in first-read order),
 * body outputs that name outer values included. Outer constants are not captured: each sub-plan
 * holds them as its own constants.
 */
export function captures(ctx: OpContext, bodies: Graph[]): string[] {
  const out = new Set<string>();
  for (const b of bodies) {
    for (const r of [...outerReads(b), ...outerOutputs(b)]) {
      const v = lookupValue(ctx.graph, r);
      if (!v) ctx.fail(`a sub-graph reads '${r}', which no enclosing scope defines`);
      if (!v.data) out.add(r);
    }
  }
  return [...out];
}

/** Body outputs that are neither body inputs, body initializers nor produced in the body: outer values. */
function outerOutputs(b: Graph): string[] {
  const produced = new Set(b.nodes.flatMap((n) => n.outputs));
  return b.outputs.filter((o) => !b.inputs.includes(o) && !produced.has(o) && !b.values.get(o)?.data);
}

/** The body as a sub-plan: formal inputs, then the captures. */
export function bodyPlan(body: Graph, caps: string[]): Plan {
  return lowerSubgraph(body, caps);
}

export function sameShape(a: readonly Dim[], b: readonly Dim[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** Shape of a value that must be a one-element tensor (a scalar or [1]). */
export function scalarShape(v: Value | undefined): number[] {
  const s = v?.shape;
  return isStatic(s) && s.reduce((a, b) => a * b, 1) === 1 ? s : [];
}

/** A deep copy of a sub-graph (nested sub-graphs included), to infer it again under other input values. */
export function cloneGraph(g: Graph, parent = g.parent): Graph {
  const c: Graph = { ...g, inputs: [...g.inputs], outputs: [...g.outputs], values: new Map(), nodes: [], parent };
  for (const [k, v] of g.values) c.values.set(k, { ...v });
  c.nodes = g.nodes.map((n) => {
    const attrs = new Map<string, AttrValue>();
    for (const [k, a] of n.attrs)
      attrs.set(k, a.type === 'graph' ? { type: 'graph', value: cloneGraph(a.value, c) } : a.type === 'graphs' ? { type: 'graphs', value: a.value.map((x) => cloneGraph(x, c)) } : a);
    return { ...n, inputs: [...n.inputs], outputs: [...n.outputs], attrs };
  });
  return c;
}
