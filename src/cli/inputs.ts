/**
 * Inputs for `kiln run` / `kiln bench`, the demo and the benchmarks: deterministic random tensors
 * (seeded, so two runners given the same seed see the same numbers), .npy and raw .bin files, and the
 * summary statistics printed for outputs.
 */
import * as fs from 'fs';
import { DataType, TypedArray, arrayCtor, byteSize, dtypeFromName, floatToHalf, halfToFloat, viewAs } from '../dtype';
import type { TensorInfo } from '../engine';
import { KilnError } from '../errors';
import { Tensor, TensorType } from '../tensor';

/** mulberry32: a tiny seeded PRNG, uniform in [0, 1). */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}


/**
 * A tensor of the given type and shape: floats uniform in [-1, 1), integers and bools zero (integer
 * inputs are usually indices or ids, and zero is valid for all of them).
 */
export function randomTensor(info: TensorInfo, rand: () => number): Tensor {
  const code = dtypeFromName(info.type);
  if (code === undefined) throw new KilnError('UNSUPPORTED', `input '${info.name}': cannot make a random ${info.type} tensor`);
  const n = info.dims.reduce((a, b) => a * b, 1);
  const data = new (arrayCtor(code))(n);
  if (code === DataType.FLOAT || code === DataType.DOUBLE) for (let i = 0; i < n; i++) (data as Float32Array)[i] = rand() * 2 - 1;
  else if (code === DataType.FLOAT16) for (let i = 0; i < n; i++) (data as Uint16Array)[i] = floatToHalf(rand() * 2 - 1);
  return new Tensor(info.type as TensorType, data, info.dims);
}

export function randomInputs(infos: readonly TensorInfo[], seed = 1): Record<string, Tensor> {
  const rand = prng(seed);
  return Object.fromEntries(infos.map((i) => [i.name, randomTensor(i, rand)]));
}

const NPY_TYPES: Record<string, TensorType> = {
  f4: 'float32', f8: 'float64', f2: 'float16', i1: 'int8', i2: 'int16', i4: 'int32', i8: 'int64',
  u1: 'uint8', u2: 'uint16', u4: 'uint32', u8: 'uint64', b1: 'bool',
};

/** Reads a NumPy .npy file (format 1.0–3.0, C order, little-endian). */
export function readNpy(file: string, bytes: Uint8Array): Tensor {
  const bad = (why: string): never => {
    throw new KilnError('INVALID_INPUT', `${file}: ${why}`);
  };
  if (bytes.length < 10 || bytes[0] !== 0x93 || Buffer.from(bytes.subarray(1, 6)).toString('latin1') !== 'NUMPY') bad('not a .npy file (bad magic)');
  const major = bytes[6];
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const hlen = major === 1 ? dv.getUint16(8, true) : dv.getUint32(8, true);
  const hstart = major === 1 ? 10 : 12;
  if (hstart + hlen > bytes.length) bad('truncated header');
  const header = Buffer.from(bytes.subarray(hstart, hstart + hlen)).toString('latin1');
  const descr = /'descr':\s*'([<>|=])(\w+)'/.exec(header);
  const shape = /'shape':\s*\(([^)]*)\)/.exec(header);
  if (!descr || !shape) bad(`cannot read the header ${header.trim()}`);
  if (/'fortran_order':\s*True/.test(header)) bad('Fortran-ordered arrays are not supported; save it with np.ascontiguousarray');
  const [, order, kind] = descr!;
  const type = NPY_TYPES[kind];
  if (!type) bad(`element type '${order}${kind}' is not supported`);
  if (order === '>' && byteSize(dtypeFromName(type)!) > 1) bad('big-endian arrays are not supported');
  const dims = shape![1].split(',').map((s) => s.trim()).filter((s) => s).map(Number);
  return fromBytes(file, type, dims, bytes.subarray(hstart + hlen));
}

function fromBytes(file: string, type: TensorType, dims: number[], body: Uint8Array): Tensor {
  const code = dtypeFromName(type)!;
  const need = dims.reduce((a, b) => a * b, 1) * byteSize(code);
  if (body.length !== need)
    throw new KilnError('INVALID_INPUT', `${file}: holds ${body.length} bytes of data, ${type} [${dims.join(',')}] needs ${need}`);
  const copy = new Uint8Array(need);
  copy.set(body);
  return new Tensor(type, viewAs(code, copy) as TypedArray, dims);
}

/** Reads `--input name=file`: a .npy file, or raw little-endian bytes of the input's type and shape. */
export function readInputFile(file: string, info: TensorInfo): Tensor {
  let bytes: Uint8Array;
  try {
    bytes = fs.readFileSync(file);
  } catch (e) {
    throw new KilnError('INVALID_INPUT', `input '${info.name}': cannot read '${file}' (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  if (file.endsWith('.npy')) return readNpy(file, bytes);
  return fromBytes(file, info.type as TensorType, info.dims, bytes);
}

export interface TensorStats {
  name: string;
  type: string;
  dims: number[];
  min: number;
  max: number;
  mean: number;
  std: number;
  nan: number;
  /** The first few elements. */
  head: number[];
}

export function tensorStats(name: string, t: Tensor): TensorStats {
  const n = t.data.length;
  let min = Infinity;
  let max = -Infinity;
  let sum = 0;
  let sq = 0;
  let nan = 0;
  const half = t.type === 'float16';
  const head: number[] = [];
  for (let i = 0; i < n; i++) {
    const v = half ? halfToFloat(t.data[i] as number) : Number(t.data[i]);
    if (i < 8) head.push(v);
    if (Number.isNaN(v)) {
      nan++;
      continue;
    }
    if (v < min) min = v;
    if (v > max) max = v;
    sum += v;
    sq += v * v;
  }
  const count = n - nan;
  const mean = count ? sum / count : NaN;
  return { name, type: t.type, dims: [...t.dims], min, max, mean, std: count ? Math.sqrt(Math.max(0, sq / count - mean * mean)) : NaN, nan, head };
}

