#!/usr/bin/env node
// Runs a TypeScript benchmark straight from source: `node bench/run.js bench/cpu-vs-ort.ts [args]`.
// .ts files are transpiled on require with @swc/core (the compiler jest already uses); no type check
// here — `npx tsc -p bench/tsconfig.json` does that.
'use strict';
const fs = require('fs');
const path = require('path');
const { transformSync } = require('@swc/core');

require.extensions['.ts'] = (module, filename) => {
  const { code } = transformSync(fs.readFileSync(filename, 'utf8'), {
    filename,
    jsc: { target: 'es2022', parser: { syntax: 'typescript' } },
    module: { type: 'commonjs' },
    sourceMaps: 'inline',
  });
  module._compile(code, filename);
};

const [script, ...rest] = process.argv.slice(2);
if (!script) {
  process.stderr.write('usage: node bench/run.js <script.ts> [args]\n');
  process.exit(1);
}
process.argv = [process.argv[0], path.resolve(script), ...rest];
require(path.resolve(script));
