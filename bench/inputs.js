// The synthetic inputs of kiln's benchmarks (bench/gpu.js, bench/int8-accuracy.js): calibration and
// held-out images and token sequences, each sample from its own seeded generator.
'use strict';

// Per sample, from its own seeded generator (stream, index): calibration samples and held-out ones come
// from different streams, and a sample is the same at every batch size.
const mulberry32 = require('../dist/cli/inputs').prng; // the seeded generator kiln run uses
const CALIB_STREAM = 0x1c0ffee;
const HOLDOUT_STREAM = 0x5eed0d;
const sampleRng = (stream, index) => mulberry32(Math.imul(index + 1, 0x9e3779b1) ^ stream);

const IMAGENET_MEAN = [0.485, 0.456, 0.406];
const IMAGENET_STD = [0.229, 0.224, 0.225];

// A smooth natural-ish image [C,H,W]: per channel a field shared by the channels (a gradient, three
// low-frequency 2-D sinusoids, two Gaussian blobs) plus a weaker one of its own and a little pixel
// noise, scaled to a random sub-range of [0, 1]; then ImageNet normalization (3 channels) or
// (x - 0.5) / 0.25.
function imageSample(r, C, H, W) {
  const field = () => {
    const gx = r() * 2 - 1, gy = r() * 2 - 1;
    const waves = Array.from({ length: 3 }, () => ({ a: 0.2 + 0.8 * r(), fx: (r() * 3 + 0.3) * (r() < 0.5 ? -1 : 1), fy: r() * 3 + 0.3, ph: r() * 2 * Math.PI }));
    const blobs = Array.from({ length: 2 }, () => ({ a: r() * 2 - 1, u: r(), v: r(), s: 0.05 + 0.25 * r() }));
    const f = new Float32Array(H * W);
    for (let y = 0; y < H; y++) {
      const v = y / H;
      for (let x = 0; x < W; x++) {
        const u = x / W;
        let t = gx * u + gy * v;
        for (const w of waves) t += w.a * Math.sin(2 * Math.PI * (w.fx * u + w.fy * v) + w.ph);
        for (const b of blobs) t += b.a * Math.exp(-((u - b.u) ** 2 + (v - b.v) ** 2) / (2 * b.s * b.s));
        f[y * W + x] = t;
      }
    }
    return f;
  };
  const shared = field();
  const out = new Float32Array(C * H * W);
  for (let c = 0; c < C; c++) {
    const own = field();
    const o = out.subarray(c * H * W, (c + 1) * H * W);
    let lo = Infinity, hi = -Infinity;
    for (let i = 0; i < o.length; i++) {
      o[i] = shared[i] + 0.5 * own[i] + 0.04 * (r() - 0.5);
      lo = Math.min(lo, o[i]);
      hi = Math.max(hi, o[i]);
    }
    const a = 0.3 * r(), b = 0.7 + 0.3 * r(); // the channel spans [a, b] within [0, 1]
    const mean = C === 3 ? IMAGENET_MEAN[c] : 0.5, std = C === 3 ? IMAGENET_STD[c] : 0.25;
    for (let i = 0; i < o.length; i++) o[i] = (a + ((o[i] - lo) / Math.max(hi - lo, 1e-12)) * (b - a) - mean) / std;
  }
  return out;
}

// Token ids of one sequence of length S: [CLS]=101, ids uniform in [lo, hi), [SEP]=102, then padding
// (id 0, mask 0) for the last `pad` positions (0 to S/8 of them).
function tokenSample(r, S, vocab) {
  const hi = Math.min(30000, vocab ?? 30000);
  const lo = Math.min(1000, Math.floor(hi / 4));
  const pad = S > 8 ? Math.floor(r() * (Math.floor(S / 8) + 1)) : 0;
  const L = S - pad;
  const ids = new Array(S).fill(0);
  for (let k = 0; k < L; k++) ids[k] = lo + Math.floor(r() * (hi - lo));
  if (L >= 2) {
    ids[0] = Math.min(101, hi - 1);
    ids[L - 1] = Math.min(102, hi - 1);
  }
  return { ids, L };
}

module.exports = { CALIB_STREAM, HOLDOUT_STREAM, sampleRng, imageSample, tokenSample };
