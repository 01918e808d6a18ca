/**
 * The fused epilogue of Conv, Gemm and MatMul layers: Y = act(op(X) + bias + residual). The graph
 * optimizer (src/passes/epilogue-fusion.ts) records it on the node — the residual as input 3, the
 * activation as 'kiln.*' attributes — and the ops' lowerings pass it to the native kinds, whose
 * kernels apply it as each output tile is stored (native/cpu/sgemm.h `Activation`).
 */
import { AttrValue, Node } from '../ir/graph';
import { PlanAttr, float, str } from '../lower/plan';

/** Native activation names, and the ONNX ops they come from. */
export type EpilogueActivation =
  | 'none'
  | 'relu'
  | 'clip'
  | 'sigmoid'
  | 'tanh'
  | 'leaky_relu'
  | 'hard_sigmoid'
  | 'hard_swish'
  | 'gelu'
  | 'gelu_tanh'
  | 'silu';

export interface Epilogue {
  activation: EpilogueActivation;
  /** clip bounds; leaky_relu slope (alpha); hard_sigmoid alpha, beta. */
  params: { activation_min?: number; activation_max?: number; activation_alpha?: number; activation_beta?: number };
}

const PARAMS = ['activation_min', 'activation_max', 'activation_alpha', 'activation_beta'] as const;

export function setEpilogue(n: Node, e: Epilogue): void {
  n.attrs.set('kiln.activation', { type: 'string', value: e.activation });
  for (const k of PARAMS) {
    const v = e.params[k];
    if (v !== undefined) n.attrs.set(`kiln.${k}`, { type: 'float', value: v });
  }
}

export function hasEpilogue(n: Node): boolean {
  return n.attrs.has('kiln.activation');
}

/** The native attributes of the node's epilogue ('none' when nothing was fused). */
export function epilogueAttrs(n: Node): Record<string, PlanAttr> {
  const a = n.attrs.get('kiln.activation') as Extract<AttrValue, { type: 'string' }> | undefined;
  const out: Record<string, PlanAttr> = { activation: str(a?.value ?? 'none') };
  for (const k of PARAMS) {
    const v = n.attrs.get(`kiln.${k}`);
    if (v?.type === 'float') out[k] = float(v.value);
  }
  return out;
}

/** The residual input's name ('' when none was fused). */
export function residualOf(n: Node): string {
  return n.inputs[3] ?? '';
}
