/**
 * Reads the framing of engine bytes (docs/engine-format.md) for `kiln inspect`: header fields and the
 * section table with offsets, lengths and the checksum. Loading proper (and all validation that matters
 * for safety) is the addon's; this only reports what a file holds, and says where it is malformed.
 */
import { KilnError } from '../errors';

export interface EngineFileInfo {
  bytes: number;
  formatVersion: number;
  kilnVersion: string;
  backend: string;
  device: string;
  capability: string;
  libraries: unknown;
  buildOptions: unknown;
  sections: { tag: string; offset: number; length: number }[];
  crc32: string;
}

export const ENGINE_MAGIC = 'KILNENG\0';

export function isEngineBytes(b: Uint8Array): boolean {
  return b.length >= 8 && Buffer.from(b.subarray(0, 8)).toString('latin1') === ENGINE_MAGIC;
}

function json(s: string): unknown {
  try {
    return s ? JSON.parse(s) : {};
  } catch {
    return s;
  }
}

export function readEngineFile(b: Uint8Array): EngineFileInfo {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  let pos = 0;
  const need = (n: number, what: string) => {
    if (pos + n > b.length) throw new KilnError('INVALID_ENGINE', `engine header: truncated while reading ${what}`);
  };
  const u32 = (what: string) => {
    need(4, what);
    pos += 4;
    return dv.getUint32(pos - 4, true);
  };
  const u64 = (what: string) => {
    need(8, what);
    pos += 8;
    return Number(dv.getBigUint64(pos - 8, true));
  };
  const str = (what: string) => {
    const n = u32(what);
    need(n, what);
    pos += n;
    return Buffer.from(b.subarray(pos - n, pos)).toString('utf8');
  };
  if (!isEngineBytes(b)) throw new KilnError('INVALID_ENGINE', 'engine header: not a kiln engine (the first 8 bytes are not the kiln magic)');
  pos = 8;
  const formatVersion = u32('format version');
  const headerLength = u32('header length');
  const kilnVersion = str('kiln version');
  const backend = str('backend');
  const device = str('device');
  const capability = str('capability');
  const libraries = json(str('libraries'));
  const buildOptions = json(str('build options'));
  pos = 16 + headerLength;
  const count = u32('section count');
  const sections = [];
  for (let i = 0; i < Math.min(count, 64); i++) {
    need(4, 'section tag');
    const tag = Buffer.from(b.subarray(pos, pos + 4)).toString('latin1');
    pos += 4;
    sections.push({ tag, offset: u64('section offset'), length: u64('section length') });
  }
  const crc = b.length >= 8 ? dv.getUint32(b.length - 8, true) : 0;
  return { bytes: b.length, formatVersion, kilnVersion, backend, device, capability, libraries, buildOptions, sections, crc32: crc.toString(16).padStart(8, '0') };
}
