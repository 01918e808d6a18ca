/**
 * Attention recognition.
 * Before: scores = MatMul(Q, Kᵀ) → [Mul or Div by a scalar] → [Add mask] → Softmax(last axis) →
 *         MatMul(·, V), with Q, Kᵀ, V of rank 4 ([B, H, ·, ·]) — often Transposes of [B, S, H, D]
 *         projections — and the result often transposed back by Transpose(perm [0, 2, 1, 3]).
 * After:  one kiln:Attention node (src/ops/fused-attention.ts) that reads Q, K and V through strides
 *         (the Transposes around it are absorbed when nothing else reads them) and never stores the
 *         score matrix.
 * Where it pays: on the CPU always (bert-tiny 0.206 → 0.200 ms, and no score matrix in memory). On CUDA
 *          only when asked for by name (`optimize: { 'attention-recognition': true }`): even the
 *          tensor-core kernel (cuda.attention.mma.split, 14 µs per BERT-base layer; the warp-per-row
 *          one took 111 µs) loses to cuBLASLt's two batched GEMMs and the Softmax kernel on the H100:
 *          BERT-base fp16 batch 1 2.01 ms with the pass, 0.978 ms without (same run, bench/README.md).
 * Handles: float32; interior values with a single reader; the mask any float32 tensor broadcastable
 *          to the scores; Softmax of opset 13+ semantics or on the last axis of a 2-D-coerced input
 *          only when that is the same thing (rank-4 scores, axis -1 or 3).
 */
import { DataType } from '../dtype';
import { Graph, Node, attrInt, attrInts, lookupValue } from '../ir/graph';
import { Uses, other, scalarOf } from './match';
import { hasEpilogue } from '../ops/epilogue';
import { Pass, PassContext } from './pass';

function shape4(g: Graph, name: string): number[] | undefined {
  const v = lookupValue(g, name);
  const s = v?.shape;
  return v && v.dtype === DataType.FLOAT && s && s.length === 4 && s.every((d) => typeof d === 'number') ? (s as number[]) : undefined;
}

const contiguous = (s: number[]) => s.map((_, i) => s.slice(i + 1).reduce((a, b) => a * b, 1));

/**
 * A rank-4 value read through strides: itself (contiguous), or — when it is a Transpose read only here —
 * the Transpose's input with the permuted strides. Returns [base name, strides over the value's dims].
 */
function strided(g: Graph, u: Uses, name: string, absorbed: Node[]): [string, number[]] {
  const t = u.producedBy(name, 'Transpose');
  const perm = t ? attrInts(t, 'perm') : undefined;
  const src = t ? shape4(g, t.inputs[0]) : undefined;
  if (t && perm && perm.length === 4 && src && u.singleUse(name)) {
    const st = contiguous(src);
    absorbed.push(t);
    return [t.inputs[0], perm.map((p) => st[p])];
  }
  return [name, contiguous(shape4(g, name)!)];
}

export const attentionRecognition: Pass = {
  name: 'attention-recognition',
  run(g: Graph, ctx: PassContext) {
    const changed: string[] = [];
    if (ctx.target === 'cuda' && !ctx.requested?.has('attention-recognition')) return { changed };
    const u = new Uses(g);
    const removed = new Set<Node>();
    const replace = new Map<Node, Node>();
    for (const sm of g.nodes) {
      if (sm.opType !== 'Softmax' || sm.domain !== '' || removed.has(sm)) continue;
      const axis = attrInt(sm, 'axis', (g.opsets.get('') ?? 13) >= 13 ? -1 : 1);
      if (axis !== -1 && axis !== 3) continue;
      const nodes: Node[] = [];
      let x = sm.inputs[0];
      let mask: string | undefined;
      let scale = 1;
      const add = u.producedBy(x, 'Add');
      if (add && u.singleUse(x)) {
        const scoresSide = add.inputs.find((i) => u.producedBy(i, 'Mul', 'Div', 'MatMul') && u.singleUse(i));
        const m = scoresSide ? other(add, scoresSide) : undefined;
        if (scoresSide && m && lookupValue(g, m)?.dtype === DataType.FLOAT) {
          mask = m;
          nodes.push(add);
          x = scoresSide;
        }
      }
      const sc = u.producedBy(x, 'Mul', 'Div');
      if (sc && u.singleUse(x)) {
        const s = scalarOf(g, sc.inputs[1]) ?? (sc.opType === 'Mul' ? scalarOf(g, sc.inputs[0]) : undefined);
        const scores = sc.opType === 'Div' || scalarOf(g, sc.inputs[1]) !== undefined ? sc.inputs[0] : sc.inputs[1];
        if (s !== undefined && s !== 0) {
          scale = sc.opType === 'Div' ? 1 / s : s;
          nodes.push(sc);
          x = scores;
        }
      }
      const qk = u.producedBy(x, 'MatMul');
      const out = sm.outputs[0];
      const pv = u.singleUse(out) ? u.readersOf(out)[0] : undefined;
      if (!qk || !u.singleUse(x) || !pv || pv.opType !== 'MatMul' || pv.inputs[0] !== out) continue;
      // a MatMul that already carries a fused epilogue (scale, bias, activation) is not a plain Q·Kᵀ
      if (hasEpilogue(qk) || hasEpilogue(pv) || qk.inputs.length > 2 || pv.inputs.length > 2) continue;
      const qs = shape4(g, qk.inputs[0]);
      const kts = shape4(g, qk.inputs[1]);
      const vs = shape4(g, pv.inputs[1]);
      const os = shape4(g, pv.outputs[0]);
      if (!qs || !kts || !vs || !os) continue;
      const [B, H, S, D] = qs;
      const T = kts[3];
      const Dv = vs[3];
      if (kts[0] !== B || kts[1] !== H || kts[2] !== D || vs[0] !== B || vs[1] !== H || vs[2] !== T) continue;
      const absorbed: Node[] = [];
      const [qBase, qStr] = strided(g, u, qk.inputs[0], absorbed);
      const [kBase, ktStr] = strided(g, u, qk.inputs[1], absorbed);
      const [vBase, vStr] = strided(g, u, pv.inputs[1], absorbed);
      const kStr = [ktStr[0], ktStr[1], ktStr[3], ktStr[2]]; // Kᵀ is (b, h, d, j): K is (b, h, j, d)
      // Output: written straight into a following Transpose's output when only that reads it.
      let output = pv.outputs[0];
      let oStr = contiguous(os);
      let outShape = os;
      const tr = u.singleUse(output) ? u.readersOf(output)[0] : undefined;
      const perm = tr && tr.opType === 'Transpose' ? attrInts(tr, 'perm') : undefined;
      if (tr && perm && perm.length === 4) {
        outShape = perm.map((p) => os[p]);
        const dst = contiguous(outShape);
        oStr = [0, 1, 2, 3].map((d) => dst[perm.indexOf(d)]);
        output = tr.outputs[0];
        absorbed.push(tr);
      }
      const all = [qk, ...nodes.reverse(), sm, pv, ...absorbed];
      if (all.some((n) => removed.has(n))) continue;
      const fused: Node = {
        name: `${sm.name}_attention`,
        opType: 'Attention',
        domain: 'kiln',
        inputs: [qBase, kBase, vBase, ...(mask ? [mask] : [])],
        outputs: [output],
        attrs: new Map([
          ['dims', { type: 'ints', value: [B, H, S, T, D, Dv] }],
          ['q_strides', { type: 'ints', value: qStr }],
          ['k_strides', { type: 'ints', value: kStr }],
          ['v_strides', { type: 'ints', value: vStr }],
          ['o_strides', { type: 'ints', value: oStr }],
          ['scale', { type: 'float', value: scale }],
          ['kiln.shape', { type: 'ints', value: outShape }],
          ['kiln.dtype', { type: 'int', value: DataType.FLOAT }],
        ]),
        origin: all.flatMap((n) => n.origin),
      };
      for (const n of all) removed.add(n);
      // The fused node stands where the last of them stood: every input is ready by then.
      const last = g.nodes.filter((n) => all.includes(n)).pop()!;
      replace.set(last, fused);
      changed.push(...all.map((n) => n.name));
    }
    g.nodes = g.nodes.flatMap((n) => (replace.has(n) ? [replace.get(n)!] : removed.has(n) ? [] : [n]));
    return { changed };
  },
};
