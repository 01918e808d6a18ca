/**
 * Resize (opsets 10, 11, 13, 18, 19) and the deprecated Upsample: one native kind 'Resize'. TS turns
 * scales/sizes (which must be constants: the output shape depends on them), axes and
 * keep_aspect_ratio_policy into one scale per axis and the output shape; roi (tf_crop_and_resize)
 * into per-axis start/end. Opset 10 and Upsample use the 'asymmetric' transform with floor rounding.
 */
import { Dim } from '../ir/graph';
import { float, floats, int, str } from '../lower/plan';
import { OpContext, registerOp } from './registry';
import { normAxis, rankedShape } from './util';

interface ResizePlan {
  out: number[];
  scales: number[];
  /** The resized length per axis as a real number (in * scale for scales; the size for sizes). */
  lengths: number[];
  roi: number[]; // starts then ends, full rank
}

const MODES = ['nearest', 'linear', 'cubic'];
const COORDS = ['half_pixel', 'half_pixel_symmetric', 'pytorch_half_pixel', 'align_corners', 'asymmetric', 'tf_half_pixel_for_nn', 'tf_crop_and_resize'];
const NEAREST = ['round_prefer_floor', 'round_prefer_ceil', 'floor', 'ceil'];

/** Resize's constant inputs (`idx` = index of scales, sizes; -1 when the opset has no such input). */
function resolve(ctx: OpContext, legacy: boolean, scalesIdx: number, sizesIdx: number): ResizePlan {
  const shape = ctx.shapeOf(0);
  const rank = shape.length;
  const axesAttr = ctx.ints('axes');
  const axes = axesAttr ? axesAttr.map((a) => normAxis(ctx, a, rank, 'axes entry')) : [...Array(rank).keys()];
  if (new Set(axes).size !== axes.length) ctx.fail(`axes [${axesAttr}] name an axis twice`);
  const constOf = (i: number, what: string): number[] | undefined => {
    if (i < 0 || !ctx.inputs[i]) return undefined;
    const v = ctx.constValues(i);
    if (v) return v;
    const s = ctx.inputs[i]!.shape;
    if (s && s.length === 1 && s[0] === 0) return undefined; // an empty tensor means "not given"
    return ctx.requireConst(i, what);
  };
  let sc = legacy && scalesIdx < 0 ? ctx.floats('scales') : constOf(scalesIdx, 'scales');
  const sizes = constOf(sizesIdx, 'sizes');
  if (sc && sc.length === 0) sc = undefined;
  if (!sc === !sizes) ctx.fail('exactly one of scales and sizes must be given');
  const scales = Array(rank).fill(1);
  const out = [...shape];
  const lengths = [...shape];
  if (sc) {
    if (sc.length !== axes.length) ctx.fail(`scales has ${sc.length} values, expected ${axes.length}`, 'SHAPE');
    axes.forEach((a, i) => {
      if (!(sc![i] > 0)) ctx.fail(`scales must be positive, got ${sc![i]}`);
      scales[a] = sc![i];
      out[a] = Math.floor(shape[a] * sc![i]);
      lengths[a] = shape[a] * sc![i];
    });
  } else {
    if (sizes!.length !== axes.length) ctx.fail(`sizes has ${sizes!.length} values, expected ${axes.length}`, 'SHAPE');
    const policy = ctx.string('keep_aspect_ratio_policy', 'stretch');
    if (policy === 'stretch')
      axes.forEach((a, i) => {
        out[a] = lengths[a] = sizes![i];
        scales[a] = sizes![i] / shape[a];
      });
    else if (policy === 'not_larger' || policy === 'not_smaller') {
      const r = axes.map((a, i) => sizes![i] / shape[a]);
      const s = policy === 'not_larger' ? Math.min(...r) : Math.max(...r);
      axes.forEach((a) => {
        scales[a] = s;
        out[a] = Math.round(s * shape[a]);
        lengths[a] = s * shape[a];
      });
    } else ctx.fail(`keep_aspect_ratio_policy '${policy}' is not one of stretch, not_larger, not_smaller`);
  }
  const roi = [...Array(rank).fill(0), ...Array(rank).fill(1)];
  if (!legacy && ctx.string('coordinate_transformation_mode', 'half_pixel') === 'tf_crop_and_resize') {
    const r = constOf(1, 'roi');
    if (!r) ctx.fail("coordinate_transformation_mode 'tf_crop_and_resize' needs a constant roi input");
    if (r.length !== 2 * axes.length) ctx.fail(`roi has ${r.length} values, expected ${2 * axes.length}`, 'SHAPE');
    axes.forEach((a, i) => {
      roi[a] = r[i];
      roi[a + rank] = r[i + axes.length];
    });
  }
  return { out, scales, lengths, roi };
}

function register(opType: string): void {
  const indices = (ctx: OpContext): [boolean, number, number] => {
    if (opType === 'Upsample') return [true, ctx.opset >= 9 ? 1 : -1, -1];
    if (ctx.opset < 11) return [true, 1, -1];
    return [false, 2, 3];
  };
  registerOp({
    opType,
    infer(ctx) {
      const shape: Dim[] = rankedShape(ctx, 0);
      const [legacy, si, zi] = indices(ctx);
      const r = resolve(ctx, legacy, si, zi);
      return [{ dtype: ctx.input(0).dtype, shape: r.out.map((d, i) => (d === shape[i] ? shape[i] : d)) }];
    },
    lower(ctx) {
      const [legacy, si, zi] = indices(ctx);
      const r = resolve(ctx, legacy, si, zi);
      const mode = ctx.string('mode', 'nearest');
      if (!MODES.includes(mode) || (legacy && mode === 'cubic')) ctx.fail(`mode '${mode}' is not supported by opset ${ctx.opset} ${opType}`);
      const coord = legacy ? 'asymmetric' : ctx.string('coordinate_transformation_mode', 'half_pixel');
      if (!COORDS.includes(coord)) ctx.fail(`coordinate_transformation_mode '${coord}' is not one of ${COORDS.join(', ')}`);
      const nearest = legacy ? 'floor' : ctx.string('nearest_mode', 'round_prefer_floor');
      if (!NEAREST.includes(nearest)) ctx.fail(`nearest_mode '${nearest}' is not one of ${NEAREST.join(', ')}`);
      const attrs = {
        mode: str(mode),
        coord: str(coord),
        nearest: str(nearest),
        cubic_a: float(ctx.float('cubic_coeff_a', -0.75)),
        exclude_outside: int(ctx.int('exclude_outside', 0) !== 0),
        extrapolation: float(ctx.float('extrapolation_value', 0)),
        antialias: int(!legacy && ctx.int('antialias', 0) !== 0),
        scales: floats(r.scales),
        lengths: floats(r.lengths),
        roi: floats(r.roi),
      };
      return [{ kind: 'Resize', inputs: [ctx.node.inputs[0]], outputs: ctx.node.outputs, attrs }];
    },
  });
}

register('Resize');
register('Upsample');
