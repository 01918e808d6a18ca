import { buildModel } from '../../helpers/model-builder';
import { bindShapes } from '../../../src/compile';
import { inferGraph } from '../../../src/ir/infer';
import { importModel } from '../../../src/onnx/import';
import { runPasses } from '../../../src/passes/manager';
import { opTypes, optimized, optimizedMatches } from '../../helpers/passes';

/** The graph after the passes for CUDA, with the named passes requested. */
function importedWith(m: Uint8Array, enabled: Record<string, boolean>) {
  const g = importModel(m);
  bindShapes(g, {});
  inferGraph(g);
  runPasses(g, enabled, { target: 'cuda', requested: new Set(Object.keys(enabled)) });
  return g;
}

const [B, S, H, D] = [2, 5, 3, 4];
// Exporter-style attention: [B,S,H,D] projections transposed to [B,H,S,D] (K to [B,H,D,S]), scores
// scaled by Div, a [B,1,1,S] additive mask, Softmax, MatMul with V, transposed back to [B,S,H,D].
const model = (withMask: boolean, scaleOp: 'Div' | 'Mul') =>
  buildModel({
    nodes: [
      { op: 'Transpose', name: 'tq', inputs: ['q'], outputs: ['qt'], attrs: { perm: [0, 2, 1, 3] } },
      { op: 'Transpose', name: 'tk', inputs: ['k'], outputs: ['kt'], attrs: { perm: [0, 2, 3, 1] } },
      { op: 'Transpose', name: 'tv', inputs: ['v'], outputs: ['vt'], attrs: { perm: [0, 2, 1, 3] } },
      { op: 'MatMul', name: 'qk', inputs: ['qt', 'kt'], outputs: ['s0'] },
      { op: scaleOp, name: 'scale', inputs: ['s0', 'c'], outputs: ['s1'] },
      ...(withMask ? [{ op: 'Add', name: 'mask', inputs: ['s1', 'm'], outputs: ['s2'] }] : []),
      { op: 'Softmax', name: 'sm', inputs: [withMask ? 's2' : 's1'], outputs: ['p'], attrs: { axis: -1 } },
      { op: 'MatMul', name: 'pv', inputs: ['p', 'vt'], outputs: ['o'] },
      { op: 'Transpose', name: 'to', inputs: ['o'], outputs: ['y'], attrs: { perm: [0, 2, 1, 3] } },
    ],
    inputs: [
      { name: 'q', dims: [B, S, H, D] },
      { name: 'k', dims: [B, S, H, D] },
      { name: 'v', dims: [B, S, H, D] },
      ...(withMask ? [{ name: 'm', dims: [B, 1, 1, S] }] : []),
    ],
    outputs: [{ name: 'y', dims: [B, S, H, D] }],
    initializers: [{ name: 'c', dims: [], floats: [scaleOp === 'Div' ? 2 : 0.5] }],
  });

test.each([
  [true, 'Div'],
  [false, 'Mul'],
] as const)('attention (mask %s, scale by %s) becomes one kiln:Attention reading through the transposes', async (mask, op) => {
  const { g, passes } = optimized(model(mask, op));
  expect(opTypes(g)).toEqual(['Attention']);
  const a = g.nodes[0];
  expect(a.inputs).toEqual(['q', 'k', 'v', ...(mask ? ['m'] : [])]);
  expect(a.outputs).toEqual(['y']);
  expect(a.attrs.get('scale')).toEqual({ type: 'float', value: 0.5 });
  expect(a.origin).toHaveLength(mask ? 9 : 8);
  expect(passes.find((p) => p.name === 'attention-recognition')!.changed).toBe(mask ? 9 : 8);
  expect(await optimizedMatches(model(mask, op))).toBeLessThan(1e-5);
});

test('a score matrix read elsewhere blocks the rewrite', () => {
  const m = buildModel({
    nodes: [
      { op: 'MatMul', name: 'qk', inputs: ['q', 'k'], outputs: ['s'] },
      { op: 'Softmax', name: 'sm', inputs: ['s'], outputs: ['p'], attrs: { axis: -1 } },
      { op: 'MatMul', name: 'pv', inputs: ['p', 'v'], outputs: ['y'] },
    ],
    inputs: [
      { name: 'q', dims: [1, 2, 3, 4] },
      { name: 'k', dims: [1, 2, 4, 3] },
      { name: 'v', dims: [1, 2, 3, 4] },
    ],
    outputs: [{ name: 'y', dims: [1, 2, 3, 4] }, { name: 's', dims: [1, 2, 3, 3] }],
  });
  expect(opTypes(optimized(m).g)).toEqual(['MatMul', 'Softmax', 'MatMul']);
});

test('on CUDA the rewrite runs only when asked for by name', () => {
  expect(opTypes(optimized(model(true, 'Div'), true, 'cuda').g)).not.toContain('Attention');
  const g = importedWith(model(true, 'Div'), { 'attention-recognition': true });
  expect(opTypes(g)).toEqual(['Attention']);
});
