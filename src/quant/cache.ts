/**
 * The calibration cache: a JSON file holding the calibrated range (amax) of every tensor an int8 build
 * quantizes, so that a rebuild reads it instead of running the calibration set again. The file is keyed
 * by what makes ranges valid: kiln version, a SHA-256 of the model bytes, the calibrator (and its
 * percentile), and the build options that decide the graph's tensors (shapes, constants, optimize). A
 * file made for something else is ignored (with the reason) and rewritten after calibrating. It also keeps
 * the int8 accuracy guard's findings (`guards`), keyed by a hash of what the guard's verdict depends on
 * (the ranges, its sample inputs, tolerance and pins), so a rebuild does not run the guard again.
 */
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { KilnError } from '../errors';
import type { CachedGuard } from '../timing-cache';
import { CalibratorName } from './calibrator';

export interface CalibrationKey {
  kiln: string;
  /** SHA-256 of the model bytes (hex). */
  model: string;
  calibrator: CalibratorName;
  percentile?: number;
  /** The options that shape the graph, as JSON. */
  graph: string;
}

export interface CalibrationCacheFile extends CalibrationKey {
  format: 1;
  /** Tensor name → symmetric range. */
  amax: Record<string, number>;
  /** The int8 guard's findings by guard key. */
  guards?: Record<string, CachedGuard>;
}

export function modelHash(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** The cached ranges when the file exists and matches `key`; otherwise why not (undefined: no file). */
export function readCalibrationCache(file: string, key: CalibrationKey): { amax?: Record<string, number>; guards?: Record<string, CachedGuard>; note?: string } {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return {};
  }
  let c: CalibrationCacheFile;
  try {
    c = JSON.parse(text) as CalibrationCacheFile;
  } catch {
    return { note: `calibration cache '${file}' is not valid JSON` };
  }
  if (typeof c !== 'object' || c === null || c.format !== 1 || typeof c.amax !== 'object' || c.amax === null)
    return { note: `calibration cache '${file}' is not a kiln calibration cache` };
  for (const k of ['kiln', 'model', 'calibrator', 'percentile', 'graph'] as const)
    if (c[k] !== key[k]) return { note: `calibration cache '${file}' was made for another ${k === 'model' ? 'model' : k === 'graph' ? 'set of shapes/constants/optimize options' : k} (${String(c[k])}, this build: ${String(key[k])})` };
  return { amax: c.amax, guards: c.guards && typeof c.guards === 'object' ? c.guards : {} };
}

export function writeCalibrationCache(file: string, key: CalibrationKey, amax: Record<string, number>, guards: Record<string, CachedGuard> = {}): void {
  const body: CalibrationCacheFile = { format: 1, ...key, amax, ...(Object.keys(guards).length ? { guards } : {}) };
  try {
    fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
    fs.writeFileSync(file, JSON.stringify(body, null, 1));
  } catch (e) {
    throw new KilnError('INVALID_OPTION', `Option 'calibrationCache': cannot write '${file}' (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
}
