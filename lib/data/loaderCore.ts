/**
 * The per-batch work shared by the DataLoader's worker threads and its in-process mode: decode files to
 * base images, augment and normalise, write each into its slot of a (shared) Float32Array.
 */
import path from 'node:path';
import { decodeToBase, finishImage, finishPixels, packPixelAugment, PIXEL_AUGMENT_STRIDE } from './images';
import type { DecodeOptions, PreprocessOptions } from './images';
import { isCxrError } from '../errors';
import { BaseImageCache } from './baseCache';

/** One image of a batch task. */
export interface TaskItem {
  /** Position in the batch buffer. */
  slot: number;
  /** Absolute file path. */
  path: string;
  /** Augmentation seed. */
  seed: number;
}

/** A batch task for a worker. */
export interface WorkerTask {
  id: number;
  items: TaskItem[];
  /** Output buffer: slots of 3·size·size floats, or size·size bytes (transferred to the worker and back, never copied). */
  buffer: ArrayBuffer;
  /** 'uint8': write the unwarped bytes and return each image's augmentation in `affine`. */
  pixels: 'float32' | 'uint8';
  image: PreprocessOptions;
  decode: DecodeOptions;
  /** How many images of the batch are decoded concurrently (libvips runs them on libuv threads). */
  concurrency: number;
  /** Bound of the decoding thread's cache of decoded base images ({@link BaseImageCache}); 0 = no cache. */
  cacheBytes?: number;
}

/** A failed image. */
export interface ItemFailure {
  slot: number;
  code: string;
  message: string;
}

/** A worker's answer. */
export interface WorkerResult {
  id: number;
  failures: ItemFailure[];
  /** The task's buffer, filled. */
  buffer: ArrayBuffer;
  /** uint8 tasks: each slot's packed augmentation ({@link packPixelAugment}). */
  affine?: Float64Array;
  /** Files decoded for this task. */
  decoded: number;
  /** Base images this task took from the cache instead. */
  cacheHits: number;
}

/**
 * The base image of a file: from `cache` when it holds it, else decoded (and kept there). `settings`: the
 * task's decode settings as a key part, built once per batch ({@link cacheSettings}).
 */
async function baseImage(file: string, task: WorkerTask, cache: BaseImageCache | undefined, settings: string, count: { decoded: number; cacheHits: number }): Promise<Float32Array> {
  const geometry = task.image.geometry ?? 'pad';
  const key = cache ? BaseImageCache.keyOf(file, settings) : '';
  const hit = cache?.get(key);
  if (hit) {
    count.cacheHits++;
    return hit;
  }
  count.decoded++;
  const base = await decodeToBase(file, task.image.size, geometry, task.decode);
  cache?.set(key, base);
  return base;
}

/** What a cached base image depends on besides its file: size, geometry, decode limits. */
function cacheSettings(task: WorkerTask): string {
  return `${task.image.size}|${task.image.geometry ?? 'pad'}|${JSON.stringify(task.decode)}`;
}

/**
 * Decodes the items of `task` into `task.buffer`; never rejects for a bad image. `baseCache`: the calling
 * loader's (in process) or worker's cache of decoded base images, bounded by `task.cacheBytes`.
 */
export async function processFileBatch(task: WorkerTask, baseCache?: BaseImageCache): Promise<WorkerResult> {
  const S = task.image.size;
  const chw = 3 * S * S;
  const bytes = task.pixels === 'uint8';
  const out = bytes ? undefined : new Float32Array(task.buffer);
  const outBytes = bytes ? new Uint8Array(task.buffer) : undefined;
  const affine = bytes ? new Float64Array(PIXEL_AUGMENT_STRIDE * task.items.length) : undefined;
  const failures: ItemFailure[] = [];
  const limit = task.cacheBytes ?? 0;
  const cache = baseCache && limit > 0 ? baseCache : undefined;
  if (cache && cache.maxBytes !== limit) cache.resize(limit);
  const settings = cache ? cacheSettings(task) : '';
  const count = { decoded: 0, cacheHits: 0 };
  let next = 0;
  const run = async () => {
    while (next < task.items.length) {
      const it = task.items[next++];
      try {
        const base = await baseImage(it.path, task, cache, settings, count);
        if (outBytes) packPixelAugment(affine!, it.slot, finishPixels(base, task.image, it.seed, outBytes, it.slot * S * S));
        else finishImage(base, task.image, it.seed, out, it.slot * chw);
      } catch (e) {
        failures.push({ slot: it.slot, code: isCxrError(e) ? e.code : 'E_DATA', message: `${path.basename(it.path)}: ${(e as Error)?.message ?? String(e)}` });
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, task.concurrency) }, run));
  failures.sort((a, b) => a.slot - b.slot);
  return { id: task.id, failures, buffer: task.buffer, ...(affine ? { affine } : {}), ...count };
}
