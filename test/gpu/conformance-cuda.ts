/**
 * The ONNX backend node tests (test/conformance) with device 'cuda', imported into shard files
 * (conformance-cuda-*.test.ts) so that jest runs the shards in parallel and a crash stops one shard
 * only. Layers without a cuda tactic fall back to the CPU. Each shard's summary goes to
 * $KILN_CONFORMANCE_SUMMARY with the shard's name before '.json'; KILN_CONFORMANCE_TRACE names a file
 * that gets each test's name as it starts (to find a test that kills the process).
 */
import * as fs from 'fs';
import { noCuda } from './cuda-helpers';

export function conformanceShard(name: string, only: string): void {
  if (noCuda) {
    test.skip(`GPU conformance skipped: ${noCuda}`, () => undefined);
    return;
  }
  process.env.KILN_CONFORMANCE_DEVICE = 'cuda';
  if (!process.env.KILN_CONFORMANCE_ONLY) process.env.KILN_CONFORMANCE_ONLY = only;
  const summary = process.env.KILN_CONFORMANCE_SUMMARY ?? 'conformance-cuda.json';
  process.env.KILN_CONFORMANCE_SUMMARY = summary.replace(/(\.json)?$/, `-${name}.json`);
  const trace = process.env.KILN_CONFORMANCE_TRACE;
  if (trace) beforeEach(() => fs.appendFileSync(`${trace}-${name}`, `${expect.getState().currentTestName}\n`));
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  require('../conformance/conformance.test');
}
