/**
 * Softmax, LogSoftmax, Hardmax: opset < 13 coerces to 2-D at axis, opset 13+ works along the axis;
 * numbers against a JS reference; the rows tactic against the reference tactic.
 */
import { attrI, f32, runNode } from './run-node';
import { randomArray, rng } from './tactic-helpers';

/** JS reference over groups of `n` elements at stride `inner`. */
function ref(op: string, x: number[], outer: number, n: number, inner: number): number[] {
  const y = new Array<number>(x.length);
  for (let o = 0; o < outer; o++)
    for (let j = 0; j < inner; j++) {
      const at = (i: number) => o * n * inner + i * inner + j;
      const g = Array.from({ length: n }, (_, i) => x[at(i)]);
      const m = Math.max(...g);
      const s = g.reduce((a, v) => a + Math.exp(v - m), 0);
      const arg = g.indexOf(m);
      g.forEach((v, i) => (y[at(i)] = op === 'Softmax' ? Math.exp(v - m) / s : op === 'LogSoftmax' ? v - m - Math.log(s) : i === arg ? 1 : 0));
    }
  return y;
}

const x = Array.from(randomArray(2 * 3 * 4, rng(3)), (v) => v * 5);

describe.each(['Softmax', 'LogSoftmax', 'Hardmax'])('%s', (op) => {
  const run = (opset: number, axis?: number, tactics?: Record<string, string>) =>
    [...new Float32Array(runNode({ op, opset, inputs: [f32([2, 3, 4], x)], attrs: axis === undefined ? {} : { axis: attrI(axis) } }, tactics)[0].data)];
  const near = (got: number[], want: number[]) => want.forEach((w, i) => expect(Math.abs(got[i] - w)).toBeLessThan(1e-5));

  test('opset 13: along the axis (default -1)', () => {
    near(run(13), ref(op, x, 6, 4, 1));
    near(run(13, 1), ref(op, x, 2, 3, 4));
    near(run(13, 0), ref(op, x, 1, 2, 12));
  });
  test('opset 11: coerced to 2-D at the axis (default 1)', () => {
    near(run(11), ref(op, x, 2, 12, 1));
    near(run(11, 0), ref(op, x, 1, 24, 1));
    near(run(11, 2), ref(op, x, 6, 4, 1));
  });
  test('rows tactic matches the reference', () => {
    near(run(13, -1, { Softmax: 'cpu.softmax.rows' }), run(13, -1));
    near(run(11, 1, { Softmax: 'cpu.softmax.rows' }), run(11, 1));
  });
  test('an out-of-range axis names the node', () => {
    expect(() => run(13, 3)).toThrow(/n0.*axis 3 is out of range for rank 3/);
  });
});

test('Softmax is stable for large inputs', () => {
  const y = new Float32Array(runNode({ op: 'Softmax', opset: 13, inputs: [f32([1, 3], [1000, 1001, 1002])] })[0].data);
  const want = ref('Softmax', [0, 1, 2], 1, 3, 1);
  want.forEach((w, i) => expect(Math.abs(y[i] - w)).toBeLessThan(1e-6));
});
