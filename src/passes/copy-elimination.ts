/**
 * Copy elimination (on the Plan).
 * Before: layers that only move bytes — Copy (Reshape, Flatten, Squeeze, Unsqueeze, Identity) and
 *         StridedCopy windows that are contiguous (a Split or Slice along the outermost non-unit axis).
 * After:  the output tensor is a view of the input's bytes (the Plan's tensor table `view`); the layer is
 *         gone.
 * Handles: inputs stored in the arena (activations and outputs: not graph inputs or constants, whose
 *          storage the executor does not own); outputs written only by that layer and not already
 *          views or viewed.
 */
import { byteSize } from '../dtype';
import { Plan, PlanOp } from '../lower/plan';

/** Element offset of a StridedCopy's window when the window is contiguous, else undefined. */
function contiguousOffset(op: PlanOp): number | undefined {
  const { shape, strides, offset } = op.attrs;
  if (shape?.t !== 'I' || strides?.t !== 'I' || offset?.t !== 'i') return undefined;
  let expect = 1;
  for (let d = shape.v.length - 1; d >= 0; d--) {
    if (shape.v[d] === 1) continue;
    if (strides.v[d] !== expect) return undefined;
    expect *= shape.v[d];
  }
  return offset.v;
}

export function eliminateCopies(plan: Plan): string[] {
  const changed: string[] = [];
  const writers = new Map<number, number>();
  for (const op of plan.ops) for (const o of op.outputs) if (o >= 0) writers.set(o, (writers.get(o) ?? 0) + 1);
  const viewed = new Set(plan.tensors.filter((t) => t.view).map((t) => t.view!.base));
  const rootKind = (i: number): string => {
    const t = plan.tensors[i];
    return t.view ? rootKind(t.view.base) : t.kind;
  };
  plan.ops = plan.ops.filter((op) => {
    if (op.kind !== 'Copy' && op.kind !== 'StridedCopy') return true;
    const [src] = op.inputs;
    const [dst] = op.outputs;
    const s = plan.tensors[src];
    const d = plan.tensors[dst];
    const elems = op.kind === 'Copy' ? 0 : contiguousOffset(op);
    if (elems === undefined || s.dtype !== d.dtype) return true;
    const kind = rootKind(src);
    if ((kind !== 'activation' && kind !== 'output') || d.view || viewed.has(dst) || writers.get(dst) !== 1 || d.kind === 'input') return true;
    d.view = { base: src, byteOffset: elems * byteSize(s.dtype) };
    viewed.add(src);
    changed.push(op.name);
    return false;
  });
  return changed;
}
