/** TopK: values and int64 indices (largest/smallest, axis, ties keep the lower index), k errors. */
import { DataType } from '../../../src/dtype';
import { AttrValue } from '../../../src/ir/graph';
import { NodeInput, attrI, f32, runNode } from './run-node';

const vals = (r: { data: ArrayBuffer }) => [...new Float32Array(r.data)];
const i64 = (data: number[], constant = true): NodeInput => ({ dtype: DataType.INT64, shape: [data.length], data: BigInt64Array.from(data.map(BigInt)), constant });

describe('TopK', () => {
  const topk = (x: NodeInput, k: number, attrs: Record<string, AttrValue> = {}) => {
    const [v, i] = runNode({ op: 'TopK', opset: 11, inputs: [x, i64([k])], attrs, outputs: 2 });
    return { shape: v.shape, v: vals(v), i: [...new BigInt64Array(i.data)].map(Number) };
  };
  const x = f32([2, 4], [3, 1, 3, 2, 0, 5, -1, 5]);
  test('largest, sorted, ties keep the lower index first', () => {
    expect(topk(x, 2)).toEqual({ shape: [2, 2], v: [3, 3, 5, 5], i: [0, 2, 1, 3] });
    expect(topk(x, 3, { largest: attrI(0) })).toEqual({ shape: [2, 3], v: [1, 2, 3, -1, 0, 5], i: [1, 3, 0, 2, 0, 1] });
    expect(topk(x, 1, { axis: attrI(0) })).toEqual({ shape: [1, 4], v: [3, 5, 3, 5], i: [0, 1, 0, 1] });
  });
  test('k larger than the axis, or not known at build, is an error naming the node', () => {
    expect(() => topk(x, 5)).toThrow(/n0.*k = 5 is larger than axis 1/);
    expect(() => runNode({ op: 'TopK', opset: 11, inputs: [x, i64([1], false)], outputs: 2 })).toThrow(/n0.*'K'.*must be known at build time/);
  });
});
