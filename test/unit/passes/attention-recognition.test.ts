import { attentionModel, buildModel } from '../../helpers/model-builder';
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
const model = (withMask: boolean, scaleOp: 'Div' | 'Mul') => attentionModel({ B, S, H, D, mask: withMask ? 'padding' : 'none', scaleOp });

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
