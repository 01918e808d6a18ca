#!/usr/bin/env node
// Builds the addon with cmake-js into build/Release/kiln.node (run by `npm install`).
// KILN_SKIP_NATIVE=1 skips it (packaging); KILN_BUILD_JOBS sets the parallelism.
'use strict';
const { spawnSync } = require('child_process');
const os = require('os');
const path = require('path');

if (process.env.KILN_SKIP_NATIVE === '1') process.exit(0);
const root = path.join(__dirname, '..');
const jobs = process.env.KILN_BUILD_JOBS || String(Math.max(1, os.cpus().length));
const cmakeJs = require.resolve('cmake-js/bin/cmake-js');
const r = spawnSync(process.execPath, [cmakeJs, 'build', '--parallel', jobs, '--log-level', 'warn'], { cwd: root, stdio: 'inherit' });
process.exit(r.status === null ? 1 : r.status);
