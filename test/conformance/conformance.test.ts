/**
 * The ONNX backend node tests (../shared/onnx-conformance) through compile → serialize → load → infer,
 * compared with numpy.testing.assert_allclose(rtol=1e-3, atol=1e-7) as the reference runner does.
 * `npm run conformance` runs this alone; the JSON summary { passed, failed, skipped, total, byOp } goes
 * to $KILN_CONFORMANCE_SUMMARY (default conformance-summary.json).
 */
import * as fs from 'fs';
import * as path from 'path';
import { KilnError, compile, loadEngine } from '../../src';
import { importModel } from '../../src/onnx/import';
import { getOp } from '../../src/ops/registry';
import { Tensor } from '../../src/tensor';
import { CONFORMANCE_DIR, allClose, readTensor } from '../helpers/onnx-data';
import { SKIP, SKIP_PATTERNS } from './skip';

interface Row {
  test: string;
  op_types: string;
  primary_op: string;
  subgraph_op_types: string;
  input_types: string;
  output_types: string;
}

const rows: Row[] = (() => {
  const file = path.join(CONFORMANCE_DIR, 'ops.tsv');
  if (!fs.existsSync(file)) return [];
  const [head, ...lines] = fs.readFileSync(file, 'utf8').trim().split('\n');
  const cols = head.split('\t');
  return lines.map((l) => Object.fromEntries(l.split('\t').map((v, i) => [cols[i], v])) as unknown as Row);
})();

const ONLY = process.env.KILN_CONFORMANCE_ONLY ? new RegExp(process.env.KILN_CONFORMANCE_ONLY) : undefined;
// test/gpu/conformance-cuda.test.ts runs this suite again with device 'cuda'.
const DEVICE = (process.env.KILN_CONFORMANCE_DEVICE ?? 'auto') as 'auto' | 'cpu' | 'cuda';

function skipReason(r: Row): string | undefined {
  if (SKIP[r.test]) return SKIP[r.test];
  for (const [re, why] of SKIP_PATTERNS) if (re.test(r.test)) return why;
  if (/seq\(|opt\(/.test(r.input_types + r.output_types)) return 'inputs or outputs are sequences or optionals; kiln engines take and give tensors';
  if (/\bstring\b/.test(r.input_types + r.output_types)) return 'string tensors: kiln engines hold numeric tensors only';
  const exotic = /\b(complex\w*)\b/.exec(r.input_types + ',' + r.output_types);
  if (exotic) return `element type ${exotic[1]} is not supported`;
  const ops = [...r.op_types.split(','), ...r.subgraph_op_types.split(',')].filter((o) => o);
  for (const op of ops) {
    const [domain, type] = op.includes(':') ? op.split(':') : ['', op];
    if (!getOp(domain, type)) return `op not implemented: ${op}`;
  }
  return undefined;
}

type Outcome = 'passed' | 'failed' | 'skipped';
const results: { test: string; op: string; outcome: Outcome; reason?: string }[] = [];

describe('ONNX backend node tests', () => {
  if (rows.length === 0) {
    test.skip(`conformance data not found at ${CONFORMANCE_DIR}`, () => undefined);
    return;
  }
  for (const r of rows) {
    if (ONLY && !ONLY.test(r.test)) continue;
    const reason = skipReason(r);
    if (reason) {
      results.push({ test: r.test, op: r.primary_op, outcome: 'skipped', reason });
      test.skip(`${r.test} — ${reason}`, () => undefined);
      continue;
    }
    test(r.test, async () => {
      const dir = path.join(CONFORMANCE_DIR, 'node', r.test);
      const data = path.join(dir, 'test_data_set_0');
      const nIn = r.input_types ? r.input_types.split(',').length : 0;
      const nOut = r.output_types.split(',').length;
      const inputs: Tensor[] = [];
      for (let i = 0; i < nIn; i++) inputs.push(readTensor(path.join(data, `input_${i}.pb`)));
      let outcome: Outcome = 'failed';
      let why = '';
      try {
        // Inputs get the data's dims. Shape inputs (Reshape's shape, Reduce's axes…) that a static-shape
        // engine needs known are fixed with the 'constants' option when the build names them.
        const names = importModel(fs.readFileSync(path.join(dir, 'model.onnx'))).inputs;
        const byName = Object.fromEntries(names.map((n, i) => [n, inputs[i]]));
        const constants: Record<string, Tensor> = {};
        let engine0;
        for (;;) {
          const shapes = Object.fromEntries(names.filter((n) => !(n in constants)).map((n) => [n, [...byName[n].dims]]));
          try {
            engine0 = await compile(path.join(dir, 'model.onnx'), { shapes, constants, device: DEVICE });
            break;
          } catch (e) {
            const v = (e as KilnError).value;
            if ((e as KilnError).code !== 'SHAPE' || !v || !(v in byName) || v in constants) throw e;
            constants[v] = byName[v];
          }
        }
        const engine = await loadEngine(engine0.serialize());
        engine0.dispose();
        const feeds = Object.fromEntries(engine.inputs.map((info) => [info.name, byName[info.name]]));
        const outs = await engine.infer(feeds);
        const msgs: string[] = [];
        for (let i = 0; i < nOut; i++) {
          const exp = readTensor(path.join(data, `output_${i}.pb`));
          const m = allClose(outs[engine.outputs[i].name], exp);
          if (m) msgs.push(`output ${i} '${engine.outputs[i].name}': ${m}`);
        }
        engine.dispose();
        why = msgs.join('; ');
        outcome = why ? 'failed' : 'passed';
      } catch (e) {
        why = (e as Error).message;
      }
      results.push({ test: r.test, op: r.primary_op, outcome, reason: why || undefined });
      expect(why).toBe('');
    });
  }
  afterAll(() => {
    const byOp: Record<string, { passed: number; failed: number; skipped: number }> = {};
    for (const x of results) {
      const s = (byOp[x.op] ??= { passed: 0, failed: 0, skipped: 0 });
      s[x.outcome]++;
    }
    const count = (o: Outcome) => results.filter((x) => x.outcome === o).length;
    const summary = {
      passed: count('passed'),
      failed: count('failed'),
      skipped: count('skipped'),
      total: results.length,
      byOp,
      failures: results.filter((x) => x.outcome === 'failed').map((x) => ({ test: x.test, reason: x.reason })),
      skips: results.filter((x) => x.outcome === 'skipped').map((x) => ({ test: x.test, reason: x.reason })),
    };
    const out = process.env.KILN_CONFORMANCE_SUMMARY ?? 'conformance-summary.json';
    fs.writeFileSync(out, JSON.stringify(summary, null, 1));
  });
});
