/**
 * BatchNormalization folding.
 * Before: Conv(x, W[, B]) → BatchNormalization(scale, bias, mean, var, epsilon), or the same after
 *         Gemm(x, W[, C]) (transA=0) or MatMul(x, W) with W a 2-D constant.
 * After:  Conv(x, W', B') / Gemm(x, W', B') with W' = W·s per output channel and
 *         B' = (B − mean)·s + bias, where s = scale / sqrt(var + epsilon); the BN node is gone.
 * Handles: only inference-mode BN (one output) with every parameter constant, and producers whose
 *          output has no other reader; float32 weights.
 */
import { DataType } from '../dtype';
import { Graph, Node, Value, attrFloat, attrInt, lookupValue } from '../ir/graph';
import { Pass } from './pass';

function readers(g: Graph, name: string): number {
  let n = 0;
  for (const node of g.nodes) for (const i of node.inputs) if (i === name) n++;
  return n + (g.outputs.includes(name) ? 1 : 0);
}

function constF32(g: Graph, name: string | undefined): Float32Array | undefined {
  if (!name) return undefined;
  const v = lookupValue(g, name);
  return v?.data && v.dtype === DataType.FLOAT ? (v.data as Float32Array) : undefined;
}

let counter = 0;
function addConst(g: Graph, base: string, data: Float32Array, shape: number[]): string {
  const name = `${base}__bnfold${counter++}`;
  const v: Value = { name, dtype: DataType.FLOAT, shape, data };
  g.values.set(name, v);
  return name;
}

/** Output-channel layout of the producer's weight: [channels, rest] for Conv, columns for Gemm/MatMul. */
function foldInto(g: Graph, prod: Node, bn: Node): boolean {
  const [, sName, bName, mName, vName] = bn.inputs;
  const scale = constF32(g, sName), bias = constF32(g, bName), mean = constF32(g, mName), variance = constF32(g, vName);
  if (!scale || !bias || !mean || !variance) return false;
  const eps = attrFloat(bn, 'epsilon', 1e-5);
  const C = scale.length;
  const s = new Float32Array(C);
  for (let c = 0; c < C; c++) s[c] = scale[c] / Math.sqrt(variance[c] + eps);
  const wName = prod.inputs[1];
  const W = constF32(g, wName);
  const wShape = lookupValue(g, wName)?.shape as number[] | undefined;
  if (!W || !wShape) return false;
  const oldB = constF32(g, prod.inputs[2]);
  const W2 = new Float32Array(W.length);
  if (prod.opType === 'Conv') {
    if (wShape[0] !== C) return false;
    const per = W.length / C;
    for (let c = 0; c < C; c++) for (let k = 0; k < per; k++) W2[c * per + k] = W[c * per + k] * s[c];
  } else {
    // Gemm (transB selects W's layout) or MatMul with W [K, N]: channel = output column.
    const transB = prod.opType === 'Gemm' && attrInt(prod, 'transB', 0) === 1;
    if (wShape.length !== 2) return false;
    const [r, cols] = wShape;
    if ((transB ? r : cols) !== C) return false;
    for (let i = 0; i < r; i++) for (let j = 0; j < cols; j++) W2[i * cols + j] = W[i * cols + j] * s[transB ? i : j];
    if (prod.opType === 'Gemm' && (attrInt(prod, 'transA', 0) !== 0 || attrFloat(prod, 'alpha', 1) !== 1)) return false;
    if (prod.opType === 'Gemm' && prod.inputs[2] && (!oldB || oldB.length !== C || attrFloat(prod, 'beta', 1) !== 1)) return false;
  }
  const B2 = new Float32Array(C);
  for (let c = 0; c < C; c++) B2[c] = ((oldB ? oldB[c] : 0) - mean[c]) * s[c] + bias[c];
  prod.inputs[1] = addConst(g, wName, W2, wShape);
  const b2 = addConst(g, bn.name + '_bias', B2, [C]);
  if (prod.opType === 'MatMul') {
    prod.opType = 'Gemm';
    prod.attrs = new Map();
  }
  prod.inputs[2] = b2;
  prod.outputs = [bn.outputs[0]];
  prod.origin = [...prod.origin, ...bn.origin];
  return true;
}

export const batchnormFolding: Pass = {
  name: 'batchnorm-folding',
  run(g: Graph) {
    const changed: string[] = [];
    const producer = new Map<string, Node>();
    for (const n of g.nodes) for (const o of n.outputs) if (o) producer.set(o, n);
    const removed = new Set<Node>();
    for (const bn of g.nodes) {
      if (bn.opType !== 'BatchNormalization' || bn.domain !== '' || bn.outputs.filter((o) => o).length !== 1) continue;
      if (attrInt(bn, 'training_mode', 0) !== 0) continue;
      const prod = producer.get(bn.inputs[0]);
      if (!prod || removed.has(prod) || !['Conv', 'Gemm', 'MatMul'].includes(prod.opType) || prod.domain !== '') continue;
      if (readers(g, bn.inputs[0]) !== 1 || g.outputs.includes(bn.inputs[0])) continue;
      if (prod.opType === 'MatMul' && (lookupValue(g, prod.inputs[0])?.shape?.length ?? 0) !== 2) continue;
      if (!foldInto(g, prod, bn)) continue;
      removed.add(bn);
      changed.push(bn.name);
    }
    g.nodes = g.nodes.filter((n) => !removed.has(n));
    return { changed };
  },
};
