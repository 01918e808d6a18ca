#!/usr/bin/env node
// kiln on the GPU, for scripts/gpu.sh's `bench` stage (plain JS over dist/, since the GPU machine has no
// TypeScript). For each model file and each precision (fp32, fp16) and batch (1, 32):
//   build_s      compile() wall time (cold: every layer's candidates timed)
//   p50/p90/p99  GPU-only latency: Engine.timeRuns (the layers alone, inputs already on the device,
//                CUDA events) — timed as torch is timed in scripts/gpu/bench_torch.py
//   e2e_p50_ms   infer() from JS: copies in and out and the promise round trip included
// and, for the optimizer (fp32, batch 1): the same model built with optimize: false (runner
// "kiln-unoptimized"), on the GPU and on the CPU backend. One JSON object per measurement is appended
// to the results file (bench/README.md). Usage: node bench/gpu.js --results FILE [--iters N] model.onnx...
'use strict';
const os = require('os');
const path = require('path');
const { compile, Tensor, backendInfo } = require('../dist');
const { native } = require('../dist/native/binding');

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
// --devices cuda: leave out the CPU rows; --unoptimized fp32,fp16: precisions of the optimizer-off rows
const devices = opt('--devices', 'cuda,cpu').split(',');
const unoptimized = opt('--unoptimized', 'fp32').split(',').filter(Boolean);
// --requested attention-recognition: also, at batch 1, builds with these passes asked for by name
// (runner "kiln+<pass>"), for passes a target leaves off unless requested
const requested = opt('--requested', '').split(',').filter(Boolean);
const files = args;

function pct(xs, p) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.round((p / 100) * (s.length - 1)))];
}

function feedsFor(engine, seed) {
  let s = seed;
  const rand = () => ((s = (s * 1664525 + 1013904223) >>> 0) / 2 ** 32);
  const feeds = {};
  for (const i of engine.inputs) {
    const n = i.dims.reduce((a, b) => a * b, 1);
    if (i.type === 'int64') {
      const mask = /mask/.test(i.name);
      feeds[i.name] = new Tensor('int64', BigInt64Array.from({ length: n }, (_, k) => (mask ? (k % i.dims[i.dims.length - 1] < i.dims[i.dims.length - 1] - 8 ? 1n : 0n) : BigInt(Math.floor(rand() * 30000)))), i.dims);
    } else feeds[i.name] = new Tensor('float32', Float32Array.from({ length: n }, () => rand() * 2 - 1), i.dims);
  }
  return feeds;
}

function record(row) {
  require('fs').appendFileSync(results, JSON.stringify(row) + '\n');
  const r = row;
  console.log(`${r.model.padEnd(14)} ${r.runner.padEnd(18)} ${r.device.padEnd(4)} ${r.precision} b${String(r.batch).padEnd(3)} p50 ${r.p50_ms.toFixed(3).padStart(9)} ms  e2e ${r.e2e_p50_ms === undefined ? '-' : r.e2e_p50_ms.toFixed(3)}  build ${r.build_s.toFixed(1)} s${r.rel_l2 === undefined ? '' : `  relL2 ${r.rel_l2} cos ${r.cosine}`}`);
}


const refCache = new Map();
async function referenceOutputs(file, shapes, feeds, batch) {
  const key = `${file}:${batch}`;
  if (!refCache.has(key)) {
    const ref = await compile(file, { device: 'cpu', optimize: false, timing: false, shapes });
    refCache.set(key, await ref.infer(feeds));
    ref.dispose();
  }
  return refCache.get(key);
}

// Worst output's relative L2 error and cosine similarity against the reference.
function accuracy(got, ref) {
  let rel_l2 = 0;
  let cosine = 1;
  for (const [name, r] of Object.entries(ref)) {
    const a = got[name].data;
    const b = r.data;
    if (!(b instanceof Float32Array)) continue;
    let d2 = 0, r2 = 0, a2 = 0, ab = 0;
    for (let i = 0; i < b.length; i++) {
      const x = Number(a[i]);
      d2 += (x - b[i]) ** 2;
      r2 += b[i] * b[i];
      a2 += x * x;
      ab += x * b[i];
    }
    rel_l2 = Math.max(rel_l2, Math.sqrt(d2 / Math.max(r2, 1e-30)));
    cosine = Math.min(cosine, ab / Math.sqrt(Math.max(a2 * r2, 1e-30)));
  }
  return { rel_l2: Number(rel_l2.toPrecision(3)), cosine: Number(cosine.toPrecision(6)) };
}

async function one(file, device, precision, batch, optimize, runner) {
  const model = path.basename(file, '.onnx');
  // Symbolic batch dims take `batch`; the sequence of BERT-style inputs is fixed by the export.
  const probe = await compile(file, { device: 'cpu', timing: false, optimize: false }).catch((e) => e);
  let shapes;
  const m = /symbolic dim '([^']+)' \(dim (\d+) of \[([^\]]*)\]\)/.exec(String(probe && probe.message));
  if (m || probe instanceof Error) {
    const { importModel } = require('../dist/onnx/import');
    const g = importModel(require('fs').readFileSync(file));
    shapes = Object.fromEntries(g.inputs.map((n) => [n, g.values.get(n).shape.map((d) => (typeof d === 'number' ? d : batch))]));
  } else probe.dispose();
  // Cold build (a fresh timing cache file), then at batch 1 a rebuild that reads the cache.
  const timingCache = path.join(os.tmpdir(), `kiln-bench-${process.pid}-${model}-${device}-${precision}-${batch}-${runner}.cache`);
  fs.rmSync(timingCache, { force: true });
  // Device memory the engine holds (cudaMemGetInfo before the build and after the runs; the build's
  // timing buffers are freed by then): peak_mem_mb.
  const freeBefore = device === 'cuda' ? native().deviceMemory('cuda').free : 0;
  const t0 = Date.now();
  const engine = await compile(file, { device, precision, optimize, shapes, timingCache });
  const build_s = (Date.now() - t0) / 1000;
  let build_cached_s;
  if (device === 'cuda' && batch === 1) {
    const t1 = Date.now();
    (await compile(file, { device, precision, optimize, shapes, timingCache })).dispose();
    build_cached_s = (Date.now() - t1) / 1000;
  }
  fs.rmSync(timingCache, { force: true });
  // Candidates that failed while being timed (left out of the choice): how many, and why.
  const failed = engine.report.layers.flatMap((l) => l.candidates.filter((c) => c.error).map((c) => `${l.name} ${c.tactic}: ${c.error}`));
  if (failed.length) console.log(`  ${model} ${precision} b${batch}: ${failed.length} candidates failed, e.g.\n    ${failed.slice(0, 4).join('\n    ')}`);
  const feeds = feedsFor(engine, 1);
  const n = device === 'cpu' ? Math.max(5, Math.floor(iters / 10)) : iters;
  const gpu = await engine.timeRuns(feeds, n);
  const e2e = [];
  for (let k = 0; k < Math.min(n, 50); k++) {
    const a = process.hrtime.bigint();
    await engine.infer(feeds);
    e2e.push(Number(process.hrtime.bigint() - a) / 1e6);
  }
  if (process.env.KILN_BENCH_PROFILE && batch === 1 && (device === 'cuda' || precision === 'fp32')) {
    // The slowest layers of one run (each timed alone), for the log.
    const prof = await engine.profile(feeds);
    const top = prof.layers.map((l, i) => ({ ...l, tactic: engine.report.layers[i].tactic })).sort((a, b) => b.ms - a.ms).slice(0, 12);
    const total = prof.layers.reduce((a, l) => a + l.ms, 0);
    console.log(`  profile ${model} ${device} ${precision} ${runner}: ${prof.layers.length} layers, sum ${total.toFixed(3)} ms`);
    for (const l of top) console.log(`    ${l.ms.toFixed(4)} ms  ${l.kind.padEnd(12)} ${l.tactic.padEnd(28)} ${l.name}`);
    const byKind = {};
    for (const [i, l] of prof.layers.entries()) {
      const k = `${l.kind}:${engine.report.layers[i].tactic}`;
      byKind[k] = (byKind[k] || 0) + l.ms;
    }
    console.log('    by kind: ' + Object.entries(byKind).sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${v.toFixed(3)}`).join(', '));
  }
  const peak_mem_mb = device === 'cuda' ? Math.round((freeBefore - native().deviceMemory('cuda').free) / 2 ** 20) : undefined;
  // Accuracy against the fp32 CPU reference (the unoptimized CPU engine) on the same feeds.
  const acc = device === 'cuda' ? accuracy(await engine.infer(feeds), await referenceOutputs(file, shapes, feeds, batch)) : {};
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
    peak_mem_mb,
    engine_mem_mb: Math.round(((mem.arenaBytes + mem.workspaceBytes + mem.constantBytes) / 2 ** 20) * 10) / 10,
    layers: engine.report.layers.length,
    onnx_nodes: engine.report.onnxNodes,
    ...acc,
    cpu_fallback_layers: engine.report.layers.filter((l) => l.backend === 'cpu' && device === 'cuda').length,
  };
  engine.dispose();
  record(row);
  return row;
}

async function main() {
  console.log(JSON.stringify(backendInfo()));
  for (const file of files) {
    for (const precision of precisions)
      for (const batch of batches) {
        try {
          await one(file, 'cuda', precision, batch, true, 'kiln');
        } catch (e) {
          console.log(`${path.basename(file)} cuda ${precision} b${batch}: FAILED ${e.message}`);
        }
        for (const pass of batch === 1 ? requested : []) {
          try {
            await one(file, 'cuda', precision, batch, { [pass]: true }, `kiln+${pass}`);
          } catch (e) {
            console.log(`${path.basename(file)} cuda ${precision} b${batch} +${pass}: FAILED ${e.message}`);
          }
        }
      }
    const rest = [
      ...unoptimized.map((p) => ['cuda', p, false, 'kiln-unoptimized']),
      ['cpu', 'fp32', true, 'kiln'],
      ['cpu', 'fp32', false, 'kiln-unoptimized'],
    ].filter(([device]) => devices.includes(device));
    for (const [device, precision, optimize, runner] of rest) {
      try {
        await one(file, device, precision, 1, optimize, runner);
      } catch (e) {
        console.log(`${path.basename(file)} ${device} ${precision} ${runner}: FAILED ${e.message}`);
      }
    }
  }
}
main().catch((e) => {
  console.error(e);
  process.exit(1);
});
