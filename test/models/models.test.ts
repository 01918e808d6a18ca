/**
 * Real models exported by PyTorch's own exporters (models/README.md): each is built with kiln and run
 * on seeded random inputs, and every output is compared with onnxruntime-node on the same inputs:
 * rel L2 = ||kiln − ort|| / ||ort|| ≤ 1e-4. A model that needs an op kiln does not implement fails,
 * naming every such op (never skipped).
 */
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { Tensor, compile } from '../../src';
import { prng } from '../../src/cli/inputs';
import { importModel } from '../../src/onnx/import';
import { getOp } from '../../src/ops/registry';
import { relL2 } from '../helpers/metrics';

const MODELS_DIR = path.resolve(__dirname, '..', '..', 'models');
const TOL = 1e-4;
const VOCAB = 1000;
const SEQ = 16;

function image(seed: number): Record<string, Tensor> {
  const r = prng(seed);
  const x = new Float32Array(3 * 64 * 64);
  for (let i = 0; i < x.length; i++) x[i] = Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r()); // N(0, 1)
  return { input: new Tensor('float32', x, [1, 3, 64, 64]) };
}

/** Valid token ids in [0, VOCAB) and a padding mask: ones, then `pad` trailing zeros. */
function tokens(seed: number, pad: number): Record<string, Tensor> {
  const r = prng(seed);
  const ids = new BigInt64Array(SEQ);
  const mask = new BigInt64Array(SEQ);
  for (let i = 0; i < SEQ; i++) {
    ids[i] = BigInt(Math.floor(r() * VOCAB));
    mask[i] = i < SEQ - pad ? 1n : 0n;
  }
  return { input_ids: new Tensor('int64', ids, [1, SEQ]), attention_mask: new Tensor('int64', mask, [1, SEQ]) };
}

interface Case {
  file: string;
  feeds: Record<string, Tensor>[];
}

const imageFeeds = [image(1), image(2)];
const tokenFeeds = [tokens(3, 0), tokens(4, 5)];
const MODELS: [string, Record<string, Tensor>[]][] = [
  ['mobilenet_v2', imageFeeds],
  ['resnet-tiny', imageFeeds],
  ['bert-tiny', tokenFeeds],
  ['gpt-tiny', tokenFeeds],
];
const CASES: Case[] = MODELS.flatMap(([m, feeds]) => ['ts', 'dynamo'].map((e) => ({ file: `${m}-${e}.onnx`, feeds })));

/** The op types of the model (as kiln imports it) that no kiln op module registers. */
function missingOps(file: string): string[] {
  const g = importModel(fs.readFileSync(file), { baseDir: path.dirname(file) });
  const missing = new Set<string>();
  for (const n of g.nodes) if (!getOp(n.domain, n.opType)) missing.add(n.domain ? `${n.domain}:${n.opType}` : n.opType);
  return [...missing].sort();
}

/** onnxruntime-node's outputs for each feed set, computed in a child process (test/helpers/ort-run.js). */
function ortRun(model: string, runs: Record<string, Tensor>[]): { name: string; type: string; dims: number[]; data: Float32Array }[][] {
  const req = {
    model,
    runs: runs.map((f) =>
      Object.entries(f).map(([name, t]) => ({ name, type: t.type, dims: [...t.dims], data: Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength).toString('base64') })),
    ),
  };
  const out = execFileSync(process.execPath, [path.join(__dirname, '..', 'helpers', 'ort-run.js')], { input: JSON.stringify(req), maxBuffer: 1 << 28 });
  const parsed = JSON.parse(out.toString('utf8')) as { outputs: { name: string; type: string; dims: number[]; data: string }[][] };
  return parsed.outputs.map((outs) =>
    outs.map((o) => {
      const b = Buffer.from(o.data, 'base64');
      return { ...o, data: new Float32Array(new Uint8Array(b).buffer) };
    }),
  );
}

test('every model file is present (models/README.md says how to make them)', () => {
  for (const c of CASES) expect(fs.existsSync(path.join(MODELS_DIR, c.file)) ? c.file : `missing: ${c.file}`).toBe(c.file);
});

describe.each(CASES)('$file', ({ file, feeds }) => {
  const full = path.join(MODELS_DIR, file);

  test(`kiln matches onnxruntime within rel L2 ${TOL}`, async () => {
    const missing = missingOps(full);
    if (missing.length) throw new Error(`${file}: op not implemented: ${missing.join(', ')}`);
    const engine = await compile(full);
    try {
      const wants = ortRun(full, feeds);
      for (const [k, f] of feeds.entries()) {
        const got = await engine.infer(f);
        const want = wants[k];
        expect(Object.keys(got).sort()).toEqual(want.map((w) => w.name).sort());
        for (const w of want) {
          const g = got[w.name];
          expect({ name: w.name, type: g.type, dims: [...g.dims] }).toEqual({ name: w.name, type: w.type, dims: w.dims });
          const err = relL2(g.data, w.data);
          // The message names the model, input set and output when it fails.
          expect({ file, inputSet: k, output: w.name, relL2: err <= TOL ? 'ok' : err }).toEqual({ file, inputSet: k, output: w.name, relL2: 'ok' });
        }
      }
    } finally {
      engine.dispose();
    }
  }, 180000);
});
