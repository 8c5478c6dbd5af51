/**
 * DataLoader: turns a dataset into batches of normalised CHW float32 images, one contiguous
 * Float32Array (B·3·H·W) per batch, ready to cross into the native train step.
 *
 * - Files are decoded and augmented in a `worker_threads` pool (`workers`, default 2). Each image
 *   belongs to one worker (dataset index mod workers) in every epoch, so that worker's cache of decoded
 *   images serves it from the second epoch on; a batch is split among the workers, each part's buffer
 *   is transferred there and back and copied into the batch. `workers: 0` runs the same code in
 *   process. Under ts-node/ts-jest (no compiled .js worker) the pool boots the TypeScript worker through
 *   the `typescript` compiler when it is installed, else falls back to in-process.
 * - In-memory datasets (pre-decoded pixels from the synthetic generator or packed shards) are only
 *   augmented and batched, in process (cheap for small images).
 * - A bounded prefetch queue keeps at most `prefetch` batches decoded ahead of the consumer.
 * - Shuffling is a seeded permutation per epoch, augmentation seeds are hashSeed(seed, epoch, index):
 *   batches are identical for a given seed whatever the number of workers.
 * - A sample that fails to decode is skipped and counted (`stats`), never fatal.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { workerEntry } from './workerEntry';
import { CxrError } from '../errors';
import { hashSeed, permutation } from '../util/rng';
import { IssueLog } from './manifest';
import type { IssueSummary } from './manifest';
import type { Sample } from './sample';
import { finishImage, finishPixels, packPixelAugment, pixelBatchFromRecords, PIXEL_AUGMENT_STRIDE, toBase, type ImageBatch } from './images';
import type { DecodeOptions, PreprocessOptions } from './images';
import { BaseImageCache } from './baseCache';
import { processFileBatch } from './loaderCore';
import type { ItemFailure, WorkerResult, WorkerTask } from './loaderCore';

/** Image files under a root. */
export interface FileSource {
  /** Directory `sample.imagePath` is relative to. */
  root: string;
  samples: Sample[];
}

/** Pre-decoded grayscale images in memory: N·height·width values, float in [0,1] or uint8 in 0..255. */
export interface MemorySource {
  samples: Sample[];
  pixels: Float32Array | Uint8Array;
  width: number;
  height: number;
}

/** Options of {@link DataLoader}. */
export interface DataLoaderOptions {
  /** Images per batch. */
  batchSize: number;
  /** Output size, geometry, normalisation and augmentations. */
  image: PreprocessOptions;
  /** Shuffle each epoch with a seeded permutation. Default true. */
  shuffle?: boolean;
  /** Seed of shuffling and augmentation. Default 0. */
  seed?: number;
  /** Drop the last incomplete batch. Default false. */
  dropLast?: boolean;
  /**
   * Data parallelism: this loader is rank `rank` of `count`. Each epoch's permutation is cut into global
   * batches of `batchSize × count` and this rank takes its `batchSize` slice of each, so the ranks see
   * disjoint parts and together exactly the batches one process with `batchSize × count` would.
   */
  shard?: { rank: number; count: number };
  /** Worker threads for file decoding; 0 = in process. Default min(2, cpus). Ignored for memory sources. */
  workers?: number;
  /** Batches decoded ahead of the consumer. Default 2 × max(1, workers). */
  prefetch?: number;
  /** Images decoded concurrently inside each worker. Default 2. */
  concurrency?: number;
  /** Decode limits (max pixels, DICOM window). */
  decode?: DecodeOptions;
  /**
   * MiB of decoded base images each decoding thread keeps (least recently used dropped first), so that
   * later epochs augment from memory instead of decoding the files again. 0 = none. Default 256.
   */
  cacheMB?: number;
  /** Failed samples kept by name in `stats`. Default 10. */
  maxExamples?: number;
  /**
   * 'float32': batches of normalised N×3×S×S floats. 'uint8': PixelBatches of N×S×S grayscale bytes,
   * unwarped, with each image's augmentation (geometric warp, intensity affine) as parameters that the
   * native side applies on the device with the normalisation: 12× fewer bytes per image, no host float
   * work per pixel, and the same images as float32 (nothing is rounded after resampling). Default 'float32'.
   */
  pixels?: PixelFormat;
}

/** The element type of a loader's batches. */
export type PixelFormat = 'float32' | 'uint8';

/** One batch. */
export interface Batch {
  /** n·3·size·size normalised floats, CHW per image, images contiguous; or, with `pixels: 'uint8'`, bytes. */
  images: ImageBatch;
  /** Images in this batch (smaller than batchSize when samples failed or at the end of an epoch). */
  n: number;
  samples: Sample[];
  /** Dataset indices of the images, in batch order. */
  indices: number[];
  epoch: number;
}

/** Loader counters. */
export interface LoaderStats {
  /** Samples skipped because they failed to load. */
  skipped: number;
  /** Batches delivered. */
  batches: number;
  /** Images delivered. */
  images: number;
  /** Image files decoded (file sources; a file is decoded again only when the cache dropped it or is off). */
  decoded: number;
  /** Images taken from the loader's cache of decoded images instead of their files. */
  cacheHits: number;
  issues: IssueSummary;
}

function isMemory(s: FileSource | MemorySource): s is MemorySource {
  return (s as MemorySource).pixels !== undefined;
}

interface PoolWorker {
  worker: Worker;
  pending: Map<number, { resolve: (r: WorkerResult) => void; reject: (e: Error) => void; task: WorkerTask }>;
  dead: boolean;
}

/** Batches of images from files (worker pool) or memory (in process). */
export class DataLoader {
  private readonly opts: Required<Omit<DataLoaderOptions, 'decode'>> & { decode: DecodeOptions };
  private readonly pool: PoolWorker[] = [];
  private readonly log: IssueLog;
  /** Worker part buffers back from {@link runSplit}, for the next batch. */
  private readonly spareParts: ArrayBuffer[] = [];
  /** Decoded base images of the in-process mode (workers hold their own). */
  private readonly baseCache = new BaseImageCache(0);
  private skipped = 0;
  private decoded = 0;
  private cacheHits = 0;
  private delivered = 0;
  private deliveredImages = 0;
  private taskId = 0;
  private closed = false;
  private readonly entry: { file: string; eval: boolean } | undefined;
  /** 'workers' when a thread pool decodes, else 'in-process'. */
  readonly mode: 'workers' | 'in-process';

  constructor(
    private readonly source: FileSource | MemorySource,
    options: DataLoaderOptions,
  ) {
    if (!Number.isInteger(options.batchSize) || options.batchSize < 1) throw new CxrError('E_CONFIG', `batchSize must be a positive integer, got ${options.batchSize}`);
    const sh = options.shard;
    if (sh && !(Number.isInteger(sh.count) && sh.count >= 1 && Number.isInteger(sh.rank) && sh.rank >= 0 && sh.rank < sh.count))
      throw new CxrError('E_CONFIG', `shard must be {rank, count} with 0 <= rank < count, got ${JSON.stringify(sh)}`);
    if (!Number.isInteger(options.image?.size) || options.image.size < 1) throw new CxrError('E_CONFIG', `image.size must be a positive integer`);
    const workers = isMemory(source) ? 0 : Math.max(0, Math.floor(options.workers ?? Math.min(2, os.cpus().length)));
    this.opts = {
      batchSize: options.batchSize,
      image: options.image,
      shuffle: options.shuffle ?? true,
      seed: options.seed ?? 0,
      dropLast: options.dropLast ?? false,
      shard: options.shard ?? { rank: 0, count: 1 },
      workers,
      prefetch: Math.max(1, Math.floor(options.prefetch ?? 2 * Math.max(1, workers))),
      concurrency: Math.max(1, Math.floor(options.concurrency ?? 2)),
      decode: options.decode ?? {},
      cacheMB: Math.max(0, options.cacheMB ?? 256),
      maxExamples: options.maxExamples ?? 10,
      pixels: options.pixels ?? 'float32',
    };
    if (!Number.isFinite(this.opts.cacheMB)) throw new CxrError('E_CONFIG', `cacheMB must be a number >= 0, got ${JSON.stringify(options.cacheMB)}`);
    if (this.opts.pixels !== 'float32' && this.opts.pixels !== 'uint8') throw new CxrError('E_CONFIG', `pixels must be "float32" or "uint8", got ${JSON.stringify(options.pixels)}`);
    this.log = new IssueLog(this.opts.maxExamples);
    if (isMemory(source)) {
      const need = source.samples.length * source.width * source.height;
      if (source.pixels.length < need) throw new CxrError('E_SHAPE', `memory source has ${source.pixels.length} pixels, ${source.samples.length} images of ${source.width}x${source.height} need ${need}`);
    }
    this.entry = workers > 0 ? workerEntry(__dirname, 'loaderWorker') : undefined;
    this.mode = workers > 0 && this.entry ? 'workers' : 'in-process';
  }

  /** The samples of the source, in source order. */
  get samples(): readonly Sample[] {
    return this.source.samples;
  }

  /** Images per batch (per process). */
  get batchSize(): number {
    return this.opts.batchSize;
  }

  /** Number of samples. */
  get length(): number {
    return this.source.samples.length;
  }

  /** Batches one epoch yields (before any sample is skipped). */
  get batchesPerEpoch(): number {
    const n = this.length;
    const b = this.opts.batchSize * this.opts.shard.count;
    return this.opts.dropLast ? Math.floor(n / b) : Math.ceil(n / b);
  }

  /** Counters: skipped samples (with the first few by name), batches and images delivered. */
  get stats(): LoaderStats {
    return { skipped: this.skipped, batches: this.delivered, images: this.deliveredImages, decoded: this.decoded, cacheHits: this.cacheHits, issues: this.log.summary() };
  }

  /** The dataset indices of each batch of epoch `e`, in order. */
  plan(e: number): number[][] {
    const n = this.length;
    const order = this.opts.shuffle ? permutation(n, hashSeed(this.opts.seed, e, 0x5ab1e)) : Array.from({ length: n }, (_, i) => i);
    const out: number[][] = [];
    const { rank, count } = this.opts.shard;
    const per = this.opts.batchSize;
    const b = per * count;
    for (let i = 0; i < n; i += b) {
      const chunk = order.slice(i, i + b);
      if (chunk.length < b && this.opts.dropLast) break;
      // An incomplete last global batch is split evenly (ranks may differ by one pair).
      const share = chunk.length < b ? Math.ceil(chunk.length / count) : per;
      const mine = chunk.slice(rank * share, (rank + 1) * share);
      if (mine.length > 0) out.push(mine);
    }
    return out;
  }

  /**
   * Yields the batches of epoch `e` with up to `prefetch` batches prepared ahead. Breaking out of the loop
   * stops scheduling new work.
   */
  async *epoch(e = 0): AsyncGenerator<Batch, void, undefined> {
    if (this.closed) throw new CxrError('E_DISPOSED', 'DataLoader is closed');
    const plan = this.plan(e);
    let next = 0;
    const queue: Promise<Batch>[] = [];
    const fillQueue = () => {
      while (!this.closed && queue.length < this.opts.prefetch && next < plan.length) queue.push(this.makeBatch(plan[next++], e));
    };
    // Unobserved rejections of prefetched batches must not crash the process if the consumer stops early.
    fillQueue();
    try {
      while (queue.length > 0) {
        const p = queue.shift()!;
        const batch = await p;
        fillQueue();
        if (batch.n === 0) continue;
        this.delivered++;
        this.deliveredImages += batch.n;
        yield batch;
      }
    } finally {
      for (const p of queue) p.catch(() => undefined);
    }
  }

  /** Stops the worker threads. Idempotent; pending batches are rejected with E_DISPOSED. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const ws = this.pool.splice(0);
    await Promise.all(
      ws.map(async (w) => {
        w.dead = true;
        for (const p of w.pending.values()) p.reject(new CxrError('E_DISPOSED', 'DataLoader closed'));
        w.pending.clear();
        await w.worker.terminate();
      }),
    );
  }

  private async makeBatch(indices: number[], epoch: number): Promise<Batch> {
    const S = this.opts.image.size;
    const bytes = this.opts.pixels === 'uint8';
    // Elements per image: 3 float channels, or one byte plane.
    const per = bytes ? S * S : 3 * S * S;
    const elemBytes = bytes ? 1 : 4;
    const samples = indices.map((i) => this.source.samples[i]);
    let buffer: ArrayBuffer;
    let failures: ItemFailure[];
    let affine: Float64Array | undefined;
    if (isMemory(this.source)) {
      buffer = new ArrayBuffer(indices.length * per * elemBytes);
      affine = bytes ? new Float64Array(PIXEL_AUGMENT_STRIDE * indices.length) : undefined;
      failures = this.memoryBatch(indices, epoch, buffer, affine);
    } else {
      const root = this.source.root;
      const task: WorkerTask = {
        id: this.taskId++,
        items: indices.map((idx, slot) => ({ slot, path: path.resolve(root, this.source.samples[idx].imagePath), seed: hashSeed(this.opts.seed, epoch, idx) })),
        buffer: new ArrayBuffer(indices.length * per * elemBytes),
        image: this.opts.image,
        decode: this.opts.decode,
        concurrency: this.opts.concurrency,
        pixels: this.opts.pixels,
        cacheBytes: Math.floor(this.opts.cacheMB * 1024 * 1024),
      };
      const res = this.mode === 'workers' ? await this.runSplit(task, indices, per * elemBytes) : await processFileBatch(task, this.baseCache);
      buffer = res.buffer;
      failures = res.failures;
      affine = res.affine;
      this.decoded += res.decoded;
      this.cacheHits += res.cacheHits;
    }
    const data = bytes ? new Uint8Array(buffer) : new Float32Array(buffer);
    let keepIdx = indices;
    let keepSamples = samples;
    if (failures.length > 0) {
      const bad = new Set(failures.map((f) => f.slot));
      for (const f of failures) {
        this.skipped++;
        this.log.add('bad-image', samples[f.slot].imagePath || samples[f.slot].id, `${f.code}: ${f.message}`);
      }
      // Compact: move good images down over failed slots so the batch stays contiguous.
      let w = 0;
      keepIdx = [];
      keepSamples = [];
      for (let r = 0; r < indices.length; r++) {
        if (bad.has(r)) continue;
        if (w !== r) {
          data.copyWithin(w * per, r * per, (r + 1) * per);
          if (affine) affine.copyWithin(PIXEL_AUGMENT_STRIDE * w, PIXEL_AUGMENT_STRIDE * r, PIXEL_AUGMENT_STRIDE * (r + 1));
        }
        keepIdx.push(indices[r]);
        keepSamples.push(samples[r]);
        w++;
      }
    }
    const n = keepIdx.length;
    const kept = n === indices.length ? data : data.subarray(0, n * per);
    const images: ImageBatch = kept instanceof Uint8Array ? pixelBatchFromRecords(kept, affine, n, this.opts.image.normalize) : kept;
    return { images, n, samples: keepSamples, indices: keepIdx, epoch };
  }

  private memoryBatch(indices: number[], epoch: number, buffer: ArrayBuffer, affine?: Float64Array): ItemFailure[] {
    const src = this.source as MemorySource;
    const S = this.opts.image.size;
    const plane = src.width * src.height;
    const failures: ItemFailure[] = [];
    const bytesOut = this.opts.pixels === 'uint8' ? new Uint8Array(buffer) : undefined;
    const floatOut = bytesOut ? undefined : new Float32Array(buffer);
    const tmp = new Float32Array(plane);
    indices.forEach((idx, slot) => {
      try {
        const seed = hashSeed(this.opts.seed, epoch, idx);
        const same = src.width === S && src.height === S;
        if (bytesOut && same && src.pixels instanceof Uint8Array) {
          // Packed shards and synthetic data: bytes in, bytes out (a copy); the warp runs on the device.
          packPixelAugment(affine!, slot, finishPixels(src.pixels.subarray(idx * plane, (idx + 1) * plane), this.opts.image, seed, bytesOut, slot * S * S));
          return;
        }
        let gray: Float32Array;
        if (src.pixels instanceof Uint8Array) {
          const u8 = src.pixels;
          for (let k = 0; k < plane; k++) tmp[k] = u8[idx * plane + k] / 255;
          gray = tmp;
        } else gray = src.pixels.subarray(idx * plane, (idx + 1) * plane);
        const base = same ? gray : toBase({ data: gray, width: src.width, height: src.height }, S, this.opts.image.geometry ?? 'pad');
        if (bytesOut) packPixelAugment(affine!, slot, finishPixels(base, this.opts.image, seed, bytesOut, slot * S * S));
        else finishImage(base, this.opts.image, seed, floatOut, slot * 3 * S * S);
      } catch (e) {
        failures.push({ slot, code: 'E_DATA', message: (e as Error).message });
      }
    });
    return failures;
  }

  private spawn(): PoolWorker {
    const entry = this.entry!;
    const worker = new Worker(entry.file, { eval: entry.eval });
    const pw: PoolWorker = { worker, pending: new Map(), dead: false };
    worker.on('message', (res: WorkerResult) => {
      const p = pw.pending.get(res.id);
      if (!p) return;
      pw.pending.delete(res.id);
      // An idle worker must not keep the process alive; a busy one must (see runInWorker).
      if (pw.pending.size === 0) worker.unref();
      p.resolve(res);
    });
    const fail = (err: Error) => {
      if (pw.dead) return;
      pw.dead = true;
      const idx = this.pool.indexOf(pw);
      if (idx >= 0) this.pool.splice(idx, 1);
      // A crashed worker's batches are redone in process rather than lost.
      for (const p of pw.pending.values()) {
        this.log.add('bad-image', `worker ${worker.threadId}`, `worker died (${err.message}); batch ${p.task.id} redone in process`);
        processFileBatch({ ...p.task, buffer: new ArrayBuffer(p.task.buffer.byteLength || p.task.items.length * p.task.image.size * p.task.image.size * (p.task.pixels === 'uint8' ? 1 : 12)) }).then(p.resolve, p.reject);
      }
      pw.pending.clear();
    };
    worker.on('error', fail);
    worker.on('exit', (code) => {
      if (!this.closed) fail(new Error(`exit code ${code}`));
    });
    worker.unref();
    return pw;
  }

  /**
   * Runs a batch task on the pool: the item of dataset index i goes to worker i mod workers (the same
   * worker every epoch, so its cache of decoded images holds it), each worker's part in its own buffer;
   * the parts are copied into `task.buffer` at their slots. `slotBytes`: bytes of one image in the buffer.
   */
  private async runSplit(task: WorkerTask, indices: number[], slotBytes: number): Promise<WorkerResult> {
    const W = this.opts.workers;
    const groups: number[][] = Array.from({ length: W }, () => []);
    task.items.forEach((it, i) => groups[indices[i] % W].push(i));
    const used = groups.map((g, w) => ({ g, w })).filter((x) => x.g.length > 0);
    if (used.length === 1) return this.runInWorker(task, used[0].w);
    // Part buffers hold a whole batch and are reused: a fresh ArrayBuffer per part costs its zeroing and
    // first-touch page faults, on the main thread and in the worker, every batch.
    const partBytes = this.opts.batchSize * slotBytes;
    const parts = await Promise.all(
      used.map(({ g, w }) => {
        const spare = this.spareParts.pop();
        const buffer = spare && spare.byteLength === partBytes && g.length * slotBytes <= partBytes ? spare : new ArrayBuffer(Math.max(partBytes, g.length * slotBytes));
        return this.runInWorker({ ...task, id: this.taskId++, items: g.map((i, slot) => ({ ...task.items[i], slot })), buffer }, w);
      }),
    );
    const out = new Uint8Array(task.buffer);
    const failures: ItemFailure[] = [];
    const affine = task.pixels === 'uint8' ? new Float64Array(PIXEL_AUGMENT_STRIDE * task.items.length) : undefined;
    used.forEach(({ g }, p) => {
      const part = parts[p];
      const src = new Uint8Array(part.buffer);
      g.forEach((i, k) => {
        const slot = task.items[i].slot;
        out.set(src.subarray(k * slotBytes, (k + 1) * slotBytes), slot * slotBytes);
        if (affine && part.affine) affine.set(part.affine.subarray(PIXEL_AUGMENT_STRIDE * k, PIXEL_AUGMENT_STRIDE * (k + 1)), PIXEL_AUGMENT_STRIDE * slot);
      });
      for (const f of part.failures) failures.push({ ...f, slot: task.items[g[f.slot]].slot });
      if (part.buffer.byteLength === partBytes && this.spareParts.length < 2 * this.opts.prefetch * W) this.spareParts.push(part.buffer);
    });
    failures.sort((a, b) => a.slot - b.slot);
    const decoded = parts.reduce((a, r) => a + r.decoded, 0);
    const cacheHits = parts.reduce((a, r) => a + r.cacheHits, 0);
    return { id: task.id, failures, buffer: task.buffer, ...(affine ? { affine } : {}), decoded, cacheHits };
  }

  /** Sends `task` to pool worker `k` (modulo the live pool: a replaced worker starts with an empty cache). */
  private runInWorker(task: WorkerTask, k: number): Promise<WorkerResult> {
    if (this.closed) return Promise.reject(new CxrError('E_DISPOSED', 'DataLoader closed'));
    while (this.pool.length < this.opts.workers) this.pool.push(this.spawn());
    const w = this.pool[k % this.pool.length];
    return new Promise<WorkerResult>((resolve, reject) => {
      w.pending.set(task.id, { resolve, reject, task });
      w.worker.ref();
      w.worker.postMessage(task, [task.buffer]);
    });
  }
}
