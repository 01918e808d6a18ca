/**
 * The hand-written CUDA kernels (cuda/*.cu) against the CPU reference: each case is a one-node ONNX
 * model (graph inputs only, so nothing folds), built for device 'cuda' and for 'cpu' and run on the
 * same random inputs (odd sizes, broadcasting, negative indices, NaN where an op defines it). Every
 * layer of the cuda engine must run on the cuda backend (no CPU fallback), so a case proves the kernel
 * ran. float32: |gpu − cpu| / (1 + |cpu|) ≤ 1e-5 (1e-4 for transcendentals); integers and bool exactly.
 * float16: the model in float16 on the GPU vs the float32 CPU result on the same (rounded) inputs; its
 * relative L2 error must be within 4× (+1e-5) of the error of the CPU's own float16 kernels (a naive
 * fp16 implementation: compute in float, round once).
 * Skipped, with the reason, when the addon has no cuda backend. KILN_KERNELS_SELFCHECK=1 runs every
 * comparison CPU against CPU instead (checks the cases themselves on a machine without a GPU).
 */
import { compile } from '../../src/compile';
import { native } from '../../src/native/binding';
import { Tensor } from '../../src/tensor';
import { IOSpec, InitSpec, NodeSpec, buildModel } from '../helpers/model-builder';

const FLOAT = 1, INT8 = 3, INT32 = 6, INT64 = 7, BOOL = 9, FLOAT16 = 10;
const selfcheck = process.env.KILN_KERNELS_SELFCHECK === '1';
const haveCuda = (() => {
  try {
    return selfcheck || native().info().backends.includes('cuda');
  } catch {
    return false;
  }
})();
const suite = haveCuda ? describe : describe.skip;
if (!haveCuda) test.skip('cuda kernels: this kiln addon was built without the cuda backend', () => {});

// ---- data -------------------------------------------------------------------------------------
let seed = 12345;
function rnd(): number {
  seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
  return seed / 2 ** 32;
}
const uniform = (n: number, lo = -3, hi = 3) => Float32Array.from({ length: n }, () => lo + (hi - lo) * rnd());
const numel = (d: number[]) => d.reduce((a, b) => a * b, 1);

const f32buf = new Float32Array(1);
const u32buf = new Uint32Array(f32buf.buffer);
function f32ToF16(v: number): number {
  f32buf[0] = v;
  const x = u32buf[0];
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let h = mant >>> shift;
    const rem = mant & ((1 << shift) - 1), half = 1 << (shift - 1);
    if (rem > half || (rem === half && h & 1)) h++;
    return sign | h;
  }
  let h = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && h & 1)) h++;
  return sign | h;
}
function f16ToF32(h: number): number {
  const s = h & 0x8000 ? -1 : 1, e = (h >>> 10) & 0x1f, m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 0x1f) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

type Feed = { name: string; type: number; dims: number[]; data: Float32Array | Int32Array | BigInt64Array | Uint8Array };
const fin = (name: string, dims: number[], lo = -3, hi = 3): Feed => ({ name, type: FLOAT, dims, data: uniform(numel(dims), lo, hi) });
const iin = (name: string, dims: number[], type: number, lo: number, hi: number): Feed => {
  const v = Array.from({ length: numel(dims) }, () => Math.floor(lo + (hi - lo) * rnd()));
  return { name, type, dims, data: type === INT64 ? BigInt64Array.from(v.map(BigInt)) : type === BOOL ? Uint8Array.from(v.map((x) => x & 1)) : Int32Array.from(v) };
};
const bin = (name: string, dims: number[]) => iin(name, dims, BOOL, 0, 2);

function tensorOf(f: Feed, asType = f.type): Tensor {
  if (asType === FLOAT16) return new Tensor('float16', Uint16Array.from(f.data as Float32Array, (v) => f32ToF16(v)), f.dims);
  if (f.type === FLOAT && asType === FLOAT) return new Tensor('float32', f.data as Float32Array, f.dims);
  if (f.type === INT32) return new Tensor('int32', f.data as Int32Array, f.dims);
  if (f.type === INT64) return new Tensor('int64', f.data as BigInt64Array, f.dims);
  return new Tensor('bool', f.data as Uint8Array, f.dims);
}
function values(t: Tensor): number[] {
  if (t.type === 'float16') return Array.from(t.data as Uint16Array, f16ToF32);
  if (t.type === 'int64') return Array.from(t.data as BigInt64Array, Number);
  return Array.from(t.data as ArrayLike<number>);
}

// ---- the comparison -----------------------------------------------------------------------------
interface Case {
  nodes: NodeSpec[];
  feeds: Feed[];
  outputs: { name: string; type?: number }[];
  initializers?: InitSpec[];
  opset?: number;
  tol?: number;
  /** also run the float32 inputs/outputs as float16 */
  fp16?: boolean;
}

function model(c: Case, half: boolean): Uint8Array {
  const io = (t: number) => (half && t === FLOAT ? FLOAT16 : t);
  const inputs: IOSpec[] = c.feeds.map((f) => ({ name: f.name, type: io(f.type), dims: f.dims }));
  const outputs: IOSpec[] = c.outputs.map((o) => ({ name: o.name, type: io(o.type ?? FLOAT), dims: null }));
  const initializers = (c.initializers ?? []).map((t) =>
    half && (t.type ?? FLOAT) === FLOAT && t.floats
      ? { name: t.name, type: FLOAT16, dims: t.dims, raw: new Uint8Array(Uint16Array.from(t.floats, f32ToF16).buffer) }
      : t,
  );
  return buildModel({ nodes: c.nodes, inputs, outputs, initializers, opset: c.opset ?? 17 });
}

async function runOn(device: 'cpu' | 'cuda', c: Case, half: boolean, feeds: Feed[]) {
  if (process.env.KILN_KERNELS_DEBUG) process.stderr.write(`${device} ${half} ${c.nodes[0].op} ${JSON.stringify(c.nodes[0].attrs)} ${c.feeds.map((f) => f.dims.join('x')).join(' ')}\n`);
  const e = await compile(model(c, half), { device: selfcheck ? 'cpu' : device, timing: device === 'cuda' });
  try {
    if (device === 'cuda' && !selfcheck) {
      const off = e.report.layers.filter((l) => l.backend !== 'cuda').map((l) => `${l.name} (${l.kind})`);
      expect(off).toEqual([]);  // every layer on the GPU: the cuda kernel ran
    }
    const fd: Record<string, Tensor> = {};
    for (const f of feeds) fd[f.name] = tensorOf(f, half && f.type === FLOAT ? FLOAT16 : f.type);
    const out = await e.infer(fd);
    return { out: c.outputs.map((o) => out[o.name]), tactics: e.report.layers.map((l) => l.tactic) };
  } finally {
    e.dispose();
  }
}

const relL2 = (a: number[], r: number[]) => {
  let num = 0, den = 0;
  r.forEach((v, i) => {
    num += (a[i] - v) ** 2;
    den += v * v;
  });
  return Math.sqrt(num / Math.max(den, 1e-30));
};

async function check(c: Case) {
  const cpu = await runOn('cpu', c, false, c.feeds);
  const gpu = await runOn('cuda', c, false, c.feeds);
  if (!selfcheck) expect(gpu.tactics.every((t) => t.startsWith('cuda.'))).toBe(true);
  c.outputs.forEach((o, k) => {
    const want = values(cpu.out[k]), got = values(gpu.out[k]);
    expect(gpu.out[k].dims).toEqual(cpu.out[k].dims);
    expect(got.length).toBe(want.length);
    const exact = (o.type ?? FLOAT) !== FLOAT;
    let worst = 0, at = -1;
    want.forEach((w, i) => {
      const g = got[i];
      if (Number.isNaN(w) && Number.isNaN(g)) return;
      if (w === g) return;
      const err = exact ? Infinity : Math.abs(g - w) / (1 + Math.abs(w));
      if (!(err <= worst)) (worst = Number.isNaN(err) ? Infinity : err), (at = i);
    });
    if (worst > (exact ? 0 : c.tol ?? 1e-5)) throw new Error(`output ${o.name}[${at}]: cuda ${got[at]} vs cpu ${want[at]} (error ${worst})`);
  });
  if (!c.fp16) return;
  // float16: inputs rounded to float16 once, the float32 reference computed from the rounded values
  const rounded = c.feeds.map((f) => (f.type === FLOAT ? { ...f, data: Float32Array.from(f.data as Float32Array, (v) => f16ToF32(f32ToF16(v))) } : f));
  const ref = await runOn('cpu', c, false, rounded);
  const naive = await runOn('cpu', c, true, rounded);
  const g16 = await runOn('cuda', c, true, rounded);
  c.outputs.forEach((o, k) => {
    if ((o.type ?? FLOAT) !== FLOAT) return;
    const r = values(ref.out[k]);
    const eNaive = relL2(values(naive.out[k]), r), eGpu = relL2(values(g16.out[k]), r);
    if (!(eGpu <= 4 * eNaive + 1e-5)) throw new Error(`float16 output ${o.name}: relative L2 error ${eGpu} vs the naive float16 ${eNaive}`);
  });
}

const node = (op: string, inputs: string[], outputs: string[] = ['y'], attrs?: NodeSpec['attrs']): NodeSpec => ({ op, inputs, outputs, attrs });
const fInit = (name: string, dims: number[], lo = -1, hi = 1): InitSpec => ({ name, dims, floats: Array.from(uniform(numel(dims), lo, hi)) });
const iInit = (name: string, v: number[]): InitSpec => ({ name, type: INT64, dims: [v.length], int64s: v });

// ---- cases --------------------------------------------------------------------------------------
suite('cuda kernels vs the CPU reference', () => {
  const shapes = [[7], [3, 5, 17], [2, 3, 4, 33]];

  describe('Unary', () => {
    const ops: [string, NodeSpec['attrs'], number, number, number?][] = [
      ['Abs', {}, -3, 3], ['Neg', {}, -3, 3], ['Sign', {}, -3, 3], ['Exp', {}, -3, 3, 1e-4], ['Log', {}, 0.01, 5, 1e-4],
      ['Sqrt', {}, 0, 5], ['Reciprocal', {}, 0.5, 3], ['Floor', {}, -3, 3], ['Ceil', {}, -3, 3], ['Round', {}, -3, 3],
      ['Sin', {}, -3, 3, 1e-4], ['Cos', {}, -3, 3, 1e-4], ['Tan', {}, -1.2, 1.2, 1e-4], ['Asin', {}, -0.99, 0.99, 1e-4],
      ['Acos', {}, -0.99, 0.99, 1e-4], ['Atan', {}, -3, 3, 1e-4], ['Sinh', {}, -3, 3, 1e-4], ['Cosh', {}, -3, 3, 1e-4],
      ['Asinh', {}, -3, 3, 1e-4], ['Acosh', {}, 1, 4, 1e-4], ['Atanh', {}, -0.99, 0.99, 1e-4], ['Erf', {}, -3, 3, 1e-4],
      ['Sigmoid', {}, -8, 8, 1e-4], ['Tanh', {}, -3, 3, 1e-4], ['Relu', {}, -3, 3], ['LeakyRelu', { alpha: 0.15 }, -3, 3],
      ['Elu', { alpha: 0.7 }, -3, 3, 1e-4], ['Selu', {}, -3, 3, 1e-4], ['Celu', { alpha: 1.5 }, -3, 3, 1e-4],
      ['HardSigmoid', { alpha: 0.3, beta: 0.4 }, -3, 3], ['HardSwish', {}, -5, 5], ['Softplus', {}, -10, 10, 1e-4],
      ['Softsign', {}, -3, 3], ['Mish', {}, -5, 5, 1e-4], ['ThresholdedRelu', { alpha: 0.5 }, -3, 3],
      ['Shrink', { lambd: 0.7, bias: 0.2 }, -3, 3],
    ];
    // rows padded to the callback's arity (a shorter row would make jest pass a `done` callback)
    test.each(ops.map(([op, attrs, lo, hi, tol]) => [op, attrs, lo, hi, tol ?? 1e-5] as const))('%s', async (op, attrs, lo, hi, tol) => {
      for (const dims of shapes)
        await check({ nodes: [node(op, ['x'], ['y'], attrs)], feeds: [fin('x', dims, lo, hi)], outputs: [{ name: 'y' }], tol, fp16: dims.length === 3 });
    });
    test('Gelu (none and tanh)', async () => {
      for (const approximate of ['none', 'tanh'])
        await check({ nodes: [node('Gelu', ['x'], ['y'], { approximate })], feeds: [fin('x', [5, 77])], outputs: [{ name: 'y' }], opset: 20, tol: 1e-4, fp16: true });
    });
    test('Clip with run-time bounds, with one bound, and on int32', async () => {
      await check({ nodes: [node('Clip', ['x', 'lo', 'hi'])], feeds: [fin('x', [3, 41]), fin('lo', [], -1, -0.5), fin('hi', [], 0.5, 1)], outputs: [{ name: 'y' }], opset: 13, fp16: true });
      await check({ nodes: [node('Clip', ['x', '', 'hi'])], feeds: [fin('x', [3, 41]), fin('hi', [], 0.5, 1)], outputs: [{ name: 'y' }], opset: 13 });
      await check({ nodes: [node('Clip', ['x', 'lo', 'hi'])], feeds: [iin('x', [37], INT32, -50, 50)], outputs: [{ name: 'y', type: INT32 }], opset: 13,
        initializers: [{ name: 'lo', type: INT32, dims: [], raw: new Uint8Array(Int32Array.of(-7).buffer) }, { name: 'hi', type: INT32, dims: [], raw: new Uint8Array(Int32Array.of(9).buffer) }] });
    });
    test('integer Abs/Neg/Relu/Sign, IsNaN/IsInf, Not', async () => {
      for (const op of ['Abs', 'Neg', 'Sign'])
        for (const t of [INT32, INT64]) await check({ nodes: [node(op, ['x'])], feeds: [iin('x', [5, 19], t, -100, 100)], outputs: [{ name: 'y', type: t }] });
      await check({ nodes: [node('Relu', ['x'])], feeds: [iin('x', [5, 19], INT32, -100, 100)], outputs: [{ name: 'y', type: INT32 }], opset: 14 });
      const x = fin('x', [4, 9]);
      (x.data as Float32Array).set([NaN, Infinity, -Infinity, NaN], 3);
      await check({ nodes: [node('IsNaN', ['x'])], feeds: [x], outputs: [{ name: 'y', type: BOOL }] });
      await check({ nodes: [node('IsInf', ['x'], ['y'], { detect_negative: 0 })], feeds: [x], outputs: [{ name: 'y', type: BOOL }] });
      await check({ nodes: [node('Not', ['x'])], feeds: [bin('x', [3, 35])], outputs: [{ name: 'y', type: BOOL }] });
    });
  });

  describe('Binary', () => {
    const pairs: [number[], number[]][] = [[[4, 33], [4, 33]], [[3, 1, 5], [4, 5]], [[1], [7, 9]], [[2, 3, 4, 5], [3, 1, 1]], [[6, 1, 1, 7], [1, 5, 3, 1]]];
    const ops: [string, number, number, number?][] = [
      ['Add', -3, 3], ['Sub', -3, 3], ['Mul', -3, 3], ['Div', 0.5, 3], ['Pow', 0.1, 2, 1e-4], ['Max', -3, 3], ['Min', -3, 3], ['PRelu', -3, 3],
    ];
    test.each(ops.map(([op, lo, hi, tol]) => [op, lo, hi, tol ?? 1e-5] as const))('%s (float32, broadcasting)', async (op, lo, hi, tol) => {
      for (const [a, b] of pairs)
        await check({ nodes: [node(op, ['a', 'b'])], feeds: [fin('a', a, lo, hi), fin('b', b, lo, hi)], outputs: [{ name: 'y' }], tol, fp16: op === 'Add' || op === 'Mul' });
    });
    test('Mod (fmod and integer), Div by zero on integers', async () => {
      await check({ nodes: [node('Mod', ['a', 'b'], ['y'], { fmod: 1 })], feeds: [fin('a', [5, 13]), fin('b', [13], 0.5, 2)], outputs: [{ name: 'y' }] });
      for (const t of [INT32, INT64]) {
        await check({ nodes: [node('Mod', ['a', 'b'])], feeds: [iin('a', [5, 13], t, -50, 50), iin('b', [13], t, -7, 7)], outputs: [{ name: 'y', type: t }] });
        await check({ nodes: [node('Div', ['a', 'b'])], feeds: [iin('a', [5, 13], t, -50, 50), iin('b', [5, 1], t, -3, 3)], outputs: [{ name: 'y', type: t }] });
        await check({ nodes: [node('Add', ['a', 'b'])], feeds: [iin('a', [2, 3, 9], t, -50, 50), iin('b', [3, 1], t, -3, 3)], outputs: [{ name: 'y', type: t }] });
      }
    });
    test('n-ary Sum, Max, Mean with broadcasting', async () => {
      for (const op of ['Sum', 'Max', 'Mean', 'Min'])
        await check({ nodes: [node(op, ['a', 'b', 'c'])], feeds: [fin('a', [3, 1, 8]), fin('b', [5, 8]), fin('c', [3, 5, 8])], outputs: [{ name: 'y' }], fp16: op === 'Mean' });
    });
    test('comparisons → bool, logic ops, bit ops', async () => {
      for (const op of ['Equal', 'Greater', 'Less', 'GreaterOrEqual', 'LessOrEqual']) {
        await check({ nodes: [node(op, ['a', 'b'])], feeds: [iin('a', [4, 17], INT64, -3, 3), iin('b', [17], INT64, -3, 3)], outputs: [{ name: 'y', type: BOOL }] });
        if (op !== 'Equal') await check({ nodes: [node(op, ['a', 'b'])], feeds: [fin('a', [4, 17]), fin('b', [4, 1])], outputs: [{ name: 'y', type: BOOL }] });
      }
      for (const op of ['And', 'Or', 'Xor'])
        await check({ nodes: [node(op, ['a', 'b'])], feeds: [bin('a', [3, 4, 37]), bin('b', [4, 1])], outputs: [{ name: 'y', type: BOOL }] });
      for (const op of ['BitwiseAnd', 'BitwiseOr', 'BitwiseXor'])
        await check({ nodes: [node(op, ['a', 'b'])], feeds: [iin('a', [3, 29], INT32, -1000, 1000), iin('b', [3, 29], INT32, -1000, 1000)], outputs: [{ name: 'y', type: INT32 }], opset: 18 });
    });
  });

  test('Where (float broadcast, int64)', async () => {
    await check({ nodes: [node('Where', ['c', 'x', 'y'], ['o'])], feeds: [bin('c', [3, 1, 5]), fin('x', [4, 5]), fin('y', [1])], outputs: [{ name: 'o' }], fp16: true });
    await check({ nodes: [node('Where', ['c', 'x', 'y'], ['o'])], feeds: [bin('c', [6, 45]), iin('x', [6, 45], INT64, -9, 9), iin('y', [6, 45], INT64, -9, 9)], outputs: [{ name: 'o', type: INT64 }] });
  });

  test('Cast between float32, float16, int32, int64, bool', async () => {
    const x = fin('x', [5, 23], -3e9, 3e9);
    (x.data as Float32Array).set([NaN, 1.5, -2.5, 0, 2.9], 0);
    for (const to of [INT32, INT64, BOOL, FLOAT16])
      await check({ nodes: [node('Cast', ['x'], ['y'], { to })], feeds: [x], outputs: [{ name: 'y', type: to === FLOAT16 ? FLOAT16 : to }] });
    await check({ nodes: [node('Cast', ['x'], ['y'], { to: FLOAT })], feeds: [iin('x', [7, 11], INT64, -1e6, 1e6)], outputs: [{ name: 'y' }] });
    await check({ nodes: [node('Cast', ['x'], ['y'], { to: FLOAT })], feeds: [bin('x', [7, 11])], outputs: [{ name: 'y' }] });
  });

  describe('Softmax family', () => {
    test.each(['Softmax', 'LogSoftmax', 'Hardmax'])('%s', async (op) => {
      for (const [dims, axis] of [[[5, 37], -1], [[2, 7, 9], 1], [[3, 1000], 1], [[2, 3, 4], 0]] as [number[], number][])
        await check({ nodes: [node(op, ['x'], ['y'], { axis })], feeds: [fin('x', dims, -5, 5)], outputs: [{ name: 'y' }], opset: 13, tol: 1e-4, fp16: op === 'Softmax' });
    });
  });

  describe('Normalizations', () => {
    test('LayerNormalization with statistics outputs', async () => {
      await check({
        nodes: [node('LayerNormalization', ['x', 's', 'b'], ['y', 'm', 'r'], { axis: -1, epsilon: 1e-5 })],
        feeds: [fin('x', [3, 5, 64]), fin('s', [64]), fin('b', [64])],
        outputs: [{ name: 'y' }, { name: 'm' }, { name: 'r' }],
        tol: 1e-4,
        fp16: true,
      });
      await check({ nodes: [node('LayerNormalization', ['x', 's'], ['y'], { axis: 1 })], feeds: [fin('x', [4, 3, 7]), fin('s', [3, 7])], outputs: [{ name: 'y' }], tol: 1e-4 });
    });
    test('InstanceNormalization, LpNormalization, MeanVarianceNormalization', async () => {
      await check({ nodes: [node('InstanceNormalization', ['x', 's', 'b'])], feeds: [fin('x', [2, 3, 5, 7]), fin('s', [3]), fin('b', [3])], outputs: [{ name: 'y' }], tol: 1e-4 });
      for (const p of [1, 2])
        await check({ nodes: [node('LpNormalization', ['x'], ['y'], { axis: 1, p })], feeds: [fin('x', [4, 9, 3])], outputs: [{ name: 'y' }], tol: 1e-4 });
      await check({ nodes: [node('MeanVarianceNormalization', ['x'])], feeds: [fin('x', [2, 3, 4, 5])], outputs: [{ name: 'y' }], tol: 1e-4 });
    });
    test('BatchNormalization (constant statistics), LRN', async () => {
      await check({
        nodes: [node('BatchNormalization', ['x', 's', 'b', 'm', 'v'], ['y'], { epsilon: 1e-3 })],
        feeds: [fin('x', [2, 3, 5, 5])],
        initializers: [fInit('s', [3]), fInit('b', [3]), fInit('m', [3]), fInit('v', [3], 0.5, 2)],
        outputs: [{ name: 'y' }],
        fp16: true,
      });
      await check({ nodes: [node('LRN', ['x'], ['y'], { size: 3, alpha: 0.0002, beta: 0.75, bias: 1.5 })], feeds: [fin('x', [2, 5, 4, 3])], outputs: [{ name: 'y' }], tol: 1e-4 });
    });
  });

  describe('Reductions', () => {
    const ops: [string, number, number][] = [
      ['ReduceMean', -3, 3], ['ReduceMax', -3, 3], ['ReduceMin', -3, 3], ['ReduceProd', 0.8, 1.2], ['ReduceL1', -3, 3],
      ['ReduceL2', -3, 3], ['ReduceLogSum', 0.1, 3], ['ReduceLogSumExp', -3, 3], ['ReduceSumSquare', -3, 3],
    ];
    test.each(ops)('%s', async (op, lo, hi) => {
      for (const [dims, axes, keepdims] of [[[4, 37], [1], 1], [[3, 5, 7], [0, 2], 0], [[2, 300, 3], [1], 1], [[6, 5], [0, 1], 0]] as [number[], number[], number][])
        await check({ nodes: [node(op, ['x'], ['y'], { axes, keepdims })], feeds: [fin('x', dims, lo, hi)], outputs: [{ name: 'y' }], opset: 13, tol: 1e-4, fp16: op === 'ReduceMean' && dims.length === 3 });
    });
    test('ReduceSum (axes input, int64), ArgMax/ArgMin with select_last_index', async () => {
      await check({ nodes: [node('ReduceSum', ['x', 'axes'], ['y'], { keepdims: 0 })], feeds: [fin('x', [3, 4, 5])], initializers: [iInit('axes', [1])], outputs: [{ name: 'y' }], opset: 13 });
      await check({ nodes: [node('ReduceSum', ['x', 'axes'], ['y'])], feeds: [iin('x', [3, 4, 5], INT64, -9, 9)], initializers: [iInit('axes', [0, 2])], outputs: [{ name: 'y', type: INT64 }], opset: 13 });
      for (const op of ['ArgMax', 'ArgMin'])
        for (const select_last_index of [0, 1])
          await check({ nodes: [node(op, ['x'], ['y'], { axis: 1, select_last_index })], feeds: [iin('x', [3, 9, 4], INT32, -3, 3)], outputs: [{ name: 'y', type: INT64 }], opset: 13 });
    });
  });

  describe('Pooling', () => {
    test('MaxPool (2-D with Indices, 1-D, 3-D, dilations)', async () => {
      await check({ nodes: [node('MaxPool', ['x'], ['y', 'i'], { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] })], feeds: [fin('x', [2, 3, 9, 11])], outputs: [{ name: 'y' }, { name: 'i', type: INT64 }], opset: 12, fp16: true });
      await check({ nodes: [node('MaxPool', ['x'], ['y', 'i'], { kernel_shape: [2, 2], storage_order: 1 })], feeds: [fin('x', [1, 2, 6, 5])], outputs: [{ name: 'y' }, { name: 'i', type: INT64 }], opset: 12 });
      await check({ nodes: [node('MaxPool', ['x'], ['y'], { kernel_shape: [3], dilations: [2], strides: [1] })], feeds: [fin('x', [2, 3, 19])], outputs: [{ name: 'y' }], opset: 12 });
      await check({ nodes: [node('MaxPool', ['x'], ['y'], { kernel_shape: [2, 2, 2], strides: [2, 2, 2] })], feeds: [fin('x', [1, 2, 5, 6, 7])], outputs: [{ name: 'y' }], opset: 12 });
    });
    test('AveragePool (count_include_pad 0/1, ceil_mode), LpPool, GlobalAveragePool', async () => {
      for (const count_include_pad of [0, 1])
        await check({ nodes: [node('AveragePool', ['x'], ['y'], { kernel_shape: [3, 3], pads: [1, 1, 1, 1], strides: [2, 2], count_include_pad, ceil_mode: 1 })], feeds: [fin('x', [2, 3, 10, 9])], outputs: [{ name: 'y' }], opset: 19, fp16: true });
      await check({ nodes: [node('LpPool', ['x'], ['y'], { kernel_shape: [2, 2], p: 3 })], feeds: [fin('x', [1, 3, 7, 7])], outputs: [{ name: 'y' }], opset: 18, tol: 1e-4 });
      await check({ nodes: [node('GlobalAveragePool', ['x'])], feeds: [fin('x', [2, 5, 7, 9])], outputs: [{ name: 'y' }] });
      await check({ nodes: [node('GlobalMaxPool', ['x'])], feeds: [fin('x', [2, 5, 7, 9])], outputs: [{ name: 'y' }] });
    });
  });

  describe('Quantization', () => {
    test('QuantizeLinear, one scale: float32 four elements per thread, and a size that is not a multiple of 4', async () => {
      for (const dims of [[2, 3, 8, 8], [3, 5, 7]])
        await check({
          nodes: [node('QuantizeLinear', ['x', 's', 'z'])],
          feeds: [fin('x', dims, -4, 4)],
          initializers: [{ name: 's', dims: [], floats: [0.023] }, { name: 'z', type: INT8, dims: [], raw: new Uint8Array(Int8Array.of(-3).buffer) }],
          outputs: [{ name: 'y', type: INT8 }],
          opset: 13,
        });
    });
  });

  describe('Data movement', () => {
    test('Transpose, Slice (negative steps), Expand, Tile, Split', async () => {
      await check({ nodes: [node('Transpose', ['x'], ['y'], { perm: [2, 0, 1] })], feeds: [fin('x', [3, 4, 5])], outputs: [{ name: 'y' }], fp16: true });
      await check({ nodes: [node('Transpose', ['x'], ['y'], { perm: [0, 2, 1, 3] })], feeds: [iin('x', [2, 33, 17, 3], INT64, -9, 9)], outputs: [{ name: 'y', type: INT64 }] });
      // NCHW -> NHWC with few channels (a network input's reformat: one thread per position), batch 2
      // and batch 1 (the merged view has one dim less)
      await check({ nodes: [node('Transpose', ['x'], ['y'], { perm: [0, 2, 3, 1] })], feeds: [fin('x', [2, 3, 37, 29])], outputs: [{ name: 'y' }], fp16: true });
      await check({ nodes: [node('Transpose', ['x'], ['y'], { perm: [0, 2, 3, 1] })], feeds: [fin('x', [1, 16, 5, 7])], outputs: [{ name: 'y' }] });
      await check({
        nodes: [node('Slice', ['x', 'st', 'en', 'ax', 'sp'])],
        feeds: [fin('x', [6, 10, 7])],
        initializers: [iInit('st', [5, 1]), iInit('en', [0, 9]), iInit('ax', [0, 1]), iInit('sp', [-2, 3])],
        outputs: [{ name: 'y' }],
        opset: 13,
      });
      await check({ nodes: [node('Expand', ['x', 's'])], feeds: [fin('x', [3, 1, 5])], initializers: [iInit('s', [2, 3, 4, 5])], outputs: [{ name: 'y' }], opset: 13 });
      await check({ nodes: [node('Tile', ['x', 'r'])], feeds: [bin('x', [3, 5])], initializers: [iInit('r', [2, 3])], outputs: [{ name: 'y', type: BOOL }], opset: 13 });
      await check({ nodes: [node('Split', ['x', 's'], ['a', 'b'], { axis: 1 })], feeds: [fin('x', [4, 9, 3])], initializers: [iInit('s', [4, 5])], outputs: [{ name: 'a' }, { name: 'b' }], opset: 13 });
    });
    test('Concat', async () => {
      await check({ nodes: [node('Concat', ['a', 'b', 'c'], ['y'], { axis: 1 })], feeds: [fin('a', [3, 2, 5]), fin('b', [3, 7, 5]), fin('c', [3, 1, 5])], outputs: [{ name: 'y' }], fp16: true });
      await check({ nodes: [node('Concat', ['a', 'b'], ['y'], { axis: 0 })], feeds: [iin('a', [2, 3], INT64, 0, 9), iin('b', [5, 3], INT64, 0, 9)], outputs: [{ name: 'y', type: INT64 }] });
    });
    test('Gather (run-time and constant indices, negative), GatherElements', async () => {
      await check({ nodes: [node('Gather', ['x', 'i'], ['y'], { axis: 0 })], feeds: [fin('x', [50, 16]), iin('i', [3, 7], INT64, -50, 50)], outputs: [{ name: 'y' }], fp16: true });
      await check({ nodes: [node('Gather', ['x', 'i'], ['y'], { axis: 1 })], feeds: [fin('x', [4, 9, 5])], initializers: [iInit('i', [-1, 0, 8, 3])], outputs: [{ name: 'y' }] });
      await check({ nodes: [node('Gather', ['x', 'i'], ['y'], { axis: 0 })], feeds: [iin('x', [6], INT64, 0, 99), iin('i', [4], INT32, -6, 6)], outputs: [{ name: 'y', type: INT64 }] });
      await check({ nodes: [node('GatherElements', ['x', 'i'], ['y'], { axis: 1 })], feeds: [fin('x', [4, 9, 3]), iin('i', [4, 5, 3], INT64, -9, 9)], outputs: [{ name: 'y' }] });
    });
    test('Pad (constant with a run-time value, reflect, edge, wrap)', async () => {
      await check({ nodes: [node('Pad', ['x', 'p', 'v'], ['y'], { mode: 'constant' })], feeds: [fin('x', [3, 4, 5]), fin('v', [])], initializers: [iInit('p', [1, 0, 2, 0, 3, 1])], outputs: [{ name: 'y' }], opset: 13 });
      for (const mode of ['reflect', 'edge', 'wrap'])
        await check({ nodes: [node('Pad', ['x', 'p'], ['y'], { mode })], feeds: [fin('x', [3, 4, 5])], initializers: [iInit('p', [0, 2, 1, 0, 3, 2])], outputs: [{ name: 'y' }], opset: 19, fp16: mode === 'reflect' });
    });
  });
});
