/**
 * cuda.normalize's row kernel (cuda/norm.cu: one warp per row for meanvar/rms over one contiguous dim
 * of at most 2048) against the CPU engine in fp32 (≤ 1e-5) and in fp16 (≤ 2e-3 relative L2: a few
 * float16 roundings of inputs, scale, bias and output), at the row lengths of each register budget
 * (≤ 256, ≤ 1024, ≤ 2048) and past it (the block kernel), with scale, bias and statistics outputs.
 */
import { Tensor, compile } from '../../src';
import { buildModel } from '../helpers/model-builder';
import { noCuda, relNorm } from './cuda-helpers';

const d = noCuda ? describe.skip : describe;
if (noCuda) test.skip(`GPU tests skipped: ${noCuda}`, () => undefined);

let seed = 5;
const rnd = () => ((seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) / 2 ** 32);
const f32 = (dims: number[], off = 0) => new Tensor('float32', Float32Array.from({ length: dims.reduce((a, b) => a * b, 1) }, () => off + 4 * rnd() - 2), dims);

d('LayerNormalization rows on cuda', () => {
  test.each([[[3, 5, 64]], [[2, 128, 768]], [[1, 7, 1000]], [[1, 3, 2048]], [[1, 2, 3000]]])('x %j', async (dims) => {
    const C = dims[dims.length - 1];
    const m = buildModel({
      nodes: [{ op: 'LayerNormalization', inputs: ['x', 's', 'b'], outputs: ['y', 'mean', 'rstd'], attrs: { axis: -1, epsilon: 1e-5 } }],
      inputs: [{ name: 'x', dims }, { name: 's', dims: [C] }, { name: 'b', dims: [C] }],
      outputs: [{ name: 'y' }, { name: 'mean' }, { name: 'rstd' }],
    });
    const feeds = { x: f32(dims, 3), s: f32([C]), b: f32([C]) };
    const run = async (o: Parameters<typeof compile>[1]) => {
      const e = await compile(m, o);
      try {
        return await e.infer(feeds);
      } finally {
        e.dispose();
      }
    };
    const ref = await run({ device: 'cpu' });
    const g32 = await run({ device: 'cuda' });
    const g16 = await run({ device: 'cuda', precision: 'fp16', guard: false });
    for (const k of ['y', 'mean', 'rstd']) {
      expect([k, relNorm(g32[k].data as Float32Array, ref[k].data as Float32Array) <= 1e-5]).toEqual([k, true]);
      expect([k, relNorm(g16[k].data as Float32Array, ref[k].data as Float32Array) <= 2e-3]).toEqual([k, true]);
    }
  });
});
