/** Output comparisons shared by the tests (numbers, or bigint elements read as numbers). */
type Values = ArrayLike<number | bigint>;

/** Relative L2 error of `got` against `ref`: ‖got − ref‖ / ‖ref‖ (the denominator floored at 1e-30). */
export function relL2(got: Values, ref: Values): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < ref.length; i++) {
    const r = Number(ref[i]);
    const d = Number(got[i]) - r;
    num += d * d;
    den += r * r;
  }
  return Math.sqrt(num) / Math.max(Math.sqrt(den), 1e-30);
}

/** Cosine similarity of `a` and `b`. */
export function cosine(a: Values, b: Values): number {
  let ab = 0;
  let aa = 0;
  let bb = 0;
  for (let i = 0; i < a.length; i++) {
    const x = Number(a[i]);
    const y = Number(b[i]);
    ab += x * y;
    aa += x * x;
    bb += y * y;
  }
  return ab / Math.sqrt(aa * bb);
}
