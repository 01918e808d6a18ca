import { Tensor, compile } from '../../../src';
import { lowerGraph } from '../../../src/lower/lower';
import { encodePlan } from '../../../src/lower/plan';
import { native } from '../../../src/native/binding';
import { buildModel } from '../../helpers/model-builder';
import { opTypes, optimized, optimizedMatches } from '../../helpers/passes';

let seed = 9;
const rand = () => ((seed = (seed * 1664525 + 1013904223) >>> 0) / 2 ** 32) * 2 - 1;
const w = (n: number) => Array.from({ length: n }, rand);
const [W1, W2, W3, B1, B3] = [w(3 * 4), w(5 * 4), w(2 * 4), w(3), w(2)];

// Inception-style: three 1×1 convs (two with bias) on x, each with a Relu, then different consumers.
const inception = (batch: number) =>
  buildModel({
    nodes: [
      { op: 'Conv', name: 'b1', inputs: ['x', 'W1', 'B1'], outputs: ['p'] },
      { op: 'Relu', name: 'r1', inputs: ['p'], outputs: ['pr'] },
      { op: 'Conv', name: 'b2', inputs: ['x', 'W2'], outputs: ['q'] },
      { op: 'Relu', name: 'r2', inputs: ['q'], outputs: ['qr'] },
      { op: 'Conv', name: 'b3', inputs: ['x', 'W3', 'B3'], outputs: ['r'] },
      { op: 'Relu', name: 'r3', inputs: ['r'], outputs: ['rr'] },
      { op: 'MaxPool', name: 'mp', inputs: ['qr'], outputs: ['qp'], attrs: { kernel_shape: [2, 2] } },
      { op: 'Sigmoid', name: 's', inputs: ['rr'], outputs: ['rs'] },
    ],
    inputs: [{ name: 'x', dims: [batch, 4, 5, 5] }],
    outputs: [{ name: 'pr', dims: [batch, 3, 5, 5] }, { name: 'qp', dims: [batch, 5, 4, 4] }, { name: 'rs', dims: [batch, 2, 5, 5] }],
    initializers: [
      { name: 'W1', dims: [3, 4, 1, 1], floats: W1 },
      { name: 'W2', dims: [5, 4, 1, 1], floats: W2 },
      { name: 'W3', dims: [2, 4, 1, 1], floats: W3 },
      { name: 'B1', dims: [3], floats: B1 },
      { name: 'B3', dims: [2], floats: B3 },
    ],
  });

test('parallel 1×1 convs at batch 1 merge into one conv whose split is free', async () => {
  const { g, passes } = optimized(inception(1), { 'elementwise-fusion': false });
  expect(opTypes(g)).toEqual(['Conv', 'Split', 'MaxPool', 'Sigmoid']);
  expect(g.nodes[0].origin).toEqual(['b1', 'r1', 'b2', 'r2', 'b3', 'r3']);
  expect(passes.find((p) => p.name === 'horizontal-merge')!.nodes).toEqual(['b1', 'b2', 'b3']);
  const e = await compile(inception(1));
  expect(e.report.layers.map((l) => l.kind)).toEqual(['Conv', 'Pool', 'Unary']);
  const x = new Tensor('float32', Float32Array.from({ length: 100 }, rand), [1, 4, 5, 5]);
  const off = await compile(inception(1), { optimize: false });
  const [a, b] = [await e.infer({ x }), await off.infer({ x })];
  for (const k of ['pr', 'qp', 'rs']) {
    const [ga, gb] = [a[k].data as Float32Array, b[k].data as Float32Array];
    for (let i = 0; i < gb.length; i++) expect(Math.abs(ga[i] - gb[i])).toBeLessThan(1e-5);
  }
  e.dispose();
  off.dispose();
});

test('at batch 2 the convs stay apart (the split would copy)', () => {
  expect(opTypes(optimized(inception(2)).g).filter((t) => t === 'Conv')).toHaveLength(3);
});

// Attention's Q/K/V projections: three MatMuls with constant weights (and fused biases) on one input.
const QKV = Object.fromEntries(['q', 'k', 'v'].flatMap((n) => [[`W${n}`, w(64)], [`b${n}`, w(8)]]));
const qkv = () =>
  buildModel({
    nodes: ['q', 'k', 'v'].flatMap((n) => [
      { op: 'MatMul', name: `${n}mm`, inputs: ['x', `W${n}`], outputs: [`${n}0`] },
      { op: 'Add', name: `${n}b`, inputs: [`${n}0`, `b${n}`], outputs: [n] },
    ]),
    inputs: [{ name: 'x', dims: [1, 6, 8] }],
    outputs: ['q', 'k', 'v'].map((n) => ({ name: n, dims: [1, 6, 8] })),
    initializers: ['q', 'k', 'v'].flatMap((n) => [
      { name: `W${n}`, dims: [8, 8], floats: QKV[`W${n}`] },
      { name: `b${n}`, dims: [8], floats: QKV[`b${n}`] },
    ]),
  });

test('Q/K/V projections merge into one wide GEMM on CUDA, not on the CPU', async () => {
  expect(opTypes(optimized(qkv(), true, 'cuda').g)).toEqual(['MatMul', 'Split']);
  expect(opTypes(optimized(qkv(), true, 'cpu').g)).toEqual(['MatMul', 'MatMul', 'MatMul']);
  expect(await optimizedMatches(qkv())).toBeLessThan(1e-6);
});

test('the merged Q/K/V GEMM computes what the three did', () => {
  const x = Float32Array.from({ length: 48 }, rand);
  const run = (target: 'cpu' | 'cuda') => {
    const plan = lowerGraph(optimized(qkv(), true, target).g);
    return native().runPlan(encodePlan(plan), [x]).map((b) => Array.from(new Float32Array(b)));
  };
  const [merged, apart] = [run('cuda'), run('cpu')];
  merged.forEach((o, i) => o.forEach((v, j) => expect(Math.abs(v - apart[i][j])).toBeLessThan(1e-5)));
});
