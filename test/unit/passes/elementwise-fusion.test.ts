import { Tensor, compile } from '../../../src';
import { encodePlan } from '../../../src/lower/plan';
import { native } from '../../../src/native/binding';
import { lowerGraph } from '../../../src/lower/lower';
import { buildModel } from '../../helpers/model-builder';
import { opTypes, optimized, optimizedMatches } from '../../helpers/passes';

const s = (name: string, v: number) => ({ name, dims: [], floats: [v] });
// y = tanh(x * 2 + b) - x, with b broadcast per column, then a Softmax that is not element-wise.
const chain = () =>
  buildModel({
    nodes: [
      { op: 'Mul', name: 'm', inputs: ['x', 'two'], outputs: ['a'] },
      { op: 'Add', name: 'ab', inputs: ['a', 'b'], outputs: ['c'] },
      { op: 'Tanh', name: 't', inputs: ['c'], outputs: ['d'] },
      { op: 'Sub', name: 's', inputs: ['d', 'x'], outputs: ['e'] },
      { op: 'LeakyRelu', name: 'l', inputs: ['e'], outputs: ['f'], attrs: { alpha: 0.3 } },
      { op: 'Softmax', name: 'sm', inputs: ['f'], outputs: ['y'], attrs: { axis: -1 } },
    ],
    inputs: [{ name: 'x', dims: [3, 7] }],
    outputs: [{ name: 'y', dims: [3, 7] }],
    initializers: [s('two', 2), { name: 'b', dims: [7], floats: [0.1, -0.2, 0.3, -0.4, 0.5, -0.6, 0.7] }],
  });

test('a run of element-wise nodes becomes one kiln:Elementwise', async () => {
  const { g, passes } = optimized(chain());
  expect(opTypes(g)).toEqual(['Elementwise', 'Softmax']);
  const f = g.nodes[0];
  expect(f.inputs).toEqual(['x', 'two', 'b']);
  expect(f.attrs.get('ops')).toEqual({ type: 'strings', value: ['b:Mul', 'b:Add', 'u:Tanh', 'b:Sub', 'u:LeakyRelu'] });
  expect(f.attrs.get('args')).toEqual({ type: 'ints', value: [0, 1, -1, 2, -2, -1000, -3, 0, -4, -1000] });
  expect(f.origin).toEqual(['m', 'ab', 't', 's', 'l']);
  expect(passes.find((p) => p.name === 'elementwise-fusion')!.changed).toBe(5);
  expect(await optimizedMatches(chain())).toBeLessThan(1e-6);
});


test('an intermediate read outside the run ends the run there', () => {
  const m = buildModel({
    nodes: [
      { op: 'Mul', name: 'm', inputs: ['x', 'x'], outputs: ['a'] },
      { op: 'Exp', name: 'e', inputs: ['a'], outputs: ['b'] },
      { op: 'Neg', name: 'n', inputs: ['b'], outputs: ['y'] },
    ],
    inputs: [{ name: 'x', dims: [4] }],
    outputs: [{ name: 'y', dims: [4] }, { name: 'b', dims: [4] }],
  });
  // b is a graph output: Neg alone is not a run; Mul+Exp fuse
  expect(opTypes(optimized(m).g)).toEqual(['Elementwise', 'Neg']);
});

test('both tactics agree on broadcasting inputs of many shapes', async () => {
  for (const [xs, bs] of [
    [[2, 3, 5], [5]],
    [[2, 3, 5], [3, 1]],
    [[1, 1, 300], [1]],
    [[4, 1, 6], [1, 5, 1]],
  ] as number[][][]) {
    const m = buildModel({
      nodes: [
        { op: 'Add', inputs: ['x', 'b'], outputs: ['a'] },
        { op: 'Sigmoid', inputs: ['a'], outputs: ['c'] },
        { op: 'Mul', inputs: ['c', 'x'], outputs: ['y'] },
      ],
      inputs: [{ name: 'x', dims: xs }, { name: 'b', dims: bs }],
      outputs: [{ name: 'y' }],
    });
    const e = await compile(m);
    const out = e.outputs[0].dims;
    const n = (d: number[]) => d.reduce((p, q) => p * q, 1);
    const x = new Tensor('float32', Float32Array.from({ length: n(xs) }, (_, i) => Math.sin(i)), xs);
    const b = new Tensor('float32', Float32Array.from({ length: n(bs) }, (_, i) => Math.cos(i)), bs);
    const want = await (await compile(m, { optimize: false })).infer({ x, b });
    const got = await e.infer({ x, b });
    expect(got.y.dims).toEqual(out);
    const g = got.y.data as Float32Array;
    const w = want.y.data as Float32Array;
    for (let i = 0; i < w.length; i++) expect(Math.abs(g[i] - w[i])).toBeLessThan(1e-6);
    e.dispose();
  }
});

test('the block tactic matches the reference tactic', () => {
  const { g } = optimized(chain());
  const plan = lowerGraph(g);
  const x = Float32Array.from({ length: 21 }, (_, i) => Math.sin(i * 1.7) * 2);
  const ref = new Float32Array(native().runPlan(encodePlan(plan), [x])[0]);
  const blk = new Float32Array(native().runPlan(encodePlan(plan), [x], { Elementwise: 'cpu.elementwise.block' })[0]);
  expect(Array.from(blk)).toEqual(Array.from(ref));
});
