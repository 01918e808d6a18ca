/**
 * Layout assignment (on the Plan, after lowering and before precision assignment).
 * Before: every 4-D activation is stored NCHW ([N, C, H, W], ONNX's layout).
 * After:  regions of layers around 2-D Convs store their 4-D tensors channels-last (NHWC): the tensor
 *         table gives those tensors their physical dims [N, H, W, C]; Conv, Int8Conv and Pool layers in a
 *         region get attribute `channels_last` 1 (a Conv's or Int8Conv's W is stored [M, kH, kW, C/G],
 *         transposed once here; an Int8Conv's float residual, input 3, changes layout with its output, its
 *         per-channel bias does not); Concat's axis is remapped; element-wise layers (Unary, Binary,
 *         Elementwise, Cast, and the QuantizeLinear / DequantizeLinear of int8 engines with one scale and
 *         zero point) need no change, as their broadcast constants are permuted here
 *         ([C,1,1] → [1,1,1,C]); int8 max pools are Pools like any other; window copies
 *         (StridedCopy from Slice/Split, e.g. a merged Conv's split) get their shape and strides remapped,
 *         and Reduce its axes (ReduceMean over H, W is how some exporters write GlobalAveragePool).
 *         One reformat (a StridedCopy) per tensor and direction, shared by all its readers, sits where
 *         a region meets a layer that stays NCHW (a QuantizeLinear that alone reads a graph input
 *         stays NCHW, so that the reformat moves its int8 output rather than the float input); a
 *         tensor whose bytes are the same in both layouts (C = 1, or H·W = 1 such as a
 *         GlobalAveragePool's output) crosses with a Copy instead, which copy elimination turns into a
 *         view.
 * Handles: regions are the connected groups of layers that can run channels-last, joined through the
 *          4-D tensors they read and write; a group is converted only when it holds a Conv or Int8Conv
 *          (a lone pool is not worth a reformat pair). Graph inputs and outputs keep NCHW. The layer kinds
 *          with a `channels_last` attribute join only where the backend runs them channels-last
 *          (`LayoutOptions.channelsLast`: Conv and Pool everywhere; Int8Conv on cuda only, as the CPU int8
 *          convolution is NCHW only). Layers left NCHW: Pools with an Indices output, Convs that are not
 *          2-D, per-axis or blocked (de)quantization, everything whose kernel reads a layout (Reshape
 *          copies, Gemm, Int8Gemm, reductions, ...). Views: none exist yet (concat and copy elimination run
 *          after this pass); a channel concat of NHWC tensors is not contiguous, so concat elimination
 *          leaves it.
 */
import { byteSize } from '../dtype';
import { Plan, PlanOp, PlanTensor, int, ints } from '../lower/plan';

/** NCHW axis → NHWC position: the physical dims of a logical [N, C, H, W] are its dims at PERM. */
const PERM = [0, 2, 3, 1];
const ELEMENTWISE = new Set(['Unary', 'Binary', 'Elementwise', 'Cast']);
/** Convolution kinds: a region holding one of them is worth converting. */
const CONVS = new Set(['Conv', 'Int8Conv']);
/** The kinds whose kernels read attribute `channels_last`. */
const ATTRIBUTED = new Set(['Conv', 'Int8Conv', 'Pool']);

/** The kinds with a `channels_last` attribute that each backend runs channels-last. */
export const CHANNELS_LAST: Readonly<Record<'cpu' | 'cuda', ReadonlySet<string>>> = {
  cpu: new Set(['Conv', 'Pool']),
  // the CUDA int8 kernels take either layout; native/cpu/qconv_int8.cc refuses channels_last
  cuda: new Set(['Conv', 'Pool', 'Int8Conv']),
};

export interface LayoutOptions {
  /** Kinds with a `channels_last` attribute that may run channels-last (default: CHANNELS_LAST.cpu,
   *  the ones every backend takes). */
  channelsLast?: ReadonlySet<string>;
}

export interface LayoutResult {
  /** Layers now running channels-last. */
  converted: string[];
  /** Reformat layers (StridedCopy) added where a channels-last region meets an NCHW layer. */
  reformats: number;
  /** Copy layers added for tensors whose bytes agree in both layouts (views after copy elimination). */
  aliases: number;
}

/** How a layer takes part in a region: the inputs and outputs that change layout with it. */
interface Role {
  /** Inputs stored like the layer's layout (4-D, or broadcast operands padded to 4-D). */
  inputs: number[];
  outputs: number[];
}

const rank4 = (t: PlanTensor | undefined): boolean => !!t && t.shape.length === 4;
const numel = (s: readonly number[]): number => s.reduce((a, b) => a * b, 1);
const pad4 = (s: readonly number[]): number[] => [...Array(4 - s.length).fill(1), ...s];
const nhwcDims = (s: readonly number[]): number[] => PERM.map((a) => pad4(s)[a]);
/** The same bytes in both layouts: no channels, or one spatial position. */
const invariant = (s: readonly number[]): boolean => {
  const p = pad4(s);
  return p[1] === 1 || p[2] * p[3] === 1;
};

function rowStrides(shape: readonly number[]): number[] {
  const st = new Array<number>(shape.length).fill(1);
  for (let d = shape.length - 2; d >= 0; d--) st[d] = st[d + 1] * shape[d + 1];
  return st;
}

/** A StridedCopy that is an axis-aligned window of a 4-D input: per axis a start and a step. */
function windowOf(op: PlanOp, inShape: readonly number[]): { start: number[]; step: number[]; inShape: number[] } | undefined {
  const { shape, strides, offset } = op.attrs;
  if (shape?.t !== 'I' || strides?.t !== 'I' || offset?.t !== 'i' || shape.v.length !== 4 || inShape.length !== 4) return undefined;
  const ist = rowStrides(inShape);
  const step = strides.v.map((s, d) => (shape.v[d] === 1 ? 1 : s / ist[d]));
  if (step.some((s) => !Number.isInteger(s) || s < 1)) return undefined;
  let rest = offset.v;
  const start = ist.map((s) => {
    const q = Math.floor(rest / s);
    rest -= q * s;
    return q;
  });
  const inside = start.every((s0, d) => s0 + (shape.v[d] - 1) * step[d] < inShape[d]);
  return rest === 0 && inside ? { start, step, inShape: [...inShape] } : undefined;
}

function roleOf(plan: Plan, op: PlanOp, channelsLast: ReadonlySet<string>): Role | undefined {
  const T = (i: number) => (i >= 0 ? plan.tensors[i] : undefined);
  const out = T(op.outputs[0]);
  if (op.kind === 'Reduce' && op.attrs.axes?.t === 'I' && rank4(T(op.inputs[0]))) {
    if (rank4(out)) return { inputs: [op.inputs[0]], outputs: [op.outputs[0]] };
    // without keepdims the output lists the kept axes in the input's order: the same in both layouts
    // unless C is kept beside H or W
    const axes = op.attrs.axes.v;
    const kept = [0, 1, 2, 3].filter((a) => !axes.includes(a));
    const same = kept.map((a) => PERM.indexOf(a)).every((q, k, all) => k === 0 || q > all[k - 1]);
    return same ? { inputs: [op.inputs[0]], outputs: [] } : undefined;
  }
  if (!rank4(out)) return undefined;
  switch (op.kind) {
    case 'Conv':
    case 'Int8Conv': {
      // X, W and the residual (input 3) change layout; the bias (input 2) is per channel
      if (!channelsLast.has(op.kind) || op.outputs.length !== 1 || !rank4(T(op.inputs[0])) || !rank4(T(op.inputs[1]))) return undefined;
      const ins = [0, 1, 3].filter((k) => k < op.inputs.length && op.inputs[k] >= 0).map((k) => op.inputs[k]);
      return { inputs: ins, outputs: [op.outputs[0]] };
    }
    case 'Pool':
      if (!channelsLast.has(op.kind) || op.outputs.some((o, k) => k > 0 && o >= 0) || !rank4(T(op.inputs[0]))) return undefined;
      return { inputs: [op.inputs[0]], outputs: [op.outputs[0]] };
    case 'QuantizeLinear':
    case 'DequantizeLinear': {
      // one scale and zero point: element-wise; per-axis and blocked ones index the NCHW channel axis
      const params = op.inputs.slice(1).filter((i) => i >= 0);
      if (op.attrs.mode?.t !== 'i' || op.attrs.mode.v !== 0 || op.outputs.length !== 1 || !rank4(T(op.inputs[0]))) return undefined;
      if (!params.every((i) => numel(T(i)!.shape) === 1)) return undefined;
      return { inputs: [op.inputs[0]], outputs: [op.outputs[0]] };
    }
    case 'Concat':
      if (op.attrs.axis?.t !== 'i' || !op.inputs.every((i) => rank4(T(i)))) return undefined;
      return { inputs: [...op.inputs], outputs: [op.outputs[0]] };
    case 'StridedCopy':
      if (!windowOf(op, T(op.inputs[0])?.shape ?? [])) return undefined;
      return { inputs: [op.inputs[0]], outputs: [op.outputs[0]] };
    default:
      if (!ELEMENTWISE.has(op.kind) || op.outputs.length !== 1) return undefined;
      // every operand broadcasts against the 4-D output (rank <= 4); scalars need no change
      if (!op.inputs.every((i) => i < 0 || T(i)!.shape.length <= 4)) return undefined;
      return { inputs: op.inputs.filter((i) => i >= 0 && numel(T(i)!.shape) > 1), outputs: [op.outputs[0]] };
  }
}

/** Transposes constant data of logical shape `s` (padded to 4-D) to its NHWC order. */
function transposeData(t: PlanTensor): Uint8Array {
  const p = pad4(t.shape);
  const es = byteSize(t.dtype);
  const src = t.data!;
  const dst = new Uint8Array(src.byteLength);
  const [N, C, H, W] = p;
  for (let n = 0; n < N; n++)
    for (let c = 0; c < C; c++)
      for (let h = 0; h < H; h++)
        for (let w = 0; w < W; w++) {
          const from = (((n * C + c) * H + h) * W + w) * es;
          const to = (((n * H + h) * W + w) * C + c) * es;
          dst.set(src.subarray(from, from + es), to);
        }
  return dst;
}

/** Converts the regions of `plan` that hold a 2-D Conv (or Int8Conv) to channels-last, in place. */
export function assignLayout(plan: Plan, options: LayoutOptions = {}): LayoutResult {
  const channelsLast = options.channelsLast ?? CHANNELS_LAST.cpu;
  const roles = plan.ops.map((op) => roleOf(plan, op, channelsLast));
  // A QuantizeLinear that is the only reader of a graph input stays NCHW: the reformat then moves its
  // narrow output (an int8 engine's input: a quarter of the bytes) instead of the float input.
  const readers = new Map<number, number>();
  for (const op of plan.ops) for (const t of op.inputs) if (t >= 0) readers.set(t, (readers.get(t) ?? 0) + 1);
  plan.ops.forEach((op, k) => {
    if (op.kind === 'QuantizeLinear' && plan.inputs.includes(op.inputs[0]) && readers.get(op.inputs[0]) === 1) roles[k] = undefined;
  });
  // union-find over layers: two candidates are joined through a tensor both store in their layout
  const parent = plan.ops.map((_, k) => k);
  const find = (k: number): number => (parent[k] === k ? k : (parent[k] = find(parent[k])));
  const toucher = new Map<number, number>();
  roles.forEach((r, k) => {
    if (!r) return;
    for (const t of [...r.inputs, ...r.outputs]) {
      if (plan.tensors[t].kind === 'constant') continue;
      const j = toucher.get(t);
      if (j === undefined) toucher.set(t, k);
      else parent[find(j)] = find(k);
    }
  });
  const withConv = new Set(plan.ops.flatMap((op, k) => (CONVS.has(op.kind) && roles[k] ? [find(k)] : [])));
  const converted = new Set(plan.ops.filter((_, k) => roles[k] && withConv.has(find(k))));
  const result: LayoutResult = { converted: [], reformats: 0, aliases: 0 };
  if (converted.size === 0) return result;

  // every use of each tensor: does a layer outside the regions (or the caller) see it?
  const nchwUse = new Set<number>([...plan.inputs, ...plan.outputs]);
  const inRegion = new Set<number>();
  plan.ops.forEach((op, k) => {
    const r = roles[k];
    const mine = converted.has(op) ? new Set([...r!.inputs, ...r!.outputs]) : new Set<number>();
    for (const t of [...op.inputs, ...op.outputs]) {
      if (t < 0) continue;
      if (mine.has(t)) inRegion.add(t);
      else nchwUse.add(t);
    }
  });

  // the NHWC version of each region tensor: the tensor itself (re-shaped) when nothing sees it NCHW,
  // else a twin joined to the original by a reformat
  const twin = new Map<number, number>();
  const before = new Map<PlanOp, PlanOp[]>();
  const after = new Map<PlanOp, PlanOp[]>();
  const producer = new Map<number, PlanOp>();
  for (const op of plan.ops) for (const o of op.outputs) if (o >= 0) producer.set(o, op);
  const firstReader = new Map<number, PlanOp>();
  for (const op of plan.ops) if (converted.has(op)) for (const i of op.inputs) if (i >= 0 && !firstReader.has(i)) firstReader.set(i, op);
  const reformat = (src: number, dst: number, toNhwc: boolean): PlanOp => {
    const s = plan.tensors[src];
    const logical = toNhwc ? pad4(s.shape) : pad4(plan.tensors[dst].shape);
    const name = toNhwc ? `${s.name}__to_nhwc` : `${plan.tensors[dst].name}__to_nchw`;
    if (invariant(logical)) {
      result.aliases++;
      return { kind: 'Copy', name, inputs: [src], outputs: [dst], attrs: {}, origin: [] };
    }
    result.reformats++;
    // dst walks its row-major dims; the source's element strides along them
    const srcStrides = rowStrides(pad4(s.shape));
    const strides = toNhwc ? PERM.map((a) => srcStrides[a]) : [srcStrides[0], srcStrides[3], srcStrides[1], srcStrides[2]];
    return { kind: 'StridedCopy', name, inputs: [src], outputs: [dst], attrs: { shape: ints(plan.tensors[dst].shape), strides: ints(strides), offset: int(0) }, origin: [] };
  };
  const nhwcOf = (t: number): number => {
    const have = twin.get(t);
    if (have !== undefined) return have;
    const src = plan.tensors[t];
    let res = t;
    if (!nchwUse.has(t)) {
      if (src.kind === 'constant' && !invariant(src.shape)) src.data = transposeData(src);
      src.shape = nhwcDims(src.shape);
    } else {
      const tw: PlanTensor = { name: `${src.name}__nhwc`, dtype: src.dtype, shape: nhwcDims(src.shape), kind: src.kind === 'constant' ? 'constant' : 'activation' };
      if (src.kind === 'constant') tw.data = invariant(src.shape) ? src.data : transposeData(src);
      res = plan.tensors.push(tw) - 1;
      const p = producer.get(t);
      if (src.kind !== 'constant') {
        if (p && converted.has(p)) (after.get(p) ?? after.set(p, []).get(p)!).push(reformat(res, t, false));
        else {
          const r = firstReader.get(t)!;
          (before.get(r) ?? before.set(r, []).get(r)!).push(reformat(t, res, true));
        }
      }
    }
    twin.set(t, res);
    return res;
  };
  // windows are read off the NCHW shapes, before any tensor is re-shaped
  const windows = new Map(plan.ops.filter((op) => converted.has(op) && op.kind === 'StridedCopy').map((op) => [op, windowOf(op, plan.tensors[op.inputs[0]].shape)!]));
  for (const [k, op] of plan.ops.entries()) {
    if (!converted.has(op)) continue;
    const r = roles[k]!;
    if (ATTRIBUTED.has(op.kind)) op.attrs.channels_last = int(1);
    if (op.kind === 'Concat' && op.attrs.axis.t === 'i') op.attrs.axis = int(PERM.indexOf(op.attrs.axis.v));
    if (op.kind === 'Reduce' && op.attrs.axes.t === 'I') op.attrs.axes = ints(op.attrs.axes.v.map((a) => PERM.indexOf(a)).sort((a, b) => a - b));
    const win = windows.get(op);
    if (win && op.attrs.shape.t === 'I') {
      // the window's start and step per logical axis, times that axis's stride in the NHWC input
      const inShape = win.inShape;
      const ps = rowStrides(nhwcDims(inShape));
      const axisStride = [ps[0], ps[3], ps[1], ps[2]]; // logical axes N, C, H, W
      const shape = op.attrs.shape.v;
      op.attrs.shape = ints(PERM.map((a) => shape[a]));
      op.attrs.strides = ints(PERM.map((a) => win.step[a] * axisStride[a]));
      op.attrs.offset = int(win.start.reduce((acc, s0, a) => acc + s0 * axisStride[a], 0));
    }
    const layoutIn = new Set(r.inputs);
    op.inputs = op.inputs.map((i) => (layoutIn.has(i) ? nhwcOf(i) : i));
    op.outputs = op.outputs.map((o) => (r.outputs.includes(o) ? nhwcOf(o) : o));
    result.converted.push(op.name);
  }
  plan.ops = plan.ops.flatMap((op) => [...(before.get(op) ?? []), op, ...(after.get(op) ?? [])]);
  return result;
}
