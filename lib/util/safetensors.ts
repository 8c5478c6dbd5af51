/**
 * Reader and writer for the safetensors format (Hugging Face's safetensors specification):
 * `u64 LE header length N`, `N` bytes of JSON header, then the byte buffer the header's
 * `data_offsets` point into. Files are untrusted input: every length and offset is bounds-checked
 * before any view is made, and every problem is a `CxrError('E_CHECKPOINT')` naming the tensor.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { constants as bufferConstants } from 'buffer';
import { CxrError } from '../errors';
import { writeFileAtomic } from './atomic';

/** Element types this reader understands (the ones CLIP/BERT checkpoints use). */
export type SafetensorsDtype = 'F32' | 'F16' | 'BF16' | 'F64' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL';

/** Bytes per element of each {@link SafetensorsDtype}. */
export const SAFETENSORS_DTYPE_BYTES: Readonly<Record<SafetensorsDtype, number>> = Object.freeze({
  F64: 8,
  I64: 8,
  F32: 4,
  I32: 4,
  F16: 2,
  BF16: 2,
  I16: 2,
  I8: 1,
  U8: 1,
  BOOL: 1,
});

/** Largest header accepted (the reference implementation's limit). */
export const SAFETENSORS_MAX_HEADER_BYTES = 100 * 1024 * 1024;

/** One tensor of a safetensors file. */
export interface SafetensorsEntry {
  /** Element type. */
  dtype: SafetensorsDtype;
  /** Dimensions (empty for a scalar). */
  shape: number[];
  /** The raw little-endian bytes: a view into the file's buffer, not a copy. */
  data: Uint8Array;
}

/** A parsed safetensors file. */
export interface SafetensorsFile {
  /** Tensors by name, in header order. */
  tensors: Map<string, SafetensorsEntry>;
  /** The `__metadata__` string map (empty when the file has none). */
  metadata: Record<string, string>;
}

/** A tensor's header entry, before any data is read. */
export interface SafetensorsHeaderEntry {
  /** Element type. */
  dtype: SafetensorsDtype;
  /** Dimensions. */
  shape: number[];
  /** `[begin, end)` byte offsets relative to the start of the data buffer. */
  dataOffsets: [number, number];
}

/** The parsed, validated header of a safetensors file. */
export interface SafetensorsHeader {
  /** Tensors by name, in header order. */
  tensors: Map<string, SafetensorsHeaderEntry>;
  /** The `__metadata__` string map. */
  metadata: Record<string, string>;
  /** File offset of the data buffer (8 + header length). */
  dataStart: number;
  /** Length of the data buffer in bytes. */
  dataLength: number;
}

/** Data accepted by {@link writeSafetensors}. */
export type SafetensorsData = Uint8Array | Float32Array | Float64Array | Uint16Array | Int32Array | Int16Array | Int8Array | BigInt64Array;

/** A tensor to write with {@link writeSafetensors}. */
export interface SafetensorsInput {
  /** Element type stored in the file. */
  dtype: SafetensorsDtype;
  /** Dimensions; their product times the element size must equal the data's byte length. */
  shape: readonly number[];
  /**
   * The values: raw little-endian bytes (`Uint8Array`, any dtype), or the matching typed array
   * (`Float32Array` for F32, `Uint16Array` holding half/bfloat16 bits for F16/BF16, ...). A
   * `Float32Array` is also accepted for F16 and BF16 and converted (round to nearest even).
   */
  data: SafetensorsData;
}

const LITTLE_ENDIAN = os.endianness() === 'LE';

function bad(message: string, details?: Record<string, unknown>): CxrError {
  return new CxrError('E_CHECKPOINT', `safetensors: ${message}`, details);
}

function isDtype(x: unknown): x is SafetensorsDtype {
  return typeof x === 'string' && Object.prototype.hasOwnProperty.call(SAFETENSORS_DTYPE_BYTES, x);
}

/**
 * Validate a header given its raw bytes and the length of the data buffer that follows it.
 * Enforces: JSON object; `__metadata__` a string map; each tensor a known dtype, a shape of
 * non-negative integers, `data_offsets` `[begin, end]` with `begin <= end <= dataLength` and
 * `end - begin == prod(shape) * size`; tensors tile the data buffer exactly (no gap, no overlap,
 * nothing after the last one).
 */
function parseHeader(headerBytes: Uint8Array, dataStart: number, dataLength: number): SafetensorsHeader {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(headerBytes);
  } catch {
    throw bad('the header is not valid UTF-8');
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw bad(`the header is not valid JSON: ${(e as Error).message}`);
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json)) throw bad('the header is not a JSON object');

  const metadata: Record<string, string> = {};
  const tensors = new Map<string, SafetensorsHeaderEntry>();
  for (const [key, value] of Object.entries(json as Record<string, unknown>)) {
    if (key === '__metadata__') {
      if (value === null || typeof value !== 'object' || Array.isArray(value)) throw bad('__metadata__ is not an object of strings');
      for (const [mk, mv] of Object.entries(value as Record<string, unknown>)) {
        if (typeof mv !== 'string') throw bad(`__metadata__ value for '${mk}' is not a string`, { key: mk });
        metadata[mk] = mv;
      }
      continue;
    }
    const where = `tensor '${key}'`;
    if (value === null || typeof value !== 'object' || Array.isArray(value)) throw bad(`${where}: entry is not an object`, { key });
    const { dtype, shape, data_offsets: offsets } = value as Record<string, unknown>;
    if (!isDtype(dtype)) throw bad(`${where}: unsupported dtype ${JSON.stringify(dtype)} (supported: ${Object.keys(SAFETENSORS_DTYPE_BYTES).join(', ')})`, { key });
    if (!Array.isArray(shape)) throw bad(`${where}: shape is not an array`, { key });
    if (!Array.isArray(offsets) || offsets.length !== 2) throw bad(`${where}: data_offsets is not a [begin, end] pair`, { key });
    const [begin, end] = offsets as unknown[];
    if (!Number.isSafeInteger(begin) || !Number.isSafeInteger(end) || (begin as number) < 0 || (end as number) < 0) {
      throw bad(`${where}: data_offsets ${JSON.stringify(offsets)} are not non-negative integers`, { key });
    }
    if ((begin as number) > (end as number)) throw bad(`${where}: data_offsets begin ${begin} > end ${end}`, { key });
    if ((end as number) > dataLength) throw bad(`${where}: data_offsets end ${end} is past the end of the data (${dataLength} bytes)`, { key });
    const dims: number[] = [];
    for (const d of shape) {
      if (!Number.isSafeInteger(d) || (d as number) < 0) throw bad(`${where}: shape ${JSON.stringify(shape)} has a dimension that is not a non-negative integer`, { key });
      dims.push(d as number);
    }
    // A product past 2^53 is inexact (or Infinity) but then far larger than any buffer, so the
    // equality test below still rejects it; a zero dimension means no elements at all.
    const numel = dims.includes(0) ? 0 : dims.reduce((a, d) => a * d, 1);
    const bytes = (end as number) - (begin as number);
    const want = numel * SAFETENSORS_DTYPE_BYTES[dtype];
    if (want !== bytes) {
      throw bad(`${where}: shape [${dims.join(', ')}] of ${dtype} needs ${want} bytes but data_offsets give ${bytes}`, { key });
    }
    tensors.set(key, { dtype, shape: dims, dataOffsets: [begin as number, end as number] });
  }

  // The tensors must tile the data buffer: sorted by offsets, each starts where the last ended.
  const order = [...tensors.entries()].sort((a, b) => a[1].dataOffsets[0] - b[1].dataOffsets[0] || a[1].dataOffsets[1] - b[1].dataOffsets[1]);
  let cursor = 0;
  for (const [key, t] of order) {
    const [begin] = t.dataOffsets;
    if (begin < cursor) throw bad(`tensor '${key}': data_offsets [${t.dataOffsets.join(', ')}] overlap the previous tensor (which ends at ${cursor})`, { key });
    if (begin > cursor) throw bad(`tensor '${key}': data_offsets [${t.dataOffsets.join(', ')}] leave a gap after byte ${cursor}`, { key });
    cursor = t.dataOffsets[1];
  }
  if (cursor !== dataLength) throw bad(`the tensors cover ${cursor} bytes of a ${dataLength}-byte data buffer (trailing or missing bytes)`);
  return { tensors, metadata, dataStart, dataLength };
}

function headerLength(prefix: Uint8Array, fileLength: number): number {
  if (fileLength < 8) throw bad(`file of ${fileLength} bytes is too short for the 8-byte header length`);
  const n = new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(SAFETENSORS_MAX_HEADER_BYTES)) throw bad(`header length ${n} exceeds the ${SAFETENSORS_MAX_HEADER_BYTES}-byte limit`);
  if (n > BigInt(fileLength - 8)) throw bad(`header length ${n} is past the end of the ${fileLength}-byte file`);
  return Number(n);
}

function ioError(file: string, e: unknown): CxrError {
  const code = (e as NodeJS.ErrnoException).code;
  return new CxrError('E_IO', `cannot read '${file}': ${code ?? (e as Error).message}`, { path: file }, { cause: e });
}

/**
 * Opens `file` and runs `read(fd, size)`, closing it whatever happens; file-system errors become E_IO
 * naming the file, CxrErrors pass through.
 */
function withFile<T>(file: string, read: (fd: number, size: number) => T): T {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch (e) {
    throw ioError(file, e);
  }
  try {
    return read(fd, fs.fstatSync(fd).size);
  } catch (e) {
    if (e instanceof CxrError) throw e;
    throw ioError(file, e);
  } finally {
    fs.closeSync(fd);
  }
}

/** Read a whole file into one Buffer (chunked, so files over 2 GiB work up to Buffer's limit). */
function readWholeFile(file: string): Buffer {
  return withFile(file, (fd, size) => {
    if (size > bufferConstants.MAX_LENGTH) {
      throw new CxrError('E_UNSUPPORTED', `'${file}' is ${size} bytes, more than this Node.js can hold in one buffer (${bufferConstants.MAX_LENGTH})`, { path: file });
    }
    const buf = Buffer.allocUnsafe(size);
    let off = 0;
    while (off < size) {
      const n = fs.readSync(fd, buf, off, Math.min(size - off, 1 << 30), off);
      if (n === 0) throw new CxrError('E_IO', `'${file}' shrank while being read`, { path: file });
      off += n;
    }
    return buf;
  });
}

/**
 * Read and validate only the header of a safetensors file (no tensor data is read), e.g. to
 * detect a checkpoint's layout from its key names and shapes.
 * @throws CxrError `E_CHECKPOINT` for a malformed header, `E_IO` when the file cannot be read.
 */
export function readSafetensorsHeader(file: string): SafetensorsHeader {
  return withFile(file, (fd, size) => {
    const prefix = Buffer.alloc(8);
    if (size >= 8) fs.readSync(fd, prefix, 0, 8, 0);
    const n = headerLength(prefix, size);
    const header = Buffer.alloc(n);
    if (n > 0 && fs.readSync(fd, header, 0, n, 8) !== n) throw bad('short read of the header');
    return parseHeader(header, 8 + n, size - 8 - n);
  });
}

/**
 * Parse a safetensors file or buffer. Tensor `data` are views into the buffer (no copies).
 * @param src a path, or the file's bytes.
 * @throws CxrError `E_CHECKPOINT` naming the tensor for any malformed header or offset,
 *   `E_IO` when a path cannot be read.
 */
export function readSafetensors(src: Uint8Array | string): SafetensorsFile {
  const buf = typeof src === 'string' ? readWholeFile(src) : src;
  if (!(buf instanceof Uint8Array)) throw new CxrError('E_CHECKPOINT', 'readSafetensors expects a path or a Uint8Array');
  const n = headerLength(buf, buf.length);
  const header = parseHeader(buf.subarray(8, 8 + n), 8 + n, buf.length - 8 - n);
  const tensors = new Map<string, SafetensorsEntry>();
  for (const [key, t] of header.tensors) {
    tensors.set(key, { dtype: t.dtype, shape: t.shape, data: buf.subarray(header.dataStart + t.dataOffsets[0], header.dataStart + t.dataOffsets[1]) });
  }
  return { tensors, metadata: header.metadata };
}

let f16Table: Float32Array | undefined;
/** All 65536 half-precision values as float32, built once (upcasting by lookup is exact and fast). */
function halfTable(): Float32Array {
  if (f16Table) return f16Table;
  const t = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1;
    const exp = (h >> 10) & 0x1f;
    const frac = h & 0x3ff;
    if (exp === 0) t[h] = sign * frac * 2 ** -24;
    else if (exp === 31) t[h] = frac === 0 ? sign * Infinity : NaN;
    else t[h] = sign * (1 + frac / 1024) * 2 ** (exp - 15);
  }
  f16Table = t;
  return t;
}

/** Copy `bytes` into a fresh, aligned ArrayBuffer (views of file data may be unaligned). */
function aligned(bytes: Uint8Array): ArrayBuffer {
  const out = new ArrayBuffer(bytes.byteLength);
  new Uint8Array(out).set(bytes);
  return out;
}

/**
 * The entry's values as a new Float32Array: F16 and BF16 upcast exactly, F64 rounded, integers
 * and BOOL converted (I64 beyond 2^53 loses precision).
 */
export function toFloat32(entry: SafetensorsEntry): Float32Array {
  if (!LITTLE_ENDIAN) throw new CxrError('E_UNSUPPORTED', 'safetensors data is little-endian; big-endian hosts are not supported');
  const buf = aligned(entry.data);
  switch (entry.dtype) {
    case 'F32':
      return new Float32Array(buf);
    case 'F16': {
      const h = new Uint16Array(buf);
      const table = halfTable();
      const out = new Float32Array(h.length);
      for (let i = 0; i < h.length; i++) out[i] = table[h[i]];
      return out;
    }
    case 'BF16': {
      const h = new Uint16Array(buf);
      const out = new Float32Array(h.length);
      const bits = new Uint32Array(out.buffer);
      for (let i = 0; i < h.length; i++) bits[i] = h[i] << 16;
      return out;
    }
    case 'F64':
      return Float32Array.from(new Float64Array(buf));
    case 'I64':
      return Float32Array.from(new BigInt64Array(buf), (v) => Number(v));
    case 'I32':
      return Float32Array.from(new Int32Array(buf));
    case 'I16':
      return Float32Array.from(new Int16Array(buf));
    case 'I8':
      return Float32Array.from(new Int8Array(buf));
    case 'U8':
    case 'BOOL':
      return Float32Array.from(new Uint8Array(buf));
    default:
      throw new CxrError('E_DTYPE', `toFloat32: unknown dtype ${String((entry as { dtype: unknown }).dtype)}`);
  }
}

/** float32 → IEEE half bits, round to nearest even (overflow → ±Inf, NaN kept). */
export function float32ToFloat16(values: Float32Array): Uint16Array {
  const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const x = bits[i];
    const sign = (x >>> 16) & 0x8000;
    const exp = (x >>> 23) & 0xff;
    const mant = x & 0x7fffff;
    if (exp === 0xff) {
      out[i] = sign | 0x7c00 | (mant ? 0x200 : 0);
      continue;
    }
    const e = exp - 127 + 15;
    if (e >= 31) {
      out[i] = sign | 0x7c00;
    } else if (e <= 0) {
      if (e < -10) {
        out[i] = sign;
        continue;
      }
      // Subnormal half: shift the full mantissa (with the implicit 1) and round to nearest even.
      const m = mant | 0x800000;
      const shift = 14 - e;
      let h = m >>> shift;
      const rem = m & ((1 << shift) - 1);
      const halfway = 1 << (shift - 1);
      if (rem > halfway || (rem === halfway && h & 1)) h++;
      out[i] = sign | h;
    } else {
      let h = (e << 10) | (mant >>> 13);
      const rem = mant & 0x1fff;
      if (rem > 0x1000 || (rem === 0x1000 && h & 1)) h++; // a carry into the exponent is correct rounding
      out[i] = sign | h;
    }
  }
  return out;
}

/** float32 → bfloat16 bits, round to nearest even (NaN kept quiet). */
export function float32ToBFloat16(values: Float32Array): Uint16Array {
  const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const x = bits[i];
    if ((x & 0x7f800000) === 0x7f800000 && x & 0x7fffff) {
      out[i] = (x >>> 16) | 0x40;
      continue;
    }
    out[i] = ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
  }
  return out;
}

const TYPED_FOR: Record<SafetensorsDtype, string> = {
  F32: 'Float32Array',
  F64: 'Float64Array',
  F16: 'Uint16Array',
  BF16: 'Uint16Array',
  I64: 'BigInt64Array',
  I32: 'Int32Array',
  I16: 'Int16Array',
  I8: 'Int8Array',
  U8: 'Uint8Array',
  BOOL: 'Uint8Array',
};

function tensorBytes(name: string, t: SafetensorsInput): Uint8Array {
  if (!isDtype(t.dtype)) throw new CxrError('E_DTYPE', `tensor '${name}': unsupported dtype ${JSON.stringify(t.dtype)}`, { key: name });
  let data: SafetensorsData = t.data;
  if (data instanceof Float32Array && (t.dtype === 'F16' || t.dtype === 'BF16')) {
    data = t.dtype === 'F16' ? float32ToFloat16(data) : float32ToBFloat16(data);
  }
  const typeName = data?.constructor?.name;
  if (!(data instanceof Uint8Array) && typeName !== TYPED_FOR[t.dtype]) {
    throw new CxrError('E_DTYPE', `tensor '${name}': ${typeName} data does not match dtype ${t.dtype} (expected ${TYPED_FOR[t.dtype]} or raw Uint8Array bytes)`, { key: name });
  }
  if (!Array.isArray(t.shape) || t.shape.some((d) => !Number.isSafeInteger(d) || d < 0)) {
    throw new CxrError('E_SHAPE', `tensor '${name}': shape ${JSON.stringify(t.shape)} must be non-negative integers`, { key: name });
  }
  const want = t.shape.reduce((a, d) => a * d, 1) * SAFETENSORS_DTYPE_BYTES[t.dtype];
  if (data.byteLength !== want) {
    throw new CxrError('E_SHAPE', `tensor '${name}': shape [${t.shape.join(', ')}] of ${t.dtype} needs ${want} bytes, data has ${data.byteLength}`, { key: name });
  }
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

/**
 * Build the header bytes (padded with spaces to a multiple of 8, as the reference writer does)
 * and the tensors' byte views in data order. Tensors are ordered by element size, largest first,
 * then by name, so every tensor starts at an offset aligned to its element size.
 */
function layout(tensors: Record<string, SafetensorsInput>, metadata?: Record<string, string>): { header: Uint8Array; parts: Uint8Array[] } {
  if (!LITTLE_ENDIAN) throw new CxrError('E_UNSUPPORTED', 'writing safetensors on a big-endian host is not supported');
  const names = Object.keys(tensors);
  if (names.includes('__metadata__')) throw new CxrError('E_CONFIG', "'__metadata__' is reserved and cannot be a tensor name");
  const entries = names.map((name) => ({ name, t: tensors[name], bytes: tensorBytes(name, tensors[name]) }));
  entries.sort((a, b) => SAFETENSORS_DTYPE_BYTES[b.t.dtype] - SAFETENSORS_DTYPE_BYTES[a.t.dtype] || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const json: Record<string, unknown> = {};
  if (metadata !== undefined) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== 'string') throw new CxrError('E_CONFIG', `metadata value for '${k}' must be a string`);
    }
    json.__metadata__ = metadata;
  }
  let offset = 0;
  for (const e of entries) {
    json[e.name] = { dtype: e.t.dtype, shape: [...e.t.shape], data_offsets: [offset, offset + e.bytes.byteLength] };
    offset += e.bytes.byteLength;
  }
  let text = JSON.stringify(json);
  const raw = Buffer.from(text, 'utf8');
  const padded = Math.ceil(raw.length / 8) * 8;
  text += ' '.repeat(padded - raw.length);
  const header = Buffer.alloc(8 + padded);
  header.writeBigUInt64LE(BigInt(padded), 0);
  header.write(text, 8, 'utf8');
  return { header, parts: entries.map((e) => e.bytes) };
}

/** Serialise tensors to safetensors bytes in memory (for tests and small files). */
export function encodeSafetensors(tensors: Record<string, SafetensorsInput>, metadata?: Record<string, string>): Uint8Array {
  const { header, parts } = layout(tensors, metadata);
  return Buffer.concat([header, ...parts]);
}

/**
 * Write tensors to `file` in the safetensors format, atomically: the bytes go to a temporary file
 * in the same directory, which is fsynced and then renamed over `file`, so a crash never leaves a
 * half-written checkpoint under the final name.
 * @param file destination path.
 * @param tensors tensors by name.
 * @param metadata optional `__metadata__` string map.
 * @throws CxrError `E_DTYPE`/`E_SHAPE` for data that does not match its dtype/shape, `E_IO` on
 *   file system errors.
 */
export function writeSafetensors(file: string, tensors: Record<string, SafetensorsInput>, metadata?: Record<string, string>): void {
  const { header, parts } = layout(tensors, metadata);
  writeFileAtomic(file, [header, ...parts]);
}

