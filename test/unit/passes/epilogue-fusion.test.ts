import { buildModel } from '../../helpers/model-builder';
import { opTypes, optimized, optimizedMatches } from '../../helpers/passes';

let seed = 11;
const rand = () => ((seed = (seed * 1664525 + 1013904223) >>> 0) / 2 ** 32) * 2 - 1;
const W = Array.from({ length: 8 * 4 * 3 * 3 }, rand);
const W2 = Array.from({ length: 8 * 8 * 1 * 1 }, rand);
const B = Array.from({ length: 8 }, rand);

// ResNet block tail: conv → BN-folded bias add → (conv skip) residual add → relu
const resnetBlock = () =>
  buildModel({
    nodes: [
      { op: 'Conv', name: 'skip', inputs: ['x', 'W'], outputs: ['s'], attrs: { pads: [1, 1, 1, 1] } },
      { op: 'Conv', name: 'c1', inputs: ['s', 'W2'], outputs: ['c'] },
      { op: 'Add', name: 'bias', inputs: ['c', 'b'], outputs: ['cb'] },
      { op: 'Add', name: 'res', inputs: ['cb', 's'], outputs: ['r'] },
      { op: 'Relu', name: 'act', inputs: ['r'], outputs: ['y'] },
    ],
    inputs: [{ name: 'x', dims: [1, 4, 6, 6] }],
    outputs: [{ name: 'y', dims: [1, 8, 6, 6] }],
    initializers: [
      { name: 'W', dims: [8, 4, 3, 3], floats: W },
      { name: 'W2', dims: [8, 8, 1, 1], floats: W2 },
      { name: 'b', dims: [1, 8, 1, 1], floats: B },
    ],
  });

test('Conv + bias + residual + Relu become one layer', async () => {
  const { g, passes } = optimized(resnetBlock());
  expect(opTypes(g)).toEqual(['Conv', 'Conv']);
  const c1 = g.nodes.find((n) => n.name === 'c1')!;
  expect(c1.inputs).toEqual(['s', 'W2', 'b__bias1d', 's']);
  expect(c1.attrs.get('kiln.activation')).toEqual({ type: 'string', value: 'relu' });
  expect(c1.outputs).toEqual(['y']);
  expect(c1.origin).toEqual(['c1', 'bias', 'res', 'act']);
  expect(passes.find((p) => p.name === 'epilogue-fusion')!.nodes).toEqual(['bias', 'res', 'act']);
  expect(await optimizedMatches(resnetBlock())).toBeLessThan(1e-5);
});

const chain = (act: { op: string; attrs?: Record<string, number>; extra?: string[] }) =>
  buildModel({
    nodes: [
      { op: 'MatMul', name: 'mm', inputs: ['x', 'Wm'], outputs: ['h'] },
      { op: 'Add', name: 'bias', inputs: ['bm', 'h'], outputs: ['hb'] },
      { op: act.op, name: 'act', inputs: ['hb', ...(act.extra ?? [])], outputs: ['y'], attrs: act.attrs },
    ],
    inputs: [{ name: 'x', dims: [2, 3, 8] }],
    outputs: [{ name: 'y', dims: [2, 3, 8] }],
    initializers: [
      { name: 'Wm', dims: [8, 8], floats: W2 },
      { name: 'bm', dims: [8], floats: B },
      { name: 'lo', dims: [], floats: [0] },
      { name: 'hi', dims: [], floats: [6] },
    ],
    opset: 17,
  });

test.each([
  [{ op: 'Relu' }, 'relu'],
  [{ op: 'Sigmoid' }, 'sigmoid'],
  [{ op: 'Tanh' }, 'tanh'],
  [{ op: 'LeakyRelu', attrs: { alpha: 0.1 } }, 'leaky_relu'],
  [{ op: 'HardSigmoid' }, 'hard_sigmoid'],
  [{ op: 'HardSwish' }, 'hard_swish'],
  [{ op: 'Clip', extra: ['lo', 'hi'] }, 'clip'],
])('batched MatMul + bias + %o fuse, numbers unchanged', async (act, native) => {
  const { g } = optimized(chain(act));
  expect(opTypes(g)).toEqual(['MatMul']);
  expect(g.nodes[0].attrs.get('kiln.activation')).toEqual({ type: 'string', value: native });
  expect(await optimizedMatches(chain(act))).toBeLessThan(1e-5);
});

test('SiLU written as x * Sigmoid(x) fuses', async () => {
  const m = buildModel({
    nodes: [
      { op: 'Conv', name: 'c', inputs: ['x', 'W', 'b'], outputs: ['c'], attrs: { pads: [1, 1, 1, 1] } },
      { op: 'Sigmoid', name: 'sig', inputs: ['c'], outputs: ['s'] },
      { op: 'Mul', name: 'mul', inputs: ['c', 's'], outputs: ['y'] },
    ],
    inputs: [{ name: 'x', dims: [1, 4, 5, 5] }],
    outputs: [{ name: 'y', dims: [1, 8, 5, 5] }],
    initializers: [
      { name: 'W', dims: [8, 4, 3, 3], floats: W },
      { name: 'b', dims: [8], floats: B },
    ],
  });
  const { g } = optimized(m);
  expect(opTypes(g)).toEqual(['Conv']);
  expect(g.nodes[0].attrs.get('kiln.activation')).toEqual({ type: 'string', value: 'silu' });
  expect(await optimizedMatches(m)).toBeLessThan(1e-5);
});

test('an intermediate read twice is not fused', () => {
  const m = buildModel({
    nodes: [
      { op: 'Conv', name: 'c', inputs: ['x', 'W'], outputs: ['c'], attrs: { pads: [1, 1, 1, 1] } },
      { op: 'Relu', name: 'r', inputs: ['c'], outputs: ['y'] },
      { op: 'Neg', name: 'n', inputs: ['c'], outputs: ['z'] },
    ],
    inputs: [{ name: 'x', dims: [1, 4, 5, 5] }],
    outputs: [{ name: 'y', dims: [1, 8, 5, 5] }, { name: 'z', dims: [1, 8, 5, 5] }],
    initializers: [{ name: 'W', dims: [8, 4, 3, 3], floats: W }],
  });
  expect(opTypes(optimized(m).g)).toEqual(['Conv', 'Relu', 'Neg']);
});

test('a Sigmoid beside another reader is not fused', () => {
  const m = buildModel({
    nodes: [
      { op: 'Conv', name: 'c', inputs: ['x', 'W'], outputs: ['c'], attrs: { pads: [1, 1, 1, 1] } },
      { op: 'Sigmoid', name: 's', inputs: ['c'], outputs: ['y'] },
      { op: 'Neg', name: 'n', inputs: ['c'], outputs: ['z'] },
    ],
    inputs: [{ name: 'x', dims: [1, 4, 5, 5] }],
    outputs: [{ name: 'y', dims: [1, 8, 5, 5] }, { name: 'z', dims: [1, 8, 5, 5] }],
    initializers: [{ name: 'W', dims: [8, 4, 3, 3], floats: W }],
  });
  expect(opTypes(optimized(m).g)).toEqual(['Conv', 'Sigmoid', 'Neg']);
});

// attention's scores without the softmax after them (so attention recognition leaves them): Q·Kᵀ of
// computed tensors, over a scalar, plus a mask that broadcasts over heads and rows, then Tanh
const scores = (op: 'Mul' | 'Div') =>
  buildModel({
    nodes: [
      { op: 'MatMul', name: 'qk', inputs: ['q', 'k'], outputs: ['s'] },
      { op, name: 'scale', inputs: ['s', 'd'], outputs: ['ss'] },
      { op: 'Add', name: 'mask', inputs: ['ss', 'm'], outputs: ['sm'] },
      { op: 'Tanh', name: 't', inputs: ['sm'], outputs: ['y'] },
    ],
    inputs: [{ name: 'q', dims: [2, 3, 4, 5] }, { name: 'k', dims: [2, 3, 5, 6] }, { name: 'm', dims: [2, 1, 1, 6] }],
    outputs: [{ name: 'y', dims: [2, 3, 4, 6] }],
    initializers: [{ name: 'd', dims: [], floats: [op === 'Mul' ? 0.25 : 4] }],
  });

test.each(['Mul', 'Div'] as const)('MatMul of computed tensors → %s(scalar) → Add(broadcast mask) → Tanh: one GEMM with alpha, C and the activation', async (op) => {
  const { g } = optimized(scores(op));
  expect(opTypes(g)).toEqual(['MatMul']);
  const mm = g.nodes[0];
  expect(mm.attrs.get('kiln.alpha')).toEqual({ type: 'float', value: 0.25 });
  expect(mm.inputs).toEqual(['q', 'k', 'm']);
  expect(mm.attrs.get('kiln.activation')).toEqual({ type: 'string', value: 'tanh' });
  expect(await optimizedMatches(scores(op))).toBeLessThan(1e-6);
});

test('a scalar after a MatMul with a constant weight is not folded into alpha', () => {
  const m = buildModel({
    nodes: [
      { op: 'MatMul', name: 'mm', inputs: ['x', 'w'], outputs: ['s'] },
      { op: 'Mul', name: 'scale', inputs: ['s', 'd'], outputs: ['y'] },
    ],
    inputs: [{ name: 'x', dims: [2, 4] }],
    outputs: [{ name: 'y', dims: [2, 3] }],
    initializers: [
      { name: 'w', dims: [4, 3], floats: Array.from({ length: 12 }, (_, i) => i / 10) },
      { name: 'd', dims: [], floats: [0.5] },
    ],
  });
  expect(opTypes(optimized(m).g)).toEqual(['MatMul', 'Mul']);
});

test('a mask computed after the MatMul: the fused GEMM moves to where the Add stood', () => {
  const m = buildModel({
    nodes: [
      { op: 'MatMul', name: 'qk', inputs: ['q', 'k'], outputs: ['s'] },
      { op: 'Neg', name: 'mask', inputs: ['m0'], outputs: ['m'] },
      { op: 'Add', name: 'add', inputs: ['s', 'm'], outputs: ['y'] },
    ],
    inputs: [{ name: 'q', dims: [1, 2, 3, 4] }, { name: 'k', dims: [1, 2, 4, 5] }, { name: 'm0', dims: [1, 1, 1, 5] }],
    outputs: [{ name: 'y', dims: [1, 2, 3, 5] }],
  });
  const { g } = optimized(m);
  expect(opTypes(g)).toEqual(['Neg', 'MatMul']);
  expect(g.nodes[1].inputs).toEqual(['q', 'k', 'm']);
});
