/**
 * Precision assignment (on the Plan, after lowering: every constant parameter is already an attribute,
 * so the tensors left are data).
 * Before: a float32 Plan.
 * After:  every layer runs in float16 except the pinned ones; float32 tensors that fp16 layers produce
 *         are stored as float16 and float32 constants they read are converted once here; a Cast layer
 *         is placed where a tensor's storage type differs from what its reader runs in (graph inputs
 *         and outputs keep the user's float32, pinned layers read and write float32). One cast per
 *         tensor and target type, shared by all its readers. Fused element-wise layers read float32 and
 *         float16 inputs alike, so they get no casts, and constants only they read stay float32 (a
 *         mask constant such as -3.4e38 keeps its value instead of becoming -Inf, and 0 · it stays 0).
 * Handles: float32 only (other types are untouched); views keep their base's type. Layers over
 *          quantized tensors (Int8Conv, Int8Gemm, QuantizeLinear, DequantizeLinear) stay float32: their
 *          kernels take float32 scales, biases, residuals and outputs (a 'best' build mixes them with fp16).
 */
import { DataType, floatToHalf } from '../dtype';
import { Plan, PlanOp, PlanTensor } from '../lower/plan';

/** Native kinds whose kernels read each float input as float32 or float16, whatever the layer runs in. */
const READS_ANY_FLOAT = new Set(['Elementwise']);
/** Native kinds over quantized tensors: they stay float32 (see Handles). */
const QUANTIZED = new Set(['Int8Conv', 'Int8Gemm', 'QuantizeLinear', 'DequantizeLinear']);

export interface PrecisionResult {
  /** Layers that now run in float16. */
  half: string[];
  /** Cast layers added at precision boundaries. */
  casts: number;
}

/** Rewrites `plan` in place to float16 except the layers named in `pinned` (fp32). */
export function assignHalfPrecision(plan: Plan, pinned: Set<string>): PrecisionResult {
  const isF32 = (i: number) => i >= 0 && plan.tensors[i].dtype === DataType.FLOAT;
  const producer = new Map<number, PlanOp>();
  for (const op of plan.ops) for (const o of op.outputs) if (o >= 0) producer.set(o, op);
  const halfLayer = (op: PlanOp) => !pinned.has(op.name) && !QUANTIZED.has(op.kind) && [...op.inputs, ...op.outputs].some(isF32);
  const half = plan.ops.filter(halfLayer);
  const halfSet = new Set(half);
  const rootOf = (i: number): number => (plan.tensors[i].view ? rootOf(plan.tensors[i].view!.base) : i);
  // Storage type: a float32 tensor is stored as float16 when an fp16 layer produces it, or when it is a
  // constant that only fp16 layers read, one of which needs it in float16.
  const readers = new Map<number, PlanOp[]>();
  for (const op of plan.ops) for (const i of op.inputs) if (i >= 0) (readers.get(i) ?? readers.set(i, []).get(i)!).push(op);
  const storedHalf = (i: number): boolean => {
    const r = rootOf(i);
    if (!isF32(r) || plan.tensors[r].kind === 'input') return false;
    if (plan.tensors[r].kind === 'constant') {
      const rs = readers.get(i) ?? [];
      return rs.every((op) => halfSet.has(op)) && rs.some((op) => !READS_ANY_FLOAT.has(op.kind));
    }
    const p = producer.get(r) ?? producer.get(i);
    return !!p && halfSet.has(p);
  };
  const newType = plan.tensors.map((t, i) => (storedHalf(i) ? DataType.FLOAT16 : t.dtype));
  let casts = 0;
  const cast = (src: number, dst: number, origin: string[]): PlanOp => {
    casts++;
    return { kind: 'Cast', name: `${plan.tensors[dst].name}__cast`, inputs: [src], outputs: [dst], attrs: {}, origin };
  };
  // Outputs stay float32 for the user: an fp16 producer writes a float16 twin, cast into the output last.
  const tail: PlanOp[] = [];
  for (const i of plan.outputs) {
    if (newType[i] !== DataType.FLOAT16) continue;
    const t = plan.tensors[i];
    const twin = plan.tensors.push({ ...t, name: `${t.name}__fp16`, kind: 'activation', dtype: DataType.FLOAT16 }) - 1;
    newType[i] = DataType.FLOAT;
    newType[twin] = DataType.FLOAT16;
    for (const op of plan.ops) {
      op.outputs = op.outputs.map((o) => (o === i ? twin : o));
      op.inputs = op.inputs.map((x) => (x === i ? twin : x));
    }
    for (const v of plan.tensors) if (v.view && v.view.base === i) v.view = { ...v.view, base: twin };
    tail.push(cast(twin, i, []));
  }
  // Apply the storage types, converting float32 constants to float16 once.
  plan.tensors.forEach((t: PlanTensor, i) => {
    const to = newType[i];
    if (to === t.dtype) return;
    if (t.kind === 'constant' && t.data) {
      const f = new Float32Array(t.data.buffer.slice(t.data.byteOffset, t.data.byteOffset + t.data.byteLength));
      const h = new Uint16Array(f.length);
      for (let k = 0; k < f.length; k++) h[k] = floatToHalf(f[k]);
      t.data = new Uint8Array(h.buffer);
    }
    if (t.view) t.view = { ...t.view, byteOffset: t.view.byteOffset / 2 };
    t.dtype = to;
  });
  // A reader that runs in the other float type gets a cast, placed right before its first reader.
  const converted = new Map<string, number>();
  const ops: PlanOp[] = [];
  for (const op of plan.ops) {
    const want = halfSet.has(op) ? DataType.FLOAT16 : DataType.FLOAT;
    op.inputs = op.inputs.map((i) => {
      const t = i >= 0 ? plan.tensors[i] : undefined;
      if (!t || op.kind === 'Cast' || READS_ANY_FLOAT.has(op.kind) || (t.dtype !== DataType.FLOAT && t.dtype !== DataType.FLOAT16) || t.dtype === want) return i;
      const key = `${i}:${want}`;
      let c = converted.get(key);
      if (c === undefined) {
        const suffix = want === DataType.FLOAT16 ? 'fp16' : 'fp32';
        c = plan.tensors.push({ name: `${t.name}__${suffix}`, dtype: want, shape: t.shape, kind: 'activation' }) - 1;
        converted.set(key, c);
        ops.push(cast(i, c, op.origin));
      }
      return c;
    });
    ops.push(op);
  }
  plan.ops = [...ops, ...tail];
  return { half: half.map((op) => op.name), casts };
}
