/** ONNX import edge cases: typed data fields, IR 3 initializers listed as inputs, opsets, sub-graphs. */
import { onnx } from 'onnx-proto';
import { DataType } from '../../src/dtype';
import { decodeTensor, importModel } from '../../src/onnx/import';
import { buildModel } from '../helpers/model-builder';

test('initializers also listed as graph inputs (IR < 4) are not inputs', () => {
  const m = onnx.ModelProto.decode(
    buildModel({
      nodes: [{ op: 'Add', inputs: ['x', 'b'], outputs: ['y'] }],
      inputs: [{ name: 'x', dims: [2] }, { name: 'b', dims: [2] }],
      outputs: [{ name: 'y', dims: [2] }],
      initializers: [{ name: 'b', dims: [2], floats: [1, 2] }],
    }),
  );
  m.irVersion = 3;
  const g = importModel(onnx.ModelProto.encode(m).finish());
  expect(g.inputs).toEqual(['x']);
  expect(Array.from(g.values.get('b')!.data as Float32Array)).toEqual([1, 2]);
});

test('opset imports per domain, ai.onnx spelled either way', () => {
  const m = onnx.ModelProto.decode(buildModel({ nodes: [], inputs: [{ name: 'x', dims: [1] }], outputs: [{ name: 'x', dims: [1] }], opset: 11 }));
  m.opsetImport.push(onnx.OperatorSetIdProto.create({ domain: 'ai.onnx.ml', version: 3 }));
  const g = importModel(onnx.ModelProto.encode(m).finish());
  expect(g.opsets.get('')).toBe(11);
  expect(g.opsets.get('ai.onnx.ml')).toBe(3);
});

test('typed data fields decode by element type', () => {
  const cases: [number, Partial<onnx.ITensorProto>, unknown[]][] = [
    [DataType.FLOAT, { floatData: [1.5, -2] }, [1.5, -2]],
    [DataType.DOUBLE, { doubleData: [0.25, 8] }, [0.25, 8]],
    [DataType.INT64, { int64Data: [-5, 9007199254740993 as never] }, [-5n, 9007199254740992n]],
    [DataType.INT32, { int32Data: [7, -7] }, [7, -7]],
    [DataType.INT8, { int32Data: [-128, 127] }, [-128, 127]],
    [DataType.UINT16, { int32Data: [65535, 1] }, [65535, 1]],
    [DataType.BOOL, { int32Data: [1, 0] }, [1, 0]],
    [DataType.FLOAT16, { int32Data: [0x3c00, 0xc000] }, [0x3c00, 0xc000]],
    [DataType.UINT64, { uint64Data: [3, 4] }, [3n, 4n]],
  ];
  for (const [dataType, fields, want] of cases) {
    const v = decodeTensor({ name: 't', dataType, dims: [2], ...fields }, {}, 't');
    expect(Array.from(v.data as ArrayLike<unknown>)).toEqual(want);
  }
});

test('raw_data of the wrong length is an error naming the tensor', () => {
  expect(() => decodeTensor({ name: 'w', dataType: DataType.FLOAT, dims: [3], rawData: new Uint8Array(8) }, {}, "initializer 'w'")).toThrow(
    "initializer 'w': holds 8 bytes of data, its shape [3] of float32 needs 12",
  );
});

test('unsupported element types say which', () => {
  expect(() => decodeTensor({ name: 's', dataType: DataType.STRING, dims: [1], stringData: [Buffer.from('a')] }, {}, "initializer 's'")).toThrow(
    "initializer 's': element type string is not supported",
  );
});

test('symbolic and unknown dims become symbols', () => {
  const g = importModel(buildModel({ nodes: [], inputs: [{ name: 'x', dims: ['batch', 3] }], outputs: [{ name: 'x', dims: ['batch', 3] }] }));
  expect(g.values.get('x')!.shape).toEqual(['batch', 3]);
});

test('sub-graph attributes import with their parent scope', () => {
  const body = onnx.GraphProto.create({
    name: 'then',
    node: [{ opType: 'Identity', input: ['x'], output: ['o'] }],
    output: [{ name: 'o', type: { tensorType: { elemType: 1 } } }],
  });
  const m = onnx.ModelProto.decode(
    buildModel({ nodes: [{ op: 'If', inputs: ['c'], outputs: ['y'] }], inputs: [{ name: 'c', type: DataType.BOOL, dims: [] }, { name: 'x', dims: [2] }], outputs: [{ name: 'y' }] }),
  );
  m.graph!.node[0].attribute.push(onnx.AttributeProto.create({ name: 'then_branch', type: onnx.AttributeProto.AttributeType.GRAPH, g: body }));
  const g = importModel(onnx.ModelProto.encode(m).finish());
  const a = g.nodes[0].attrs.get('then_branch')!;
  expect(a.type).toBe('graph');
  if (a.type === 'graph') {
    expect(a.value.parent).toBe(g);
    expect(a.value.nodes[0].opType).toBe('Identity');
  }
});

test('an ort Tensor is accepted as a feed', async () => {
  const ort = await import('onnxruntime-node');
  const { compile } = await import('../../src');
  const e = await compile(buildModel({ nodes: [{ op: 'Mul', inputs: ['x', 'x'], outputs: ['y'] }], inputs: [{ name: 'x', dims: [3] }], outputs: [{ name: 'y', dims: [3] }] }));
  const out = await e.infer({ x: new ort.Tensor('float32', new Float32Array([1, 2, 3]), [3]) });
  expect(Array.from(out.y.data as Float32Array)).toEqual([1, 4, 9]);
  e.dispose();
});
