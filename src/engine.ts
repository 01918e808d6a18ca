/**
 * Engine: a compiled model, ready to run. Built by compile() or loaded from bytes by loadEngine().
 * infer() runs off the main thread and is safe to call many times at once.
 */
import { DataType, TypedArray, byteSize, dtypeFromName, dtypeName, viewAs } from './dtype';
import { KilnError } from './errors';
import { NativeEngine, callAsync, call } from './native/binding';
import { Tensor, TensorLike } from './tensor';
import type { CompareOptions, CompareResult } from './compare';

export interface TensorInfo {
  name: string;
  /** Element type name: 'float32', 'int64', … */
  type: string;
  dims: number[];
}

export interface PassReport {
  name: string;
  /** How many nodes the pass changed (removed, rewrote or fused). */
  changed: number;
  /** The nodes it changed. */
  nodes: string[];
  /** layout-assignment: the reformat layers it placed between channels-last and NCHW layers. */
  reformats?: number;
}

export interface LayerReport {
  name: string;
  /** Native op kind. */
  kind: string;
  /** The ONNX node names the layer was made from. */
  fusedFrom: string[];
  /** Where the layer runs: the engine's backend, or 'cpu' for a fallback layer of a GPU engine. */
  backend: string;
  /** Bytes a fallback layer copies between device and host per run (0 otherwise). */
  transferBytes: number;
  /** What the layer's timing depends on (kind, attributes, tensor types and shapes): the timing cache's key. */
  signature: string;
  /** The kernel chosen, and every candidate's median time (ms; null when it was not timed, with the
   *  reason in `error` when it failed while being timed and was left out of the choice). */
  tactic: string;
  candidates: { tactic: string; ms: number | null; error?: string }[];
  precision: string;
  /** precision 'best': the choice made for the ONNX nodes this layer was made from. */
  choice?: BestChoice;
}

/**
 * precision 'best': one group of ONNX nodes (the nodes the candidate engines fused together), each
 * candidate precision's time for it and the precision chosen, with why.
 */
export interface BestChoice {
  /** The group's ONNX nodes. */
  nodes: string[];
  /** Per candidate precision, the ms of the group's layers in that engine (their chosen tactics'
   *  times, with the quantize and cast layers the precision adds around them). */
  ms: Partial<Record<'fp32' | 'fp16' | 'int8', number>>;
  chosen: 'fp32' | 'fp16' | 'int8';
  reason: string;
}

/** precision 'best': the precisions compared, why any was left out, and the choice per node group. */
export interface BestReport {
  candidates: ('fp32' | 'fp16' | 'int8')[];
  notes: string[];
  groups: BestChoice[];
}

export interface EngineReport {
  backend: string;
  device: string;
  precision: string;
  kilnVersion: string;
  buildOptions: Record<string, unknown>;
  passes: PassReport[];
  layers: LayerReport[];
  /** Bytes of the activation arena (from tensor lifetimes), of the workspace and of the weights. */
  memory: { arenaBytes: number; workspaceBytes: number; constantBytes: number };
  /** ONNX node count before optimization and layer count after. */
  onnxNodes: number;
  buildSeconds?: number;
  /** fp16 builds with the accuracy guard: layers compared, and those pinned to fp32 with why. */
  precisionGuard?: PrecisionGuardReport;
  /** precision 'best': the candidate precisions and the choice per ONNX node group. */
  best?: BestReport;
  warnings: string[];
}

export interface PrecisionGuardReport {
  checked: number;
  pinned: { layer: string; kind: string; reason: string }[];
}

/** What TS stores in the engine's META section. */
export interface EngineMeta {
  inputs: TensorInfo[];
  outputs: TensorInfo[];
  passes: PassReport[];
  onnxNodes: number;
  precision: string;
  warnings: string[];
  buildSeconds?: number;
  precisionGuard?: PrecisionGuardReport;
  best?: BestReport;
}

/** @internal The engine's plan as the addon describes it: tensor table (ONNX value names), layers, outputs. */
export interface DescribedPlan {
  tensors: { name: string; dtype: number; shape: number[]; kind: string }[];
  ops: { name: string; kind: string; origin: string[]; inputs: number[]; outputs: number[] }[];
  outputs: number[];
}

interface Described {
  header: { kilnVersion: string; backend: string; device: string; capability: string; buildOptions: Record<string, unknown> };
  memory: EngineReport['memory'];
  layers: { name: string; kind: string; backend: string; transferBytes: number; signature: string; tactic: string; candidates: { tactic: string; ms: number | null; error?: string }[] }[];
  plan: DescribedPlan;
  meta: EngineMeta | null;
}

/**
 * A layer of an int8 or 'best' engine runs in 'int8' when it is an int8 kind (Int8Conv, Int8Gemm) or reads
 * and writes only 8-bit integers (an int8 max pool; not a quantize layer); a
 * layer of an fp16 or 'best' engine in 'fp16' when it writes a float16 tensor; any other layer of
 * these engines in 'fp32'.
 */
function layerPrecision(engine: string, plan: DescribedPlan, i: number): string {
  const op = plan.ops[i];
  if (!op || !['int8', 'fp16', 'best'].includes(engine)) return engine;
  if (engine !== 'fp16' && op.kind.startsWith('Int8')) return 'int8';
  // a layer that reads and writes only 8-bit integers (an int8 max pool) runs in int8 too
  const int8 = (t: number) => t >= 0 && (plan.tensors[t]?.dtype === DataType.INT8 || plan.tensors[t]?.dtype === DataType.UINT8);
  if (engine !== 'fp16' && op.kind !== 'QuantizeLinear' && op.inputs.length && op.inputs.every(int8) && op.outputs.every(int8)) return 'int8';
  if (engine !== 'int8' && op.outputs.some((o) => o >= 0 && plan.tensors[o]?.dtype === DataType.FLOAT16)) return 'fp16';
  return 'fp32';
}

/** The 'best' choice made for a layer's ONNX nodes. */
function choiceOf(best: BestReport | undefined, fusedFrom: string[]): BestChoice | undefined {
  if (!best || !fusedFrom.length) return undefined;
  return best.groups.find((g) => g.nodes.includes(fusedFrom[0]));
}

export class Engine {
  /** The engine's inputs, in order. */
  readonly inputs: readonly TensorInfo[];
  /** The engine's outputs, in order. */
  readonly outputs: readonly TensorInfo[];
  private native: NativeEngine | undefined;
  private readonly described: Described;

  /** @internal use compile() or loadEngine() */
  constructor(native: NativeEngine) {
    this.native = native;
    this.described = JSON.parse(native.describe()) as Described;
    const meta = this.described.meta;
    if (!meta) throw new KilnError('INVALID_ENGINE', 'engine section META: missing the input and output descriptions');
    this.inputs = Object.freeze(meta.inputs);
    this.outputs = Object.freeze(meta.outputs);
  }

  private live(): NativeEngine {
    if (!this.native) throw new KilnError('DISPOSED', 'the engine was disposed; load or build it again');
    return this.native;
  }

  /** The build report: passes, layers with their tactics and fused-from nodes, memory plan. */
  get report(): EngineReport {
    const d = this.described;
    const meta = d.meta!;
    return {
      backend: d.header.backend,
      device: d.header.device,
      precision: meta.precision,
      kilnVersion: d.header.kilnVersion,
      buildOptions: d.header.buildOptions,
      passes: meta.passes,
      layers: d.layers.map((l, i) => {
        const choice = choiceOf(meta.best, d.plan.ops[i]?.origin ?? []);
        return {
          name: l.name,
          kind: l.kind,
          fusedFrom: d.plan.ops[i]?.origin ?? [],
          backend: l.backend,
          transferBytes: l.transferBytes,
          signature: l.signature,
          tactic: l.tactic,
          candidates: l.candidates,
          precision: layerPrecision(meta.precision, d.plan, i),
          ...(choice ? { choice } : {}),
        };
      }),
      memory: d.memory,
      onnxNodes: meta.onnxNodes,
      buildSeconds: meta.buildSeconds,
      ...(meta.precisionGuard ? { precisionGuard: meta.precisionGuard } : {}),
      ...(meta.best ? { best: meta.best } : {}),
      // Layers a GPU engine runs on the CPU are never silent: each is named with the bytes it copies.
      warnings: [
        ...meta.warnings,
        ...d.layers
          .filter((l) => l.backend !== d.header.backend)
          .map((l) => `layer '${l.name}' (${l.kind}) runs on the ${l.backend} backend: the ${d.header.backend} backend has no kernel for it; ${l.transferBytes} bytes are copied between device and host per run`),
      ],
    };
  }

  /**
   * Runs the engine. `feeds` maps every input name to a Tensor (kiln's or onnxruntime-node's).
   * Resolves to the outputs by name. Runs off the main thread; concurrent calls are safe.
   */
  async infer(feeds: Record<string, Tensor | TensorLike>): Promise<Record<string, Tensor>> {
    const engine = this.live();
    const arrays = this.checkFeeds(feeds);
    const outs = await callAsync(() => engine.infer(arrays));
    return this.wrapOutputs(outs);
  }

  /** Runs once and returns the outputs with each layer's wall time (ms). */
  async profile(feeds: Record<string, Tensor | TensorLike>): Promise<{ outputs: Record<string, Tensor>; layers: { name: string; kind: string; ms: number }[] }> {
    const engine = this.live();
    const r = await callAsync(() => engine.profile(this.checkFeeds(feeds)));
    return {
      outputs: this.wrapOutputs(r.outputs),
      layers: r.times.map((ms, i) => ({ name: this.described.layers[i].name, kind: this.described.layers[i].kind, ms })),
    };
  }

  /**
   * Times `iterations` runs of the engine's layers alone — inputs uploaded once, nothing copied back —
   * and returns each run's milliseconds: device time between two events on a GPU, wall time on the CPU.
   * This is the "GPU-only" latency of the benchmarks; infer() adds the copies and the JS round trip.
   */
  async timeRuns(feeds: Record<string, Tensor | TensorLike>, iterations = 100): Promise<number[]> {
    const engine = this.live();
    const arrays = this.checkFeeds(feeds);
    return callAsync(() => engine.timeRuns(arrays, iterations));
  }

  /**
   * Checks the engine against the fp32 CPU reference of an ONNX model (kiln's Polygraphy): runs both
   * on `feeds` and reports, per output, max abs error, relative L2 error, cosine similarity and the
   * engine's NaN/Inf counts. When an output is off by more than the tolerance it also names the first
   * layer, in topological order, whose value diverges (`firstDivergence`: the engine layer, the ONNX
   * nodes fused into it, the reference's ONNX node). An engine built with `debug: { exposeAll: true }`
   * is checked layer by layer itself; any other one is rebuilt from `options.model` with its recorded
   * build options plus exposeAll to locate the layer.
   * @param options.model the ONNX model (path or bytes): the engine does not keep it.
   * @param options.tolerance relative L2 error allowed (default 1e-3 for fp32 engines, 1e-2 otherwise).
   * @param options.constants the values of the inputs the engine was built with as `constants`.
   * @throws KilnError ENGINE_MISMATCH when the model's inputs or outputs are not the engine's.
   */
  async compare(feeds: Record<string, Tensor | TensorLike>, options: CompareOptions): Promise<CompareResult> {
    this.live();
    const { compareEngine } = await import('./compare');
    return compareEngine(this, feeds, options);
  }

  /**
   * @internal Runs once and returns every value the plan outputs by name: the engine's outputs and,
   * for an engine built with `debug.exposeAll`, every intermediate value.
   */
  async inferAll(feeds: Record<string, Tensor | TensorLike>): Promise<Map<string, Tensor>> {
    const engine = this.live();
    const arrays = this.checkFeeds(feeds);
    const outs = await callAsync(() => engine.infer(arrays));
    const p = this.described.plan;
    const result = new Map<string, Tensor>();
    p.outputs.forEach((ti, i) => {
      const t = p.tensors[ti];
      const code = t.dtype as DataType;
      const n = t.shape.reduce((a, b) => a * b, 1);
      result.set(t.name, Tensor.fromCode(code, viewAs(code, new Uint8Array(outs[i], 0, n * byteSize(code))), t.shape));
    });
    return result;
  }

  /** @internal The engine's plan, as the addon describes it (tensor table, layers, outputs). */
  get plan(): DescribedPlan {
    return this.described.plan;
  }

  /** The engine's bytes, to store and load later with loadEngine(). */
  serialize(): Uint8Array {
    const engine = this.live();
    const b = call(() => engine.serialize());
    return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
  }

  /** Frees the engine's memory. Runs already in flight finish first; later calls fail with DISPOSED. */
  dispose(): void {
    this.native?.dispose();
    this.native = undefined;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.dispose();
  }

  private checkFeeds(feeds: Record<string, Tensor | TensorLike>): ArrayBufferView[] {
    if (typeof feeds !== 'object' || feeds === null)
      throw new KilnError('INVALID_INPUT', `infer: expected an object of input name → Tensor, received ${feeds === null ? 'null' : typeof feeds}`);
    const names = new Set(this.inputs.map((i) => i.name));
    for (const k of Object.keys(feeds))
      if (!names.has(k)) throw new KilnError('INVALID_INPUT', `infer: unknown input '${k}'; the engine's inputs are ${[...names].map((n) => `'${n}'`).join(', ')}`);
    return this.inputs.map((info) => {
      const t = feeds[info.name];
      if (t === undefined) throw new KilnError('INVALID_INPUT', `infer: missing input '${info.name}' (${info.type} [${info.dims.join(',')}])`);
      if (typeof t !== 'object' || t === null || typeof t.type !== 'string' || !Array.isArray(t.dims) || !ArrayBuffer.isView(t.data))
        throw new KilnError('INVALID_INPUT', `infer: input '${info.name}' must be a Tensor (type, data, dims)`);
      const dims = [...t.dims];
      if (t.type !== info.type || dims.length !== info.dims.length || dims.some((d, i) => d !== info.dims[i]))
        throw new KilnError('INVALID_INPUT', `Expected ${info.type} for input '${info.name}' of shape [${info.dims.join(',')}] but received ${t.type} [${dims.join(',')}]`);
      const code = dtypeFromName(info.type)!;
      const data = t.data as TypedArray;
      const need = info.dims.reduce((a, b) => a * b, 1) * byteSize(code);
      if (data.byteLength !== need)
        throw new KilnError('INVALID_INPUT', `infer: input '${info.name}' holds ${data.byteLength} bytes of data, ${info.type} [${info.dims.join(',')}] needs ${need}`);
      return data;
    });
  }

  private wrapOutputs(outs: ArrayBuffer[]): Record<string, Tensor> {
    const result: Record<string, Tensor> = {};
    this.outputs.forEach((info, i) => {
      const code = dtypeFromName(info.type) as DataType;
      const n = info.dims.reduce((a, b) => a * b, 1);
      result[info.name] = Tensor.fromCode(code, viewAs(code, new Uint8Array(outs[i], 0, n * byteSize(code))), info.dims);
    });
    return result;
  }
}

export function tensorInfo(name: string, dtype: DataType, dims: number[]): TensorInfo {
  return { name, type: dtypeName(dtype), dims };
}
