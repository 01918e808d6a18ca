/**
 * Post-training int8 on the CNNs PyTorch exported (models/README.md): calibrated on 8 seeded N(0,1)
 * images, checked on 4 other images against the fp32 engine — cosine similarity ≥ 0.99 and the int8
 * layers actually present. Random weights say little about task accuracy (bench/README.md); this is
 * the quantization arithmetic on real exported graphs (Conv+BN folded, residual adds, ReLU6, GAP).
 * mobilenet_v2 with random weights loses more in int8 (no residual on most blocks, 17 of them): its
 * bar is what the guard's output budget reaches (0.94–0.97 measured on these images, about 30 layers
 * moved to fp32; 0.60 before bounded activations kept their range and the guard had an output budget).
 */
import * as path from 'path';
import { Tensor, compile } from '../../src';
import { prng } from '../../src/cli/inputs';
import type { TypedArray } from '../../src/tensor';
import { cosine } from '../helpers/metrics';

const MODELS_DIR = path.resolve(__dirname, '..', '..', 'models');

function image(seed: number): Record<string, Tensor> {
  const r = prng(seed);
  const x = Float32Array.from({ length: 3 * 64 * 64 }, () => Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r()));
  return { input: new Tensor('float32', x, [1, 3, 64, 64]) };
}

test.each([
  ['resnet-tiny-ts.onnx', 0.99],
  ['resnet-tiny-dynamo.onnx', 0.99],
  ['mobilenet_v2-ts.onnx', 0.93],
] as const)('%s: int8 (entropy calibration) vs fp32 on held-out images, cosine >= %s', async (file, bar) => {
  const full = path.join(MODELS_DIR, file);
  const calibration = Array.from({ length: 8 }, (_, i) => image(100 + i));
  const held = Array.from({ length: 4 }, (_, i) => image(200 + i));
  const fp32 = await compile(full, { device: 'cpu' });
  const int8 = await compile(full, { device: 'cpu', precision: 'int8', calibration });
  try {
    const int8Layers = int8.report.layers.filter((l) => l.precision === 'int8').length;
    expect(int8Layers).toBeGreaterThan(0);
    for (const f of held) {
      const want = await fp32.infer(f);
      const got = await int8.infer(f);
      for (const name of Object.keys(want)) {
        const c = cosine(got[name].data as TypedArray, want[name].data as TypedArray);
        expect({ file, name, cosine: c >= bar ? 'ok' : c }).toEqual({ file, name, cosine: 'ok' });
      }
    }
  } finally {
    fp32.dispose();
    int8.dispose();
  }
}, 180000);
