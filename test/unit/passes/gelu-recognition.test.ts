import { buildModel } from '../../helpers/model-builder';
import { opTypes, optimized, optimizedMatches } from '../../helpers/passes';

const scalar = (name: string, v: number) => ({ name, dims: [], floats: [v] });

// TorchScript's erf GELU: Div(x, √2) → Erf → Add 1 → Mul x → Mul 0.5, then a consumer.
const erfForm = () =>
  buildModel({
    nodes: [
      { op: 'Div', inputs: ['x', 'sqrt2'], outputs: ['a'] },
      { op: 'Erf', inputs: ['a'], outputs: ['b'] },
      { op: 'Add', inputs: ['b', 'one'], outputs: ['c'] },
      { op: 'Mul', inputs: ['x', 'c'], outputs: ['d'] },
      { op: 'Mul', inputs: ['d', 'half'], outputs: ['e'] },
      { op: 'Relu', inputs: ['e'], outputs: ['y'] },
    ],
    inputs: [{ name: 'x', dims: [2, 8] }],
    outputs: [{ name: 'y', dims: [2, 8] }],
    initializers: [scalar('sqrt2', Math.SQRT2), scalar('one', 1), scalar('half', 0.5)],
  });

// GPT-2's tanh GELU with the 0.5 applied to x first and x³ as Pow.
const tanhForm = () =>
  buildModel({
    nodes: [
      { op: 'Pow', inputs: ['x', 'three'], outputs: ['p'] },
      { op: 'Mul', inputs: ['p', 'k1'], outputs: ['q'] },
      { op: 'Add', inputs: ['x', 'q'], outputs: ['r'] },
      { op: 'Mul', inputs: ['r', 'k2'], outputs: ['s'] },
      { op: 'Tanh', inputs: ['s'], outputs: ['t'] },
      { op: 'Add', inputs: ['one', 't'], outputs: ['u'] },
      { op: 'Mul', inputs: ['x', 'half'], outputs: ['h'] },
      { op: 'Mul', inputs: ['h', 'u'], outputs: ['y'] },
    ],
    inputs: [{ name: 'x', dims: [3, 5] }],
    outputs: [{ name: 'y', dims: [3, 5] }],
    initializers: [scalar('three', 3), scalar('k1', 0.044715), scalar('k2', Math.sqrt(2 / Math.PI)), scalar('one', 1), scalar('half', 0.5)],
  });

// Element-wise fusion would then fold Gelu and its neighbours into one layer: off here to see the Gelu.
const ONLY_GELU = { 'elementwise-fusion': false };

test('erf form becomes one Gelu', () => {
  const { g, passes } = optimized(erfForm(), ONLY_GELU);
  expect(opTypes(g)).toEqual(['Gelu', 'Relu']);
  expect(g.nodes[0].attrs.get('approximate')).toEqual({ type: 'string', value: 'none' });
  expect(g.nodes[0].origin).toHaveLength(5);
  expect(passes.find((p) => p.name === 'gelu-recognition')!.changed).toBe(5);
});

test('tanh form becomes one Gelu(approximate=tanh)', () => {
  const { g } = optimized(tanhForm(), ONLY_GELU);
  expect(opTypes(g)).toEqual(['Gelu']);
  expect(g.nodes[0].attrs.get('approximate')).toEqual({ type: 'string', value: 'tanh' });
  expect(g.nodes[0].origin).toHaveLength(8);
});

test('a matched value with a second reader blocks the rewrite', () => {
  const m = buildModel({
    nodes: [
      { op: 'Div', inputs: ['x', 'sqrt2'], outputs: ['a'] },
      { op: 'Erf', inputs: ['a'], outputs: ['b'] },
      { op: 'Add', inputs: ['b', 'one'], outputs: ['c'] },
      { op: 'Mul', inputs: ['x', 'c'], outputs: ['d'] },
      { op: 'Mul', inputs: ['d', 'half'], outputs: ['y'] },
      { op: 'Neg', inputs: ['b'], outputs: ['z'] },
    ],
    inputs: [{ name: 'x', dims: [4] }],
    outputs: [{ name: 'y', dims: [4] }, { name: 'z', dims: [4] }],
    initializers: [scalar('sqrt2', Math.SQRT2), scalar('one', 1), scalar('half', 0.5)],
  });
  expect(opTypes(optimized(m, ONLY_GELU).g)).not.toContain('Gelu');
});

test('the pass can be turned off by name', () => {
  expect(opTypes(optimized(erfForm(), { ...ONLY_GELU, 'gelu-recognition': false }).g)).toContain('Erf');
});

test('numbers are unchanged', async () => {
  expect(await optimizedMatches(erfForm())).toBeLessThan(1e-6);
  expect(await optimizedMatches(tanhForm())).toBeLessThan(1e-6);
});
