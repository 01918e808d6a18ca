/**
 * GridSample (opsets 16, 20, 22): samples X (N, C, D1, …, Dr) at the normalized positions of grid
 * (N, D1_out, …, Dr_out, r), giving (N, C, D1_out, …, Dr_out). One native kind 'GridSample' with the
 * resolved attributes `mode` (nearest, linear, cubic: opset 16 spells the last two bilinear and
 * bicubic), `padding` (zeros, border, reflection) and `align_corners` (0/1). Opset 16 is 2-D only;
 * from opset 20 any number of spatial dimensions.
 */
import { Dim } from '../ir/graph';
import { int, str } from '../lower/plan';
import { OpContext, registerOp } from './registry';
import { rankedShape } from './util';

const PADDINGS = ['zeros', 'border', 'reflection'];

/** The mode in the spelling of the model's opset, resolved to the native name. */
function resolveMode(ctx: OpContext): string {
  const legacy = ctx.opset < 20;
  const mode = ctx.string('mode', legacy ? 'bilinear' : 'linear');
  const names: Record<string, string> = legacy
    ? { nearest: 'nearest', bilinear: 'linear', bicubic: 'cubic' }
    : { nearest: 'nearest', linear: 'linear', cubic: 'cubic' };
  const m = names[mode];
  if (!m) ctx.fail(`mode '${mode}' is not one of ${Object.keys(names).join(', ')} (opset ${ctx.opset})`);
  return m;
}

function shapes(ctx: OpContext): { x: Dim[]; grid: Dim[] } {
  const x = rankedShape(ctx, 0);
  const grid = rankedShape(ctx, 1);
  if (x.length < 3) ctx.fail(`X must have rank 3 or more (N, C, spatial…), got [${x.join(',')}]`, 'SHAPE');
  const r = x.length - 2;
  if (ctx.opset < 20 && r !== 2) ctx.fail(`opset ${ctx.opset} GridSample takes a 4-D X (N, C, H, W), got rank ${x.length}`, 'SHAPE');
  if (grid.length !== x.length) ctx.fail(`grid must have rank ${x.length} like X, got [${grid.join(',')}]`, 'SHAPE');
  const last = grid[grid.length - 1];
  if (typeof last === 'number' && last !== r) ctx.fail(`grid's last dimension must be ${r} (the spatial rank), got ${last}`, 'SHAPE');
  if (typeof x[0] === 'number' && typeof grid[0] === 'number' && x[0] !== grid[0])
    ctx.fail(`batch sizes differ: X has ${x[0]}, grid has ${grid[0]}`, 'SHAPE');
  return { x, grid };
}

registerOp({
  opType: 'GridSample',
  infer(ctx) {
    const { x, grid } = shapes(ctx);
    resolveMode(ctx);
    const t = ctx.input(1).dtype;
    if (![1, 10, 11, 16].includes(t)) ctx.fail(`grid must be a floating-point tensor, got dtype ${t}`);
    const n = typeof x[0] === 'number' ? x[0] : grid[0];
    return [{ dtype: ctx.input(0).dtype, shape: [n, x[1], ...grid.slice(1, -1)] }];
  },
  lower(ctx) {
    shapes(ctx);
    const padding = ctx.string('padding_mode', 'zeros');
    if (!PADDINGS.includes(padding)) ctx.fail(`padding_mode '${padding}' is not one of ${PADDINGS.join(', ')}`);
    const attrs = {
      mode: str(resolveMode(ctx)),
      padding: str(padding),
      align_corners: int(ctx.int('align_corners', 0) !== 0),
    };
    return [{ kind: 'GridSample', inputs: [ctx.node.inputs[0], ctx.node.inputs[1]], outputs: ctx.node.outputs, attrs }];
  },
});
