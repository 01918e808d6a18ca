/**
 * precision 'best' (compile() hands it over after resolving the options): per group of ONNX nodes, the
 * fastest precision the backend runs, within the accuracy budget.
 *   1. Candidate engines: fp32 always (the reference), fp16 on cuda, int8 with calibration data
 *      (`calibration`, or an existing `calibrationCache`; without either only the float precisions are
 *      compared, and the report says so). They share one timing cache (a temporary file when the user
 *      gave none) and one calibration cache, so the last build times and calibrates nothing again.
 *      Candidates are built without the accuracy guard and without `layerPrecisions`: they measure
 *      each precision everywhere.
 *   2. Layers are mapped across the engines by their ONNX origin (report.layers[i].fusedFrom): ONNX
 *      nodes any engine fused into one layer form one group. A layer with no origin (a quantize or
 *      cast layer a precision adds) counts against the group of the next layer that has one: such
 *      layers are placed right before their first reader. A group's time in a precision is the sum of
 *      its layers' chosen tactics' ms (a layer whose tactic was not timed — one candidate — is timed by
 *      profiling that engine).
 *   3. Per group the fastest float precision is chosen (ties keep the higher precision); int8 only
 *      where the group has an int8 layer and its time, quantize layers included, beats that. Pins from
 *      `layerPrecisions` override the choice.
 *   4. The last build: an int8 build (float groups pinned out of quantization; on cuda its float
 *      layers run in fp16 unless chosen or pinned fp32) or, with no int8 group, an fp16 (cuda) or fp32
 *      (cpu) build with the fp32 choices pinned. Its accuracy guards move layers beyond `tolerance`
 *      up: int8 → float (fp16 on cuda) → fp32; the user's pins are never moved.
 *   5. A mixed last engine whose layers take longer in all than the fastest one-precision candidate's
 *      (by UNIFORM_MARGIN: reformats between precisions cost more than the groups gained) is replaced
 *      by that candidate's precision everywhere, unless `layerPrecisions` pins layers; the report says so.
 *   6. On cuda the engine so built may not be the one its layer times promised: its accuracy guard may
 *      have moved layers up (an int8 engine whose layers lose accuracy runs them in fp32), and layer
 *      times summed miss the gaps between kernels and overstate cheap layers. So each candidate is
 *      also timed as a whole, and unless `layerPrecisions` pins layers, an engine that is not the
 *      fastest float candidate (by whole-engine time) everywhere is timed against that candidate built
 *      everywhere (guarded too); the candidate replaces it when faster by UNIFORM_MARGIN, and the report
 *      says so. (With injected layer times — bestHooks.layerMs — only when bestHooks.engineMs is given.)
 * engine.report.best lists the groups with each candidate's ms, the choice and why; each layer's
 * `choice` is its group's. A summary line goes to the warnings.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { randomInputs } from '../cli/inputs';
import type { MixedBuild, ModelSource } from '../compile';
import type { BestChoice, BestReport, Engine, LayerReport } from '../engine';
import { KilnError } from '../errors';
import type { ResolvedOptions } from '../options';
import type { LayerPrecision } from './layer-precisions';

export type BestMeta = BestReport;

/**
 * @internal Test hook: a layer's time (ms) in a candidate engine, replacing the measured one when it
 * returns a number (tests make the choice deterministic with it).
 */
export const bestHooks: {
  layerMs?: (precision: LayerPrecision, layer: LayerReport) => number | undefined;
  /** a whole engine's time (ms), replacing the measured one (step 6) */
  engineMs?: (engine: Engine) => number | undefined;
} = {};

type Build = (model: ModelSource, o: ResolvedOptions, mixed?: MixedBuild) => Promise<Engine>;

/** How much faster (a fraction) the fastest one-precision candidate must be than the mixed engine to be
 *  built instead: the layer times are measured one layer at a time, so small differences are noise. */
const UNIFORM_MARGIN = 0.03;

/** Runs of the profile that times the layers no tactic time covers (the median is taken). */
const PROFILE_RUNS = 5;

/** Timed runs of a whole engine in step 6 (the median is taken). */
const ENGINE_RUNS = 30;

/** Each layer's time in `engine` ('own': a mixed engine, each layer in its own precision): its chosen
 *  tactic's, else its median over a few profiled runs. */
async function layerTimes(engine: Engine, precision: LayerPrecision | 'own'): Promise<number[]> {
  const layers = engine.report.layers;
  const tactic = layers.map((l) => bestHooks.layerMs?.(precision === 'own' ? (l.precision as LayerPrecision) : precision, l) ?? l.candidates.find((c) => c.tactic === l.tactic)?.ms ?? null);
  if (tactic.every((ms) => ms !== null && ms >= 0)) return tactic as number[];
  const feeds = randomInputs(engine.inputs, 1);
  const runs: number[][] = [];
  for (let r = 0; r < PROFILE_RUNS; r++) runs.push((await engine.profile(feeds)).layers.map((l) => l.ms));
  return tactic.map((ms, i) => {
    if (ms !== null && ms >= 0) return ms;
    const t = runs.map((run) => run[i]).sort((a, b) => a - b);
    return t[Math.floor(t.length / 2)];
  });
}

/** GPU (or CPU) time of one run of the whole engine: the median of timed runs on generated inputs. */
async function engineMs(engine: Engine): Promise<number> {
  const hooked = bestHooks.engineMs?.(engine);
  if (hooked !== undefined) return hooked;
  const t = (await engine.timeRuns(randomInputs(engine.inputs, 1), ENGINE_RUNS)).sort((a, b) => a - b);
  return t[Math.floor(t.length / 2)];
}

/** Union-find over ONNX node names. */
class Groups {
  private parent = new Map<string, string>();
  find(x: string): string {
    let p = this.parent.get(x) ?? x;
    if (p !== x) {
      p = this.find(p);
      this.parent.set(x, p);
    }
    return p;
  }
  union(names: readonly string[]): void {
    for (const n of names) if (!this.parent.has(n)) this.parent.set(n, n);
    for (let i = 1; i < names.length; i++) {
      const a = this.find(names[0]);
      const b = this.find(names[i]);
      if (a !== b) this.parent.set(b, a);
    }
  }
  members(): Map<string, string[]> {
    const m = new Map<string, string[]>();
    for (const n of this.parent.keys()) (m.get(this.find(n)) ?? m.set(this.find(n), []).get(this.find(n))!).push(n);
    return m;
  }
}

/** One candidate engine's layers and times. */
export interface CandidateLayers {
  precision: LayerPrecision;
  layers: { name: string; kind: string; fusedFrom: string[]; ms: number }[];
  /** one run of the whole engine (ms): float candidates, where step 6 applies */
  engineMs?: number;
}

const ORDER: LayerPrecision[] = ['fp32', 'fp16', 'int8'];
const fmt = (ms: number) => `${Number(ms.toPrecision(3))} ms`;

/**
 * The one-precision candidate to build instead of a mixed engine whose layers take `mixedMs` in all:
 * the fastest candidate in total, when it is faster than the mixed engine by UNIFORM_MARGIN.
 */
export function uniformInstead(cands: readonly CandidateLayers[], mixedMs: number): { precision: LayerPrecision; ms: number } | undefined {
  if (!cands.length) return undefined;
  const totals = cands.map((c) => ({ precision: c.precision, ms: c.layers.reduce((a, l) => a + l.ms, 0) }));
  const fastest = totals.reduce((a, b) => (b.ms < a.ms ? b : a));
  return fastest.ms < mixedMs * (1 - UNIFORM_MARGIN) ? fastest : undefined;
}

/**
 * The choice per ONNX node group from the candidates' layer times; `pins` (ONNX node or layer names →
 * precision) override it.
 */
export function chooseGroups(cands: readonly CandidateLayers[], pins: Readonly<Record<string, LayerPrecision>> = {}): BestChoice[] {
  const groups = new Groups();
  for (const c of cands) for (const l of c.layers) if (l.fusedFrom.length) groups.union(l.fusedFrom);
  // per candidate: group root → ms, and the roots holding an int8 layer
  const ms = new Map<LayerPrecision, Map<string, number>>();
  const hasInt8 = new Set<string>();
  const layerGroup = new Map<string, string>();
  for (const c of cands) {
    const m = new Map<string, number>();
    ms.set(c.precision, m);
    let pending = 0;
    let last: string | undefined;
    for (const l of c.layers) {
      if (!l.fusedFrom.length) {
        pending += l.ms;
        continue;
      }
      const g = groups.find(l.fusedFrom[0]);
      if (!layerGroup.has(l.name)) layerGroup.set(l.name, g);
      m.set(g, (m.get(g) ?? 0) + l.ms + pending);
      pending = 0;
      last = g;
      if (c.precision === 'int8' && l.kind.startsWith('Int8')) hasInt8.add(g);
    }
    if (last !== undefined && pending) m.set(last, m.get(last)! + pending);
  }
  const pinOf = (root: string, nodes: string[]): LayerPrecision | undefined => {
    for (const [name, p] of Object.entries(pins)) if (nodes.includes(name) || layerGroup.get(name) === root) return p;
    return undefined;
  };
  const out: BestChoice[] = [];
  for (const [root, nodes] of groups.members()) {
    const times: BestChoice['ms'] = {};
    for (const p of ORDER) {
      const t = ms.get(p)?.get(root);
      if (t !== undefined && (p !== 'int8' || hasInt8.has(root))) times[p] = t;
    }
    const floats = ORDER.filter((p) => p !== 'int8' && times[p] !== undefined);
    let chosen: LayerPrecision = floats.reduce((a, p) => (times[p]! < times[a]! ? p : a), floats[0] ?? 'fp32');
    const list = ORDER.filter((p) => times[p] !== undefined)
      .map((p) => `${p} ${fmt(times[p]!)}`)
      .join(', ');
    let reason = floats.length > 1 ? `${chosen} is the fastest float precision (${list})` : `${list}`;
    if (times.int8 !== undefined && times[chosen] !== undefined) {
      if (times.int8 < times[chosen]!) {
        reason = `int8 is the fastest, its quantize layers included (${list})`;
        chosen = 'int8';
      } else reason = `int8 is not faster with its quantize layers (${list}); ${chosen} kept`;
    } else if (ms.has('int8') && times.int8 === undefined) reason += '; no int8 layer runs it';
    const pin = pinOf(root, nodes);
    if (pin !== undefined) {
      chosen = pin;
      reason = `pinned to ${pin} by layerPrecisions (${list})`;
    }
    out.push({ nodes, ms: times, chosen, reason });
  }
  return out;
}

/** The 'best' build: candidates, choice, last build (see the header). */
export async function buildBest(model: ModelSource, o: ResolvedOptions, backend: 'cpu' | 'cuda', build: Build): Promise<Engine> {
  const notes: string[] = [];
  const floats: LayerPrecision[] = backend === 'cuda' ? ['fp32', 'fp16'] : ['fp32'];
  const calibrated = o.calibration !== undefined || (o.calibrationCache !== undefined && fs.existsSync(o.calibrationCache));
  const runs = [...floats, ...(calibrated ? ['int8' as const] : [])];
  for (const [layer, p] of Object.entries(o.layerPrecisions))
    if (!runs.includes(p))
      throw new KilnError(
        'INVALID_OPTION',
        `Option 'layerPrecisions' pins '${layer}' to ${p}, which precision 'best' cannot run here: it compares ${runs.join(', ')} on the ${backend} backend${p === 'int8' ? " (int8 needs 'calibration' or a 'calibrationCache')" : ''}`,
      );
  if (!calibrated) notes.push(`precision 'best': int8 not considered: no calibration data (give 'calibration' or a 'calibrationCache'); only ${floats.join(' and ')} compared`);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-best-'));
  try {
    const timingCache = o.timingCache ?? path.join(tmp, 'timing.json');
    const calibrationCache = o.calibrationCache ?? path.join(tmp, 'calibration.json');
    const base: ResolvedOptions = { ...o, timingCache, calibrationCache, onProgress: undefined, layerPrecisions: {}, guard: false };
    const cands: CandidateLayers[] = [];
    // step 6 (whole engines) applies on cuda, and with injected layer times only where engine times are too
    const wholeEngines = backend === 'cuda' && !(bestHooks.layerMs && !bestHooks.engineMs);
    const measure = async (precision: LayerPrecision) => {
      const e = await build(model, { ...base, precision });
      try {
        const ms = await layerTimes(e, precision);
        cands.push({
          precision,
          layers: e.report.layers.map((l, i) => ({ name: l.name, kind: l.kind, fusedFrom: l.fusedFrom, ms: ms[i] })),
          ...(wholeEngines && precision !== 'int8' ? { engineMs: await engineMs(e) } : {}),
        });
      } finally {
        e.dispose();
      }
    };
    for (const p of floats) await measure(p);
    if (calibrated) {
      try {
        await measure('int8');
      } catch (e) {
        if (!(e instanceof KilnError) || e.code === 'CANCELLED') throw e;
        notes.push(`precision 'best': int8 not considered: ${e.message}`);
      }
    }
    const choices = chooseGroups(cands, o.layerPrecisions);
    const int8 = choices.some((c) => c.chosen === 'int8');
    // Pins for the last build: the float choices (chosen int8 stays unpinned so that its guard may
    // move it; on cuda chosen fp16 too), and the user's pins as given.
    const pins: Record<string, LayerPrecision> = {};
    for (const c of choices) {
      const pin = c.chosen === 'fp32' || (int8 && c.chosen === 'fp16') ? c.chosen : undefined;
      if (pin) for (const n of c.nodes) pins[n] = pin;
    }
    Object.assign(pins, o.layerPrecisions);
    const count = (p: LayerPrecision) => choices.filter((c) => c.chosen === p).length;
    const summary = `precision 'best' (${cands.map((c) => c.precision).join(', ')} compared): ${ORDER.filter((p) => count(p))
      .map((p) => `${count(p)} node group(s) in ${p}`)
      .join(', ')}; each layer's choice and the candidates' times are in report.layers[i].choice`;
    const last: ResolvedOptions = {
      ...o,
      precision: int8 ? 'int8' : backend === 'cuda' ? 'fp16' : 'fp32',
      layerPrecisions: pins,
      timingCache,
      calibrationCache,
    };
    const mixed = await build(model, last, {
      half: backend === 'cuda' && int8,
      userPins: o.layerPrecisions,
      best: { candidates: cands.map((c) => c.precision), notes, groups: choices },
      warnings: [...notes, summary],
    });
    // 5. A mixed engine pays for its reformats (casts, quantize layers) between precisions: when it
    // comes out slower than the fastest candidate that runs one precision everywhere, that one is built
    // instead (its own accuracy guard applies). Not with the user's pins, which only a mixed engine keeps.
    if (Object.keys(o.layerPrecisions).length) return mixed;
    const kinds = new Set(choices.map((c) => c.chosen));
    // the precision the built engine runs everywhere, if one
    let built: LayerPrecision | undefined = kinds.size === 1 ? [...kinds][0] : undefined;
    let engine = mixed;
    // one build with every group in `precision`, the notes so far in its report
    const uniformBuild = (precision: LayerPrecision, overridden: string) =>
      build(
        model,
        { ...o, precision, layerPrecisions: {}, timingCache, calibrationCache },
        {
          half: false,
          userPins: {},
          best: { candidates: cands.map((c) => c.precision), notes, groups: choices.map((c) => (c.chosen === precision ? c : { ...c, chosen: precision, reason: `${c.reason}; overridden: ${overridden}` })) },
          warnings: [...notes, summary],
        },
      );
    if (kinds.size > 1) {
      const mixedMs = (await layerTimes(mixed, 'own')).reduce((a, b) => a + b, 0);
      const uniform = uniformInstead(cands, mixedMs);
      if (uniform) {
        mixed.dispose();
        notes.push(`precision 'best': the mixed engine's layers take ${fmt(mixedMs)} against ${fmt(uniform.ms)} for ${uniform.precision} everywhere (reformats between precisions cost more than the groups gained): built ${uniform.precision}`);
        engine = await uniformBuild(uniform.precision, `the ${uniform.precision} engine is faster as a whole`);
        built = uniform.precision;
      }
    }
    // 6. whole engines: the one built against the fastest float candidate everywhere
    if (!wholeEngines) return engine;
    // the float candidates by their whole-engine times (a cast layer's time summed is not what it costs)
    const floatTotals = cands.filter((c) => c.precision !== 'int8').map((c) => ({ precision: c.precision, ms: c.engineMs ?? c.layers.reduce((a, l) => a + l.ms, 0) }));
    if (!floatTotals.length) return engine;
    const fastestFloat = floatTotals.reduce((a, b) => (b.ms < a.ms ? b : a)).precision;
    if (built === fastestFloat) return engine;
    const engineTime = await engineMs(engine);
    const alt = await uniformBuild(fastestFloat, `the ${fastestFloat} engine is faster as a whole`);
    try {
      const altTime = await engineMs(alt);
      const what = built ? `the ${built} engine` : 'the mixed engine';
      const pinned = engine.report.precisionGuard?.pinned.length ?? 0;
      const moved = pinned ? ` (its accuracy guard moved ${pinned} layer(s) to higher precision)` : '';
      if (!(altTime < engineTime * (1 - UNIFORM_MARGIN))) {
        alt.dispose();
        return engine;
      }
      const note = `precision 'best': ${what}${moved} runs in ${fmt(engineTime)} against ${fmt(altTime)} for ${fastestFloat} everywhere: built ${fastestFloat}`;
      alt.report.warnings.push(note);
      alt.report.best?.notes.push(note);
      engine.dispose();
      return alt;
    } catch (e) {
      alt.dispose();
      throw e;
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}
