/**
 * `cxr-train serve`: a local HTTP server (fastify) over one loaded checkpoint.
 *
 *   GET  /             the page (self-contained; a strict Content-Security-Policy forbids any other origin)
 *   GET  /api/info     checkpoint, hash, prompt set, labels, limits
 *   POST /api/predict  raw image bytes (PNG, JPEG or DICOM) → per-label probabilities, sorted
 *   POST /api/saliency?label=NAME  the same bytes → the label's Grad-CAM map as a viridis PNG and the image
 *                      as the model saw it (grey PNG), for the page's overlay (an explanation aid, not a
 *                      localisation claim); an unknown label is 400 E_CONFIG
 *
 * Uploads stay in memory (no file is written); bodies over the limit get 413, bytes that are not PNG,
 * JPEG or DICOM get 415, an image that fails to decode (or declares more pixels than the decode budget) 422.
 * Images are decoded in a worker thread, so the event loop keeps answering while an upload is decoded or
 * rejected; requests are queued onto the one model.
 */
import path from 'node:path';
import Fastify from 'fastify';
import type { FastifyInstance } from 'fastify';
import { CxrError, isCxrError } from '../errors';
import { DECODE_BYTES_PER_PIXEL, isDicom, normalizeCoefficients } from '../data/images';
import { DecodePool } from '../data/DecodePool';
import { readThresholds } from '../eval/thresholds';
import type { ThresholdsFile } from '../eval/thresholds';
import { ZeroShotModel } from './zeroShotModel';
import type { ZeroShotModelOptions } from './zeroShotModel';
import { renderServePage } from './page';
import { calibrateProbability, calibrationInfo, calibrationWarnings, resolveCalibration } from './calibration';
import type { CalibrationInfo } from './calibration';
import type { CalibrationFile } from '../eval/calibrationMap';
import { HEATMAP_CAVEAT, colorMapRgba, rasterPng } from './heatmap';
import { labelSaliency, resolveSaliencyLabels } from './saliency';

/** Default upload limit: 50 MB. */
export const DEFAULT_MAX_UPLOAD_BYTES = 50 * 1024 * 1024;

/** Default decode memory budget of one upload: 512 MiB (a 4300x3500 radiograph needs ~210 MiB). */
export const DEFAULT_MAX_DECODE_BYTES = 512 * 1024 * 1024;

/** Options of {@link startServer}. */
export interface ServeOptions extends ZeroShotModelOptions {
  /** Checkpoint to load; or give `model`. */
  checkpoint?: string;
  /** An already loaded model (not disposed by `close`). */
  model?: ZeroShotModel;
  /** Port; 0 picks a free one. Default 8080. */
  port?: number;
  /** Interface to bind. Default 127.0.0.1 (loopback only). */
  host?: string;
  /** Largest accepted upload in bytes. Default 50 MB. */
  maxUploadBytes?: number;
  /** Thresholds JSON (from `cxr-train eval`) or its content: adds 0/1 calls and threshold ticks. */
  thresholds?: string | ThresholdsFile;
  /**
   * Calibration maps (calibration.json of `cxr-train eval --calibrate`, or its content), or `none`. Default: the
   * calibration.json beside a `thresholds` path, when it exists. Probabilities are then calibrated, and a
   * label's threshold is shown on the calibrated scale (its call is the same).
   */
  calibration?: string | CalibrationFile;
  /**
   * Decode memory one upload may take, in bytes (default 512 MiB): the declared image size is checked
   * against it (`DECODE_BYTES_PER_PIXEL` bytes a pixel, ~38 megapixels by default) before any pixel buffer
   * is allocated; larger images get 422 E_DATA.
   */
  maxDecodeBytes?: number;
}

/** A running server. */
export interface RunningServer {
  /** Base URL, e.g. `http://127.0.0.1:8080/`. */
  url: string;
  port: number;
  host: string;
  app: FastifyInstance;
  model: ZeroShotModel;
  /** The calibration applied to the probabilities, or null. */
  calibration: CalibrationInfo | null;
  /** Stops accepting connections, lets running requests finish, releases the model if it was loaded here. */
  close(): Promise<void>;
}

/** One label of a prediction response. */
export interface ServedLabel {
  label: string;
  probability: number;
  positive: string[];
  negative: string[];
  threshold?: number;
  call?: 0 | 1;
  /** The model's probability before calibration, when a calibration is in use. */
  uncalibrated?: number;
}

type ImageKind = 'png' | 'jpeg' | 'dicom';

/** Sniffs the upload: the Content-Type header is the browser's guess, the bytes are the truth. */
export function sniffImage(buf: Uint8Array): ImageKind | null {
  if (buf.length >= 8 && buf[0] === 0x89 && buf[1] === 0x50 && buf[2] === 0x4e && buf[3] === 0x47) return 'png';
  if (buf.length >= 3 && buf[0] === 0xff && buf[1] === 0xd8 && buf[2] === 0xff) return 'jpeg';
  if (isDicom(buf)) return 'dicom';
  return null;
}

class HttpError extends Error {
  constructor(
    readonly statusCode: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

const CSP = "default-src 'none'; img-src 'self' data: blob:; style-src 'unsafe-inline'; script-src 'unsafe-inline'; connect-src 'self'; base-uri 'none'; form-action 'none'";

/**
 * Starts the server. Resolves once it listens.
 * @throws CxrError as {@link ZeroShotModel.load}; E_CONFIG for a bad port/limit; E_IO when the port is taken.
 */
export async function startServer(opts: ServeOptions): Promise<RunningServer> {
  const port = opts.port ?? 8080;
  const host = opts.host ?? '127.0.0.1';
  const maxBytes = opts.maxUploadBytes ?? DEFAULT_MAX_UPLOAD_BYTES;
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new CxrError('E_CONFIG', `port must be an integer in 0..65535, got ${port}`);
  if (!Number.isInteger(maxBytes) || maxBytes < 1) throw new CxrError('E_CONFIG', `the upload limit must be a positive number of bytes, got ${maxBytes}`);
  if (!opts.model && !opts.checkpoint) throw new CxrError('E_CONFIG', 'serve needs a checkpoint (or a loaded model)');
  const th = typeof opts.thresholds === 'string' ? readThresholds(opts.thresholds) : opts.thresholds;
  const cal = resolveCalibration(opts.calibration, opts.thresholds);
  const decodeBudget = opts.maxDecodeBytes ?? DEFAULT_MAX_DECODE_BYTES;
  if (!Number.isInteger(decodeBudget) || decodeBudget < DECODE_BYTES_PER_PIXEL)
    throw new CxrError('E_CONFIG', `the decode budget must be a positive number of bytes, got ${decodeBudget}`);
  const maxDecodePixels = Math.floor(decodeBudget / DECODE_BYTES_PER_PIXEL);
  const zm = opts.model ?? (await ZeroShotModel.load(opts.checkpoint!, opts));
  const owned = !opts.model;
  const decoder = new DecodePool({ workers: 1 });
  const app = Fastify({ bodyLimit: maxBytes, logger: false });
  try {
    // Every upload arrives as raw bytes whatever its Content-Type (the page posts the File itself).
    app.removeAllContentTypeParsers();
    app.addContentTypeParser('*', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));

    app.setErrorHandler((err: Error & { statusCode?: number; code?: string }, _req, reply) => {
      let status = 500;
      let code = 'E_INTERNAL';
      let message = err.message;
      if (err instanceof HttpError) {
        status = err.statusCode;
        code = err.code;
      } else if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE' || err.statusCode === 413) {
        status = 413;
        code = 'E_TOO_LARGE';
        message = `the upload is larger than the limit of ${(maxBytes / 1048576).toFixed(1)} MB`;
      } else if (isCxrError(err)) {
        status = err.code === 'E_DATA' || err.code === 'E_UNSUPPORTED_DICOM' ? 422 : 500;
        code = err.code;
      } else if (typeof err.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 500) {
        status = err.statusCode;
        code = err.code ?? 'E_REQUEST';
      }
      void reply.status(status).type('application/json').send({ error: { code, message } });
    });

    const page = renderServePage(`cxr-train · ${path.basename(path.resolve(zm.checkpoint))}`);
    app.get('/', async (_req, reply) => reply.header('Content-Security-Policy', CSP).header('X-Content-Type-Options', 'nosniff').type('text/html; charset=utf-8').send(page));

    const info = {
      checkpoint: path.basename(path.resolve(zm.checkpoint)),
      checkpointHash: zm.checkpointHash,
      prompts: zm.prompts,
      labels: zm.labels,
      temperature: zm.temperature,
      imageSize: zm.image.size,
      maxUploadBytes: maxBytes,
      maxDecodePixels,
      thresholds: th ? { split: th.split, criterion: th.criterion, labels: th.labels } : null,
      calibration: cal ? calibrationInfo(cal, zm.labels) : null,
    };
    if (cal) for (const w of calibrationWarnings(cal, { checkpointHash: zm.checkpointHash, promptHash: zm.classifier.promptHash, labels: zm.labels, temperature: opts.temperature ?? 1 })) opts.onWarning?.(w);
    app.get('/api/info', async () => info);

    const byLabel = new Map(zm.prompts.labels.map((l) => [l.label, l]));
    /** The upload, checked and decoded in the worker (the one path of both POST routes). */
    const decodeUpload = async (req: { body: unknown; headers: Record<string, string | string[] | undefined> }) => {
      const body = req.body;
      if (!Buffer.isBuffer(body) || body.length === 0) throw new HttpError(400, 'E_EMPTY', 'no image in the request body: POST the file\'s bytes (PNG, JPEG or DICOM)');
      const kind = sniffImage(body);
      if (!kind) {
        const ct = req.headers['content-type'] ?? 'none';
        throw new HttpError(415, 'E_NOT_AN_IMAGE', `not a PNG, JPEG or DICOM image (Content-Type ${ct}); upload a chest X-ray in one of these formats`);
      }
      // Decoded in a worker thread within the decode budget: a hostile upload costs the worker, never the
      // event loop (other requests keep being answered). DICOM comes back with a PNG preview.
      return { kind, d: await decoder.decode(body, kind, zm.image, { maxPixels: maxDecodePixels }) };
    };
    app.post('/api/predict', async (req) => {
      const t0 = Date.now();
      const { kind, d } = await decodeUpload(req);
      const { width, height } = d;
      const preview = d.previewPng ? `data:image/png;base64,${Buffer.from(d.previewPng).toString('base64')}` : undefined;
      const x = d.x;
      const p = await zm.exclusive(() => zm.classifier.predict(x, 1));
      const labels: ServedLabel[] = zm.labels.map((l, j) => {
        const lp = byLabel.get(l)!;
        const out: ServedLabel = { label: l, probability: cal ? calibrateProbability(cal, l, p[j]) : p[j], positive: lp.positive, negative: lp.negative };
        if (cal) out.uncalibrated = p[j];
        const t = th?.labels[l];
        if (t !== undefined) {
          // The call compares the model's probability with its threshold; the threshold is shown on the scale of `probability`.
          out.threshold = cal ? calibrateProbability(cal, l, t) : t;
          out.call = p[j] >= t ? 1 : 0;
        }
        return out;
      });
      labels.sort((a, b) => b.probability - a.probability);
      return { labels, ms: Date.now() - t0, image: { width, height, format: kind }, ...(preview ? { preview } : {}), prompts: zm.prompts.name, temperature: zm.temperature, calibrated: cal !== null };
    });

    app.post('/api/saliency', async (req) => {
      const q = (req.query ?? {}) as Record<string, unknown>;
      if (typeof q.label !== 'string' || q.label === '') throw new HttpError(400, 'E_CONFIG', 'give the label to explain: /api/saliency?label=NAME');
      let label: string;
      try {
        [label] = resolveSaliencyLabels(zm.labels, [q.label]);
      } catch (e) {
        throw new HttpError(400, 'E_CONFIG', (e as Error).message);
      }
      const t0 = Date.now();
      const { d } = await decodeUpload(req);
      const S = zm.image.size;
      const plane = S * S;
      const [m] = await labelSaliency(zm, d.x, 1, [label]);
      // The grey image the model saw: channel 0 with the normalisation undone.
      const { scale, offset } = normalizeCoefficients(zm.image.normalize ?? 'clip');
      const grey = new Uint8Array(3 * plane);
      for (let i = 0; i < plane; i++) {
        const v = Math.round(255 * Math.min(1, Math.max(0, (d.x[i] - offset[0]) / scale[0])));
        grey[3 * i] = grey[3 * i + 1] = grey[3 * i + 2] = v;
      }
      const out = Math.max(S, 384);
      const [mapPng, greyPng] = await Promise.all([rasterPng(colorMapRgba(m.maps.subarray(0, plane), S), S, 4, out), rasterPng(grey, S, 3, out)]);
      let peak = 0;
      for (let i = 0; i < plane; i++) peak = Math.max(peak, m.maps[i]);
      return {
        label,
        probability: m.probabilities[0],
        score: m.scores[0],
        method: 'Grad-CAM',
        layer: m.layer,
        caveat: HEATMAP_CAVEAT,
        empty: !(peak > 0),
        map: `data:image/png;base64,${mapPng.toString('base64')}`,
        image: `data:image/png;base64,${greyPng.toString('base64')}`,
        ms: Date.now() - t0,
      };
    });

    // Text embeddings once, and the decode worker started, before the first request.
    await zm.exclusive(() => zm.classifier.textEmbeddings());
    await decoder.warm();
    let address: string;
    try {
      address = await app.listen({ port, host });
    } catch (e) {
      throw new CxrError('E_IO', `cannot listen on ${host}:${port}: ${(e as Error).message}`, { host, port }, { cause: e });
    }
    const bound = app.server.address();
    const realPort = typeof bound === 'object' && bound ? bound.port : port;
    let closed = false;
    return {
      url: `${address.replace(/\/$/, '')}/`,
      port: realPort,
      host,
      app,
      model: zm,
      calibration: info.calibration,
      close: async () => {
        if (closed) return;
        closed = true;
        await app.close();
        await decoder.close();
        // Queued requests finish before the model goes.
        await zm.exclusive(async () => undefined);
        if (owned) zm.dispose();
      },
    };
  } catch (e) {
    await app.close().catch(() => undefined);
    await decoder.close();
    if (owned) zm.dispose();
    throw e;
  }
}
