/**
 * GridSample: shape inference and attribute spelling per opset, hand-computed values for each mode,
 * padding mode and align_corners (2-D and 3-D), float16/float64 inputs, and the threaded tactic
 * against the reference.
 */
import { DataType } from '../../../src/dtype';
import { AttrValue } from '../../../src/ir/graph';
import { NodeInput, attrI, attrS, f32, runNode } from './run-node';
import { randomArray, rng } from './tactic-helpers';

const vals = (r: { data: ArrayBuffer }) => [...new Float32Array(r.data)];
const near = (got: number[], want: number[], tol = 1e-5) => {
  expect(got.length).toBe(want.length);
  want.forEach((w, i) => expect(Math.abs(got[i] - w)).toBeLessThanOrEqual(tol * (1 + Math.abs(w))));
};

function gs(x: NodeInput, grid: NodeInput, attrs: Record<string, AttrValue> = {}, opset = 22, tactics?: Record<string, string>) {
  return runNode({ op: 'GridSample', opset, inputs: [x, grid], attrs }, tactics)[0];
}
/** A (1, 1, k, 2) grid of (x, y) points. */
const points = (pts: [number, number][]) => f32([1, 1, pts.length, 2], pts.flat());
const X = f32([1, 1, 2, 2], [1, 2, 3, 4]); // [[1, 2], [3, 4]]
const pad = (p: string, align = 0, mode = 'linear') => ({ mode: attrS(mode), padding_mode: attrS(p), align_corners: attrI(align) });

describe('GridSample shapes and attributes', () => {
  test('output is [N, C, grid spatial…]', () => {
    const y = gs(f32([2, 3, 4, 5], Array(120).fill(0)), f32([2, 6, 7, 2], Array(168).fill(0)));
    expect(y.shape).toEqual([2, 3, 6, 7]);
    const v = gs(f32([1, 2, 2, 2, 2], Array(16).fill(0)), f32([1, 3, 1, 4, 3], Array(36).fill(0)));
    expect(v.shape).toEqual([1, 2, 3, 1, 4]);
  });
  test('opset 16 spells bilinear/bicubic and is 2-D only; opset 20+ spells linear/cubic', () => {
    near(vals(gs(X, points([[0, 0]]), { mode: attrS('bilinear') }, 16)), [2.5]);
    near(vals(gs(X, points([[0, 0]]), {}, 16)), [2.5]); // default bilinear
    expect(() => gs(X, points([[0, 0]]), { mode: attrS('linear') }, 16)).toThrow(/n0.*mode 'linear'/);
    expect(() => gs(X, points([[0, 0]]), { mode: attrS('bicubic') }, 20)).toThrow(/n0.*mode 'bicubic'/);
    expect(() => gs(f32([1, 1, 2, 2, 2], Array(8).fill(0)), f32([1, 1, 1, 1, 3], [0, 0, 0]), {}, 16)).toThrow(/n0.*4-D/);
  });
  test('errors name the node and say why', () => {
    expect(() => gs(X, f32([1, 1, 1, 3], [0, 0, 0]))).toThrow(/n0.*last dimension must be 2/);
    expect(() => gs(X, f32([2, 1, 1, 2], [0, 0, 0, 0]))).toThrow(/n0.*batch sizes differ/);
    expect(() => gs(X, f32([1, 1, 2], [0, 0]))).toThrow(/n0.*grid must have rank 4/);
    expect(() => gs(X, points([[0, 0]]), { padding_mode: attrS('wrap') })).toThrow(/n0.*padding_mode 'wrap'/);
  });
});

describe('GridSample linear', () => {
  test('align_corners=1: the extrema are the corner pixel centres; x is the width', () => {
    near(vals(gs(X, points([[-1, -1], [1, 1], [0, 0], [1, -1], [-1, 0.5]]), pad('zeros', 1))), [1, 4, 2.5, 2, 2.5]);
  });
  test('align_corners=0: the extrema are the corner pixel edges', () => {
    // (-1, -1) is half a pixel outside in both axes: zeros weighs 1/4 of pixel (0, 0)
    near(vals(gs(X, points([[0, 0], [-1, -1], [0.5, 0.5]]), pad('zeros'))), [2.5, 0.25, 4]);
    near(vals(gs(X, points([[-1, -1]]), pad('border'))), [1]);
    near(vals(gs(X, points([[-1, -1]]), pad('reflection'))), [1]);
  });
  test('far outside: zeros gives 0, border clamps, reflection folds back', () => {
    // x = -3 → -2.5 in pixels; y = 0 → 0.5 (halfway between the rows)
    near(vals(gs(X, points([[-3, 0]]), pad('zeros'))), [0]);
    near(vals(gs(X, points([[-3, 0]]), pad('border'))), [2]); // column 0: (1 + 3) / 2
    near(vals(gs(X, points([[-3, 0]]), pad('reflection'))), [3]); // -2.5 reflects to 1.5 → column 1: (2 + 4) / 2
    near(vals(gs(X, points([[3, 0]]), pad('reflection', 1))), [2]); // align_corners=1: 3 → x = 2, folds about 1 then 0 → column 0
  });
});

describe('GridSample nearest', () => {
  const row = f32([1, 1, 1, 4], [10, 20, 30, 40]);
  test('rounds half to even', () => {
    // align_corners=0, W=4: x = ((g + 1) * 4 - 1) / 2 → g=-0.5: 0.5 → 0; g=0: 1.5 → 2; g=0.5: 2.5 → 2
    near(vals(gs(row, points([[-0.5, 0], [0, 0], [0.5, 0]]), pad('zeros', 0, 'nearest'))), [10, 30, 30]);
  });
  test('padding modes', () => {
    // g=-1.5: x = -1.5 → -2 (even): zeros 0, border column 0, reflection about -0.5 → 1
    near(vals(gs(row, points([[-1.5, 0]]), pad('zeros', 0, 'nearest'))), [0]);
    near(vals(gs(row, points([[-1.5, 0]]), pad('border', 0, 'nearest'))), [10]);
    near(vals(gs(row, points([[-1.5, 0]]), pad('reflection', 0, 'nearest'))), [20]);
    // align_corners=1: g=1.5 → x = (1.5 + 1) / 2 * 3 = 3.75 → 4 → reflects about 3 → 2
    near(vals(gs(row, points([[1.5, 0]]), pad('reflection', 1, 'nearest'))), [30]);
    near(vals(gs(row, points([[1.5, 0]]), pad('zeros', 1, 'nearest'))), [0]);
  });
});

describe('GridSample cubic', () => {
  /** The Keys kernel with a = -0.75, written out from its definition. */
  const keys = (s: number) => {
    const a = -0.75, u = Math.abs(s);
    if (u <= 1) return (a + 2) * u ** 3 - (a + 3) * u ** 2 + 1;
    if (u < 2) return a * u ** 3 - 5 * a * u ** 2 + 8 * a * u - 4 * a;
    return 0;
  };
  test('Keys weights on a ramp and on an impulse', () => {
    const ramp = f32([1, 1, 1, 8], [0, 1, 2, 3, 4, 5, 6, 7]);
    // align_corners=1: x = (g + 1) / 2 * 7; x = 3.5 is symmetric, x = 2.25 weighs columns 1..4
    const at225 = [1, 2, 3, 4].reduce((acc, i) => acc + keys(2.25 - i) * i, 0);
    expect(Math.abs(at225 - 2.25)).toBeGreaterThan(0.01); // a = -0.75 does not reproduce a ramp exactly
    near(vals(gs(ramp, points([[0, 0], [(2 * 2.25) / 7 - 1, 0]]), pad('zeros', 1, 'cubic'))), [3.5, at225], 1e-5);
    const imp = f32([1, 1, 1, 8], [0, 0, 1, 0, 0, 0, 0, 0]);
    // x = 1.5 and 3.5: the impulse at 2 weighs near(0.5) = 0.59375 and far(1.5) = -0.09375
    near(vals(gs(imp, points([[(2 * 1.5) / 7 - 1, 0], [(2 * 3.5) / 7 - 1, 0]]), pad('zeros', 1, 'cubic'))), [0.59375, -0.09375], 1e-5);
  });
  test('each tap is padded: zeros, border, reflection', () => {
    const row = f32([1, 1, 1, 4], [10, 20, 30, 40]);
    // x = 0.5: taps -1, 0, 1, 2 with weights -0.09375, 0.59375, 0.59375, -0.09375
    const at = points([[-0.5, 0]]); // align_corners=0: x = 0.5
    near(vals(gs(row, at, pad('zeros', 0, 'cubic'))), [15]); // tap -1 is 0
    near(vals(gs(row, at, pad('border', 0, 'cubic'))), [14.0625]); // tap -1 is column 0
    near(vals(gs(row, at, pad('reflection', 0, 'cubic'))), [14.0625]); // -1 reflects about -0.5 to 0
    // align_corners=1: x = 0.5 at g = -2/3; -1 reflects about 0 to column 1
    near(vals(gs(row, points([[-2 / 3, 0]]), pad('reflection', 1, 'cubic'))), [13.125], 1e-4);
  });
});

describe('GridSample 3-D and other dtypes', () => {
  test('volumetric linear: grid vectors are (x, y, z) = (w, h, d)', () => {
    const v = f32([1, 1, 2, 2, 2], [0, 1, 2, 3, 4, 5, 6, 7]); // value = 4d + 2h + w
    const grid = f32([1, 1, 1, 3, 3], [1, -1, 1, 0, 0, 0, -1, 1, -1]);
    near(vals(gs(v, grid, pad('zeros', 1))), [5, 3.5, 2]);
    near(vals(gs(v, grid, pad('border', 1, 'nearest'))), [5, 0, 2]); // centre 0.5 → 0 (half to even)
  });
  test('float16 and float64 X', () => {
    const h: NodeInput = { dtype: DataType.FLOAT16, shape: [1, 1, 2, 2], data: Uint16Array.from([0x3c00, 0x4000, 0x4200, 0x4400]) };
    const yh = gs(h, points([[0, 0], [1, 1]]), pad('zeros', 1));
    expect(yh.dtype).toBe(DataType.FLOAT16);
    expect([...new Uint16Array(yh.data)]).toEqual([0x4100, 0x4400]); // 2.5, 4
    const d: NodeInput = { dtype: DataType.DOUBLE, shape: [1, 1, 2, 2], data: Float64Array.from([1, 2, 3, 4]) };
    const gd: NodeInput = { dtype: DataType.DOUBLE, shape: [1, 1, 1, 2], data: Float64Array.from([0, 0]) };
    expect([...new Float64Array(gs(d, gd, pad('zeros', 1)).data)]).toEqual([2.5]);
  });
});

describe('GridSample threaded tactic', () => {
  test('matches the reference for every mode, padding and align_corners', () => {
    const r = rng(7);
    const x = f32([2, 3, 5, 6], [...randomArray(180, r)]);
    const grid = f32([2, 4, 7, 2], [...randomArray(112, r)].map((v) => v * 1.6));
    for (const mode of ['nearest', 'linear', 'cubic'])
      for (const p of ['zeros', 'border', 'reflection'])
        for (const align of [0, 1]) {
          const want = vals(gs(x, grid, pad(p, align, mode), 22, { GridSample: 'cpu.gridsample' }));
          const got = vals(gs(x, grid, pad(p, align, mode), 22, { GridSample: 'cpu.gridsample.mt' }));
          expect(got).toEqual(want);
          expect(want.every(Number.isFinite)).toBe(true);
        }
  });
});
