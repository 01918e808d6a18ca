/**
 * The ONNX backend node tests (test/conformance) with device 'cuda': the same suite, imported, each
 * model built on the cuda backend (layers without a cuda tactic fall back to the CPU). The summary goes
 * to $KILN_CONFORMANCE_SUMMARY as in the default run.
 */
import { noCuda } from './cuda-helpers';

if (noCuda) {
  test.skip(`GPU conformance skipped: ${noCuda}`, () => undefined);
} else {
  process.env.KILN_CONFORMANCE_DEVICE = 'cuda';
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  require('../conformance/conformance.test');
}
