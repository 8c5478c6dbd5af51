/**
 * Packed shards: fixed-size uint8 grayscale pixels (already resized with the chosen geometry) plus a
 * JSONL index of the sample fields per shard, and `shards.json` with a SHA-256 per file. The loader
 * reads them without decoding a single JPEG.
 *
 * Layout of an output directory:
 * - `shards.json`: format, version, size, geometry, label names, the source fingerprint, one entry per
 *   finished shard (files, image count, bytes, checksums) and `complete`;
 * - `shard-00000.bin`: n × size × size bytes, row-major, image after image;
 * - `shard-00000.jsonl`: n lines, the {@link Sample} of each image (missing labels as null).
 *
 * Writing is resumable: shards are written atomically one after the other and `shards.json` is
 * rewritten after each, so an interrupted run continues at the first unfinished shard. A resumed run
 * re-hashes the shards it finds and rewrites from the first one that fails its checksum (counted as a
 * `corrupt-shard` issue).
 *
 * Reading checks integrity once per file and process: the first read of a shard file hashes it and
 * compares with `shards.json` (E_DATA naming the file on a mismatch); a missing or malformed index
 * file is E_DATA naming it.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { CxrError, isCxrError } from '../errors';
import { writeFileAtomic } from '../util/atomic';
import { decodeToBase } from './images';
import type { DecodeOptions, Geometry } from './images';
import { IssueLog } from './manifest';
import type { IssueSummary, Manifest } from './manifest';
import type { Sample, Split } from './sample';
import type { MemorySource } from './DataLoader';
import { ensureOutDir } from '../util/paths';

/** Format tag in shards.json. */
export const SHARDS_FORMAT = 'cxr-train-shards';
/** Current version of the shard layout. */
export const SHARDS_VERSION = 1;

/** One finished shard. */
export interface ShardEntry {
  /** Pixel file name (relative to the shard directory). */
  file: string;
  /** Index file name. */
  index: string;
  /** Images in the shard. */
  n: number;
  /** Manifest sample range [first, last) this shard was built from (skipped images included). */
  first: number;
  last: number;
  /** Bytes of the pixel file. */
  bytes: number;
  sha256: string;
  indexSha256: string;
}

/** Contents of shards.json. */
export interface ShardsMeta {
  format: typeof SHARDS_FORMAT;
  version: number;
  dataset: string;
  /** Dataset root the images were read from (informational). */
  root: string;
  size: number;
  geometry: Geometry;
  labelNames: string[];
  /** Samples per shard (before skipping bad images). */
  shardSize: number;
  /** Samples in the source manifest. */
  sourceCount: number;
  /** SHA-256 over the source sample ids and prepare options: a resume must match it. */
  fingerprint: string;
  shards: ShardEntry[];
  /** Images written so far. */
  count: number;
  complete: boolean;
  issues: IssueSummary;
}

/** Options of {@link writeShards}. */
export interface WriteShardsOptions {
  /** Output directory (created). */
  outDir: string;
  /** Image side in pixels. Default 224. */
  size?: number;
  /** Geometry. Default 'pad'. */
  geometry?: Geometry;
  /** Samples per shard. Default 1024. */
  shardSize?: number;
  /** Images decoded concurrently. Default 4. */
  concurrency?: number;
  decode?: DecodeOptions;
  /** Any bad image is fatal (E_DATA). Default false: skipped and counted. */
  strict?: boolean;
  /** Called after each shard. */
  onShard?: (done: number, total: number, meta: ShardsMeta) => void;
  /** Stop after this many shards were written in this call (tests and time-boxed runs). */
  maxShards?: number;
}

function sha256(buf: Uint8Array | string): string {
  return crypto.createHash('sha256').update(buf).digest('hex');
}

/** Why a finished shard's files on disk do not match its entry (`missing`, size, checksum), or null. */
function shardProblem(bin: string, idx: string, e: ShardEntry): string | null {
  if (!fs.existsSync(bin)) return `missing ${e.file}`;
  if (!fs.existsSync(idx)) return `missing ${e.index}`;
  const b = fs.readFileSync(bin);
  if (b.byteLength !== e.bytes) return `${e.file}: ${b.byteLength} bytes, expected ${e.bytes}`;
  if (sha256(b) !== e.sha256) return `${e.file}: checksum mismatch`;
  if (sha256(fs.readFileSync(idx)) !== e.indexSha256) return `${e.index}: checksum mismatch`;
  return null;
}

/** Shard files already hashed by this process (path, size, mtime): each is checked on its first read only. */
const verifiedFiles = new Set<string>();

function verifiedKey(file: string): string | null {
  try {
    const st = fs.statSync(file);
    return `${file}\0${st.size}\0${st.mtimeMs}`;
  } catch {
    return null;
  }
}

/** Reads a shard's file whole, checking its SHA-256 the first time (E_DATA naming the file). */
function readVerified(dir: string, file: string, expected: string): Buffer {
  const full = path.join(dir, file);
  let buf: Buffer;
  try {
    buf = fs.readFileSync(full);
  } catch (e) {
    throw new CxrError('E_DATA', `shard file ${full} cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); rerun prepare to rewrite it`, { path: full });
  }
  const key = verifiedKey(full);
  if (key === null || !verifiedFiles.has(key)) {
    if (sha256(buf) !== expected) throw new CxrError('E_DATA', `shard file ${full}: checksum mismatch (the file is corrupt); rerun prepare to rewrite it`, { path: full });
    if (key !== null) verifiedFiles.add(key);
  }
  return buf;
}

/** One index line as JSON (E_DATA naming the file and line). */
function parseIndexLine(file: string, line: string, lineNo: number): Sample & { slot: number; labels: Record<string, number | null> } {
  let o: unknown;
  try {
    o = JSON.parse(line);
  } catch (e) {
    throw new CxrError('E_DATA', `${file}:${lineNo}: not JSON (${(e as Error).message})`, { path: file, line: lineNo });
  }
  const r = o as { slot?: unknown; labels?: unknown };
  if (typeof o !== 'object' || o === null || !Number.isInteger(r.slot) || typeof r.labels !== 'object' || r.labels === null)
    throw new CxrError('E_DATA', `${file}:${lineNo}: not a shard index record (needs slot and labels)`, { path: file, line: lineNo });
  return o as Sample & { slot: number; labels: Record<string, number | null> };
}

function shardName(k: number): string {
  return `shard-${String(k).padStart(5, '0')}`;
}

function sampleLine(s: Sample, slot: number): string {
  const labels: Record<string, number | null> = {};
  for (const [k, v] of Object.entries(s.labels)) labels[k] = Number.isNaN(v) ? null : v;
  const { meta, ...rest } = s;
  return JSON.stringify({ ...rest, labels, slot, ...(meta ? { meta } : {}) });
}

function readMeta(dir: string): ShardsMeta | undefined {
  const f = path.join(dir, 'shards.json');
  if (!fs.existsSync(f)) return undefined;
  let m: ShardsMeta;
  try {
    m = JSON.parse(fs.readFileSync(f, 'utf8'));
  } catch (e) {
    throw new CxrError('E_PARSE', `${f}: not JSON (${(e as Error).message})`);
  }
  if (m.format !== SHARDS_FORMAT) throw new CxrError('E_PARSE', `${f}: not a cxr-train shard index`);
  if (m.version !== SHARDS_VERSION) throw new CxrError('E_UNSUPPORTED', `${f}: shard format version ${m.version}, this build reads ${SHARDS_VERSION}`);
  return m;
}

/** The index (`shards.json`) of a shard folder; E_IO without one, E_PARSE/E_UNSUPPORTED for a bad one. */
export function readShardsMeta(dirIn: string): ShardsMeta {
  const dir = path.resolve(dirIn);
  const meta = readMeta(dir);
  if (!meta) throw new CxrError('E_IO', `${dir}: no shards.json`);
  return meta;
}

/**
 * Writes (or resumes writing) packed shards for a manifest. Returns the final meta. Bad images are
 * skipped and counted in `meta.issues` unless `strict`.
 */
export async function writeShards(manifest: Manifest, opts: WriteShardsOptions): Promise<ShardsMeta> {
  const size = opts.size ?? 224;
  const geometry = opts.geometry ?? 'pad';
  const shardSize = opts.shardSize ?? 1024;
  if (!Number.isInteger(size) || size < 8 || size > 2048) throw new CxrError('E_CONFIG', `shard image size must be an integer in [8, 2048], got ${size}`);
  if (!Number.isInteger(shardSize) || shardSize < 1) throw new CxrError('E_CONFIG', `shard size must be a positive integer, got ${shardSize}`);
  const dir = ensureOutDir(opts.outDir, '--out', { create: true });
  const samples = manifest.samples;
  const fingerprint = sha256(JSON.stringify({ ids: samples.map((s) => s.id), size, geometry, shardSize, dataset: manifest.dataset, labelNames: manifest.labelNames }));
  const nShards = Math.ceil(samples.length / shardSize);
  const log = new IssueLog(10);
  let meta = readMeta(dir);
  if (meta) {
    if (meta.fingerprint !== fingerprint) {
      throw new CxrError('E_CONFIG', `${dir} holds shards of another dataset or with other options (size ${meta.size}, geometry ${meta.geometry}, shard size ${meta.shardSize}, ${meta.sourceCount} samples); use a new --out or delete it`);
    }
    // Keep only shards whose files are intact on disk (a crash can leave shards.json ahead of nothing,
    // but never behind: files are renamed into place before the index is rewritten).
    for (const ex of meta.issues.examples) log.add(ex.kind, ex.where, ex.message);
    log.total = meta.issues.total;
    Object.assign(log.byKind, meta.issues.byKind);
    const kept: ShardEntry[] = [];
    for (const e of meta.shards) {
      const bin = path.join(dir, e.file);
      const idx = path.join(dir, e.index);
      const problem = shardProblem(bin, idx, e);
      if (problem === null) {
        kept.push(e);
        continue;
      }
      // Missing files are an interrupted run (nothing to report); anything else is damage: rewrite it.
      if (!/^missing/.test(problem)) log.add('corrupt-shard', problem.startsWith(e.index) ? e.index : e.file, `${problem}: rewritten`);
      break;
    }
    const had = meta.shards.length;
    // The bad images of shards that will be written again are counted again then: forget them now.
    const dropped = meta.shards.slice(kept.length);
    const skipped = dropped.reduce((a, e) => a + (e.last - e.first - e.n), 0);
    if (skipped > 0) {
      const names = new Set<string>();
      for (const e of dropped) for (let i = e.first; i < e.last && i < samples.length; i++) names.add(samples[i].imagePath || samples[i].id);
      log.total -= skipped;
      log.byKind['bad-image'] = (log.byKind['bad-image'] ?? skipped) - skipped;
      if (log.byKind['bad-image'] === 0) delete log.byKind['bad-image'];
      for (let i = log.examples.length - 1; i >= 0; i--) if (log.examples[i].kind === 'bad-image' && names.has(log.examples[i].where)) log.examples.splice(i, 1);
    }
    meta.shards = kept;
    meta.count = kept.reduce((a, e) => a + e.n, 0);
    if (kept.length < had) meta.complete = false;
    meta.issues = log.summary();
  } else {
    meta = {
      format: SHARDS_FORMAT,
      version: SHARDS_VERSION,
      dataset: manifest.dataset,
      root: manifest.root,
      size,
      geometry,
      labelNames: manifest.labelNames,
      shardSize,
      sourceCount: samples.length,
      fingerprint,
      shards: [],
      count: 0,
      complete: false,
      issues: log.summary(),
    };
  }
  // Temp files of a killed run are garbage: remove them so nothing is left behind.
  for (const f of fs.readdirSync(dir)) if (f.startsWith('.') && f.endsWith('.tmp')) fs.rmSync(path.join(dir, f), { force: true });
  const plane = size * size;
  let written = 0;
  for (let k = meta.shards.length; k < nShards; k++) {
    if (opts.maxShards !== undefined && written >= opts.maxShards) break;
    const first = k * shardSize;
    const last = Math.min(samples.length, first + shardSize);
    const pixels = new Uint8Array((last - first) * plane);
    const ok: boolean[] = new Array(last - first).fill(false);
    let next = first;
    const worker = async () => {
      while (next < last) {
        const i = next++;
        const s = samples[i];
        try {
          const base = await decodeToBase(path.resolve(manifest.root, s.imagePath), size, geometry, opts.decode);
          const off = (i - first) * plane;
          for (let p = 0; p < plane; p++) {
            const v = Math.round(base[p] * 255);
            pixels[off + p] = v < 0 ? 0 : v > 255 ? 255 : v;
          }
          ok[i - first] = true;
        } catch (e) {
          if (opts.strict) throw e;
          log.add('bad-image', s.imagePath || s.id, `${isCxrError(e) ? e.code : 'E_DATA'}: ${(e as Error).message}`);
        }
      }
    };
    await Promise.all(Array.from({ length: Math.max(1, opts.concurrency ?? 4) }, worker));
    // Compact out skipped images so slots are dense.
    let n = 0;
    const lines: string[] = [];
    for (let j = 0; j < ok.length; j++) {
      if (!ok[j]) continue;
      if (n !== j) pixels.copyWithin(n * plane, j * plane, (j + 1) * plane);
      lines.push(sampleLine(samples[first + j], n));
      n++;
    }
    const bin = pixels.subarray(0, n * plane);
    const idxText = lines.join('\n') + (lines.length ? '\n' : '');
    const name = shardName(k);
    writeFileAtomic(path.join(dir, `${name}.bin`), bin);
    writeFileAtomic(path.join(dir, `${name}.jsonl`), idxText);
    meta.shards.push({ file: `${name}.bin`, index: `${name}.jsonl`, n, first, last, bytes: bin.byteLength, sha256: sha256(bin), indexSha256: sha256(idxText) });
    meta.count += n;
    meta.issues = log.summary();
    meta.complete = meta.shards.length === nShards;
    writeFileAtomic(path.join(dir, 'shards.json'), JSON.stringify(meta, null, 1) + '\n');
    written++;
    opts.onShard?.(meta.shards.length, nShards, meta);
  }
  if (nShards === 0) {
    meta.complete = true;
    writeFileAtomic(path.join(dir, 'shards.json'), JSON.stringify(meta, null, 1) + '\n');
  }
  return meta;
}

/** Result of {@link verifyShards}. */
export interface VerifyResult {
  ok: boolean;
  complete: boolean;
  shards: number;
  images: number;
  /** Problems found, by file. */
  problems: { file: string; message: string }[];
}

/** Recomputes every checksum and size in a shard directory. */
export function verifyShards(dirIn: string): VerifyResult {
  const dir = path.resolve(dirIn);
  const meta = readMeta(dir);
  if (!meta) throw new CxrError('E_IO', `${dir}: no shards.json`);
  const problems: { file: string; message: string }[] = [];
  let images = 0;
  const plane = meta.size * meta.size;
  for (const e of meta.shards) {
    const bin = path.join(dir, e.file);
    const idx = path.join(dir, e.index);
    if (!fs.existsSync(bin)) {
      problems.push({ file: e.file, message: 'missing' });
      continue;
    }
    const b = fs.readFileSync(bin);
    if (b.byteLength !== e.bytes || b.byteLength !== e.n * plane) problems.push({ file: e.file, message: `size ${b.byteLength}, expected ${e.bytes} (${e.n} images of ${meta.size}x${meta.size})` });
    else if (sha256(b) !== e.sha256) problems.push({ file: e.file, message: 'checksum mismatch' });
    if (!fs.existsSync(idx)) problems.push({ file: e.index, message: 'missing' });
    else {
      const t = fs.readFileSync(idx, 'utf8');
      if (sha256(t) !== e.indexSha256) problems.push({ file: e.index, message: 'checksum mismatch' });
      else if (t.split('\n').filter(Boolean).length !== e.n) problems.push({ file: e.index, message: `line count differs from ${e.n}` });
    }
    images += e.n;
  }
  if (images !== meta.count) problems.push({ file: 'shards.json', message: `count ${meta.count} but shards hold ${images}` });
  return { ok: problems.length === 0, complete: meta.complete, shards: meta.shards.length, images, problems };
}

/** Options of {@link loadShards}. */
export interface LoadShardsOptions {
  /** Keep only these splits. */
  splits?: Split[];
  /**
   * Verify checksums on the first read of each file in this process (default true: hashing costs far
   * less than reading; false skips it).
   */
  verify?: boolean;
}

/** An in-memory view of a shard directory, usable as a DataLoader {@link MemorySource}. */
export interface LoadedShards extends MemorySource {
  meta: ShardsMeta;
  pixels: Uint8Array;
}

/**
 * Reads shards into memory (pixels stay uint8; the loader normalises on the fly). For datasets larger
 * than memory use {@link ShardReader}.
 */
export function loadShards(dirIn: string, opts: LoadShardsOptions = {}): LoadedShards {
  const dir = path.resolve(dirIn);
  const meta = readShardsMeta(dir);
  const plane = meta.size * meta.size;
  const splitSet = opts.splits ? new Set(opts.splits) : undefined;
  const chunks: { buf: Buffer; keep: number[] }[] = [];
  const samples: Sample[] = [];
  for (const e of meta.shards) {
    const verify = opts.verify ?? true;
    const buf = verify ? readVerified(dir, e.file, e.sha256) : readPlain(dir, e.file);
    const indexFile = path.join(dir, e.index);
    const text = (verify ? readVerified(dir, e.index, e.indexSha256) : readPlain(dir, e.index)).toString('utf8');
    if (buf.byteLength !== e.n * plane) throw new CxrError('E_DATA', `${path.join(dir, e.file)}: ${buf.byteLength} bytes, expected ${e.n * plane}`);
    const keep: number[] = [];
    const lines = text.split('\n');
    for (let li = 0; li < lines.length; li++) {
      const line = lines[li];
      if (!line) continue;
      const o = parseIndexLine(indexFile, line, li + 1);
      if (!(o.slot >= 0 && o.slot < e.n)) throw new CxrError('E_DATA', `${indexFile}:${li + 1}: slot ${o.slot} outside the shard's ${e.n} images`, { path: indexFile });
      if (splitSet && !(o.split && splitSet.has(o.split))) continue;
      const labels: Record<string, number> = {};
      for (const k of meta.labelNames) labels[k] = o.labels[k] === null || o.labels[k] === undefined ? NaN : (o.labels[k] as number);
      const { slot, ...rest } = o;
      samples.push({ ...rest, labels });
      keep.push(slot);
    }
    chunks.push({ buf, keep });
  }
  const pixels = new Uint8Array(samples.length * plane);
  let w = 0;
  for (const c of chunks) for (const slot of c.keep) pixels.set(c.buf.subarray(slot * plane, (slot + 1) * plane), plane * w++);
  return { meta, samples, pixels, width: meta.size, height: meta.size };
}

function readPlain(dir: string, file: string): Buffer {
  const full = path.join(dir, file);
  try {
    return fs.readFileSync(full);
  } catch (e) {
    throw new CxrError('E_DATA', `shard file ${full} cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, { path: full });
  }
}

/** Hashes a file in chunks (no whole-file buffer), E_DATA naming it when unreadable. */
function hashFile(full: string): string {
  const h = crypto.createHash('sha256');
  const chunk = Buffer.allocUnsafe(1 << 22);
  let fd: number | undefined;
  try {
    fd = fs.openSync(full, 'r');
    for (;;) {
      const n = fs.readSync(fd, chunk, 0, chunk.byteLength, null);
      if (n === 0) break;
      h.update(chunk.subarray(0, n));
    }
  } catch (e) {
    throw new CxrError('E_DATA', `shard file ${full} cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, { path: full });
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
  return h.digest('hex');
}

/** Random access to shard images with positional reads (no whole-file loads), for very large sets. */
export class ShardReader {
  readonly meta: ShardsMeta;
  private readonly dir: string;
  private readonly starts: number[] = [];
  private readonly fds = new Map<number, number>();
  constructor(dirIn: string) {
    this.dir = path.resolve(dirIn);
    const meta = readMeta(this.dir);
    if (!meta) throw new CxrError('E_IO', `${this.dir}: no shards.json`);
    this.meta = meta;
    let acc = 0;
    for (const e of meta.shards) {
      this.starts.push(acc);
      acc += e.n;
    }
  }
  /** Total images. */
  get length(): number {
    return this.meta.count;
  }
  /** The uint8 pixels of image `i` (size × size). */
  read(i: number, out?: Uint8Array): Uint8Array {
    if (!(i >= 0 && i < this.length)) throw new CxrError('E_CONFIG', `shard image index ${i} out of range [0, ${this.length})`);
    let k = this.starts.length - 1;
    while (this.starts[k] > i) k--;
    const plane = this.meta.size * this.meta.size;
    let fd = this.fds.get(k);
    if (fd === undefined) {
      const e = this.meta.shards[k];
      const full = path.join(this.dir, e.file);
      const key = verifiedKey(full);
      if (key === null || !verifiedFiles.has(key)) {
        if (hashFile(full) !== e.sha256) throw new CxrError('E_DATA', `shard file ${full}: checksum mismatch (the file is corrupt); rerun prepare to rewrite it`, { path: full });
        if (key !== null) verifiedFiles.add(key);
      }
      fd = fs.openSync(full, 'r');
      this.fds.set(k, fd);
    }
    const buf = out ?? new Uint8Array(plane);
    const got = fs.readSync(fd, buf, 0, plane, (i - this.starts[k]) * plane);
    if (got !== plane) throw new CxrError('E_DATA', `${this.meta.shards[k].file}: short read`);
    return buf;
  }
  /** Closes open files. */
  close(): void {
    for (const fd of this.fds.values()) fs.closeSync(fd);
    this.fds.clear();
  }
}
