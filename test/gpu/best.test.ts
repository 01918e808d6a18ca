/**
 * precision 'best' on the cuda backend: the small CNN with calibration compares fp32, fp16 and int8
 * candidates, and the engine stays within 0.1 relative L2 of the CPU fp32 engine; with int8 made fast
 * by injected times (bestHooks) the last build mixes int8 layers with fp16 ones (casts between them)
 * and still runs within tolerance.
 */
import { Tensor, compile } from '../../src';
import type { LayerReport } from '../../src/engine';
import { bestHooks } from '../../src/quant/best';
import { rng } from '../unit/ops/tactic-helpers';
import { smallCnn } from '../unit/quant/quant-models';
import { noCuda, relNorm } from './cuda-helpers';

function feeds(n: number, seed: number): Record<string, Tensor>[] {
  const r = rng(seed);
  return Array.from({ length: n }, () => ({ x: new Tensor('float32', Float32Array.from({ length: 3 * 16 * 16 }, () => r() * 2 - 1), [1, 3, 16, 16]) }));
}

const CALIB = feeds(16, 11);
const HELD_OUT = feeds(3, 99);

const d = noCuda ? describe.skip : describe;
if (noCuda) test.skip(`GPU tests skipped: ${noCuda}`, () => undefined);

afterEach(() => {
  bestHooks.layerMs = undefined;
});

d("precision 'best' on cuda", () => {
  test('compares fp32, fp16 and int8 and stays within tolerance of fp32', async () => {
    const ref = await compile(smallCnn(), { device: 'cpu' });
    const e = await compile(smallCnn(), { precision: 'best', device: 'cuda', calibration: CALIB });
    expect(e.report.best!.candidates).toEqual(['fp32', 'fp16', 'int8']);
    for (const f of HELD_OUT) expect(relNorm((await e.infer(f)).y.data as Float32Array, (await ref.infer(f)).y.data as Float32Array)).toBeLessThan(0.1);
    e.dispose();
    ref.dispose();
  });

  test('a mixed int8 + fp16 engine runs within tolerance', async () => {
    bestHooks.layerMs = (p: string, l: LayerReport) => (p === 'int8' && (l.kind.startsWith('Int8') || l.kind === 'QuantizeLinear') ? 0.001 : p === 'fp16' ? 0.5 : 1);
    const ref = await compile(smallCnn(), { device: 'cpu' });
    const e = await compile(smallCnn(), { precision: 'best', device: 'cuda', calibration: CALIB, guard: false, layerPrecisions: { gap: 'fp16' } });
    const precisions = new Set(e.report.layers.map((l) => l.precision));
    expect(precisions.has('int8')).toBe(true);
    expect(precisions.has('fp16')).toBe(true);
    for (const f of HELD_OUT) expect(relNorm((await e.infer(f)).y.data as Float32Array, (await ref.infer(f)).y.data as Float32Array)).toBeLessThan(0.1);
    e.dispose();
    ref.dispose();
  });
});
