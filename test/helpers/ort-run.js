#!/usr/bin/env node
// Runs a model with onnxruntime-node in its own process (jest's module sandbox breaks onnxruntime's
// typed-array checks on the tensors its native side returns). stdin: JSON { model, feeds: [{ name, type,
// dims, data (base64) }] }; stdout: JSON { outputs: [{ name, type, dims, data (base64) }] }.
'use strict';
const ort = require('onnxruntime-node');

const ARRAYS = { float32: Float32Array, float64: Float64Array, int64: BigInt64Array, int32: Int32Array, int8: Int8Array, uint8: Uint8Array, bool: Uint8Array };

async function main() {
  const chunks = [];
  for await (const c of process.stdin) chunks.push(c);
  const req = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  const session = await ort.InferenceSession.create(req.model);
  const outputs = [];
  for (const feeds of req.runs) {
    const f = {};
    for (const t of feeds) {
      const bytes = Buffer.from(t.data, 'base64');
      const A = ARRAYS[t.type];
      const copy = new Uint8Array(bytes.byteLength);
      copy.set(bytes);
      f[t.name] = new ort.Tensor(t.type, new A(copy.buffer, 0, copy.byteLength / A.BYTES_PER_ELEMENT), t.dims);
    }
    const r = await session.run(f);
    outputs.push(
      Object.entries(r).map(([name, t]) => ({
        name,
        type: t.type,
        dims: [...t.dims],
        data: Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength).toString('base64'),
      })),
    );
  }
  await session.release();
  process.stdout.write(JSON.stringify({ outputs }));
}

main().catch((e) => {
  process.stderr.write(String(e && e.stack ? e.stack : e));
  process.exit(1);
});
