#!/usr/bin/env node
/**
 * `kiln`: build, run, inspect and benchmark engines from the command line (trtexec's jobs).
 *
 *   kiln build model.onnx -o model.kiln [--shapes input=1x3x224x224] [--precision fp32] [--device auto]
 *   kiln run model.kiln|model.onnx [--input name=file.npy|file.bin] [--json]
 *   kiln inspect model.kiln|model.onnx [--json]
 *   kiln bench model.kiln|model.onnx [--iterations N] [--warmup N] [--concurrency N] [--json]
 *   kiln compare model.onnx [--engine model.kiln] [--input name=file.npy] [--tolerance x] [--json]
 *   kiln doctor [--json]
 *
 * Errors print `kiln: <message>` and exit 1; a cancelled build (Ctrl-C) exits 130; a compare whose
 * outputs are past the tolerance exits 2.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { parseArgs } from 'util';
import { backendInfo, compile, loadEngine } from '../index';
import type { CompileOptions, DeviceKind, Precision } from '../options';
import type { Engine } from '../engine';
import { KilnError } from '../errors';
import { Tensor } from '../tensor';
import { importModel } from '../onnx/import';
import { isEngineBytes, readEngineFile } from './engine-file';
import { randomInputs, readInputFile, tensorStats } from './inputs';
import { measure, peakRssMb } from './measure';
import { ProgressBar, formatSeconds } from './progress';

export interface Io {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  /** Aborts a build in progress (the bin wires Ctrl-C to it). */
  signal?: AbortSignal;
}

/** A mistake in the command line: printed with a pointer to the usage. */
class UsageError extends Error {}

/** Builds in progress: Ctrl-C cancels those through the signal, and ends any other command at once. */
let building = 0;

async function build(file: string, options: CompileOptions, bar: ProgressBar | undefined): Promise<Engine> {
  building++;
  try {
    return await compile(file, options);
  } finally {
    building--;
    bar?.finish();
  }
}

const USAGE = `kiln — compile ONNX models into tuned inference engines

Usage:
  kiln build <model.onnx> -o <model.kiln> [compile options]
  kiln run <model.kiln|model.onnx> [--input name=file.npy|file.bin ...] [--seed N] [--json]
  kiln inspect <model.kiln|model.onnx> [--json]
  kiln bench <model.kiln|model.onnx> [--iterations N] [--warmup N] [--concurrency N] [--profile] [--json]
  kiln compare <model.onnx> [--engine model.kiln] [--input name=file.npy ...] [--seed N] [--tolerance x] [--json]
      check an engine (built from the model, or --engine) against the fp32 CPU reference: per-output
      error, and the first diverging layer; exits 2 when an output is past the tolerance
  kiln doctor [--json]

Compile options (build, and run/inspect/bench of an .onnx model):
  --shapes name=1x3x224x224,...   values for symbolic input dims
  --precision fp32|fp16|int8|best  engine precision (default fp32)
  --device auto|cpu|cuda           where the engine runs (default auto)
  --no-timing                      keep each layer's preferred kernel, do not time candidates
  --no-optimize                    turn every graph pass off
  --timing-cache file.json         reuse (and record) tactic times across builds on this device
  --strict                         fp32 without reduced-precision math (no TF32 on GPUs)
  --calibration dir                int8/best: calibration feeds as .npy files — one per feed for a
                                   single-input model, or one folder per feed holding <input>.npy;
                                   fp16: the accuracy guard's sample inputs
  --calibration-cache file.json    int8/best: reuse (and record) the calibrated ranges
  --calibrator entropy|percentile|minmax   int8/best: how ranges are chosen (default entropy)
  --layer-precision name=fp32,...  pin layers or ONNX nodes to fp32, fp16 or int8
`;

const COMPILE_FLAGS = {
  shapes: { type: 'string' },
  precision: { type: 'string' },
  device: { type: 'string' },
  'no-timing': { type: 'boolean' },
  'no-optimize': { type: 'boolean' },
  'timing-cache': { type: 'string' },
  strict: { type: 'boolean' },
  calibration: { type: 'string' },
  'calibration-cache': { type: 'string' },
  calibrator: { type: 'string' },
  'layer-precision': { type: 'string' },
} as const;

const COMMANDS = {
  build: { output: { type: 'string', short: 'o' }, quiet: { type: 'boolean', short: 'q' }, ...COMPILE_FLAGS },
  run: { input: { type: 'string', multiple: true, short: 'i' }, seed: { type: 'string' }, json: { type: 'boolean' }, ...COMPILE_FLAGS },
  inspect: { json: { type: 'boolean' }, ...COMPILE_FLAGS },
  bench: {
    iterations: { type: 'string', short: 'n' },
    warmup: { type: 'string' },
    concurrency: { type: 'string', short: 'c' },
    seed: { type: 'string' },
    json: { type: 'boolean' },
    profile: { type: 'boolean' },
    ...COMPILE_FLAGS,
  },
  compare: {
    engine: { type: 'string', short: 'e' },
    input: { type: 'string', multiple: true, short: 'i' },
    seed: { type: 'string' },
    tolerance: { type: 'string', short: 't' },
    json: { type: 'boolean' },
    ...COMPILE_FLAGS,
  },
  doctor: { json: { type: 'boolean' } },
} as const;
type Command = keyof typeof COMMANDS;
type Values = Record<string, string | boolean | string[] | undefined>;

/** `name=1x3x224x224,other=1x128` → { name: [1,3,224,224], other: [1,128] } */
export function parseShapes(spec: string): Record<string, number[]> {
  const out: Record<string, number[]> = {};
  for (const part of spec.split(',').map((s) => s.trim()).filter((s) => s)) {
    const eq = part.lastIndexOf('=');
    const name = part.slice(0, eq);
    const dims = part.slice(eq + 1).split(/[x×]/);
    if (eq <= 0 || dims.some((d) => !/^\d+$/.test(d)))
      throw new UsageError(`--shapes: expected name=DxDx… (e.g. input=1x3x224x224), received '${part}'`);
    out[name] = dims.map(Number);
  }
  return out;
}

/** `conv1=fp32,fc=int8` → { conv1: 'fp32', fc: 'int8' } */
export function parsePins(spec: string): NonNullable<CompileOptions['layerPrecisions']> {
  const out: NonNullable<CompileOptions['layerPrecisions']> = {};
  for (const part of spec.split(',').map((s) => s.trim()).filter((s) => s)) {
    const eq = part.lastIndexOf('=');
    const p = part.slice(eq + 1);
    if (eq <= 0 || !['fp32', 'fp16', 'int8'].includes(p)) throw new UsageError(`--layer-precision: expected name=fp32|fp16|int8, received '${part}'`);
    out[part.slice(0, eq)] = p as 'fp32' | 'fp16' | 'int8';
  }
  return out;
}

/**
 * --calibration DIR: the feeds, as .npy files (self-describing: dtype and shape in the header) — each
 * file one feed of a single-input model, or each sub-folder one feed holding <input>.npy per input.
 */
export function readCalibration(dir: string, inputNames: string[]): Record<string, Tensor>[] {
  let entries: fs.Dirent[];
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name));
  } catch (e) {
    throw new KilnError('INVALID_OPTION', `--calibration: cannot read the folder '${dir}' (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  const read = (file: string, name: string) => readInputFile(file, { name, type: 'float32', dims: [] });
  const feeds: Record<string, Tensor>[] = [];
  if (inputNames.length === 1) {
    for (const e of entries) if (e.isFile() && e.name.endsWith('.npy')) feeds.push({ [inputNames[0]]: read(path.join(dir, e.name), inputNames[0]) });
  } else {
    for (const e of entries) {
      if (!e.isDirectory()) continue;
      const feed: Record<string, Tensor> = {};
      for (const n of inputNames) {
        const f = path.join(dir, e.name, `${n}.npy`);
        if (!fs.existsSync(f)) throw new KilnError('INVALID_OPTION', `--calibration: feed '${e.name}' has no '${n}.npy' (the model's inputs are ${inputNames.map((i) => `'${i}'`).join(', ')})`);
        feed[n] = read(f, n);
      }
      feeds.push(feed);
    }
  }
  if (!feeds.length)
    throw new KilnError('INVALID_OPTION', `--calibration: no feeds in '${dir}' (expected ${inputNames.length === 1 ? '.npy files' : `one folder per feed holding ${inputNames.map((i) => `${i}.npy`).join(', ')}`})`);
  return feeds;
}

function intFlag(v: Values, name: string, dflt: number, min: number): number {
  const s = v[name];
  if (s === undefined) return dflt;
  const n = Number(s);
  if (!Number.isInteger(n) || n < min) throw new UsageError(`--${name}: expected an integer >= ${min}, received '${s}'`);
  return n;
}

function compileOptions(v: Values, io: Io, progress: boolean): { options: CompileOptions; bar?: ProgressBar } {
  const options: CompileOptions = { signal: io.signal };
  if (v.shapes !== undefined) options.shapes = parseShapes(v.shapes as string);
  if (v.precision !== undefined) options.precision = v.precision as Precision;
  if (v.device !== undefined) options.device = v.device as DeviceKind;
  if (v['no-timing']) options.timing = false;
  if (v['no-optimize']) options.optimize = false;
  if (v['timing-cache'] !== undefined) options.timingCache = v['timing-cache'] as string;
  if (v.strict) options.strict = true;
  if (v['calibration-cache'] !== undefined) options.calibrationCache = v['calibration-cache'] as string;
  if (v.calibrator !== undefined) options.calibrator = v.calibrator as CompileOptions['calibrator'];
  if (v['layer-precision'] !== undefined) options.layerPrecisions = parsePins(v['layer-precision'] as string);
  if (!progress) return { options };
  const bar = new ProgressBar(io.stderr);
  options.onProgress = bar.update;
  return { options, bar };
}

function readFile(file: string): Uint8Array {
  try {
    return fs.readFileSync(file);
  } catch (e) {
    throw new KilnError('INVALID_MODEL', `cannot read '${file}' (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
}

interface Opened {
  engine: Engine;
  bytes: Uint8Array;
  /** Seconds the build took, when the model was an ONNX file. */
  buildSeconds?: number;
  loadSeconds?: number;
}

/** An engine file is loaded; anything else is compiled as ONNX. */
async function openModel(file: string, v: Values, io: Io): Promise<Opened> {
  const bytes = readFile(file);
  const t0 = process.hrtime.bigint();
  const secs = () => Number(process.hrtime.bigint() - t0) / 1e9;
  if (isEngineBytes(bytes)) {
    for (const f of Object.keys(COMPILE_FLAGS))
      if (v[f] !== undefined) throw new UsageError(`--${f} applies to ONNX models; '${file}' is an engine (rebuild it with kiln build)`);
    const engine = await loadEngine(bytes);
    return { engine, bytes, loadSeconds: secs() };
  }
  const { options, bar } = compileOptions(v, io, !!io.stderr.isTTY);
  if (v.calibration !== undefined) options.calibration = readCalibration(v.calibration as string, modelInputs(file));
  const engine = await build(file, options, bar);
  return { engine, bytes: engine.serialize(), buildSeconds: secs() };
}

/** The graph inputs of an ONNX file (initializers excluded), in order. */
function modelInputs(file: string): string[] {
  return importModel(readFile(file), { baseDir: path.dirname(file) }).inputs;
}

function model(positionals: string[], cmd: string): string {
  if (positionals.length !== 1) throw new UsageError(`${cmd}: expected one model file, received ${positionals.length ? positionals.join(' ') : 'none'}`);
  return positionals[0];
}

const mb = (n: number) => `${(n / (1 << 20)).toFixed(n < 1 << 20 ? 3 : 1)} MiB`;
const ms = (n: number | null) => (n === null || !Number.isFinite(n) ? '-' : n < 1 ? n.toFixed(3) : n.toFixed(2));

function table(rows: string[][]): string {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length)));
  return rows.map((r) => r.map((cell, c) => (c === r.length - 1 ? cell : cell.padEnd(widths[c]))).join('  ').trimEnd()).join('\n') + '\n';
}

async function cmdBuild(pos: string[], v: Values, io: Io): Promise<number> {
  const input = model(pos, 'build');
  const output = (v.output as string | undefined) ?? input.replace(/\.onnx$/i, '') + '.kiln';
  if (path.resolve(output) === path.resolve(input)) throw new UsageError(`build: the output '${output}' would overwrite the model`);
  const { options, bar } = compileOptions(v, io, !v.quiet);
  if (v.calibration !== undefined) options.calibration = readCalibration(v.calibration as string, modelInputs(input));
  const t0 = Date.now();
  const engine = await build(input, options, bar);
  try {
    const bytes = engine.serialize();
    const tmp = `${output}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, bytes);
    fs.renameSync(tmp, output);
    const r = engine.report;
    io.stdout.write(
      `kiln: wrote ${output} (${mb(bytes.length)}) in ${formatSeconds((Date.now() - t0) / 1000)}: ${r.layers.length} layers from ${r.onnxNodes} ONNX nodes, ` +
        `${r.backend} ${r.precision}, arena ${mb(r.memory.arenaBytes)}, weights ${mb(r.memory.constantBytes)}\n`,
    );
    for (const w of r.warnings) io.stderr.write(`kiln: warning: ${w}\n`);
  } finally {
    engine.dispose();
  }
  return 0;
}

function feedsFor(engine: Engine, v: Values): Record<string, Tensor> {
  const seed = intFlag(v, 'seed', 1, 0);
  const feeds = randomInputs(engine.inputs, seed);
  for (const spec of (v.input as string[] | undefined) ?? []) {
    const eq = spec.indexOf('=');
    const single = engine.inputs.length === 1 && eq < 0;
    const name = single ? engine.inputs[0].name : spec.slice(0, eq);
    const file = single ? spec : spec.slice(eq + 1);
    const info = engine.inputs.find((i) => i.name === name);
    if (eq <= 0 && !single) throw new UsageError(`--input: expected name=file, received '${spec}'`);
    if (!info) throw new KilnError('INVALID_INPUT', `--input: unknown input '${name}'; the engine's inputs are ${engine.inputs.map((i) => `'${i.name}'`).join(', ')}`);
    feeds[name] = readInputFile(file, info);
  }
  return feeds;
}

async function cmdRun(pos: string[], v: Values, io: Io): Promise<number> {
  const { engine } = await openModel(model(pos, 'run'), v, io);
  try {
    const feeds = feedsFor(engine, v);
    const t0 = process.hrtime.bigint();
    const outputs = await engine.infer(feeds);
    const elapsed = Number(process.hrtime.bigint() - t0) / 1e6;
    const stats = Object.entries(outputs).map(([n, t]) => tensorStats(n, t));
    if (v.json) {
      io.stdout.write(JSON.stringify({ ms: elapsed, inputs: Object.values(feeds).length, outputs: stats }, null, 2) + '\n');
      return 0;
    }
    const given = new Set(((v.input as string[] | undefined) ?? []).map((s) => (s.includes('=') ? s.slice(0, s.indexOf('=')) : engine.inputs[0].name)));
    for (const i of engine.inputs) io.stdout.write(`input  ${i.name} ${i.type} [${i.dims.join(',')}] ${given.has(i.name) ? 'from file' : 'random'}\n`);
    for (const s of stats) {
      io.stdout.write(
        `output ${s.name} ${s.type} [${s.dims.join(',')}]  min ${fmt(s.min)}  max ${fmt(s.max)}  mean ${fmt(s.mean)}  std ${fmt(s.std)}` +
          `${s.nan ? `  NaN ${s.nan}` : ''}\n       [${s.head.map(fmt).join(', ')}${s.dims.reduce((a, b) => a * b, 1) > s.head.length ? ', …' : ''}]\n`,
      );
    }
    io.stdout.write(`ran in ${ms(elapsed)} ms\n`);
    return 0;
  } finally {
    engine.dispose();
  }
}

const fmt = (x: number) => (Number.isInteger(x) ? String(x) : Math.abs(x) >= 1e4 || Math.abs(x) < 1e-3 ? x.toExponential(3) : x.toFixed(4));

async function cmdInspect(pos: string[], v: Values, io: Io): Promise<number> {
  const file = model(pos, 'inspect');
  const { engine, bytes, buildSeconds } = await openModel(file, v, io);
  try {
    const framing = readEngineFile(bytes);
    const r = engine.report;
    const info = { file, source: buildSeconds === undefined ? 'engine' : 'onnx', header: framing, inputs: engine.inputs, outputs: engine.outputs, report: r };
    if (v.json) {
      io.stdout.write(JSON.stringify(info, null, 2) + '\n');
      return 0;
    }
    const out = (s: string) => io.stdout.write(s);
    out(`${file}: ${buildSeconds === undefined ? 'kiln engine' : 'ONNX model, built in ' + formatSeconds(buildSeconds)}, ${bytes.length} bytes\n\n`);
    out('header\n');
    out(
      table([
        ['  format version', String(framing.formatVersion)],
        ['  kiln version', framing.kilnVersion],
        ['  backend', framing.backend],
        ['  device', framing.device],
        ['  capability', framing.capability],
        ['  precision', r.precision],
        ['  build options', JSON.stringify(framing.buildOptions)],
        ['  libraries', JSON.stringify(framing.libraries)],
        ['  crc-32', framing.crc32],
      ]),
    );
    out('sections\n' + table(framing.sections.map((s) => [`  ${s.tag}`, `offset ${s.offset}`, `${s.length} bytes`])));
    out('\ninputs\n' + table(engine.inputs.map((i) => [`  ${i.name}`, i.type, `[${i.dims.join(',')}]`])));
    out('outputs\n' + table(engine.outputs.map((i) => [`  ${i.name}`, i.type, `[${i.dims.join(',')}]`])));
    out(`\nlayers (${r.layers.length}, from ${r.onnxNodes} ONNX nodes)\n`);
    out(
      table([
        ['  #', 'layer', 'kind', 'tactic', 'candidates (ms)', 'fused from'],
        ...r.layers.map((l, i) => [
          `  ${i}`,
          l.name,
          l.kind,
          l.tactic,
          l.candidates.map((c) => `${c.tactic}=${ms(c.ms)}`).join(' ') || '-',
          l.fusedFrom.join(', '),
        ]),
      ]),
    );
    out(`\nmemory\n${table([['  arena', mb(r.memory.arenaBytes)], ['  workspace', mb(r.memory.workspaceBytes)], ['  weights', mb(r.memory.constantBytes)]])}`);
    out(`\npasses\n${table(r.passes.map((p) => [`  ${p.name}`, `${p.changed} changed`, p.nodes.slice(0, 6).join(', ') + (p.nodes.length > 6 ? ', …' : '')]))}`);
    if (r.buildSeconds !== undefined) out(`\nbuilt in ${formatSeconds(r.buildSeconds)}\n`);
    for (const w of r.warnings) out(`warning: ${w}\n`);
    return 0;
  } finally {
    engine.dispose();
  }
}

async function cmdBench(pos: string[], v: Values, io: Io): Promise<number> {
  const file = model(pos, 'bench');
  const iterations = intFlag(v, 'iterations', 100, 1);
  const warmup = intFlag(v, 'warmup', 10, 0);
  const concurrency = intFlag(v, 'concurrency', 1, 1);
  const { engine, buildSeconds, loadSeconds } = await openModel(file, v, io);
  try {
    const feeds = feedsFor(engine, v);
    const s = await measure(() => engine.infer(feeds), { iterations, warmup, concurrency });
    // The layers alone (device time on a GPU, inputs already uploaded): what trtexec calls GPU compute time.
    const device = [...(await engine.timeRuns(feeds, iterations))].sort((a, b) => a - b);
    const at = (p: number) => device[Math.min(device.length - 1, Math.round((p / 100) * (device.length - 1)))];
    const r = engine.report;
    // --profile: each layer's time over a few runs (trtexec's --dumpProfile)
    const profile = v.profile ? await layerProfile(engine, feeds, Math.min(iterations, 20)) : undefined;
    const result = {
      model: file,
      backend: r.backend,
      device: r.device,
      precision: r.precision,
      warmup,
      ...s,
      compute_p50_ms: at(50),
      compute_p90_ms: at(90),
      compute_p99_ms: at(99),
      ...(profile ? { profile } : {}),
      build_s: buildSeconds ?? null,
      load_s: loadSeconds ?? null,
      peak_mem_mb: peakRssMb(),
    };
    if (v.json) {
      io.stdout.write(JSON.stringify(result, null, 2) + '\n');
      return 0;
    }
    io.stdout.write(
      `${file}: ${r.backend} ${r.precision} on ${r.device}; ${iterations} runs after ${warmup} warm-up, concurrency ${concurrency}\n` +
        table([
          ['  latency p50', `${ms(s.p50_ms)} ms`],
          ['  latency p90', `${ms(s.p90_ms)} ms`],
          ['  latency p99', `${ms(s.p99_ms)} ms`],
          ['  mean', `${ms(s.mean_ms)} ms (min ${ms(s.min_ms)}, max ${ms(s.max_ms)})`],
          ['  compute p50/p90/p99', `${ms(at(50))} / ${ms(at(90))} / ${ms(at(99))} ms (layers alone, no copies)`],
          ['  throughput', `${s.throughput.toFixed(1)} inferences/s`],
          [buildSeconds === undefined ? '  load' : '  build', formatSeconds(buildSeconds ?? loadSeconds ?? 0)],
          ['  peak memory', `${result.peak_mem_mb.toFixed(0)} MiB RSS`],
        ]),
    );
    if (profile) {
      io.stdout.write(`\nper-layer time (mean of ${Math.min(iterations, 20)} runs, slowest first):\n`);
      io.stdout.write(table(profile.slice(0, 40).map((l) => [`  ${ms(l.ms)} ms`, `${(l.share * 100).toFixed(1)}%`, l.kind, l.tactic, l.name])));
    }
    return 0;
  } finally {
    engine.dispose();
  }
}

/** Each layer's mean time over `runs` profiled runs, slowest first, with its share of the sum. */
async function layerProfile(engine: Engine, feeds: Record<string, Tensor>, runs: number) {
  const sum: number[] = [];
  for (let k = 0; k < runs; k++) (await engine.profile(feeds)).layers.forEach((l, i) => (sum[i] = (sum[i] ?? 0) + l.ms / runs));
  const total = sum.reduce((a, b) => a + b, 0) || 1;
  return engine.report.layers
    .map((l, i) => ({ name: l.name, kind: l.kind, tactic: l.tactic, ms: sum[i] ?? 0, share: (sum[i] ?? 0) / total }))
    .sort((a, b) => b.ms - a.ms);
}

async function cmdCompare(pos: string[], v: Values, io: Io): Promise<number> {
  const file = model(pos, 'compare');
  let tolerance: number | undefined;
  if (v.tolerance !== undefined) {
    tolerance = Number(v.tolerance);
    if (v.tolerance === '' || !Number.isFinite(tolerance) || tolerance < 0) throw new UsageError(`--tolerance: expected a non-negative number, received '${v.tolerance}'`);
  }
  const onnxBytes = readFile(file);
  if (isEngineBytes(onnxBytes)) throw new UsageError(`compare: '${file}' is an engine; give the ONNX model, and the engine with --engine`);
  let engine: Engine;
  if (v.engine !== undefined) {
    for (const f of Object.keys(COMPILE_FLAGS))
      if (v[f] !== undefined) throw new UsageError(`--${f} does not apply with --engine: the engine's recorded build options are used`);
    const bytes = readFile(v.engine as string);
    if (!isEngineBytes(bytes)) throw new UsageError(`--engine: '${v.engine}' is not a kiln engine`);
    engine = await loadEngine(bytes);
  } else {
    const { options, bar } = compileOptions(v, io, !!io.stderr.isTTY);
    engine = await build(file, options, bar);
  }
  try {
    const feeds = feedsFor(engine, v);
    // Not counted in `building`: compare() takes no signal, so Ctrl-C ends it at once.
    const r = await engine.compare(feeds, { model: file, tolerance });
    if (v.json) {
      io.stdout.write(JSON.stringify({ model: file, engine: (v.engine as string | undefined) ?? null, ...r }, (_k, x) => (typeof x === 'number' && !Number.isFinite(x) ? String(x) : x), 2) + '\n');
      return r.pass ? 0 : 2;
    }
    const e = (x: number) => (Number.isFinite(x) ? x.toExponential(2) : String(x));
    io.stdout.write(`${file} vs ${(v.engine as string | undefined) ?? 'its engine'} (${engine.report.backend} ${engine.report.precision}); tolerance rel L2 ${r.tolerance}\n`);
    io.stdout.write(
      table(
        r.outputs.map((o) => [
          `output ${o.name}`,
          `max abs ${e(o.maxAbs)}`,
          `rel L2 ${e(o.relL2)}`,
          `cosine ${o.cosine.toFixed(6)}`,
          `NaN ${o.nan}`,
          `Inf ${o.inf}`,
          o.pass ? 'PASS' : 'FAIL',
        ]),
      ),
    );
    const d = r.firstDivergence;
    if (d)
      io.stdout.write(
        `first divergence: value '${d.value}' (ONNX node '${d.onnxNode}') from layer '${d.layer}' (${d.kind}, fused from ${d.fusedFrom.join(', ')}): ` +
          `rel L2 ${e(d.relL2)}, max abs ${e(d.maxAbs)}${d.source === 'rebuild' ? ' [located in an engine rebuilt from the model]' : ''}\n`,
      );
    else if (r.note) io.stdout.write(`note: ${r.note}\n`);
    return r.pass ? 0 : 2;
  } finally {
    engine.dispose();
  }
}

function version(pkg: string): string | null {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return (require(`${pkg}/package.json`) as { version: string }).version;
  } catch {
    return null;
  }
}

async function cmdDoctor(pos: string[], v: Values, io: Io): Promise<number> {
  if (pos.length) throw new UsageError(`doctor: takes no arguments, received ${pos.join(' ')}`);
  const info = backendInfo();
  const report = {
    kiln: info.version,
    backends: info.backends,
    device: info.device,
    capability: info.capability,
    threads: info.threads,
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model ?? 'unknown',
    engineFormatVersion: info.engineFormatVersion,
    planVersion: info.planVersion,
    node: process.versions.node,
    napi: process.versions.napi,
    platform: `${process.platform}-${process.arch}`,
    cuda: info.backends.includes('cuda') ? 'built in' : 'not built into this addon (CPU backend only)',
    onnxruntimeNode: version('onnxruntime-node'),
  };
  if (v.json) {
    io.stdout.write(JSON.stringify(report, null, 2) + '\n');
    return 0;
  }
  io.stdout.write(
    table([
      ['kiln', report.kiln],
      ['backends', report.backends.join(', ')],
      ['device', report.device],
      ['capability', report.capability],
      ['threads', `${report.threads} (of ${report.cpus} CPUs: ${report.cpuModel})`],
      ['cuda', report.cuda],
      ['engine format', `v${report.engineFormatVersion} (plan v${report.planVersion})`],
      ['node', `${report.node} (N-API ${report.napi}, ${report.platform})`],
      ['onnxruntime-node', report.onnxruntimeNode ?? 'not installed'],
    ]),
  );
  return 0;
}

const HANDLERS: Record<Command, (pos: string[], v: Values, io: Io) => Promise<number>> = {
  build: cmdBuild,
  run: cmdRun,
  inspect: cmdInspect,
  bench: cmdBench,
  compare: cmdCompare,
  doctor: cmdDoctor,
};

/** Runs the CLI on `argv` (without node and script) and resolves to the exit code. */
export async function main(argv: string[], io: Io): Promise<number> {
  const [cmd, ...rest] = argv;
  try {
    if (cmd === undefined || cmd === 'help' || cmd === '--help' || cmd === '-h') {
      io.stdout.write(USAGE);
      return cmd === undefined ? 1 : 0;
    }
    if (cmd === '--version' || cmd === 'version') {
      io.stdout.write(`${backendInfo().version}\n`);
      return 0;
    }
    if (!(cmd in COMMANDS)) throw new UsageError(`unknown command '${cmd}'; the commands are ${Object.keys(COMMANDS).join(', ')}`);
    const { values, positionals } = parseArgs({ args: rest, options: { ...COMMANDS[cmd as Command], help: { type: 'boolean', short: 'h' } }, allowPositionals: true, strict: true });
    if (values.help) {
      io.stdout.write(USAGE);
      return 0;
    }
    return await HANDLERS[cmd as Command](positionals, values as Values, io);
  } catch (e) {
    if (e instanceof KilnError) {
      io.stderr.write(`kiln: ${e.message}\n`);
      return e.code === 'CANCELLED' ? 130 : 1;
    }
    if (e instanceof UsageError || (e as NodeJS.ErrnoException).code?.startsWith('ERR_PARSE_ARGS')) {
      io.stderr.write(`kiln: ${(e as Error).message}\nRun 'kiln help' for usage.\n`);
      return 1;
    }
    io.stderr.write(`kiln: internal error: ${(e as Error)?.stack ?? String(e)}\n`);
    return 1;
  }
}

if (require.main === module) {
  const ac = new AbortController();
  let interrupted = false;
  process.on('SIGINT', () => {
    if (building > 0 && !interrupted) {
      interrupted = true;
      ac.abort(); // compile() rejects with CANCELLED; main prints 'kiln: build cancelled' and returns 130
      return;
    }
    process.stderr.write('\nkiln: cancelled\n');
    process.exit(130);
  });
  main(process.argv.slice(2), { stdout: process.stdout, stderr: process.stderr, signal: ac.signal }).then(
    (code) => {
      process.exitCode = code;
    },
    (e) => {
      process.stderr.write(`kiln: internal error: ${(e as Error)?.stack ?? String(e)}\n`);
      process.exitCode = 1;
    },
  );
}
