/**
 * Calibration: the fp32 graph runs on the CPU backend over the calibration feeds with the activations
 * that int8 layers will read exposed as outputs, and each of them accumulates its statistics
 * (calibrator.ts). The first few feeds are kept as the int8 accuracy guard's samples.
 */
import { DataType, dtypeName } from '../dtype';
import { KilnError } from '../errors';
import { Graph } from '../ir/graph';
import { lowerGraph } from '../lower/lower';
import { Plan, encodePlan } from '../lower/plan';
import { FAST_CPU, native } from '../native/binding';
import type { TensorLike } from '../tensor';
import { TensorStats } from './calibrator';

/** Calibration data: input feeds, as an array or an (async) iterable read once. */
export type CalibrationData = Iterable<Record<string, TensorLike>> | AsyncIterable<Record<string, TensorLike>>;

/** The input buffers of a feed in the plan's input order, checked against the plan's inputs. */
export function feedBuffers(plan: Plan, feed: Record<string, TensorLike>, where: string): ArrayBufferView[] {
  if (typeof feed !== 'object' || feed === null) throw new KilnError('INVALID_INPUT', `${where}: expected an object of input name → Tensor, received ${feed === null ? 'null' : typeof feed}`);
  return plan.inputs.map((i) => {
    const t = plan.tensors[i];
    const v = feed[t.name];
    if (!v) throw new KilnError('INVALID_INPUT', `${where}: input '${t.name}' is missing`);
    const dims = [...v.dims];
    if (v.type !== dtypeName(t.dtype) || dims.length !== t.shape.length || dims.some((d, k) => d !== t.shape[k]))
      throw new KilnError('INVALID_INPUT', `${where}: expected ${dtypeName(t.dtype)} [${t.shape.join(',')}] for input '${t.name}' but received ${v.type} [${dims.join(',')}]`);
    return v.data as ArrayBufferView;
  });
}

/** Feeds kept from the calibration set as the accuracy guards' samples. */
export const GUARD_SAMPLES = 4;

/** The input buffers of the first `n` feeds of `data` (the accuracy guards' samples). */
export async function firstFeeds(data: CalibrationData, plan: Plan, n: number): Promise<ArrayBufferView[][]> {
  const out: ArrayBufferView[][] = [];
  for await (const feed of data as AsyncIterable<Record<string, TensorLike>>) {
    out.push(feedBuffers(plan, feed, `calibration feed ${out.length}`));
    if (out.length >= n) break;
  }
  return out;
}

export interface Collected {
  stats: Map<string, TensorStats>;
  /** The first `keep` feeds' input buffers. */
  samples: ArrayBufferView[][];
  batches: number;
}

/** Runs the feeds through the fp32 graph `g` and collects the statistics of `tensors`. */
export async function collectStats(g: Graph, tensors: string[], data: CalibrationData, keep: number, checkAbort: () => void): Promise<Collected> {
  const plan = lowerGraph(g);
  const index = new Map(plan.tensors.map((t, i) => [t.name, i]));
  const read: { name: string; input?: number; output?: number }[] = [];
  for (const name of tensors) {
    const i = index.get(name);
    if (i === undefined) continue;
    const t = plan.tensors[i];
    if (t.dtype !== DataType.FLOAT) continue;
    if (t.kind === 'input') read.push({ name, input: plan.inputs.indexOf(i) });
    else {
      if (t.kind === 'activation') {
        t.kind = 'output';
        plan.outputs.push(i);
      }
      if (t.kind === 'output') read.push({ name, output: plan.outputs.indexOf(i) });
    }
  }
  const bytes = encodePlan(plan);
  const stats = new Map(read.map((r) => [r.name, new TensorStats()]));
  const samples: ArrayBufferView[][] = [];
  let batches = 0;
  for await (const feed of data as AsyncIterable<Record<string, TensorLike>>) {
    checkAbort();
    const inputs = feedBuffers(plan, feed, `calibration feed ${batches}`);
    // fp32 statistics from the CPU's faster tactics (untimed), as the accuracy guard runs its reference
    const outs = native().runPlan(bytes, inputs, FAST_CPU);
    for (const r of read) {
      const src = r.input !== undefined ? inputs[r.input] : new Float32Array(outs[r.output!]);
      stats.get(r.name)!.add(src instanceof Float32Array ? src : new Float32Array(src.buffer, src.byteOffset, src.byteLength / 4));
    }
    if (samples.length < keep) samples.push(inputs);
    batches++;
  }
  return { stats, samples, batches };
}
