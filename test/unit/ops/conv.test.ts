/**
 * Conv: shape inference with pads/auto_pad/strides/dilations, lowering to native 'Conv', numbers on a
 * hand-checked case, and every faster tactic against the reference tactic on random geometries.
 */
import { DataType } from '../../../src/dtype';
import { encodePlan } from '../../../src/lower/plan';
import { native } from '../../../src/native/binding';
import { lowerModel, maxRelErr, randomArray, rng, runF32 } from './tactic-helpers';

interface ConvCase {
  x: number[];
  w: number[];
  bias?: boolean;
  attrs?: Record<string, number | number[] | string>;
}

function convPlan(c: ConvCase) {
  return lowerModel({
    nodes: [{ op: 'Conv', inputs: ['x', 'w', ...(c.bias ? ['b'] : [])], outputs: ['y'], attrs: c.attrs ?? {}, name: 'conv' }],
    inputs: [{ name: 'x', dims: c.x }, { name: 'w', dims: c.w }, ...(c.bias ? [{ name: 'b', dims: [c.w[0]] }] : [])],
    outputs: [{ name: 'y', dims: null }],
  });
}

/** The Conv layer with Z (input 3, Y's shape; the last plan input) and a clip(0, 0.5) activation, as
 * the epilogue-fusion pass makes them. */
function withResidualClip(base: ReturnType<typeof convPlan>, hasBias: boolean): ReturnType<typeof convPlan> {
  const yt = base.tensors[base.ops[0].outputs[0]];
  const zt = base.tensors.length;
  const attrs = { ...base.ops[0].attrs, activation: { t: 's' as const, v: 'clip' }, activation_min: { t: 'f' as const, v: 0 }, activation_max: { t: 'f' as const, v: 0.5 } };
  return {
    ...base,
    tensors: [...base.tensors, { ...yt, name: 'z', kind: 'input' as const }],
    inputs: [...base.inputs, zt],
    ops: [{ ...base.ops[0], inputs: [...base.ops[0].inputs, ...(hasBias ? [] : [-1]), zt], attrs }],
  };
}

const outShape = (c: ConvCase) => {
  const p = convPlan(c);
  return p.tensors[p.ops[0].outputs[0]].shape;
};

describe('Conv shape inference', () => {
  test.each([
    [{ x: [1, 1, 5, 5], w: [1, 1, 3, 3] }, [1, 1, 3, 3]],
    [{ x: [1, 1, 5, 5], w: [1, 1, 3, 3], attrs: { pads: [1, 1, 1, 1] } }, [1, 1, 5, 5]],
    [{ x: [1, 1, 7, 5], w: [1, 1, 3, 3], attrs: { strides: [2, 2], pads: [1, 0, 1, 0] } }, [1, 1, 4, 2]],
    [{ x: [1, 1, 5, 5], w: [1, 1, 3, 3], attrs: { auto_pad: 'SAME_UPPER', strides: [2, 2] } }, [1, 1, 3, 3]],
    [{ x: [1, 1, 5, 5], w: [1, 1, 3, 3], attrs: { auto_pad: 'VALID', strides: [2, 2] } }, [1, 1, 2, 2]],
    [{ x: [2, 4, 9], w: [6, 2, 3], attrs: { group: 2, dilations: [2] } }, [2, 6, 5]],
    [{ x: [1, 2, 4, 4, 4], w: [3, 2, 2, 2, 2] }, [1, 3, 3, 3, 3]],
  ] as [ConvCase, number[]][])('%j -> %j', (c, want) => expect(outShape(c)).toEqual(want));

  test('SAME_LOWER puts the odd pad at the beginning, SAME_UPPER at the end', () => {
    const pads = (auto_pad: string) => convPlan({ x: [1, 1, 4, 4], w: [1, 1, 2, 2], attrs: { auto_pad } }).ops[0].attrs.pads;
    expect(pads('SAME_UPPER')).toEqual({ t: 'I', v: [0, 0, 1, 1] });
    expect(pads('SAME_LOWER')).toEqual({ t: 'I', v: [1, 1, 0, 0] });
  });

  test('lowers with defaults resolved', () => {
    expect(convPlan({ x: [1, 3, 8], w: [4, 3, 3], bias: true }).ops[0]).toMatchObject({
      kind: 'Conv',
      attrs: { group: { v: 1 }, strides: { v: [1] }, dilations: { v: [1] }, pads: { v: [0, 0] }, activation: { v: 'none' } },
    });
  });

  test('errors name the node and say why', () => {
    expect(() => convPlan({ x: [1, 3, 5, 5], w: [2, 2, 3, 3] })).toThrow(/conv.*X has 3 channels/);
    expect(() => convPlan({ x: [1, 1, 2, 2], w: [1, 1, 3, 3] })).toThrow(/conv.*kernel extent 3 is larger/);
    expect(() => convPlan({ x: [1, 1, 5, 5], w: [1, 1, 3, 3], attrs: { strides: [1] } })).toThrow(/'strides' has 1 values/);
  });
});

describe('Conv numbers', () => {
  test('hand-computed 1-D case with bias, pads and stride (reference and im2col)', () => {
    // x = [1,2,3,4,5], w = [1,0,-1], pads 1, stride 2, bias 10: positions -1..1, 1..3, 3..5
    const plan = convPlan({ x: [1, 1, 5], w: [1, 1, 3], bias: true, attrs: { pads: [1, 1], strides: [2] } });
    const ins = [Float32Array.of(1, 2, 3, 4, 5), Float32Array.of(1, 0, -1), Float32Array.of(10)];
    for (const t of ['cpu.conv.ref', 'cpu.conv.im2col']) expect(Array.from(runF32(plan, ins, { Conv: t })[0])).toEqual([8, 8, 14]);
  });

  test('float64 and float16 run in the reference tactic', () => {
    for (const [dtype, Arr] of [[DataType.DOUBLE, Float64Array], [DataType.FLOAT16, Uint16Array]] as const) {
      const plan = lowerModel({
        nodes: [{ op: 'Conv', inputs: ['x', 'w'], outputs: ['y'] }],
        inputs: [{ name: 'x', dims: [1, 1, 3], type: dtype }, { name: 'w', dims: [1, 1, 2], type: dtype }],
        outputs: [{ name: 'y', dims: null, type: dtype }],
      });
      // float16: 1.0 = 0x3c00, 2.0 = 0x4000, 3.0 = 0x4200
      const ins = dtype === DataType.DOUBLE ? [Float64Array.of(1, 2, 3), Float64Array.of(1, 1)] : [Uint16Array.of(0x3c00, 0x4000, 0x4200), Uint16Array.of(0x3c00, 0x3c00)];
      const out = new Arr(native().runPlan(encodePlan(plan), ins)[0]);
      expect(Array.from(out)).toEqual(dtype === DataType.DOUBLE ? [3, 5] : [0x4200, 0x4500]);
    }
  });
});

describe('Conv tactics match the reference', () => {
  const r = rng(42);
  const pick = (lo: number, hi: number) => lo + Math.floor(r() * (hi - lo + 1));
  const cases: ConvCase[] = [
    { x: [1, 64, 14, 14], w: [32, 64, 3, 3], bias: true, attrs: { pads: [1, 1, 1, 1] } },
    { x: [2, 6, 11, 9], w: [4, 3, 3, 2], bias: true, attrs: { group: 2, strides: [2, 1], dilations: [1, 2], pads: [1, 0, 2, 1] } },
    { x: [1, 5, 13], w: [7, 5, 4], attrs: { strides: [3], pads: [2, 1] } },
    { x: [1, 3, 5, 6, 7], w: [2, 3, 2, 3, 2], bias: true, attrs: { pads: [1, 0, 1, 0, 1, 1], strides: [1, 2, 1] } },
    { x: [2, 17, 9, 9], w: [13, 17, 1, 1], bias: true },
    { x: [1, 8, 10, 10], w: [8, 1, 3, 3], bias: true, attrs: { group: 8, pads: [1, 1, 1, 1] } },
    { x: [1, 5, 12, 11], w: [5, 1, 5, 3], attrs: { group: 5, strides: [2, 3], dilations: [2, 1], pads: [2, 0, 3, 4] } },
    { x: [2, 4, 9], w: [4, 1, 3], bias: true, attrs: { group: 4, auto_pad: 'SAME_LOWER', strides: [2] } },
  ];
  for (let i = 0; i < 6; i++) {
    const G = pick(1, 3), Cg = pick(1, 4), Mg = pick(1, 5), kh = pick(1, 4), kw = pick(1, 4);
    cases.push({
      x: [pick(1, 2), G * Cg, pick(kh + 3, 15), pick(kw + 3, 15)],
      w: [G * Mg, Cg, kh, kw],
      bias: r() < 0.5,
      attrs: { group: G, strides: [pick(1, 3), pick(1, 3)], dilations: [pick(1, 2), 1], pads: [pick(0, 2), pick(0, 2), pick(0, 2), pick(0, 2)] },
    });
  }
  const tactics = native().tactics('cpu').Conv.filter((t) => t !== 'cpu.conv.ref');

  test('every tactic is registered', () => {
    expect(tactics.sort()).toEqual([
      'cpu.conv.depthwise',
      'cpu.conv.depthwise.grid',
      'cpu.conv.im2col',
      'cpu.conv.nhwc.depthwise', // channels-last layers only: test/unit/passes/layout-assignment.test.ts
      'cpu.conv.nhwc.gemm',
      'cpu.conv.pointwise',
      'cpu.conv.pointwise.t',
    ]);
  });

  test.each(cases.map((c, i) => [i, c] as const))('case %i %j', (_, c) => {
    const plan = convPlan(c);
    const size = (s: number[]) => s.reduce((a, b) => a * b, 1);
    const ins = [randomArray(size(c.x), r), randomArray(size(c.w), r), ...(c.bias ? [randomArray(c.w[0], r)] : [])];
    const [ref] = runF32(plan, ins, { Conv: 'cpu.conv.ref' });
    let ran = 0;
    for (const t of tactics) {
      let fast: Float32Array;
      try {
        fast = runF32(plan, ins, { Conv: t })[0];
      } catch (e) {
        expect((e as Error).message).toMatch(/cannot run layer/); // can_implement refused this geometry
        continue;
      }
      ran++;
      expect({ t, ok: maxRelErr(fast, ref) < 1e-5 }).toEqual({ t, ok: true });
      // the fused relu epilogue agrees too
      const relu = { ...plan, ops: [{ ...plan.ops[0], attrs: { ...plan.ops[0].attrs, activation: { t: 's' as const, v: 'relu' } } }] };
      const [rr] = runF32(relu, ins, { Conv: 'cpu.conv.ref' });
      const [rf] = runF32(relu, ins, { Conv: t });
      expect(Array.from(rr).every((v, k) => v === Math.max(0, ref[k]))).toBe(true);
      expect(maxRelErr(rf, rr)).toBeLessThan(1e-5);
    }
    expect(ran).toBeGreaterThan(0);
  });
});

describe('Conv tactics with constant weights (packed once at build) match the reference', () => {
  const r = rng(7);
  const cases: ConvCase[] = [
    { x: [1, 16, 12, 12], w: [16, 16, 3, 3], bias: true, attrs: { pads: [1, 1, 1, 1] } },
    { x: [2, 6, 11, 9], w: [4, 3, 3, 2], bias: true, attrs: { group: 2, strides: [2, 1], dilations: [1, 2], pads: [1, 0, 2, 1] } },
    { x: [1, 24, 4, 4], w: [40, 24, 3, 3], attrs: { pads: [1, 1, 1, 1] } },
    { x: [1, 12, 7, 5], w: [20, 12, 1, 1], bias: true },
    // small maps (the transposed pointwise tactic): 2x2 with a depth over one packed slice, 4x4, 3x1
    { x: [1, 300, 2, 2], w: [80, 300, 1, 1], bias: true },
    { x: [2, 48, 4, 4], w: [50, 48, 1, 1] },
    { x: [1, 20, 3, 1], w: [33, 20, 1, 1], bias: true },
  ];
  const size = (s: number[]) => s.reduce((a, b) => a * b, 1);
  test.each(cases.map((c, i) => [i, c] as const))('case %i %j', (_, c) => {
    for (const fused of [false, true]) {
      const plan = fused ? withResidualClip(convPlan(c), !!c.bias) : convPlan(c);
      const w = randomArray(size(c.w), r);
      const wt = plan.ops[0].inputs[1];
      plan.tensors[wt] = { ...plan.tensors[wt], kind: 'constant', data: new Uint8Array(w.buffer) };
      plan.inputs = plan.inputs.filter((i) => i !== wt);
      const ysize = size(plan.tensors[plan.ops[0].outputs[0]].shape);
      const ins = [randomArray(size(c.x), r), ...(c.bias ? [randomArray(c.w[0], r)] : []), ...(fused ? [randomArray(ysize, r)] : [])];
      const [ref] = runF32(plan, ins, { Conv: 'cpu.conv.ref' });
      const ts = c.w[2] === 1 ? ['cpu.conv.pointwise', ...(size(c.x.slice(2)) <= 64 ? ['cpu.conv.pointwise.t'] : [])] : ['cpu.conv.im2col'];
      for (const t of ts) expect({ t, fused, err: maxRelErr(runF32(plan, ins, { Conv: t })[0], ref) < 1e-5 }).toEqual({ t, fused, err: true });
    }
  });
});

describe('Depthwise tactics (MobileNet shapes: tiny maps, stride 2, residual + clip epilogue) match the reference', () => {
  const r = rng(11);
  const cases: ConvCase[] = [
    { x: [1, 16, 4, 4], w: [16, 1, 3, 3], bias: true, attrs: { group: 16, pads: [1, 1, 1, 1] } },
    { x: [1, 24, 2, 2], w: [24, 1, 3, 3], bias: true, attrs: { group: 24, pads: [1, 1, 1, 1] } },
    { x: [1, 12, 8, 8], w: [12, 1, 3, 3], bias: true, attrs: { group: 12, strides: [2, 2], pads: [1, 1, 1, 1] } },
    { x: [2, 32, 33, 31], w: [32, 1, 3, 3], bias: true, attrs: { group: 32, pads: [1, 1, 1, 1] } },
    { x: [1, 40, 21, 19], w: [40, 1, 5, 5], attrs: { group: 40, strides: [2, 2], dilations: [2, 1], pads: [2, 2, 1, 3] } },
  ];
  const size = (s: number[]) => s.reduce((a, b) => a * b, 1);
  test.each(cases.map((c, i) => [i, c] as const))('case %i %j', (_, c) => {
    const plan = withResidualClip(convPlan(c), !!c.bias);
    const yt = plan.tensors[plan.ops[0].outputs[0]];
    const ins = [randomArray(size(c.x), r), randomArray(size(c.w), r), ...(c.bias ? [randomArray(c.w[0], r)] : []), randomArray(size(yt.shape as number[]), r)];
    const [ref] = runF32(plan, ins, { Conv: 'cpu.conv.ref' });
    expect(ref.some((v) => v > 0 && v < 0.5)).toBe(true);
    for (const t of ['cpu.conv.depthwise', 'cpu.conv.depthwise.grid', 'cpu.conv.im2col'])
      expect({ t, err: maxRelErr(runF32(plan, ins, { Conv: t })[0], ref) < 1e-5 }).toEqual({ t, err: true });
  });
});
