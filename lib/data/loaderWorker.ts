/**
 * Worker thread of the DataLoader: decodes and augments one batch of image files into a shared buffer.
 * Messages in: {@link WorkerTask}; out: {@link WorkerResult}. Every per-sample failure is caught and
 * reported, so one bad file never kills the worker.
 */
import { parentPort } from 'node:worker_threads';
import { BaseImageCache } from './baseCache';
import { processFileBatch } from './loaderCore';
import type { WorkerTask } from './loaderCore';

if (parentPort) {
  const port = parentPort;
  // This worker's decoded images: a worker belongs to one loader, so the cache lives as long as the loader.
  const cache = new BaseImageCache(0);
  port.on('message', (task: WorkerTask) => {
    processFileBatch(task, cache).then(
      (res) => port.postMessage(res, res.affine ? [res.buffer, res.affine.buffer as ArrayBuffer] : [res.buffer]),
      (e) => port.postMessage({ id: task.id, buffer: task.buffer, decoded: 0, cacheHits: 0, failures: task.items.map((it) => ({ slot: it.slot, code: 'E_INTERNAL', message: String((e as Error)?.message ?? e) })) }, [task.buffer]),
    );
  });
}
