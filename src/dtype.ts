/**
 * Element types. The numeric codes are ONNX's `TensorProto.DataType` values; the Plan and the native
 * side use the same numbers, so nothing is translated at the boundary.
 */
export enum DataType {
  UNDEFINED = 0,
  FLOAT = 1,
  UINT8 = 2,
  INT8 = 3,
  UINT16 = 4,
  INT16 = 5,
  INT32 = 6,
  INT64 = 7,
  STRING = 8,
  BOOL = 9,
  FLOAT16 = 10,
  DOUBLE = 11,
  UINT32 = 12,
  UINT64 = 13,
  COMPLEX64 = 14,
  COMPLEX128 = 15,
  BFLOAT16 = 16,
  FLOAT8E4M3FN = 17,
  FLOAT8E4M3FNUZ = 18,
  FLOAT8E5M2 = 19,
  FLOAT8E5M2FNUZ = 20,
  UINT4 = 21,
  INT4 = 22,
  FLOAT4E2M1 = 23,
  FLOAT8E8M0 = 24,
  UINT2 = 25,
  INT2 = 26,
}

/** The user-facing type names, spelled as onnxruntime-node spells them. */
export type TensorType =
  | 'float32'
  | 'float16'
  | 'bfloat16'
  | 'float64'
  | 'int8'
  | 'int16'
  | 'int32'
  | 'int64'
  | 'uint8'
  | 'uint16'
  | 'uint32'
  | 'uint64'
  | 'bool'
  | 'float8e4m3fn'
  | 'float8e4m3fnuz'
  | 'float8e5m2'
  | 'float8e5m2fnuz'
  | 'float8e8m0'
  | 'float4e2m1'
  | 'uint4'
  | 'int4'
  | 'uint2'
  | 'int2';

export type TypedArray =
  | Float32Array
  | Float64Array
  | Int8Array
  | Int16Array
  | Int32Array
  | BigInt64Array
  | Uint8Array
  | Uint16Array
  | Uint32Array
  | BigUint64Array;

type ArrayCtor = { new (n: number): TypedArray; new (b: ArrayBuffer, o: number, n: number): TypedArray; BYTES_PER_ELEMENT: number };

interface TypeInfo {
  type: TensorType;
  code: DataType;
  bytes: number;
  array: ArrayCtor;
}

const INFO: TypeInfo[] = [
  { type: 'float32', code: DataType.FLOAT, bytes: 4, array: Float32Array as unknown as ArrayCtor },
  { type: 'float16', code: DataType.FLOAT16, bytes: 2, array: Uint16Array as unknown as ArrayCtor },
  { type: 'bfloat16', code: DataType.BFLOAT16, bytes: 2, array: Uint16Array as unknown as ArrayCtor },
  { type: 'float64', code: DataType.DOUBLE, bytes: 8, array: Float64Array as unknown as ArrayCtor },
  { type: 'int8', code: DataType.INT8, bytes: 1, array: Int8Array as unknown as ArrayCtor },
  { type: 'int16', code: DataType.INT16, bytes: 2, array: Int16Array as unknown as ArrayCtor },
  { type: 'int32', code: DataType.INT32, bytes: 4, array: Int32Array as unknown as ArrayCtor },
  { type: 'int64', code: DataType.INT64, bytes: 8, array: BigInt64Array as unknown as ArrayCtor },
  { type: 'uint8', code: DataType.UINT8, bytes: 1, array: Uint8Array as unknown as ArrayCtor },
  { type: 'uint16', code: DataType.UINT16, bytes: 2, array: Uint16Array as unknown as ArrayCtor },
  { type: 'uint32', code: DataType.UINT32, bytes: 4, array: Uint32Array as unknown as ArrayCtor },
  { type: 'uint64', code: DataType.UINT64, bytes: 8, array: BigUint64Array as unknown as ArrayCtor },
  { type: 'bool', code: DataType.BOOL, bytes: 1, array: Uint8Array as unknown as ArrayCtor },
  // Small types: one byte per element everywhere in kiln (only ONNX's wire format packs the sub-byte
  // ones). Float8/float4 hold their bit code (float4e2m1 in the low 4 bits); uint4/uint2 their value;
  // int4/int2 their sign-extended value.
  { type: 'float8e4m3fn', code: DataType.FLOAT8E4M3FN, bytes: 1, array: Uint8Array as unknown as ArrayCtor },
  { type: 'float8e4m3fnuz', code: DataType.FLOAT8E4M3FNUZ, bytes: 1, array: Uint8Array as unknown as ArrayCtor },
  { type: 'float8e5m2', code: DataType.FLOAT8E5M2, bytes: 1, array: Uint8Array as unknown as ArrayCtor },
  { type: 'float8e5m2fnuz', code: DataType.FLOAT8E5M2FNUZ, bytes: 1, array: Uint8Array as unknown as ArrayCtor },
  { type: 'float8e8m0', code: DataType.FLOAT8E8M0, bytes: 1, array: Uint8Array as unknown as ArrayCtor },
  { type: 'float4e2m1', code: DataType.FLOAT4E2M1, bytes: 1, array: Uint8Array as unknown as ArrayCtor },
  { type: 'uint4', code: DataType.UINT4, bytes: 1, array: Uint8Array as unknown as ArrayCtor },
  { type: 'int4', code: DataType.INT4, bytes: 1, array: Int8Array as unknown as ArrayCtor },
  { type: 'uint2', code: DataType.UINT2, bytes: 1, array: Uint8Array as unknown as ArrayCtor },
  { type: 'int2', code: DataType.INT2, bytes: 1, array: Int8Array as unknown as ArrayCtor },
];

const BY_CODE = new Map(INFO.map((i) => [i.code, i]));
const BY_NAME = new Map(INFO.map((i) => [i.type, i]));

/** True when kiln can hold tensors of this ONNX type. */
export function isSupported(code: DataType): boolean {
  return BY_CODE.has(code);
}

export function dtypeName(code: DataType): string {
  return BY_CODE.get(code)?.type ?? DataType[code]?.toLowerCase() ?? `dtype#${code}`;
}

export function dtypeFromName(name: string): DataType | undefined {
  return BY_NAME.get(name as TensorType)?.code;
}

export function byteSize(code: DataType): number {
  const info = BY_CODE.get(code);
  if (!info) throw new Error(`unsupported data type ${dtypeName(code)}`);
  return info.bytes;
}

export function arrayCtor(code: DataType): ArrayCtor {
  const info = BY_CODE.get(code);
  if (!info) throw new Error(`unsupported data type ${dtypeName(code)}`);
  return info.array;
}

export function isFloat(code: DataType): boolean {
  return code === DataType.FLOAT || code === DataType.DOUBLE || code === DataType.FLOAT16 || code === DataType.BFLOAT16;
}

export function isInteger(code: DataType): boolean {
  return [DataType.INT8, DataType.INT16, DataType.INT32, DataType.INT64, DataType.UINT8, DataType.UINT16, DataType.UINT32, DataType.UINT64].includes(code);
}

/** Bits per element in ONNX's packed wire format for the sub-byte types (4 or 2), 0 for the others. */
export function packedBits(code: DataType): number {
  if (code === DataType.UINT4 || code === DataType.INT4 || code === DataType.FLOAT4E2M1) return 4;
  if (code === DataType.UINT2 || code === DataType.INT2) return 2;
  return 0;
}

/** True for the sign-extended sub-byte integer types (int4, int2). */
export function isSignedPacked(code: DataType): boolean {
  return code === DataType.INT4 || code === DataType.INT2;
}

/** The 8/4-bit float types, whose elements kiln holds as their bit codes. */
export function isSmallFloat(code: DataType): boolean {
  return (code >= DataType.FLOAT8E4M3FN && code <= DataType.FLOAT8E5M2FNUZ) || code === DataType.FLOAT4E2M1 || code === DataType.FLOAT8E8M0;
}

// [exponent bits, mantissa bits, bias, kind]: 'ieee' (all-ones exponent is Inf/NaN), 'fn' (only the
// all-ones code is NaN, no Inf), 'fnuz' (0x80 is the one NaN, no -0, no Inf), 'none' (no NaN, no Inf).
const SMALL_FLOAT: Partial<Record<DataType, [number, number, number, 'ieee' | 'fn' | 'fnuz' | 'none']>> = {
  [DataType.FLOAT8E4M3FN]: [4, 3, 7, 'fn'],
  [DataType.FLOAT8E4M3FNUZ]: [4, 3, 8, 'fnuz'],
  [DataType.FLOAT8E5M2]: [5, 2, 15, 'ieee'],
  [DataType.FLOAT8E5M2FNUZ]: [5, 2, 16, 'fnuz'],
  [DataType.FLOAT4E2M1]: [2, 1, 1, 'none'],
};

/**
 * The number a float8/float4 bit code stands for (float8e8m0: 2^(code-127), 0xff NaN). Lets callers
 * read kiln's float8/float4 tensors, which hold the codes.
 */
export function smallFloatValue(type: DataType | TensorType, bits: number): number {
  const code = typeof type === 'number' ? type : dtypeFromName(type) ?? DataType.UNDEFINED;
  if (code === DataType.FLOAT8E8M0) return bits === 0xff ? NaN : 2 ** (bits - 127);
  const f = SMALL_FLOAT[code];
  if (!f) throw new Error(`${dtypeName(code)} is not a float8/float4 type`);
  const [eb, mb, bias, kind] = f;
  const width = 1 + eb + mb;
  bits &= (1 << width) - 1;
  const signBit = 1 << (width - 1);
  if (kind === 'fnuz' && bits === signBit) return NaN;
  const e = (bits >> mb) & ((1 << eb) - 1);
  const m = bits & ((1 << mb) - 1);
  const s = bits & signBit ? -1 : 1;
  if (e === (1 << eb) - 1) {
    if (kind === 'ieee') return m ? NaN : s * Infinity;
    if (kind === 'fn' && m === (1 << mb) - 1) return NaN;
  }
  if (e === 0) return s * m * 2 ** (1 - bias - mb);
  return s * (1 + m / (1 << mb)) * 2 ** (e - bias);
}

/** The typed-array view of `bytes` for a dtype (copies when the offset is misaligned). */
export function viewAs(code: DataType, bytes: Uint8Array): TypedArray {
  const ctor = arrayCtor(code);
  const n = bytes.byteLength / ctor.BYTES_PER_ELEMENT;
  if (bytes.byteOffset % ctor.BYTES_PER_ELEMENT === 0) return new ctor(bytes.buffer as ArrayBuffer, bytes.byteOffset, n);
  const copy = new Uint8Array(bytes);
  return new ctor(copy.buffer, 0, n);
}

/** The raw little-endian bytes behind a typed array (no copy). */
export function bytesOf(a: TypedArray): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/** float32 → IEEE half bits, round to nearest even (as the native converter does). */
// One scratch word for the bit casts (no allocation per element: these run over whole weight tensors).
const scratchF32 = new Float32Array(1);
const scratchU32 = new Uint32Array(scratchF32.buffer);

export function floatToHalf(f: number): number {
  scratchF32[0] = f;
  const u = scratchU32[0];
  const sign = (u >>> 16) & 0x8000;
  const abs = u & 0x7fffffff;
  if (abs >= 0x7f800000) return sign | 0x7c00 | (abs > 0x7f800000 ? 0x200 : 0);
  if (abs >= 0x477ff000) return sign | 0x7c00;
  if (abs < 0x38800000) {
    if (abs < 0x33000000) return sign;
    const e = abs >>> 23;
    const m = (abs & 0x7fffff) | 0x800000;
    const shift = 126 - e;
    let r = m >>> shift;
    const rem = m & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && r & 1)) r++;
    return sign | r;
  }
  let r = abs - 0x38000000;
  r += 0xfff + ((r >>> 13) & 1);
  return sign | (r >>> 13);
}

let halfTable: Float32Array | undefined;
/** IEEE half bits → number (a 64K-entry table, made on first use). */
export function halfToFloat(h: number): number {
  if (!halfTable) {
    halfTable = new Float32Array(65536);
    for (let i = 0; i < 65536; i++) halfTable[i] = halfBitsToNumber(i);
  }
  return halfTable[h & 0xffff];
}

function halfBitsToNumber(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/** bfloat16 bits → number. */
export function bfloat16ToFloat(b: number): number {
  scratchU32[0] = b << 16;
  return scratchF32[0];
}
