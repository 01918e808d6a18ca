/**
 * ConvTranspose: output dims and pads from pads / output_padding / output_shape / auto_pad, a
 * hand-computed case, and the col2im tactic against the reference on random geometries.
 */
import { lowerModel, maxRelErr, randomArray, rng, runF32 } from './tactic-helpers';

interface Case {
  x: number[];
  w: number[];
  bias?: boolean;
  attrs?: Record<string, number | number[] | string>;
}

function plan(c: Case) {
  return lowerModel({
    nodes: [{ op: 'ConvTranspose', inputs: ['x', 'w', ...(c.bias ? ['b'] : [])], outputs: ['y'], attrs: c.attrs ?? {}, name: 'deconv' }],
    inputs: [{ name: 'x', dims: c.x }, { name: 'w', dims: c.w }, ...(c.bias ? [{ name: 'b', dims: [c.w[1] * Number(c.attrs?.group ?? 1)] }] : [])],
    outputs: [{ name: 'y', dims: null }],
  });
}

describe('ConvTranspose shapes and pads', () => {
  test.each([
    [{ x: [1, 1, 3, 3], w: [1, 2, 3, 3] }, [1, 2, 5, 5], [0, 0, 0, 0]],
    [{ x: [1, 1, 3, 3], w: [1, 2, 3, 3], attrs: { strides: [3, 2], output_padding: [1, 1] } }, [1, 2, 10, 8], [0, 0, 0, 0]],
    [{ x: [1, 1, 3, 3], w: [1, 2, 3, 3], attrs: { strides: [3, 2], output_shape: [10, 8] } }, [1, 2, 10, 8], [0, 0, -1, -1]],
    [{ x: [1, 1, 3, 3], w: [1, 2, 3, 3], attrs: { strides: [2, 2], auto_pad: 'SAME_UPPER' } }, [1, 2, 6, 6], [0, 0, 1, 1]],
    [{ x: [1, 1, 3, 3], w: [1, 2, 3, 3], attrs: { strides: [2, 2], auto_pad: 'SAME_LOWER' } }, [1, 2, 6, 6], [1, 1, 0, 0]],
    [{ x: [1, 4, 5], w: [4, 3, 3], attrs: { group: 2, dilations: [2], pads: [1, 2] } }, [1, 6, 6], [1, 2]],
  ] as [Case, number[], number[]][])('%j -> %j pads %j', (c, shape, pads) => {
    const p = plan(c);
    expect(p.tensors[p.ops[0].outputs[0]].shape).toEqual(shape);
    expect(p.ops[0].attrs.pads).toEqual({ t: 'I', v: pads });
  });

  test('errors name the node', () => {
    expect(() => plan({ x: [1, 3, 4, 4], w: [2, 2, 3, 3] })).toThrow(/deconv.*X has 3 channels/);
    expect(() => plan({ x: [1, 1, 2], w: [1, 1, 2], attrs: { pads: [2, 2] } })).toThrow(/deconv.*comes out -1/);
  });
});

test('hand-computed 1-D case with stride and bias', () => {
  // x = [1, 2], w = [1, 10, 100], stride 2: y[o] = sum_i x[i] w[o - 2i], plus bias 1
  const p = plan({ x: [1, 1, 2], w: [1, 1, 3], bias: true, attrs: { strides: [2] } });
  const ins = [Float32Array.of(1, 2), Float32Array.of(1, 10, 100), Float32Array.of(1)];
  for (const t of ['cpu.convtranspose.ref', 'cpu.convtranspose.col2im'])
    expect(Array.from(runF32(p, ins, { ConvTranspose: t })[0])).toEqual([2, 11, 103, 21, 201]);
});

describe('col2im tactic matches the reference', () => {
  const r = rng(9);
  const pick = (lo: number, hi: number) => lo + Math.floor(r() * (hi - lo + 1));
  const cases: Case[] = [
    { x: [1, 2, 3, 4, 3], w: [2, 3, 2, 3, 2], bias: true, attrs: { strides: [2, 1, 2], pads: [0, 1, 0, 1, 0, 1] } },
    { x: [2, 6, 7], w: [6, 2, 4], bias: true, attrs: { group: 3, strides: [3], dilations: [2], output_padding: [1] } },
    { x: [1, 3, 4, 4], w: [3, 2, 3, 3], attrs: { strides: [3, 2], output_shape: [13, 9] } },
  ];
  for (let i = 0; i < 6; i++) {
    const G = pick(1, 3), kh = pick(1, 4), kw = pick(1, 4), s0 = pick(1, 3), s1 = pick(1, 3);
    cases.push({
      x: [pick(1, 2), G * pick(1, 4), pick(2, 9), pick(2, 9)],
      w: [0, pick(1, 4), kh, kw],
      bias: r() < 0.5,
      attrs: { group: G, strides: [s0, s1], dilations: [pick(1, 2), pick(1, 2)], pads: [pick(0, 1), pick(0, 1), pick(0, 1), pick(0, 1)], output_padding: [pick(0, s0 - 1), 0] },
    });
    cases[cases.length - 1].w[0] = cases[cases.length - 1].x[1];
  }
  test.each(cases.map((c, i) => [i, c] as const))('case %i %j', (_, c) => {
    const p = plan(c);
    const size = (s: number[]) => s.reduce((a, b) => a * b, 1);
    const M = c.w[1] * Number(c.attrs?.group ?? 1);
    const ins = [randomArray(size(c.x), r), randomArray(size(c.w), r), ...(c.bias ? [randomArray(M, r)] : [])];
    const [ref] = runF32(p, ins, { ConvTranspose: 'cpu.convtranspose.ref' });
    const [fast] = runF32(p, ins, { ConvTranspose: 'cpu.convtranspose.col2im' });
    expect(maxRelErr(fast, ref)).toBeLessThan(1e-5);
    const relu = { ...p, ops: [{ ...p.ops[0], attrs: { ...p.ops[0].attrs, activation: { t: 's' as const, v: 'relu' } } }] };
    const [rr] = runF32(relu, ins, { ConvTranspose: 'cpu.convtranspose.ref' });
    const [rf] = runF32(relu, ins, { ConvTranspose: 'cpu.convtranspose.col2im' });
    expect(Array.from(rr).every((v, k) => v === Math.max(0, ref[k]))).toBe(true);
    expect(maxRelErr(rf, rr)).toBeLessThan(1e-5);
  });
});
