/**
 * The accuracy guards (on the Plan): a reduced-precision build is run beside its fp32 Plan on the CPU
 * reference kernels, with every intermediate value exposed, and each layer's outputs are compared by
 * value name in the fp32 plan's order (`guardPlans`, shared by both guards). A layer that runs in the
 * reduced precision is at fault when
 *   - its output has Inf/NaN where fp32 has none while its inputs had none, or
 *   - its output's relative L2 error exceeds `tolerance` and is more than `growth` times its inputs'
 *     (values the fp32 plan lacks, such as quantized tensors, carry their inputs' error).
 * Layers at fault are pinned to fp32 and the candidate is rebuilt without them, until a round finds
 * nothing or `maxRounds` have run. Errors inherited from an earlier layer never pin a later one.
 *
 * fp16 (`guardHalfPrecision`, before precision assignment): the samples given (compile(): the first
 * feeds of `calibration` when the build has one), else a seeded sample input (`generatedSample`, the
 * CLI's generator: floats uniform in [-1, 1), integers zero — an attention mask of zeros masks every
 * key); a value beyond the float16 range (±65504) in fp32 pins the layers that read or write it up
 * front. The Plan given is not changed: the result names the layers to pass to assignHalfPrecision.
 * int8 (src/quant/index.ts): the calibration feeds as samples; the candidate is the graph rebuilt with
 * the pinned layers left out of quantization.
 */
import { DataType, dtypeName, halfToFloat } from '../dtype';
import { randomInputs } from '../cli/inputs';
import { exposeIntermediates } from '../lower/lower';
import { Plan, encodePlan } from '../lower/plan';
import { FAST_CPU, native } from '../native/binding';
import { assignHalfPrecision } from './precision-assignment';
import { emulateHalf } from './half-emulation';

/** The largest finite float16. */
const HALF_MAX = 65504;

export interface PinnedLayer {
  layer: string;
  kind: string;
  reason: string;
}

/** A reduced-precision Plan to check, and the layers (names) that run in the reduced precision. */
export interface GuardCandidate {
  plan: Plan;
  running: Set<string>;
}

export interface GuardResult {
  /** Layers whose outputs were compared. */
  checked: number;
  /** Layers pinned to fp32, in plan order of discovery, each with why. */
  pinned: PinnedLayer[];
  /** fp16 runs made. */
  rounds: number;
  /** The last round found no layer at fault (false: maxRounds ran out first). */
  clean: boolean;
}

export interface GuardOptions {
  /** Seed of the sample inputs (default 1, as `kiln run`). */
  seed?: number;
  /** Relative L2 error a layer's output may have (default 1e-2). */
  tolerance?: number;
  /** Relative L2 error the model's outputs may have: while it is exceeded after the per-layer checks,
   *  the running layers that add the most error are pinned, a few per round (default: no such bound). */
  outputTolerance?: number;
  /** How much larger than its inputs' error a layer's error must be to blame the layer (default 2). */
  growth?: number;
  /** fp16 runs at most (default 4). */
  maxRounds?: number;
}

/** The report line for a pinned layer. */
export function describePin(p: PinnedLayer): string {
  return `layer '${p.layer}' (${p.kind}) pinned to fp32: ${p.reason}`;
}

/** A copy of the Plan's tables that the precision pass can rewrite; constant data is shared (never written). */
export function clonePlan(plan: Plan): Plan {
  return {
    tensors: plan.tensors.map((t) => ({ ...t, shape: [...t.shape], view: t.view && { ...t.view } })),
    ops: plan.ops.map((op) => ({ ...op, inputs: [...op.inputs], outputs: [...op.outputs], attrs: { ...op.attrs }, origin: [...op.origin] })),
    inputs: [...plan.inputs],
    outputs: [...plan.outputs],
  };
}

/** Runs `plan` with every intermediate exposed on each sample; float values by name, as numbers (samples concatenated). */
function runAll(plan: Plan, samples: ArrayBufferView[][]): Map<string, Float32Array> {
  exposeIntermediates(plan);
  // float16 layers run as float32 kernels on float16-rounded values, on the CPU's fast tactics
  const run = emulateHalf(plan);
  const bytes = encodePlan(run);
  const parts = new Map<string, Float32Array[]>();
  for (const inputs of samples) {
    const outs = native().runPlan(bytes, inputs, FAST_CPU);
    run.outputs.forEach((ti, k) => {
      const t = run.tensors[ti];
      let v: Float32Array | undefined;
      if (t.dtype === DataType.FLOAT) v = new Float32Array(outs[k]);
      else if (t.dtype === DataType.FLOAT16) v = Float32Array.from(new Uint16Array(outs[k]), halfToFloat);
      else if (t.dtype === DataType.INT8) v = Float32Array.from(new Int8Array(outs[k]));
      else if (t.dtype === DataType.UINT8) v = Float32Array.from(new Uint8Array(outs[k]));
      if (v) (parts.get(t.name) ?? parts.set(t.name, []).get(t.name)!).push(v);
    });
  }
  const values = new Map<string, Float32Array>();
  for (const [name, list] of parts) {
    if (list.length === 1) {
      values.set(name, list[0]);
      continue;
    }
    const all = new Float32Array(list.reduce((n, a) => n + a.length, 0));
    let at = 0;
    for (const a of list) {
      all.set(a, at);
      at += a.length;
    }
    values.set(name, all);
  }
  return values;
}

const short = (v: number): string => String(Number(v.toPrecision(2)));

// Per array, computed once: the reference values are read by every round and by several layers.
const maxAbsOf = new WeakMap<Float32Array, number>();
const nonFiniteOf = new WeakMap<Float32Array, number>();

const maxAbs = (a: Float32Array): number => {
  let m = maxAbsOf.get(a);
  if (m !== undefined) return m;
  m = 0;
  for (let i = 0; i < a.length; i++) {
    const v = a[i] < 0 ? -a[i] : a[i];
    if (v > m) m = v;
  }
  maxAbsOf.set(a, m);
  return m;
};

const nonFinite = (a: Float32Array): number => {
  let n = nonFiniteOf.get(a);
  if (n !== undefined) return n;
  n = 0;
  for (let i = 0; i < a.length; i++) if (a[i] - a[i] !== 0) n++; // NaN and ±Inf only
  nonFiniteOf.set(a, n);
  return n;
};

/** Relative L2 error of `got` against `ref` (absolute when `ref` is all zero). */
function relError(ref: Float32Array, got: Float32Array): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < ref.length; i++) {
    num += (got[i] - ref[i]) ** 2;
    den += ref[i] ** 2;
  }
  return Math.sqrt(num / (den > 0 ? den : 1));
}

/** Rounds of the output-budget phase at most. */
const MAX_BUDGET_ROUNDS = 8;

/**
 * The float values a quantized output stands for: output k of `op` when it is an int8/uint8 tensor
 * that quantizes a float value of the reference (named `<value>__int8`, src/quant/insert-qdq.ts),
 * with the layer's own output scale and zero point (Int8Conv/Int8Gemm attributes, or QuantizeLinear's
 * constant inputs).
 */
function quantizedValue(plan: Plan, op: Plan['ops'][number], k: number, raw: Float32Array | undefined): { of: string; values: Float32Array } | undefined {
  const t = plan.tensors[op.outputs[k]];
  if (!raw || (t.dtype !== DataType.INT8 && t.dtype !== DataType.UINT8) || !t.name.endsWith('__int8')) return undefined;
  let scale: number | undefined;
  let zp = 0;
  if (op.kind === 'Int8Conv' || op.kind === 'Int8Gemm') {
    const s = op.attrs.y_scale;
    const z = op.attrs.y_zero_point;
    scale = s && s.t === 'f' ? s.v : undefined;
    zp = z && z.t === 'i' ? z.v : 0;
  } else if (op.kind === 'QuantizeLinear') {
    const s = plan.tensors[op.inputs[1]];
    const z = op.inputs[2] >= 0 ? plan.tensors[op.inputs[2]] : undefined;
    if (s?.data && s.data.byteLength === 4) scale = new DataView(s.data.buffer, s.data.byteOffset, 4).getFloat32(0, true);
    if (z?.data && z.data.byteLength === 1) zp = z.dtype === DataType.INT8 ? new Int8Array(z.data.buffer, z.data.byteOffset, 1)[0] : z.data[0];
  }
  if (scale === undefined || !(scale > 0)) return undefined;
  const s = scale;
  return { of: t.name.slice(0, -'__int8'.length), values: raw.map((v) => (v - zp) * s) };
}

/** What a guard run is told besides the plans. */
export interface GuardPlansOptions extends GuardOptions {
  /** The reduced precision's name in reasons ('fp16', 'int8'). */
  precision: string;
  /** Layers pinned before the first round (fp16: values beyond its range), with why. */
  pinned?: PinnedLayer[];
  /** Layers the guard never pins (the user pinned them to the reduced precision). */
  keep?: ReadonlySet<string>;
  /** The reference's values on `samples`, when the caller has run it already. */
  refValues?: Map<string, Float32Array>;
}

/**
 * Compares the candidates `build(pinned)` gives with the fp32 `ref` on `samples` (input buffers in the
 * plans' input order) and pins the layers at fault, round by round.
 */
export function guardPlans(ref: Plan, build: (pinned: ReadonlySet<string>) => GuardCandidate, samples: ArrayBufferView[][], options: GuardPlansOptions): GuardResult {
  const tolerance = options.tolerance ?? 1e-2;
  const growth = options.growth ?? 2;
  const maxRounds = options.maxRounds ?? 4;
  const precision = options.precision;
  const refValues = options.refValues ?? runAll(clonePlan(ref), samples);
  const pinned: PinnedLayer[] = [];
  const pinnedNames = new Set<string>();
  const pin = (layer: string, kind: string, reason: string) => {
    if (pinnedNames.has(layer) || options.keep?.has(layer)) return;
    pinnedNames.add(layer);
    pinned.push({ layer, kind, reason });
  };
  for (const p of options.pinned ?? []) pin(p.layer, p.kind, p.reason);
  let checked = 0;
  for (const op of ref.ops) if (op.outputs.some((o) => o >= 0 && refValues.has(ref.tensors[o].name))) checked++;
  let rounds = 0;
  let clean = false;
  // One run of the candidate: each layer's output error against the reference (a quantized output is
  // dequantized with its own scale and compared with the float value it stands for), whether the
  // reduced precision made it non-finite, and its inputs' error.
  const evaluate = (cand: GuardCandidate) => {
    const got = runAll(cand.plan, samples);
    const err = new Map<string, number>();
    const broken = new Set<string>();
    const layers: { op: (typeof cand.plan.ops)[number]; name: string; e: number; inErr: number; bad: boolean; inBroken: boolean; g: Float32Array; r: Float32Array }[] = [];
    for (const op of cand.plan.ops) {
      const ins = op.inputs.filter((i) => i >= 0).map((i) => cand.plan.tensors[i].name);
      const inErr = Math.max(0, ...ins.map((n) => err.get(n) ?? 0));
      const inBroken = ins.some((n) => broken.has(n));
      op.outputs.forEach((o, k) => {
        const name = o >= 0 ? cand.plan.tensors[o].name : '';
        const q = o >= 0 ? quantizedValue(cand.plan, op, k, got.get(name)) : undefined;
        const r = refValues.get(q ? q.of : name);
        const g = q ? q.values : got.get(name);
        if (!r || !g || r.length !== g.length) {
          // a value only the candidate has carries its inputs' error
          if (name) err.set(name, inErr);
          if (name && inBroken) broken.add(name);
          return;
        }
        const bad = nonFinite(g) > nonFinite(r);
        if (bad) broken.add(name);
        const e = bad ? Infinity : relError(r, g);
        err.set(name, e);
        layers.push({ op, name, e, inErr, bad, inBroken, g, r });
      });
    }
    const outErr = Math.max(0, ...ref.outputs.map((o) => err.get(ref.tensors[o].name) ?? 0));
    return { layers, outErr };
  };
  const mayPin = (cand: GuardCandidate, name: string) => cand.running.has(name) && !pinnedNames.has(name) && !options.keep?.has(name);
  while (rounds < maxRounds) {
    rounds++;
    const cand = build(pinnedNames);
    let found = 0;
    for (const { op, name, e, inErr, bad, inBroken, g, r } of evaluate(cand).layers) {
      if (!mayPin(cand, op.name) || inBroken) continue;
      if (bad) {
        const inf = g.some((x, k) => !Number.isFinite(x) && !Number.isNaN(x) && Number.isFinite(r[k]));
        pin(op.name, op.kind, precision === 'fp16' ? `float16 overflow (${inf ? 'Inf' : 'NaN'}) in its output '${name}'` : `${inf ? 'Inf' : 'NaN'} in its output '${name}' in ${precision}`);
        found++;
      } else if (e > tolerance && e > growth * inErr) {
        pin(op.name, op.kind, `relative error ${short(e)} in its output '${name}' in ${precision} (bound ${tolerance}; its inputs' ${short(inErr)})`);
        found++;
      }
    }
    if (!found) {
      clean = true;
      break;
    }
  }
  // The model's outputs within their budget: small errors of many layers add up where no single layer
  // crosses the per-layer bound. Pin the layers that add the most error, a tenth of the running ones
  // per round, until the outputs are within the budget.
  const budget = options.outputTolerance;
  for (let extra = 0; budget !== undefined && extra < MAX_BUDGET_ROUNDS; extra++) {
    rounds++;
    const cand = build(pinnedNames);
    const { layers, outErr } = evaluate(cand);
    if (outErr <= budget) break;
    clean = false;
    const blame = layers
      .filter((l) => mayPin(cand, l.op.name) && Number.isFinite(l.e))
      .map((l) => ({ ...l, added: l.e - l.inErr }))
      .filter((l) => l.added > 0)
      .sort((a, b) => b.added - a.added);
    const running = new Set(layers.filter((l) => mayPin(cand, l.op.name)).map((l) => l.op.name)).size;
    const take = Math.max(1, Math.ceil(running / 10));
    let n = 0;
    for (const l of blame) {
      if (n >= take) break;
      if (pinnedNames.has(l.op.name)) continue;
      pin(l.op.name, l.op.kind, `the model's output error ${short(outErr)} is over the budget ${budget} in ${precision}; this layer adds ${short(l.added)} in '${l.name}'`);
      n++;
    }
    if (!n) break;
  }
  return { checked, pinned, rounds, clean };
}

/** The guards' generated sample: the CLI's seeded inputs for `plan` (input buffers in its order). */
export function generatedSample(plan: Plan, seed = 1): ArrayBufferView[] {
  const infos = plan.inputs.map((i) => ({ name: plan.tensors[i].name, type: dtypeName(plan.tensors[i].dtype), dims: [...plan.tensors[i].shape] }));
  const sample = randomInputs(infos, seed);
  return infos.map((i) => sample[i.name].data as ArrayBufferView);
}

/** Finds the layers of the fp32 `plan` that must stay fp32 for the fp16 build to keep its accuracy. */
export function guardHalfPrecision(plan: Plan, options: GuardOptions & { keep?: ReadonlySet<string>; samples?: ArrayBufferView[][] } = {}): GuardResult {
  const samples = options.samples?.length ? options.samples : [generatedSample(plan, options.seed)];
  const ref = runAll(clonePlan(plan), samples);
  const early: PinnedLayer[] = [];
  const halfCandidates = new Set(assignHalfPrecision(clonePlan(plan), new Set()).half);
  // Up front: a value beyond the float16 range cannot be written or read in fp16.
  for (const op of plan.ops) {
    if (!halfCandidates.has(op.name)) continue;
    for (const o of op.outputs.filter((o) => o >= 0 && ref.has(plan.tensors[o].name))) {
      const m = maxAbs(ref.get(plan.tensors[o].name)!);
      if (m > HALF_MAX) early.push({ layer: op.name, kind: op.kind, reason: `its output '${plan.tensors[o].name}' reaches ${m.toPrecision(3)} in fp32, beyond the float16 range (±65504): float16 overflow (Inf)` });
    }
    for (const i of op.inputs) {
      const v = i >= 0 ? ref.get(plan.tensors[i].name) : undefined;
      const m = v ? maxAbs(v) : 0;
      if (m > HALF_MAX) early.push({ layer: op.name, kind: op.kind, reason: `its input '${plan.tensors[i].name}' reaches ${m.toPrecision(3)} in fp32, beyond the float16 range (±65504): float16 overflow (Inf) when it is read in fp16` });
    }
  }
  return guardPlans(
    plan,
    (pinned) => {
      const half = clonePlan(plan);
      return { plan: half, running: new Set(assignHalfPrecision(half, new Set(pinned)).half) };
    },
    samples,
    { ...options, precision: 'fp16', pinned: early, refValues: ref },
  );
}
