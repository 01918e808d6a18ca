/**
 * MatMul with numpy semantics: batch dims broadcast, a 1-D first operand is a row vector [1, K] and a
 * 1-D second operand a column vector [K, 1], their unit dim dropped from the result. Lowers to the
 * native 'Gemm' kind (gemm.ts) with broadcast batch strides; nothing is copied or expanded.
 */
import { Dim } from '../ir/graph';
import { OpContext, registerOp } from './registry';
import { broadcastShapes, rankedShape } from './util';
import { broadcastStrides, nativeGemm } from './gemm';

interface Split<D> {
  batchA: D[];
  batchB: D[];
  M: D;
  K: D;
  KB: D;
  N: D;
  vecA: boolean;
  vecB: boolean;
}

function split<D extends Dim>(ctx: OpContext, a: readonly D[], b: readonly D[]): Split<D> {
  if (a.length === 0 || b.length === 0) ctx.fail('MatMul operands must have rank >= 1, got a scalar', 'SHAPE');
  const vecA = a.length === 1;
  const vecB = b.length === 1;
  const A = vecA ? [1 as D, a[0]] : a;
  const B = vecB ? [b[0], 1 as D] : b;
  const s: Split<D> = {
    batchA: A.slice(0, -2),
    batchB: B.slice(0, -2),
    M: A[A.length - 2],
    K: A[A.length - 1],
    KB: B[B.length - 2],
    N: B[B.length - 1],
    vecA,
    vecB,
  };
  if (typeof s.K === 'number' && typeof s.KB === 'number' && s.K !== s.KB)
    ctx.fail(`inner dimensions differ: [${a.join(',')}] x [${b.join(',')}] (${s.K} vs ${s.KB})`, 'SHAPE');
  return s;
}

function outShape<D extends Dim>(s: Split<D>, batch: D[]): D[] {
  return [...batch, ...(s.vecA ? [] : [s.M]), ...(s.vecB ? [] : [s.N])];
}

registerOp({
  opType: 'MatMul',
  infer(ctx) {
    const s = split(ctx, rankedShape(ctx, 0), rankedShape(ctx, 1));
    const batch = broadcastShapes(ctx, [s.batchA, s.batchB]);
    const dtype = ctx.input(0).dtype;
    if (ctx.input(1).dtype !== dtype) ctx.fail('A and B have different element types');
    return [{ dtype, shape: outShape(s, batch) }];
  },
  lower(ctx) {
    const s = split(ctx, ctx.shapeOf(0), ctx.shapeOf(1));
    const batch = broadcastShapes(ctx, [s.batchA, s.batchB]) as number[];
    // Strides of the batch dims in units of whole matrices' elements.
    const strides = (b: number[], mat: number) => broadcastStrides(b, batch).map((x) => x * mat);
    const node = ctx.node;
    // A fused bias (input 2, set by the optimizer) broadcasts over [...batch, M, N] like Gemm's C.
    const bias = node.inputs[2] ? node.inputs[2] : undefined;
    return [
      nativeGemm(node, [node.inputs[0], node.inputs[1], ...(bias ? [bias] : [])], node.outputs[0], {
        M: s.M,
        N: s.N,
        K: s.K,
        transA: false,
        transB: false,
        // a fused scale (epilogue fusion: attention's 1/√d)
        alpha: node.attrs.get('kiln.alpha')?.type === 'float' ? (node.attrs.get('kiln.alpha') as { value: number }).value : 1,
        beta: bias ? 1 : 0,
        cShape: bias ? ctx.shapeOf(2) : undefined,
        batch,
        aBatchStrides: strides(s.batchA, s.M * s.K),
        bBatchStrides: strides(s.batchB, s.K * s.N),
      }),
    ];
  },
});
