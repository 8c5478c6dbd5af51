/**
 * `cxr-train serve` over loopback: an untrained test-vit on an ephemeral port of 127.0.0.1; a good image,
 * bad files, a too-large upload, concurrent requests queued onto the one model.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { ClipModel } from '../../lib/models/ClipModel';
import { startServer, sniffImage } from '../../lib/infer/server';
import type { RunningServer } from '../../lib/infer/server';
import { predict } from '../../lib/jobs/predict';
import { makeDicom } from '../unit/data/helpers';
import { blobPng } from '../helpers/inputs';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cxr-serve-'));
const modelDir = path.join(tmp, 'model');
let server: RunningServer;
let png: Buffer;
let pngFile: string;

beforeAll(async () => {
  const m = ClipModel.create('test-vit', { device: 'cpu', seed: 7 });
  m.save(modelDir);
  m.dispose();
  png = await blobPng();
  pngFile = path.join(tmp, 'x.png');
  fs.writeFileSync(pngFile, png);
  server = await startServer({
    checkpoint: modelDir,
    port: 0,
    device: 'cpu',
    maxUploadBytes: 200_000,
    thresholds: { format: 'cxr-train-thresholds', version: 1, criterion: 'mcc', split: 'validate', checkpointHashes: [], prompts: { name: 'chexzero', hash: '' }, temperature: 1, labels: { Edema: 0.5 } },
  });
});

afterAll(async () => {
  await server?.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

const post = (body: Uint8Array, type = 'image/png') => fetch(`${server.url}api/predict`, { method: 'POST', headers: { 'Content-Type': type }, body });

describe('serve', () => {
  test('binds to loopback on an ephemeral port and serves a self-contained page', async () => {
    expect(server.host).toBe('127.0.0.1');
    expect(server.port).toBeGreaterThan(0);
    expect(server.url).toBe(`http://127.0.0.1:${server.port}/`);
    const r = await fetch(server.url);
    expect(r.status).toBe(200);
    expect(r.headers.get('content-security-policy')).toMatch(/default-src 'none'/);
    const html = await r.text();
    expect(html).toContain('api/predict');
    // No external asset: no URL with a scheme in src/href, and no @import or url(http...).
    expect(html).not.toMatch(/(src|href)\s*=\s*["']?(https?:)?\/\//i);
    expect(html).not.toMatch(/url\(\s*["']?https?:/i);
    const info = (await (await fetch(`${server.url}api/info`)).json()) as { labels: string[]; checkpointHash: string; maxUploadBytes: number };
    expect(info.labels).toHaveLength(14);
    expect(info.checkpointHash).toMatch(/^[0-9a-f]{64}$/);
    expect(info.maxUploadBytes).toBe(200_000);
  });

  test('POST a PNG: probabilities for every label in [0, 1], sorted, with prompts; the same numbers as predict', async () => {
    const r = await post(png);
    expect(r.status).toBe(200);
    const j = (await r.json()) as { labels: Array<{ label: string; probability: number; positive: string[]; negative: string[]; threshold?: number; call?: number }>; image: { width: number; format: string } };
    expect(j.labels).toHaveLength(14);
    expect(j.image).toMatchObject({ width: 96, format: 'png' });
    for (let i = 0; i < j.labels.length; i++) {
      const l = j.labels[i];
      expect(l.probability).toBeGreaterThanOrEqual(0);
      expect(l.probability).toBeLessThanOrEqual(1);
      expect(l.positive.length).toBeGreaterThan(0);
      expect(l.negative.length).toBeGreaterThan(0);
      if (i > 0) expect(l.probability).toBeLessThanOrEqual(j.labels[i - 1].probability);
    }
    const edema = j.labels.find((l) => l.label === 'Edema')!;
    expect(edema.threshold).toBe(0.5);
    expect(edema.call).toBe(edema.probability >= 0.5 ? 1 : 0);
    const p = await predict({ model: server.model, images: [pngFile], workers: 0 });
    for (const l of j.labels) expect(l.probability).toBeCloseTo(p.rows[0].probabilities[l.label], 6);
  });

  test('POST a DICOM: scored, with a PNG preview for the browser', async () => {
    const rows = 64;
    const pixels = new Uint16Array(rows * rows).map((_, i) => (i % rows) * 40);
    const r = await post(makeDicom({ rows, cols: rows, pixels, bitsAllocated: 16, bitsStored: 12 }), 'application/dicom');
    expect(r.status).toBe(200);
    const j = (await r.json()) as { labels: Array<{ probability: number }>; image: { width: number; height: number; format: string }; preview: string };
    expect(j.image).toEqual({ width: 64, height: 64, format: 'dicom' });
    expect(j.labels).toHaveLength(14);
    expect(j.preview).toMatch(/^data:image\/png;base64,/);
    const meta = await sharp(Buffer.from(j.preview.split(',')[1], 'base64')).metadata();
    expect(meta).toMatchObject({ format: 'png', width: 64, height: 64 });
  });

  test('concurrent uploads are queued onto the one model (no E_BUSY)', async () => {
    const rs = await Promise.all(Array.from({ length: 6 }, () => post(png, 'application/octet-stream')));
    expect(rs.map((r) => r.status)).toEqual([200, 200, 200, 200, 200, 200]);
    const first = (await rs[0].json()) as { labels: Array<{ probability: number }> };
    const last = (await rs[5].json()) as { labels: Array<{ probability: number }> };
    expect(last.labels[0].probability).toBeCloseTo(first.labels[0].probability, 6);
  });

  test('bad uploads: not an image → 415, corrupt image → 422, too large → 413, empty → 400, with clear messages', async () => {
    const text = await post(Buffer.from('hello, this is not an X-ray'), 'text/plain');
    expect(text.status).toBe(415);
    expect(((await text.json()) as { error: { message: string } }).error.message).toMatch(/not a PNG, JPEG or DICOM/);

    const corrupt = await post(Buffer.concat([png.subarray(0, 40), Buffer.alloc(60)]));
    expect(corrupt.status).toBe(422);
    expect(((await corrupt.json()) as { error: { code: string } }).error.code).toBe('E_DATA');

    const big = await post(Buffer.concat([png, Buffer.alloc(300_000)]));
    expect(big.status).toBe(413);
    expect(((await big.json()) as { error: { message: string } }).error.message).toMatch(/larger than the limit/);

    const empty = await post(new Uint8Array(0));
    expect(empty.status).toBe(400);

    // The server still answers after the errors.
    expect((await post(png)).status).toBe(200);
  });

  test('sniffImage tells PNG, JPEG and DICOM from other bytes', () => {
    expect(sniffImage(png)).toBe('png');
    expect(sniffImage(Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0, 0]))).toBe('jpeg');
    const dcm = Buffer.alloc(140);
    dcm.write('DICM', 128, 'ascii');
    expect(sniffImage(dcm)).toBe('dicom');
    expect(sniffImage(Buffer.from('GIF89a....'))).toBeNull();
  });

  test('the serve command as a process stays up, answers and stops on SIGINT (its decode workers keep nothing alive before it listens)', async () => {
    const root = path.resolve(__dirname, '../..');
    const p = spawn(process.execPath, [path.join(root, 'bin/cxr-train.js'), 'serve', '--checkpoint', modelDir, '--port', '0', '--device', 'cpu', '--json'], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const exited = new Promise<number | null>((resolve) => p.on('exit', (code) => resolve(code)));
    try {
      const line = await new Promise<string>((resolve, reject) => {
        p.stdout.on('data', (d: Buffer) => {
          out += d.toString();
          if (out.includes('\n')) resolve(out.split('\n')[0]);
        });
        void exited.then((code) => reject(new Error(`serve exited (code ${code}) before listening; stderr: ${err}`)));
      });
      const { url } = JSON.parse(line) as { url: string };
      expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);
      const r = await fetch(`${url}api/predict`, { method: 'POST', headers: { 'Content-Type': 'image/png' }, body: png });
      expect(r.status).toBe(200);
      expect(((await r.json()) as { labels: unknown[] }).labels).toHaveLength(14);
    } finally {
      p.kill('SIGINT');
    }
    expect(await exited).toBe(0);
    expect(err).toContain('stopping');
  }, 120_000);
});
