/** Wrong feeds, disposal and many concurrent infer calls: clear errors, nothing crashes or leaks. */
import { KilnError, Tensor, compile } from '../../src';
import type { Engine } from '../../src';
import { addModel, buildModel } from '../helpers/model-builder';

let engine: Engine;
beforeAll(async () => {
  engine = await compile(addModel());
});
afterAll(() => engine.dispose());

const x = () => new Tensor('float32', new Float32Array([1, 2, 3, 4]), [1, 4]);

test('inputs and outputs are described', () => {
  expect(engine.inputs).toEqual([{ name: 'x', type: 'float32', dims: [1, 4] }]);
  expect(engine.outputs).toEqual([{ name: 'y', type: 'float32', dims: [1, 4] }]);
});

test('unknown input name', async () => {
  await expect(engine.infer({ x: x(), z: x() })).rejects.toThrow("infer: unknown input 'z'; the engine's inputs are 'x'");
});

test('missing input', async () => {
  await expect(engine.infer({})).rejects.toThrow("infer: missing input 'x' (float32 [1,4])");
});

test('wrong dtype', async () => {
  await expect(engine.infer({ x: new Tensor('float64', new Float64Array(4), [1, 4]) })).rejects.toThrow(
    "Expected float32 for input 'x' of shape [1,4] but received float64 [1,4]",
  );
});

test('wrong shape', async () => {
  await expect(engine.infer({ x: new Tensor('float32', new Float32Array(8), [2, 4]) })).rejects.toThrow(
    "Expected float32 for input 'x' of shape [1,4] but received float32 [2,4]",
  );
});

test('not a tensor', async () => {
  await expect(engine.infer({ x: [1, 2, 3, 4] as unknown as Tensor })).rejects.toThrow("infer: input 'x' must be a Tensor (type, data, dims)");
  await expect(engine.infer(null as unknown as Record<string, Tensor>)).rejects.toThrow(KilnError);
});

test('a tensor whose data does not match its dims is refused at construction', () => {
  expect(() => new Tensor('float32', new Float32Array(3), [1, 4])).toThrow('Tensor: dims [1,4] hold 4 elements but the data has 3');
  expect(() => new Tensor('int64', new Int32Array(4), [4])).toThrow('Tensor: a int64 tensor takes a BigInt64Array, got Int32Array');
});

test('an onnxruntime-style tensor object is accepted', async () => {
  const out = await engine.infer({ x: { type: 'float32', data: new Float32Array([0, 0, 0, 0]), dims: [1, 4] } });
  expect(Array.from(out.y.data as Float32Array)).toEqual([1, 2, 3, 4]);
});

test('many concurrent infer calls give the right answers', async () => {
  const runs = Array.from({ length: 200 }, (_, i) =>
    engine.infer({ x: new Tensor('float32', new Float32Array([i, i, i, i]), [1, 4]) }).then((o) => Array.from(o.y.data as Float32Array)),
  );
  const outs = await Promise.all(runs);
  outs.forEach((o, i) => expect(o).toEqual([i + 1, i + 2, i + 3, i + 4]));
});

test('a disposed engine says so, and dispose during runs lets them finish', async () => {
  const e = await compile(addModel());
  const inflight = Array.from({ length: 20 }, () => e.infer({ x: x() }));
  e.dispose();
  const outs = await Promise.all(inflight);
  expect(outs).toHaveLength(20);
  await expect(e.infer({ x: x() })).rejects.toThrow('the engine was disposed; load or build it again');
  expect(() => e.serialize()).toThrow(/disposed/);
  e.dispose(); // twice is fine
});

test('await using disposes', async () => {
  const e = await compile(addModel());
  await e[Symbol.asyncDispose]();
  await expect(e.infer({ x: x() })).rejects.toMatchObject({ code: 'DISPOSED' });
});

test('an int64 model takes BigInt64Array feeds', async () => {
  const m = buildModel({
    nodes: [{ op: 'Mul', inputs: ['a', 'a'], outputs: ['b'] }],
    inputs: [{ name: 'a', type: 7, dims: [3] }],
    outputs: [{ name: 'b', type: 7, dims: [3] }],
  });
  const e = await compile(m);
  const out = await e.infer({ a: new Tensor('int64', new BigInt64Array([2n, -3n, 4000000000n]), [3]) });
  expect(Array.from(out.b.data as BigInt64Array)).toEqual([4n, 9n, 16000000000000000000n > 2n ** 63n ? BigInt.asIntN(64, 16000000000000000000n) : 16000000000000000000n]);
  e.dispose();
});

test('timeRuns times the layers alone, one entry per run', async () => {
  const t = await engine.timeRuns({ x: x() }, 7);
  expect(t).toHaveLength(7);
  expect(t.every((v) => Number.isFinite(v) && v >= 0)).toBe(true);
  await expect(engine.timeRuns({ x: x() }, 0)).rejects.toThrow('timeRuns: iterations must be between 1 and 1000000');
});
