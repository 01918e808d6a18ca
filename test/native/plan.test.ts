/**
 * The Plan contract, read on both sides: the TS encoder must produce the golden bytes exactly, and
 * the C++ decoder must read them back into the golden JSON. Regenerate both with KILN_UPDATE_GOLDEN=1
 * only for a deliberate format change (and bump PLAN_VERSION then).
 */
import * as fs from 'fs';
import * as path from 'path';
import { encodePlan } from '../../src/lower/plan';
import { native } from '../../src/native/binding';
import { goldenPlan } from './golden-plan';

const BIN = path.join(__dirname, '..', 'fixtures', 'golden.plan');
const JSON_FILE = path.join(__dirname, '..', 'fixtures', 'golden.plan.json');

if (process.env.KILN_UPDATE_GOLDEN) {
  const bytes = encodePlan(goldenPlan());
  fs.writeFileSync(BIN, bytes);
  fs.writeFileSync(JSON_FILE, JSON.stringify(JSON.parse(native().planToJson(bytes)), null, 1) + '\n');
}

test('TS encodes the golden plan to the golden bytes', () => {
  expect(Buffer.from(encodePlan(goldenPlan()))).toEqual(fs.readFileSync(BIN));
});

test('C++ decodes the golden bytes to the golden description', () => {
  const got = JSON.parse(native().planToJson(new Uint8Array(fs.readFileSync(BIN))));
  expect(got).toEqual(JSON.parse(fs.readFileSync(JSON_FILE, 'utf8')));
  expect(got.ops[0].attrs.body.ops[0].kind).toBe('Copy');
  expect(got.tensors[3].view).toEqual({ base: 2, byteOffset: 12 });
});

test('every truncation of a plan is refused, never a crash', () => {
  const bytes = new Uint8Array(fs.readFileSync(BIN));
  for (let n = 0; n < bytes.length; n++) expect(() => native().planToJson(bytes.slice(0, n))).toThrow(/plan/);
});

test('a plan naming a tensor out of range is refused', () => {
  const p = goldenPlan();
  p.ops[1].inputs = [99];
  expect(() => native().planToJson(encodePlan(p))).toThrow("[INVALID_ENGINE] plan: layer 'copy' input refers to tensor 99 of 5");
});

test('a view past the end of its base is refused', () => {
  const p = goldenPlan();
  p.tensors[3].view = { base: 2, byteOffset: 16 };
  expect(() => native().planToJson(encodePlan(p))).toThrow("[INVALID_ENGINE] plan: view 'y_row1' runs past the end of 'y'");
});

test('a constant whose bytes do not match its shape is refused', () => {
  const p = goldenPlan();
  p.tensors[1].data = new Uint8Array(8);
  expect(() => native().planToJson(encodePlan(p))).toThrow("[INVALID_ENGINE] plan: constant 'w' holds 8 bytes, its shape [3] needs 12");
});

test('a tensor too large to address is refused, not allocated with an overflowed size', () => {
  const p = goldenPlan();
  p.tensors[2].shape = [2 ** 31, 2 ** 31];
  expect(() => native().planToJson(encodePlan(p))).toThrow("[UNSUPPORTED] plan: tensor 'y' of shape [2147483648,2147483648] has more than 2^40 elements");
});
