/** compile() options: their types, defaults and validation (every invalid value names the option). */
import { KilnError } from './errors';
import type { TensorLike } from './tensor';
import type { CalibratorName } from './quant/calibrator';
import type { CalibrationData } from './quant/calibrate';
import type { LayerPrecision } from './quant/layer-precisions';

export type Precision = 'fp32' | 'fp16' | 'int8' | 'best';
export type DeviceKind = 'auto' | 'cpu' | 'cuda';

export interface ProgressEvent {
  /** 'import' | 'infer' | 'passes' | 'lower' | 'tactics' | 'done' */
  phase: 'import' | 'infer' | 'passes' | 'lower' | 'tactics' | 'done';
  /** Work done and total in this phase (layers, for 'tactics'). */
  done: number;
  total: number;
  /** The layer being decided, during 'tactics'. */
  layer?: string;
  /** Seconds since the build began. */
  elapsed: number;
}

export interface CompileOptions {
  /** Numeric precision of the engine. Default 'fp32'. A precision the backend cannot do is an error. */
  precision?: Precision;
  /** Where the engine runs. 'auto' (default) picks CUDA when the addon has it, the CPU otherwise. */
  device?: DeviceKind;
  /** Values for symbolic input dims, per input: `{ input_ids: [1, 128] }`. */
  shapes?: Record<string, readonly number[]>;
  /** Called as the build advances. */
  onProgress?: (event: ProgressEvent) => void;
  /** Cancels the build; the promise then rejects with a KilnError of code 'CANCELLED'. */
  signal?: AbortSignal;
  /** Time the candidate kernels per layer (default true). false keeps the preferred one. */
  timing?: boolean;
  /** Graph optimizer: false turns every pass off; an object turns single passes off by name. */
  optimize?: boolean | Record<string, boolean>;
  /** fp32 only: forbid reduced-precision math (TF32) on GPUs. */
  strict?: boolean;
  /** device 'cuda': which GPU (CUDA device index, default 0). */
  deviceId?: number;
  /**
   * A timing-cache file (created when missing): tactic times from earlier builds on the same device and
   * libraries are reused, so a rebuild skips timing the layers it has seen.
   */
  timingCache?: string;
  /**
   * Fixes graph inputs to values at build time; they leave the engine's inputs. For the shape tensors
   * a static-shape engine needs known (Reshape's shape, Reduce's axes, TopK's k) when a model takes them
   * as inputs.
   */
  constants?: Record<string, TensorLike>;
  /**
   * Debugging. `exposeAll: true` makes every value a layer writes an output of the plan, so
   * `engine.compare()` can check each layer against the fp32 reference. It keeps every intermediate
   * value alive (a larger arena) and stops concat-elimination for them; the engine's `outputs` are
   * unchanged.
   */
  debug?: { exposeAll?: boolean };
  /**
   * precision 'fp16': the accuracy guard (default true). The build runs the fp32 and fp16 plans on the
   * CPU reference kernels on sample inputs (the first feeds of `calibration` when given, else a seeded
   * generated one: floats in [-1, 1), integers zero), and pins to fp32 each layer whose fp16 output
   * overflows or loses accuracy (report.precisionGuard and the warnings name them). false skips it.
   */
  guard?: boolean;
  /**
   * precision 'int8': the calibration set, input feeds (`{ [input]: Tensor }`) as an array or an async
   * iterable (read once); precision 'fp16': the accuracy guard's sample inputs (its first feeds). The fp32 model runs on them and the calibrator picks each quantized
   * activation's range. Not needed when `calibrationCache` holds the ranges, nor for models that carry
   * QuantizeLinear/DequantizeLinear nodes. int8 without either is an error: kiln never guesses scales.
   */
  calibration?: CalibrationData;
  /** precision 'int8': 'entropy' (default, KL divergence over a 2048-bin histogram), 'percentile' or 'minmax'. */
  calibrator?: CalibratorName;
  /** calibrator 'percentile': the percentile of |x| taken as the range (default 99.99). */
  percentile?: number;
  /**
   * precision 'int8': a calibration cache file (JSON: kiln version, model hash, calibrator, ranges).
   * Read when it matches the build, so a rebuild does not calibrate again; written after calibrating.
   */
  calibrationCache?: string;
  /** Pins layers (layer names or ONNX node names) to a precision, e.g. `{ conv1: 'fp32' }`; the guard never moves them. */
  layerPrecisions?: Record<string, LayerPrecision>;
  /**
   * The accuracy guard's bound on a layer's relative L2 error against fp32 (default 1e-2 for fp16,
   * 5e-2 for int8): a layer beyond it that adds error of its own runs in higher precision.
   */
  tolerance?: number;
}

const KNOWN: Record<keyof CompileOptions, string> = {
  precision: "'fp32' | 'fp16' | 'int8' | 'best'",
  device: "'auto' | 'cpu' | 'cuda'",
  shapes: 'an object of input name → array of dims',
  onProgress: 'a function',
  signal: 'an AbortSignal',
  timing: 'a boolean',
  optimize: 'a boolean or an object of pass name → boolean',
  strict: 'a boolean',
  deviceId: 'a non-negative integer',
  timingCache: 'a file path',
  constants: 'an object of input name → Tensor',
  debug: '{ exposeAll?: boolean }',
  guard: 'a boolean',
  calibration: 'an array or async iterable of input feeds',
  calibrator: "'entropy' | 'percentile' | 'minmax'",
  percentile: 'a number in (0, 100]',
  calibrationCache: 'a file path',
  layerPrecisions: "an object of layer name → 'fp32' | 'fp16' | 'int8'",
  tolerance: 'a positive number',
};

function invalid(name: string, value: unknown): never {
  const shown = typeof value === 'string' ? `'${value}'` : typeof value === 'function' ? 'a function' : JSON.stringify(value);
  throw new KilnError('INVALID_OPTION', `Expected ${KNOWN[name as keyof CompileOptions]} for option '${name}' but received ${shown}`);
}

export interface ResolvedOptions {
  precision: Precision;
  device: DeviceKind;
  shapes: Record<string, number[]>;
  onProgress?: (event: ProgressEvent) => void;
  signal?: AbortSignal;
  timing: boolean;
  optimize: boolean | Record<string, boolean>;
  strict: boolean;
  constants: Record<string, TensorLike>;
  deviceId: number;
  timingCache?: string;
  debug: { exposeAll: boolean };
  guard: boolean;
  calibration?: CalibrationData;
  calibrator: CalibratorName;
  percentile: number;
  calibrationCache?: string;
  layerPrecisions: Record<string, LayerPrecision>;
  tolerance?: number;
  /** @internal int8: the activation ranges (amax by tensor) of an earlier build, used as they are
   *  (engine.compare rebuilding an int8 engine layer by layer). */
  calibrationRanges?: Record<string, number>;
}

export function resolveOptions(o: CompileOptions | undefined): ResolvedOptions {
  if (o === undefined || o === null) o = {};
  if (typeof o !== 'object') throw new KilnError('INVALID_OPTION', `Expected an options object but received ${typeof o}`);
  for (const k of Object.keys(o))
    if (!(k in KNOWN))
      throw new KilnError('INVALID_OPTION', `Unknown option '${k}'; the options are ${Object.keys(KNOWN).join(', ')}`);
  const r: ResolvedOptions = { precision: 'fp32', device: 'auto', shapes: {}, timing: true, optimize: true, strict: false, constants: {}, deviceId: 0, debug: { exposeAll: false }, guard: true, calibrator: 'entropy', percentile: 99.99, layerPrecisions: {} };
  if (o.precision !== undefined) {
    if (!['fp32', 'fp16', 'int8', 'best'].includes(o.precision as string)) invalid('precision', o.precision);
    r.precision = o.precision;
  }
  if (o.device !== undefined) {
    if (!['auto', 'cpu', 'cuda'].includes(o.device as string)) invalid('device', o.device);
    r.device = o.device;
  }
  if (o.shapes !== undefined) {
    if (typeof o.shapes !== 'object' || o.shapes === null || Array.isArray(o.shapes)) invalid('shapes', o.shapes);
    for (const [k, v] of Object.entries(o.shapes)) {
      if (!Array.isArray(v) || v.some((d) => !Number.isInteger(d) || d < 0))
        throw new KilnError('INVALID_OPTION', `Expected an array of non-negative integers for option 'shapes.${k}' but received ${JSON.stringify(v)}`);
      r.shapes[k] = [...v];
    }
  }
  if (o.onProgress !== undefined) {
    if (typeof o.onProgress !== 'function') invalid('onProgress', o.onProgress);
    r.onProgress = o.onProgress;
  }
  if (o.signal !== undefined) {
    if (typeof o.signal !== 'object' || o.signal === null || typeof (o.signal as AbortSignal).aborted !== 'boolean') invalid('signal', o.signal);
    r.signal = o.signal;
  }
  for (const k of ['timing', 'strict', 'guard'] as const) {
    if (o[k] === undefined) continue;
    if (typeof o[k] !== 'boolean') invalid(k, o[k]);
    r[k] = o[k] as boolean;
  }
  if (o.timingCache !== undefined) {
    if (typeof o.timingCache !== 'string' || o.timingCache === '') invalid('timingCache', o.timingCache);
    r.timingCache = o.timingCache;
  }
  if (o.deviceId !== undefined) {
    if (!Number.isInteger(o.deviceId) || (o.deviceId as number) < 0) invalid('deviceId', o.deviceId);
    r.deviceId = o.deviceId as number;
  }
  if (o.constants !== undefined) {
    if (typeof o.constants !== 'object' || o.constants === null || Array.isArray(o.constants)) invalid('constants', o.constants);
    for (const [k, t] of Object.entries(o.constants))
      if (typeof t !== 'object' || t === null || typeof t.type !== 'string' || !Array.isArray(t.dims) || !ArrayBuffer.isView(t.data))
        throw new KilnError('INVALID_OPTION', `Expected a Tensor for option 'constants.${k}' but received ${JSON.stringify(t)}`);
    r.constants = o.constants;
  }
  if (o.optimize !== undefined) {
    const v = o.optimize;
    if (typeof v !== 'boolean' && (typeof v !== 'object' || v === null || Object.values(v).some((x) => typeof x !== 'boolean'))) invalid('optimize', v);
    r.optimize = v;
  }
  if (o.debug !== undefined) {
    const d = o.debug as Record<string, unknown>;
    if (typeof d !== 'object' || d === null || Array.isArray(d) || Object.keys(d).some((k) => k !== 'exposeAll') || (d.exposeAll !== undefined && typeof d.exposeAll !== 'boolean'))
      invalid('debug', d);
    r.debug = { exposeAll: d.exposeAll === true };
  }
  if (o.calibration !== undefined) {
    const c = o.calibration as unknown as Record<symbol, unknown>;
    if (typeof c !== 'object' || c === null || (typeof c[Symbol.iterator] !== 'function' && typeof c[Symbol.asyncIterator] !== 'function')) invalid('calibration', o.calibration);
    r.calibration = o.calibration;
  }
  if (o.calibrator !== undefined) {
    if (!['entropy', 'percentile', 'minmax'].includes(o.calibrator as string)) invalid('calibrator', o.calibrator);
    r.calibrator = o.calibrator;
  }
  if (o.percentile !== undefined) {
    if (typeof o.percentile !== 'number' || !(o.percentile > 0 && o.percentile <= 100)) invalid('percentile', o.percentile);
    r.percentile = o.percentile;
  }
  if (o.calibrationCache !== undefined) {
    if (typeof o.calibrationCache !== 'string' || o.calibrationCache === '') invalid('calibrationCache', o.calibrationCache);
    r.calibrationCache = o.calibrationCache;
  }
  if (o.layerPrecisions !== undefined) {
    const l = o.layerPrecisions;
    if (typeof l !== 'object' || l === null || Array.isArray(l)) invalid('layerPrecisions', l);
    for (const [k, v] of Object.entries(l))
      if (!['fp32', 'fp16', 'int8'].includes(v as string))
        throw new KilnError('INVALID_OPTION', `Expected 'fp32' | 'fp16' | 'int8' for option 'layerPrecisions.${k}' but received ${JSON.stringify(v)}`);
    r.layerPrecisions = { ...l };
  }
  if (o.tolerance !== undefined) {
    if (typeof o.tolerance !== 'number' || !(o.tolerance > 0) || !Number.isFinite(o.tolerance)) invalid('tolerance', o.tolerance);
    r.tolerance = o.tolerance;
  }
  return r;
}
