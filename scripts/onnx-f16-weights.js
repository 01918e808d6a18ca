#!/usr/bin/env node
// Reassembles an ONNX model that came back from the GPU machine with its float initializers stored as
// float16 (to fit the device tool's 16 MiB-per-file, 64 MiB-per-call limit; bench/README.md, "int8
// accuracy on the CPU"), converting them back to float32:
//   node scripts/onnx-f16-weights.js OUT.onnx PART...     (the parts in order, e.g. model.part-*)
'use strict';
const fs = require('fs');
const { onnx } = require('onnx-proto');

const [out, ...parts] = process.argv.slice(2);
if (!out || parts.length === 0) {
  console.error('usage: node scripts/onnx-f16-weights.js OUT.onnx PART...');
  process.exit(2);
}
const FLOAT = 1, FLOAT16 = 10;

// IEEE half → float (subnormals, infinities and NaN included)
function half(h) {
  const s = h & 0x8000 ? -1 : 1, e = (h >> 10) & 0x1f, f = h & 0x3ff;
  if (e === 0) return s * f * 2 ** -24;
  if (e === 31) return f ? NaN : s * Infinity;
  return s * (1 + f / 1024) * 2 ** (e - 15);
}

const m = onnx.ModelProto.decode(Buffer.concat(parts.map((p) => fs.readFileSync(p))));
let n = 0;
for (const t of m.graph.initializer) {
  if (t.dataType !== FLOAT16) continue;
  // float16 data is rawData, or int32Data holding one value per element
  const raw = t.rawData?.length ? t.rawData : null;
  const count = raw ? raw.length / 2 : t.int32Data.length;
  const view = raw ? new DataView(raw.buffer, raw.byteOffset, raw.byteLength) : null;
  const f = new Float32Array(count);
  for (let i = 0; i < count; i++) f[i] = half(view ? view.getUint16(2 * i, true) : t.int32Data[i]);
  t.dataType = FLOAT;
  t.rawData = new Uint8Array(f.buffer);
  t.int32Data = [];
  n++;
}
fs.writeFileSync(out, onnx.ModelProto.encode(m).finish());
console.log(`${out}: ${n} float16 initializers back to float32`);
