/**
 * engine.compare() and `kiln compare`: an engine checked against the fp32 CPU reference of its ONNX
 * model (what TensorRT users reach for Polygraphy for). The reference is the model built for the CPU
 * with no graph passes, fp32, untimed, every intermediate value exposed; both run on the same feeds.
 * Per output: max abs error, relative L2 error, cosine similarity, NaN/Inf counts. When an output fails
 * the tolerance, the values both runs produced are compared in the reference's topological order and the
 * first one off by more than the tolerance names the diverging layer. Values are matched by name: an
 * engine layer writes the ONNX value of the last node fused into it, and its fusedFrom names the nodes.
 */
import { compile, compileResolved, ModelSource } from './compile';
import { bfloat16ToFloat, halfToFloat } from './dtype';
import type { Engine } from './engine';
import { KilnError } from './errors';
import { resolveOptions } from './options';
import type { CompileOptions, DeviceKind, Precision } from './options';
import type { CalibratorName } from './quant/calibrator';
import type { LayerPrecision } from './quant/layer-precisions';
import type { Tensor, TensorLike } from './tensor';

export interface CompareOptions {
  /** The ONNX model the engine was built from (file path or bytes): the reference is built from it. */
  model: ModelSource;
  /** Relative L2 error allowed per value. Default 1e-3 for fp32 engines, 1e-2 for reduced precision. */
  tolerance?: number;
  /** Values of the inputs the engine was built with as the compile option `constants`. */
  constants?: Record<string, TensorLike>;
}

export interface ValueError {
  name: string;
  /** Largest |engine − reference| (Infinity where a NaN/Inf differs). */
  maxAbs: number;
  /** ‖engine − reference‖₂ / ‖reference‖₂ (0 when equal; Infinity where a NaN/Inf differs, or the reference is all zeros and the engine is not). */
  relL2: number;
  /** Cosine similarity of the two (1 when both are zero). */
  cosine: number;
  /** NaN and ±Inf elements in the engine's value. */
  nan: number;
  inf: number;
  /** relL2 <= tolerance. */
  pass: boolean;
}

export interface Divergence {
  /** The ONNX value where the engine first departs from the reference. */
  value: string;
  /** The engine layer that wrote it, and the ONNX nodes fused into that layer. */
  layer: string;
  kind: string;
  fusedFrom: string[];
  /** The ONNX node that produced the value in the reference. */
  onnxNode: string;
  relL2: number;
  maxAbs: number;
  /** Where the layer-by-layer values came from: this engine, or one rebuilt from the model. */
  source: 'engine' | 'rebuild';
}

export interface CompareResult {
  tolerance: number;
  outputs: ValueError[];
  /** All outputs pass. */
  pass: boolean;
  /** The first value, in topological order, past the tolerance (only when an output fails). */
  firstDivergence?: Divergence;
  /** Intermediate values compared while locating the divergence. */
  checked: number;
  /** Why a failing comparison has no firstDivergence. */
  note?: string;
}

const KNOWN = ['model', 'tolerance', 'constants'];

function resolve(options: CompareOptions, precision: string): { tolerance: number } {
  if (typeof options !== 'object' || options === null)
    throw new KilnError('INVALID_OPTION', `compare: expected an options object with 'model' (the ONNX model), received ${options === null ? 'null' : typeof options}`);
  for (const k of Object.keys(options))
    if (!KNOWN.includes(k)) throw new KilnError('INVALID_OPTION', `compare: unknown option '${k}'; the options are ${KNOWN.join(', ')}`);
  const m = options.model as unknown;
  if (typeof m !== 'string' && !(m instanceof Uint8Array) && !(m instanceof ArrayBuffer))
    throw new KilnError('INVALID_OPTION', `compare: option 'model' must be the ONNX model (a file path, a Uint8Array or an ArrayBuffer), received ${m === null ? 'null' : typeof m}`);
  const t = options.tolerance;
  if (t !== undefined && (typeof t !== 'number' || !Number.isFinite(t) || t < 0))
    throw new KilnError('INVALID_OPTION', `compare: expected a non-negative number for option 'tolerance' but received ${JSON.stringify(t)}`);
  return { tolerance: t ?? (precision === 'fp32' ? 1e-3 : 1e-2) };
}

/** The elements as float64 (float16/bfloat16 decoded, int64 as Number). */
function numbers(t: Tensor): Float64Array {
  const d = t.data as ArrayLike<number | bigint>;
  const out = new Float64Array(d.length);
  const decode = t.type === 'float16' ? halfToFloat : t.type === 'bfloat16' ? bfloat16ToFloat : undefined;
  for (let i = 0; i < d.length; i++) out[i] = decode ? decode(d[i] as number) : Number(d[i]);
  return out;
}

/** Error statistics of `got` against the reference `want` (same element count). */
export function errorStats(name: string, got: Tensor, want: Tensor, tolerance: number): ValueError {
  const a = numbers(got);
  const b = numbers(want);
  let nan = 0, inf = 0, mismatch = 0;
  let maxAbs = 0, d2 = 0, a2 = 0, b2 = 0, dot = 0;
  for (let i = 0; i < a.length; i++) {
    const x = a[i], y = b[i];
    if (Number.isNaN(x)) nan++;
    else if (!Number.isFinite(x)) inf++;
    if (!Number.isFinite(x) || !Number.isFinite(y)) {
      if (!(x === y || (Number.isNaN(x) && Number.isNaN(y)))) mismatch++;
      continue;
    }
    const d = x - y;
    maxAbs = Math.max(maxAbs, Math.abs(d));
    d2 += d * d;
    a2 += x * x;
    b2 += y * y;
    dot += x * y;
  }
  const relL2 = mismatch ? Infinity : d2 === 0 ? 0 : b2 === 0 ? Infinity : Math.sqrt(d2 / b2);
  const cosine = a2 === 0 && b2 === 0 ? 1 : a2 === 0 || b2 === 0 ? 0 : dot / Math.sqrt(a2 * b2);
  return { name, maxAbs: mismatch ? Infinity : maxAbs, relL2, cosine, nan, inf, pass: relL2 <= tolerance };
}

const sameShape = (x: Tensor, y: Tensor) => x.dims.length === y.dims.length && x.dims.every((d, i) => d === y.dims[i]);
const describe = (i: { name: string; type: string; dims: readonly number[] }) => `'${i.name}' ${i.type} [${i.dims.join(',')}]`;

/** The engine's recorded build options, as compile options (constants from the caller). */
function recordedOptions(engine: Engine, constants: Record<string, TensorLike> | undefined): CompileOptions {
  const b = engine.report.buildOptions as {
    precision?: Precision;
    device?: DeviceKind;
    shapes?: Record<string, number[]>;
    constants?: string[];
    timing?: boolean;
    optimize?: boolean | Record<string, boolean>;
    strict?: boolean;
    deviceId?: number;
    guard?: boolean;
    layerPrecisions?: Record<string, LayerPrecision>;
    tolerance?: number;
    calibrator?: CalibratorName;
    percentile?: number;
  };
  const names = b.constants ?? [];
  const given = Object.keys(constants ?? {});
  const missing = names.filter((n) => !given.includes(n));
  if (missing.length)
    throw new KilnError('INVALID_OPTION', `compare: the engine was built with constant input(s) ${missing.map((n) => `'${n}'`).join(', ')}; give their values with the option 'constants'`);
  const extra = given.filter((n) => !names.includes(n));
  if (extra.length)
    throw new KilnError('INVALID_OPTION', `compare: option 'constants' names ${extra.map((n) => `'${n}'`).join(', ')}, which the engine was not built with as constants (it has ${names.length ? names.map((n) => `'${n}'`).join(', ') : 'none'})`);
  return {
    precision: b.precision,
    device: b.device,
    shapes: b.shapes,
    timing: b.timing,
    optimize: b.optimize,
    strict: b.strict,
    deviceId: b.deviceId,
    ...(b.guard === false ? { guard: false } : {}),
    ...(b.layerPrecisions ? { layerPrecisions: b.layerPrecisions } : {}),
    ...(b.tolerance !== undefined ? { tolerance: b.tolerance } : {}),
    ...(b.calibrator ? { calibrator: b.calibrator } : {}),
    ...(b.percentile !== undefined ? { percentile: b.percentile } : {}),
    ...(names.length ? { constants } : {}),
  };
}

/**
 * The engine rebuilt from the model with every intermediate exposed, as the engine was built. An int8
 * engine is rebuilt from its recorded activation ranges (no calibration data needed), with the layers
 * its accuracy guard moved to fp32 pinned there (the guard does not run again on other samples).
 */
async function rebuild(engine: Engine, model: CompareOptions['model'], recorded: CompileOptions): Promise<Engine> {
  const b = engine.report.buildOptions as { calibrationRanges?: Record<string, number> };
  if (recorded.precision !== 'int8' || !b.calibrationRanges) return compile(model, { ...recorded, debug: { exposeAll: true } });
  const guardPins = Object.fromEntries((engine.report.precisionGuard?.pinned ?? []).map((p) => [p.layer, 'fp32' as const]));
  const o = resolveOptions({ ...recorded, guard: false, layerPrecisions: { ...recorded.layerPrecisions, ...guardPins }, debug: { exposeAll: true } });
  return compileResolved(model, { ...o, calibrationRanges: b.calibrationRanges });
}

export async function compareEngine(engine: Engine, feeds: Record<string, Tensor | TensorLike>, options: CompareOptions): Promise<CompareResult> {
  const { tolerance } = resolve(options, engine.report.precision);
  const recorded = recordedOptions(engine, options.constants);
  const reference = await compile(options.model, {
    device: 'cpu',
    precision: 'fp32',
    optimize: false,
    timing: false,
    shapes: recorded.shapes,
    constants: recorded.constants,
    debug: { exposeAll: true },
  });
  let rebuilt: Engine | undefined;
  try {
    checkSameInterface(engine, reference);
    const ref = await reference.inferAll(feeds);
    const own = await engine.inferAll(feeds);
    const outputs = engine.outputs.map((o) => errorStats(o.name, own.get(o.name)!, ref.get(o.name)!, tolerance));
    const pass = outputs.every((o) => o.pass);
    const result: CompareResult = { tolerance, outputs, pass, checked: 0 };
    if (pass) return result;
    // Layer by layer: this engine's own intermediate values, or those of a rebuild from the model.
    let values = own;
    let source: Divergence['source'] = 'engine';
    let under: Engine = engine;
    if (engine.plan.outputs.length === engine.outputs.length) {
      rebuilt = await rebuild(engine, options.model, recorded);
      values = await rebuilt.inferAll(feeds);
      source = 'rebuild';
      under = rebuilt;
    }
    const producer = new Map<string, number>();
    under.plan.ops.forEach((op, k) => op.outputs.forEach((t) => t >= 0 && producer.set(under.plan.tensors[t].name, k)));
    const rp = reference.plan;
    for (const op of rp.ops)
      for (const t of op.outputs) {
        if (t < 0) continue;
        const name = rp.tensors[t].name;
        const want = ref.get(name);
        const got = values.get(name);
        const k = producer.get(name);
        if (!want || !got || k === undefined || got.type !== want.type || !sameShape(got, want)) continue;
        result.checked++;
        const s = errorStats(name, got, want, tolerance);
        if (s.pass) continue;
        const layer = under.plan.ops[k];
        result.firstDivergence = {
          value: name,
          layer: layer.name,
          kind: layer.kind,
          fusedFrom: layer.origin,
          onnxNode: op.origin[0] ?? op.name,
          relL2: s.relL2,
          maxAbs: s.maxAbs,
          source,
        };
        return result;
      }
    result.note =
      source === 'rebuild'
        ? "an engine rebuilt from the model with this engine's build options matches the reference layer by layer: the engine was likely built from a different model or with other options"
        : 'no intermediate value the engine and the reference share is past the tolerance: the error builds up gradually';
    return result;
  } finally {
    reference.dispose();
    rebuilt?.dispose();
  }
}

/** The model's inputs and outputs must be the engine's (by name, type and shape). */
function checkSameInterface(engine: Engine, reference: Engine): void {
  const key = (i: { name: string; type: string; dims: readonly number[] }) => `${i.name}|${i.type}|${i.dims.join(',')}`;
  const refIn = new Set(reference.inputs.map(key));
  const ownIn = new Set(engine.inputs.map(key));
  if (refIn.size !== ownIn.size || [...refIn].some((k) => !ownIn.has(k)))
    throw new KilnError(
      'ENGINE_MISMATCH',
      `compare: the model's inputs (${reference.inputs.map(describe).join(', ')}) are not the engine's (${engine.inputs.map(describe).join(', ')}); compare the engine with the model it was built from`,
    );
  for (const o of engine.outputs) {
    const r = reference.outputs.find((x) => x.name === o.name);
    if (!r || key(r) !== key(o))
      throw new KilnError(
        'ENGINE_MISMATCH',
        `compare: the engine's output ${describe(o)} is ${r ? `${describe(r)} in the model` : 'not an output of the model'}; the model's outputs are ${reference.outputs.map(describe).join(', ')}`,
      );
  }
}
