/**
 * Reductions: one table for the Reduce* ops (native kind 'Reduce', the operation as attribute `op`)
 * and ArgMax/ArgMin (native kind 'ArgReduce'). The axes come from the `axes` attribute before the
 * opset where they became an input (13 for ReduceSum, 18 for the others); the input must then be a
 * constant, or an empty tensor (whose shape alone says "no axes"). No axes means all axes, or a copy
 * of the input when noop_with_empty_axes is set.
 */
import { DataType } from '../dtype';
import { Dim } from '../ir/graph';
import { int, ints, str } from '../lower/plan';
import { OpContext, registerOp } from './registry';
import { normAxis, rankedShape } from './util';

/** [ONNX op, native op, opset from which axes is an input]. */
const TABLE: [string, string, number][] = [
  ['ReduceSum', 'Sum', 13],
  ['ReduceMean', 'Mean', 18],
  ['ReduceMax', 'Max', 18],
  ['ReduceMin', 'Min', 18],
  ['ReduceProd', 'Prod', 18],
  ['ReduceL1', 'L1', 18],
  ['ReduceL2', 'L2', 18],
  ['ReduceLogSum', 'LogSum', 18],
  ['ReduceLogSumExp', 'LogSumExp', 18],
  ['ReduceSumSquare', 'SumSquare', 18],
];

/** The reduced axes (normalized, sorted, unique), or 'noop' when the node copies its input. */
function reducedAxes(ctx: OpContext, rank: number, axesInputFrom: number): number[] | 'noop' {
  let axes: number[] | undefined;
  let noop = false;
  if (ctx.opset >= axesInputFrom) {
    noop = ctx.int('noop_with_empty_axes', 0) !== 0;
    const v = ctx.inputs[1];
    if (v) {
      axes = ctx.constValues(1);
      if (!axes) {
        if (v.shape && v.shape.length === 1 && v.shape[0] === 0) axes = [];
        else ctx.requireConst(1, 'axes');
      }
    }
  } else axes = ctx.ints('axes');
  if (!axes || axes.length === 0) {
    if (noop) return 'noop';
    return [...Array(rank).keys()];
  }
  const set = new Set(axes.map((a) => normAxis(ctx, a, rank, 'reduce axis')));
  if (set.size !== axes.length) ctx.fail(`axes [${axes.join(',')}] name an axis twice`);
  return [...set].sort((a, b) => a - b);
}

function reducedShape(shape: Dim[], axes: number[], keepdims: boolean): Dim[] {
  const out: Dim[] = [];
  shape.forEach((d, k) => {
    if (!axes.includes(k)) out.push(d);
    else if (keepdims) out.push(1);
  });
  return out;
}

for (const [opType, op, axesInputFrom] of TABLE) {
  registerOp({
    opType,
    infer(ctx) {
      const shape = rankedShape(ctx, 0);
      const axes = reducedAxes(ctx, shape.length, axesInputFrom);
      const dtype = ctx.input(0).dtype;
      if (axes === 'noop') return [{ dtype, shape: [...shape] }];
      return [{ dtype, shape: reducedShape(shape, axes, ctx.int('keepdims', 1) !== 0) }];
    },
    lower(ctx) {
      const shape = rankedShape(ctx, 0);
      const axes = reducedAxes(ctx, shape.length, axesInputFrom);
      const x = ctx.node.inputs[0];
      if (axes === 'noop') return [{ kind: 'Copy', inputs: [x], outputs: ctx.node.outputs, attrs: {} }];
      return [{ kind: 'Reduce', inputs: [x], outputs: ctx.node.outputs, attrs: { op: str(op), axes: ints(axes) } }];
    },
  });
}

for (const [opType, op] of [['ArgMax', 'max'], ['ArgMin', 'min']] as const) {
  registerOp({
    opType,
    infer(ctx) {
      const shape = rankedShape(ctx, 0);
      const axis = normAxis(ctx, ctx.int('axis', 0), shape.length);
      if (shape[axis] === 0) ctx.fail(`cannot take the ${opType} of axis ${axis}, which is empty`, 'SHAPE');
      return [{ dtype: DataType.INT64, shape: reducedShape(shape, [axis], ctx.int('keepdims', 1) !== 0) }];
    },
    lower(ctx) {
      const axis = normAxis(ctx, ctx.int('axis', 0), rankedShape(ctx, 0).length);
      const attrs = { op: str(op), axis: int(axis), select_last: int(ctx.int('select_last_index', 0) !== 0) };
      return [{ kind: 'ArgReduce', inputs: [ctx.node.inputs[0]], outputs: ctx.node.outputs, attrs }];
    },
  });
}
