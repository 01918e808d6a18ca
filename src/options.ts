/** compile() options: their types, defaults and validation (every invalid value names the option). */
import { KilnError } from './errors';
import type { TensorLike } from './tensor';

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
   * CPU reference kernels on seeded sample inputs, and pins to fp32 each layer whose fp16 output
   * overflows or loses accuracy (report.precisionGuard and the warnings name them). false skips it.
   */
  guard?: boolean;
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
}

export function resolveOptions(o: CompileOptions | undefined): ResolvedOptions {
  if (o === undefined || o === null) o = {};
  if (typeof o !== 'object') throw new KilnError('INVALID_OPTION', `Expected an options object but received ${typeof o}`);
  for (const k of Object.keys(o))
    if (!(k in KNOWN))
      throw new KilnError('INVALID_OPTION', `Unknown option '${k}'; the options are ${Object.keys(KNOWN).join(', ')}`);
  const r: ResolvedOptions = { precision: 'fp32', device: 'auto', shapes: {}, timing: true, optimize: true, strict: false, constants: {}, deviceId: 0, debug: { exposeAll: false }, guard: true };
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
  return r;
}
