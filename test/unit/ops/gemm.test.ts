/**
 * Gemm and MatMul: shape inference, lowering to the native 'Gemm' kind, numbers against a JS
 * reference, and the blocked tactic against the reference tactic on odd shapes.
 */
import { lowerModel, maxRelErr, randomArray, rng, runF32 } from './tactic-helpers';

/** JS oracle: batched matmul over explicit index functions. */
function jsMatmul(M: number, N: number, K: number, a: (m: number, k: number) => number, b: (k: number, n: number) => number): Float32Array {
  const out = new Float32Array(M * N);
  for (let m = 0; m < M; m++)
    for (let n = 0; n < N; n++) {
      let s = 0;
      for (let k = 0; k < K; k++) s += a(m, k) * b(k, n);
      out[m * N + n] = s;
    }
  return out;
}

function gemmPlan(M: number, N: number, K: number, o: { transA?: number; transB?: number; alpha?: number; beta?: number; c?: number[] }) {
  const aDims = o.transA ? [K, M] : [M, K];
  const bDims = o.transB ? [N, K] : [K, N];
  const attrs: Record<string, number> = {};
  for (const k of ['transA', 'transB', 'alpha', 'beta'] as const) if (o[k] !== undefined) attrs[k] = o[k]!;
  return lowerModel({
    nodes: [{ op: 'Gemm', inputs: ['a', 'b', ...(o.c ? ['c'] : [])], outputs: ['y'], attrs }],
    inputs: [{ name: 'a', dims: aDims }, { name: 'b', dims: bDims }, ...(o.c ? [{ name: 'c', dims: o.c }] : [])],
    outputs: [{ name: 'y', dims: [M, N] }],
    opset: 13,
  });
}

describe('Gemm', () => {
  test('lowers to native Gemm with resolved attributes and C strides', () => {
    const plan = gemmPlan(3, 5, 4, { transA: 1, alpha: 0.5, c: [5] });
    expect(plan.ops).toHaveLength(1);
    const op = plan.ops[0];
    expect(op.kind).toBe('Gemm');
    expect(op.attrs).toMatchObject({
      M: { v: 3 }, N: { v: 5 }, K: { v: 4 }, transA: { v: 1 }, transB: { v: 0 }, alpha: { v: 0.5 }, beta: { v: 1 },
      c_strides: { v: [0, 1] }, activation: { v: 'none' },
    });
  });

  test('rejects mismatched inner dims naming the node', () => {
    expect(() =>
      lowerModel({
        nodes: [{ op: 'Gemm', inputs: ['a', 'b'], outputs: ['y'], name: 'g0' }],
        inputs: [{ name: 'a', dims: [2, 3] }, { name: 'b', dims: [4, 5] }],
        outputs: [{ name: 'y', dims: [2, 5] }],
      }),
    ).toThrow(/g0.*inner dimensions differ/);
  });

  test.each([
    [{}, [] as number[]],
    [{ transA: 1, alpha: 0.25 }, [1]],
    [{ transB: 1, beta: 2 }, [6, 1]],
    [{ transA: 1, transB: 1, alpha: -1, beta: 0.5 }, [6, 7]],
  ])('numbers match JS for %j with C %j, both tactics', (o, c) => {
    const M = 6, N = 7, K = 5;
    const r = rng(7);
    const opts = { ...o, c: c.length ? c : undefined };
    const plan = gemmPlan(M, N, K, opts);
    const A = randomArray(M * K, r), B = randomArray(K * N, r);
    const C = randomArray(c.reduce((x, y) => x * y, 1), r);
    const ta = 'transA' in o, tb = 'transB' in o;
    const alpha = (o as { alpha?: number }).alpha ?? 1, beta = (o as { beta?: number }).beta ?? 1;
    const want = jsMatmul(M, N, K, (m, k) => (ta ? A[k * M + m] : A[m * K + k]), (k, n) => (tb ? B[n * K + k] : B[k * N + n]));
    for (let m = 0; m < M; m++)
      for (let n = 0; n < N; n++) {
        let cv = 0;
        if (c.length === 1) cv = C[0];
        else if (c.length === 2) cv = C[(c[0] === 1 ? 0 : m) * c[1] + (c[1] === 1 ? 0 : n)];
        want[m * N + n] = alpha * want[m * N + n] + beta * cv;
      }
    const ins = c.length ? [A, B, C] : [A, B];
    for (const tactic of ['cpu.gemm.ref', 'cpu.gemm.blocked']) {
      const [got] = runF32(plan, ins, { Gemm: tactic });
      expect(maxRelErr(got, want)).toBeLessThan(1e-5);
    }
  });

  test('blocked tactic matches the reference on odd and multi-slice shapes', () => {
    const r = rng(11);
    // odd depths and slices (K = 515: 256 + 256 + 3) reach the microkernels' odd-step tails (the AVX-512
    // kernel unrolls the depth by two)
    const shapes = [[1, 1, 1], [7, 13, 3], [17, 33, 300], [65, 31, 257], [5, 200, 9], [100, 3, 520], [13, 40, 515]];
    for (const [M, N, K] of shapes)
      for (const [transA, transB] of [[0, 0], [1, 0], [0, 1], [1, 1]]) {
        const plan = gemmPlan(M, N, K, { transA, transB, alpha: 1.5, beta: 0.5, c: [N] });
        const ins = [randomArray(M * K, r), randomArray(K * N, r), randomArray(N, r)];
        const [ref] = runF32(plan, ins, { Gemm: 'cpu.gemm.ref' });
        const [fast] = runF32(plan, ins, { Gemm: 'cpu.gemm.blocked' });
        expect({ M, N, K, transA, transB, err: maxRelErr(fast, ref) < 1e-5 }).toEqual({ M, N, K, transA, transB, err: true });
      }
  });

  test('relu epilogue in both tactics', () => {
    const plan = gemmPlan(9, 19, 8, { c: [9, 19] });
    plan.ops[0].attrs.activation = { t: 's', v: 'relu' };
    const r = rng(3);
    const ins = [randomArray(72, r), randomArray(152, r), randomArray(171, r)];
    const [ref] = runF32(plan, ins, { Gemm: 'cpu.gemm.ref' });
    const [fast] = runF32(plan, ins, { Gemm: 'cpu.gemm.blocked' });
    expect(Math.min(...ref)).toBe(0);
    expect(ref.some((v) => v > 0)).toBe(true);
    expect(maxRelErr(fast, ref)).toBeLessThan(1e-5);
  });
});

describe('MatMul', () => {
  const cases: [number[], number[], number[]][] = [
    [[3, 4], [4, 5], [3, 5]],
    [[4], [4], []],
    [[4], [2, 4, 5], [2, 5]],
    [[2, 3, 4], [4], [2, 3]],
    [[2, 1, 3, 4], [5, 4, 6], [2, 5, 3, 6]],
    [[3, 4], [2, 4, 6], [2, 3, 6]],
  ];
  test.each(cases)('%j x %j -> %j, numbers and tactics', (a, b, y) => {
    const plan = lowerModel({
      nodes: [{ op: 'MatMul', inputs: ['a', 'b'], outputs: ['y'] }],
      inputs: [{ name: 'a', dims: a }, { name: 'b', dims: b }],
      outputs: [{ name: 'y', dims: y }],
    });
    expect(plan.tensors[plan.ops[0].outputs[0]].shape).toEqual(y);
    const r = rng(5);
    const size = (s: number[]) => s.reduce((x, z) => x * z, 1);
    const A = randomArray(size(a), r), B = randomArray(size(b), r);
    // JS oracle with numpy broadcasting.
    const A2 = a.length === 1 ? [1, a[0]] : a, B2 = b.length === 1 ? [b[0], 1] : b;
    const M = A2[A2.length - 2], K = A2[A2.length - 1], N = B2[B2.length - 1];
    const ba = A2.slice(0, -2), bb = B2.slice(0, -2);
    const rank = Math.max(ba.length, bb.length);
    const batch = Array.from({ length: rank }, (_, i) => Math.max(ba[i - rank + ba.length] ?? 1, bb[i - rank + bb.length] ?? 1));
    const want = new Float32Array(size(batch) * M * N);
    for (let bi = 0; bi < size(batch); bi++) {
      let rem = bi, oa = 0, ob = 0, sa = M * K, sb = K * N;
      for (let d = rank - 1; d >= 0; d--) {
        const i = rem % batch[d];
        rem = Math.floor(rem / batch[d]);
        const da = ba[d - rank + ba.length], db = bb[d - rank + bb.length];
        if (da !== undefined) { oa += (da === 1 ? 0 : i) * sa; sa *= da; }
        if (db !== undefined) { ob += (db === 1 ? 0 : i) * sb; sb *= db; }
      }
      want.set(jsMatmul(M, N, K, (m, k) => A[oa + m * K + k], (k, n) => B[ob + k * N + n]), bi * M * N);
    }
    for (const tactic of ['cpu.gemm.ref', 'cpu.gemm.blocked']) {
      const [got] = runF32(plan, [A, B], { Gemm: tactic });
      expect(maxRelErr(got, want)).toBeLessThan(1e-5);
    }
  });

  test('rejects mismatched inner dims', () => {
    expect(() =>
      lowerModel({
        nodes: [{ op: 'MatMul', inputs: ['a', 'b'], outputs: ['y'], name: 'mm' }],
        inputs: [{ name: 'a', dims: [2, 3] }, { name: 'b', dims: [4, 5] }],
        outputs: [{ name: 'y', dims: [2, 5] }],
      }),
    ).toThrow(/mm.*inner dimensions differ/);
  });
});
