/**
 * NonZero: the int64 coordinates [rank, count] of the non-zero elements. Its output shape depends on
 * the data, which a static-shape engine cannot allow, so kiln supports it only when the input is
 * known at build: it is then evaluated here, at compile time.
 */
import { DataType } from '../dtype';
import { numbersOf } from './constant';
import { registerOp } from './registry';

registerOp({
  opType: 'NonZero',
  infer(ctx) {
    const s = ctx.shapeOf(0);
    const v = ctx.input(0);
    // a graph input can be fixed at build with the 'constants' option (requireConst says how)
    if (!v.data && ctx.graph.inputs.includes(v.name)) ctx.requireConst(0, 'X');
    if (!v.data)
      return ctx.fail(`data-dependent output shape: NonZero's output size depends on its input's contents, so its input ('${v.name}') must be known at build time`, 'UNSUPPORTED');
    const st = s.map((_, d) => s.slice(d + 1).reduce((a, b) => a * b, 1));
    const hits: number[] = [];
    const data = numbersOf(v)!;
    for (let i = 0; i < data.length; i++) if (data[i] !== 0) hits.push(i);
    const out = new BigInt64Array(s.length * hits.length);
    hits.forEach((lin, j) => s.forEach((n, d) => (out[d * hits.length + j] = BigInt(Math.floor(lin / st[d]) % n))));
    return [{ dtype: DataType.INT64, shape: [s.length, hits.length], data: out }];
  },
});
