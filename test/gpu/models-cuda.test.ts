/**
 * The exported models (models/README.md) on the cuda backend against the fp32 CPU reference (the
 * unoptimized CPU engine) on the same seeded inputs:
 *   fp32 with strict (no TF32): rel L2 ≤ 1e-4, the CPU tolerance of test/models;
 *   fp16: STYLE.md's rule — the error against fp32 is at most 4× a naive fp16 implementation's (the
 *   unoptimized plan with every layer in float16, run on the CPU in float16 storage with float32
 *   accumulation), with a floor of 1e-3 for models whose naive error is tiny.
 * KILN_GPU_MODELS (comma-separated file names) picks models, e.g. for a compute-sanitizer run.
 */
import * as fs from 'fs';
import * as path from 'path';
import { Tensor, compile } from '../../src';
import { bindShapes } from '../../src/compile';
import { prng } from '../../src/cli/inputs';
import { DataType } from '../../src/dtype';
import { inferGraph } from '../../src/ir/infer';
import { lowerGraph } from '../../src/lower/lower';
import { encodePlan } from '../../src/lower/plan';
import { FAST_CPU, native } from '../../src/native/binding';
import { importModel } from '../../src/onnx/import';
import { emulateHalf } from '../../src/passes/half-emulation';
import { assignHalfPrecision } from '../../src/passes/precision-assignment';
import type { TypedArray } from '../../src/tensor';
import { noCuda, relNorm } from './cuda-helpers';

const MODELS_DIR = path.resolve(__dirname, '..', '..', 'models');
const FP32_TOL = 1e-4;
const FP16_FACTOR = 4;
const FP16_FLOOR = 1e-3;

function image(seed: number): Record<string, Tensor> {
  const r = prng(seed);
  const x = Float32Array.from({ length: 3 * 64 * 64 }, () => Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r()));
  return { input: new Tensor('float32', x, [1, 3, 64, 64]) };
}
function tokens(seed: number): Record<string, Tensor> {
  const r = prng(seed);
  const ids = BigInt64Array.from({ length: 16 }, () => BigInt(Math.floor(r() * 1000)));
  const mask = BigInt64Array.from({ length: 16 }, (_, i) => (i < 12 ? 1n : 0n));
  return { input_ids: new Tensor('int64', ids, [1, 16]), attention_mask: new Tensor('int64', mask, [1, 16]) };
}

const FILES = (process.env.KILN_GPU_MODELS?.split(',') ?? fs.readdirSync(MODELS_DIR).filter((f) => f.endsWith('.onnx'))).sort();
const feedsOf = (file: string) => (/bert|gpt/.test(file) ? tokens(7) : image(7));
const floats = (t: Tensor): Float32Array => Float32Array.from(t.data as TypedArray, Number);

/** The naive fp16 implementation's outputs: the unoptimized plan, every layer float16, on the CPU. */
function naiveHalf(bytes: Uint8Array, feeds: Record<string, Tensor>): Float32Array[] {
  const g = importModel(bytes);
  bindShapes(g, {});
  inferGraph(g);
  const plan = lowerGraph(g);
  assignHalfPrecision(plan, new Set());
  const inputs = plan.inputs.map((i) => feeds[plan.tensors[i].name].data as TypedArray);
  const run = emulateHalf(plan);
  return native()
    .runPlan(encodePlan(run), inputs, FAST_CPU)
    .map((b, k) => (run.tensors[run.outputs[k]].dtype === DataType.FLOAT ? new Float32Array(b) : new Float32Array(0)));
}

const d = noCuda ? describe.skip : describe;
if (noCuda) test.skip(`GPU tests skipped: ${noCuda}`, () => undefined);

d('exported models on cuda', () => {
  for (const file of FILES) {
    test(`${file}: fp32 strict and fp16 against the fp32 CPU reference`, async () => {
      const bytes = new Uint8Array(fs.readFileSync(path.join(MODELS_DIR, file)));
      const feeds = feedsOf(file);
      const ref = await compile(bytes, { device: 'cpu', optimize: false, timing: false });
      const want = await ref.infer(feeds);
      ref.dispose();
      const names = Object.keys(want).filter((n) => want[n].type === 'float32');
      const fp32 = await compile(bytes, { device: 'cuda', strict: true });
      const got32 = await fp32.infer(feeds);
      expect(fp32.report.layers.filter((l) => l.backend === 'cpu').map((l) => l.name)).toEqual([]);
      fp32.dispose();
      const fp16 = await compile(bytes, { device: 'cuda', precision: 'fp16' });
      const got16 = await fp16.infer(feeds);
      fp16.dispose();
      const naive = naiveHalf(bytes, feeds);
      const outNames = Object.keys(want);
      for (const n of names) {
        const r = floats(want[n]);
        const e32 = relNorm(floats(got32[n]), r);
        const e16 = relNorm(floats(got16[n]), r);
        const eNaive = relNorm(naive[outNames.indexOf(n)], r);
        // one line per output in the log: what was measured
        console.log(`${file} ${n}: fp32 rel L2 ${e32.toExponential(2)}, fp16 ${e16.toExponential(2)} (naive fp16 ${eNaive.toExponential(2)})`);
        expect(e32).toBeLessThanOrEqual(FP32_TOL);
        expect(e16).toBeLessThanOrEqual(Math.max(FP16_FACTOR * eNaive, FP16_FLOOR));
      }
    }, 300_000);
  }
});
