/** The golden Plan: a small plan that exercises every field of the format (docs/plan-format.md). */
import { DataType } from '../../src/dtype';
import { Plan, float, floats, int, ints, str, subplan } from '../../src/lower/plan';

export function goldenPlan(): Plan {
  const body: Plan = {
    tensors: [
      { name: 'b_in', dtype: DataType.FLOAT, shape: [2], kind: 'input' },
      { name: 'b_out', dtype: DataType.FLOAT, shape: [2], kind: 'output' },
    ],
    ops: [{ kind: 'Copy', name: 'inner', inputs: [0], outputs: [1], attrs: {}, origin: ['inner'] }],
    inputs: [0],
    outputs: [1],
  };
  return {
    tensors: [
      { name: 'x', dtype: DataType.FLOAT, shape: [2, 3], kind: 'input' },
      { name: 'w', dtype: DataType.FLOAT, shape: [3], kind: 'constant', data: new Uint8Array(new Float32Array([1, 2, 3]).buffer) },
      { name: 'y', dtype: DataType.FLOAT, shape: [2, 3], kind: 'activation' },
      { name: 'y_row1', dtype: DataType.FLOAT, shape: [3], kind: 'activation', view: { base: 2, byteOffset: 12 } },
      { name: 'z', dtype: DataType.INT64, shape: [], kind: 'output' },
    ],
    ops: [
      {
        kind: 'Binary',
        name: 'add',
        inputs: [0, 1],
        outputs: [2],
        attrs: { op: str('Add'), fmod: int(0), alpha: float(0.5), pads: ints([0, -1, 2]), scales: floats([1.5, -2]), body: subplan(body) },
        origin: ['add', 'bias'],
      },
      { kind: 'Copy', name: 'copy', inputs: [3, -1], outputs: [4], attrs: {}, origin: [] },
    ],
    inputs: [0],
    outputs: [4],
  };
}
