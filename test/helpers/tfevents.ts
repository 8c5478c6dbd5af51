/**
 * An independent reader of TensorBoard event files for tests: the TFRecord framing is checked with a
 * bit-by-bit CRC32C (not the writer's table), and the Event messages are decoded by protobufjs from
 * TensorBoard's own .proto definitions of them (the fields used here, copied from tensorflow/core).
 */
import fs from 'node:fs';
import path from 'node:path';
import protobuf from 'protobufjs';

const PROTO = `
syntax = "proto3";
package tensorflow;
enum DataType { DT_INVALID = 0; DT_FLOAT = 1; DT_DOUBLE = 2; DT_INT32 = 3; DT_STRING = 7; DT_INT64 = 9; }
message TensorShapeProto {
  message Dim { int64 size = 1; string name = 2; }
  repeated Dim dim = 2;
  bool unknown_rank = 3;
}
message TensorProto {
  DataType dtype = 1;
  TensorShapeProto tensor_shape = 2;
  int32 version_number = 3;
  bytes tensor_content = 4;
  repeated float float_val = 5 [packed = true];
  repeated bytes string_val = 8;
}
message SummaryMetadata {
  message PluginData { string plugin_name = 1; bytes content = 2; }
  PluginData plugin_data = 1;
  string display_name = 2;
  string summary_description = 3;
}
message Summary {
  message Value {
    string node_name = 7;
    string tag = 1;
    SummaryMetadata metadata = 9;
    oneof value {
      float simple_value = 2;
      bytes obsolete_old_style_histogram = 3;
      TensorProto tensor = 8;
    }
  }
  repeated Value value = 1;
}
message Event {
  double wall_time = 1;
  int64 step = 2;
  oneof what {
    string file_version = 3;
    bytes graph_def = 4;
    Summary summary = 5;
  }
}
`;

const root = protobuf.parse(PROTO, { keepCase: true }).root;
const EventType = root.lookupType('tensorflow.Event');

/** CRC32C one bit at a time (reflected Castagnoli polynomial), deliberately unlike the writer's table. */
export function crc32cBitwise(bytes: Uint8Array): number {
  let crc = ~0 >>> 0;
  for (const byte of bytes) {
    for (let bit = 0; bit < 8; bit++) {
      const b = ((byte >>> bit) & 1) ^ (crc & 1);
      crc = crc >>> 1;
      if (b) crc = (crc ^ 0x82f63b78) >>> 0;
    }
  }
  return (~crc) >>> 0;
}

function masked(bytes: Uint8Array): number {
  const c = crc32cBitwise(bytes);
  const rot = ((c >>> 15) | (c << 17)) >>> 0;
  return Number((BigInt(rot) + 0xa282ead8n) % 0x100000000n);
}

/** A decoded event, as plain data. */
export interface DecodedEvent {
  wall_time: number;
  step: number;
  file_version?: string;
  summary?: {
    value: Array<{
      tag: string;
      simple_value?: number;
      tensor?: { dtype: string; tensor_shape?: { dim?: unknown[] }; string_val?: string[] };
      metadata?: { plugin_data?: { plugin_name: string; content?: string } };
    }>;
  };
}

/** Reads every record of one event file; throws on a bad length, CRC or truncated record. */
export function readEventFile(file: string): DecodedEvent[] {
  const buf = fs.readFileSync(file);
  const out: DecodedEvent[] = [];
  let off = 0;
  while (off < buf.length) {
    if (off + 12 > buf.length) throw new Error(`truncated header at ${off}`);
    const lenBytes = buf.subarray(off, off + 8);
    const len = Number(buf.readBigUInt64LE(off));
    if (buf.readUInt32LE(off + 8) !== masked(lenBytes)) throw new Error(`bad length CRC at ${off}`);
    const data = buf.subarray(off + 12, off + 12 + len);
    if (data.length !== len || off + 16 + len > buf.length) throw new Error(`truncated record at ${off}`);
    if (buf.readUInt32LE(off + 12 + len) !== masked(data)) throw new Error(`bad data CRC at ${off}`);
    const msg = EventType.decode(data);
    out.push(EventType.toObject(msg, { longs: Number, enums: String, bytes: String, defaults: false, oneofs: false }) as DecodedEvent);
    off += 16 + len;
  }
  // string_val comes back base64 (bytes: String): decode it to text.
  for (const e of out)
    for (const v of e.summary?.value ?? [])
      if (v.tensor?.string_val) v.tensor.string_val = v.tensor.string_val.map((s) => Buffer.from(s, 'base64').toString('utf8'));
  return out;
}

/** The event files of a folder, oldest name first. */
export function eventFiles(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return fs
    .readdirSync(dir)
    .filter((f) => f.includes('tfevents'))
    .sort()
    .map((f) => path.join(dir, f));
}

/** Every scalar of the events as `tag → [step, value][]`. */
export function scalarsOf(events: DecodedEvent[]): Map<string, Array<[number, number]>> {
  const m = new Map<string, Array<[number, number]>>();
  for (const e of events)
    for (const v of e.summary?.value ?? []) {
      if (v.simple_value === undefined) continue;
      if (!m.has(v.tag)) m.set(v.tag, []);
      m.get(v.tag)!.push([e.step, v.simple_value]);
    }
  return m;
}
