/**
 * Pooling: MaxPool (optional Indices output), AveragePool, LpPool and their Global forms, all one
 * native kind 'Pool' (attr `mode`). TS resolves auto_pad and ceil_mode into explicit pads and the
 * output shape; the kernel reads the output's spatial shape from its tensor.
 */
import { DataType } from '../dtype';
import { Dim } from '../ir/graph';
import { float, int, ints, str } from '../lower/plan';
import { OpContext, OutputInfo, registerOp } from './registry';
import { rankedShape } from './util';

interface Geometry {
  kernel: number[];
  strides: number[];
  dilations: number[];
  pads: number[]; // begins then ends
  out: number[]; // spatial output dims
}

/** Kernel, strides, dilations, pads and output dims of a windowed pool over the spatial dims `sp`. */
export function poolGeometry(ctx: OpContext, sp: number[]): Geometry {
  const n = sp.length;
  const kernel = ctx.ints('kernel_shape');
  if (!kernel) return ctx.fail("attribute 'kernel_shape' is required");
  if (kernel.length !== n) ctx.fail(`kernel_shape has ${kernel.length} dims but the input has ${n} spatial dims`, 'SHAPE');
  const strides = ctx.ints('strides') ?? Array(n).fill(1);
  const dilations = ctx.ints('dilations') ?? Array(n).fill(1);
  if (strides.length !== n || dilations.length !== n) ctx.fail(`strides and dilations need ${n} values`, 'SHAPE');
  if ([...kernel, ...strides, ...dilations].some((v) => v <= 0)) ctx.fail('kernel_shape, strides and dilations must be positive');
  const autoPad = ctx.string('auto_pad', 'NOTSET');
  const ceil = ctx.int('ceil_mode', 0) !== 0;
  let pads = ctx.ints('pads') ?? Array(2 * n).fill(0);
  if (pads.length !== 2 * n) ctx.fail(`pads needs ${2 * n} values, got ${pads.length}`, 'SHAPE');
  const out: number[] = [];
  const ek = kernel.map((k, i) => (k - 1) * dilations[i] + 1);
  if (autoPad === 'SAME_UPPER' || autoPad === 'SAME_LOWER') {
    pads = Array(2 * n).fill(0);
    for (let i = 0; i < n; i++) {
      const o = Math.ceil(sp[i] / strides[i]);
      const total = Math.max(0, (o - 1) * strides[i] + ek[i] - sp[i]);
      const small = Math.floor(total / 2);
      pads[i] = autoPad === 'SAME_UPPER' ? small : total - small;
      pads[i + n] = total - pads[i];
      out.push(o);
    }
  } else if (autoPad === 'VALID' || autoPad === 'NOTSET') {
    if (autoPad === 'VALID') pads = Array(2 * n).fill(0);
    for (let i = 0; i < n; i++) {
      const span = sp[i] + pads[i] + pads[i + n] - ek[i];
      if (span < 0) ctx.fail(`the window (${ek[i]} with dilation) is larger than the padded input dim ${i + 2} (${sp[i] + pads[i] + pads[i + n]})`, 'SHAPE');
      let o = (ceil ? Math.ceil(span / strides[i]) : Math.floor(span / strides[i])) + 1;
      // the last window must start inside the input or its begin padding
      if (ceil && (o - 1) * strides[i] >= sp[i] + pads[i]) o--;
      out.push(o);
    }
  } else ctx.fail(`auto_pad '${autoPad}' is not one of NOTSET, SAME_UPPER, SAME_LOWER, VALID`);
  return { kernel, strides, dilations, pads, out };
}

function spatial(ctx: OpContext): { shape: Dim[]; sp: number[] } {
  const shape = rankedShape(ctx, 0);
  if (shape.length < 3) ctx.fail(`needs an input of shape [N, C, spatial...], got rank ${shape.length}`, 'SHAPE');
  const sp = shape.slice(2);
  if (sp.some((d) => typeof d !== 'number')) ctx.fail('the spatial dims must be static', 'SHAPE');
  return { shape, sp: sp as number[] };
}

type Mode = 'max' | 'avg' | 'lp';

function register(opType: string, mode: Mode, global: boolean): void {
  const geometry = (ctx: OpContext, sp: number[]): Geometry =>
    global
      ? { kernel: sp, strides: sp.map(() => 1), dilations: sp.map(() => 1), pads: [...sp, ...sp].map(() => 0), out: sp.map(() => 1) }
      : poolGeometry(ctx, sp);
  registerOp({
    opType,
    infer(ctx) {
      const { shape, sp } = spatial(ctx);
      const g = geometry(ctx, sp);
      const y: OutputInfo = { dtype: ctx.input(0).dtype, shape: [shape[0], shape[1], ...g.out] };
      if (mode !== 'max' && ctx.node.outputs.length > 1) ctx.fail('has more than one output');
      if (mode === 'max' && ctx.node.outputs.length > 1) return [y, { dtype: DataType.INT64, shape: [...y.shape] }];
      return [y];
    },
    lower(ctx) {
      const { sp } = spatial(ctx);
      const g = geometry(ctx, sp);
      const p = mode === 'lp' ? ctx.int('p', 2) : 2;
      if (p <= 0) ctx.fail(`p must be positive, got ${p}`);
      const attrs = {
        mode: str(mode),
        kernel: ints(g.kernel),
        strides: ints(g.strides),
        dilations: ints(g.dilations),
        pads: ints(g.pads),
        count_include_pad: int(mode === 'avg' && ctx.int('count_include_pad', 0) !== 0),
        storage_order: int(mode === 'max' && ctx.int('storage_order', 0) !== 0),
        p: float(p),
      };
      return [{ kind: 'Pool', inputs: [ctx.node.inputs[0]], outputs: ctx.node.outputs, attrs }];
    },
  });
}

register('MaxPool', 'max', false);
register('AveragePool', 'avg', false);
register('LpPool', 'lp', false);
register('GlobalMaxPool', 'max', true);
register('GlobalAveragePool', 'avg', true);
register('GlobalLpPool', 'lp', true);
