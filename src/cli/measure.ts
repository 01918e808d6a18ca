/**
 * Latency measurement shared by `kiln bench`, `npm start` and bench/cpu-vs-ort.ts, so every runner
 * (kiln or a peer) is timed by the same loop: warm-up runs first, then `iterations` timed runs with up
 * to `concurrency` in flight.
 */

export interface MeasureOptions {
  /** Timed runs (default 100). */
  iterations?: number;
  /** Untimed runs before timing starts (default 10). */
  warmup?: number;
  /** Runs in flight at once (default 1). */
  concurrency?: number;
}

export interface LatencySummary {
  iterations: number;
  concurrency: number;
  p50_ms: number;
  p90_ms: number;
  p99_ms: number;
  mean_ms: number;
  min_ms: number;
  max_ms: number;
  /** Completed runs per second of wall time. */
  throughput: number;
}

/** The q-quantile (0..1) of sorted values, linearly interpolated (numpy's default). */
export function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return NaN;
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.min(sorted.length - 1, lo + 1);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}

export function summarize(times: readonly number[], wallMs: number, concurrency: number): LatencySummary {
  const s = [...times].sort((a, b) => a - b);
  return {
    iterations: s.length,
    concurrency,
    p50_ms: quantile(s, 0.5),
    p90_ms: quantile(s, 0.9),
    p99_ms: quantile(s, 0.99),
    mean_ms: s.reduce((a, b) => a + b, 0) / (s.length || 1),
    min_ms: s[0] ?? NaN,
    max_ms: s[s.length - 1] ?? NaN,
    throughput: wallMs > 0 ? (s.length * 1000) / wallMs : NaN,
  };
}

function positive(name: string, v: number, min: number): number {
  if (!Number.isInteger(v) || v < min) throw new RangeError(`${name} must be an integer >= ${min}, received ${v}`);
  return v;
}

/** Times `run`: warm-up first, then the timed runs. */
export async function measure(run: () => Promise<unknown>, o: MeasureOptions = {}): Promise<LatencySummary> {
  const iterations = positive('iterations', o.iterations ?? 100, 1);
  const warmup = positive('warmup', o.warmup ?? 10, 0);
  const concurrency = positive('concurrency', o.concurrency ?? 1, 1);
  for (let i = 0; i < warmup; i++) await run();
  const times: number[] = [];
  let next = 0;
  const worker = async () => {
    while (next < iterations) {
      next++;
      const t0 = process.hrtime.bigint();
      await run();
      times.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
  };
  const start = process.hrtime.bigint();
  await Promise.all(Array.from({ length: Math.min(concurrency, iterations) }, worker));
  return summarize(times, Number(process.hrtime.bigint() - start) / 1e6, concurrency);
}

/** Peak resident set size of this process so far, in MiB. */
export function peakRssMb(): number {
  return process.resourceUsage().maxRSS / 1024;
}
