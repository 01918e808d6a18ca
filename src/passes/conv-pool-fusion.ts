/**
 * Conv-pool fusion (on the Plan; CUDA int8 engines, after layout assignment).
 * Before: Int8Conv (channels-last, int8 output) → its only reader, a max Pool (channels-last) —
 *         ResNet's stem: conv1 (7x7 stride 2 over 3 channels into 64) and the 3x3 stride 2 max pool.
 * After:  one Int8ConvPool layer: the convolution's attributes plus pool_kernel, pool_strides and
 *         pool_pads, its output the pool's. The stem kernel (cuda/int8_conv_stem.cu) max-pools its
 *         int8 outputs in shared memory, so the convolution's output (four times the pool's bytes)
 *         is never written, read back, or launched for.
 * Handles: exactly what that kernel runs (native/cuda/int8_conv_stem.cu's stem_fits and stem_pool_fits):
 *          a 2-D convolution of one group, stride 2, dilation 1, int8 activations with zero point 0 and
 *          at most 4 channels, 64 output channels, a window that space-to-depth makes 4x4 blocks
 *          (7x7 pad 2 or 3, 8x8 pad 4, ...), constant W, no residual, an int8/uint8 output with the
 *          folded epilogue (no activation, ReLU or Clip); a 2-D max pool of dilation 1 without
 *          Indices whose window and strides fit a block's region, pads smaller than the window. The
 *          convolution's output is no graph output and no view. cpu.int8_conv_pool is the reference.
 */
import { DataType } from '../dtype';
import { Plan, PlanOp, attrInt, attrInts, ints } from '../lower/plan';

const same = (a: number[], b: number[]) => a.length === b.length && a.every((x, i) => x === b[i]);

/** Block taps of space-to-depth with stride s: window taps k with leading pad p read blocks floor((t − p) / s). */
const s2dTaps = (k: number, p: number, s: number) => Math.floor((k - 1 - p) / s) - Math.floor(-p / s) + 1;

/** Pool outputs per block (rows, columns) whose convolution region fits 256 positions, at most 17 wide. */
export function poolTile(k: number[], s: number[]): [number, number] | undefined {
  const c = Math.floor((17 - k[1]) / s[1]) + 1;
  const cw = (c - 1) * s[1] + k[1];
  if (c < 1 || cw > 17) return undefined;
  const r = Math.floor((Math.floor(256 / cw) - k[0]) / s[0]) + 1;
  return r >= 1 && (r - 1) * s[0] + k[0] <= Math.floor(256 / cw) ? [r, c] : undefined;
}

/** Whether the stem kernel takes the convolution (stored channels-last: X [N, H, W, C], W [M, kH, kW, C]). */
function stemConv(plan: Plan, op: PlanOp): boolean {
  if (op.kind !== 'Int8Conv' || attrInt(op, 'channels_last', 0) !== 1 || attrInt(op, 'group', 1) !== 1) return false;
  if ((op.inputs[3] ?? -1) >= 0 || plan.tensors[op.inputs[1]]?.kind !== 'constant') return false;
  const x = plan.tensors[op.inputs[0]];
  const y = plan.tensors[op.outputs[0]];
  const w = plan.tensors[op.inputs[1]];
  if (x.dtype !== DataType.INT8 || attrInt(op, 'x_zero_point', 0) !== 0 || (y.dtype !== DataType.INT8 && y.dtype !== DataType.UINT8)) return false;
  const act = op.attrs.activation;
  if (act && !(act.t === 's' && ['none', 'relu', 'clip'].includes(act.v))) return false;
  if (x.shape.length !== 4 || w.shape.length !== 4 || x.shape[3] > 4 || w.shape[0] !== 64) return false;
  const pads = attrInts(op, 'pads');
  if (!same(attrInts(op, 'strides'), [2, 2]) || !same(attrInts(op, 'dilations'), [1, 1]) || pads.length !== 4) return false;
  return [0, 1].every((i) => s2dTaps(w.shape[1 + i], pads[i], 2) === 4);
}

function maxPool(op: PlanOp): boolean {
  if (op.kind !== 'Pool' || op.attrs.mode?.v !== 'max' || attrInt(op, 'channels_last', 0) !== 1 || op.outputs.filter((o) => o >= 0).length !== 1) return false;
  const k = attrInts(op, 'kernel');
  const s = attrInts(op, 'strides');
  const p = attrInts(op, 'pads');
  if (k.length !== 2 || s.length !== 2 || p.length !== 4 || !same(attrInts(op, 'dilations'), [1, 1])) return false;
  return p.every((v, i) => v >= 0 && v < k[i % 2]) && s.every((v) => v >= 1) && poolTile(k, s) !== undefined;
}

export function fuseConvPool(plan: Plan): string[] {
  const changed: string[] = [];
  const readers = new Map<number, PlanOp[]>();
  for (const op of plan.ops) for (const i of op.inputs) if (i >= 0) (readers.get(i) ?? readers.set(i, []).get(i)!).push(op);
  const outputs = new Set(plan.outputs);
  const dead = new Set<PlanOp>();
  for (const conv of plan.ops) {
    const t = conv.outputs[0];
    const rd = readers.get(t) ?? [];
    if (rd.length !== 1 || outputs.has(t) || plan.tensors[t].view || !stemConv(plan, conv) || !maxPool(rd[0]) || rd[0].inputs[0] !== t) continue;
    const pool = rd[0];
    if (plan.tensors[pool.outputs[0]].dtype !== plan.tensors[t].dtype) continue;
    conv.kind = 'Int8ConvPool';
    conv.outputs = [pool.outputs[0]];
    conv.attrs = { ...conv.attrs, pool_kernel: ints(attrInts(pool, 'kernel')), pool_strides: ints(attrInts(pool, 'strides')), pool_pads: ints(attrInts(pool, 'pads')) };
    conv.origin = [...new Set([...conv.origin, ...pool.origin])];
    dead.add(pool);
    changed.push(conv.name);
  }
  plan.ops = plan.ops.filter((op) => !dead.has(op));
  return changed;
}
