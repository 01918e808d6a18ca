/**
 * If, Loop and Scan through the whole pipeline (ONNX bytes → compile → engine → infer): conditions,
 * trip counts and captures known only at run time, both branches of one engine, scan axes/directions,
 * the opset-8 batch form, and the static-shape errors.
 */
import { onnx } from 'onnx-proto';
import { compile } from '../../../src/compile';
import { KilnError } from '../../../src/errors';
import { Tensor } from '../../../src/tensor';

const T = onnx.AttributeProto.AttributeType;
const FLOAT = 1, INT64 = 7, BOOL = 9;

type AttrV = number | number[] | string | onnx.IGraphProto;
interface N { op: string; inputs: string[]; outputs: string[]; attrs?: Record<string, AttrV> }
interface IO { name: string; type?: number; dims?: number[] | null }

function vi(v: IO): onnx.IValueInfoProto {
  return { name: v.name, type: { tensorType: { elemType: v.type ?? FLOAT, shape: v.dims === null ? undefined : { dim: (v.dims ?? []).map((d) => ({ dimValue: d })) } } } };
}
function attr(name: string, v: AttrV): onnx.IAttributeProto {
  if (typeof v === 'string') return { name, type: T.STRING, s: Buffer.from(v) };
  if (Array.isArray(v)) return { name, type: T.INTS, ints: v };
  if (typeof v === 'number') return { name, type: T.INT, i: v };
  return { name, type: T.GRAPH, g: v };
}
function graph(name: string, nodes: N[], inputs: IO[], outputs: IO[], inits: onnx.ITensorProto[] = []): onnx.IGraphProto {
  return {
    name,
    node: nodes.map((n, i) => ({ name: `${name}_${n.op}_${i}`, opType: n.op, input: n.inputs, output: n.outputs, attribute: Object.entries(n.attrs ?? {}).map(([k, v]) => attr(k, v)) })),
    input: inputs.map(vi),
    output: outputs.map(vi),
    initializer: inits,
  };
}
function model(g: onnx.IGraphProto, opset = 17): Uint8Array {
  return onnx.ModelProto.encode({ irVersion: 8, opsetImport: [{ domain: '', version: opset }], graph: g }).finish();
}
const fconst = (name: string, dims: number[], v: number[]): onnx.ITensorProto => ({ name, dataType: FLOAT, dims, floatData: v });
const iconst = (name: string, dims: number[], v: number[]): onnx.ITensorProto => ({ name, dataType: INT64, dims, int64Data: v });
const f32 = (v: number[], dims = [v.length]) => new Tensor('float32', Float32Array.from(v), dims);
const arr = (t: Tensor) => Array.from(t.data as Float32Array);

describe('If', () => {
  // then: x * w (w an outer initializer), else: x + y (y a captured graph input)
  const ifModel = () =>
    model(
      graph(
        'main',
        [
          {
            op: 'If',
            inputs: ['c'],
            outputs: ['r'],
            attrs: {
              then_branch: graph('then', [{ op: 'Mul', inputs: ['x', 'w'], outputs: ['t'] }], [], [{ name: 't', dims: [3] }]),
              else_branch: graph('else', [{ op: 'Add', inputs: ['x', 'y'], outputs: ['e'] }], [], [{ name: 'e', dims: [3] }]),
            },
          },
        ],
        [{ name: 'c', type: BOOL, dims: [] }, { name: 'x', dims: [3] }, { name: 'y', dims: [3] }],
        [{ name: 'r', dims: [3] }],
        [fconst('w', [3], [2, 3, 4])],
      ),
    );

  test('a run-time condition takes both branches in two runs of one engine', async () => {
    const e = await compile(ifModel());
    const x = f32([1, 2, 3]), y = f32([10, 20, 30]);
    const a = await e.infer({ c: new Tensor('bool', [1], []), x, y });
    expect(arr(a.r)).toEqual([2, 6, 12]);
    const b = await e.infer({ c: new Tensor('bool', [0], []), x, y });
    expect(arr(b.r)).toEqual([11, 22, 33]);
    // concurrent runs of the same layer
    const [p, q] = await Promise.all([e.infer({ c: new Tensor('bool', [1], []), x, y }), e.infer({ c: new Tensor('bool', [0], []), x, y })]);
    expect(arr(p.r)).toEqual([2, 6, 12]);
    expect(arr(q.r)).toEqual([11, 22, 33]);
    e.dispose();
  });

  test('a condition known at build takes its branch only (the other may even disagree in shape)', async () => {
    const m = model(
      graph(
        'main',
        [
          {
            op: 'If',
            inputs: ['c'],
            outputs: ['r'],
            attrs: {
              then_branch: graph('then', [{ op: 'Add', inputs: ['x', 'x'], outputs: ['t'] }], [], [{ name: 't', dims: [2] }]),
              else_branch: graph('else', [{ op: 'Add', inputs: ['z', 'z'], outputs: ['e'] }], [], [{ name: 'e', dims: [3] }]),
            },
          },
        ],
        [{ name: 'x', dims: [2] }],
        [{ name: 'r', dims: [2] }],
        [{ name: 'c', dataType: BOOL, dims: [], int32Data: [1] }, fconst('z', [3], [1, 1, 1])],
      ),
    );
    const e = await compile(m);
    expect(arr((await e.infer({ x: f32([1, 5]) })).r)).toEqual([2, 10]);
    e.dispose();
  });

  test('branches of different shapes under a run-time condition are a SHAPE error naming the node', async () => {
    const m = model(
      graph(
        'main',
        [
          {
            op: 'If',
            inputs: ['c'],
            outputs: ['r'],
            attrs: {
              then_branch: graph('then', [{ op: 'Add', inputs: ['x', 'x'], outputs: ['t'] }], [], [{ name: 't' , dims: null }]),
              else_branch: graph('else', [{ op: 'Add', inputs: ['z', 'z'], outputs: ['e'] }], [], [{ name: 'e', dims: null }]),
            },
          },
        ],
        [{ name: 'c', type: BOOL, dims: [] }, { name: 'x', dims: [2] }],
        [{ name: 'r', dims: null }],
        [fconst('z', [3], [1, 1, 1])],
      ),
    );
    await expect(compile(m)).rejects.toThrow(/main_If_0.*then_branch gives shape \[2\] but else_branch gives \[3\]/);
  });
});

describe('Loop', () => {
  // carried: acc (float [2]) += x * i ; cnt (int64 []) += 1; stops when cnt reaches `stop` (captured) or M.
  const loopModel = (withScan: boolean, M?: number) =>
    model(
      graph(
        'main',
        [
          {
            op: 'Loop',
            inputs: [M === undefined ? 'M' : 'Mc', 'c0', 'acc0', 'cnt0'],
            outputs: withScan ? ['acc', 'cnt', 'rows'] : ['acc', 'cnt'],
            attrs: {
              body: graph(
                'body',
                [
                  { op: 'Cast', inputs: ['i'], outputs: ['fi'], attrs: { to: FLOAT } },
                  { op: 'Mul', inputs: ['x', 'fi'], outputs: ['xi'] },
                  { op: 'Add', inputs: ['acc_in', 'xi'], outputs: ['acc_out'] },
                  { op: 'Add', inputs: ['cnt_in', 'one'], outputs: ['cnt_out'] },
                  { op: 'Less', inputs: ['cnt_out', 'stop'], outputs: ['c_out'] },
                  ...(withScan ? [{ op: 'Identity', inputs: ['acc_out'], outputs: ['row'] }] : []),
                ],
                [{ name: 'i', type: INT64, dims: [] }, { name: 'c_in', type: BOOL, dims: [] }, { name: 'acc_in', dims: [2] }, { name: 'cnt_in', type: INT64, dims: [] }],
                [{ name: 'c_out', type: BOOL, dims: [] }, { name: 'acc_out', dims: [2] }, { name: 'cnt_out', type: INT64, dims: [] }, ...(withScan ? [{ name: 'row', dims: [2] }] : [])],
                [iconst('one', [], [1])],
              ),
            },
          },
        ],
        [
          ...(M === undefined ? [{ name: 'M', type: INT64, dims: [] }] : []),
          { name: 'c0', type: BOOL, dims: [] },
          { name: 'acc0', dims: [2] },
          { name: 'cnt0', type: INT64, dims: [] },
          { name: 'x', dims: [2] },
          { name: 'stop', type: INT64, dims: [] },
        ],
        [{ name: 'acc', dims: [2] }, { name: 'cnt', type: INT64, dims: [] }, ...(withScan ? [{ name: 'rows', dims: [M ?? 0, 2] }] : [])],
        M === undefined ? [] : [iconst('Mc', [], [M])],
      ),
    );
  const i64 = (v: number) => new Tensor('int64', [BigInt(v)], []);
  const feeds = (M: number | undefined, cond: boolean, stop: number) => ({
    ...(M === undefined ? {} : { M: i64(M) }),
    c0: new Tensor('bool', [cond ? 1 : 0], []),
    acc0: f32([100, 200]),
    cnt0: i64(0),
    x: f32([1, 10]),
    stop: i64(stop),
  });

  test('run-time trip count and condition, loop-carried values, captures', async () => {
    const e = await compile(loopModel(false));
    // M = 4, never stopped by the condition: i = 0..3 → acc += x * 6
    let r = await e.infer(feeds(4, true, 100));
    expect(arr(r.acc)).toEqual([106, 260]);
    expect(Number((r.cnt.data as BigInt64Array)[0])).toBe(4);
    // condition stops after 2 iterations (cnt reaches stop = 2): acc += x * 1
    r = await e.infer(feeds(10, true, 2));
    expect(arr(r.acc)).toEqual([101, 210]);
    expect(Number((r.cnt.data as BigInt64Array)[0])).toBe(2);
    // initial condition false: no iteration, outputs are the initial values
    r = await e.infer(feeds(10, false, 100));
    expect(arr(r.acc)).toEqual([100, 200]);
    expect(Number((r.cnt.data as BigInt64Array)[0])).toBe(0);
    // trip count 0
    r = await e.infer(feeds(0, true, 100));
    expect(arr(r.acc)).toEqual([100, 200]);
    e.dispose();
  });

  test('scan outputs with a trip count known at build', async () => {
    const e = await compile(loopModel(true, 3));
    const r = await e.infer(feeds(undefined, true, 100));
    expect(r.rows.dims).toEqual([3, 2]);
    expect(arr(r.rows)).toEqual([100, 200, 101, 210, 103, 230]);
    // stopping early cannot fill the scan outputs' static rows: a run-time error naming the layer
    await expect(e.infer(feeds(undefined, true, 2))).rejects.toThrow(/stopped after 2 iterations/);
    e.dispose();
  });

  test('scan outputs with a run-time trip count are a SHAPE error naming M', async () => {
    await expect(compile(loopModel(true))).rejects.toMatchObject({ code: 'SHAPE', value: 'M' });
  });

  // acc += x[i:i+1] (x captured): the Slice's starts depend on the iteration number
  const sliceLoop = (Mconst: boolean) =>
    model(
      graph(
        'main',
        [
          {
            op: 'Loop',
            inputs: ['M', '', 'acc0'],
            outputs: ['acc', 'rows'],
            attrs: {
              body: graph(
                'body',
                [
                  { op: 'Add', inputs: ['i', 'one'], outputs: ['i1'] },
                  { op: 'Unsqueeze', inputs: ['i', 'ax'], outputs: ['st'] },
                  { op: 'Unsqueeze', inputs: ['i1', 'ax'], outputs: ['en'] },
                  { op: 'Slice', inputs: ['x', 'st', 'en'], outputs: ['xs'] },
                  { op: 'Add', inputs: ['acc_in', 'xs'], outputs: ['acc_out'] },
                  { op: 'Identity', inputs: ['c_in'], outputs: ['c_out'] },
                  { op: 'Identity', inputs: ['xs'], outputs: ['row'] },
                ],
                [{ name: 'i', type: INT64, dims: [] }, { name: 'c_in', type: BOOL, dims: [] }, { name: 'acc_in', dims: [1] }],
                [{ name: 'c_out', type: BOOL, dims: [] }, { name: 'acc_out', dims: null }, { name: 'row', dims: null }],
                [iconst('one', [], [1]), iconst('ax', [1], [0])],
              ),
            },
          },
        ],
        [...(Mconst ? [] : [{ name: 'M', type: INT64, dims: [] }]), { name: 'acc0', dims: [1] }, { name: 'x', dims: [4] }],
        [{ name: 'acc', dims: [1] }, { name: 'rows', dims: null }],
        Mconst ? [iconst('M', [], [3])] : [],
      ),
    );

  test('a body whose shapes depend on the iteration number is specialized per iteration (M known at build)', async () => {
    const e = await compile(sliceLoop(true));
    const r = await e.infer({ acc0: f32([100]), x: f32([1, 2, 4, 8]) });
    expect(arr(r.acc)).toEqual([107]);
    expect(r.rows.dims).toEqual([3, 1]);
    expect(arr(r.rows)).toEqual([1, 2, 4]);
    e.dispose();
    await expect(compile(sliceLoop(false))).rejects.toMatchObject({ code: 'SHAPE', value: 'M' });
  });

  test('a loop-carried value that changes shape is a SHAPE error', async () => {
    const m = model(
      graph(
        'main',
        [
          {
            op: 'Loop',
            inputs: ['M', '', 'a0'],
            outputs: ['a'],
            attrs: {
              body: graph(
                'body',
                [{ op: 'Add', inputs: ['a_in', 'z'], outputs: ['a_out'] }, { op: 'Identity', inputs: ['c_in'], outputs: ['c_out'] }],
                [{ name: 'i', type: INT64, dims: [] }, { name: 'c_in', type: BOOL, dims: [] }, { name: 'a_in', dims: [1] }],
                [{ name: 'c_out', type: BOOL, dims: [] }, { name: 'a_out', dims: null }],
                [fconst('z', [2], [1, 2])],
              ),
            },
          },
        ],
        [{ name: 'M', type: INT64, dims: [] }, { name: 'a0', dims: [1] }],
        [{ name: 'a', dims: null }],
      ),
    );
    const err = await compile(m).catch((x: KilnError) => x);
    expect(err).toBeInstanceOf(KilnError);
    expect((err as KilnError).message).toMatch(/main_Loop_0.*loop-carried value 0 \('a0'\) enters with shape \[1\] but the body gives \[2\]/);
  });
});

describe('Scan', () => {
  // state s += x_t * k (k captured); scan output y_t = s
  const scanModel = (opset: number, attrs: Record<string, AttrV>, xDims: number[], sDims: number[], yDims: number[], inputs: string[]) =>
    model(
      graph(
        'main',
        [
          {
            op: 'Scan',
            inputs,
            outputs: ['s', 'y'],
            attrs: {
              ...attrs,
              body: graph(
                'body',
                [
                  { op: 'Mul', inputs: ['xt', 'k'], outputs: ['xk'] },
                  { op: 'Add', inputs: ['s_in', 'xk'], outputs: ['s_out'] },
                  { op: 'Identity', inputs: ['s_out'], outputs: ['yt'] },
                ],
                [{ name: 's_in', dims: null }, { name: 'xt', dims: null }],
                [{ name: 's_out', dims: null }, { name: 'yt', dims: null }],
              ),
            },
          },
        ],
        [{ name: 's0', dims: sDims }, { name: 'x', dims: xDims }, { name: 'k', dims: [] }],
        [{ name: 's', dims: sDims }, { name: 'y', dims: yDims }],
      ),
      opset,
    );

  test('opset 9+: scan axis 1, reverse input, output stacked on axis 1 in reverse', async () => {
    // x [2, 3]: scanned along axis 1 (3 steps of [2]), backwards; y stacked on axis 1, backwards
    const e = await compile(
      scanModel(11, { num_scan_inputs: 1, scan_input_axes: [1], scan_input_directions: [1], scan_output_axes: [1], scan_output_directions: [1] }, [2, 3], [2], [2, 3], ['s0', 'x']),
    );
    const r = await e.infer({ s0: f32([0, 100]), x: f32([1, 2, 3, 4, 5, 6], [2, 3]), k: new Tensor('float32', [2], []) });
    // steps: t=2 → s = [6, 112]; t=1 → [10, 122]; t=0 → [12, 130]; y row written at position (T-1-step)
    expect(arr(r.s)).toEqual([12, 130]);
    expect(r.y.dims).toEqual([2, 3]);
    expect(arr(r.y)).toEqual([12, 10, 6, 130, 122, 112]);
    e.dispose();
  });

  test('opset 9+: defaults (axis 0, forward)', async () => {
    const e = await compile(scanModel(16, { num_scan_inputs: 1 }, [3, 2], [2], [3, 2], ['s0', 'x']));
    const r = await e.infer({ s0: f32([0, 0]), x: f32([1, 2, 3, 4, 5, 6], [3, 2]), k: new Tensor('float32', [1], []) });
    expect(arr(r.s)).toEqual([9, 12]);
    expect(arr(r.y)).toEqual([1, 2, 4, 6, 9, 12]);
    e.dispose();
  });

  test('opset 8: batch form with sequence_lens', async () => {
    const m = scanModel(8, { num_scan_inputs: 1 }, [2, 3, 1], [2, 1], [2, 3, 1], ['lens', 's0', 'x']);
    const withLens = onnx.ModelProto.decode(m);
    withLens.graph!.input!.push(vi({ name: 'lens', type: INT64, dims: [2] }));
    const e = await compile(onnx.ModelProto.encode(withLens).finish());
    const r = await e.infer({
      s0: f32([0, 0], [2, 1]),
      x: f32([1, 2, 3, 10, 20, 30], [2, 3, 1]),
      k: new Tensor('float32', [1], []),
      lens: new Tensor('int64', [3n, 2n], [2]),
    });
    expect(arr(r.s)).toEqual([6, 30]);
    expect(arr(r.y)).toEqual([1, 3, 6, 10, 30, 0]);
    await expect(
      e.infer({ s0: f32([0, 0], [2, 1]), x: f32([1, 2, 3, 10, 20, 30], [2, 3, 1]), k: new Tensor('float32', [1], []), lens: new Tensor('int64', [4n, 2n], [2]) }),
    ).rejects.toThrow(/sequence_lens\[0\] = 4/);
    e.dispose();
  });
});
