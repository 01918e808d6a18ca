/**
 * compile(): ONNX model → Engine. Import, bind input shapes, infer and fold, optimize, lower to the
 * Plan, and let the native backend pick a kernel per layer by timing. Cancellable; reports progress.
 */
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { DataType, TypedArray, dtypeFromName, dtypeName } from './dtype';
import { Engine, EngineMeta, tensorInfo } from './engine';
import { KilnError } from './errors';
import { Graph, elementCount, formatShape, isStatic } from './ir/graph';
import { inferGraph } from './ir/infer';
import { exposeIntermediates, lowerGraph } from './lower/lower';
import { Plan, encodePlan } from './lower/plan';
import { native, callAsync } from './native/binding';
import { importModel } from './onnx/import';
import './ops';
import { CompileOptions, ProgressEvent, ResolvedOptions, resolveOptions } from './options';
import type { TensorLike } from './tensor';
import { eliminateConcats } from './passes/concat-elimination';
import { eliminateCopies } from './passes/copy-elimination';
import { fuseConvPool } from './passes/conv-pool-fusion';
import { fuseCopies } from './passes/copy-fusion';
import { foldOperandWindows } from './passes/strided-operands';
import { passEnabled, runPasses } from './passes/manager';
import { assignHalfPrecision } from './passes/precision-assignment';
import { CHANNELS_LAST, LayoutResult, assignLayout } from './passes/layout-assignment';
import { GuardResult, clonePlan, describePin, guardHalfPrecision } from './passes/accuracy-guard';
import { CacheIdentity, CachedGuard, readTimingCache, writeTimingCache } from './timing-cache';
import { quantizeGraph } from './quant';
import { GUARD_SAMPLES, firstFeeds } from './quant/calibrate';
import { LayerPrecision, resolveLayerPrecisions } from './quant/layer-precisions';
import { BestMeta, buildBest } from './quant/best';

export type ModelSource = Uint8Array | ArrayBuffer | string;

async function readModel(model: ModelSource): Promise<{ bytes: Uint8Array; baseDir?: string }> {
  if (typeof model === 'string') {
    try {
      return { bytes: await fs.promises.readFile(model), baseDir: path.dirname(path.resolve(model)) };
    } catch (e) {
      throw new KilnError('INVALID_MODEL', `model: cannot read '${model}' (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
  }
  if (model instanceof ArrayBuffer) return { bytes: new Uint8Array(model) };
  if (model instanceof Uint8Array) return { bytes: model };
  throw new KilnError('INVALID_MODEL', `model: expected a Uint8Array, an ArrayBuffer or a file path, received ${model === null ? 'null' : typeof model}`);
}

/** Fixes the inputs named in options.constants to their values: they become initializers. */
export function bindConstants(g: Graph, constants: Record<string, TensorLike>): void {
  for (const [name, t] of Object.entries(constants)) {
    if (!g.inputs.includes(name))
      throw new KilnError('INVALID_OPTION', `Option 'constants' names '${name}', which is not an input of the model; its inputs are ${g.inputs.map((n) => `'${n}'`).join(', ')}`);
    const v = g.values.get(name)!;
    const dtype = dtypeFromName(t.type);
    if (dtype === undefined || dtype !== v.dtype)
      throw new KilnError('INVALID_OPTION', `Option 'constants.${name}': expected ${dtypeName(v.dtype)} but received ${t.type}`);
    const dims = [...t.dims];
    if (v.shape && (v.shape.length !== dims.length || v.shape.some((d, i) => typeof d === 'number' && d !== dims[i])))
      throw new KilnError('INVALID_OPTION', `Option 'constants.${name}': expected shape ${formatShape(v.shape)} but received [${dims.join(',')}]`);
    v.shape = dims;
    v.data = t.data as TypedArray;
    g.inputs = g.inputs.filter((n) => n !== name);
  }
}

/** Gives every symbolic input dim a value from options.shapes, or fails naming the input and dim. */
export function bindShapes(g: Graph, shapes: Record<string, number[]>): void {
  for (const name of Object.keys(shapes))
    if (!g.inputs.includes(name))
      throw new KilnError('INVALID_OPTION', `Option 'shapes' names '${name}', which is not an input of the model; its inputs are ${g.inputs.map((n) => `'${n}'`).join(', ')}`);
  for (const name of g.inputs) {
    const v = g.values.get(name)!;
    const given = shapes[name];
    if (!v.shape) {
      if (!given) throw new KilnError('SHAPE', `input '${name}' has no shape in the model; give it one with the 'shapes' option, e.g. shapes: { ${name}: [1, 3, 224, 224] }`);
      v.shape = [...given];
      continue;
    }
    if (given) {
      if (given.length !== v.shape.length)
        throw new KilnError('SHAPE', `Option 'shapes.${name}' has rank ${given.length} but input '${name}' has shape ${formatShape(v.shape)} (rank ${v.shape.length})`);
      v.shape.forEach((d, i) => {
        if (typeof d === 'number' && d !== given[i])
          throw new KilnError('SHAPE', `Option 'shapes.${name}' sets dim ${i} to ${given[i]} but the model fixes it at ${d}`);
      });
      v.shape = [...given];
      continue;
    }
    const sym = v.shape.findIndex((d) => typeof d !== 'number');
    if (sym >= 0) {
      const example = v.shape.map((d) => (typeof d === 'number' ? d : 1));
      throw new KilnError('SHAPE', `input '${name}' has symbolic dim '${v.shape[sym]}' (dim ${sym} of ${formatShape(v.shape)}); give it a value with the 'shapes' option, e.g. shapes: { ${name}: [${example.join(', ')}] }`);
    }
  }
}

function pickBackend(o: ResolvedOptions): 'cpu' | 'cuda' {
  const have = native().info().backends;
  if (o.device === 'cuda' && !have.includes('cuda'))
    throw new KilnError('UNSUPPORTED', `Option 'device' is 'cuda' but this kiln addon was built without the CUDA backend (it has: ${have.join(', ')})`);
  const backend = o.device === 'auto' ? (have.includes('cuda') ? 'cuda' : 'cpu') : o.device;
  if (backend === 'cpu' && o.precision === 'fp16')
    throw new KilnError('UNSUPPORTED', `Option 'precision' is 'fp16' but the cpu backend runs fp32 and int8 only; use precision: 'fp32', 'int8' or a CUDA device`);
  return backend;
}

/**
 * Compiles an ONNX model (bytes, or a file path — needed for external data) into an Engine.
 * @throws KilnError naming the node, input or option at fault.
 */
export async function compile(model: ModelSource, options?: CompileOptions): Promise<Engine> {
  const o = resolveOptions(options);
  if (o.precision === 'best') {
    if (o.signal?.aborted) throw new KilnError('CANCELLED', 'build cancelled');
    return buildBest(model, o, pickBackend(o), compileResolved);
  }
  return compileResolved(model, o);
}

/**
 * @internal The last build of precision 'best' (src/quant/best.ts): an int8 build (or a float one
 * without calibration) whose float layers run in fp16 unless pinned to fp32 (`half`), reported as 'best'.
 */
export interface MixedBuild {
  half: boolean;
  /** The user's own pins (the accuracy guards never move them; the choices in o.layerPrecisions they may). */
  userPins: Record<string, LayerPrecision>;
  best: BestMeta;
  warnings: string[];
}

/** @internal compile() on resolved options, with the 'best' build's last step when `mixed` is given. */
export async function compileResolved(model: ModelSource, o: ResolvedOptions, mixed?: MixedBuild): Promise<Engine> {
  const start = Date.now();
  const progress = (phase: ProgressEvent['phase'], done: number, total: number, layer?: string) =>
    o.onProgress?.({ phase, done, total, layer, elapsed: (Date.now() - start) / 1000 });
  const checkAbort = () => {
    if (o.signal?.aborted) throw new KilnError('CANCELLED', 'build cancelled');
  };
  checkAbort();
  const backend = pickBackend(o);
  progress('import', 0, 1);
  const { bytes, baseDir } = await readModel(model);
  const g = importModel(bytes, { baseDir });
  const onnxNodes = g.nodes.length;
  progress('import', 1, 1);
  checkAbort();
  bindConstants(g, o.constants);
  bindShapes(g, o.shapes);
  progress('infer', 0, 1);
  const stats = inferGraph(g);
  progress('infer', 1, 1);
  checkAbort();
  progress('passes', 0, 1);
  const passes = [
    { name: 'constant-folding', changed: stats.folded.length, nodes: stats.folded },
    ...runPasses(g, o.optimize, {
      target: backend,
      requested: new Set(typeof o.optimize === 'object' ? Object.keys(o.optimize).filter((k) => (o.optimize as Record<string, boolean>)[k]) : []),
    }),
  ];
  const warnings: string[] = [];
  const cache = o.timingCache ? loadCache(o.timingCache, backend, warnings) : undefined;
  let guard: GuardResult | undefined;
  let ranges: Record<string, number> = {};
  if (o.precision === 'int8') {
    const q = await quantizeGraph(g, bytes, o, checkAbort);
    passes.push(...q.passes);
    warnings.push(...q.warnings);
    guard = q.guard;
    ranges = q.ranges;
  }
  // fp32/fp16 builds: every pinned name must exist; fp16 leaves the 'fp32' ones in fp32
  const pins = o.precision === 'int8' ? new Map() : resolveLayerPrecisions(g, o.layerPrecisions);
  for (const [layer, p] of pins)
    if (p !== 'fp32' && p !== o.precision)
      throw new KilnError('INVALID_OPTION', `Option 'layerPrecisions' pins '${layer}' to ${p}, which a precision '${o.precision}' build cannot run`);
  progress('passes', 1, 1);
  checkAbort();
  progress('lower', 0, 1);
  const plan = lowerGraph(g);
  if (o.debug.exposeAll) exposeIntermediates(plan);
  const half = o.precision === 'fp16' || (mixed?.half ?? false);
  // channels-last regions (see layoutWanted); the fp16 guard checks `cpuPlan` on the CPU kernels
  const { layout, cpuPlan } = layoutPlan(plan, o, backend, half);
  if (layout) passes.push({ name: 'layout-assignment', changed: layout.converted.length, nodes: layout.converted, reformats: layout.reformats });
  let guardFailure: string | undefined;
  let halfGuard: GuardResult | undefined;
  if (half) {
    // a mixed int8 build resolves its pins on the quantized graph (the int8 layers keep their origins)
    const floatPins = o.precision === 'int8' ? resolveLayerPrecisions(g, o.layerPrecisions) : pins;
    const fp32Pins = new Set([...floatPins].filter(([, p]) => p === 'fp32').map(([n]) => n));
    const keep = mixed ? resolveLayerPrecisions(g, mixed.userPins) : floatPins;
    const fp16Pins = new Set([...keep].filter(([, p]) => p === 'fp16').map(([n]) => n));
    if (o.guard) {
      // the guard's samples: the first calibration feeds when the build has them (an fp16 build reads
      // its calibration only here; other builds read an array again, not an iterable they consumed)
      const samples =
        o.calibration && (o.precision === 'fp16' || Array.isArray(o.calibration)) ? await firstFeeds(o.calibration, cpuPlan, GUARD_SAMPLES) : undefined;
      // a rebuild with the timing cache reuses the guard's findings for the same model, options and samples
      const key = cache && guardKey(bytes, o, ranges, fp16Pins, samples);
      const cached = key ? cache.guards[key] : undefined;
      if (cached) {
        halfGuard = cached;
        passes.push({ name: 'precision-guard-cached', changed: cached.pinned.length, nodes: cached.pinned.map((p) => p.layer) });
      } else {
        try {
          halfGuard = guardHalfPrecision(cpuPlan, { keep: fp16Pins, samples, ...(o.tolerance !== undefined ? { tolerance: o.tolerance } : {}) });
          if (key) cache.guards[key] = halfGuard;
        } catch (e) {
          guardFailure = `precision guard: the plans could not run on the CPU reference kernels (${(e as Error).message}); every layer runs in fp16 unchecked`;
        }
      }
    }
    const r = assignHalfPrecision(plan, new Set([...fp32Pins, ...(halfGuard?.pinned.map((p) => p.layer) ?? [])]));
    passes.push({ name: 'precision-assignment', changed: r.half.length, nodes: r.half });
  }
  for (const [name, pass] of [
    // channels-last int8 convolutions exist on cuda only (layout assignment)
    ['conv-pool-fusion', (p: Plan) => (backend === 'cuda' ? fuseConvPool(p) : [])],
    ['copy-fusion', fuseCopies],
    ['strided-operands', foldOperandWindows],
    ['concat-elimination', eliminateConcats],
    ['copy-elimination', eliminateCopies],
  ] as const) {
    if (!passEnabled(o.optimize, name)) continue;
    const removed = pass(plan);
    passes.push({ name, changed: removed.length, nodes: removed });
  }
  if (half) warnings.push(...(halfGuard ? guardWarnings(halfGuard) : guardFailure ? [guardFailure] : []));
  // a mixed build reports both guards' pins: int8 layers left in float, then float layers kept in fp32
  if (halfGuard) guard = guard ? { ...halfGuard, pinned: [...guard.pinned, ...halfGuard.pinned] } : halfGuard;
  if (mixed) warnings.push(...mixed.warnings);
  const meta: EngineMeta = {
    inputs: g.inputs.map((n) => info(g, n)),
    outputs: g.outputs.map((n) => info(g, n)),
    passes,
    onnxNodes,
    precision: mixed ? 'best' : o.precision,
    warnings,
    buildSeconds: 0,
    ...(guard ? { precisionGuard: { checked: guard.checked, pinned: guard.pinned } } : {}),
    ...(mixed ? { best: mixed.best } : {}),
  };
  progress('lower', 1, 1);
  const cancel = new Int32Array(1);
  const onAbort = () => {
    cancel[0] = 1;
  };
  o.signal?.addEventListener('abort', onAbort);
  try {
    const buildOptions = JSON.stringify({
      precision: mixed ? 'best' : o.precision,
      device: o.device,
      shapes: o.shapes,
      constants: Object.keys(o.constants),
      timing: o.timing,
      optimize: o.optimize,
      strict: o.strict,
      deviceId: o.deviceId,
      ...(o.debug.exposeAll ? { debug: o.debug } : {}),
      ...(o.guard ? {} : { guard: false }),
      ...(o.precision === 'int8' ? { calibrator: o.calibrator, ...(o.calibrator === 'percentile' ? { percentile: o.percentile } : {}) } : {}),
      // the ranges calibration chose: a rebuild for engine.compare reproduces the same int8 layers
      ...(Object.keys(ranges).length ? { calibrationRanges: ranges } : {}),
      ...(Object.keys(o.layerPrecisions).length ? { layerPrecisions: o.layerPrecisions } : {}),
      ...(o.tolerance !== undefined ? { tolerance: o.tolerance } : {}),
    });
    const metaWithTime = () => JSON.stringify({ ...meta, buildSeconds: (Date.now() - start) / 1000 });
    // Native progress arrives through a thread-safe queue that may drain after the build resolves:
    // late events are dropped and the phase is closed here, so events always come in phase order.
    let finished = false;
    let lastDone = -1;
    const nativeEngine = await callAsync(() =>
      native().build(
        encodePlan(plan),
        { backend, timing: o.timing, meta: metaWithTime(), buildOptions, strict: o.strict, deviceId: o.deviceId, timingCache: cache?.entries },
        (done, total, layer) => {
          if (finished) return;
          lastDone = done;
          progress('tactics', done, total, layer);
        },
        cancel,
      ),
    );
    finished = true;
    if (lastDone < plan.ops.length) progress('tactics', plan.ops.length, plan.ops.length);
    const engine = new Engine(nativeEngine);
    if (cache && o.timingCache) {
      for (const l of engine.report.layers)
        for (const c of l.candidates) if (c.ms !== null && l.candidates.length > 1) cache.entries[`${l.signature}|${c.tactic}`] = c.ms;
      writeTimingCache(o.timingCache, cache.id, cache.entries, cache.guards);
    }
    progress('done', 1, 1);
    return engine;
  } finally {
    o.signal?.removeEventListener('abort', onAbort);
  }
}

/**
 * Whether layout assignment runs: by default for CUDA builds with fp16 layers (`half`: fp16, or a mixed
 * 'best' build; tensor-core convolutions want channels-last activations) or int8 layers (precision
 * 'int8': an int8 build, the int8 candidate of a 'best' build and its int8 last build; the int8
 * convolutions load 16 channels at a time), elsewhere only when requested
 * (`optimize: { 'layout-assignment': true }`).
 */
export function layoutWanted(o: ResolvedOptions, backend: 'cpu' | 'cuda', half = o.precision === 'fp16'): boolean {
  const requested = typeof o.optimize === 'object' && o.optimize['layout-assignment'] === true;
  return passEnabled(o.optimize, 'layout-assignment') && (requested || (backend === 'cuda' && (half || o.precision === 'int8')));
}

/**
 * @internal Layout assignment as compile() runs it on the lowered plan, in place: when layoutWanted, with
 * the layer kinds `backend` runs channels-last (`layout`: the pass's result, absent when it did not run).
 * `cpuPlan` is the plan for the CPU kernels (the fp16 guard runs it there): `plan` itself, or, when the
 * pass gave it channels-last layers the CPU cannot run (a CUDA int8 build's Int8Convs: the CPU int8
 * convolution is NCHW only), a copy of it from before the pass, with the same layer names.
 */
export function layoutPlan(plan: Plan, o: ResolvedOptions, backend: 'cpu' | 'cuda', half = o.precision === 'fp16'): { layout?: LayoutResult; cpuPlan: Plan } {
  if (!layoutWanted(o, backend, half)) return { cpuPlan: plan };
  // a copy only when the plan holds a kind this backend may convert and the CPU cannot run converted
  const kinds = CHANNELS_LAST[backend];
  const before = plan.ops.some((op) => kinds.has(op.kind) && !CHANNELS_LAST.cpu.has(op.kind)) ? clonePlan(plan) : undefined;
  const layout = assignLayout(plan, { channelsLast: kinds });
  const cpuRuns = !before || plan.ops.every((op) => op.attrs.channels_last?.v !== 1 || CHANNELS_LAST.cpu.has(op.kind));
  return { layout, cpuPlan: cpuRuns ? plan : before };
}

/** The build warnings for the accuracy guard's findings. */
export function guardWarnings(guard: GuardResult): string[] {
  const w = guard.pinned.map(describePin);
  if (!guard.clean)
    w.push(`precision guard: layers still lose accuracy in fp16 after ${guard.rounds} rounds of pinning; compare the engine with the fp32 reference (engine.compare)`);
  return w;
}

/**
 * The fp16 guard's cache key: a hash of the model bytes and of everything else the checked plan and the
 * guard's verdict depend on (shapes, bound constants, optimizer and precision options, pins, the
 * calibration ranges of a mixed build, the tolerance).
 */
function guardKey(bytes: Uint8Array, o: ResolvedOptions, ranges: Record<string, number>, keep: ReadonlySet<string>, samples?: ArrayBufferView[][]): string {
  const h = crypto.createHash('sha256');
  h.update(bytes);
  for (const sample of samples ?? []) for (const b of sample) h.update(new Uint8Array(b.buffer, b.byteOffset, b.byteLength));
  for (const [name, t] of Object.entries(o.constants).sort(([a], [b]) => (a < b ? -1 : 1))) {
    h.update(`|${name}:${t.type}:${t.dims.join('x')}:`);
    const d = t.data as ArrayBufferView | unknown[];
    h.update(ArrayBuffer.isView(d) ? new Uint8Array(d.buffer, d.byteOffset, d.byteLength) : JSON.stringify(d, (_, v) => (typeof v === 'bigint' ? String(v) : v)));
  }
  h.update(
    JSON.stringify({
      guard: 1,
      samples: samples?.length ?? 0,
      precision: o.precision,
      shapes: o.shapes,
      optimize: o.optimize,
      strict: o.strict,
      layerPrecisions: o.layerPrecisions,
      tolerance: o.tolerance,
      ranges,
      keep: [...keep].sort(),
    }),
  );
  return `fp16|${h.digest('hex')}`;
}

function loadCache(file: string, backend: string, warnings: string[]): { id: CacheIdentity; entries: Record<string, number>; guards: Record<string, CachedGuard> } {
  const info = native().info();
  const dev = (info as unknown as { devices: Record<string, { device: string; capability: string; libraries: string }> }).devices[backend];
  const id: CacheIdentity = { kiln: info.version, backend, device: dev.device, capability: dev.capability, libraries: dev.libraries };
  const { entries, guards, note } = readTimingCache(file, id);
  if (note) warnings.push(note);
  return { id, entries, guards };
}

function info(g: Graph, name: string) {
  const v = g.values.get(name)!;
  if (!isStatic(v.shape) || !Number.isFinite(elementCount(v.shape)))
    throw new KilnError('SHAPE', `'${name}' has shape ${formatShape(v.shape)}; engines need static shapes`);
  return tensorInfo(name, v.dtype as DataType, v.shape);
}

/** Loads an engine from the bytes that Engine.serialize() gave; a GPU engine onto device `deviceId` (default 0),
 *  which must be the GPU the engine was built for (its name and capability are checked). */
export async function loadEngine(bytes: Uint8Array | ArrayBuffer, options: { deviceId?: number } = {}): Promise<Engine> {
  if (!(bytes instanceof Uint8Array) && !(bytes instanceof ArrayBuffer))
    throw new KilnError('INVALID_ENGINE', `loadEngine: expected a Uint8Array or an ArrayBuffer, received ${bytes === null ? 'null' : typeof bytes}`);
  const deviceId = options.deviceId ?? 0;
  if (!Number.isInteger(deviceId) || deviceId < 0)
    throw new KilnError('INVALID_OPTION', `Expected a non-negative integer for option 'deviceId' but received ${JSON.stringify(options.deviceId)}`);
  const b = bytes instanceof ArrayBuffer ? new Uint8Array(bytes) : bytes;
  const ne = await callAsync(() => native().load(b, { deviceId }));
  try {
    return new Engine(ne);
  } catch (e) {
    ne.dispose();
    throw e;
  }
}
