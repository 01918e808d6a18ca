#!/usr/bin/env node
// kiln on the GPU, for scripts/gpu.sh's `bench` stage (plain JS over dist/, since the GPU machine has no
// TypeScript). For each model file and each precision (--precisions: fp32, fp16, int8, best) and batch (1, 32):
//   build_s      compile() wall time (cold: every layer's candidates timed; int8/best: calibration too)
//   p50/p90/p99  GPU-only latency: Engine.timeRuns (the layers alone, inputs already on the device,
//                CUDA events) — timed as torch is timed in scripts/gpu/bench_torch.py
//   e2e_p50_ms   infer() from JS: copies in and out and the promise round trip included
//   cosine, rel_l2, top1_agree  accuracy on held-out inputs against the fp32 CPU reference (accuracy())
// and, for the optimizer (fp32, batch 1): the same model built with optimize: false (runner
// "kiln-unoptimized"), on the GPU and on the CPU backend. One JSON object per measurement is appended
// to the results file (bench/README.md). Usage: node bench/gpu.js --results FILE [--iters N] model.onnx...
// int8/best builds calibrate on --calib N samples (default 8; smooth images / token sequences from a
// seeded generator, makeFeed()), through one calibration cache per model and batch (a temporary file,
// removed after the model): the cache's key holds the build's `shapes`, so a batch-32 build cannot
// reuse the batch-1 scales, and each batch calibrates on the same N samples (repeated to fill a feed).
// --devices cpu (no cuda): the precision rows run on the CPU backend instead (fp32, int8, best; no fp16).
'use strict';
const os = require('os');
const path = require('path');
const { compile, Tensor, backendInfo } = require('../dist');
const { native, FAST_CPU } = require('../dist/native/binding');
const { bindShapes } = require('../dist/compile');
const { inferGraph } = require('../dist/ir/infer');
const { lowerGraph } = require('../dist/lower/lower');
const { encodePlan } = require('../dist/lower/plan');
const { importModel } = require('../dist/onnx/import');
const { dtypeName, halfToFloat } = require('../dist/dtype');

const fs = require('fs');
const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 ? args.splice(i, 2)[1] : dflt;
};
const results = opt('--results', 'bench/results/gpu.jsonl');
const iters = Number(opt('--iters', '100'));
const precisions = opt('--precisions', 'fp32,fp16').split(',');
const batches = opt('--batches', '1,32').split(',').map(Number);
// --devices cuda: leave out the CPU rows; --unoptimized fp32,fp16: precisions of the optimizer-off rows.
// Without cuda in --devices the --precisions rows run on the CPU backend (int8/best paths off a GPU).
const devices = opt('--devices', 'cuda,cpu').split(',');
const mainDevice = devices.includes('cuda') ? 'cuda' : 'cpu';
const unoptimized = opt('--unoptimized', 'fp32').split(',').filter(Boolean);
// --requested attention-recognition: also, at batch 1, builds with these passes asked for by name
// (runner "kiln+<pass>"), for passes a target leaves off unless requested
const requested = opt('--requested', '').split(',').filter(Boolean);
// int8/best: --calib N calibration samples (at batch B: ceil(N/B) feeds of B samples, the N samples
// repeated to fill them); --calibrator entropy|percentile|minmax (default: compile()'s, entropy)
const calibN = Number(opt('--calib', '8'));
const calibrator = opt('--calibrator', undefined);
// --guard off: int8/best builds without the accuracy guard (every quantizable layer int8: the kernels'
// speed on models whose random weights amplify any rounding; rows carry guard_off)
const guardOff = opt('--guard', 'on') === 'off';
// --holdout K: held-out feeds per row for the accuracy fields (default 16 at batch 1, ceil(128/B) at
// batch B: 4 at 32). --classes C: top1_agree for models whose first output's last dim is C (default 1000).
const holdoutArg = opt('--holdout', undefined);
const classes = Number(opt('--classes', '1000'));
const holdoutFeeds = (batch) => (holdoutArg !== undefined ? Number(holdoutArg) : batch === 1 ? 16 : Math.max(1, Math.ceil(128 / batch)));
// --data DIR: real images for a model with one image input (scripts/gpu/train_shapes.py writes them):
// calibration from DIR/calib.npy, held-out feeds from DIR/holdout.npy and, with DIR/holdout_labels.npy,
// `top1_label` (the engine's held-out accuracy against the true classes; `top1_label_ref`: the fp32
// reference's). Without it images are made up (imageSample).
const dataDir = opt('--data', undefined);
const files = args;

function pct(xs, p) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.round((p / 100) * (s.length - 1)))];
}

// The timing feeds: floats uniform in [-1, 1), token ids uniform below min(30000, the vocabulary),
// masks 1 but for the last 8 positions.
function feedsFor(engine, seed, vocab) {
  const ids = Math.min(30000, vocab ?? 30000);
  let s = seed;
  const rand = () => ((s = (s * 1664525 + 1013904223) >>> 0) / 2 ** 32);
  const feeds = {};
  for (const i of engine.inputs) {
    const n = i.dims.reduce((a, b) => a * b, 1);
    if (i.type === 'int64') {
      const mask = /mask/.test(i.name);
      feeds[i.name] = new Tensor('int64', BigInt64Array.from({ length: n }, (_, k) => (mask ? (k % i.dims[i.dims.length - 1] < i.dims[i.dims.length - 1] - 8 ? 1n : 0n) : BigInt(Math.floor(rand() * ids)))), i.dims);
    } else feeds[i.name] = new Tensor('float32', Float32Array.from({ length: n }, () => rand() * 2 - 1), i.dims);
  }
  return feeds;
}

function record(row) {
  require('fs').appendFileSync(results, JSON.stringify(row) + '\n');
  const r = row;
  const lp = r.layers_by_precision;
  const acc = r.cosine === undefined ? '' : `  relL2 ${r.rel_l2} cos ${r.cosine}${r.top1_agree === undefined ? '' : ` top1 ${r.top1_agree}`}`;
  const quant = r.precision === 'int8' || r.precision === 'best' ? `  [${Object.entries(lp).map(([p, n]) => `${p} ${n}`).join(', ')}; guard moved ${r.guard_moved ?? 0}]` : '';
  console.log(`${r.model.padEnd(14)} ${r.runner.padEnd(18)} ${r.device.padEnd(4)} ${r.precision} b${String(r.batch).padEnd(3)} p50 ${r.p50_ms.toFixed(3).padStart(9)} ms  e2e ${r.e2e_p50_ms === undefined ? '-' : r.e2e_p50_ms.toFixed(3)}  build ${r.build_s.toFixed(1)} s${acc}${quant}`);
}

// ---- Inputs for calibration and for the held-out accuracy check (bench/inputs.js) ----
const { CALIB_STREAM, HOLDOUT_STREAM, sampleRng, imageSample, tokenSample } = require('./inputs');

const INT_TYPES = { int64: BigInt64Array, int32: Int32Array, int8: Int8Array, uint8: Uint8Array, bool: Uint8Array };

let dataset;
function loadData() {
  if (!dataDir || dataset) return dataset;
  const { readNpy } = require('../dist/cli/inputs');
  const read = (f) => readNpy(path.join(dataDir, f), fs.readFileSync(path.join(dataDir, f)));
  dataset = { calib: read('calib.npy'), hold: read('holdout.npy') };
  if (fs.existsSync(path.join(dataDir, 'holdout_labels.npy'))) dataset.labels = read('holdout_labels.npy').data;
  return dataset;
}

// Image `index` of the data set's calibration or held-out part (`per` floats), or undefined.
function dataImage(stream, index, per) {
  const d = loadData();
  if (!d) return undefined;
  const t = stream === CALIB_STREAM ? d.calib : d.hold;
  const n = t.dims[0];
  if (t.data.length / n !== per) throw new Error(`--data: images of ${t.data.length / n} values, the model's input takes ${per}`);
  return t.data.subarray((index % n) * per, (index % n + 1) * per);
}

// One feed of `batch` samples: sample `indices[b]` of `stream` at batch position b. Float rank-4 inputs
// are images (from --data when given); integer inputs are token ids, or an attention mask (/mask/), token types (/token_type|
// segment/: zeros) or positions (/position/: 0…S-1); other float inputs uniform in [-1, 1).
function makeFeed(infos, batch, indices, stream, vocab) {
  const feed = {};
  const data = {};
  for (const i of infos) {
    const n = i.dims.reduce((a, b) => a * b, 1);
    data[i.name] = i.type === 'float32' ? new Float32Array(n) : new (INT_TYPES[i.type] ?? Float32Array)(n);
  }
  for (let b = 0; b < batch; b++) {
    const r = sampleRng(stream, indices[b]);
    let tokens; // shared by the token inputs of one sample
    for (const i of infos) {
      const perBatch = i.dims[0] === batch;
      if (!perBatch && b > 0) continue; // an input without the batch dim: from the first sample
      const d = data[i.name];
      const per = perBatch ? d.length / batch : d.length;
      const slot = d.subarray(perBatch ? b * per : 0, (perBatch ? b * per : 0) + per);
      if (i.type === 'float32') {
        if (i.dims.length === 4) slot.set(dataImage(stream, indices[b], per) ?? imageSample(r, i.dims[1], i.dims[2], i.dims[3]));
        else for (let k = 0; k < per; k++) slot[k] = r() * 2 - 1;
        continue;
      }
      const S = i.dims[i.dims.length - 1];
      const put = (k, v) => (slot[k] = slot instanceof BigInt64Array ? BigInt(v) : v);
      if (/token_type|segment/.test(i.name)) continue; // zeros
      if (/position/.test(i.name)) {
        for (let k = 0; k < per; k++) put(k, k % S);
        continue;
      }
      tokens ??= tokenSample(r, S, vocab);
      const mask = /mask/.test(i.name);
      for (let k = 0; k < per; k++) put(k, mask ? (k % S < tokens.L ? 1 : 0) : tokens.ids[k % S]);
    }
  }
  for (const i of infos) feed[i.name] = new Tensor(i.type, data[i.name], i.dims);
  return feed;
}

// The calibration feeds at `batch`: the first N calibration samples, repeated to fill whole feeds.
function calibFeeds(m, batch) {
  const key = `calib:${batch}`;
  if (!m.cache.has(key)) {
    const nFeeds = Math.max(1, Math.ceil(calibN / batch));
    const feeds = [];
    for (let f = 0; f < nFeeds; f++)
      feeds.push(makeFeed(m.infos(batch), batch, Array.from({ length: batch }, (_, b) => (f * batch + b) % calibN), CALIB_STREAM, m.vocab));
    m.cache.set(key, feeds);
  }
  return m.cache.get(key);
}

// ---- The model ----
// Inputs (symbolic dims bind to the batch; the sequence of BERT-style inputs is fixed by the export),
// the vocabulary (the largest Gather table: token ids stay inside it), whether the batch is fixed.
function modelContext(file) {
  const g = importModel(fs.readFileSync(file), { baseDir: path.dirname(path.resolve(file)) });
  const inputs = g.inputs.map((n) => {
    const v = g.values.get(n);
    if (!v.shape) throw new Error(`input '${n}' has no shape in the model`);
    return { name: n, type: dtypeName(v.dtype), shape: v.shape };
  });
  let vocab;
  for (const n of g.nodes) {
    const t = n.opType === 'Gather' ? g.values.get(n.inputs[0]) : undefined;
    if (t && t.data && t.shape && t.shape.length === 2 && typeof t.shape[0] === 'number') vocab = Math.max(vocab ?? 0, t.shape[0]);
  }
  const symbolic = inputs.some((i) => i.shape.some((d) => typeof d !== 'number'));
  const dims = (i, batch) => i.shape.map((d) => (typeof d === 'number' ? d : batch));
  return {
    file,
    model: path.basename(file, '.onnx'),
    vocab,
    // a model exported with a fixed batch runs at that batch only
    fixedBatch: symbolic ? undefined : inputs[0]?.shape[0],
    shapes: (batch) => (symbolic ? Object.fromEntries(inputs.map((i) => [i.name, dims(i, batch)])) : undefined),
    infos: (batch) => inputs.map((i) => ({ name: i.name, type: i.type, dims: dims(i, batch) })),
    cache: new Map(), // calibration feeds, held-out feeds and reference outputs per batch
    calibCaches: new Map(), // calibration cache file per batch and optimize options
  };
}

function calibCacheFile(m, batch, optimize) {
  const key = `${batch}:${JSON.stringify(optimize)}`;
  if (!m.calibCaches.has(key))
    m.calibCaches.set(key, path.join(os.tmpdir(), `kiln-bench-${process.pid}-${m.model}-b${batch}-${m.calibCaches.size}.calib.json`));
  return m.calibCaches.get(key);
}

// The held-out feeds at `batch` and the fp32 reference's outputs on them: the unoptimized fp32 plan on
// the CPU, once per model and batch. { error } when the reference cannot be built or run.
async function reference(m, batch) {
  const key = `ref:${batch}`;
  if (!m.cache.has(key)) {
    const K = holdoutFeeds(batch);
    const feeds = Array.from({ length: K }, (_, f) => makeFeed(m.infos(batch), batch, Array.from({ length: batch }, (_, b) => f * batch + b), HOLDOUT_STREAM, m.vocab));
    let entry;
    try {
      const t0 = Date.now();
      // The unoptimized fp32 graph on the CPU's faster tactics (untimed; as the accuracy guard runs its
      // reference): the reference kernels would take minutes on ResNet-50 at batch 32.
      const g = importModel(fs.readFileSync(m.file), { baseDir: path.dirname(path.resolve(m.file)) });
      bindShapes(g, m.shapes(batch) ?? {});
      inferGraph(g);
      const plan = encodePlan(lowerGraph(g));
      const outputs = feeds.map((f) => {
        const outs = native().runPlan(plan, g.inputs.map((n) => f[n].data), FAST_CPU);
        return Object.fromEntries(g.outputs.map((n, k) => {
          const v = g.values.get(n);
          const type = dtypeName(v.dtype);
          return [n, { type, dims: v.shape, data: type === 'float32' ? new Float32Array(outs[k]) : outs[k] }];
        }));
      });
      entry = { feeds, outputs };
      console.log(`  ${m.model} b${batch}: fp32 CPU reference on ${K} held-out feed(s) in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    } catch (e) {
      entry = { error: e.message };
      console.log(`  ${m.model} b${batch}: no fp32 CPU reference (${e.message}); rows without accuracy fields`);
    }
    m.cache.set(key, entry);
  }
  return m.cache.get(key);
}

const asFloat = (t) => (t.type === 'float16' ? Float32Array.from(t.data, halfToFloat) : t.data);

// Accuracy on the held-out feeds against the fp32 reference, per sample (an output whose dim 0 is the
// batch is split into samples; one without is taken whole) and per float output:
//   cosine       the worst (minimum) cosine similarity over outputs and samples; cosine_mean its mean
//   rel_l2       the worst (maximum) relative L2 error ‖got − ref‖ / ‖ref‖; rel_l2_mean its mean
//   top1_agree   first output with last dim `classes`: the fraction of rows (samples; positions for a
//                [B,S,C] output) whose argmax matches the reference's
//   nonfinite    count of NaN/Inf values in the outputs (only when any)
async function accuracy(engine, ref, batch) {
  let cosMin = 1, relMax = 0, cosSum = 0, relSum = 0, count = 0, nonfinite = 0, agree = 0, rows = 0, right = 0, rightRef = 0;
  const labels = loadData()?.labels;
  const first = engine.outputs[0];
  const top1 = first && first.dims[first.dims.length - 1] === classes ? first.name : undefined;
  for (const [f, feed] of ref.feeds.entries()) {
    const got = await engine.infer(feed);
    for (const [name, r] of Object.entries(ref.outputs[f])) {
      if (!(r.data instanceof Float32Array) || !got[name]) continue;
      const a = asFloat(got[name]);
      const b = r.data;
      const split = r.dims[0] === batch && batch > 1 ? batch : 1;
      const per = b.length / split;
      for (let s = 0; s < split; s++) {
        let d2 = 0, r2 = 0, a2 = 0, ab = 0;
        for (let i = s * per; i < (s + 1) * per; i++) {
          const x = Number(a[i]);
          if (!Number.isFinite(x)) nonfinite++;
          d2 += (x - b[i]) ** 2;
          r2 += b[i] * b[i];
          a2 += x * x;
          ab += x * b[i];
        }
        // (no epsilon: outputs of 1e-8 are real outputs, and a clamp made their cosine meaningless)
        const rel = r2 > 0 ? Math.sqrt(d2 / r2) : d2 > 0 ? Infinity : 0;
        const den = Math.sqrt(a2) * Math.sqrt(r2);
        const cos = den > 0 ? ab / den : a2 === r2 ? 1 : 0;
        relMax = Number.isNaN(rel) || rel > relMax ? rel : relMax;
        cosMin = Number.isNaN(cos) || cos < cosMin ? cos : cosMin;
        relSum += rel;
        cosSum += cos;
        count++;
      }
      if (name === top1) {
        const C = classes;
        for (let row = 0; row < b.length / C; row++) {
          let ia = 0, ib = 0;
          for (let c = 1; c < C; c++) {
            if (a[row * C + c] > a[row * C + ia]) ia = c;
            if (b[row * C + c] > b[row * C + ib]) ib = c;
          }
          agree += ia === ib ? 1 : 0;
          if (labels) {
            const label = Number(labels[(f * batch + row) % labels.length]);
            right += ia === label ? 1 : 0;
            rightRef += ib === label ? 1 : 0;
          }
          rows++;
        }
      }
    }
  }
  if (!count) return {};
  const p = (x, d) => (Number.isFinite(x) ? Number(x.toPrecision(d)) : String(x));
  return {
    rel_l2: p(relMax, 3),
    rel_l2_mean: p(relSum / count, 3),
    cosine: p(cosMin, 6),
    cosine_mean: p(cosSum / count, 6),
    ...(top1 !== undefined ? { top1_agree: Number((agree / rows).toFixed(4)) } : {}),
    ...(top1 !== undefined && labels ? { top1_label: Number((right / rows).toFixed(4)), top1_label_ref: Number((rightRef / rows).toFixed(4)) } : {}),
    holdout_samples: ref.feeds.length * batch,
    ...(nonfinite ? { nonfinite } : {}),
  };
}

// What an int8/fp16/best engine's report says about its precisions: layers per precision, the accuracy
// guards' moves (int8 → float, fp16 → fp32), 'best''s choice per ONNX node group.
function precisionFields(engine) {
  const r = engine.report;
  const layers_by_precision = {};
  for (const l of r.layers) layers_by_precision[l.precision] = (layers_by_precision[l.precision] ?? 0) + 1;
  const out = { layers_by_precision };
  const q = r.layers.filter((l) => /^(QuantizeLinear|DequantizeLinear)$/.test(l.kind)).length;
  if (q) out.quantize_layers = q;
  const g = r.precisionGuard;
  if (g) {
    out.guard_checked = g.checked;
    out.guard_moved = g.pinned.length;
    const int8 = g.pinned.filter((p) => /\bin int8\b/.test(p.reason)).length;
    if (int8) out.guard_moved_int8 = int8;
    if (g.pinned.length - int8) out.guard_moved_fp16 = g.pinned.length - int8;
  }
  if (r.warnings.some((w) => /still lose accuracy/.test(w))) out.guard_unclean = true;
  if (r.warnings.some((w) => /precision guard: .*could not run/.test(w))) out.guard_error = true;
  if (r.best) {
    out.best_candidates = r.best.candidates;
    out.best_groups = {};
    for (const c of r.best.groups) out.best_groups[c.chosen] = (out.best_groups[c.chosen] ?? 0) + 1;
  }
  return out;
}

async function one(m, device, precision, batch, optimize, runner) {
  const { file, model } = m;
  if (m.fixedBatch !== undefined && m.fixedBatch !== batch) {
    console.log(`  ${model}: exported with a fixed batch of ${m.fixedBatch}; no b${batch} row`);
    return;
  }
  const shapes = m.shapes(batch);
  const quant = precision === 'int8' || precision === 'best';
  // int8/best: the calibration feeds and this model's calibration cache for the batch (written by the
  // first build that calibrates, read by the later ones and by the cached rebuild)
  const calibrationCache = quant ? calibCacheFile(m, batch, optimize) : undefined;
  const quantOpts = quant ? { calibration: calibFeeds(m, batch), calibrationCache, ...(calibrator ? { calibrator } : {}), ...(guardOff ? { guard: false } : {}) } : {};
  const calib_from_cache = quant ? fs.existsSync(calibrationCache) : undefined;
  // Cold build (a fresh timing cache file), then at batch 1 a rebuild that reads the cache.
  const timingCache = path.join(os.tmpdir(), `kiln-bench-${process.pid}-${model}-${device}-${precision}-${batch}-${runner}.cache`);
  fs.rmSync(timingCache, { force: true });
  // Device memory the engine holds (cudaMemGetInfo before the build and after the runs; the build's
  // timing buffers are freed by then): peak_mem_mb.
  const freeBefore = device === 'cuda' ? native().deviceMemory('cuda').free : 0;
  // Where the cold build's time goes (seconds, from onProgress; 'best': of its last build, the
  // candidate builds before it in `candidates`): passes (int8: calibration and the int8 guard
  // included), lower (fp16: the fp16 guard included), tactics.
  const seen = {};
  const onProgress = (e) => {
    const t = Date.now();
    seen[e.phase] ??= { first: t };
    seen[e.phase].last = t;
  };
  const t0 = Date.now();
  const engine = await compile(file, { device, precision, optimize, shapes, timingCache, ...quantOpts, onProgress });
  const t1 = Date.now();
  const build_s = (t1 - t0) / 1000;
  const span = (a, b) => (seen[a] && seen[b] ? Number(((seen[b].last - seen[a].first) / 1000).toFixed(2)) : undefined);
  const build_phases_s = {
    ...(precision === 'best' && seen.import ? { candidates: Number(((seen.import.first - t0) / 1000).toFixed(2)) } : {}),
    passes: span('passes', 'passes'),
    lower: span('lower', 'lower'),
    tactics: seen.lower ? Number(((t1 - seen.lower.last) / 1000).toFixed(2)) : undefined,
  };
  let build_cached_s;
  if (device === mainDevice && batch === 1) {
    const t2 = Date.now();
    (await compile(file, { device, precision, optimize, shapes, timingCache, ...quantOpts })).dispose();
    build_cached_s = (Date.now() - t2) / 1000;
  }
  fs.rmSync(timingCache, { force: true });
  // Candidates that failed while being timed (left out of the choice): how many, and why.
  const failed = engine.report.layers.flatMap((l) => l.candidates.filter((c) => c.error).map((c) => `${l.name} ${c.tactic}: ${c.error}`));
  if (failed.length) console.log(`  ${model} ${precision} b${batch}: ${failed.length} candidates failed, e.g.\n    ${failed.slice(0, 4).join('\n    ')}`);
  if (quant) {
    // the build's notes on calibration, the guards and 'best' (the per-layer pin lines counted only)
    const pins = engine.report.warnings.filter((w) => /^layer '.*' pinned to fp32/.test(w)).length;
    for (const w of engine.report.warnings.filter((w) => !/^layer '.*' pinned to fp32/.test(w))) console.log(`  ${model} ${precision} b${batch}: ${w}`);
    if (pins) console.log(`  ${model} ${precision} b${batch}: ${pins} layer(s) pinned to fp32 by the accuracy guards`);
  }
  const feeds = feedsFor(engine, 1, m.vocab);
  const n = device === 'cpu' ? Math.max(5, Math.floor(iters / 10)) : iters;
  const gpu = await engine.timeRuns(feeds, n);
  const e2e = [];
  for (let k = 0; k < Math.min(n, 50); k++) {
    const a = process.hrtime.bigint();
    await engine.infer(feeds);
    e2e.push(Number(process.hrtime.bigint() - a) / 1e6);
  }
  if (process.env.KILN_BENCH_PROFILE && (batch === 1 || process.env.KILN_BENCH_PROFILE === 'all') && (device === 'cuda' || precision === 'fp32')) {
    // The slowest layers of one run (each timed alone), for the log (KILN_BENCH_PROFILE=all: every batch;
    // KILN_BENCH_PROFILE_TOP: how many, 12 unless set).
    const prof = await engine.profile(feeds);
    const top = prof.layers.map((l, i) => ({ ...l, tactic: engine.report.layers[i].tactic })).sort((a, b) => b.ms - a.ms).slice(0, process.env.KILN_BENCH_PROFILE_TOP ? Number(process.env.KILN_BENCH_PROFILE_TOP) : 12);
    const total = prof.layers.reduce((a, l) => a + l.ms, 0);
    console.log(`  profile ${model} ${device} ${precision} b${batch} ${runner}: ${prof.layers.length} layers, sum ${total.toFixed(3)} ms`);
    for (const l of top) console.log(`    ${l.ms.toFixed(4)} ms  ${l.kind.padEnd(12)} ${l.tactic.padEnd(28)} ${l.name}`);
    const byKind = {};
    for (const [i, l] of prof.layers.entries()) {
      const k = `${l.kind}:${engine.report.layers[i].tactic}`;
      byKind[k] = (byKind[k] || 0) + l.ms;
    }
    console.log('    by kind: ' + Object.entries(byKind).sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${v.toFixed(3)}`).join(', '));
  }
  const peak_mem_mb = device === 'cuda' ? Math.round((freeBefore - native().deviceMemory('cuda').free) / 2 ** 20) : undefined;
  // Accuracy against the fp32 CPU reference (the unoptimized CPU engine) on held-out feeds.
  const ref = await reference(m, batch);
  const acc = ref.error ? {} : await accuracy(engine, ref, batch);
  const mem = engine.report.memory;
  const row = {
    date: new Date().toISOString(),
    gpu: device === 'cuda' ? engine.report.device : `${os.cpus()[0].model} x${os.cpus().length}`,
    device,
    model,
    runner,
    precision,
    batch,
    p50_ms: pct(gpu, 50),
    p90_ms: pct(gpu, 90),
    p99_ms: pct(gpu, 99),
    e2e_p50_ms: pct(e2e, 50),
    throughput: Math.round((batch * 1000) / pct(gpu, 50)),
    build_s,
    build_cached_s,
    build_phases_s,
    ...(quant ? { calib_samples: calibN, calib_feeds: calibFeeds(m, batch).length, calib_from_cache, ...(calibrator ? { calibrator } : {}), ...(guardOff ? { guard_off: true } : {}) } : {}),
    peak_mem_mb,
    engine_mem_mb: Math.round(((mem.arenaBytes + mem.workspaceBytes + mem.constantBytes) / 2 ** 20) * 10) / 10,
    layers: engine.report.layers.length,
    onnx_nodes: engine.report.onnxNodes,
    // what each graph pass changed (issue 5: per-model pass counts beside the layer count)
    passes: Object.fromEntries(engine.report.passes.map((p) => [p.name, p.changed])),
    ...acc,
    ...precisionFields(engine),
    failed_candidates: failed.length,
    cpu_fallback_layers: engine.report.layers.filter((l) => l.backend === 'cpu' && device === 'cuda').length,
  };
  engine.dispose();
  record(row);
  return row;
}

async function main() {
  console.log(JSON.stringify(backendInfo()));
  for (const file of files) {
    let m;
    try {
      m = modelContext(file);
    } catch (e) {
      console.log(`${path.basename(file)}: FAILED ${e.message}`);
      continue;
    }
    try {
      for (const precision of precisions)
        for (const batch of batches) {
          if (mainDevice === 'cpu' && precision === 'fp16') {
            console.log(`${path.basename(file)} cpu fp16 b${batch}: skipped (the CPU backend has no fp16)`);
            continue;
          }
          try {
            await one(m, mainDevice, precision, batch, true, 'kiln');
          } catch (e) {
            console.log(`${path.basename(file)} ${mainDevice} ${precision} b${batch}: FAILED ${e.message}`);
          }
          for (const pass of batch === 1 ? requested : []) {
            try {
              await one(m, mainDevice, precision, batch, { [pass]: true }, `kiln+${pass}`);
            } catch (e) {
              console.log(`${path.basename(file)} ${mainDevice} ${precision} b${batch} +${pass}: FAILED ${e.message}`);
            }
          }
        }
      const b1 = m.fixedBatch ?? 1;
      const rest = [
        ...unoptimized.map((p) => ['cuda', p, false, 'kiln-unoptimized']),
        ['cpu', 'fp32', true, 'kiln'],
        ['cpu', 'fp32', false, 'kiln-unoptimized'],
      ]
        .filter(([device]) => devices.includes(device))
        // without cuda the optimized CPU fp32 row at batch 1 is a precision row already
        .filter(([device, p, optimize]) => !(mainDevice === 'cpu' && device === 'cpu' && optimize === true && precisions.includes(p) && batches.includes(b1)));
      for (const [device, precision, optimize, runner] of rest) {
        try {
          await one(m, device, precision, b1, optimize, runner);
        } catch (e) {
          console.log(`${path.basename(file)} ${device} ${precision} ${runner}: FAILED ${e.message}`);
        }
      }
    } finally {
      for (const f of m.calibCaches.values()) fs.rmSync(f, { force: true });
      m.cache.clear();
    }
  }
}
main().catch((e) => {
  console.error(e);
  process.exit(1);
});
