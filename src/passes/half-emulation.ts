/**
 * float16 emulation in float32 storage, for the CPU reference runs of the accuracy guard: the CPU's fast
 * kernels are float32 ones, and the reference float16 kernels are too slow for ResNet- or BERT-sized
 * models. A device runs an fp16 layer as float16 storage with float32 accumulation; so does this plan.
 * Before: a Plan after precision assignment (float16 tensors, Cast layers at the precision boundaries).
 * After:  every float16 tensor is float32 and holds float16-rounded values: float16 constants are
 *         widened (exactly); each layer that wrote a float16 tensor writes a float32 twin instead, and
 *         two Cast layers (to float16 and back) round the twin into the named tensor, so overflow
 *         still becomes Inf and every named value is the one a float16 engine stores. Views keep
 *         their element offsets.
 * Handles: any Plan; a Plan without float16 tensors comes back unchanged (a copy).
 */
import { DataType, halfToFloat } from '../dtype';
import { Plan, PlanOp, PlanTensor, int } from '../lower/plan';

const DTYPE_ATTRS = ['to', 'dtype'];

/** A float32 copy of `plan` computing what its float16 layers compute (see the header). */
export function emulateHalf(plan: Plan): Plan {
  const isHalf = (i: number) => i >= 0 && plan.tensors[i].dtype === DataType.FLOAT16;
  const tensors: PlanTensor[] = plan.tensors.map((t) => {
    if (t.dtype !== DataType.FLOAT16 || t.kind === 'input') return t;
    const w: PlanTensor = { ...t, dtype: DataType.FLOAT };
    if (t.view) w.view = { ...t.view, byteOffset: t.view.byteOffset * 2 };
    if (t.data) {
      const h = new Uint16Array(t.data.buffer.slice(t.data.byteOffset, t.data.byteOffset + t.data.byteLength));
      const f = new Float32Array(h.length);
      for (let k = 0; k < h.length; k++) f[k] = halfToFloat(h[k]);
      w.data = new Uint8Array(f.buffer);
    }
    return w;
  });
  const ops: PlanOp[] = [];
  // float16 graph inputs keep their type (the caller's buffers) and are widened once, first.
  const widened = new Map<number, number>();
  for (const i of plan.inputs) {
    if (!isHalf(i)) continue;
    const t = tensors[i];
    const w = tensors.push({ name: `${t.name}__f32`, dtype: DataType.FLOAT, shape: t.shape, kind: 'activation' }) - 1;
    widened.set(i, w);
    ops.push({ kind: 'Cast', name: `${t.name}__widen`, inputs: [i], outputs: [w], attrs: {}, origin: [] });
  }
  for (const original of plan.ops) {
    const op = widened.size ? { ...original, inputs: original.inputs.map((i) => widened.get(i) ?? i) } : original;
    const halfOuts = op.outputs.filter(isHalf);
    if (halfOuts.length === 0) {
      ops.push(op);
      continue;
    }
    const attrs = { ...op.attrs };
    for (const a of DTYPE_ATTRS) {
      const v = attrs[a];
      if (v && v.t === 'i' && v.v === DataType.FLOAT16) attrs[a] = int(DataType.FLOAT);
    }
    const rounds: PlanOp[] = [];
    const outputs = op.outputs.map((o) => {
      if (!isHalf(o)) return o;
      const t = tensors[o];
      const twin = tensors.push({ name: `${t.name}__f32`, dtype: DataType.FLOAT, shape: t.shape, kind: 'activation' }) - 1;
      const half = tensors.push({ name: `${t.name}__f16`, dtype: DataType.FLOAT16, shape: t.shape, kind: 'activation' }) - 1;
      rounds.push(
        { kind: 'Cast', name: `${t.name}__round`, inputs: [twin], outputs: [half], attrs: {}, origin: op.origin },
        { kind: 'Cast', name: `${t.name}__widen`, inputs: [half], outputs: [o], attrs: {}, origin: op.origin },
      );
      return twin;
    });
    ops.push({ ...op, attrs, outputs }, ...rounds);
  }
  return { tensors, ops, inputs: plan.inputs, outputs: plan.outputs };
}
