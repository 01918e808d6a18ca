/**
 * ONNX import: the only code that knows ONNX's wire format. protobufjs + onnx-proto decode the
 * ModelProto; this turns it into kiln's IR (src/ir/graph.ts). onnx-proto predates IR 9–11, so newer
 * element types arrive as their numbers and are mapped by number (src/dtype.ts), never by hand-parsing.
 */
import * as fs from 'fs';
import * as path from 'path';
import { onnx } from 'onnx-proto';
import { DataType, TypedArray, arrayCtor, byteSize, dtypeName, isSignedPacked, isSupported, packedBits, viewAs } from '../dtype';
import { KilnError } from '../errors';
import { AttrValue, Dim, Graph, Node, Value } from '../ir/graph';

type Long = { toNumber(): number; toString(): string };
type Num = number | Long | null | undefined;

function num(x: Num): number {
  if (x === null || x === undefined) return 0;
  return typeof x === 'number' ? x : x.toNumber();
}

function big(x: Num): bigint {
  if (x === null || x === undefined) return 0n;
  return typeof x === 'number' ? BigInt(x) : BigInt(x.toString());
}

export interface ImportOptions {
  /** Directory that external-data `location`s are relative to (the model file's directory). */
  baseDir?: string;
}

/** Decodes ONNX ModelProto bytes into a kiln Graph. */
export function importModel(bytes: Uint8Array, opts: ImportOptions = {}): Graph {
  let model: onnx.ModelProto;
  try {
    model = onnx.ModelProto.decode(bytes);
  } catch (e) {
    throw new KilnError('INVALID_MODEL', `model: the bytes are not a valid ONNX ModelProto (${(e as Error).message})`);
  }
  if (!model.graph) throw new KilnError('INVALID_MODEL', 'model: the ModelProto has no graph');
  const opsets = new Map<string, number>();
  for (const o of model.opsetImport ?? []) opsets.set(o.domain === 'ai.onnx' ? '' : o.domain ?? '', num(o.version as Num));
  if (!opsets.has('') && num(model.irVersion as Num) < 3) opsets.set('', 1);
  return importGraph(model.graph, opsets, undefined, opts);
}

function importGraph(g: onnx.IGraphProto, opsets: Map<string, number>, parent: Graph | undefined, opts: ImportOptions): Graph {
  const graph: Graph = { name: g.name ?? '', inputs: [], outputs: [], nodes: [], values: new Map(), opsets, parent };
  const initNames = new Set<string>();
  for (const t of g.initializer ?? []) {
    const v = decodeTensor(t, opts, `initializer '${t.name}'`);
    graph.values.set(v.name, v);
    initNames.add(v.name);
  }
  for (const vi of g.input ?? []) {
    const name = vi.name ?? '';
    if (initNames.has(name)) continue; // IR < 4 lists initializers as inputs too
    graph.inputs.push(name);
    // Sub-graph (If/Loop/Scan body) inputs may be untyped: the control-flow op types them from outside.
    graph.values.set(name, valueFromInfo(vi, `graph input '${name}'`, parent !== undefined && !vi.type));
  }
  for (const vi of g.output ?? []) {
    const name = vi.name ?? '';
    graph.outputs.push(name);
    if (!graph.values.has(name)) graph.values.set(name, valueFromInfo(vi, `graph output '${name}'`, true));
  }
  for (const vi of g.valueInfo ?? []) {
    const name = vi.name ?? '';
    if (!graph.values.has(name)) graph.values.set(name, valueFromInfo(vi, `value_info '${name}'`, true));
  }
  const used = new Set<string>();
  (g.node ?? []).forEach((n, i) => {
    const opType = n.opType ?? '';
    let name = n.name || `${opType}_${i}`;
    while (used.has(name)) name = `${name}_${i}`;
    used.add(name);
    const node: Node = {
      name,
      opType,
      domain: n.domain === 'ai.onnx' ? '' : n.domain ?? '',
      inputs: [...(n.input ?? [])],
      outputs: [...(n.output ?? [])],
      attrs: new Map(),
      origin: [name],
    };
    for (const a of n.attribute ?? []) node.attrs.set(a.name ?? '', decodeAttr(a, graph, opts, `node '${name}' (${opType}) attribute '${a.name}'`));
    graph.nodes.push(node);
  });
  return graph;
}

function valueFromInfo(vi: onnx.IValueInfoProto, where: string, lenient = false): Value {
  const name = vi.name ?? '';
  const tt = vi.type?.tensorType;
  if (!tt) {
    if (lenient) return { name, dtype: DataType.UNDEFINED };
    const kind = vi.type ? Object.keys(onnx.TypeProto.toObject(vi.type as onnx.TypeProto)).join('/') : 'no type';
    throw new KilnError('UNSUPPORTED', `${where}: only tensor inputs are supported, this one is ${kind || 'untyped'}`);
  }
  const dtype = num(tt.elemType as Num) as DataType;
  if (!lenient && !isSupported(dtype)) throw new KilnError('UNSUPPORTED', `${where}: element type ${dtypeName(dtype)} is not supported`);
  const v: Value = { name, dtype };
  if (tt.shape) {
    v.shape = (tt.shape.dim ?? []).map((d, i): Dim => {
      const which = (d as { value?: string }).value;
      if (which === 'dimValue') {
        const n = num(d.dimValue as Num);
        if (n >= 0) return n;
      }
      return d.dimParam || `${name}_dim${i}`;
    });
  }
  return v;
}

function decodeAttr(a: onnx.IAttributeProto, graph: Graph, opts: ImportOptions, where: string): AttrValue {
  const T = onnx.AttributeProto.AttributeType;
  switch (a.type) {
    case T.INT:
      return { type: 'int', value: num(a.i as Num) };
    case T.FLOAT:
      return { type: 'float', value: a.f ?? 0 };
    case T.STRING:
      return { type: 'string', value: Buffer.from(a.s ?? new Uint8Array()).toString('utf8') };
    case T.INTS:
      return { type: 'ints', value: (a.ints ?? []).map((x) => num(x as Num)) };
    case T.FLOATS:
      return { type: 'floats', value: [...(a.floats ?? [])] };
    case T.STRINGS:
      return { type: 'strings', value: (a.strings ?? []).map((s) => Buffer.from(s).toString('utf8')) };
    case T.TENSOR:
      return { type: 'tensor', value: decodeTensor(a.t!, opts, where) };
    case T.GRAPH:
      return { type: 'graph', value: importGraph(a.g!, graph.opsets, graph, opts) };
    case T.GRAPHS:
      return { type: 'graphs', value: (a.graphs ?? []).map((g) => importGraph(g, graph.opsets, graph, opts)) };
    default:
      throw new KilnError('UNSUPPORTED', `${where}: attribute type ${a.type} is not supported`);
  }
}

/** Reads external data: `location` relative to baseDir, with offset/length, bounds-checked, no escape. */
function readExternal(t: onnx.ITensorProto, opts: ImportOptions, where: string): Uint8Array {
  const kv = new Map((t.externalData ?? []).map((e) => [e.key ?? '', e.value ?? '']));
  const loc = kv.get('location');
  if (!loc) throw new KilnError('INVALID_MODEL', `${where}: external data without a 'location'`);
  if (!opts.baseDir)
    throw new KilnError('INVALID_MODEL', `${where}: the tensor's data is in the external file '${loc}'; compile the model from its path so kiln can find the file`);
  const base = path.resolve(opts.baseDir);
  const file = path.resolve(base, loc);
  if (path.isAbsolute(loc) || !(file === base || file.startsWith(base + path.sep)))
    throw new KilnError('INVALID_MODEL', `${where}: external data location '${loc}' points outside the model's directory`);
  let size: number;
  try {
    size = fs.statSync(file).size;
  } catch {
    throw new KilnError('INVALID_MODEL', `${where}: external data file '${loc}' not found next to the model`);
  }
  const offset = Number(kv.get('offset') ?? 0);
  const length = kv.has('length') ? Number(kv.get('length')) : size - offset;
  if (!Number.isInteger(offset) || !Number.isInteger(length) || offset < 0 || length < 0 || offset + length > size)
    throw new KilnError('INVALID_MODEL', `${where}: external data range offset ${offset} length ${length} is outside '${loc}' (${size} bytes)`);
  const fd = fs.openSync(file, 'r');
  try {
    const buf = new Uint8Array(length);
    fs.readSync(fd, buf, 0, length, offset);
    return buf;
  } finally {
    fs.closeSync(fd);
  }
}

/** Decodes a TensorProto (raw_data, typed fields, or external data) into a constant Value. */
export function decodeTensor(t: onnx.ITensorProto, opts: ImportOptions, where: string): Value {
  const name = t.name ?? '';
  const dtype = num(t.dataType as Num) as DataType;
  const shape = (t.dims ?? []).map((d) => num(d as Num));
  if (!isSupported(dtype))
    throw new KilnError('UNSUPPORTED', `${where}: element type ${dtypeName(dtype)} is not supported`);
  const n = shape.reduce((a, b) => a * b, 1);
  const bits = packedBits(dtype);
  const external = t.dataLocation === onnx.TensorProto.DataLocation.EXTERNAL;
  if (bits) {
    // Sub-byte types: packed low bits first (raw_data bytes, or one byte in each int32_data entry);
    // kiln holds one element per byte from here on.
    const packed = Math.ceil((n * bits) / 8);
    let src: ArrayLike<number>;
    if (external || (t.rawData && t.rawData.length) || n === 0) {
      src = external ? readExternal(t, opts, where) : t.rawData ?? new Uint8Array(0);
      if (src.length !== packed)
        throw new KilnError('INVALID_MODEL', `${where}: holds ${src.length} bytes of data, its shape [${shape.join(',')}] of ${dtypeName(dtype)} needs ${packed} (${8 / bits} elements a byte)`);
    } else {
      src = t.int32Data ?? [];
      if (src.length !== packed)
        throw new KilnError('INVALID_MODEL', `${where}: holds ${src.length} int32_data entries, its shape [${shape.join(',')}] of ${dtypeName(dtype)} needs ${packed} (${8 / bits} elements each)`);
    }
    return { name, dtype, shape, data: unpackSubByte(src, n, bits, isSignedPacked(dtype)) };
  }
  const bytes = n * byteSize(dtype);
  let data: TypedArray;
  if (external || (t.rawData && t.rawData.length) || n === 0) {
    const raw = external ? readExternal(t, opts, where) : t.rawData ?? new Uint8Array(0);
    if (raw.byteLength !== bytes)
      throw new KilnError('INVALID_MODEL', `${where}: holds ${raw.byteLength} bytes of data, its shape [${shape.join(',')}] of ${dtypeName(dtype)} needs ${bytes}`);
    data = viewAs(dtype, new Uint8Array(raw));
  } else {
    const ctor = arrayCtor(dtype);
    const out = new ctor(n);
    let src: ArrayLike<unknown>;
    switch (dtype) {
      case DataType.FLOAT:
        src = t.floatData ?? [];
        break;
      case DataType.DOUBLE:
        src = t.doubleData ?? [];
        break;
      case DataType.INT64:
        src = (t.int64Data ?? []).map((x) => big(x as Num));
        break;
      case DataType.UINT64:
        src = (t.uint64Data ?? []).map((x) => BigInt.asUintN(64, big(x as Num)));
        break;
      case DataType.UINT32:
        src = (t.uint64Data ?? []).map((x) => num(x as Num));
        break;
      default: // int8/16/32, uint8/16, bool, float16/bfloat16 (bits) are stored in int32_data
        src = t.int32Data ?? [];
    }
    if (src.length !== n)
      throw new KilnError('INVALID_MODEL', `${where}: holds ${src.length} elements, its shape [${shape.join(',')}] needs ${n}`);
    for (let i = 0; i < n; i++) (out as unknown as unknown[])[i] = src[i];
    data = out;
  }
  return { name, dtype, shape, data };
}

/**
 * Unpacks `n` elements of `bits` (4 or 2) bits each, low bits of each byte first, into one byte per
 * element; signed types are sign-extended (an Int8Array), unsigned ones and float4e2m1 codes are not.
 */
export function unpackSubByte(packed: ArrayLike<number>, n: number, bits: number, signed: boolean): Int8Array | Uint8Array {
  const out = signed ? new Int8Array(n) : new Uint8Array(n);
  const per = 8 / bits;
  const mask = (1 << bits) - 1;
  const shift = 32 - bits;
  for (let i = 0; i < n; i++) {
    const v = (packed[Math.floor(i / per)] >> ((i % per) * bits)) & mask;
    out[i] = signed ? (v << shift) >> shift : v;
  }
  return out;
}

/** Decodes a standalone TensorProto file (the conformance suite's input_N.pb / output_N.pb). */
export function decodeTensorProto(bytes: Uint8Array): Value {
  return decodeTensor(onnx.TensorProto.decode(bytes), {}, 'tensor');
}
