/**
 * Strided operands (on the Plan; after copy fusion).
 * Before: X → StridedCopy (a window: heads split out of attention's merged Q/K/V projection, a
 *         transpose) → T → Gemm reading T as its A or B.
 *         Also: Gemm → T → StridedCopy that only permutes T (attention's heads back to [B, S, H, D]).
 * After:  the Gemm reads X in place: the window becomes the operand's start (a_offset / b_offset), its
 *         leading dimension (a_ld / b_ld), its batch strides and, where the window runs down columns,
 *         the transpose flag; the copy is gone. A permuting copy after a Gemm without C or residual
 *         becomes the Gemm's output layout (d_batch_strides / d_ld). (BERT on CUDA: the Q·Kᵀ and S·V
 *         GEMMs read the QKV projection's output directly and S·V writes [B, S, H, D]: 4 copies fewer
 *         per layer.)
 * Handles: T read only by the Gemm, not a graph output or a view, X of T's element type; windows whose
 *          every operand element is reached by one offset, one stride per batch dim and a unit stride
 *          along rows or columns — checked element by element before the Gemm is changed.
 */
import { Plan, PlanOp, attrInt, attrInts, int, ints } from '../lower/plan';
import { sources, windowOf } from './copy-fusion';

interface Operand {
  offset: number;
  ld: number;
  trans: boolean;
  batchStrides: number[];
}

/**
 * The operand layout that reads, from the window's source, what the Gemm read from the window's
 * output `t` (logical element (batch b, row i, column j) of an R x C operand at
 * Σ b·batchStrides + (trans ? j·ld + i : i·ld + j) in t), or undefined.
 */
export function operandThrough(src: Int32Array, batch: number[], current: Operand, R: number, C: number): Operand | undefined {
  const at = (b: number[], i: number, j: number): number =>
    b.reduce((s, x, d) => s + x * current.batchStrides[d], current.offset) + (current.trans ? j * current.ld + i : i * current.ld + j);
  const zero = batch.map(() => 0);
  const through = (b: number[], i: number, j: number): number | undefined => {
    const k = at(b, i, j);
    return k >= 0 && k < src.length ? src[k] : undefined;
  };
  const base = through(zero, 0, 0);
  if (base === undefined) return undefined;
  const step = (b: number[], i: number, j: number) => {
    const v = through(b, i, j);
    return v === undefined ? undefined : v - base;
  };
  const rowStep = R > 1 ? step(zero, 1, 0) : undefined;
  const colStep = C > 1 ? step(zero, 0, 1) : undefined;
  const strides: number[] = [];
  for (let d = 0; d < batch.length; d++) {
    if (batch[d] === 1 || current.batchStrides[d] === 0) {
      strides.push(0);
      continue;
    }
    const b = zero.slice();
    b[d] = 1;
    const s = step(b, 0, 0);
    if (s === undefined || s < 0) return undefined;
    strides.push(s);
  }
  // rows C apart with unit columns, or the transposed form; an extent-1 side takes any step
  let next: Operand;
  if (colStep === undefined || colStep === 1) next = { offset: base, ld: Math.max(rowStep ?? C, C), trans: false, batchStrides: strides };
  else if (rowStep === undefined || rowStep === 1) next = { offset: base, ld: Math.max(colStep, R), trans: true, batchStrides: strides };
  else return undefined;
  if (next.ld <= 0 || (R > 1 && !next.trans && rowStep !== next.ld) || (C > 1 && next.trans && colStep !== next.ld)) return undefined;
  // every element, through the window and through the new layout
  const total = batch.reduce((a, b) => a * b, 1) * R * C;
  if (total > 1 << 24) return undefined;
  const b = zero.slice();
  for (let n = 0; n < total / (R * C); n++) {
    for (let i = 0; i < R; i++)
      for (let j = 0; j < C; j++) {
        const want = through(b, i, j);
        const got = b.reduce((s, x, d) => s + x * next.batchStrides[d], next.offset) + (next.trans ? j * next.ld + i : i * next.ld + j);
        if (want !== got) return undefined;
      }
    for (let d = batch.length - 1; d >= 0; d--) {
      if (++b[d] < batch[d]) break;
      b[d] = 0;
    }
  }
  return next;
}

/**
 * The output layout (batch strides, row stride; unit columns, offset 0) that writes, element for
 * element, where a contiguous [batch..., R, C] result lands after a permuting window (`src`: the
 * window's source index per output element), or undefined.
 */
export function outputThrough(src: Int32Array, batch: number[], R: number, C: number): { batchStrides: number[]; ld: number } | undefined {
  const n = src.length;
  if (n !== batch.reduce((a, b) => a * b, 1) * R * C || n > 1 << 24) return undefined;
  const inv = new Int32Array(n).fill(-1);
  for (let y = 0; y < n; y++) {
    const t = src[y];
    if (t < 0 || t >= n || inv[t] !== -1) return undefined; // not a permutation
    inv[t] = y;
  }
  if (inv[0] !== 0 || (C > 1 && inv[1] !== 1)) return undefined;
  const ld = R > 1 ? inv[C] : C;
  const cont: number[] = new Array(batch.length).fill(0);
  for (let d = batch.length - 1, step = R * C; d >= 0; step *= batch[d], d--) cont[d] = step;
  const batchStrides = batch.map((b, d) => (b > 1 ? inv[cont[d]] : 0));
  if (ld < C || batchStrides.some((x) => x < 0)) return undefined;
  for (let t = 0; t < n; t++) {
    let rest = t;
    let y = 0;
    for (let d = 0; d < batch.length; d++) {
      y += Math.floor(rest / cont[d]) * batchStrides[d];
      rest %= cont[d];
    }
    y += Math.floor(rest / C) * ld + (rest % C);
    if (inv[t] !== y) return undefined;
  }
  return { batchStrides, ld };
}


export function foldOperandWindows(plan: Plan): string[] {
  const changed: string[] = [];
  const readers = new Map<number, number>();
  for (const op of plan.ops) for (const i of op.inputs) if (i >= 0) readers.set(i, (readers.get(i) ?? 0) + 1);
  const writer = new Map<number, PlanOp>();
  for (const op of plan.ops) for (const o of op.outputs) if (o >= 0) writer.set(o, op);
  const outputs = new Set(plan.outputs);
  const dead = new Set<PlanOp>();
  for (const op of plan.ops) {
    if (op.kind !== 'Gemm') continue;
    const M = attrInt(op, 'M', 0), N = attrInt(op, 'N', 0), K = attrInt(op, 'K', 0);
    const batch = attrInts(op, 'batch');
    for (const [slot, p] of [[0, 'a'], [1, 'b']] as const) {
      const t = op.inputs[slot];
      const w = writer.get(t);
      const win = w && !dead.has(w) ? windowOf(w) : undefined;
      if (!w || !win || readers.get(t) !== 1 || outputs.has(t) || plan.tensors[t].view) continue;
      const x = w.inputs[0];
      if (plan.tensors[x].dtype !== plan.tensors[t].dtype) continue;
      const trans = attrInt(op, slot === 0 ? 'transA' : 'transB', 0) !== 0;
      const [R, C] = slot === 0 ? [M, K] : [K, N];
      const current: Operand = {
        offset: attrInt(op, `${p}_offset`, 0),
        ld: attrInt(op, `${p}_ld`, trans ? R : C),
        trans,
        batchStrides: attrInts(op, `${p}_batch_strides`),
      };
      if (current.batchStrides.length !== batch.length) continue;
      const next = operandThrough(sources(win), batch, current, R, C);
      if (!next) continue;
      op.inputs[slot] = x;
      op.attrs = {
        ...op.attrs,
        [slot === 0 ? 'transA' : 'transB']: int(next.trans ? 1 : 0),
        [`${p}_offset`]: int(next.offset),
        [`${p}_ld`]: int(next.ld),
        [`${p}_batch_strides`]: ints(next.batchStrides),
      };
      op.origin = [...new Set([...w.origin, ...op.origin])];
      readers.set(x, (readers.get(x) ?? 0) + 1);
      dead.add(w);
      changed.push(op.name);
    }
  }
  // outputs: a Gemm without C or residual whose result only a permuting copy reads
  const readersOf = new Map<number, PlanOp[]>();
  for (const op of plan.ops) if (!dead.has(op)) for (const i of op.inputs) if (i >= 0) (readersOf.get(i) ?? readersOf.set(i, []).get(i)!).push(op);
  for (const op of plan.ops) {
    if (op.kind !== 'Gemm' || dead.has(op) || (op.inputs[2] ?? -1) >= 0 || (op.inputs[3] ?? -1) >= 0 || op.attrs.d_ld || op.attrs.d_batch_strides) continue;
    const t = op.outputs[0];
    const rd = readersOf.get(t) ?? [];
    const w = rd[0];
    const win = w && !dead.has(w) ? windowOf(w) : undefined;
    if (rd.length !== 1 || !win || outputs.has(t) || plan.tensors[t].view) continue;
    const y = w.outputs[0];
    if (plan.tensors[y].dtype !== plan.tensors[t].dtype || plan.tensors[y].view) continue;
    const lay = outputThrough(sources(win), attrInts(op, 'batch'), attrInt(op, 'M', 0), attrInt(op, 'N', 0));
    if (!lay) continue;
    op.outputs = [y];
    op.attrs = { ...op.attrs, d_batch_strides: ints(lay.batchStrides), d_ld: int(lay.ld) };
    op.origin = [...new Set([...op.origin, ...w.origin])];
    dead.add(w);
    changed.push(op.name);
  }
  plan.ops = plan.ops.filter((op) => !dead.has(op));
  return changed;
}
