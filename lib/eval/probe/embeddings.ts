/**
 * Frozen image embeddings of a split, computed once per (checkpoint, split, preprocessing) and cached.
 *
 * Computing: the split goes through {@link scoreSplit} (the one pass of a model over a split: DataLoader,
 * unshuffled, failures reported) with a classifier whose encoder records what the model's encoder
 * returns, so the embeddings are exactly those zero-shot scoring sees, in the same order.
 *
 * Caching: one file per checkpoint, split and image size, `<hash16>-<split>-<size>.emb` in the cache folder:
 * the magic line `cxr-train embeddings 1`, a little-endian uint32 header length, the JSON header (the full
 * key, sample ids, failures, the SHA-256 of the data), then `n × dim` little-endian float32. Written
 * atomically. On reading, a header whose key differs (other weights, other images or files changed since,
 * other preprocessing) is *stale* and a file that does not parse or whose data do not match their
 * checksum is *damaged*: either is recomputed and replaced, with a note, never used.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { CxrError } from '../../errors';
import type { PreprocessOptions } from '../../data/images';
import type { SplitSource } from '../../data/sources';
import type { MemorySource } from '../../data/DataLoader';
import { writeFileAtomic } from '../../util/atomic';
import { scoreSplit } from '../scoreSplit';
import { ZeroShotClassifier, type ZeroShotEncoder } from '../zeroShot';

/** Format version of cache files. */
export const EMBEDDING_CACHE_VERSION = 1;
const MAGIC = Buffer.from('cxr-train embeddings 1\n', 'latin1');

/** What the embeddings of a split depend on. */
export interface EmbeddingKey {
  /** SHA-256 of the checkpoint's weights. */
  checkpointHash: string;
  /** The split (canonical name). */
  split: string;
  /** {@link splitIdentity} of the split's samples. */
  splitHash: string;
  /** Preprocessing of the images. */
  image: { size: number; geometry: string; normalize: string };
}

/** The embeddings of the images of a split that loaded. */
export interface SplitEmbeddings {
  /** Sample ids of the embedded images, in split order. */
  ids: string[];
  /** `ids.length × dim`, projected and un-normalised (as the model returns them). */
  embeds: Float32Array;
  dim: number;
  /** Images that failed to load, with reasons. */
  failures: Array<{ id: string; reason: string }>;
}

/** How a cache lookup went. */
export type CacheOutcome = 'hit' | 'miss' | 'stale' | 'damaged' | 'off';

/**
 * SHA-256 identifying the images of a split: dataset, split, and per sample its id and image path in
 * order, with each file's size and modification time (a replaced image changes it); for in-memory
 * pixels, the pixel bytes. Labels are left out: relabelling does not change an embedding.
 */
export function splitIdentity(dataset: string, split: string, source: SplitSource): string {
  const h = crypto.createHash('sha256');
  h.update(JSON.stringify({ dataset, split, n: source.samples.length }));
  const mem = (source as MemorySource).pixels !== undefined ? (source as MemorySource) : null;
  if (mem) {
    h.update(JSON.stringify({ width: mem.width, height: mem.height, type: mem.pixels.constructor.name }));
    h.update(new Uint8Array(mem.pixels.buffer, mem.pixels.byteOffset, mem.pixels.byteLength));
  }
  const root = mem ? '' : (source as { root: string }).root;
  for (const s of source.samples) {
    let stat = '';
    if (!mem && s.imagePath) {
      try {
        const st = fs.statSync(path.resolve(root, s.imagePath));
        stat = `${st.size}:${Math.round(st.mtimeMs)}`;
      } catch {
        stat = 'missing';
      }
    }
    h.update('\n' + JSON.stringify([s.id, s.imagePath, stat]));
  }
  return h.digest('hex');
}

/** Options of {@link embedSplit}. */
export interface EmbedSplitOptions {
  batchSize: number;
  image: PreprocessOptions;
  workers?: number;
  exclusive?: <T>(call: () => Promise<T>) => Promise<T>;
  onProgress?: (done: number, total: number) => void;
}

/**
 * Embeds every image of a split with the encoder of `classifier`, through {@link scoreSplit}.
 * @throws CxrError E_DATA when every image fails to load, E_SHAPE on an encoder returning the wrong size.
 */
export async function embedSplit(classifier: ZeroShotClassifier, source: SplitSource, opts: EmbedSplitOptions): Promise<SplitEmbeddings> {
  const enc = classifier.encoder;
  const chunks: Float32Array[] = [];
  const recording: ZeroShotEncoder = {
    dim: enc.dim,
    id: enc.id,
    encodeTexts: (t) => enc.encodeTexts(t),
    encodeImages: async (images, n) => {
      const e = await enc.encodeImages(images, n);
      chunks.push(e);
      return e;
    },
  };
  const clf = new ZeroShotClassifier(recording, classifier.prompts, { imageBatchSize: opts.batchSize });
  const r = await scoreSplit(clf, source, {
    batchSize: opts.batchSize,
    image: opts.image,
    ...(opts.workers !== undefined ? { workers: opts.workers } : {}),
    ...(opts.exclusive ? { exclusive: opts.exclusive } : {}),
    ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
  });
  const dim = enc.dim;
  const embeds = new Float32Array(r.indices.length * dim);
  let off = 0;
  for (const c of chunks) {
    if (off + c.length > embeds.length) throw new CxrError('E_SHAPE', `the encoder returned more values than ${r.indices.length} images × ${dim}`);
    embeds.set(c, off);
    off += c.length;
  }
  if (off !== embeds.length) throw new CxrError('E_SHAPE', `the encoder returned ${off} values for ${r.indices.length} images × ${dim}`);
  const failures = r.failures.map((f) => ({ id: source.samples[f.index].id, reason: f.reason }));
  if (r.indices.length === 0) throw new CxrError('E_DATA', `every image of the split failed to load (first: ${failures[0]?.reason ?? '?'})`);
  return { ids: r.indices.map((i) => source.samples[i].id), embeds, dim, failures };
}

/** The cache file of a key inside `dir`. */
export function embeddingCacheFile(dir: string, key: EmbeddingKey): string {
  return path.join(dir, `${key.checkpointHash.slice(0, 16)}-${key.split}-${key.image.size}.emb`);
}

interface Header {
  format: 'cxr-train embeddings';
  version: number;
  key: EmbeddingKey;
  n: number;
  dim: number;
  ids: string[];
  failures: SplitEmbeddings['failures'];
  sha256: string;
}

const sha = (b: Uint8Array): string => crypto.createHash('sha256').update(b).digest('hex');

/** Writes embeddings with their key (atomically). */
export function writeEmbeddingCache(file: string, key: EmbeddingKey, e: SplitEmbeddings): void {
  const data = Buffer.alloc(e.embeds.length * 4);
  for (let i = 0; i < e.embeds.length; i++) data.writeFloatLE(e.embeds[i], i * 4);
  const header: Header = { format: 'cxr-train embeddings', version: EMBEDDING_CACHE_VERSION, key, n: e.ids.length, dim: e.dim, ids: e.ids, failures: e.failures, sha256: sha(data) };
  const hb = Buffer.from(JSON.stringify(header), 'utf8');
  const len = Buffer.alloc(4);
  len.writeUInt32LE(hb.length, 0);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  writeFileAtomic(file, [MAGIC, len, hb, data]);
}

/** Which fields of two keys differ, for the stale note. */
function keyDiff(a: EmbeddingKey, b: EmbeddingKey): string[] {
  const out: string[] = [];
  if (a.checkpointHash !== b.checkpointHash) out.push('another checkpoint');
  if (a.split !== b.split) out.push('another split');
  if (a.splitHash !== b.splitHash) out.push('other images (files, pixels or samples changed)');
  if (JSON.stringify(a.image) !== JSON.stringify(b.image)) out.push('other image preprocessing');
  return out;
}

/**
 * Reads a cache file for `key`: the embeddings, or why not (`miss`: no file; `stale`: made for another
 * key; `damaged`: unreadable or failing its checksum) with a reason.
 */
export function readEmbeddingCache(file: string, key: EmbeddingKey): { outcome: 'hit'; embeddings: SplitEmbeddings } | { outcome: 'miss' | 'stale' | 'damaged'; reason: string } {
  let buf: Buffer;
  try {
    buf = fs.readFileSync(file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { outcome: 'miss', reason: 'no cache file' };
    return { outcome: 'damaged', reason: `cannot read: ${(e as Error).message}` };
  }
  if (buf.length < MAGIC.length + 4 || !buf.subarray(0, MAGIC.length).equals(MAGIC)) return { outcome: 'damaged', reason: 'not a cxr-train embeddings file' };
  const hl = buf.readUInt32LE(MAGIC.length);
  const start = MAGIC.length + 4;
  if (start + hl > buf.length) return { outcome: 'damaged', reason: 'truncated header' };
  let h: Header;
  try {
    h = JSON.parse(buf.subarray(start, start + hl).toString('utf8')) as Header;
  } catch {
    return { outcome: 'damaged', reason: 'unreadable header' };
  }
  if (h.format !== 'cxr-train embeddings' || h.version !== EMBEDDING_CACHE_VERSION || !h.key || !Array.isArray(h.ids) || !Number.isInteger(h.n) || !Number.isInteger(h.dim) || h.ids.length !== h.n) {
    return { outcome: 'damaged', reason: `unexpected header (format ${JSON.stringify(h.format)}, version ${JSON.stringify(h.version)})` };
  }
  const diff = keyDiff(h.key, key);
  if (diff.length) return { outcome: 'stale', reason: `made for ${diff.join(' and ')}` };
  const data = buf.subarray(start + hl);
  if (data.length !== h.n * h.dim * 4) return { outcome: 'damaged', reason: `${data.length} data bytes, expected ${h.n} × ${h.dim} float32` };
  if (sha(data) !== h.sha256) return { outcome: 'damaged', reason: 'the data do not match their checksum' };
  const embeds = new Float32Array(h.n * h.dim);
  for (let i = 0; i < embeds.length; i++) embeds[i] = data.readFloatLE(i * 4);
  return { outcome: 'hit', embeddings: { ids: h.ids, embeds, dim: h.dim, failures: Array.isArray(h.failures) ? h.failures : [] } };
}

/**
 * The embeddings of a key: read from `dir` when a valid entry is there, else computed with `compute` and
 * written (a stale or damaged entry is replaced; `onNote` says so). `dir` null: no cache.
 */
export async function cachedEmbeddings(
  dir: string | null,
  key: EmbeddingKey,
  compute: () => Promise<SplitEmbeddings>,
  onNote?: (note: string) => void,
): Promise<{ embeddings: SplitEmbeddings; cache: CacheOutcome; file: string | null }> {
  if (dir === null) return { embeddings: await compute(), cache: 'off', file: null };
  const file = embeddingCacheFile(dir, key);
  const r = readEmbeddingCache(file, key);
  if (r.outcome === 'hit') return { embeddings: r.embeddings, cache: 'hit', file };
  if (r.outcome !== 'miss') onNote?.(`embedding cache ${file} is ${r.outcome} (${r.reason}): recomputing the ${key.split} split`);
  const embeddings = await compute();
  writeEmbeddingCache(file, key, embeddings);
  return { embeddings, cache: r.outcome, file };
}
