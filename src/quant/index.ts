/**
 * The int8 build on the optimized graph (compile() calls it after the graph passes):
 *   1. An explicitly quantized model (one with QuantizeLinear/DequantizeLinear) is taken as it is.
 *      Otherwise each quantizable layer's activation gets a range: from the calibration cache when it
 *      matches, else by running the calibration set through the fp32 graph (calibrate.ts, calibrator.ts;
 *      the cache is then written). Neither → an error: kiln never makes up scales.
 *   2. Calibrated builds insert Q/DQ pairs (insert-qdq.ts); then the Q/DQ fusion pass
 *      (src/passes/qdq-fusion.ts) turns every DQ → Conv/Gemm/MatMul (→ Q) into an int8 layer.
 *   3. The int8 accuracy guard (src/passes/accuracy-guard.ts `guardPlans`) runs sample inputs (the first
 *      calibration feeds, else seeded random ones) through the int8 plan and the fp32 one on the CPU
 *      reference kernels, and leaves in float each layer whose error grows beyond `tolerance`.
 * `layerPrecisions` pins layers: 'fp32'/'fp16' ones are never quantized, 'int8' ones never demoted.
 */
import { KilnError } from '../errors';
import { Graph } from '../ir/graph';
import { lowerGraph } from '../lower/lower';
import { native } from '../native/binding';
import type { ResolvedOptions } from '../options';
import { GuardResult, describePin, generatedSample, guardPlans } from '../passes/accuracy-guard';
import { PassSummary, passEnabled } from '../passes/manager';
import { int8MaxPool } from '../passes/int8-pool';
import { Uses } from '../passes/match';
import { fuseQdq, int8Residual } from '../passes/qdq-fusion';
import { createHash } from 'crypto';
import type { CachedGuard } from '../timing-cache';
import { modelHash, readCalibrationCache, writeCalibrationCache, CalibrationKey } from './cache';
import { GUARD_SAMPLES, collectStats, firstFeeds } from './calibrate';
import { amaxOf } from './calibrator';
import { insertQdq, quantizedActivations } from './insert-qdq';
import { resolveLayerPrecisions } from './layer-precisions';

/** The int8 guard's default bound on a layer's relative L2 error. */
export const INT8_TOLERANCE = 5e-2;
/** The int8 guard's default budget on the model outputs' relative L2 error (cosine ≈ 0.995). */
export const INT8_OUTPUT_TOLERANCE = 1e-1;

export interface QuantizeResult {
  passes: PassSummary[];
  guard?: GuardResult;
  warnings: string[];
  /** The activation ranges used (amax by tensor; empty for explicitly quantized models). */
  ranges: Record<string, number>;
}

/** A copy of the graph that passes may rewrite: node lists and value records are new, contents shared. */
export function cloneGraph(g: Graph): Graph {
  return {
    ...g,
    inputs: [...g.inputs],
    outputs: [...g.outputs],
    nodes: g.nodes.map((n) => ({ ...n, inputs: [...n.inputs], outputs: [...n.outputs], attrs: new Map(n.attrs), origin: [...n.origin] })),
    values: new Map([...g.values].map(([k, v]) => [k, { ...v }])),
    opsets: new Map(g.opsets),
  };
}

/** Whether the model carries its own quantization. */
export function explicitlyQuantized(g: Graph): boolean {
  return g.nodes.some((n) => n.domain === '' && (n.opType === 'QuantizeLinear' || n.opType === 'DequantizeLinear'));
}

/** Rewrites the optimized fp32 graph `g` in place into its int8 form. */
export async function quantizeGraph(g: Graph, modelBytes: Uint8Array, o: ResolvedOptions, checkAbort: () => void): Promise<QuantizeResult> {
  const pins = resolveLayerPrecisions(g, o.layerPrecisions);
  const floatPins = new Set([...pins].filter(([, p]) => p !== 'int8').map(([n]) => n));
  const keep = new Set([...pins].filter(([, p]) => p === 'int8').map(([n]) => n));
  const warnings: string[] = [];
  const passes: PassSummary[] = [];
  const explicit = explicitlyQuantized(g);
  let amax = new Map<string, number>();
  let samples: ArrayBufferView[][] = [];
  // the cache the ranges came from or went to, with the guard findings it holds
  let cache: { file: string; key: CalibrationKey; guards: Record<string, CachedGuard> } | undefined;
  if (!explicit) {
    const acts = quantizedActivations(g, floatPins);
    const key: CalibrationKey = {
      kiln: native().info().version,
      model: modelHash(modelBytes),
      calibrator: o.calibrator,
      percentile: o.calibrator === 'percentile' ? o.percentile : undefined,
      // ranges: the tensors calibrated and the rule picking each one's calibrator (3: int8 residuals
      // and projection shortcuts, min-max)
      graph: JSON.stringify({ shapes: o.shapes, constants: Object.keys(o.constants).sort(), optimize: o.optimize, ranges: 3 }),
    };
    let note: string | undefined;
    if (o.calibrationRanges) {
      const missing = acts.find((a) => typeof o.calibrationRanges![a] !== 'number');
      if (missing !== undefined) throw new KilnError('INTERNAL', `the recorded calibration ranges have none for tensor '${missing}'`);
      amax = new Map(acts.map((a) => [a, o.calibrationRanges![a]]));
    } else if (o.calibrationCache) {
      const c = readCalibrationCache(o.calibrationCache, key);
      note = c.note;
      const missing = c.amax ? acts.find((a) => typeof c.amax![a] !== 'number') : undefined;
      if (c.amax && missing !== undefined) note = `calibration cache '${o.calibrationCache}' has no range for tensor '${missing}'`;
      else if (c.amax) {
        amax = new Map(acts.map((a) => [a, c.amax![a]]));
        cache = { file: o.calibrationCache, key, guards: c.guards ?? {} };
      }
    }
    if (amax.size === 0 && acts.length) {
      if (!o.calibration)
        throw new KilnError(
          'INVALID_OPTION',
          `precision 'int8' needs calibration data: pass 'calibration' (an array or async iterable of input feeds) or a 'calibrationCache' written by an earlier build${note ? ` (${note})` : o.calibrationCache ? ` ('${o.calibrationCache}' does not exist yet)` : ''}; kiln never quantizes with made-up scales. Models that carry QuantizeLinear/DequantizeLinear nodes need neither.`,
        );
      if (note) warnings.push(`${note}; calibrating again`);
      const c = await collectStats(g, acts, o.calibration, GUARD_SAMPLES, checkAbort);
      if (c.batches === 0) throw new KilnError('INVALID_OPTION', "Option 'calibration' holds no feeds; precision 'int8' needs at least one");
      samples = c.samples;
      // A tensor a bounded activation produced (ReLU6-style Clip, sigmoids, tanh) keeps its whole
      // observed range: its values pile up at the bound, and clipping below it (what entropy does with
      // such a spike) moves every saturated value (mobilenet_v2: cosine 0.60 with entropy everywhere,
      // 0.95 with min-max; test/models/int8-models.test.ts).
      // A residual read in int8 (qdq-fusion's int8Residual: a ReLU's output added back by a later
      // layer) keeps its whole range too: clipping it would carry the error down the residual stream
      // through every later block (random-weight resnet50: output rel L2 0.16 with entropy there).
      const u = new Uses(g);
      for (const [name, s] of c.stats) amax.set(name, amaxOf(s, boundedActivation(g, name) || int8Residual(g, name, u) ? 'minmax' : o.calibrator, o.percentile));
      if (o.calibrationCache) {
        writeCalibrationCache(o.calibrationCache, key, Object.fromEntries(amax));
        cache = { file: o.calibrationCache, key, guards: {} };
      }
      passes.push({ name: 'int8-calibration', changed: amax.size, nodes: [...amax.keys()] });
    }
  }
  const base = cloneGraph(g);
  const build = (pinned: ReadonlySet<string>): { graph: Graph; fused: string[]; pooled: string[] } => {
    const c = cloneGraph(base);
    const skip = new Set([...floatPins, ...pinned]);
    if (!explicit) insertQdq(c, amax, skip);
    const pooled = passEnabled(o.optimize, 'int8-pool') ? int8MaxPool(c) : [];
    return { graph: c, fused: fuseQdq(c, { skip }).changed, pooled };
  };
  let guard: GuardResult | undefined;
  if (o.guard) {
    try {
      const ref = lowerGraph(cloneGraph(base));
      if (!samples.length && o.calibration) samples = await firstFeeds(o.calibration, ref, GUARD_SAMPLES);
      if (!samples.length) samples = [generatedSample(ref)];
      const options = { precision: 'int8' as const, tolerance: o.tolerance ?? INT8_TOLERANCE, outputTolerance: o.tolerance ?? INT8_OUTPUT_TOLERANCE, keep };
      const gk = cache && guardKey(amax, samples, options, floatPins);
      const hit = gk ? cache!.guards[gk] : undefined;
      if (hit) {
        guard = hit;
        passes.push({ name: 'int8-guard-cached', changed: hit.pinned.length, nodes: hit.pinned.map((p) => p.layer) });
      } else {
        guard = guardPlans(
          ref,
          (pinned) => {
            const plan = lowerGraph(build(pinned).graph);
            return { plan, running: new Set(plan.ops.filter((op) => op.kind.startsWith('Int8')).map((op) => op.name)) };
          },
          samples,
          options,
        );
        if (gk) {
          cache!.guards[gk] = guard;
          writeCalibrationCache(cache!.file, cache!.key, Object.fromEntries(amax), cache!.guards);
        }
      }
      warnings.push(...guard.pinned.map(describePin));
      if (!guard.clean) warnings.push(`precision guard: layers still lose accuracy in int8 after ${guard.rounds} rounds; compare the engine with the fp32 reference (engine.compare)`);
    } catch (e) {
      if (e instanceof KilnError && e.code === 'INVALID_INPUT') throw e;
      warnings.push(`precision guard: the int8 and fp32 plans could not run on the CPU reference kernels (${(e as Error).message}); every int8 layer is kept unchecked`);
    }
  }
  const final = build(new Set(guard?.pinned.map((p) => p.layer)));
  g.nodes = final.graph.nodes;
  g.values = final.graph.values;
  g.opsets = final.graph.opsets;
  passes.push({ name: 'int8-pool', changed: final.pooled.length, nodes: final.pooled });
  passes.push({ name: 'qdq-fusion', changed: final.fused.length, nodes: final.fused });
  if (!final.fused.length) warnings.push("precision 'int8': no layer runs in int8 (no Conv/Gemm/MatMul with constant weights could be quantized)");
  return { passes, guard, warnings, ranges: Object.fromEntries(amax) };
}

/**
 * The int8 guard's key in the calibration cache: a hash of everything its verdict depends on beyond the
 * cache's own key (model, calibrator, graph options): the ranges, the sample inputs, its bounds and pins.
 */
function guardKey(amax: ReadonlyMap<string, number>, samples: ArrayBufferView[][], o: { tolerance: number; outputTolerance: number; keep: ReadonlySet<string> }, floatPins: ReadonlySet<string>): string {
  const h = createHash('sha256');
  h.update(JSON.stringify({ guard: 1, amax: [...amax].sort(([a], [b]) => (a < b ? -1 : 1)), tolerance: o.tolerance, output: o.outputTolerance, keep: [...o.keep].sort(), float: [...floatPins].sort() }));
  for (const feed of samples) for (const b of feed) h.update(new Uint8Array(b.buffer, b.byteOffset, b.byteLength));
  return `int8|${h.digest('hex')}`;
}

const BOUNDED_OPS = new Set(['Clip', 'Sigmoid', 'HardSigmoid', 'Tanh', 'Softsign']);
const BOUNDED_EPILOGUES = new Set(['clip', 'sigmoid', 'hard_sigmoid', 'tanh']);

/** Whether `name` is the output of an activation with a fixed bound (an op, or a fused epilogue). */
export function boundedActivation(g: Graph, name: string): boolean {
  const p = g.nodes.find((n) => n.outputs.includes(name));
  if (!p) return false;
  if (p.domain === '' && BOUNDED_OPS.has(p.opType)) return true;
  const a = p.attrs.get('kiln.activation');
  return !!a && a.type === 'string' && BOUNDED_EPILOGUES.has(String(a.value));
}
