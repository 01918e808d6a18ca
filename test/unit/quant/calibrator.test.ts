/** Calibrators on known distributions: min-max exact, percentile, entropy clipping a heavy tail. */
import { HISTOGRAM_BINS, TensorStats, amaxOf, entropyThreshold, percentileOf } from '../../../src/quant/calibrator';
import { rng } from '../ops/tactic-helpers';

function stats(batches: number, n: number, draw: () => number): TensorStats {
  const s = new TensorStats();
  for (let b = 0; b < batches; b++) s.add(Float32Array.from({ length: n }, draw));
  return s;
}

describe('calibrators', () => {
  test('minmax is max(|min|, |max|) exactly, whatever the batch order', () => {
    const s = new TensorStats();
    s.add(Float32Array.of(0.5, -0.25));
    s.add(Float32Array.of(-3.75, 2, NaN));
    expect(amaxOf(s, 'minmax')).toBe(3.75);
    expect(s.count).toBe(4);
  });

  test('the histogram grows to later, wider batches and keeps every count', () => {
    const s = new TensorStats();
    s.add(Float32Array.of(0.1, 0.2));
    s.add(Float32Array.of(100, 0));
    expect(s.width * HISTOGRAM_BINS).toBeGreaterThan(100);
    expect(s.bins.reduce((a, b) => a + b, 0)).toBe(4);
    // the width doubles: 100 lands in the upper half, the three small values in the first bins after the merges
    expect(s.bins.slice(HISTOGRAM_BINS / 2).reduce((a, b) => a + b, 0)).toBe(1);
    expect(s.bins.slice(0, 8).reduce((a, b) => a + b, 0)).toBe(3);
  });

  test('percentile of uniform |x| on [0, 1) lands within a bin of p/100', () => {
    const r = rng(1);
    const s = stats(16, 8192, () => r() * 2 - 1);
    for (const p of [50, 90, 99]) expect(Math.abs(amaxOf(s, 'percentile', p) - p / 100)).toBeLessThan(2 * s.width + 0.01);
    expect(percentileOf(Float64Array.of(1, 1, 1, 1), 0.25, 50)).toBe(0.5);
  });

  test('entropy keeps the range of a uniform distribution and clips a heavy tail', () => {
    const r = rng(2);
    const uniform = stats(16, 8192, () => r() * 2 - 1);
    expect(amaxOf(uniform, 'entropy')).toBeGreaterThan(0.95 * uniform.absMax);
    // Laplace(0, 1): max ≈ ln(n) ≈ 12, most mass within a few units
    const laplace = stats(16, 8192, () => {
      const u = r() - 0.5;
      return -Math.sign(u) * Math.log(1 - 2 * Math.abs(u) + 1e-12);
    });
    const t = amaxOf(laplace, 'entropy');
    expect(t).toBeLessThan(0.8 * laplace.absMax);
    expect(t).toBeGreaterThan(3);
  });

  test('entropy on a hand-made histogram: a lone far outlier is clipped', () => {
    const bins = new Float64Array(HISTOGRAM_BINS);
    for (let i = 0; i < 200; i++) bins[i] = 1000 - 4 * i;
    bins[HISTOGRAM_BINS - 1] = 1;
    expect(entropyThreshold(bins, 1)).toBeLessThan(400);
  });

  test('a tensor of zeros has range 0 under every calibrator', () => {
    const s = stats(2, 16, () => 0);
    for (const c of ['minmax', 'percentile', 'entropy'] as const) expect(amaxOf(s, c)).toBe(0);
  });
});
