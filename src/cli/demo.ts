#!/usr/bin/env node
/**
 * `npm start`: kiln's main job on the bundled demo CNN (models/demo), with no GPU needed: compile,
 * serialize, reload from the bytes, infer, compare with the output onnxruntime-node computed
 * (models/demo/reference.json), a short benchmark, and the build report.
 *
 * Usage: node dist/cli/demo.js [model.onnx reference.json]
 */
import * as fs from 'fs';
import * as path from 'path';
import { compile, loadEngine } from '../index';
import type { Engine } from '../engine';
import { KilnError } from '../errors';
import { randomInputs } from './inputs';
import { measure, peakRssMb } from './measure';
import { ProgressBar, formatSeconds } from './progress';

interface Reference {
  input: { name: string; dims: number[]; seed: number };
  outputs: Record<string, { dims: number[]; data: number[] }>;
  tolerance: { rtol: number; atol: number };
}

const DEMO_DIR = path.join(__dirname, '..', '..', 'models', 'demo');

export async function demo(modelFile: string, referenceFile: string, out: (s: string) => void): Promise<boolean> {
  let ref: Reference;
  try {
    ref = JSON.parse(fs.readFileSync(referenceFile, 'utf8')) as Reference;
  } catch (e) {
    throw new KilnError('INVALID_INPUT', `cannot read the reference output '${referenceFile}' (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  out(`kiln demo: ${path.relative(process.cwd(), modelFile)}\n\n`);
  const bar = new ProgressBar(process.stderr);
  const t0 = Date.now();
  const built = await compile(modelFile, { onProgress: process.stderr.isTTY ? bar.update : undefined });
  bar.finish();
  const buildS = (Date.now() - t0) / 1000;
  let bytes: Uint8Array;
  try {
    bytes = built.serialize();
  } finally {
    built.dispose();
  }
  const t1 = Date.now();
  const engine = await loadEngine(bytes);
  try {
    return await report(engine, bytes.length, buildS, (Date.now() - t1) / 1000, ref, out);
  } finally {
    engine.dispose();
  }
}

async function report(engine: Engine, size: number, buildS: number, loadS: number, ref: Reference, out: (s: string) => void): Promise<boolean> {
  const r = engine.report;
  out(`1. compiled in ${formatSeconds(buildS)} (${r.backend}, ${r.device}, ${r.precision}): ${r.onnxNodes} ONNX nodes → ${r.layers.length} layers\n`);
  out(`2. serialized to ${size} bytes, loaded again in ${(loadS * 1000).toFixed(1)} ms\n`);

  const feeds = randomInputs(engine.inputs, ref.input.seed);
  const outputs = await engine.infer(feeds);
  let ok = true;
  for (const [name, exp] of Object.entries(ref.outputs)) {
    const got = outputs[name];
    if (!got) throw new KilnError('INTERNAL', `the engine has no output '${name}' that the reference has`);
    let maxAbs = 0;
    let bad = 0;
    exp.data.forEach((e, i) => {
      const d = Math.abs(Number(got.data[i]) - e);
      maxAbs = Math.max(maxAbs, d);
      if (!(d <= ref.tolerance.atol + ref.tolerance.rtol * Math.abs(e))) bad++;
    });
    const top = (xs: ArrayLike<number>) => Array.from(xs).reduce((best, x, i, a) => (x > a[best] ? i : best), 0);
    const same = top(got.data as Float32Array) === top(exp.data);
    ok &&= bad === 0 && same;
    out(
      `3. infer '${name}' [${got.dims.join(',')}] vs onnxruntime-node: max |diff| ${maxAbs.toExponential(2)}, ` +
        `${bad ? `${bad} of ${exp.data.length} outside tolerance` : 'all within tolerance'}, top class ${top(got.data as Float32Array)} ${same ? '(same)' : `(reference: ${top(exp.data)})`} → ${bad === 0 && same ? 'MATCH' : 'MISMATCH'}\n`,
    );
  }

  const s = await measure(() => engine.infer(feeds), { iterations: 200, warmup: 20 });
  out(
    `4. bench (200 runs after 20 warm-up): p50 ${s.p50_ms.toFixed(3)} ms, p90 ${s.p90_ms.toFixed(3)} ms, p99 ${s.p99_ms.toFixed(3)} ms, ` +
      `${s.throughput.toFixed(0)} inferences/s, peak RSS ${peakRssMb().toFixed(0)} MiB\n`,
  );
  out('\n5. build report\n');
  for (const l of r.layers)
    out(`   ${l.name.padEnd(14)} ${l.kind.padEnd(18)} ${l.tactic.padEnd(22)} from ${l.fusedFrom.join(' + ')}\n`);
  out(`   passes: ${r.passes.filter((p) => p.changed > 0).map((p) => `${p.name} (${p.changed})`).join(', ') || 'none changed anything'}\n`);
  out(`   memory: arena ${r.memory.arenaBytes} B, workspace ${r.memory.workspaceBytes} B, weights ${r.memory.constantBytes} B\n`);
  out(`\n${ok ? 'demo passed' : 'demo FAILED: the output does not match onnxruntime-node'}\n`);
  return ok;
}

if (require.main === module) {
  const [model = path.join(DEMO_DIR, 'model.onnx'), reference = path.join(DEMO_DIR, 'reference.json')] = process.argv.slice(2);
  demo(model, reference, (s) => process.stdout.write(s)).then(
    (ok) => {
      process.exitCode = ok ? 0 : 1;
    },
    (e) => {
      process.stderr.write(`kiln: ${e instanceof KilnError ? e.message : (e as Error).stack}\n`);
      process.exitCode = 1;
    },
  );
}
