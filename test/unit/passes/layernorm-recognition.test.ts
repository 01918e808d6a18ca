import { buildModel } from '../../helpers/model-builder';
import { opTypes, optimized, optimizedMatches } from '../../helpers/passes';

const C = 8;
const decomposed = (withAffine: boolean, square: 'Pow' | 'Mul') =>
  buildModel({
    opset: 13,
    nodes: [
      { op: 'ReduceMean', inputs: ['x'], outputs: ['m'], attrs: { axes: [-1], keepdims: 1 } },
      { op: 'Sub', inputs: ['x', 'm'], outputs: ['d'] },
      square === 'Pow' ? { op: 'Pow', inputs: ['d', 'two'], outputs: ['sq'] } : { op: 'Mul', inputs: ['d', 'd'], outputs: ['sq'] },
      { op: 'ReduceMean', inputs: ['sq'], outputs: ['v'], attrs: { axes: [-1], keepdims: 1 } },
      { op: 'Add', inputs: ['v', 'eps'], outputs: ['ve'] },
      { op: 'Sqrt', inputs: ['ve'], outputs: ['sd'] },
      { op: 'Div', inputs: ['d', 'sd'], outputs: withAffine ? ['n'] : ['y'] },
      ...(withAffine
        ? [
            { op: 'Mul', inputs: ['n', 'gamma'], outputs: ['ng'] },
            { op: 'Add', inputs: ['ng', 'beta'], outputs: ['y'] },
          ]
        : []),
    ],
    inputs: [{ name: 'x', dims: [2, 3, C] }],
    outputs: [{ name: 'y', dims: [2, 3, C] }],
    initializers: [
      { name: 'two', dims: [], floats: [2] },
      { name: 'eps', dims: [], floats: [1e-5] },
      { name: 'gamma', dims: [C], floats: Array.from({ length: C }, (_, i) => 1 + i / 10) },
      { name: 'beta', dims: [C], floats: Array.from({ length: C }, (_, i) => i / 7) },
    ],
  });

test.each([
  [true, 'Pow'],
  [true, 'Mul'],
  [false, 'Pow'],
] as const)('decomposed LayerNorm (affine %s, square by %s) becomes one LayerNormalization', async (affine, sq) => {
  const { g, passes } = optimized(decomposed(affine, sq));
  expect(opTypes(g)).toEqual(['LayerNormalization']);
  expect(g.nodes[0].attrs.get('epsilon')).toEqual({ type: 'float', value: expect.closeTo(1e-5, 10) });
  expect(passes.find((p) => p.name === 'layernorm-recognition')!.changed).toBe(affine ? 9 : 7);
  expect(await optimizedMatches(decomposed(affine, sq))).toBeLessThan(1e-5);
});

test('a reduction over another axis is left alone', () => {
  const m = buildModel({
    opset: 13,
    nodes: [
      { op: 'ReduceMean', inputs: ['x'], outputs: ['m'], attrs: { axes: [1], keepdims: 1 } },
      { op: 'Sub', inputs: ['x', 'm'], outputs: ['d'] },
      { op: 'Mul', inputs: ['d', 'd'], outputs: ['sq'] },
      { op: 'ReduceMean', inputs: ['sq'], outputs: ['v'], attrs: { axes: [1], keepdims: 1 } },
      { op: 'Add', inputs: ['v', 'eps'], outputs: ['ve'] },
      { op: 'Sqrt', inputs: ['ve'], outputs: ['sd'] },
      { op: 'Div', inputs: ['d', 'sd'], outputs: ['y'] },
    ],
    inputs: [{ name: 'x', dims: [2, 3, 4] }],
    outputs: [{ name: 'y', dims: [2, 3, 4] }],
    initializers: [{ name: 'eps', dims: [], floats: [1e-5] }],
  });
  expect(opTypes(optimized(m).g)).not.toContain('LayerNormalization');
});
