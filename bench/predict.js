#!/usr/bin/env node
'use strict';
/**
 * bench/predict.js: throughput of `predict()` on JPEG files against the bare native image encoder on
 * pre-decoded tensors (needs `npm run build:ts`; runs from dist/).
 *
 *   node bench/predict.js [--n 1000] [--src-size 224] [--models test-vit,ViT-B/32] [--batch 32] [--workers 2] [--device cpu]
 *
 * Target (issue 13): predict ≥ 0.8 × bare encode, i.e. decoding and I/O hidden behind the model. Prints a
 * table and writes bench/results/predict.json.
 */
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const dist = path.join(__dirname, '..', 'dist');
if (!fs.existsSync(path.join(dist, 'infer', 'predict.js'))) {
  console.error('bench/predict.js: build first (npm run build:ts)');
  process.exit(1);
}
const { generateSynthetic } = require(path.join(dist, 'data', 'synthetic'));
const { ClipModel } = require(path.join(dist, 'models', 'ClipModel'));
const { ZeroShotModel } = require(path.join(dist, 'infer', 'zeroShotModel'));
const { predict } = require(path.join(dist, 'jobs', 'predict'));

function arg(name, def) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : def;
}
const N = Number(arg('n', 1000));
const SRC = Number(arg('src-size', 224));
const BATCH = Number(arg('batch', 32));
const WORKERS = Number(arg('workers', 2));
const DEVICE = arg('device', 'cpu');
const MODELS = String(arg('models', 'test-vit,ViT-B/32')).split(',');

async function main() {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cxr-bench-predict-'));
  try {
    const t0 = Date.now();
    await generateSynthetic({ n: N, size: SRC, seed: 0, outDir: path.join(tmp, 'ds') });
    console.error(`generated ${N} JPEGs of ${SRC} px in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    const rows = [];
    for (const name of MODELS) {
      const dir = path.join(tmp, name.replace(/\W/g, '_'));
      const m = ClipModel.create(name, { device: DEVICE, seed: 0 });
      m.save(dir);
      m.dispose();
      const zm = await ZeroShotModel.load(dir, { device: DEVICE, batchSize: BATCH });
      try {
        const S = zm.image.size;
        // Bare encode: the same number of images, already tensors, straight into the native encoder.
        const x = new Float32Array(BATCH * 3 * S * S).map((_, i) => Math.sin(i) * 0.5);
        await zm.model.encodeImages(x, { n: BATCH }); // warm-up
        const tb = Date.now();
        let done = 0;
        while (done < N) {
          const n = Math.min(BATCH, N - done);
          await zm.model.encodeImages(x.subarray(0, n * 3 * S * S), { n });
          done += n;
        }
        const bare = (1000 * N) / (Date.now() - tb);
        await zm.classifier.textEmbeddings();
        const r = await predict({ model: zm, dir: path.join(tmp, 'ds', 'files'), workers: WORKERS });
        rows.push({ model: name, imageSize: S, n: N, batch: BATCH, workers: WORKERS, bareEncodeIps: bare, predictIps: r.imagesPerSec, ratio: r.imagesPerSec / bare, skipped: r.counts.skipped });
      } finally {
        zm.dispose();
      }
    }
    const fmt = (x) => x.toFixed(1).padStart(9);
    console.log(`model        input  bare encode img/s  predict img/s  ratio   (n=${N} JPEGs ${SRC}px, batch ${BATCH}, ${WORKERS} decode workers, ${DEVICE}, ${os.cpus().length} cpus, load ${os.loadavg()[0].toFixed(1)})`);
    for (const r of rows) console.log(`${r.model.padEnd(12)} ${String(r.imageSize).padStart(5)}  ${fmt(r.bareEncodeIps)}          ${fmt(r.predictIps)}      ${r.ratio.toFixed(2)}`);
    fs.mkdirSync(path.join(__dirname, 'results'), { recursive: true });
    fs.writeFileSync(path.join(__dirname, 'results', 'predict.json'), JSON.stringify({ date: new Date().toISOString(), device: DEVICE, cpus: os.cpus().length, load: os.loadavg()[0], rows }, null, 2) + '\n');
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e && e.stack ? e.stack : String(e));
  process.exit(1);
});
