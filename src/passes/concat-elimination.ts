/**
 * Concat elimination (on the Plan).
 * Before: producers write their tensors, then a Concat layer copies them into its output.
 * After:  each input tensor is a view into its slice of the Concat's output (the Plan's tensor table
 *         `view`), so the producers write there directly; the Concat layer is gone.
 * Handles: slices that are contiguous (every dim before the axis is 1, e.g. NCHW channel concat at
 *          batch 1); inputs that are activations written by exactly one layer, read once by this
 *          Concat, not graph outputs and not already views or viewed; outputs that are not views.
 */
import { byteSize } from '../dtype';
import { Plan } from '../lower/plan';

export function eliminateConcats(plan: Plan): string[] {
  const changed: string[] = [];
  const writers = new Map<number, number>();
  for (const op of plan.ops) for (const o of op.outputs) if (o >= 0) writers.set(o, (writers.get(o) ?? 0) + 1);
  const viewed = new Set(plan.tensors.filter((t) => t.view).map((t) => t.view!.base));
  const outputs = new Set(plan.outputs);
  plan.ops = plan.ops.filter((op) => {
    if (op.kind !== 'Concat' || op.attrs.axis?.t !== 'i') return true;
    const out = plan.tensors[op.outputs[0]];
    const axis = op.attrs.axis.v;
    if (out.view || out.shape.slice(0, axis).some((d) => d !== 1)) return true;
    const ins = op.inputs;
    const ok = ins.every((i, k) => {
      const t = plan.tensors[i];
      return (
        i >= 0 &&
        t.kind === 'activation' &&
        !t.view &&
        !viewed.has(i) &&
        !outputs.has(i) &&
        writers.get(i) === 1 &&
        ins.indexOf(i) === k &&
        t.dtype === out.dtype
      );
    });
    if (!ok) return true;
    const inner = out.shape.slice(axis + 1).reduce((a, b) => a * b, 1) * byteSize(out.dtype);
    let offset = 0;
    for (const i of ins) {
      const t = plan.tensors[i];
      t.view = { base: op.outputs[0], byteOffset: offset };
      offset += t.shape[axis] * inner;
      viewed.add(op.outputs[0]);
    }
    changed.push(op.name);
    return false;
  });
  return changed;
}
