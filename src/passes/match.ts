/**
 * Pattern-matching helpers shared by the rewrite passes: who produces a value, how many read it, and
 * whether an input is a known scalar. Each fusion pass states its pattern with these and its guards
 * (single use, dtype, shape) explicitly.
 */
import { Graph, Node, lookupValue } from '../ir/graph';
import { nodeReads } from '../ir/infer';

export class Uses {
  readonly producer = new Map<string, Node>();
  private readonly readers = new Map<string, Node[]>();
  private readonly outputs: Set<string>;
  constructor(g: Graph) {
    this.outputs = new Set(g.outputs);
    for (const n of g.nodes) {
      for (const o of n.outputs) if (o) this.producer.set(o, n);
      // nodeReads counts the values sub-graphs read from outside, so a value an If body uses is never
      // taken for single-use.
      for (const i of nodeReads(n)) (this.readers.get(i) ?? this.readers.set(i, []).get(i)!).push(n);
    }
  }
  /** The nodes that read `name`. */
  readersOf(name: string): Node[] {
    return this.readers.get(name) ?? [];
  }
  /** True when exactly one node reads `name` and it is not a graph output. */
  singleUse(name: string): boolean {
    return this.readersOf(name).length === 1 && !this.outputs.has(name);
  }
  /** The producer of `name` when it is an op of one of `types` in the default domain. */
  producedBy(name: string | undefined, ...types: string[]): Node | undefined {
    const p = name ? this.producer.get(name) : undefined;
    return p && p.domain === '' && types.includes(p.opType) ? p : undefined;
  }
}

/** The value of a known one-element input, or undefined. */
export function scalarOf(g: Graph, name: string | undefined): number | undefined {
  if (!name) return undefined;
  const v = lookupValue(g, name);
  if (!v?.data || v.data.length !== 1) return undefined;
  return Number(v.data[0]);
}

export function near(a: number | undefined, b: number, tol = 1e-4): boolean {
  return a !== undefined && Math.abs(a - b) <= tol * Math.max(1, Math.abs(b));
}

/** For a commutative binary node, the input other than `name` (undefined when `name` is not an input). */
export function other(n: Node, name: string): string | undefined {
  if (n.inputs[0] === name) return n.inputs[1];
  if (n.inputs[1] === name) return n.inputs[0];
  return undefined;
}
