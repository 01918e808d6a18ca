/** Test helpers: conformance data, tensor comparison. */
import * as fs from 'fs';
import * as path from 'path';
import { dtypeFromName, isSmallFloat, smallFloatValue } from '../../src/dtype';
import { decodeTensorProto } from '../../src/onnx/import';
import { Tensor } from '../../src/tensor';

export const CONFORMANCE_DIR = process.env.KILN_CONFORMANCE_DIR ?? path.resolve(__dirname, '..', '..', '..', 'shared', 'onnx-conformance');

export function readTensor(file: string): Tensor {
  const v = decodeTensorProto(fs.readFileSync(file));
  return Tensor.fromCode(v.dtype, v.data!, v.shape as number[]);
}

/** numpy.testing.assert_allclose semantics (NaN equals NaN). Returns a message, or '' when close. */
export function allClose(got: Tensor, exp: Tensor, rtol = 1e-3, atol = 1e-7): string {
  if (got.type !== exp.type) return `type ${got.type} != expected ${exp.type}`;
  if (got.dims.length !== exp.dims.length || got.dims.some((d, i) => d !== exp.dims[i])) return `dims [${got.dims}] != expected [${exp.dims}]`;
  const half = got.type === 'float16' || got.type === 'bfloat16';
  // float8/float4 tensors hold bit codes: compare the values they stand for (any NaN code equals any)
  const small = isSmallFloat(dtypeFromName(got.type)!);
  const conv = (x: number | bigint) => (small ? smallFloatValue(got.type, Number(x)) : Number(x));
  let bad = 0;
  let first = '';
  for (let i = 0; i < exp.data.length; i++) {
    let a = conv(got.data[i]);
    let b = conv(exp.data[i]);
    if (half) {
      a = halfBits(a, got.type);
      b = halfBits(b, got.type);
    }
    if (Number.isNaN(a) && Number.isNaN(b)) continue;
    if (typeof got.data[i] === 'bigint') {
      if (got.data[i] === exp.data[i]) continue;
    } else if (a === b || Math.abs(a - b) <= atol + rtol * Math.abs(b)) continue;
    if (!bad) first = `element ${i}: ${a} vs expected ${b}`;
    bad++;
  }
  return bad ? `${bad} of ${exp.data.length} elements differ; first ${first}` : '';
}

function halfBits(bits: number, type: string): number {
  if (type === 'bfloat16') return new Float32Array(new Uint32Array([bits << 16]).buffer)[0];
  const s = bits & 0x8000 ? -1 : 1;
  const e = (bits >> 10) & 0x1f;
  const m = bits & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}
