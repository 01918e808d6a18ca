#!/usr/bin/env node
// Where an int8 model's accuracy goes, on the CPU backend (no GPU needed: kiln's int8 layers compute
// the same bytes on the CPU as on CUDA, so these cosines are the GPU engine's too). For one image model
// (one float input [batch, C, H, W]):
//
//   node bench/int8-accuracy.js model.onnx [--calib N] [--holdout K] [--calibrator C] [--percentile P]
//                               [--pin LABEL=REGEX]... [--results FILE]
//
// Rows, each against the fp32 CPU engine on K held-out images (bench/inputs.js; default 16), with the
// worst and mean output cosine and rel L2:
//   int8            every quantizable layer int8 (guard off), calibrated on N images (default 8)
//   LABEL           the same with the Conv/Gemm/MatMul nodes whose names match REGEX pinned to fp32
//                   (e.g. --pin layer1=/layer1/: what one stage's quantization costs)
//   weights only    the fp32 model with every quantizable layer's weights rounded to int8 as kiln
//                   quantizes them (per output channel, max|w| / 127): the error no activation
//                   calibration can remove
// --results FILE appends one JSON object per row. Run `npx tsc` first (it loads dist/).
'use strict';
const fs = require('fs');
const { onnx } = require('onnx-proto');
const { compile, Tensor } = require('../dist');
const { quantizeWeight } = require('../dist/quant/insert-qdq');
const { errorStats } = require('../dist/compare');
const { CALIB_STREAM, HOLDOUT_STREAM, sampleRng, imageSample } = require('./inputs');

const args = process.argv.slice(2);
const opt = (k, d) => (args.includes(k) ? args[args.indexOf(k) + 1] : d);
const pins = args.flatMap((a, i) => (a === '--pin' ? [args[i + 1]] : [])).map((p) => {
  const eq = p.indexOf('=');
  if (eq < 1) throw new Error(`--pin expects LABEL=REGEX, got '${p}'`);
  return { label: p.slice(0, eq), re: new RegExp(p.slice(eq + 1)) };
});
const file = args.find((a, i) => a.endsWith('.onnx') && !['--pin', '--results'].includes(args[i - 1]));
if (!file) {
  console.error('usage: node bench/int8-accuracy.js model.onnx [--calib N] [--holdout K] [--calibrator C] [--pin LABEL=REGEX]... [--results FILE]');
  process.exit(2);
}
const calibN = Number(opt('--calib', '8'));
const holdN = Number(opt('--holdout', '16'));
const calibrator = opt('--calibrator', undefined);
const percentile = opt('--percentile', undefined);
const results = opt('--results', undefined);

const bytes = fs.readFileSync(file);
const model = onnx.ModelProto.decode(bytes);
const inits = new Set(model.graph.initializer.map((t) => t.name));
const input = model.graph.input.find((i) => !inits.has(i.name));
const dims = input.type.tensorType.shape.dim.map((d, k) => (k === 0 ? 1 : Number(d.dimValue)));
if (dims.length !== 4) throw new Error(`${file}: expected one image input [batch, C, H, W], got '${input.name}' of rank ${dims.length}`);
const feed = (stream, i) => ({ [input.name]: new Tensor('float32', imageSample(sampleRng(stream, i), dims[1], dims[2], dims[3]), dims) });
const shapes = { [input.name]: dims };

/** The model with the weights (input 1, a float initializer) of its quantizable nodes rounded to int8 and back. */
function roundedWeights() {
  const m = onnx.ModelProto.decode(bytes);
  const byName = new Map(m.graph.initializer.map((t) => [t.name, t]));
  for (const n of m.graph.node) {
    const t = byName.get(n.input[1]);
    if (!t || t.dataType !== 1 || !['Conv', 'Gemm', 'MatMul'].includes(n.opType)) continue;
    const attr = (k) => Number(n.attribute.find((a) => a.name === k)?.i ?? 0);
    const axis = n.opType === 'Conv' ? 0 : n.opType === 'MatMul' || !attr('transB') ? 1 : 0;
    const w = t.rawData?.length ? new Float32Array(Uint8Array.from(t.rawData).buffer) : Float32Array.from(t.floatData);
    const q = quantizeWeight(w, t.dims.map(Number), axis);
    const inner = q.shape.slice(axis + 1).reduce((a, b) => a * b, 1);
    const out = Float32Array.from(q.data, (v, i) => v * q.scales[Math.floor(i / inner) % q.shape[axis]]);
    t.rawData = new Uint8Array(out.buffer);
    t.floatData = [];
  }
  return onnx.ModelProto.encode(m).finish();
}

(async () => {
  const calibration = Array.from({ length: calibN }, (_, i) => feed(CALIB_STREAM, i));
  const held = Array.from({ length: holdN }, (_, i) => feed(HOLDOUT_STREAM, i));
  const ref = await compile(bytes, { device: 'cpu', precision: 'fp32', shapes });
  const want = [];
  for (const f of held) want.push(Object.values(await ref.infer(f))[0]);
  ref.dispose();
  const quantizable = model.graph.node.filter((n) => ['Conv', 'Gemm', 'MatMul'].includes(n.opType)).map((n) => n.name);
  const cache = `${require('os').tmpdir()}/kiln-int8-accuracy-${process.pid}.calib.json`;
  const int8 = (layerPrecisions) => ({ device: 'cpu', precision: 'int8', shapes, calibration, calibrationCache: cache, guard: false, layerPrecisions, ...(calibrator ? { calibrator } : {}), ...(percentile ? { percentile: Number(percentile) } : {}) });
  const rows = [
    { label: 'int8', build: () => compile(bytes, int8({})) },
    ...pins.map((p) => ({ label: p.label, build: () => compile(bytes, int8(Object.fromEntries(quantizable.filter((n) => p.re.test(n)).map((n) => [n, 'fp32'])))) })),
    { label: 'weights only', build: () => compile(roundedWeights(), { device: 'cpu', precision: 'fp32', shapes }) },
  ];
  console.log(`${file}: ${calibN} calibration / ${holdN} held-out images, calibrator ${calibrator ?? 'entropy (default)'}`);
  for (const row of rows) {
    const e = await row.build();
    const errs = [];
    for (let i = 0; i < held.length; i++) errs.push(errorStats('output', Object.values(await e.infer(held[i]))[0], want[i], 0));
    const layers = {};
    for (const l of e.report.layers) layers[l.precision] = (layers[l.precision] ?? 0) + 1;
    e.dispose();
    const r = {
      date: new Date().toISOString(),
      model: file.replace(/^.*\//, ''),
      row: row.label,
      calib: calibN,
      holdout: holdN,
      calibrator: calibrator ?? 'entropy',
      cosine: Math.min(...errs.map((x) => x.cosine)),
      cosine_mean: errs.reduce((a, x) => a + x.cosine, 0) / errs.length,
      rel_l2: Math.max(...errs.map((x) => x.relL2)),
      layers_by_precision: layers,
    };
    console.log(`${r.row.padEnd(16)} cos worst ${r.cosine.toFixed(5)} mean ${r.cosine_mean.toFixed(5)}  rel L2 worst ${r.rel_l2.toFixed(3)}  ${JSON.stringify(layers)}`);
    if (results) fs.appendFileSync(results, JSON.stringify(r) + '\n');
  }
  fs.rmSync(cache, { force: true });
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
