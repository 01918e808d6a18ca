/**
 * Epilogue fusion (vertical): a Conv / Gemm / MatMul and the element-wise ops right after it become one
 * layer whose kernel applies them as it stores each output tile.
 * Before: P = Conv|Gemm|MatMul → [Mul|Div(scale)] → [Add(bias)] → [Add(residual)] → [activation]
 *         scale: a scalar constant, for a MatMul of two computed tensors (attention's Q·Kᵀ / √d):
 *               becomes the GEMM's alpha;
 *         bias: a constant broadcast per output channel (Conv: [M] or [1,M,1,1]; Gemm/MatMul: [N]),
 *               fused only where P has no bias of its own; for a MatMul also any computed tensor that
 *               broadcasts to its output (attention's mask [B,1,1,S]): the GEMM's C;
 *         residual: any other tensor of P's output shape (ResNet's skip connection);
 *         activation: Relu, Clip (constant bounds) as ReLU6 & co, Sigmoid, Tanh, LeakyRelu, HardSigmoid,
 *               HardSwish, Gelu, and SiLU written as x·Sigmoid(x).
 * After:  P with the bias as its bias input, the residual as input 3, the scale as 'kiln.alpha' and the
 *         activation in its 'kiln.*' attributes (src/ops/epilogue.ts); the fused nodes are gone, P writes the last output.
 * Handles: every fused value must have P's chain as its only reader; float32 only; Gemm with its own C
 *          takes no second bias; MatMul operands of rank >= 2.
 */
import { DataType } from '../dtype';
import { Graph, Node, attrFloat, lookupValue } from '../ir/graph';
import { Epilogue, hasEpilogue, setEpilogue } from '../ops/epilogue';
import { Uses, other, scalarOf } from './match';
import { Pass } from './pass';

const PRODUCERS = new Set(['Conv', 'Gemm', 'MatMul']);

function shapeOf(g: Graph, name: string): number[] | undefined {
  const s = lookupValue(g, name)?.shape;
  return s && s.every((d) => typeof d === 'number') ? (s as number[]) : undefined;
}

/** The per-channel bias constant for P's output, as a 1-D value name (made when reshaping is needed). */
function biasFor(g: Graph, p: Node, name: string, outShape: number[]): string | undefined {
  const v = lookupValue(g, name);
  if (!v?.data || v.dtype !== DataType.FLOAT || !v.shape) return undefined;
  const dims = v.shape as number[];
  const C = p.opType === 'Conv' ? outShape[1] : outShape[outShape.length - 1];
  if (v.data.length !== C) return undefined;
  // Conv: [M] is not per channel under numpy broadcasting unless it lines up with axis 1 → [M,1,1] or [1,M,1,1]
  if (p.opType === 'Conv') {
    const rank = outShape.length;
    const ok = dims.length >= rank - 1 && dims.length <= rank && dims[dims.length - (rank - 1)] === C && dims.filter((d) => d !== 1).length <= 1;
    if (!ok || (C === 1 && dims.length < rank - 1)) return undefined;
  } else if (dims[dims.length - 1] !== C || dims.slice(0, -1).some((d) => d !== 1)) return undefined;
  if (dims.length === 1) return name;
  const flat = `${name}__bias1d`;
  if (!g.values.has(flat)) g.values.set(flat, { name: flat, dtype: DataType.FLOAT, shape: [C], data: v.data });
  return flat;
}

/** Whether `name` (not a constant) broadcasts to `out` under numpy rules without being of its shape. */
function broadcastAddend(g: Graph, name: string, out: number[]): boolean {
  const v = lookupValue(g, name);
  const s = shapeOf(g, name);
  if (!v || v.data || v.dtype !== DataType.FLOAT || !s || s.length > out.length) return false;
  const off = out.length - s.length;
  return s.every((d, i) => d === 1 || d === out[off + i]) && !(s.length === out.length && s.every((d, i) => d === out[i]));
}

/** The epilogue activation a node stands for, or undefined. */
function activationOf(g: Graph, u: Uses, n: Node, x: string): { e: Epilogue; nodes: Node[]; out: string } | undefined {
  if (n.domain !== '') return undefined;
  const one = (activation: Epilogue['activation'], params: Epilogue['params'] = {}) => ({ e: { activation, params }, nodes: [n], out: n.outputs[0] });
  switch (n.opType) {
    case 'Relu':
      return one('relu');
    case 'Sigmoid': {
      // SiLU: x · Sigmoid(x), the Mul being Sigmoid's only reader
      const s = n.outputs[0];
      const mul = u.singleUse(s) ? u.readersOf(s)[0] : undefined;
      if (mul && mul.opType === 'Mul' && other(mul, s) === x && u.readersOf(x).length === 2)
        return { e: { activation: 'silu', params: {} }, nodes: [n, mul], out: mul.outputs[0] };
      return one('sigmoid');
    }
    case 'Tanh':
      return one('tanh');
    case 'LeakyRelu':
      return one('leaky_relu', { activation_alpha: attrFloat(n, 'alpha', 0.01) });
    case 'HardSigmoid':
      return one('hard_sigmoid', { activation_alpha: attrFloat(n, 'alpha', 0.2), activation_beta: attrFloat(n, 'beta', 0.5) });
    case 'HardSwish':
      return one('hard_swish');
    case 'Gelu': {
      const a = n.attrs.get('approximate');
      return one(a?.type === 'string' && a.value === 'tanh' ? 'gelu_tanh' : 'gelu');
    }
    case 'Clip': {
      const lo = n.attrs.has('min') ? attrFloat(n, 'min', -Infinity) : n.inputs[1] ? scalarOf(g, n.inputs[1]) : -Infinity;
      const hi = n.attrs.has('max') ? attrFloat(n, 'max', Infinity) : n.inputs[2] ? scalarOf(g, n.inputs[2]) : Infinity;
      if (lo === undefined || hi === undefined || !Number.isFinite(lo) || !Number.isFinite(hi)) {
        if (lo === 0 && hi === Infinity) return one('relu');
        return undefined;
      }
      return one('clip', { activation_min: lo, activation_max: hi });
    }
    default:
      return undefined;
  }
}

export const epilogueFusion: Pass = {
  name: 'epilogue-fusion',
  run(g: Graph) {
    const changed: string[] = [];
    const u = new Uses(g);
    const removed = new Set<Node>();
    const moveTo = new Map<Node, Node>(); // last fused node → its producer
    for (const p of g.nodes) {
      if (p.domain !== '' || !PRODUCERS.has(p.opType) || removed.has(p) || hasEpilogue(p)) continue;
      const out0 = p.outputs[0];
      const outShape = shapeOf(g, out0);
      if (!outShape || lookupValue(g, out0)?.dtype !== DataType.FLOAT) continue;
      if (p.opType === 'MatMul' && (shapeOf(g, p.inputs[0])?.length ?? 0) < 2) continue;
      if (p.opType === 'MatMul' && (shapeOf(g, p.inputs[1])?.length ?? 0) < 2) continue;
      const fused: Node[] = [];
      let cur = out0;
      // the next node of the chain: the single reader of `cur`, unless another chain already took it
      const next = () => {
        const r = u.singleUse(cur) ? u.readersOf(cur)[0] : undefined;
        return r && !removed.has(r) ? r : undefined;
      };
      let bias: string | undefined;
      let residual: string | undefined;
      let alpha: number | undefined;
      const computed = (x: string) => !lookupValue(g, x)?.data;
      let n = next();
      // scale: a MatMul of two computed tensors times (or over) a scalar constant
      if (n && p.opType === 'MatMul' && computed(p.inputs[0]) && computed(p.inputs[1]) && (n.opType === 'Mul' || (n.opType === 'Div' && n.inputs[0] === cur)) && n.domain === '') {
        const s = scalarOf(g, other(n, cur));
        if (s !== undefined && Number.isFinite(s) && s !== 0 && shapeOf(g, n.outputs[0])?.length === outShape.length) {
          alpha = n.opType === 'Mul' ? s : 1 / s;
          fused.push(n);
          cur = n.outputs[0];
          n = next();
        }
      }
      // bias
      const hasOwnBias = !!p.inputs[2];
      if (n && n.opType === 'Add' && n.domain === '' && !hasOwnBias) {
        const addend = other(n, cur)!;
        const b = biasFor(g, p, addend, outShape) ?? (p.opType === 'MatMul' && broadcastAddend(g, addend, outShape) ? addend : undefined);
        if (b) {
          bias = b;
          fused.push(n);
          cur = n.outputs[0];
          n = next();
        }
      }
      // residual
      if (n && n.opType === 'Add' && n.domain === '') {
        const z = other(n, cur)!;
        const zs = shapeOf(g, z);
        const zv = lookupValue(g, z);
        if (zs && zv && !zv.data && zv.dtype === DataType.FLOAT && zs.length === outShape.length && zs.every((d, i) => d === outShape[i]) && z !== cur) {
          residual = z;
          fused.push(n);
          cur = n.outputs[0];
          n = next();
        }
      }
      // activation (SiLU's x is read twice: by the Sigmoid and by the Mul)
      const twoReaders = !n;
      if (twoReaders && !g.outputs.includes(cur)) n = u.readersOf(cur).find((r) => r.opType === 'Sigmoid' && r.domain === '');
      let e: Epilogue = { activation: 'none', params: {} };
      if (n) {
        const act = activationOf(g, u, n, cur);
        if (act && (!twoReaders || act.e.activation === 'silu') && act.nodes.every((x) => !removed.has(x))) {
          e = act.e;
          fused.push(...act.nodes);
          cur = act.out;
        }
      }
      if (fused.length === 0) continue;
      if (bias) p.inputs[2] = bias;
      if (alpha !== undefined) p.attrs.set('kiln.alpha', { type: 'float', value: alpha });
      if (residual) {
        while (p.inputs.length < 3) p.inputs.push('');
        p.inputs[3] = residual;
      }
      // a computed input (residual, broadcast addend) may be produced after P: P moves to its last fused node
      if (residual || (bias && computed(bias))) moveTo.set(fused[fused.length - 1], p);
      setEpilogue(p, e);
      p.outputs = [cur, ...p.outputs.slice(1)];
      p.origin = [...p.origin, ...fused.flatMap((f) => f.origin)];
      for (const f of fused) removed.add(f);
      changed.push(...fused.map((f) => f.name));
    }
    // A producer with a residual moves to where its last fused node stood: the residual may be
    // computed after P (ResNet's skip path), and P now writes the chain's last output.
    const kept: Node[] = [];
    const movers = new Set(moveTo.values());
    for (const n of g.nodes) {
      if (movers.has(n)) continue;
      if (moveTo.has(n)) kept.push(moveTo.get(n)!);
      else if (!removed.has(n)) kept.push(n);
    }
    g.nodes = kept;
    return { changed };
  },
};
