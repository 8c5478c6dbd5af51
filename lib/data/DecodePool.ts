/**
 * Image decoding off the event loop, for a server: uploads are decoded in worker threads (default one), one
 * at a time per worker, so a hostile or huge upload costs a worker's time and never the main thread's (the
 * server keeps answering). Each task carries its decode budget (`maxPixels`, checked on the declared size
 * before any pixel buffer is allocated) and a time limit: a worker past it is terminated and replaced, and
 * the task fails with E_DATA. Without a worker entry (no compiled file, no TypeScript) it decodes in process.
 */
import { Worker } from 'node:worker_threads';
import { CxrError } from '../errors';
import type { ErrorCode } from '../errors';
import { decodeUpload } from './uploadDecode';
import type { DecodeFailure, DecodedUpload, UploadKind } from './uploadDecode';
import type { DecodeOptions, PreprocessOptions } from './images';
import { workerEntry } from './workerEntry';

/** A message to a decode worker. */
export interface DecodeTask {
  id: number;
  bytes: ArrayBuffer;
  kind: UploadKind;
  image: PreprocessOptions;
  decode: DecodeOptions;
}

/** A decode worker's answer. */
export interface DecodeReply {
  id: number;
  result?: DecodedUpload;
  failure?: DecodeFailure;
}

/** Options of {@link DecodePool}. */
export interface DecodePoolOptions {
  /** Worker threads. Default 1 (a server's decodes are short; one worker bounds the decode memory to one budget). */
  workers?: number;
  /** Longest decode in ms before its worker is replaced and the task fails (E_DATA). Default 30000. */
  timeoutMs?: number;
}

interface Slot {
  worker: Worker | null;
  /** Resolves when the worker has loaded its modules. */
  ready: Promise<void> | null;
  busy: { task: DecodeTask; resolve: (r: DecodedUpload) => void; reject: (e: Error) => void; timer: NodeJS.Timeout } | null;
}

/** A pool of decode workers; `close()` it when done. */
export class DecodePool {
  private readonly slots: Slot[];
  private readonly queue: Array<{ task: DecodeTask; resolve: (r: DecodedUpload) => void; reject: (e: Error) => void }> = [];
  private readonly entry: { file: string; eval: boolean } | undefined;
  private readonly timeoutMs: number;
  private nextId = 1;
  private closed = false;
  /** 'workers' when threads decode, else 'in-process'. */
  readonly mode: 'workers' | 'in-process';

  constructor(opts: DecodePoolOptions = {}) {
    const n = opts.workers ?? 1;
    if (!Number.isInteger(n) || n < 1 || n > 64) throw new CxrError('E_CONFIG', `decode workers must be an integer in 1..64, got ${n}`);
    this.timeoutMs = opts.timeoutMs ?? 30000;
    this.entry = workerEntry(__dirname, 'decodeWorker');
    this.mode = this.entry ? 'workers' : 'in-process';
    this.slots = Array.from({ length: n }, () => ({ worker: null, ready: null, busy: null }));
  }

  /**
   * Decodes one upload (the bytes are copied; the caller keeps its buffer).
   * @throws CxrError E_DATA, E_UNSUPPORTED_DICOM (as {@link decodeUpload}), E_DISPOSED after close.
   */
  decode(bytes: Uint8Array, kind: UploadKind, image: PreprocessOptions, decode: DecodeOptions = {}): Promise<DecodedUpload> {
    if (this.closed) return Promise.reject(new CxrError('E_DISPOSED', 'the decode pool is closed'));
    if (this.mode === 'in-process') return decodeUpload(bytes, kind, image, decode);
    const copy = new Uint8Array(bytes.byteLength);
    copy.set(bytes);
    const task: DecodeTask = { id: this.nextId++, bytes: copy.buffer, kind, image, decode };
    return new Promise((resolve, reject) => {
      this.queue.push({ task, resolve, reject });
      this.pump();
    });
  }

  /**
   * Starts the workers and waits until they have loaded (a server calls it before listening, so that the
   * first upload does not pay for the start). Never throws: a worker that fails to start is restarted later.
   */
  async warm(): Promise<void> {
    if (this.mode !== 'workers' || this.closed) return;
    await Promise.all(this.slots.map((s) => (s.worker ? s.ready : (this.spawn(s), s.ready))));
  }

  /** Stops the workers; queued and running decodes fail with E_DISPOSED. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const gone = new CxrError('E_DISPOSED', 'the decode pool was closed');
    for (const q of this.queue.splice(0)) q.reject(gone);
    await Promise.all(
      this.slots.map(async (s) => {
        if (s.busy) {
          clearTimeout(s.busy.timer);
          s.busy.reject(gone);
          s.busy = null;
        }
        const w = s.worker;
        s.worker = null;
        if (w) await w.terminate();
      }),
    );
  }

  private pump(): void {
    for (const slot of this.slots) {
      if (this.queue.length === 0) return;
      if (slot.busy) continue;
      const next = this.queue.shift()!;
      const worker = slot.worker ?? this.spawn(slot);
      const timer = setTimeout(() => this.fail(slot, new CxrError('E_DATA', `cannot decode the image: it took more than ${this.timeoutMs} ms`)), this.timeoutMs);
      slot.busy = { ...next, timer };
      worker.ref();
      worker.postMessage(next.task, [next.task.bytes]);
    }
  }

  private spawn(slot: Slot): Worker {
    const entry = this.entry!;
    const worker = new Worker(entry.file, { eval: entry.eval });
    slot.worker = worker;
    let ready!: () => void;
    slot.ready = new Promise<void>((r) => (ready = r));
    worker.once('exit', () => ready());
    worker.on('message', (r: DecodeReply | { ready: true }) => {
      if ('ready' in r) {
        // Held until its modules are loaded (warm() waits for this), then idle workers keep nothing alive.
        if (!slot.busy) worker.unref();
        return ready();
      }
      const b = slot.busy;
      if (!b || b.task.id !== r.id) return;
      clearTimeout(b.timer);
      slot.busy = null;
      worker.unref();
      if (r.failure) b.reject(new CxrError(r.failure.code as ErrorCode, r.failure.message));
      else {
        // Re-wrapped in this realm's typed arrays (a message's arrays can come from another context, e.g. under jest).
        const d = r.result!;
        b.resolve({ ...d, x: new Float32Array(d.x.buffer, d.x.byteOffset, d.x.length), ...(d.previewPng ? { previewPng: new Uint8Array(d.previewPng.buffer, d.previewPng.byteOffset, d.previewPng.length) } : {}) });
      }
      this.pump();
    });
    worker.on('error', (e) => this.fail(slot, new CxrError('E_DATA', `cannot decode the image: the decoder stopped (${e.message})`)));
    worker.on('exit', (code) => {
      if (slot.worker === worker && !this.closed) this.fail(slot, new CxrError('E_DATA', `cannot decode the image: the decoder exited (code ${code})`));
    });
    return worker;
  }

  /** Fails the slot's task and replaces its worker (a fresh one is started for the next task). */
  private fail(slot: Slot, err: CxrError): void {
    const w = slot.worker;
    slot.worker = null;
    if (w) void w.terminate().catch(() => undefined);
    const b = slot.busy;
    slot.busy = null;
    if (b) {
      clearTimeout(b.timer);
      b.reject(err);
    }
    if (!this.closed) this.pump();
  }
}
