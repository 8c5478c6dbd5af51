/**
 * The `serve` page in headless Chromium, as a user meets it: the page loads with no network, an image is
 * uploaded through its file input, and the probabilities it draws are the API's. Driven by
 * scripts/serve-screenshot.js (Chrome DevTools Protocol, no extra package) against a server started here
 * from the sources. Skipped without Chromium locally; under CI=true a missing Chromium fails it.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { ClipModel } from '../../lib/models/ClipModel';
import { startServer } from '../../lib/infer/server';
import type { RunningServer } from '../../lib/infer/server';
import { browserTest, chromiumOrFail } from '../helpers/chromium';
import { blobPng } from '../helpers/inputs';

// One retry, with the failed attempt's errors printed: a CI run once saw both cases exit 1 within seconds
// (Chromium side, not reproduced in many local and CI runs); the retry keeps the diagnostics (the script's
// stderr is in the failure message below) without hiding a page that is really broken (it fails twice).
jest.retryTimes(1, { logErrorsBeforeRetry: true });

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cxr-browser-'));
let server: RunningServer | undefined;

afterAll(async () => {
  await server?.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const p = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (err += d));
    p.on('exit', (code) => resolve({ code, out, err }));
  });
}

describe('serve page in Chromium', () => {
  browserTest()('upload an image, see the probabilities the API gives', async () => {
    const chrome = chromiumOrFail();
    const modelDir = path.join(tmp, 'model');
    const m = ClipModel.create('test-vit', { device: 'cpu', seed: 7 });
    m.save(modelDir);
    m.dispose();
    const png = await blobPng();
    const image = path.join(tmp, 'x.png');
    fs.writeFileSync(image, png);
    server ??= await startServer({ checkpoint: modelDir, port: 0, device: 'cpu' });

    const shot = path.join(tmp, 'serve.png');
    const script = path.resolve(__dirname, '../../scripts/serve-screenshot.js');
    const r = await run(process.execPath, [script, '--url', server.url, '--image', image, '--out', shot], { ...process.env, CHROMIUM: chrome });
    expect({ code: r.code, err: r.code === 0 ? '' : r.err }).toEqual({ code: 0, err: '' });

    const page = new Map<string, number>();
    for (const line of r.out.split('\n')) {
      const mm = /^(\S.*?)\s+(\d\.\d{3})$/.exec(line);
      if (mm) page.set(mm[1], Number(mm[2]));
    }
    const api = (await (await fetch(`${server.url}api/predict`, { method: 'POST', headers: { 'Content-Type': 'image/png' }, body: png })).json()) as {
      labels: Array<{ label: string; probability: number }>;
    };
    expect(api.labels.length).toBeGreaterThan(0);
    expect([...page.keys()].sort()).toEqual(api.labels.map((l) => l.label).sort());
    for (const l of api.labels) expect(Math.abs(page.get(l.label)! - l.probability)).toBeLessThanOrEqual(0.0005 + 1e-9);

    const buf = fs.readFileSync(shot);
    expect(buf.readUInt32BE(16)).toBe(1280); // the page was laid out at 1280 px and captured
    expect(buf.length).toBeGreaterThan(20000);
  }, 180000);

  browserTest()('click a label: its heatmap over the image, an opacity slider, the caveat', async () => {
    const chrome = chromiumOrFail();
    if (!server) {
      const modelDir = path.join(tmp, 'model-heat');
      const m = ClipModel.create('test-vit', { device: 'cpu', seed: 7 });
      m.save(modelDir);
      m.dispose();
      server = await startServer({ checkpoint: modelDir, port: 0, device: 'cpu' });
    }
    const png = await blobPng();
    const image = path.join(tmp, 'heat.png');
    fs.writeFileSync(image, png);
    const shot = path.join(tmp, 'serve-heat.png');
    const script = path.resolve(__dirname, '../../scripts/serve-screenshot.js');
    const label = 'Pleural Effusion';
    const r = await run(process.execPath, [script, '--url', server.url, '--image', image, '--out', shot, '--heatmap', label], { ...process.env, CHROMIUM: chrome });
    expect({ code: r.code, err: r.code === 0 ? '' : r.err }).toEqual({ code: 0, err: '' });
    const line = (k: string) => r.out.split('\n').find((l) => l.startsWith(`${k}: `))?.slice(k.length + 2);
    expect(line('heatmap-label')).toBe(label);
    expect(line('heatmap-caveat')).toMatch(/explanation aid, not a localisation claim/);
    expect(line('heatmap-opacity')).toBe('0.8 80%');
    const [w, h, bw] = line('heatmap-size')!.split(' ').map(Number);
    expect([w, h, bw]).toEqual([384, 384, 384]);
    // The caption's probability is the API's for this label.
    const api = (await (await fetch(`${server.url}api/saliency?label=${encodeURIComponent(label)}`, { method: 'POST', headers: { 'Content-Type': 'image/png' }, body: png })).json()) as { probability: number; map: string; caveat: string };
    expect(line('heatmap-caption')).toContain(`p = ${api.probability.toFixed(3)}`);
    expect(api.map.startsWith('data:image/png;base64,')).toBe(true);
    // An unknown label is refused with E_CONFIG.
    const bad = await fetch(`${server.url}api/saliency?label=Effusion`, { method: 'POST', headers: { 'Content-Type': 'image/png' }, body: png });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: { code: string } }).error.code).toBe('E_CONFIG');
  }, 180000);
});
