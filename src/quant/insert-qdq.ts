/**
 * Post-training quantization on the graph: which layers can run in int8, and the Q/DQ pairs that make
 * them so. From the calibrated ranges, every quantizable layer gets
 *   x → QuantizeLinear(amax/127, 0: int8) → DequantizeLinear → layer ← DequantizeLinear(w int8, per-channel scales)
 * (one pair per activation, shared by all its quantizable readers; weights symmetric per output channel
 * from their own min/max), after which the Q/DQ fusion pass (src/passes/qdq-fusion.ts) turns them into
 * int8 layers exactly as it does for an explicitly quantized model.
 */
import { DataType } from '../dtype';
import { Graph, Node, lookupValue } from '../ir/graph';
import { Uses } from '../passes/match';
import { QuantizedWeight, projectionShortcut } from '../passes/qdq-fusion';

const QUANTIZABLE = new Set(['Conv', 'Gemm', 'MatMul']);

/** The axis of a quantizable layer's weight that indexes its output channels, or undefined. */
function channelAxis(n: Node): number | undefined {
  if (n.opType === 'Conv') return 0;
  if (n.opType === 'MatMul') return 1;
  const t = (k: string) => (n.attrs.get(k)?.type === 'int' ? (n.attrs.get(k)!.value as number) : 0);
  if (t('transA') !== 0) return undefined;
  const alpha = n.attrs.get('alpha');
  if (alpha && (alpha.type === 'float' || alpha.type === 'int') && alpha.value !== 1) return undefined;
  return t('transB') ? 0 : 1;
}

/** Whether a node is a float Conv / Gemm / MatMul over an activation and a constant weight that int8 can run. */
export function quantizable(g: Graph, n: Node): boolean {
  if (n.domain !== '' || !QUANTIZABLE.has(n.opType) || channelAxis(n) === undefined) return false;
  const x = lookupValue(g, n.inputs[0]);
  const w = lookupValue(g, n.inputs[1]);
  if (!x || x.data || x.dtype !== DataType.FLOAT || !x.shape || x.shape.length < 2) return false;
  if (!w?.data || w.dtype !== DataType.FLOAT || !w.shape) return false;
  if (n.opType !== 'Conv' && w.shape.length !== 2) return false;
  if (n.opType === 'Conv' && w.shape.length !== x.shape.length) return false;
  return lookupValue(g, n.outputs[0])?.dtype === DataType.FLOAT;
}

/**
 * The projection shortcuts (qdq-fusion's projectionShortcut: a quantizable layer's output that another
 * quantizable layer alone reads, as its fused residual) that int8 keeps in int8, neither layer in `skip`.
 */
export function shortcutResiduals(g: Graph, skip: ReadonlySet<string> = new Set()): string[] {
  const u = new Uses(g);
  const out: string[] = [];
  for (const n of g.nodes) {
    const r = n.inputs[3];
    const p = r ? u.producer.get(r) : undefined;
    if (!r || !p || skip.has(n.name) || skip.has(p.name) || !quantizable(g, n) || !quantizable(g, p) || projectionShortcut(u, r) !== n) continue;
    if (lookupValue(g, r)?.dtype === DataType.FLOAT) out.push(r);
  }
  return out;
}

/** The activations (input 0) of the quantizable layers and the shortcut residuals, in graph order, without repeats. */
export function quantizedActivations(g: Graph, skip: ReadonlySet<string> = new Set()): string[] {
  const seen = new Set<string>();
  for (const n of g.nodes) if (quantizable(g, n) && !skip.has(n.name)) seen.add(n.inputs[0]);
  for (const r of shortcutResiduals(g, skip)) seen.add(r);
  return [...seen];
}

/** Symmetric int8 per output channel along `axis`: q = round(w / s), s = max|w| / 127 per channel. */
export function quantizeWeight(w: Float32Array, shape: number[], axis: number): QuantizedWeight {
  const C = shape[axis];
  const inner = shape.slice(axis + 1).reduce((a, b) => a * b, 1);
  const amax = new Float64Array(C);
  for (let i = 0; i < w.length; i++) {
    const c = Math.floor(i / inner) % C;
    amax[c] = Math.max(amax[c], Math.abs(w[i]));
  }
  const scales = Array.from(amax, (a) => (a > 0 && Number.isFinite(a) ? a / 127 : 1));
  const data = new Int8Array(w.length);
  for (let i = 0; i < w.length; i++) {
    const c = Math.floor(i / inner) % C;
    data[i] = Math.max(-127, Math.min(127, Math.round(w[i] / scales[c])));
  }
  return { data, shape, scales, axis };
}

/**
 * Inserts the Q/DQ pairs for the quantizable layers whose activation has a range in `amax` (layers in
 * `skip` stay float), and a QuantizeLinear for each shortcut residual with a range whose reader was
 * quantized (Q/DQ fusion then has the producer write int8 and the reader take it as an int8 residual).
 * Returns the names of the layers it quantized.
 */
export function insertQdq(g: Graph, amax: ReadonlyMap<string, number>, skip: ReadonlySet<string> = new Set()): string[] {
  const done: string[] = [];
  const pairs = new Map<string, string>(); // activation → its dequantized twin
  const nodes: Node[] = [];
  const value = (name: string, dtype: DataType, shape: number[], data?: Float32Array | Int8Array) => {
    g.values.set(name, { name, dtype, shape, ...(data ? { data } : {}) });
    return name;
  };
  // x → QuantizeLinear(amax / 127, zero point 0) → x__int8, a node appended to `nodes`
  const quantize = (x: string, a: number) => {
    const shape = lookupValue(g, x)!.shape as number[];
    const scale = value(`${x}__int8_scale`, DataType.FLOAT, [], Float32Array.of(a / 127));
    const zp = value(`${x}__int8_zp`, DataType.INT8, [], Int8Array.of(0));
    const q = value(`${x}__int8`, DataType.INT8, shape);
    nodes.push({ name: `${x}__quantize`, opType: 'QuantizeLinear', domain: '', inputs: [x, scale, zp], outputs: [q], attrs: new Map(), origin: [] });
    return { q, scale, zp, shape };
  };
  const shortcuts = new Set(shortcutResiduals(g, skip));
  for (const n of g.nodes) {
    const a = quantizable(g, n) && !skip.has(n.name) ? amax.get(n.inputs[0]) : undefined;
    if (a === undefined || !(a > 0) || !Number.isFinite(a)) {
      nodes.push(n);
      continue;
    }
    const x = n.inputs[0];
    let dq = pairs.get(x);
    if (!dq) {
      const { q, scale, zp, shape } = quantize(x, a);
      dq = value(`${x}__int8_dq`, DataType.FLOAT, shape);
      nodes.push({ name: `${x}__dequantize`, opType: 'DequantizeLinear', domain: '', inputs: [q, scale, zp], outputs: [dq], attrs: new Map(), origin: [] });
      pairs.set(x, dq);
    }
    const wv = lookupValue(g, n.inputs[1])!;
    const axis = channelAxis(n)!;
    const qw = quantizeWeight(wv.data as Float32Array, wv.shape as number[], axis);
    const wq = value(`${n.name}__wq`, DataType.INT8, qw.shape, qw.data);
    const ws = value(`${n.name}__wscale`, DataType.FLOAT, [qw.scales.length], Float32Array.from(qw.scales));
    const wdq = value(`${n.name}__wdq`, DataType.FLOAT, qw.shape);
    nodes.push({ name: `${n.name}__wdequantize`, opType: 'DequantizeLinear', domain: '', inputs: [wq, ws], outputs: [wdq], attrs: new Map([['axis', { type: 'int', value: axis }]]), origin: [] });
    n.inputs = [dq, wdq, ...n.inputs.slice(2)];
    const r = n.inputs[3];
    const ra = r && shortcuts.has(r) ? amax.get(r) : undefined;
    if (r && ra !== undefined && ra > 0 && Number.isFinite(ra)) quantize(r, ra);
    nodes.push(n);
    done.push(n.name);
  }
  g.nodes = nodes;
  return done;
}
