/**
 * Worker thread of {@link DecodePool}: decodes one upload per message. In: {@link DecodeTask}; out:
 * {@link DecodeReply}. Failures are replies, so one bad upload never kills the worker.
 */
import { parentPort } from 'node:worker_threads';
import { decodeUpload, toFailure } from './uploadDecode';
import type { DecodeReply, DecodeTask } from './DecodePool';

if (parentPort) {
  const port = parentPort;
  port.on('message', (t: DecodeTask) => {
    decodeUpload(new Uint8Array(t.bytes), t.kind, t.image, t.decode).then(
      (r) => {
        const reply: DecodeReply = { id: t.id, result: r };
        port.postMessage(reply, [r.x.buffer as ArrayBuffer, ...(r.previewPng ? [r.previewPng.buffer as ArrayBuffer] : [])]);
      },
      (e) => port.postMessage({ id: t.id, failure: toFailure(e) } satisfies DecodeReply),
    );
  });
  // Modules loaded: the pool may count on this worker.
  port.postMessage({ ready: true });
}
