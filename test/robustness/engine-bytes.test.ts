/** Foreign, truncated and bit-flipped engines are refused with an error naming the section; never a crash. */
import { KilnError, Tensor, compile, loadEngine } from '../../src';
import { addModel } from '../helpers/model-builder';

let bytes: Uint8Array;
beforeAll(async () => {
  const e = await compile(addModel());
  bytes = e.serialize();
  e.dispose();
});

async function refusal(b: Uint8Array): Promise<KilnError> {
  try {
    const e = await loadEngine(b);
    e.dispose();
  } catch (err) {
    expect(err).toBeInstanceOf(KilnError);
    return err as KilnError;
  }
  throw new Error('the engine was accepted');
}

test('a valid engine round-trips', async () => {
  const e = await loadEngine(bytes);
  const out = await e.infer({ x: new Tensor('float32', [1, 1, 1, 1], [1, 4]) });
  expect(Array.from(out.y.data as Float32Array)).toEqual([2, 3, 4, 5]);
  expect(e.serialize()).toEqual(bytes);
  e.dispose();
});

test('foreign bytes are not a kiln engine', async () => {
  const err = await refusal(new Uint8Array([0x08, 0x07, 0x12, 0x00, 1, 2, 3, 4, 5, 6, 7, 8]));
  expect(err.code).toBe('INVALID_ENGINE');
  expect(err.message).toMatch(/engine header: not a kiln engine/);
});

test('an empty buffer is refused', async () => {
  expect((await refusal(new Uint8Array(0))).message).toMatch(/engine header/);
});

test('every truncation is refused with a named section', async () => {
  const step = Math.max(1, Math.floor(bytes.length / 97));
  for (let n = 0; n < bytes.length; n += step) {
    const err = await refusal(bytes.slice(0, n));
    expect(err.message).toMatch(/^engine (header|trailer|section)/);
  }
});

test('bit flips are caught by the checksum or by validation', async () => {
  let seed = 7;
  for (let k = 0; k < 200; k++) {
    seed = (seed * 1103515245 + 12345) >>> 0;
    const b = new Uint8Array(bytes);
    const i = seed % b.length;
    b[i] ^= 1 << (seed >>> 29);
    const err = await refusal(b);
    expect(err.code === 'INVALID_ENGINE' || err.code === 'ENGINE_MISMATCH').toBe(true);
    expect(err.message).toMatch(/^engine (header|trailer|section)/);
  }
});

test('a newer format version asks for a rebuild', async () => {
  const b = new Uint8Array(bytes);
  new DataView(b.buffer).setUint32(8, 99, true);
  const err = await refusal(b);
  expect(err.code).toBe('ENGINE_MISMATCH');
  expect(err.message).toBe('engine header: format version 99, this kiln reads version 1; rebuild the engine');
});

test('loadEngine rejects non-bytes', async () => {
  await expect(loadEngine('nope' as unknown as Uint8Array)).rejects.toThrow(/expected a Uint8Array or an ArrayBuffer, received string/);
});

test('loadEngine refuses a deviceId that is not a non-negative integer', async () => {
  const e = await compile(addModel(), { device: 'cpu' });
  const bytes = e.serialize();
  e.dispose();
  await expect(loadEngine(bytes, { deviceId: -1 })).rejects.toThrow("Expected a non-negative integer for option 'deviceId' but received -1");
  await expect(loadEngine(bytes, { deviceId: 0.5 })).rejects.toMatchObject({ code: 'INVALID_OPTION' });
  // a CPU engine ignores the device
  const again = await loadEngine(bytes, { deviceId: 3 });
  expect(again.inputs.map((i) => i.name)).toEqual(['x']);
  again.dispose();
});
