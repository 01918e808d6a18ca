/**
 * Resize and Upsample: output shapes from scales/sizes/axes/keep_aspect_ratio_policy, numbers on
 * hand-checked cases (nearest modes, linear with several coordinate transforms, cubic), and the
 * threaded tactic against the reference.
 */
import { DataType } from '../../../src/dtype';
import { AttrValue } from '../../../src/ir/graph';
import { NodeInput, attrI, attrS, f32, runNode } from './run-node';
import { randomArray, rng } from './tactic-helpers';

const ints = (value: number[]): AttrValue => ({ type: 'ints', value });
const vals = (r: { data: ArrayBuffer }) => [...new Float32Array(r.data)];
const i64 = (data: number[], constant = true): NodeInput => ({ dtype: DataType.INT64, shape: [data.length], data: BigInt64Array.from(data.map(BigInt)), constant });
const near = (got: number[], want: number[]) => {
  expect(got.length).toBe(want.length);
  want.forEach((w, i) => expect(Math.abs(got[i] - w)).toBeLessThanOrEqual(1e-5 * (1 + Math.abs(w))));
};

function resize(x: NodeInput, scales: number[] | undefined, sizes: number[] | undefined, attrs: Record<string, AttrValue>, tactics?: Record<string, string>) {
  return runNode({ op: 'Resize', opset: 19, inputs: [x, undefined, scales ? f32([scales.length], scales, true) : undefined, sizes ? i64(sizes) : undefined], attrs }, tactics)[0];
}

describe('Resize shapes', () => {
  const x = f32([1, 1, 2, 4], [1, 2, 3, 4, 5, 6, 7, 8]);
  test('scales floor the product; sizes stretch by default', () => {
    expect(resize(x, [1, 1, 0.6, 0.6], undefined, {}).shape).toEqual([1, 1, 1, 2]);
    expect(resize(x, undefined, [1, 1, 3, 3], {}).shape).toEqual([1, 1, 3, 3]);
  });
  test('axes and keep_aspect_ratio_policy', () => {
    expect(resize(x, undefined, [4, 4], { axes: ints([2, 3]), keep_aspect_ratio_policy: attrS('not_larger') }).shape).toEqual([1, 1, 2, 4]);
    expect(resize(x, undefined, [4, 4], { axes: ints([2, 3]), keep_aspect_ratio_policy: attrS('not_smaller') }).shape).toEqual([1, 1, 4, 8]);
    expect(resize(x, [2], undefined, { axes: ints([-1]) }).shape).toEqual([1, 1, 2, 8]);
  });
  test('errors name the node and say why', () => {
    expect(() => resize(x, [1, 1, 2], undefined, {})).toThrow(/n0.*scales has 3 values, expected 4/);
    expect(() => resize(x, [1, 1, 2, 2], [1, 1, 4, 8], {})).toThrow(/n0.*exactly one of scales and sizes/);
    expect(() => runNode({ op: 'Resize', opset: 19, inputs: [x, undefined, f32([4], [1, 1, 2, 2])] })).toThrow(/n0.*'scales'.*must be known at build time/);
    expect(() => resize(x, [1, 1, 2, 2], undefined, { mode: attrS('bicubic') })).toThrow(/n0.*mode 'bicubic'/);
  });
});

describe('Resize numbers', () => {
  const x = f32([1, 1, 2, 2], [1, 2, 3, 4]);
  test('nearest, asymmetric, floor: each pixel repeated', () => {
    const y = resize(x, [1, 1, 2, 2], undefined, { coordinate_transformation_mode: attrS('asymmetric'), nearest_mode: attrS('floor') });
    expect(vals(y)).toEqual([1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4]);
  });
  test('linear, half_pixel (default) and align_corners', () => {
    const x1 = f32([1, 2], [0, 4]);
    near(vals(resize(x1, [1, 2], undefined, { mode: attrS('linear') })), [0, 1, 3, 4]);
    near(vals(resize(x1, undefined, [1, 3], { mode: attrS('linear'), coordinate_transformation_mode: attrS('align_corners') })), [0, 2, 4]);
    near(vals(resize(x1, [1, 2], undefined, { mode: attrS('linear'), coordinate_transformation_mode: attrS('asymmetric') })), [0, 2, 4, 4]);
  });
  test('cubic interpolates a linear ramp exactly away from the borders', () => {
    const ramp = f32([1, 8], [0, 1, 2, 3, 4, 5, 6, 7]);
    const y = vals(resize(ramp, [1, 2], undefined, { mode: attrS('cubic'), coordinate_transformation_mode: attrS('asymmetric') }));
    near(y.slice(2, 12), [1, 1.5, 2, 2.5, 3, 3.5, 4, 4.5, 5, 5.5]);
  });
  test('Upsample (opset 9) is nearest, asymmetric, floor', () => {
    const y = runNode({ op: 'Upsample', opset: 9, inputs: [f32([1, 2], [1, 2]), f32([2], [1, 3], true)], attrs: { mode: attrS('nearest') } })[0];
    expect(y.shape).toEqual([1, 6]);
    expect(vals(y)).toEqual([1, 1, 1, 2, 2, 2]);
  });
  test('threaded tactic matches the reference', () => {
    const xr = f32([2, 3, 5, 7], Array.from(randomArray(210, rng(9))));
    const cases: Record<string, AttrValue>[] = [
      { mode: attrS('linear'), antialias: attrI(1) },
      { mode: attrS('cubic'), exclude_outside: attrI(1) },
      { mode: attrS('nearest'), nearest_mode: attrS('round_prefer_ceil') },
    ];
    for (const attrs of cases)
      expect(vals(resize(xr, [1, 1, 0.7, 1.9], undefined, attrs, { Resize: 'cpu.resize.mt' }))).toEqual(vals(resize(xr, [1, 1, 0.7, 1.9], undefined, attrs)));
  });
});
