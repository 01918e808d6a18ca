/**
 * The element-wise unary ops: one table, one native kind ('Unary', with the operation as attribute
 * `op` and its float parameters as `alpha`, `beta`, `gamma`, always all three, 0 where unused).
 * IsNaN/IsInf give bool. Clip's bounds are attributes before opset 11 and optional inputs after; known
 * bounds become `alpha`/`beta` (with `hasMin`/`hasMax`), bounds computed at run time stay inputs.
 */
import { DataType } from '../dtype';
import { NativeOp, OpContext, OpDef, registerOp } from './registry';
import { float, int, str } from '../lower/plan';
import { rankedShape } from './util';

const FLOATS = [DataType.FLOAT, DataType.FLOAT16, DataType.BFLOAT16, DataType.DOUBLE];
const SIGNED = [DataType.INT8, DataType.INT16, DataType.INT32, DataType.INT64];
const UNSIGNED = [DataType.UINT8, DataType.UINT16, DataType.UINT32, DataType.UINT64];
const INTS = [...SIGNED, ...UNSIGNED];

type Params = { op?: string; alpha?: number; beta?: number; gamma?: number };
interface Entry {
  types: DataType[];
  result?: 'bool';
  /** Native op name and parameters, ONNX defaults applied. Default: the ONNX op name, no parameters. */
  params?: (ctx: OpContext) => Params;
}

const F: Entry = { types: FLOATS };
const TABLE: Record<string, Entry> = {
  Abs: { types: [...FLOATS, ...INTS] },
  Neg: { types: [...FLOATS, ...SIGNED] },
  Sign: { types: [...FLOATS, ...INTS] },
  Exp: F,
  Log: F,
  Sqrt: F,
  Reciprocal: F,
  Floor: F,
  Ceil: F,
  Round: F,
  Sin: F,
  Cos: F,
  Tan: F,
  Asin: F,
  Acos: F,
  Atan: F,
  Sinh: F,
  Cosh: F,
  Asinh: F,
  Acosh: F,
  Atanh: F,
  Erf: { types: [...FLOATS, ...INTS] },
  Sigmoid: F,
  Tanh: F,
  Relu: { types: [...FLOATS, ...SIGNED] },
  LeakyRelu: { types: FLOATS, params: (c) => ({ alpha: c.float('alpha', 0.01) }) },
  Elu: { types: FLOATS, params: (c) => ({ alpha: c.float('alpha', 1) }) },
  Selu: {
    types: FLOATS,
    params: (c) => ({ alpha: c.float('alpha', 1.67326319217681884765625), gamma: c.float('gamma', 1.05070102214813232421875) }),
  },
  Celu: { types: FLOATS, params: (c) => ({ alpha: c.float('alpha', 1) }) },
  HardSigmoid: { types: FLOATS, params: (c) => ({ alpha: c.float('alpha', 0.2), beta: c.float('beta', 0.5) }) },
  HardSwish: F,
  Softplus: F,
  Softsign: F,
  Gelu: {
    types: FLOATS,
    params: (c) => {
      const a = c.string('approximate', 'none');
      if (a !== 'none' && a !== 'tanh') c.fail(`approximate must be 'none' or 'tanh', got '${a}'`);
      return { op: a === 'tanh' ? 'GeluTanh' : 'Gelu' };
    },
  },
  Mish: F,
  ThresholdedRelu: { types: FLOATS, params: (c) => ({ alpha: c.float('alpha', 1) }) },
  Shrink: { types: [...FLOATS, ...INTS], params: (c) => ({ alpha: c.float('lambd', 0.5), beta: c.float('bias', 0) }) },
  Swish: { types: FLOATS, params: (c) => ({ alpha: c.float('alpha', 1) }) },
  IsNaN: { types: FLOATS, result: 'bool' },
  IsInf: {
    types: FLOATS,
    result: 'bool',
    params: (c) => ({ alpha: c.int('detect_negative', 1) ? 1 : 0, beta: c.int('detect_positive', 1) ? 1 : 0 }),
  },
  Not: { types: [DataType.BOOL] },
  BitwiseNot: { types: INTS },
  Clip: { types: [...FLOATS, ...INTS] },
};

function check(ctx: OpContext, e: Entry): void {
  const t = ctx.input(0).dtype;
  if (!e.types.includes(t)) ctx.fail(`input type ${DataType[t]} is not supported (takes ${e.types.map((x) => DataType[x]).join(', ')})`, 'UNSUPPORTED');
}

function unaryOp(ctx: OpContext, p: Params, inputs: string[], extra: NativeOp['attrs'] = {}): NativeOp {
  return {
    kind: 'Unary',
    inputs,
    outputs: [ctx.node.outputs[0]],
    attrs: { op: str(p.op ?? ctx.node.opType), alpha: float(p.alpha ?? 0), beta: float(p.beta ?? 0), gamma: float(p.gamma ?? 0), ...extra },
  };
}

for (const [opType, e] of Object.entries(TABLE)) {
  const def: OpDef = {
    opType,
    infer(ctx) {
      check(ctx, e);
      return [{ dtype: e.result === 'bool' ? DataType.BOOL : ctx.input(0).dtype, shape: rankedShape(ctx, 0) }];
    },
    lower(ctx) {
      if (opType === 'Clip') return [lowerClip(ctx)];
      return [unaryOp(ctx, e.params?.(ctx) ?? {}, [ctx.node.inputs[0]])];
    },
  };
  registerOp(def);
}

/**
 * Clip: bounds known at compile time become `alpha`/`beta` with `hasMin`/`hasMax` (an infinite bound is
 * no bound: attributes stay finite); a bound computed at run time stays an input, which the kernel
 * prefers over the attribute.
 */
function lowerClip(ctx: OpContext): NativeOp {
  const x = ctx.node.inputs[0];
  const known = (v: number | undefined, none: number) => (v === undefined || v === none ? undefined : v);
  if (ctx.opset < 11) return clipOp(ctx, [x], known(ctx.float('min'), -Infinity), known(ctx.float('max'), Infinity));
  const isInt = !FLOATS.includes(ctx.input(0).dtype);
  const bound = (i: number, none: number): { value?: number; input: string } => {
    const name = ctx.node.inputs[i] ?? '';
    const v = ctx.inputs[i];
    if (name === '' || !v) return { input: '' };
    if (v.shape && v.shape.some((d) => d !== 1)) ctx.fail(`input ${i} ('${name}') must be a scalar, has shape [${v.shape.join(',')}]`, 'SHAPE');
    if (v.dtype !== ctx.input(0).dtype) ctx.fail(`input ${i} ('${name}') has type ${DataType[v.dtype]}, the input has ${DataType[ctx.input(0).dtype]}`);
    const c = ctx.constValues(i);
    // an integer bound beyond 2^53 would lose precision as a float attribute: it stays an input
    if (c && c.length === 1 && (!isInt || Number.isSafeInteger(c[0]))) return { value: known(c[0], none), input: '' };
    return { input: name };
  };
  const lo = bound(1, -Infinity), hi = bound(2, Infinity);
  const inputs = lo.input === '' && hi.input === '' ? [x] : [x, lo.input, hi.input];
  return clipOp(ctx, inputs, lo.value, hi.value);
}

function clipOp(ctx: OpContext, inputs: string[], lo: number | undefined, hi: number | undefined): NativeOp {
  return unaryOp(ctx, { alpha: lo ?? 0, beta: hi ?? 0 }, inputs, { hasMin: int(lo !== undefined), hasMax: int(hi !== undefined) });
}
