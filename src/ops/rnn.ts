/**
 * The recurrent ops LSTM, GRU and RNN: one table of per-op facts (gate count, default activations,
 * outputs) and one native kind 'RNN' (attribute `cell`). Attributes are resolved here: direction,
 * per-direction activations with their alpha/beta (consumed in order by the activations that take
 * them, ONNX defaults otherwise), clip, layout, input_forget (LSTM), linear_before_reset (GRU).
 * Inputs keep ONNX order: X, W, R, B, sequence_lens, initial_h, initial_c (LSTM), P (LSTM).
 */
import { DataType, dtypeName, isFloat } from '../dtype';
import { float, floats, int, ints, str } from '../lower/plan';
import { OpContext, registerOp } from './registry';

interface Cell {
  gates: number;
  acts: string[]; // default activations per direction
  outputs: number;
}
const CELLS: Record<string, Cell> = {
  LSTM: { gates: 4, acts: ['Sigmoid', 'Tanh', 'Tanh'], outputs: 3 },
  GRU: { gates: 3, acts: ['Sigmoid', 'Tanh'], outputs: 2 },
  RNN: { gates: 1, acts: ['Tanh'], outputs: 2 },
};

/** Activation codes shared with native/cpu/rnn.cc, with their [alpha, beta] defaults (null: unused). */
const ACTS: Record<string, [number, number | null, number | null]> = {
  relu: [0, null, null],
  tanh: [1, null, null],
  sigmoid: [2, null, null],
  affine: [3, 1, 0],
  leakyrelu: [4, 0.01, null],
  thresholdedrelu: [5, 1, null],
  scaledtanh: [6, 1, 1],
  hardsigmoid: [7, 0.2, 0.5],
  elu: [8, 1, null],
  softsign: [9, null, null],
  softplus: [10, null, null],
};

interface Resolved {
  dirs: number;
  reverse: boolean;
  hidden: number;
  layout: number;
  seq: number;
  batch: number;
  input: number;
  codes: number[];
  alphas: number[];
  betas: number[];
}

function resolve(ctx: OpContext, cell: Cell): Resolved {
  const direction = ctx.string('direction', 'forward');
  if (!['forward', 'reverse', 'bidirectional'].includes(direction)) ctx.fail(`direction '${direction}' is not forward, reverse or bidirectional`);
  const dirs = direction === 'bidirectional' ? 2 : 1;
  const layout = ctx.int('layout', 0);
  if (layout !== 0 && layout !== 1) ctx.fail(`layout ${layout} is not 0 or 1`);
  const x = ctx.shapeOf(0);
  if (x.length !== 3) ctx.fail(`X must have rank 3, got [${x.join(',')}]`, 'SHAPE');
  const [seq, batch] = layout === 0 ? [x[0], x[1]] : [x[1], x[0]];
  const input = x[2];
  const w = ctx.shapeOf(1);
  const hidden = ctx.int('hidden_size') ?? w[1] / cell.gates;
  const G = cell.gates * hidden;
  const expect = (i: number, shape: number[], what: string) => {
    if (!ctx.inputs[i]) return;
    const s = ctx.shapeOf(i);
    if (s.length !== shape.length || s.some((d, k) => d !== shape[k]))
      ctx.fail(`${what} must have shape [${shape.join(',')}], got [${s.join(',')}]`, 'SHAPE');
  };
  expect(1, [dirs, G, input], 'W');
  expect(2, [dirs, G, hidden], 'R');
  expect(3, [dirs, 2 * G], 'B');
  expect(4, [batch], 'sequence_lens');
  const state = layout === 0 ? [dirs, batch, hidden] : [batch, dirs, hidden];
  expect(5, state, 'initial_h');
  if (cell.outputs === 3) {
    expect(6, state, 'initial_c');
    expect(7, [dirs, 3 * hidden], 'P');
  }
  const dtype = ctx.input(0).dtype;
  if (!isFloat(dtype)) ctx.fail(`X must be a float type, got ${dtypeName(dtype)}`);
  [1, 2, 3, 5, 6, 7].forEach((i) => {
    if (i < ctx.inputs.length && ctx.inputs[i] && ctx.inputs[i]!.dtype !== dtype)
      ctx.fail(`input ${i} ('${ctx.inputs[i]!.name}') is ${dtypeName(ctx.inputs[i]!.dtype)}, X is ${dtypeName(dtype)}`);
  });
  if (ctx.inputs[4] && ctx.inputs[4].dtype !== DataType.INT32) ctx.fail(`sequence_lens must be int32, got ${dtypeName(ctx.inputs[4].dtype)}`);
  // activations: one list for all directions
  const n = cell.acts.length;
  const given = (ctx.attr('activations')?.type === 'strings' ? (ctx.attr('activations')!.value as string[]) : undefined) ?? [];
  const names = given.length ? given : Array.from({ length: dirs }, () => cell.acts).flat();
  if (names.length !== n * dirs) ctx.fail(`activations lists ${names.length} functions; ${ctx.node.opType} ${direction} needs ${n * dirs}`);
  const alphaList = ctx.floats('activation_alpha') ?? [];
  const betaList = ctx.floats('activation_beta') ?? [];
  let ai = 0, bi = 0;
  const codes: number[] = [], alphas: number[] = [], betas: number[] = [];
  for (const name of names) {
    const a = ACTS[name.toLowerCase()];
    if (!a) ctx.fail(`activation '${name}' is not supported (${Object.keys(ACTS).join(', ')})`, 'UNSUPPORTED');
    codes.push(a[0]);
    alphas.push(a[1] === null ? 0 : ai < alphaList.length ? alphaList[ai++] : a[1]);
    betas.push(a[2] === null ? 0 : bi < betaList.length ? betaList[bi++] : a[2]);
  }
  return { dirs, reverse: direction === 'reverse', hidden, layout, seq, batch, input, codes, alphas, betas };
}

for (const [opType, cell] of Object.entries(CELLS)) {
  registerOp({
    opType,
    infer(ctx) {
      const r = resolve(ctx, cell);
      const dtype = ctx.input(0).dtype;
      const y = r.layout === 0 ? [r.seq, r.dirs, r.batch, r.hidden] : [r.batch, r.seq, r.dirs, r.hidden];
      const state = r.layout === 0 ? [r.dirs, r.batch, r.hidden] : [r.batch, r.dirs, r.hidden];
      return [{ dtype, shape: y }, { dtype, shape: state }, { dtype, shape: state }].slice(0, cell.outputs);
    },
    lower(ctx) {
      const r = resolve(ctx, cell);
      const inputs = Array.from({ length: cell.outputs === 3 ? 8 : 6 }, (_, i) => ctx.node.inputs[i] ?? '');
      const clip = ctx.float('clip');
      return [
        {
          kind: 'RNN',
          inputs,
          outputs: ctx.node.outputs,
          attrs: {
            cell: str(opType),
            hidden: int(r.hidden),
            dirs: int(r.dirs),
            reverse: int(r.reverse),
            layout: int(r.layout),
            acts: ints(r.codes),
            alphas: floats(r.alphas),
            betas: floats(r.betas),
            clip: float(clip ?? 0),
            has_clip: int(clip !== undefined),
            input_forget: int(ctx.int('input_forget', 0)),
            linear_before_reset: int(ctx.int('linear_before_reset', 0)),
          },
        },
      ];
    },
  });
}
