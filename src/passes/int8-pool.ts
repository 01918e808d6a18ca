/**
 * int8 max pooling (int8 builds: after Q/DQ insertion, before Q/DQ fusion).
 * Before: (a) P → MaxPool → QuantizeLinear(one scale, zero point) → q, the quantize the pool's only reader
 *             (calibrated builds: ResNet's conv1 → maxpool → quantize in front of layer1);
 *         (b) xq → DequantizeLinear(s, z) → MaxPool → QuantizeLinear(s, z) → q with the same scale and
 *             zero point (explicitly quantized models, as ONNX Runtime's quantizer writes them).
 * After:  (a) P → QuantizeLinear → MaxPool on the int8 values → q; (b) xq → MaxPool → q.
 *         Quantization is monotonic, so the max of quantized values is the quantized max: the result is
 *         the same, the pool moves a quarter of the bytes, and Q/DQ fusion can give P an int8 output
 *         (no float tensor and no quantize layer between P and the next int8 layer).
 * Handles: MaxPool without its Indices output, its output no graph output and read only by the
 *          quantize; per-tensor scale and zero point (constants).
 */
import { Graph, Node, lookupValue } from '../ir/graph';

const readersOf = (g: Graph): Map<string, Node[]> => {
  const r = new Map<string, Node[]>();
  for (const n of g.nodes) for (const i of n.inputs) if (i) (r.get(i) ?? r.set(i, []).get(i)!).push(n);
  return r;
};

function scalarConst(g: Graph, name: string | undefined): ArrayLike<number> | undefined {
  if (!name) return undefined;
  const v = lookupValue(g, name);
  const d = v?.data as ArrayLike<number> | undefined;
  return d && d.length === 1 && typeof d[0] === 'number' ? d : undefined;
}

/** Same per-tensor quantization parameters (both zero points absent counts as the same). */
function sameParams(g: Graph, a: Node, b: Node): boolean {
  const s1 = scalarConst(g, a.inputs[1]);
  const s2 = scalarConst(g, b.inputs[1]);
  if (!s1 || !s2 || s1[0] !== s2[0]) return false;
  const z1 = scalarConst(g, a.inputs[2]);
  const z2 = scalarConst(g, b.inputs[2]);
  if (!a.inputs[2] !== !b.inputs[2]) return false;
  return !a.inputs[2] || (!!z1 && !!z2 && z1[0] === z2[0] && lookupValue(g, a.inputs[2])!.dtype === lookupValue(g, b.inputs[2])!.dtype);
}

export function int8MaxPool(g: Graph): string[] {
  const changed: string[] = [];
  const outputs = new Set(g.outputs);
  let readers = readersOf(g);
  for (let k = 0; k < g.nodes.length; k++) {
    const mp = g.nodes[k];
    if (mp.opType !== 'MaxPool' || mp.domain !== '' || mp.outputs.filter(Boolean).length !== 1 || outputs.has(mp.outputs[0])) continue;
    const rd = readers.get(mp.outputs[0]) ?? [];
    const q = rd[0];
    if (rd.length !== 1 || q.opType !== 'QuantizeLinear' || q.domain !== '' || q.inputs[0] !== mp.outputs[0] || !scalarConst(g, q.inputs[1])) continue;
    if (q.inputs[2] && !scalarConst(g, q.inputs[2])) continue;
    const x = mp.inputs[0];
    const xv = lookupValue(g, x);
    const qv = g.values.get(q.outputs[0]);
    if (!xv?.shape || !qv) continue;
    const dq = g.nodes.find((n) => n.outputs[0] === x);
    const qi = g.nodes.indexOf(q);
    if (dq && dq.opType === 'DequantizeLinear' && dq.domain === '' && readers.get(x)?.length === 1 && !outputs.has(x) && sameParams(g, dq, q)) {
      // (b) the pool reads the quantized tensor; dequantize and quantize go
      mp.inputs = [dq.inputs[0]];
      mp.outputs = [q.outputs[0]];
      mp.origin = [...new Set([...dq.origin, ...mp.origin, ...q.origin])];
      g.nodes = g.nodes.filter((n) => n !== dq && n !== q);
      g.values.delete(x);
    } else {
      // (a) quantize first, then pool the int8 values
      const xq = `${x}__int8_pooled_input`;
      g.values.set(xq, { name: xq, dtype: qv.dtype, shape: [...xv.shape] });
      const pooledName = mp.outputs[0];
      const quant: Node = { ...q, inputs: [x, ...q.inputs.slice(1)], outputs: [xq] };
      const pool: Node = { ...mp, inputs: [xq], outputs: [q.outputs[0]] };
      g.nodes[k] = quant;
      g.nodes[qi] = pool;
      g.values.delete(pooledName);
    }
    changed.push(mp.name);
    readers = readersOf(g);
    k = -1; // the node list changed: scan it again
  }
  return changed;
}
