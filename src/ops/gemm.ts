/**
 * Gemm: Y = alpha * A' * B' + beta * C, with A' = transA ? Aᵀ : A, B' likewise, and C (optional from
 * opset 11) unidirectionally broadcast to [M, N]. Lowers to the native kind 'Gemm', which MatMul shares
 * (matmul.ts): batched, with broadcast batch strides, a strided C and an epilogue activation slot that
 * the graph optimizer fills when it fuses a following activation or residual add.
 */
import { Node } from '../ir/graph';
import { float, int, ints } from '../lower/plan';
import { epilogueAttrs, residualOf } from './epilogue';
import { NativeOp, OpContext, registerOp } from './registry';
import { rankedShape } from './util';

/** Element strides of `shape` broadcast (numpy rules, right-aligned) to `out`: 0 along broadcast dims. */
export function broadcastStrides(shape: readonly number[], out: readonly number[]): number[] {
  const own: number[] = new Array(shape.length).fill(1);
  for (let d = shape.length - 2; d >= 0; d--) own[d] = own[d + 1] * shape[d + 1];
  const off = out.length - shape.length;
  return out.map((o, d) => (d < off || (shape[d - off] === 1 && o !== 1) ? 0 : own[d - off]));
}

export interface GemmParams {
  M: number;
  N: number;
  K: number;
  transA: boolean;
  transB: boolean;
  alpha: number;
  beta: number;
  /** Output batch dims, and the element strides of A and B along them (0 where broadcast). */
  batch: number[];
  aBatchStrides: number[];
  bBatchStrides: number[];
  /** Shape of the optional C, broadcast to [...batch, M, N]. */
  cShape?: number[];
}

/** The native 'Gemm' op (see native/cpu/gemm.cc for the attribute contract), with the node's fused epilogue. */
export function nativeGemm(node: Node, inputs: string[], output: string, p: GemmParams): NativeOp {
  const attrs = {
    M: int(p.M),
    N: int(p.N),
    K: int(p.K),
    transA: int(p.transA),
    transB: int(p.transB),
    alpha: float(p.alpha),
    beta: float(p.beta),
    batch: ints(p.batch),
    a_batch_strides: ints(p.aBatchStrides),
    b_batch_strides: ints(p.bBatchStrides),
    ...epilogueAttrs(node),
    ...(p.cShape ? { c_strides: ints(broadcastStrides(p.cShape, [...p.batch, p.M, p.N])) } : {}),
  };
  // [A, B, C?, residual?]: the residual keeps slot 3, so an absent C is '' when a residual follows
  const z = residualOf(node);
  return { kind: 'Gemm', inputs: z ? [inputs[0], inputs[1], inputs[2] ?? '', z] : inputs, outputs: [output], attrs };
}

function dims(ctx: OpContext, a: readonly (number | string)[], b: readonly (number | string)[]) {
  if (a.length !== 2 || b.length !== 2) ctx.fail(`A and B must be 2-D, got [${a.join(',')}] and [${b.join(',')}]`, 'SHAPE');
  const transA = ctx.int('transA', 0) !== 0;
  const transB = ctx.int('transB', 0) !== 0;
  const [M, KA] = transA ? [a[1], a[0]] : [a[0], a[1]];
  const [KB, N] = transB ? [b[1], b[0]] : [b[0], b[1]];
  if (typeof KA === 'number' && typeof KB === 'number' && KA !== KB)
    ctx.fail(`inner dimensions differ: A${transA ? 'ᵀ' : ''} is [${M},${KA}], B${transB ? 'ᵀ' : ''} is [${KB},${N}]`, 'SHAPE');
  return { M, N, K: KA, transA, transB };
}

registerOp({
  opType: 'Gemm',
  infer(ctx) {
    const { M, N } = dims(ctx, rankedShape(ctx, 0), rankedShape(ctx, 1));
    const c = ctx.inputs[2];
    if (c?.shape) {
      if (c.shape.length > 2) ctx.fail(`C must have rank <= 2, got [${c.shape.join(',')}]`, 'SHAPE');
      const out = [M, N];
      c.shape.forEach((d, i) => {
        const o = out[out.length - c.shape!.length + i];
        if (typeof d === 'number' && typeof o === 'number' && d !== 1 && d !== o)
          ctx.fail(`C [${c.shape!.join(',')}] does not broadcast to [${M},${N}]`, 'SHAPE');
      });
    }
    const dtype = ctx.input(0).dtype;
    if (ctx.input(1).dtype !== dtype) ctx.fail('A and B have different element types');
    return [{ dtype, shape: [M, N] }];
  },
  lower(ctx) {
    const { M, N, K, transA, transB } = dims(ctx, ctx.shapeOf(0), ctx.shapeOf(1)) as { M: number; N: number; K: number; transA: boolean; transB: boolean };
    const hasC = !!ctx.inputs[2];
    const p: GemmParams = {
      M,
      N,
      K,
      transA,
      transB,
      alpha: ctx.float('alpha', 1),
      beta: ctx.float('beta', 1),
      batch: [],
      aBatchStrides: [],
      bBatchStrides: [],
      cShape: hasC ? ctx.shapeOf(2) : undefined,
    };
    const ins = [ctx.node.inputs[0], ctx.node.inputs[1], ...(hasC ? [ctx.node.inputs[2]] : [])];
    return [nativeGemm(ctx.node, ins, ctx.node.outputs[0], p)];
  },
});
