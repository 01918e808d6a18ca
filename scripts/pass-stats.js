#!/usr/bin/env node
// Prints, per model: ONNX node count, engine layer count, and what each pass changed — optimized and
// with the optimizer off. Usage: node scripts/pass-stats.js model.onnx... [--json]  (needs `npm run build:ts`)
'use strict';
const { compile } = require('../dist');

async function main() {
  const files = process.argv.slice(2).filter((a) => !a.startsWith('--'));
  const rows = [];
  for (const f of files) {
    const on = await compile(f, { timing: false });
    const off = await compile(f, { timing: false, optimize: false });
    const r = on.report;
    rows.push({
      model: f,
      onnxNodes: r.onnxNodes,
      layers: r.layers.length,
      layersUnoptimized: off.report.layers.length,
      passes: Object.fromEntries(r.passes.map((p) => [p.name, p.changed])),
      kinds: r.layers.reduce((m, l) => ((m[l.kind] = (m[l.kind] || 0) + 1), m), {}),
    });
    on.dispose();
    off.dispose();
  }
  if (process.argv.includes('--json')) return console.log(JSON.stringify(rows, null, 1));
  for (const r of rows) {
    console.log(`${r.model}: ${r.onnxNodes} ONNX nodes -> ${r.layers} layers (${r.layersUnoptimized} unoptimized)`);
    console.log('  passes: ' + Object.entries(r.passes).map(([k, v]) => `${k} ${v}`).join(', '));
    console.log('  layers: ' + Object.entries(r.kinds).map(([k, v]) => `${k} ${v}`).join(', '));
  }
}
main().catch((e) => {
  console.error(e.message);
  process.exit(1);
});
