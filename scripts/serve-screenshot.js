#!/usr/bin/env node
'use strict';
/*
 * Drives the `cxr-train serve` page in headless Chromium (Chrome DevTools Protocol, no extra package):
 * starts the server on a free loopback port, opens the page, uploads an image through the page's file
 * input, waits for the bars, prints the probabilities the page rendered, saves a screenshot, then stops
 * the server with SIGINT (its graceful shutdown).
 *
 *   npx tsc -p tsconfig.json   # the CLI runs from dist/
 *   node scripts/serve-screenshot.js --checkpoint MODEL_DIR --image X.png [--out serve.png]
 *   node scripts/serve-screenshot.js --url http://127.0.0.1:PORT/ --image X.png   # a server already running
 *   ... --heatmap "Pleural Effusion"   # then click that label, wait for its heatmap, move the opacity slider
 *
 * It prints one line per label ("LABEL  p"), which test/e2e/browser.test.ts compares with the API's answer;
 * with --heatmap, `heatmap-*: ...` lines (the caption, the caveat, the overlay's size, the opacity set).
 * Needs Debian's chromium (CHROMIUM=/path overrides); without it the script says so and exits 0, or 1 under CI=true. Node 20 needs --experimental-websocket for the
 * built-in WebSocket; the script re-runs itself with it.
 */
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

if (typeof WebSocket === 'undefined' && !process.execArgv.includes('--experimental-websocket')) {
  const r = require('node:child_process').spawnSync(process.execPath, ['--experimental-websocket', '--no-warnings', __filename, ...process.argv.slice(2)], { stdio: 'inherit' });
  process.exit(r.status ?? 1);
}

function arg(name, def) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : def;
}
const checkpoint = arg('checkpoint');
const givenUrl = arg('url');
const image = arg('image');
const out = path.resolve(arg('out', 'serve.png'));
const heatmap = arg('heatmap');
if ((!checkpoint && !givenUrl) || !image) {
  console.error('usage: node scripts/serve-screenshot.js (--checkpoint MODEL_DIR | --url URL) --image X.png [--out serve.png]');
  process.exit(2);
}
const chromium = process.env.CHROMIUM || ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'].find((p) => fs.existsSync(p));
if (!chromium) {
  const ci = process.env.CI === 'true' || process.env.CI === '1';
  console.error(`chromium not found (apt-get install -y chromium, or set CHROMIUM): ${ci ? 'failed (CI=true)' : 'skipped'}`);
  process.exit(ci ? 1 : 0);
}

/** Resolves with the first capture of `re` in a stream's output. */
function waitFor(stream, re, what, ms = 120000) {
  return new Promise((resolve, reject) => {
    let buf = '';
    const t = setTimeout(() => reject(new Error(`timed out waiting for ${what}; output so far:\n${buf}`)), ms);
    stream.on('data', (d) => {
      buf += d;
      const m = buf.match(re);
      if (m) {
        clearTimeout(t);
        resolve(m[1]);
      }
    });
  });
}

async function main() {
  const root = path.resolve(__dirname, '..');
  let server = null;
  let url = givenUrl;
  if (!url) {
    server = spawn(process.execPath, [path.join(root, 'bin/cxr-train.js'), 'serve', '--checkpoint', checkpoint, '--port', '0', '--device', 'cpu'], { stdio: ['ignore', 'pipe', 'pipe'] });
    server.stderr.pipe(process.stderr);
    url = await waitFor(server.stdout, /cxr-train serve: (http:\/\/\S+)/, 'the server');
  }
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'cxr-chromium-'));
  // Any request off this machine goes to a dead proxy (loopback is bypassed): the page must be self-contained.
  const browser = spawn(chromium, ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--hide-scrollbars', `--user-data-dir=${profile}`, '--remote-debugging-port=0', '--proxy-server=127.0.0.1:9', 'about:blank'], { stdio: ['ignore', 'ignore', 'pipe'] });
  try {
    const wsUrl = await waitFor(browser.stderr, /DevTools listening on (ws:\/\/\S+)/, 'chromium');
    const ws = new WebSocket(wsUrl);
    await new Promise((res, rej) => ((ws.onopen = res), (ws.onerror = rej)));
    let id = 0;
    const pending = new Map();
    const listeners = [];
    ws.onmessage = (ev) => {
      const m = JSON.parse(ev.data);
      if (m.id && pending.has(m.id)) {
        const p = pending.get(m.id);
        pending.delete(m.id);
        m.error ? p.reject(new Error(JSON.stringify(m.error))) : p.resolve(m.result);
      } else for (const l of listeners) l(m);
    };
    const send = (method, params = {}, sessionId) =>
      new Promise((resolve, reject) => {
        const msg = { id: ++id, method, params, ...(sessionId ? { sessionId } : {}) };
        pending.set(msg.id, { resolve, reject });
        ws.send(JSON.stringify(msg));
      });
    const { targetId } = await send('Target.createTarget', { url: 'about:blank' });
    const { sessionId } = await send('Target.attachToTarget', { targetId, flatten: true });
    const s = (m, p) => send(m, p, sessionId);
    await s('Page.enable');
    await s('Emulation.setDeviceMetricsOverride', { width: 1280, height: 960, deviceScaleFactor: 1, mobile: false });
    const loaded = new Promise((res) => listeners.push((m) => m.method === 'Page.loadEventFired' && res()));
    await s('Page.navigate', { url });
    await loaded;
    let input = null;
    for (let i = 0; i < 50 && !input; i++) {
      const r = await s('Runtime.evaluate', { expression: 'document.getElementById("file")' });
      if (r.result.objectId) input = r.result.objectId;
      else await new Promise((res) => setTimeout(res, 100));
    }
    if (!input) throw new Error('the page has no file input');
    await s('DOM.setFileInputFiles', { files: [path.resolve(image)], objectId: input });
    let rows = [];
    for (let i = 0; i < 100 && rows.length === 0; i++) {
      await new Promise((r) => setTimeout(r, 200));
      const r = await s('Runtime.evaluate', { expression: 'JSON.stringify([...document.querySelectorAll(".bar-row")].map(e => [e.dataset.label, +e.dataset.p]))', returnByValue: true });
      rows = JSON.parse(r.result.value);
    }
    const status = await s('Runtime.evaluate', { expression: 'document.getElementById("status").textContent', returnByValue: true });
    if (rows.length === 0) throw new Error(`the page rendered no probabilities (status: ${status.result.value})`);
    const heatLines = [];
    if (heatmap) {
      const ev = async (expression) => (await s('Runtime.evaluate', { expression, returnByValue: true })).result.value;
      const clicked = await ev(`(function(){var r=[...document.querySelectorAll('.bar-row')].find(e=>e.dataset.label===${JSON.stringify(heatmap)}); if(!r) return false; r.click(); return true;})()`);
      if (!clicked) throw new Error(`the page has no row for ${heatmap}`);
      let shown = null;
      for (let i = 0; i < 150 && !shown; i++) {
        await new Promise((r) => setTimeout(r, 200));
        shown = await ev(`(function(){var h=document.getElementById('heat'),m=document.getElementById('heatmap'),b=document.getElementById('heatbase'); return h.style.display==='block'&&m.complete&&m.naturalWidth>0&&b.complete&&b.naturalWidth>0 ? JSON.stringify({cap:document.getElementById('heatcap').textContent,label:document.getElementById('heatcap').dataset.label,caveat:document.getElementById('caveat').textContent,w:m.naturalWidth,h:m.naturalHeight,bw:b.naturalWidth}) : null;})()`);
      }
      if (!shown) throw new Error(`the heatmap of ${heatmap} did not appear (status: ${await ev('document.getElementById("status").textContent')})`);
      const opacity = await ev(`(function(){var o=document.getElementById('opacity'); o.value='80'; o.dispatchEvent(new Event('input')); return getComputedStyle(document.getElementById('heatmap')).opacity + ' ' + document.getElementById('opval').textContent;})()`);
      const h = JSON.parse(shown);
      heatLines.push(`heatmap-label: ${h.label}`, `heatmap-caption: ${h.cap}`, `heatmap-caveat: ${h.caveat}`, `heatmap-size: ${h.w} ${h.h} ${h.bw}`, `heatmap-opacity: ${opacity}`);
    }
    await new Promise((r) => setTimeout(r, 300));
    const shot = await s('Page.captureScreenshot', { format: 'png' });
    fs.writeFileSync(out, Buffer.from(shot.data, 'base64'));
    console.log(`status: ${status.result.value}`);
    for (const [l, p] of rows) console.log(`${l.padEnd(28)} ${p.toFixed(3)}`);
    for (const l of heatLines) console.log(l);
    console.log(`screenshot: ${out}`);
    await send('Browser.close').catch(() => undefined);
    ws.close();
  } finally {
    if (browser.exitCode === null) {
      const gone = new Promise((r) => browser.on('exit', r));
      browser.kill();
      await gone;
    }
    fs.rmSync(profile, { recursive: true, force: true, maxRetries: 5, retryDelay: 200 });
    if (server) {
      server.kill('SIGINT');
      await new Promise((r) => server.on('exit', r));
    }
  }
}

main().catch((e) => {
  console.error(e && e.stack ? e.stack : String(e));
  process.exit(1);
});
