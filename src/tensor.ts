/**
 * Tensor: the values that go in and out of an engine. Shaped like onnxruntime-node's Tensor
 * (`new Tensor(type, data, dims)` with `type`, `data`, `dims`), so its tensors are accepted as feeds
 * and kiln's outputs read the same way.
 */
import { DataType, TensorType, TypedArray, arrayCtor, dtypeFromName, dtypeName } from './dtype';
import { KilnError } from './errors';

export type { TensorType, TypedArray } from './dtype';

const DEFAULT_ARRAY: Record<TensorType, string> = {
  float32: 'Float32Array',
  float16: 'Uint16Array',
  bfloat16: 'Uint16Array',
  float64: 'Float64Array',
  int8: 'Int8Array',
  int16: 'Int16Array',
  int32: 'Int32Array',
  int64: 'BigInt64Array',
  uint8: 'Uint8Array',
  uint16: 'Uint16Array',
  uint32: 'Uint32Array',
  uint64: 'BigUint64Array',
  bool: 'Uint8Array',
  float8e4m3fn: 'Uint8Array',
  float8e4m3fnuz: 'Uint8Array',
  float8e5m2: 'Uint8Array',
  float8e5m2fnuz: 'Uint8Array',
  float8e8m0: 'Uint8Array',
  float4e2m1: 'Uint8Array',
  uint4: 'Uint8Array',
  int4: 'Int8Array',
  uint2: 'Uint8Array',
  int2: 'Int8Array',
};

export class Tensor {
  readonly type: TensorType;
  readonly data: TypedArray;
  readonly dims: readonly number[];

  /**
   * @param type element type ('float32', 'float16' as Uint16Array bits, 'int64' as BigInt64Array, …).
   *   The small types are held one element per byte, never packed: 'float8e4m3fn', 'float8e4m3fnuz',
   *   'float8e5m2', 'float8e5m2fnuz', 'float8e8m0' and 'float4e2m1' as their bit codes in a Uint8Array
   *   (float4e2m1 in the low 4 bits; `smallFloatValue` reads a code as a number), 'uint4'/'uint2' as
   *   their values in a Uint8Array, 'int4'/'int2' as their values in an Int8Array.
   * @param data the elements, row-major; a plain number array is converted
   * @param dims the shape; defaults to `[data.length]`
   */
  constructor(type: TensorType, data: TypedArray | readonly number[] | readonly bigint[] | readonly boolean[], dims?: readonly number[]) {
    const code = dtypeFromName(type);
    if (code === undefined)
      throw new KilnError('INVALID_INPUT', `Tensor: unsupported type '${type}'; expected one of ${Object.keys(DEFAULT_ARRAY).join(', ')}`);
    const ctor = arrayCtor(code);
    let arr: TypedArray;
    if (Array.isArray(data)) {
      const a = new ctor(data.length);
      const big = a instanceof BigInt64Array || a instanceof BigUint64Array;
      data.forEach((v: number | bigint | boolean, i: number) => {
        (a as unknown as (number | bigint)[])[i] = big ? BigInt(v as number) : Number(v);
      });
      arr = a;
    } else {
      arr = data as TypedArray;
      if (arr.constructor.name !== DEFAULT_ARRAY[type])
        throw new KilnError('INVALID_INPUT', `Tensor: a ${type} tensor takes a ${DEFAULT_ARRAY[type]}, got ${arr.constructor.name}`);
    }
    const shape = dims ? [...dims] : [arr.length];
    const n = shape.reduce((a, b) => a * b, 1);
    if (shape.some((d) => !Number.isInteger(d) || d < 0)) throw new KilnError('INVALID_INPUT', `Tensor: dims must be non-negative integers, got [${shape.join(',')}]`);
    if (n !== arr.length)
      throw new KilnError('INVALID_INPUT', `Tensor: dims [${shape.join(',')}] hold ${n} elements but the data has ${arr.length}`);
    this.type = type;
    this.data = arr;
    this.dims = Object.freeze(shape);
  }

  get size(): number {
    return this.data.length;
  }

  /** @internal */
  static fromCode(code: DataType, data: TypedArray, dims: readonly number[]): Tensor {
    return new Tensor(dtypeName(code) as TensorType, data, dims);
  }
}

/** Anything with onnxruntime-node's Tensor shape (type, data, dims) is accepted as a feed. */
export interface TensorLike {
  type: string;
  data: unknown;
  dims: readonly number[];
}
