/**
 * kiln vs onnxruntime-node on the CPU, same run, same inputs (bench/README.md).
 *
 *   npm run bench -- [--iterations N] [--warmup N] [--batch N] [model.onnx ...]
 *
 * Models: the arguments, or the demo CNN plus every models/*.onnx and models/<dir>/*.onnx. Each
 * (model, runner) pair runs in its own child process, so build time and peak RSS are that runner's
 * alone; both runners get the same seeded random inputs. Symbolic input dims are set to --batch (dim 0)
 * or 1. Appends one JSON line per pair to bench/results/cpu.jsonl and prints a table with the
 * kiln / onnxruntime latency ratio.
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { parseArgs } from 'util';
import { compile } from '../src';
import { randomInputs } from '../src/cli/inputs';
import { LatencySummary, measure, peakRssMb } from '../src/cli/measure';
import { dtypeName } from '../src/dtype';
import type { TensorInfo } from '../src/engine';
import { importModel } from '../src/onnx/import';

const ROOT = path.join(__dirname, '..');
const RESULTS = path.join(__dirname, 'results', 'cpu.jsonl');
const RUNNERS = ['kiln', 'onnxruntime-node'] as const;
type Runner = (typeof RUNNERS)[number];

interface Result {
  date: string;
  machine: string;
  cpu: string;
  model: string;
  runner: Runner;
  precision: 'fp32';
  batch: number;
  p50_ms: number;
  p90_ms: number;
  p99_ms: number;
  throughput: number;
  build_s: number;
  peak_mem_mb: number;
}

const { values: flags, positionals } = parseArgs({
  args: process.argv.slice(2),
  options: {
    iterations: { type: 'string', default: '100' },
    warmup: { type: 'string', default: '10' },
    batch: { type: 'string', default: '1' },
    child: { type: 'string' },
    seed: { type: 'string', default: '1' },
  },
  allowPositionals: true,
});
const iterations = Number(flags.iterations);
const warmup = Number(flags.warmup);
const batch = Number(flags.batch);
const seed = Number(flags.seed);

/** The model's inputs with symbolic dims bound: dim 0 to the batch, others to 1. */
function inputInfos(file: string): TensorInfo[] {
  const g = importModel(fs.readFileSync(file), { baseDir: path.dirname(file) });
  return g.inputs.map((name) => {
    const v = g.values.get(name)!;
    const dims = (v.shape ?? []).map((d, i) => (typeof d === 'number' ? d : i === 0 ? batch : 1));
    return { name, type: dtypeName(v.dtype), dims };
  });
}

async function runKiln(file: string, infos: TensorInfo[]): Promise<[number, LatencySummary]> {
  const t0 = process.hrtime.bigint();
  const engine = await compile(file, { shapes: Object.fromEntries(infos.map((i) => [i.name, i.dims])) });
  const build = Number(process.hrtime.bigint() - t0) / 1e9;
  const feeds = randomInputs(engine.inputs, seed);
  const s = await measure(() => engine.infer(feeds), { iterations, warmup });
  engine.dispose();
  return [build, s];
}

async function runOrt(file: string, infos: TensorInfo[]): Promise<[number, LatencySummary]> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const ort = require('onnxruntime-node') as typeof import('onnxruntime-node');
  const t0 = process.hrtime.bigint();
  const session = await ort.InferenceSession.create(file, { executionProviders: ['cpu'], graphOptimizationLevel: 'all' });
  const build = Number(process.hrtime.bigint() - t0) / 1e9;
  const feeds = Object.fromEntries(
    Object.entries(randomInputs(infos, seed)).map(([n, t]) => [n, new ort.Tensor(t.type as 'float32', t.data as Float32Array, t.dims)]),
  );
  const s = await measure(() => session.run(feeds), { iterations, warmup });
  await session.release();
  return [build, s];
}

/** Child: one runner on one model; prints one JSON result line. */
async function child(runner: Runner, file: string): Promise<void> {
  const infos = inputInfos(file);
  const [build, s] = await (runner === 'kiln' ? runKiln : runOrt)(file, infos);
  const r: Result = {
    date: new Date().toISOString(),
    machine: `${os.hostname()} ${os.platform()}-${os.arch()}`,
    cpu: `${os.cpus()[0]?.model ?? 'unknown'} x${os.cpus().length}`,
    model: path.relative(ROOT, file),
    runner,
    precision: 'fp32',
    batch,
    p50_ms: s.p50_ms,
    p90_ms: s.p90_ms,
    p99_ms: s.p99_ms,
    throughput: s.throughput * (infos[0]?.dims[0] ?? 1),
    build_s: build,
    peak_mem_mb: peakRssMb(),
  };
  process.stdout.write(JSON.stringify(r) + '\n');
}

function defaultModels(): string[] {
  const dir = path.join(ROOT, 'models');
  const found = [path.join(dir, 'demo', 'model.onnx')];
  if (!fs.existsSync(dir)) return found;
  for (const e of fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
    const p = path.join(dir, e.name);
    if (e.isFile() && e.name.endsWith('.onnx')) found.push(p);
    else if (e.isDirectory() && e.name !== 'demo')
      for (const f of fs.readdirSync(p).sort()) if (f.endsWith('.onnx')) found.push(path.join(p, f));
  }
  return found.filter((f) => fs.existsSync(f));
}

const f2 = (x: number) => (Number.isFinite(x) ? (x < 1 ? x.toFixed(3) : x.toFixed(2)) : '-');

async function parent(): Promise<void> {
  const models = positionals.length ? positionals.map((p) => path.resolve(p)) : defaultModels();
  const rows: string[][] = [['model', 'runner', 'p50 ms', 'p90 ms', 'p99 ms', 'inf/s', 'build s', 'peak MiB', 'kiln/ort p50']];
  const failures: string[] = [];
  fs.mkdirSync(path.dirname(RESULTS), { recursive: true });
  for (const model of models) {
    const got: Partial<Record<Runner, Result>> = {};
    for (const runner of RUNNERS) {
      process.stderr.write(`bench: ${path.relative(ROOT, model)} on ${runner} (${warmup} warm-up, ${iterations} runs)\n`);
      const r = spawnSync(
        process.execPath,
        [path.join(__dirname, 'run.js'), __filename, '--child', runner, '--iterations', String(iterations), '--warmup', String(warmup), '--batch', String(batch), '--seed', String(seed), model],
        { encoding: 'utf8', maxBuffer: 1 << 24 },
      );
      const line = r.stdout.trim().split('\n').pop() ?? '';
      if (r.status !== 0 || !line.startsWith('{')) {
        const why = r.stderr.trim().split('\n').find((l) => l.startsWith('kiln:') || l.includes('Error')) ?? `exit ${r.status}`;
        rows.push([path.relative(ROOT, model), runner, 'failed']);
        failures.push(`${path.relative(ROOT, model)} on ${runner}: ${why}`);
        continue;
      }
      const res = JSON.parse(line) as Result;
      got[runner] = res;
      fs.appendFileSync(RESULTS, line + '\n');
    }
    for (const runner of RUNNERS) {
      const res = got[runner];
      if (!res) continue;
      const ratio = runner === 'kiln' && got['onnxruntime-node'] ? (res.p50_ms / got['onnxruntime-node'].p50_ms).toFixed(2) + 'x' : '';
      rows.push([res.model, runner, f2(res.p50_ms), f2(res.p90_ms), f2(res.p99_ms), res.throughput.toFixed(1), f2(res.build_s), res.peak_mem_mb.toFixed(0), ratio]);
    }
  }
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length)));
  for (const r of rows) process.stdout.write(r.map((cell, c) => cell.padEnd(widths[c])).join('  ').trimEnd() + '\n');
  for (const f of failures) process.stdout.write(`failed: ${f}\n`);
  process.stdout.write(`\nappended to ${path.relative(process.cwd(), RESULTS)}\n`);
}

(flags.child ? child(flags.child as Runner, positionals[0]) : parent()).catch((e) => {
  process.stderr.write(`${e instanceof Error && e.name === 'KilnError' ? 'kiln: ' + e.message : (e as Error).stack}\n`);
  process.exitCode = 1;
});
