/** Shape helpers shared by the op modules. */
import { Dim } from '../ir/graph';
import { OpContext } from './registry';

/** Numpy-style broadcast of several shapes; fails naming the node when they do not broadcast. */
export function broadcastShapes(ctx: OpContext, shapes: Dim[][]): Dim[] {
  const rank = Math.max(0, ...shapes.map((s) => s.length));
  const out: Dim[] = [];
  for (let k = 0; k < rank; k++) {
    let d: Dim = 1;
    for (const s of shapes) {
      const x = s[s.length - rank + k] ?? 1;
      if (x === 1) continue;
      if (d === 1) d = x;
      else if (d !== x) {
        if (typeof d === 'number' && typeof x === 'number')
          ctx.fail(`shapes ${shapes.map((s) => '[' + s.join(',') + ']').join(' and ')} do not broadcast`, 'SHAPE');
        d = typeof d === 'number' ? x : d;
      }
    }
    out.push(d);
  }
  return out;
}

/** Resolves a possibly negative axis against a rank, failing when out of range. */
export function normAxis(ctx: OpContext, axis: number, rank: number, what = 'axis'): number {
  const a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank) ctx.fail(`${what} ${axis} is out of range for rank ${rank}`, 'SHAPE');
  return a;
}

/** The shape of input i, requiring it to be known (possibly with symbolic dims). */
export function rankedShape(ctx: OpContext, i: number): Dim[] {
  const v = ctx.input(i);
  if (!v.shape) return ctx.fail(`input ${i} ('${v.name}') has unknown rank`, 'SHAPE');
  return v.shape;
}
