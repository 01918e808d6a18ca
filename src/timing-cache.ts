/**
 * The timing cache: a JSON file of tactic times from earlier builds, so that rebuilding a model whose
 * layers were timed before skips timing. Entries are keyed by the layer's signature (kind, attributes,
 * tensor types and shapes; native/executor.h `layer_signature`) and the tactic; the file as a whole is
 * keyed by what makes times comparable: kiln version, backend, device name and capability, library
 * versions (driver, CUDA, cuBLAS, cuDNN). A file made elsewhere is ignored (and rewritten) rather than
 * trusted. It also keeps the fp16 accuracy guard's findings (`guards`), keyed by a hash of the model and
 * the options that shape the checked plan: the guard is deterministic (fixed sample inputs, the CPU's
 * kernels), so a rebuild of the same model reuses its pins instead of running the model on the CPU again.
 */
import * as fs from 'fs';
import * as path from 'path';
import { KilnError } from './errors';
import type { GuardResult } from './passes/accuracy-guard';

export interface CacheIdentity {
  kiln: string;
  backend: string;
  device: string;
  capability: string;
  libraries: string;
}

/** A guard run's findings (accuracy-guard.ts GuardResult: plain data, stored as it is). */
export type CachedGuard = GuardResult;

interface CacheFile extends CacheIdentity {
  format: 1;
  entries: Record<string, number>;
  guards?: Record<string, CachedGuard>;
}

const same = (a: CacheIdentity, b: CacheIdentity) =>
  a.kiln === b.kiln && a.backend === b.backend && a.device === b.device && a.capability === b.capability && a.libraries === b.libraries;

/** The cached entries for this identity ({} when the file is missing or was made elsewhere). */
export function readTimingCache(file: string, id: CacheIdentity): { entries: Record<string, number>; guards: Record<string, CachedGuard>; note?: string } {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return { entries: {}, guards: {} };
  }
  let c: CacheFile;
  try {
    c = JSON.parse(text) as CacheFile;
  } catch {
    return { entries: {}, guards: {}, note: `timing cache '${file}' is not valid JSON; it will be rewritten` };
  }
  if (c?.format !== 1 || typeof c.entries !== 'object') return { entries: {}, guards: {}, note: `timing cache '${file}' has an unknown format; it will be rewritten` };
  if (!same(c, id))
    return { entries: {}, guards: {}, note: `timing cache '${file}' was made for ${c.device} (${c.backend}, kiln ${c.kiln}), not ${id.device} (${id.backend}, kiln ${id.kiln}); it will be rewritten` };
  return { entries: c.entries, guards: c.guards && typeof c.guards === 'object' ? c.guards : {} };
}

/** Writes the cache (merged entries) atomically. */
export function writeTimingCache(file: string, id: CacheIdentity, entries: Record<string, number>, guards: Record<string, CachedGuard> = {}): void {
  const body: CacheFile = { format: 1, ...id, entries, ...(Object.keys(guards).length ? { guards } : {}) };
  const tmp = path.join(path.dirname(path.resolve(file)), `.${path.basename(file)}.${process.pid}.tmp`);
  try {
    fs.writeFileSync(tmp, JSON.stringify(body));
    fs.renameSync(tmp, file);
  } catch (e) {
    throw new KilnError('INVALID_OPTION', `Option 'timingCache': cannot write '${file}' (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
}
