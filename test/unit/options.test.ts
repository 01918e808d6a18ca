/**
 * Every compile() option with an invalid value, asserting the exact message (src/options.ts), and the
 * unknown-option error. Options are validated before the model is read, so any bytes do here.
 */
import { compile } from '../../src';
import { KilnError } from '../../src/errors';
import { CompileOptions } from '../../src/options';

const MODEL = new Uint8Array([0]);

async function rejection(options: unknown): Promise<KilnError> {
  try {
    await compile(MODEL, options as CompileOptions);
  } catch (e) {
    expect(e).toBeInstanceOf(KilnError);
    return e as KilnError;
  }
  throw new Error(`compile accepted ${String(options)}`);
}

const CASES: [string, unknown, string][] = [
  ['precision', 'fp64', "Expected 'fp32' | 'fp16' | 'int8' | 'best' for option 'precision' but received 'fp64'"],
  ['precision', 32, "Expected 'fp32' | 'fp16' | 'int8' | 'best' for option 'precision' but received 32"],
  ['device', 'gpu', "Expected 'auto' | 'cpu' | 'cuda' for option 'device' but received 'gpu'"],
  ['device', null, "Expected 'auto' | 'cpu' | 'cuda' for option 'device' but received null"],
  ['shapes', [1, 3], "Expected an object of input name → array of dims for option 'shapes' but received [1,3]"],
  ['shapes', 'x=1x3', "Expected an object of input name → array of dims for option 'shapes' but received 'x=1x3'"],
  ['onProgress', true, "Expected a function for option 'onProgress' but received true"],
  ['signal', {}, "Expected an AbortSignal for option 'signal' but received {}"],
  ['signal', 'abort', "Expected an AbortSignal for option 'signal' but received 'abort'"],
  ['timing', 'yes', "Expected a boolean for option 'timing' but received 'yes'"],
  ['timing', 1, "Expected a boolean for option 'timing' but received 1"],
  ['optimize', 'all', "Expected a boolean or an object of pass name → boolean for option 'optimize' but received 'all'"],
  ['optimize', { 'noop-removal': 'off' }, `Expected a boolean or an object of pass name → boolean for option 'optimize' but received {"noop-removal":"off"}`],
  ['optimize', null, "Expected a boolean or an object of pass name → boolean for option 'optimize' but received null"],
  ['strict', 0, "Expected a boolean for option 'strict' but received 0"],
  ['deviceId', -1, "Expected a non-negative integer for option 'deviceId' but received -1"],
  ['timingCache', 42, "Expected a file path for option 'timingCache' but received 42"],
  ['timingCache', '', "Expected a file path for option 'timingCache' but received ''"],
  ['deviceId', '0', "Expected a non-negative integer for option 'deviceId' but received '0'"],
  ['constants', [1], "Expected an object of input name → Tensor for option 'constants' but received [1]"],
  ['constants', { axes: [1, 2] }, "Expected a Tensor for option 'constants.axes' but received [1,2]"],
  ['debug', true, "Expected { exposeAll?: boolean } for option 'debug' but received true"],
  ['debug', { exposeAll: 1 }, `Expected { exposeAll?: boolean } for option 'debug' but received {"exposeAll":1}`],
  ['guard', 'off', "Expected a boolean for option 'guard' but received 'off'"],
  ['guard', null, "Expected a boolean for option 'guard' but received null"],
  ['debug', { verbose: true }, `Expected { exposeAll?: boolean } for option 'debug' but received {"verbose":true}`],
  ['calibration', 5, "Expected an array or async iterable of input feeds for option 'calibration' but received 5"],
  ['calibration', {}, "Expected an array or async iterable of input feeds for option 'calibration' but received {}"],
  ['calibrator', 'kl', "Expected 'entropy' | 'percentile' | 'minmax' for option 'calibrator' but received 'kl'"],
  ['percentile', 0, "Expected a number in (0, 100] for option 'percentile' but received 0"],
  ['percentile', 101, "Expected a number in (0, 100] for option 'percentile' but received 101"],
  ['calibrationCache', '', "Expected a file path for option 'calibrationCache' but received ''"],
  ['layerPrecisions', ['conv1'], `Expected an object of layer name → 'fp32' | 'fp16' | 'int8' for option 'layerPrecisions' but received ["conv1"]`],
  ['layerPrecisions', { conv1: 'int4' }, `Expected 'fp32' | 'fp16' | 'int8' for option 'layerPrecisions.conv1' but received "int4"`],
  ['tolerance', -1, "Expected a positive number for option 'tolerance' but received -1"],
  ['tolerance', 'loose', "Expected a positive number for option 'tolerance' but received 'loose'"],
];

/** The option names, as the unknown-option error lists them (so a new option without a case here fails). */
async function optionNames(): Promise<string[]> {
  const e = await rejection({ precison: 'fp16' });
  return /the options are (.*)$/.exec(e.message)![1].split(', ');
}

describe('compile() options', () => {
  test.each(CASES)('%s = %p is refused with its message', async (name, value, message) => {
    const e = await rejection({ [name]: value });
    expect(e.code).toBe('INVALID_OPTION');
    expect(e.message).toBe(message);
  });

  test('every option has an invalid-value case', async () => {
    const covered = new Set(CASES.map(([n]) => n));
    expect([...covered].sort()).toEqual((await optionNames()).sort());
  });

  test.each([
    [{ x: [1, -3] }, "Expected an array of non-negative integers for option 'shapes.x' but received [1,-3]"],
    [{ x: [1.5] }, "Expected an array of non-negative integers for option 'shapes.x' but received [1.5]"],
    [{ x: '1x3' }, `Expected an array of non-negative integers for option 'shapes.x' but received "1x3"`],
  ])('shapes entry %p is refused', async (shapes, message) => {
    const e = await rejection({ shapes });
    expect(e.code).toBe('INVALID_OPTION');
    expect(e.message).toBe(message);
  });

  test('an unknown option is named, with the list of options', async () => {
    const e = await rejection({ precison: 'fp16' });
    expect(e.code).toBe('INVALID_OPTION');
    expect(e.message).toBe(`Unknown option 'precison'; the options are ${(await optionNames()).join(', ')}`);
    expect(await optionNames()).toEqual(expect.arrayContaining(['precision', 'device', 'shapes', 'onProgress', 'signal', 'timing', 'optimize', 'strict']));
  });

  test('options that are not an object are refused', async () => {
    const e = await rejection('fp16');
    expect(e.code).toBe('INVALID_OPTION');
    expect(e.message).toBe('Expected an options object but received string');
  });

  test('an already aborted signal cancels before any work', async () => {
    const ac = new AbortController();
    ac.abort();
    const e = await rejection({ signal: ac.signal });
    expect(e.code).toBe('CANCELLED');
    expect(e.message).toBe('build cancelled');
  });

  test('a precision the cpu backend cannot run is refused, naming the option', async () => {
    const e = await rejection({ precision: 'fp16', device: 'cpu' });
    expect(e.code).toBe('UNSUPPORTED');
    expect(e.message).toBe("Option 'precision' is 'fp16' but the cpu backend runs fp32 and int8 only; use precision: 'fp32', 'int8' or a CUDA device");
  });
});
