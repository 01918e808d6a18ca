#!/usr/bin/env node
// The one list of the addon's C++ sources, read by both CMakeLists.txt and binding.gyp: every .cc in
// native/ and native/cpu/. Kernels register themselves, so adding a file here is all a new op needs.
'use strict';
const fs = require('fs');
const path = require('path');

const root = path.join(__dirname, '..');
const dirs = ['native', 'native/cpu'];
const files = [];
for (const d of dirs) {
  const abs = path.join(root, d);
  if (!fs.existsSync(abs)) continue;
  for (const f of fs.readdirSync(abs).sort()) if (f.endsWith('.cc')) files.push(`${d}/${f}`);
}
process.stdout.write(files.join(process.argv.includes('--cmake') ? ';' : '\n') + '\n');
