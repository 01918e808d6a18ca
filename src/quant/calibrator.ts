/**
 * Calibrators: per-tensor statistics of the activations seen during calibration, and the symmetric
 * range (amax: values are quantized with scale amax / 127) each calibrator derives from them.
 *   minmax      max(|min|, |max|) over every batch: exact, and at the mercy of one outlier.
 *   percentile  the given percentile of |x| (default 99.99), from the histogram.
 *   entropy     the clipping threshold whose 128-level quantized distribution is closest (KL divergence)
 *               to the observed one, searched over the first 128…2048 bins of the histogram
 *               (TensorRT's entropy calibration). The default. With few values (less than 16 per
 *               bin on average) the search runs on merged bins, down to 128, so that a small
 *               calibration set does not clip on sampling noise.
 * The histogram holds |x| in 2048 bins over [0, 2048·width). Batches arrive one at a time (an async
 * iterable is read once), so the range grows as they come: when a batch reaches beyond it, adjacent bins
 * merge pairwise and the width doubles until it fits.
 */
export type CalibratorName = 'entropy' | 'percentile' | 'minmax';

export const HISTOGRAM_BINS = 2048;
/** Levels of the positive half of int8 that the entropy search quantizes to. */
const LEVELS = 128;
/** Values per histogram bin the entropy search wants on average (see amaxOf). */
const MIN_PER_BIN = 16;

export class TensorStats {
  min = Infinity;
  max = -Infinity;
  count = 0;
  readonly bins = new Float64Array(HISTOGRAM_BINS);
  /** Bin width; 0 until a batch with a non-zero value arrives (zeros are counted in bin 0 meanwhile). */
  width = 0;

  add(x: ArrayLike<number>): void {
    let m = 0;
    for (let i = 0; i < x.length; i++) {
      const v = x[i];
      if (Number.isNaN(v)) continue;
      if (v < this.min) this.min = v;
      if (v > this.max) this.max = v;
      const a = Math.abs(v);
      if (a > m) m = a;
    }
    if (m === Infinity) m = Number.MAX_VALUE;
    if (this.width === 0 && m > 0) this.width = m / (HISTOGRAM_BINS - 1); // m lands in the last bin
    while (m >= HISTOGRAM_BINS * this.width && this.width > 0) this.grow();
    const b = this.bins;
    for (let i = 0; i < x.length; i++) {
      const v = x[i];
      if (Number.isNaN(v)) continue;
      this.count++;
      const k = this.width > 0 ? Math.min(HISTOGRAM_BINS - 1, Math.floor(Math.abs(v) / this.width)) : 0;
      b[k]++;
    }
  }

  /** Doubles the width, merging bins pairwise. */
  private grow(): void {
    const b = this.bins;
    for (let i = 0; i < HISTOGRAM_BINS / 2; i++) b[i] = b[2 * i] + b[2 * i + 1];
    b.fill(0, HISTOGRAM_BINS / 2);
    this.width *= 2;
  }

  get absMax(): number {
    return this.count ? Math.max(Math.abs(this.min), Math.abs(this.max)) : 0;
  }
}

/** The symmetric range of a tensor under a calibrator (0 when it was all zeros). */
export function amaxOf(s: TensorStats, calibrator: CalibratorName, percentile = 99.99): number {
  const top = s.absMax;
  if (calibrator === 'minmax' || top === 0 || s.width === 0) return top;
  if (calibrator === 'percentile') return Math.min(top, percentileOf(s.bins, s.width, percentile));
  // KL over sparse bins measures sampling noise, which favours clipping: the search runs on bins
  // merged until they average MIN_PER_BIN values (never fewer than LEVELS bins).
  let bins: Float64Array = s.bins;
  let width = s.width;
  while (bins.length > LEVELS && s.count / bins.length < MIN_PER_BIN) {
    const half = new Float64Array(bins.length / 2);
    for (let i = 0; i < half.length; i++) half[i] = bins[2 * i] + bins[2 * i + 1];
    bins = half;
    width *= 2;
  }
  // The spike of exact zeros (every ReLU output below zero) in bin 0 would dominate P and Q and pull the
  // search to tiny thresholds (resnet-tiny: 0.35 relative error after the first ReLU): bin 0 counts as
  // its neighbour does.
  if (bins === s.bins) bins = Float64Array.from(bins);
  if (bins.length > 1) bins[0] = bins[1];
  return Math.min(top, entropyThreshold(bins, width));
}

/** The upper edge of the bin where the cumulative count reaches `p` percent. */
export function percentileOf(bins: Float64Array, width: number, p: number): number {
  let total = 0;
  for (const c of bins) total += c;
  const want = (p / 100) * total;
  let acc = 0;
  for (let i = 0; i < bins.length; i++) {
    acc += bins[i];
    if (acc >= want) return (i + 1) * width;
  }
  return bins.length * width;
}

/**
 * The entropy (KL) threshold: for each candidate i of the kept bins, P is bins[0, i) with everything
 * beyond folded into its last bin, Q is the same i bins merged into 128 levels and spread back evenly
 * over the bins that were non-zero; the i with the smallest KL(P || Q) gives the threshold i·width.
 */
export function entropyThreshold(bins: Float64Array, width: number): number {
  const n = bins.length;
  let last = n;
  while (last > 0 && bins[last - 1] === 0) last--;
  if (last <= LEVELS) return last * width;
  const suffix = new Float64Array(n + 1);
  for (let i = n - 1; i >= 0; i--) suffix[i] = suffix[i + 1] + bins[i];
  let best = Infinity;
  let bestI = last;
  const p = new Float64Array(n);
  const q = new Float64Array(n);
  for (let i = LEVELS; i <= last; i++) {
    for (let k = 0; k < i; k++) p[k] = bins[k];
    p[i - 1] += suffix[i];
    // merge bins [0, i) into LEVELS groups, each spread over its non-zero bins
    for (let j = 0; j < LEVELS; j++) {
      const start = Math.floor((j * i) / LEVELS);
      const stop = Math.floor(((j + 1) * i) / LEVELS);
      let sum = 0;
      let nonzero = 0;
      for (let k = start; k < stop; k++) {
        sum += bins[k];
        if (bins[k] !== 0) nonzero++;
      }
      for (let k = start; k < stop; k++) q[k] = bins[k] !== 0 ? sum / nonzero : 0;
    }
    const kl = klDivergence(p, q, i);
    if (kl < best) {
      best = kl;
      bestI = i;
    }
  }
  return bestI * width;
}

/** KL(P || Q) over the first n entries, both normalized; Q is floored where P has mass. */
function klDivergence(p: Float64Array, q: Float64Array, n: number): number {
  let sp = 0;
  let sq = 0;
  for (let k = 0; k < n; k++) {
    sp += p[k];
    sq += q[k];
  }
  if (sp === 0 || sq === 0) return Infinity;
  let kl = 0;
  for (let k = 0; k < n; k++) {
    if (p[k] === 0) continue;
    const pk = p[k] / sp;
    const qk = Math.max(q[k] / sq, 1e-12);
    kl += pk * Math.log(pk / qk);
  }
  return kl;
}
