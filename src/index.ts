/**
 * kiln — a TensorRT-class inference compiler for Node.js.
 *
 * ```ts
 * import { compile, loadEngine, Tensor } from 'onnx-kiln';
 * const engine = await compile('model.onnx', { shapes: { input: [1, 3, 224, 224] } });
 * const { output } = await engine.infer({ input: new Tensor('float32', pixels, [1, 3, 224, 224]) });
 * fs.writeFileSync('model.kiln', engine.serialize());
 * ```
 */
export { compile, loadEngine } from './compile';
export type { ModelSource } from './compile';
export { Engine } from './engine';
export type { EngineReport, LayerReport, PassReport, TensorInfo } from './engine';
export type { CompareOptions, CompareResult, Divergence, ValueError } from './compare';
export { Tensor } from './tensor';
export type { TensorLike, TensorType, TypedArray } from './tensor';
export { KilnError } from './errors';
export { smallFloatValue } from './dtype';
export type { KilnErrorCode } from './errors';
export type { CompileOptions, ProgressEvent, Precision, DeviceKind } from './options';
export { registeredOps } from './ops/registry';
import { native } from './native/binding';
import './ops';

/** The addon's backends, device and version (what `kiln doctor` prints). */
export function backendInfo() {
  return native().info();
}
