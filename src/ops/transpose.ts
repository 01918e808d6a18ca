/**
 * Transpose, and the strided-copy helpers shared by the data-movement ops: Transpose, Slice, Split,
 * Expand, Tile, DepthToSpace and SpaceToDepth all lower to the native kind 'StridedCopy'
 * (native/cpu/strided_copy.cc), whose output walks a view of its input given by shape, strides and
 * offset in elements.
 */
import { ints, int } from '../lower/plan';
import { NativeOp, OpContext, registerOp } from './registry';
import { normAxis, rankedShape } from './util';

/** Row-major strides of a shape, in elements. */
export function stridesOf(shape: readonly number[]): number[] {
  const st = new Array<number>(shape.length).fill(1);
  for (let d = shape.length - 2; d >= 0; d--) st[d] = st[d + 1] * shape[d + 1];
  return st;
}

/** One StridedCopy: `output` (row-major over `shape`) = input[offset + Σ idx[d]·strides[d]]. */
export function stridedCopy(input: string, output: string, shape: readonly number[], strides: readonly number[], offset = 0): NativeOp {
  return { kind: 'StridedCopy', inputs: [input], outputs: [output], attrs: { shape: ints(shape), strides: ints(strides), offset: int(offset) } };
}

function perm(ctx: OpContext): number[] {
  const rank = rankedShape(ctx, 0).length;
  const p = ctx.ints('perm') ?? Array.from({ length: rank }, (_, i) => rank - 1 - i);
  if (p.length !== rank) ctx.fail(`perm [${p.join(',')}] has ${p.length} entries for an input of rank ${rank}`, 'SHAPE');
  const norm = p.map((a) => normAxis(ctx, a, rank, 'perm entry'));
  if (new Set(norm).size !== rank) ctx.fail(`perm [${p.join(',')}] is not a permutation`, 'SHAPE');
  return norm;
}

registerOp({
  opType: 'Transpose',
  infer(ctx) {
    const s = rankedShape(ctx, 0);
    return [{ dtype: ctx.input(0).dtype, shape: perm(ctx).map((a) => s[a]) }];
  },
  lower(ctx) {
    const s = ctx.shapeOf(0);
    const st = stridesOf(s);
    const p = perm(ctx);
    return [stridedCopy(ctx.node.inputs[0], ctx.node.outputs[0], p.map((a) => s[a]), p.map((a) => st[a]))];
  },
});
