/** The timing cache: a rebuild reuses recorded tactic times and times nothing it has seen. */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { compile } from '../../src';
import { buildModel } from '../helpers/model-builder';

let seed = 2;
const rand = () => ((seed = (seed * 1664525 + 1013904223) >>> 0) / 2 ** 32) * 2 - 1;
const W = Array.from({ length: 8 * 4 * 9 }, rand);
const model = () =>
  buildModel({
    nodes: [
      { op: 'Conv', name: 'c', inputs: ['x', 'W'], outputs: ['h'], attrs: { pads: [1, 1, 1, 1] } },
      { op: 'MatMul', name: 'm', inputs: ['h', 'h2'], outputs: ['y'] },
    ],
    inputs: [{ name: 'x', dims: [1, 4, 8, 8] }, { name: 'h2', dims: [1, 8, 8, 8] }],
    outputs: [{ name: 'y', dims: [1, 8, 8, 8] }],
    initializers: [{ name: 'W', dims: [8, 4, 3, 3], floats: W }],
  });

let dir: string;
beforeAll(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-tc-'))));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

test('the first build writes the cache; the second takes every time from it', async () => {
  const file = path.join(dir, 'cache.json');
  const a = await compile(model(), { timingCache: file });
  const cache = JSON.parse(fs.readFileSync(file, 'utf8'));
  expect(cache).toMatchObject({ format: 1, backend: 'cpu' });
  const conv = a.report.layers.find((l) => l.kind === 'Conv')!;
  for (const c of conv.candidates) expect(cache.entries[`${conv.signature}|${c.tactic}`]).toBe(c.ms);
  // Doctor the cache so the slowest candidate looks fastest: a rebuild that reads it must choose it.
  const slow = conv.candidates.reduce((p, q) => ((q.ms ?? 0) > (p.ms ?? 0) ? q : p));
  cache.entries[`${conv.signature}|${slow.tactic}`] = 0;
  fs.writeFileSync(file, JSON.stringify(cache));
  const b = await compile(model(), { timingCache: file });
  const conv2 = b.report.layers.find((l) => l.kind === 'Conv')!;
  expect(conv2.tactic).toBe(slow.tactic);
  expect(conv2.candidates.find((c) => c.tactic === slow.tactic)!.ms).toBe(0);
  a.dispose();
  b.dispose();
});

test('a cache made for another device is ignored, said, and rewritten', async () => {
  const file = path.join(dir, 'other.json');
  fs.writeFileSync(file, JSON.stringify({ format: 1, kiln: '0.0.1', backend: 'cuda', device: 'Some GPU', capability: '8.0', libraries: '{}', entries: { 'x|y': 1 } }));
  const e = await compile(model(), { timingCache: file });
  expect(e.report.warnings.join('\n')).toMatch(/timing cache '.*other\.json' was made for Some GPU \(cuda, kiln 0\.0\.1\), not cpu x86_64/);
  expect(JSON.parse(fs.readFileSync(file, 'utf8')).backend).toBe('cpu');
  e.dispose();
});
