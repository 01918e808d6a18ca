/**
 * Every error a user can cause is a KilnError whose message says where (ONNX node, input name, engine
 * section, option) and why. `code` is stable and meant for programs; the message is for people.
 */
export type KilnErrorCode =
  | 'INVALID_OPTION'
  | 'INVALID_MODEL'
  | 'UNSUPPORTED'
  | 'SHAPE'
  | 'INVALID_INPUT'
  | 'INVALID_ENGINE'
  | 'ENGINE_MISMATCH'
  | 'CANCELLED'
  | 'DISPOSED'
  | 'RUNTIME'
  | 'INTERNAL';

export class KilnError extends Error {
  readonly code: KilnErrorCode;
  /** For errors about one value of the graph (e.g. a shape input that must be constant): its name. */
  readonly value?: string;
  constructor(code: KilnErrorCode, message: string, value?: string) {
    super(message);
    this.name = 'KilnError';
    this.code = code;
    if (value !== undefined) this.value = value;
  }
}

/** Errors thrown by the addon carry a `[CODE] ` prefix; this turns them into KilnErrors. */
export function fromNative(e: unknown): Error {
  if (e instanceof KilnError) return e;
  // Native errors may come from another realm (jest's vm contexts): test the shape, not the class.
  const message = typeof e === 'object' && e !== null ? (e as { message?: unknown }).message : undefined;
  if (typeof message === 'string') {
    const m = /^(?:Error: )?\[([A-Z_]+)\] ([\s\S]*)$/.exec(message);
    if (m) return new KilnError(m[1] as KilnErrorCode, m[2]);
  }
  return e instanceof Error ? e : new Error(typeof message === 'string' ? message : String(e));
}
