/**
 * Copy fusion (on the Plan).
 * Before: a StridedCopy whose output reaches another StridedCopy only through reshaping Copies (the
 *         bytes unchanged), e.g. attention's Q/K/V: the column window of the merged projection
 *         (horizontal merge's split), Reshape to heads, Transpose to [B, H, S, D].
 * After:  one StridedCopy from the first one's input, its window the composition of the two; the
 *         copies between become dead and are removed.
 * Handles: intermediate tensors with one reader that are not graph outputs, the same element type
 *          throughout, and compositions that are a strided window again — each composed window is
 *          checked element by element against the two-step one before it replaces it.
 */
import { Plan, PlanOp } from '../lower/plan';

export interface Window {
  shape: number[];
  strides: number[];
  offset: number;
}

export function windowOf(op: PlanOp): Window | undefined {
  const { shape, strides, offset } = op.attrs;
  if (op.kind !== 'StridedCopy' || shape?.t !== 'I' || strides?.t !== 'I' || offset?.t !== 'i') return undefined;
  return { shape: shape.v, strides: strides.v, offset: offset.v };
}

const count = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

/** Source element of each output element of `w`, in row-major output order. */
export function sources(w: Window): Int32Array {
  const n = count(w.shape);
  const out = new Int32Array(n);
  const idx = new Array(w.shape.length).fill(0);
  let at = w.offset;
  for (let i = 0; i < n; i++) {
    out[i] = at;
    for (let d = w.shape.length - 1; d >= 0; d--) {
      idx[d]++;
      at += w.strides[d];
      if (idx[d] < w.shape[d]) break;
      at -= w.strides[d] * w.shape[d];
      idx[d] = 0;
    }
  }
  return out;
}

/**
 * The window of `outer` read through `inner` (outer indexes inner's output, row-major), or undefined
 * when that is not a strided window. Each outer dimension's stride, as a step in inner's output,
 * becomes the step in inner's input that it causes at the window's start; the result is then
 * checked against the composition for every element.
 */
export function composeWindows(inner: Window, outer: Window): Window | undefined {
  const n = count(outer.shape);
  if (n === 0 || n > 1 << 24) return undefined;
  const innerSrc = sources(inner);
  const at = (j: number) => (j >= 0 && j < innerSrc.length ? innerSrc[j] : undefined);
  const start = at(outer.offset);
  if (start === undefined) return undefined;
  const strides: number[] = [];
  for (let d = 0; d < outer.shape.length; d++) {
    if (outer.shape[d] === 1) {
      strides.push(0);
      continue;
    }
    const next = at(outer.offset + outer.strides[d]);
    if (next === undefined) return undefined;
    strides.push(next - start);
  }
  const w: Window = { shape: [...outer.shape], strides, offset: start };
  if (w.offset < 0) return undefined;
  const want = sources(outer);
  const got = sources(w);
  for (let i = 0; i < n; i++) if (at(want[i]) !== got[i]) return undefined;
  return w;
}

export function fuseCopies(plan: Plan): string[] {
  const changed: string[] = [];
  const readers = new Map<number, PlanOp[]>();
  for (const op of plan.ops) for (const i of op.inputs) if (i >= 0) (readers.get(i) ?? readers.set(i, []).get(i)!).push(op);
  const writer = new Map<number, PlanOp>();
  for (const op of plan.ops) for (const o of op.outputs) if (o >= 0) writer.set(o, op);
  const isOutput = new Set(plan.outputs);
  const dead = new Set<PlanOp>();
  for (const op of plan.ops) {
    const outer = windowOf(op);
    if (!outer || dead.has(op)) continue;
    // walk back through reshaping Copies to a StridedCopy
    let t = op.inputs[0];
    const between: PlanOp[] = [];
    let w = writer.get(t);
    while (w && w.kind === 'Copy' && !dead.has(w)) {
      between.push(w);
      t = w.inputs[0];
      w = writer.get(t);
    }
    const inner = w && !dead.has(w) ? windowOf(w) : undefined;
    if (!w || !inner) continue;
    // every tensor from the inner copy's output on: one reader, not a graph output, one element type
    const chain = [w, ...between.reverse()];
    const src = plan.tensors[w.inputs[0]];
    const ok = chain.every((c) => {
      const o = c.outputs[0];
      return readers.get(o)?.length === 1 && !isOutput.has(o) && !plan.tensors[o].view && plan.tensors[o].dtype === src.dtype;
    });
    if (!ok || plan.tensors[op.outputs[0]].dtype !== src.dtype) continue;
    const fused = composeWindows(inner, outer);
    if (!fused) continue;
    op.inputs = [w.inputs[0]];
    op.attrs = { ...op.attrs, shape: { t: 'I', v: fused.shape }, strides: { t: 'I', v: fused.strides }, offset: { t: 'i', v: fused.offset } };
    op.origin = [...new Set([...chain.flatMap((c) => c.origin), ...op.origin])];
    for (const c of chain) dead.add(c);
    (readers.get(w.inputs[0]) ?? readers.set(w.inputs[0], []).get(w.inputs[0])!).push(op);
    changed.push(op.name);
  }
  plan.ops = plan.ops.filter((op) => !dead.has(op));
  return changed;
}
