/**
 * A TensorBoard event-file writer: scalars and text summaries, no dependency. The file is a sequence of
 * TFRecords, `[uint64 length LE][uint32 masked CRC32C of the length][data][uint32 masked CRC32C of data]`,
 * each `data` one serialized `tensorflow.Event` protobuf; the first event carries `file_version
 * "brain.Event:2"`. The protobuf messages (Event, Summary, Summary.Value, SummaryMetadata, TensorProto)
 * are encoded by hand: a handful of fields, so a small varint / length-delimited encoder is all it takes.
 *
 * Writes go to a memory buffer, flushed to the file every `flushMs` (and when the buffer passes 64 KiB, and
 * on `flush()` / `close()`), so a training step never waits on the disk.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CxrError } from '../errors';

// ---------------------------------------------------------------------------------------------------
// CRC32C (Castagnoli), table-driven.

const CRC32C_TABLE: Uint32Array = (() => {
  const t = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    t[i] = c >>> 0;
  }
  return t;
})();

/** CRC32C of `bytes` (the checksum TFRecord framing uses), as an unsigned 32-bit integer. */
export function crc32c(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) c = CRC32C_TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** TFRecord's masked CRC: `((crc >>> 15) | (crc << 17)) + 0xa282ead8`, modulo 2^32. */
export function maskedCrc32c(bytes: Uint8Array): number {
  const c = crc32c(bytes);
  return ((((c >>> 15) | (c << 17)) >>> 0) + 0xa282ead8) >>> 0;
}

/** One TFRecord around `data`. */
export function tfRecord(data: Uint8Array): Buffer {
  const out = Buffer.alloc(8 + 4 + data.length + 4);
  out.writeBigUInt64LE(BigInt(data.length), 0);
  out.writeUInt32LE(maskedCrc32c(out.subarray(0, 8)), 8);
  out.set(data, 12);
  out.writeUInt32LE(maskedCrc32c(data), 12 + data.length);
  return out;
}

// ---------------------------------------------------------------------------------------------------
// Protobuf encoding: only the wire types these messages use.

function varint(n: number | bigint): number[] {
  let v = BigInt.asUintN(64, BigInt(n));
  const out: number[] = [];
  while (v >= 0x80n) {
    out.push(Number(v & 0x7fn) | 0x80);
    v >>= 7n;
  }
  out.push(Number(v));
  return out;
}
const key = (field: number, wire: number): number[] => varint((field << 3) | wire);
const lenDelim = (field: number, bytes: Uint8Array): Buffer => Buffer.concat([Buffer.from([...key(field, 2), ...varint(bytes.length)]), bytes]);
const str = (field: number, s: string): Buffer => lenDelim(field, Buffer.from(s, 'utf8'));
function float32(field: number, v: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeFloatLE(v, 0);
  return Buffer.concat([Buffer.from(key(field, 5)), b]);
}
function double(field: number, v: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeDoubleLE(v, 0);
  return Buffer.concat([Buffer.from(key(field, 1)), b]);
}
const int64 = (field: number, v: number): Buffer => Buffer.from([...key(field, 0), ...varint(v)]);

/** A Summary.Value: a scalar (`simple_value`) or a text tensor with the text plugin's metadata. */
type SummaryValue = { tag: string; scalar: number } | { tag: string; text: string };

/** TensorProto.DataType DT_STRING. */
const DT_STRING = 7;

function encodeValue(v: SummaryValue): Buffer {
  const parts = [str(1, v.tag)];
  if ('scalar' in v) parts.push(float32(2, v.scalar));
  else {
    // TensorProto{ dtype DT_STRING, tensor_shape {} (a scalar), string_val [text] }
    const tensor = Buffer.concat([int64(1, DT_STRING), lenDelim(2, Buffer.alloc(0)), lenDelim(8, Buffer.from(v.text, 'utf8'))]);
    // SummaryMetadata{ plugin_data { plugin_name "text", content (empty: TextPluginData version 0) } }
    const metadata = lenDelim(1, str(1, 'text'));
    parts.push(lenDelim(8, tensor), lenDelim(9, metadata));
  }
  return Buffer.concat(parts);
}

/** Serializes a tensorflow.Event: `wall_time` (s), `step`, and either `file_version` or a summary. */
export function encodeEvent(e: { wallTime: number; step: number; fileVersion?: string; values?: SummaryValue[] }): Buffer {
  const parts = [double(1, e.wallTime), int64(2, e.step)];
  if (e.fileVersion !== undefined) parts.push(str(3, e.fileVersion));
  if (e.values) parts.push(lenDelim(5, Buffer.concat(e.values.map((v) => lenDelim(1, encodeValue(v))))));
  return Buffer.concat(parts);
}

// ---------------------------------------------------------------------------------------------------
// The writer.

/** Options of {@link TensorBoardWriter}. */
export interface TensorBoardWriterOptions {
  /** Buffered events are written at least this often, in ms. Default 2000. */
  flushMs?: number;
  /** Clock in ms since the epoch (tests). Default Date.now. */
  now?: () => number;
}

const FLUSH_BYTES = 64 * 1024;
let fileCounter = 0;

/**
 * Writes one new event file, `events.out.tfevents.<secs>.<host>.<pid>.cxr-train`, in `dir` (created). A
 * second writer of the same second and process gets a `.N` suffix: TensorBoard reads every file whose
 * name holds "tfevents" and merges them, so a resumed run simply adds a file.
 *
 * ```ts
 * const tb = new TensorBoardWriter('runs/r1/tensorboard');
 * tb.addText('config', yamlText, 0);
 * tb.addScalar('train/loss', 0.69, 1);
 * tb.close();
 * ```
 */
export class TensorBoardWriter {
  /** The event file's path. */
  readonly file: string;
  private fd: number | null = null;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private readonly timer: NodeJS.Timeout;
  private readonly now: () => number;

  /** @throws CxrError E_IO when the folder or the file cannot be created */
  constructor(dir: string, opts: TensorBoardWriterOptions = {}) {
    this.now = opts.now ?? Date.now;
    const secs = Math.floor(this.now() / 1000);
    const base = `events.out.tfevents.${secs}.${os.hostname()}.${process.pid}.cxr-train`;
    try {
      fs.mkdirSync(dir, { recursive: true });
      let name = base;
      for (;;) {
        try {
          this.fd = fs.openSync(path.join(dir, name), 'wx');
          break;
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
          name = `${base}.${++fileCounter}`;
        }
      }
      this.file = path.join(dir, name);
    } catch (e) {
      throw new CxrError('E_IO', `cannot create a TensorBoard event file in ${dir}: ${(e as Error).message}`, { dir }, { cause: e });
    }
    this.push(encodeEvent({ wallTime: this.now() / 1000, step: 0, fileVersion: 'brain.Event:2' }));
    this.flush();
    // A failing background flush keeps its events; the next flush() or close() reports the error.
    this.timer = setInterval(() => {
      try {
        this.flush();
      } catch {
        /* reported by the next explicit flush */
      }
    }, opts.flushMs ?? 2000);
    this.timer.unref();
  }

  /** A scalar at `step` (non-finite values are skipped: the scalar plots cannot show them). */
  addScalar(tag: string, value: number, step: number, wallTimeMs?: number): void {
    if (!Number.isFinite(value)) return;
    this.addValues([{ tag, scalar: value }], step, wallTimeMs);
  }

  /** Several scalars of one step in one event. */
  addScalars(values: Record<string, number>, step: number, wallTimeMs?: number): void {
    const vals = Object.entries(values)
      .filter(([, v]) => Number.isFinite(v))
      .map(([tag, scalar]) => ({ tag, scalar }));
    if (vals.length) this.addValues(vals, step, wallTimeMs);
  }

  /** A text summary (rendered as Markdown by TensorBoard's Text tab). */
  addText(tag: string, text: string, step: number, wallTimeMs?: number): void {
    this.addValues([{ tag, text }], step, wallTimeMs);
  }

  private addValues(values: SummaryValue[], step: number, wallTimeMs?: number): void {
    if (this.fd === null) throw new CxrError('E_IO', `the TensorBoard writer of ${this.file} is closed`);
    this.push(encodeEvent({ wallTime: (wallTimeMs ?? this.now()) / 1000, step, values }));
    if (this.pendingBytes >= FLUSH_BYTES) this.flush();
  }

  private push(event: Buffer): void {
    const rec = tfRecord(event);
    this.pending.push(rec);
    this.pendingBytes += rec.length;
  }

  /** Writes the buffered events to the file. */
  flush(): void {
    if (this.fd === null || this.pending.length === 0) return;
    const data = Buffer.concat(this.pending);
    let off = 0;
    try {
      while (off < data.length) off += fs.writeSync(this.fd, data, off, data.length - off);
      this.pending = [];
      this.pendingBytes = 0;
    } catch (e) {
      // Keep only what was not written, so that a later flush continues the record instead of repeating it.
      this.pending = [data.subarray(off)];
      this.pendingBytes = data.length - off;
      throw new CxrError('E_IO', `cannot write ${this.file}: ${(e as Error).message}`, { file: this.file }, { cause: e });
    }
  }

  /** Flushes, syncs and closes the file. Idempotent. */
  close(): void {
    if (this.fd === null) return;
    clearInterval(this.timer);
    try {
      this.flush();
      fs.fsyncSync(this.fd);
    } finally {
      fs.closeSync(this.fd);
      this.fd = null;
    }
  }
}
