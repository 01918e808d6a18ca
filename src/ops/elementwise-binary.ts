/**
 * The element-wise binary ops with numpy broadcasting: one table, one native kind ('Binary', with the
 * operation as attribute `op`). Comparisons give bool; logic ops take bool.
 */
import { DataType } from '../dtype';
import { int, str } from '../lower/plan';
import { OpDef, registerOp } from './registry';
import { broadcastShapes, rankedShape } from './util';

type Result = 'same' | 'bool';
/** [ONNX op, result type, native op when it differs]. Max, Min, Sum and Mean take any number of inputs. */
const TABLE: [string, Result, string?][] = [
  ['Sum', 'same', 'Add'],
  ['Mean', 'same'],
  ['Add', 'same'],
  ['Sub', 'same'],
  ['Mul', 'same'],
  ['Div', 'same'],
  ['Pow', 'same'],
  ['Mod', 'same'],
  ['Max', 'same'],
  ['Min', 'same'],
  ['PRelu', 'same'],
  ['BitShift', 'same'],
  ['BitwiseAnd', 'same'],
  ['BitwiseOr', 'same'],
  ['BitwiseXor', 'same'],
  ['And', 'bool'],
  ['Or', 'bool'],
  ['Xor', 'bool'],
  ['Equal', 'bool'],
  ['Greater', 'bool'],
  ['Less', 'bool'],
  ['GreaterOrEqual', 'bool'],
  ['LessOrEqual', 'bool'],
];

for (const [opType, result, nativeOp] of TABLE) {
  const def: OpDef = {
    opType,
    infer(ctx) {
      const present = ctx.inputs.map((v, i) => (v ? i : -1)).filter((i) => i >= 0);
      if (present.length === 0) ctx.fail('needs at least one input');
      const shape = broadcastShapes(ctx, present.map((i) => rankedShape(ctx, i)));
      const dtype = result === 'bool' ? DataType.BOOL : ctx.input(0).dtype;
      return [{ dtype, shape }];
    },
    lower(ctx) {
      const attrs = {
        op: str(nativeOp ?? opType),
        // Mod: fmod=1 follows C's fmod (sign of the dividend); 0 follows Python (sign of the divisor).
        fmod: int(ctx.int('fmod', 0)),
        right: int(ctx.string('direction', 'LEFT') === 'RIGHT'),
      };
      const ins = ctx.node.inputs.filter((n) => n !== '');
      if (ins.length === 1) return [{ kind: 'Copy', inputs: ins, outputs: ctx.node.outputs, attrs: {} }];
      return [{ kind: 'Binary', inputs: ins, outputs: ctx.node.outputs, attrs }];
    },
  };
  registerOp(def);
}
