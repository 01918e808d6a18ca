/**
 * Option `layerPrecisions`: pins layers to a precision by layer name (the node name after the
 * optimizer, as engine.report.layers shows it) or by the name of any ONNX node fused into it.
 */
import { KilnError } from '../errors';
import { Graph } from '../ir/graph';

export type LayerPrecision = 'fp32' | 'fp16' | 'int8';

/** The pins by layer (node) name; an unknown name is an error naming it. */
export function resolveLayerPrecisions(g: Graph, pins: Record<string, LayerPrecision>): Map<string, LayerPrecision> {
  const byName = new Map<string, string>();
  for (const n of g.nodes) {
    for (const o of n.origin) byName.set(o, n.name);
    byName.set(n.name, n.name);
  }
  const out = new Map<string, LayerPrecision>();
  for (const [name, p] of Object.entries(pins)) {
    const layer = byName.get(name);
    if (layer === undefined)
      throw new KilnError('INVALID_OPTION', `Option 'layerPrecisions' names '${name}', which is neither a layer nor an ONNX node of the model (or it was folded into a constant at build)`);
    out.set(layer, p);
  }
  return out;
}
