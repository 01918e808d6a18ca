/**
 * Normalizations. LayerNormalization, RMSNormalization, InstanceNormalization, GroupNormalization,
 * MeanVarianceNormalization and LpNormalization all lower to the native 'Normalize' kind: the input
 * viewed with some shape, groups reduced over some axes of that view, a mode, and scale/bias given
 * with their broadcast shapes in the view. BatchNormalization (inference) and LRN have kinds of their
 * own.
 */
import { DataType } from '../dtype';
import { Dim } from '../ir/graph';
import { float, int, ints, str } from '../lower/plan';
import { NativeOp, OpContext, registerOp } from './registry';
import { normAxis, rankedShape } from './util';

interface NormSpec {
  mode: 'meanvar' | 'rms' | 'l1' | 'l2';
  view: number[];
  axes: number[];
  epsilon: number;
  epsOutside?: boolean;
  /** Broadcast shapes of inputs 1 (scale) and 2 (bias) in the view's rank; undefined when absent. */
  scale?: number[];
  bias?: number[];
}

function normalizeOp(ctx: OpContext, s: NormSpec): NativeOp {
  const ins = [ctx.node.inputs[0], s.scale ? ctx.node.inputs[1] : '', s.bias ? ctx.node.inputs[2] : ''];
  while (ins.length > 1 && ins[ins.length - 1] === '') ins.pop();
  return {
    kind: 'Normalize',
    inputs: ins,
    outputs: ctx.node.outputs,
    attrs: {
      mode: str(s.mode),
      view: ints(s.view),
      axes: ints(s.axes),
      epsilon: float(s.epsilon),
      eps_outside: int(s.epsOutside ?? false),
      scale_shape: ints(s.scale ?? []),
      bias_shape: ints(s.bias ?? []),
    },
  };
}

/** Right-aligns a parameter's shape to rank r, failing when it does not broadcast to `target`. */
function paramShape(ctx: OpContext, i: number, target: number[], what: string): number[] | undefined {
  if (!ctx.inputs[i]) return undefined;
  const s = ctx.shapeOf(i);
  if (s.length > target.length) ctx.fail(`${what} has rank ${s.length}, more than the input's ${target.length}`, 'SHAPE');
  const full = [...Array(target.length - s.length).fill(1), ...s];
  full.forEach((d, k) => {
    if (d !== 1 && d !== target[k]) ctx.fail(`${what} of shape [${s.join(',')}] does not broadcast to [${target.join(',')}]`, 'SHAPE');
  });
  return full;
}

const range = (a: number, b: number) => [...Array(Math.max(0, b - a)).keys()].map((k) => k + a);
const same = (ctx: OpContext) => [{ dtype: ctx.input(0).dtype, shape: [...rankedShape(ctx, 0)] }];

/** A normalization whose whole lowering is one Normalize op described by `spec`. */
function simple(opType: string, spec: (ctx: OpContext, shape: number[]) => NormSpec, check?: (ctx: OpContext, shape: Dim[]) => void): void {
  registerOp({
    opType,
    infer(ctx) {
      check?.(ctx, rankedShape(ctx, 0));
      return same(ctx);
    },
    lower: (ctx) => [normalizeOp(ctx, spec(ctx, ctx.shapeOf(0)))],
  });
}

// LayerNormalization and RMSNormalization: groups are the dims from `axis` on.
for (const [opType, mode] of [['LayerNormalization', 'meanvar'], ['RMSNormalization', 'rms']] as const) {
  registerOp({
    opType,
    infer(ctx) {
      const shape = rankedShape(ctx, 0);
      const axis = normAxis(ctx, ctx.int('axis', -1), shape.length);
      const stash = ctx.int('stash_type', 1);
      if (![DataType.FLOAT, DataType.DOUBLE, DataType.FLOAT16, DataType.BFLOAT16].includes(stash))
        ctx.fail(`stash_type ${stash} is not a floating-point type`);
      const y = { dtype: ctx.input(0).dtype, shape: [...shape] };
      if (opType === 'RMSNormalization') return [y];
      const stats = { dtype: stash as DataType, shape: shape.map((d, k) => (k < axis ? d : 1)) };
      return [y, stats, stats];
    },
    lower(ctx) {
      const shape = ctx.shapeOf(0);
      const axis = normAxis(ctx, ctx.int('axis', -1), shape.length);
      const spec: NormSpec = {
        mode,
        view: shape,
        axes: range(axis, shape.length),
        epsilon: ctx.float('epsilon', 1e-5),
        scale: paramShape(ctx, 1, shape, 'Scale'),
        bias: paramShape(ctx, 2, shape, 'B'),
      };
      return [normalizeOp(ctx, spec)];
    },
  });
}

const needRank = (min: number) => (ctx: OpContext, shape: Dim[]) => {
  if (shape.length < min) ctx.fail(`needs an input of rank >= ${min}, got rank ${shape.length}`, 'SHAPE');
};
const channelParam = (ctx: OpContext, i: number, shape: number[], what: string): number[] => {
  const s = ctx.shapeOf(i);
  const n = s.reduce((a, b) => a * b, 1);
  if (n !== shape[1]) ctx.fail(`${what} has ${n} elements; expected one per channel (${shape[1]})`, 'SHAPE');
  return shape.map((d, k) => (k === 1 ? d : 1));
};

simple(
  'InstanceNormalization',
  (ctx, shape) => ({
    mode: 'meanvar',
    view: shape,
    axes: range(2, shape.length),
    epsilon: ctx.float('epsilon', 1e-5),
    scale: channelParam(ctx, 1, shape, 'scale'),
    bias: channelParam(ctx, 2, shape, 'B'),
  }),
  needRank(3),
);

simple(
  'GroupNormalization',
  (ctx, shape) => {
    const G = ctx.int('num_groups');
    if (G === undefined) return ctx.fail("attribute 'num_groups' is required");
    const [N, C] = shape;
    if (G <= 0 || C % G !== 0) ctx.fail(`num_groups ${G} does not divide the ${C} channels`, 'SHAPE');
    const S = shape.slice(2).reduce((a, b) => a * b, 1);
    // Opset 18 took scale and bias per group; opset 21 per channel.
    const perGroup = ctx.opset < 21;
    const expect = perGroup ? G : C;
    const param = (i: number, what: string) => {
      const n = ctx.shapeOf(i).reduce((a, b) => a * b, 1);
      if (n !== expect) ctx.fail(`${what} has ${n} elements; expected ${expect} (one per ${perGroup ? 'group' : 'channel'})`, 'SHAPE');
      return perGroup ? [1, G, 1, 1] : [1, G, C / G, 1];
    };
    return {
      mode: 'meanvar',
      view: [N, G, C / G, S],
      axes: [2, 3],
      epsilon: ctx.float('epsilon', 1e-5),
      scale: param(1, 'scale'),
      bias: param(2, 'bias'),
    };
  },
  needRank(2),
);

simple('MeanVarianceNormalization', (ctx, shape) => {
  const axes = ctx.ints('axes') ?? [0, 2, 3];
  const norm = [...new Set(axes.map((a) => normAxis(ctx, a, shape.length)))].sort((a, b) => a - b);
  return { mode: 'meanvar', view: shape, axes: norm, epsilon: 1e-9, epsOutside: true };
});

simple(
  'LpNormalization',
  (ctx, shape) => {
    const p = ctx.int('p', 2);
    if (p !== 1 && p !== 2) ctx.fail(`p must be 1 or 2, got ${p}`);
    return { mode: p === 1 ? 'l1' : 'l2', view: shape, axes: [normAxis(ctx, ctx.int('axis', -1), shape.length)], epsilon: 0 };
  },
  (ctx, shape) => {
    normAxis(ctx, ctx.int('axis', -1), shape.length);
  },
);

registerOp({
  opType: 'BatchNormalization',
  infer(ctx) {
    if (ctx.int('training_mode', 0) !== 0)
      ctx.fail('training_mode=1 (batch statistics and running-mean outputs) is not supported: kiln compiles inference graphs', 'UNSUPPORTED');
    if (ctx.node.outputs.slice(1).some((o) => o !== ''))
      ctx.fail('the running-mean/variance outputs exist only in training mode, which is not supported', 'UNSUPPORTED');
    const shape = rankedShape(ctx, 0);
    needRank(2)(ctx, shape);
    const names = ['scale', 'B', 'input_mean', 'input_var'];
    for (let i = 1; i <= 4; i++) {
      const s = ctx.input(i).shape;
      const n = s?.every((d) => typeof d === 'number') ? (s as number[]).reduce((a, b) => a * b, 1) : undefined;
      if (n !== undefined && typeof shape[1] === 'number' && n !== shape[1])
        ctx.fail(`${names[i - 1]} has ${n} elements; expected one per channel (${shape[1]})`, 'SHAPE');
    }
    return same(ctx);
  },
  lower(ctx) {
    const ins = ctx.node.inputs.slice(0, 5);
    return [{ kind: 'BatchNorm', inputs: ins, outputs: [ctx.node.outputs[0]], attrs: { epsilon: float(ctx.float('epsilon', 1e-5)) } }];
  },
});

registerOp({
  opType: 'LRN',
  infer(ctx) {
    needRank(3)(ctx, rankedShape(ctx, 0));
    const size = ctx.int('size');
    if (size === undefined || size <= 0) ctx.fail("attribute 'size' is required and must be positive");
    return same(ctx);
  },
  lower(ctx) {
    const attrs = {
      size: int(ctx.int('size', 1)),
      alpha: float(ctx.float('alpha', 1e-4)),
      beta: float(ctx.float('beta', 0.75)),
      bias: float(ctx.float('bias', 1.0)),
    };
    return [{ kind: 'LRN', inputs: [ctx.node.inputs[0]], outputs: ctx.node.outputs, attrs }];
  },
});
