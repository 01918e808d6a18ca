/**
 * The Plan: the one contract between TypeScript and the native side (docs/plan-format.md is its
 * specification; native/plan.h decodes it). A flat list of native ops over a table of tensors with
 * static shapes. Ops name native kernels (not ONNX ops) and carry every attribute resolved: the native
 * side applies no ONNX defaults and never sees an ONNX node.
 */
import { DataType } from '../dtype';

export const PLAN_MAGIC = 0x4e4c504b; // 'KPLN' little-endian
export const PLAN_VERSION = 1;

export type TensorKind = 'activation' | 'input' | 'output' | 'constant';
const KIND_CODE: Record<TensorKind, number> = { activation: 0, input: 1, output: 2, constant: 3 };

export interface PlanTensor {
  name: string;
  dtype: DataType;
  shape: number[];
  kind: TensorKind;
  /** Constant contents (kind 'constant'), little-endian, row-major. */
  data?: Uint8Array;
  /** This tensor is a window into another one (e.g. a slice of a Concat's output): no storage of its own. */
  view?: { base: number; byteOffset: number };
}

export type PlanAttr =
  | { t: 'i'; v: number }
  | { t: 'f'; v: number }
  | { t: 's'; v: string }
  | { t: 'I'; v: number[] }
  | { t: 'F'; v: number[] }
  | { t: 'p'; v: Plan };

export const int = (v: number | boolean): PlanAttr => ({ t: 'i', v: Number(v) });
export const float = (v: number): PlanAttr => ({ t: 'f', v });
export const str = (v: string): PlanAttr => ({ t: 's', v });
export const ints = (v: readonly number[]): PlanAttr => ({ t: 'I', v: [...v] });
/** An op's integer attribute, `dflt` when it has none. */
export const attrInt = (op: PlanOp, k: string, dflt: number): number => (op.attrs[k]?.t === 'i' ? (op.attrs[k] as { v: number }).v : dflt);
/** An op's integer-list attribute, [] when it has none. */
export const attrInts = (op: PlanOp, k: string): number[] => (op.attrs[k]?.t === 'I' ? (op.attrs[k] as { v: number[] }).v : []);
export const floats = (v: readonly number[]): PlanAttr => ({ t: 'F', v: [...v] });
export const subplan = (v: Plan): PlanAttr => ({ t: 'p', v });

export interface PlanOp {
  /** Native op kind, e.g. 'Conv', 'Binary', 'Unary'. */
  kind: string;
  /** Layer name shown in reports (the ONNX node name it came from, or a fused name). */
  name: string;
  /** Tensor indices; -1 for an omitted optional input. */
  inputs: number[];
  outputs: number[];
  attrs: Record<string, PlanAttr>;
  /** The ONNX node names this layer was made from. */
  origin: string[];
}

export interface Plan {
  tensors: PlanTensor[];
  ops: PlanOp[];
  inputs: number[];
  outputs: number[];
}

const ATTR_CODE = { i: 1, f: 2, s: 3, I: 4, F: 5, p: 6 } as const;

class Writer {
  private buf = new Uint8Array(1 << 12);
  private dv = new DataView(this.buf.buffer);
  len = 0;
  private grow(n: number): void {
    if (this.len + n <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < this.len + n) cap *= 2;
    const next = new Uint8Array(cap);
    next.set(this.buf.subarray(0, this.len));
    this.buf = next;
    this.dv = new DataView(next.buffer);
  }
  u8(v: number): void {
    this.grow(1);
    this.buf[this.len++] = v;
  }
  u32(v: number): void {
    this.grow(4);
    this.dv.setUint32(this.len, v, true);
    this.len += 4;
  }
  i32(v: number): void {
    this.grow(4);
    this.dv.setInt32(this.len, v, true);
    this.len += 4;
  }
  i64(v: number): void {
    this.grow(8);
    this.dv.setBigInt64(this.len, BigInt(Math.trunc(v)), true);
    this.len += 8;
  }
  f64(v: number): void {
    this.grow(8);
    this.dv.setFloat64(this.len, v, true);
    this.len += 8;
  }
  bytes(b: Uint8Array): void {
    this.u64(b.byteLength);
    this.grow(b.byteLength);
    this.buf.set(b, this.len);
    this.len += b.byteLength;
  }
  u64(v: number): void {
    this.grow(8);
    this.dv.setBigUint64(this.len, BigInt(v), true);
    this.len += 8;
  }
  str(s: string): void {
    const b = Buffer.from(s, 'utf8');
    this.u32(b.byteLength);
    this.grow(b.byteLength);
    this.buf.set(b, this.len);
    this.len += b.byteLength;
  }
  done(): Uint8Array {
    return this.buf.slice(0, this.len);
  }
}

function writePlan(w: Writer, p: Plan): void {
  w.u32(PLAN_MAGIC);
  w.u32(PLAN_VERSION);
  w.u32(p.tensors.length);
  for (const t of p.tensors) {
    w.str(t.name);
    w.u32(t.dtype);
    w.u32(t.shape.length);
    for (const d of t.shape) w.i64(d);
    w.u8(KIND_CODE[t.kind]);
    w.i32(t.view ? t.view.base : -1);
    w.u64(t.view ? t.view.byteOffset : 0);
    w.bytes(t.kind === 'constant' && t.data ? t.data : new Uint8Array(0));
  }
  w.u32(p.ops.length);
  for (const op of p.ops) {
    w.str(op.kind);
    w.str(op.name);
    w.u32(op.inputs.length);
    for (const i of op.inputs) w.i32(i);
    w.u32(op.outputs.length);
    for (const o of op.outputs) w.i32(o);
    const keys = Object.keys(op.attrs).sort();
    w.u32(keys.length);
    for (const k of keys) {
      const a = op.attrs[k];
      w.str(k);
      w.u8(ATTR_CODE[a.t]);
      switch (a.t) {
        case 'i':
          w.i64(a.v);
          break;
        case 'f':
          w.f64(a.v);
          break;
        case 's':
          w.str(a.v);
          break;
        case 'I':
          w.u32(a.v.length);
          for (const x of a.v) w.i64(x);
          break;
        case 'F':
          w.u32(a.v.length);
          for (const x of a.v) w.f64(x);
          break;
        case 'p': {
          const inner = new Writer();
          writePlan(inner, a.v);
          w.bytes(inner.done());
          break;
        }
      }
    }
    w.u32(op.origin.length);
    for (const o of op.origin) w.str(o);
  }
  w.u32(p.inputs.length);
  for (const i of p.inputs) w.i32(i);
  w.u32(p.outputs.length);
  for (const o of p.outputs) w.i32(o);
}

/** Encodes a Plan into the binary form the addon reads (docs/plan-format.md). */
export function encodePlan(p: Plan): Uint8Array {
  const w = new Writer();
  writePlan(w, p);
  return w.done();
}
