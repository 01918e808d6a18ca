/**
 * The one typed view of the native addon (native/addon.cc). Nothing else in src/ touches the addon.
 * It is loaded lazily, so importing kiln never fails on a machine where the build did not run; the
 * first call that needs it gives a clear error instead.
 */
import * as path from 'path';
import { KilnError, fromNative } from '../errors';

export interface NativeEngine {
  infer(inputs: ArrayBufferView[]): Promise<ArrayBuffer[]>;
  profile(inputs: ArrayBufferView[]): Promise<{ outputs: ArrayBuffer[]; times: number[] }>;
  /** Device time (ms) of each of `iterations` runs of the layers alone, inputs uploaded once. */
  timeRuns(inputs: ArrayBufferView[], iterations: number): Promise<number[]>;
  serialize(): Uint8Array;
  /** JSON: { header, memory, layers, plan, meta }. */
  describe(): string;
  dispose(): void;
}

export interface NativeBuildOptions {
  backend: 'cpu' | 'cuda';
  timing: boolean;
  /** Opaque JSON stored in the engine's META section. */
  meta: string;
  /** JSON recorded in the engine header. */
  buildOptions: string;
  /** Leave out tactics with reduced-precision math (TF32). */
  strict?: boolean;
  /** Device backends: the device index (CUDA's). */
  deviceId?: number;
  /** Timing cache entries: "<layer signature>|<tactic>" → ms. */
  timingCache?: Record<string, number>;
  /** Tests: op kind -> the one tactic its layers must use. */
  tactics?: Record<string, string>;
}

export interface NativeInfo {
  version: string;
  backends: string[];
  device: string;
  capability: string;
  threads: number;
  engineFormatVersion: number;
  planVersion: number;
}

interface Addon {
  build(plan: Uint8Array, options: NativeBuildOptions, progress?: (done: number, total: number, layer: string) => void, cancel?: Int32Array): Promise<NativeEngine>;
  load(bytes: Uint8Array, options?: { deviceId?: number }): Promise<NativeEngine>;
  /** Runs a Plan on the CPU: every layer on its reference tactic (`overrides`: op kind -> tactic name),
   *  or with FAST_CPU on the first faster tactic that can run it (untimed). */
  /** Free and total bytes of a backend's device (0 for the CPU). */
  deviceMemory(backend: string, deviceId?: number): { free: number; total: number };
  runPlan(plan: Uint8Array, inputs: ArrayBufferView[], overrides?: Record<string, string>): ArrayBuffer[];
  planToJson(plan: Uint8Array): string;
  tactics(backend?: string): Record<string, string[]>;
  info(): NativeInfo;
}

let addon: Addon | undefined;

export function native(): Addon {
  if (addon) return addon;
  const candidates = [
    process.env.KILN_ADDON,
    path.join(__dirname, '..', '..', 'build', 'Release', 'kiln.node'),
    path.join(__dirname, '..', '..', '..', 'build', 'Release', 'kiln.node'),
  ].filter((p): p is string => !!p);
  const errors: string[] = [];
  for (const p of candidates) {
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      addon = require(p) as Addon;
      return addon;
    } catch (e) {
      errors.push(`${p}: ${(e as Error).message.split('\n')[0]}`);
    }
  }
  throw new KilnError('INTERNAL', `the kiln native addon is not built (run 'npm run build:native'); tried ${errors.join('; ')}`);
}

/** Calls into the addon and turns its "[CODE] message" errors into KilnErrors. */
export function call<T>(fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    throw fromNative(e);
  }
}

export async function callAsync<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    throw fromNative(e);
  }
}

/** runPlan's overrides for its fast mode: the CPU's faster tactics instead of the references. */
export const FAST_CPU: Readonly<Record<string, string>> = Object.freeze({ '*': 'fast' });
