#!/usr/bin/env node
'use strict';
/**
 * bench/data.js: data pipeline throughput (needs `npm run build:ts` first; runs from dist/).
 *
 *   node bench/data.js [--n 400] [--src-size 1024] [--size 224] [--batch 32] [--step-ips X]
 *
 * Measures images/s of JPEG decode + resize + augment to --size with the DataLoader in process and with
 * 1 and 2 worker threads, and of packed uint8 shards (no decoding) through the same augmentation, each as
 * float32 batches (normalised N×3×S×S, 12 bytes a pixel) and as uint8 batches (N×S×S bytes normalised on
 * the device by the native step). Host CPU time per image (process.cpuUsage) shows the cycles each
 * costs; the shards lines say how many cores would feed a GPU step of --gpu-ips (default 3000) img/s,
 * from that CPU time (--gpu-ips × CPU s/image; wall-clock images/s swing with other load).
 * Source images are synthetic radiographs upscaled to --src-size (real MIMIC-CXR-JPG files are
 * ~2500 px; decode cost grows with size). --step-ips (or bench/results/trainStep.json's imagesPerSec)
 * is the native train step's consumption to compare with. uint8 batches leave the geometric warp,
 * intensity augmentation and normalisation to the native side (on the training device): the last line
 * times that conversion on the CPU (cxr::pixels_to_images, per image), the work a CPU-only run adds to
 * its step. Prints a table and writes bench/results/data.json.
 */
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const dist = path.join(__dirname, '..', 'dist');
if (!fs.existsSync(path.join(dist, 'data', 'DataLoader.js'))) {
  console.error('bench/data.js: build first (npm run build:ts)');
  process.exit(1);
}
const sharp = require('sharp');
const { generateSynthetic } = require(path.join(dist, 'data', 'synthetic'));
const { mimicCxrAdapter } = require(path.join(dist, 'data', 'adapters', 'mimicCxr'));
const { DataLoader } = require(path.join(dist, 'data', 'DataLoader'));
const { writeShards, loadShards } = require(path.join(dist, 'data', 'shards'));

function arg(name, def) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : def;
}
const N = arg('n', 400);
const SRC = arg('src-size', 1024);
const SIZE = arg('size', 224);
const BATCH = arg('batch', 32);
const GPU_IPS = arg('gpu-ips', 3000);
let stepIps = arg('step-ips', NaN);
const stepFile = path.join(__dirname, 'results', 'trainStep.json');
if (!Number.isFinite(stepIps) && fs.existsSync(stepFile)) {
  try {
    const j = JSON.parse(fs.readFileSync(stepFile, 'utf8'));
    stepIps = Number(j.imagesPerSec ?? j.images_per_sec ?? NaN);
  } catch {
    /* ignore */
  }
}

const augment = { scale: [0.8, 1], rotateDeg: 5, translate: 0.03, brightness: 0.1, contrast: 0.1 };

async function epochRate(loader) {
  const t = process.hrtime.bigint();
  const c0 = process.cpuUsage();
  let n = 0;
  let bytes = 0;
  for await (const b of loader.epoch(0)) {
    n += b.n;
    bytes += b.images instanceof Float32Array ? b.images.byteLength : b.images.pixels.byteLength;
  }
  const s = Number(process.hrtime.bigint() - t) / 1e9;
  const c = process.cpuUsage(c0);
  // Worker threads' time is in process.cpuUsage too (it counts the whole process).
  return { images: n, seconds: s, ips: n / s, bytesPerImage: bytes / n, cpuMsPerImage: (c.user + c.system) / 1000 / n };
}

(async () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cxr-bench-data-'));
  try {
    process.stderr.write(`generating ${N} synthetic images, upscaled to ${SRC}px JPEG...\n`);
    await generateSynthetic({ n: N, seed: 1, size: 256, outDir: tmp });
    const m = await mimicCxrAdapter.load({ root: tmp });
    await Promise.all(
      m.samples.map(async (s) => {
        const f = path.join(tmp, s.imagePath);
        const buf = await sharp(f).resize(SRC, Math.round(SRC * 1.2)).jpeg({ quality: 95 }).toBuffer();
        fs.writeFileSync(f, buf);
      }),
    );
    const rows = [];
    for (const pixels of ['float32', 'uint8'])
      for (const workers of [0, 1, 2]) {
        const l = new DataLoader({ root: tmp, samples: m.samples }, { batchSize: BATCH, image: { size: SIZE, geometry: 'pad', augment }, workers, seed: 1, pixels });
        await epochRate(l); // warm-up (worker start, JIT, file cache)
        const r = await epochRate(l);
        await l.close();
        rows.push({ source: 'JPEG', pixels, mode: workers === 0 ? 'in-process' : `${workers} worker${workers > 1 ? 's' : ''}`, ...r });
      }
    const shardDir = path.join(tmp, 'shards');
    const tp = process.hrtime.bigint();
    await writeShards(m, { outDir: shardDir, size: SIZE, shardSize: 256 });
    const prepareSeconds = Number(process.hrtime.bigint() - tp) / 1e9;
    const tl = process.hrtime.bigint();
    const shards = loadShards(shardDir);
    const loadSeconds = Number(process.hrtime.bigint() - tl) / 1e9;
    // Shards are in-process only (memory source): interleave the formats over rounds and keep the median,
    // so the float32 / uint8 ratio is measured side by side.
    const ROUNDS = 3;
    for (const [mode, image] of [['in-process (augment)', { size: SIZE, augment }], ['in-process (no augment)', { size: SIZE }]]) {
      const got = { float32: [], uint8: [] };
      for (let r = 0; r < ROUNDS; r++)
        for (const pixels of ['float32', 'uint8']) {
          const l = new DataLoader(shards, { batchSize: BATCH, image, seed: 1, pixels });
          if (r === 0) await epochRate(l);
          got[pixels].push(await epochRate(l));
        }
      for (const pixels of ['float32', 'uint8']) {
        const byIps = got[pixels].slice().sort((a, b) => a.ips - b.ips);
        rows.push({ source: 'shards', pixels, mode, ...byIps[Math.floor(ROUNDS / 2)] });
      }
    }
    // The native conversion of augmented uint8 shard batches, on the CPU (what a GPU does in the step).
    let conversion = null;
    try {
      const { pixelsToImages } = require(path.join(dist, 'models', 'pixels'));
      const l = new DataLoader(shards, { batchSize: BATCH, image: { size: SIZE, augment }, seed: 1, pixels: 'uint8' });
      const batches = [];
      for await (const b of l.epoch(0)) batches.push(b);
      await l.close();
      pixelsToImages(batches[0].images, SIZE); // warm-up
      const c0 = process.cpuUsage();
      const t0 = process.hrtime.bigint();
      let n = 0;
      for (const b of batches) {
        pixelsToImages(b.images, SIZE);
        n += b.n;
      }
      const c = process.cpuUsage(c0);
      conversion = { images: n, msPerImage: Number(process.hrtime.bigint() - t0) / 1e6 / n, cpuMsPerImage: (c.user + c.system) / 1000 / n };
    } catch (e) {
      process.stderr.write(`native conversion not timed (${e.message})\n`);
    }
    const best = Math.max(...rows.filter((r) => r.source === 'JPEG').map((r) => r.ips));
    const find = (source, pixels, mode) => rows.find((r) => r.source === source && r.pixels === pixels && r.mode === mode);
    const jpeg1 = find('JPEG', 'float32', 'in-process').ips;
    const shardIps = find('shards', 'float32', 'in-process (augment)').ips;
    console.log(`\ndata pipeline, ${N} images ${SRC}x${Math.round(SRC * 1.2)} JPEG -> ${SIZE}x${SIZE}, batch ${BATCH}, node ${process.version}, ${os.cpus().length} CPUs (${os.cpus()[0].model})`);
    console.log('source  pixels  mode                      images/s   bytes/img  host CPU ms/img   vs step');
    for (const r of rows)
      console.log(
        `${r.source.padEnd(7)} ${r.pixels.padEnd(7)} ${r.mode.padEnd(25)} ${r.ips.toFixed(1).padStart(8)}   ${String(Math.round(r.bytesPerImage)).padStart(9)}  ${r.cpuMsPerImage.toFixed(3).padStart(15)}   ${Number.isFinite(stepIps) ? (r.ips / stepIps).toFixed(2) + 'x' : 'n/a'}`,
      );
    console.log(`shards vs JPEG (same thread, float32): ${(shardIps / jpeg1).toFixed(1)}x; prepare ${prepareSeconds.toFixed(1)} s (${(N / prepareSeconds).toFixed(0)} img/s), load ${loadSeconds.toFixed(2)} s`);
    for (const mode of ['in-process (augment)', 'in-process (no augment)']) {
      const f = find('shards', 'float32', mode);
      const u = find('shards', 'uint8', mode);
      console.log(
        `shards ${mode}: uint8 / float32 images/s ${(u.ips / f.ips).toFixed(2)}x, host CPU per image ${(f.cpuMsPerImage / u.cpuMsPerImage).toFixed(2)}x less, bytes ${(f.bytesPerImage / u.bytesPerImage).toFixed(0)}x less; ` +
          `cores to feed a ${GPU_IPS} img/s GPU step (from host CPU time per image, which other load inflates less than wall time): ` +
          `${Math.ceil((GPU_IPS * f.cpuMsPerImage) / 1000)} (float32) vs ${Math.ceil((GPU_IPS * u.cpuMsPerImage) / 1000)} (uint8)`,
      );
    }
    if (conversion)
      console.log(
        `native conversion of augmented uint8 batches on the CPU (warp + intensity + normalise, pixelsToImages): ${conversion.msPerImage.toFixed(3)} ms/image wall, ${conversion.cpuMsPerImage.toFixed(3)} ms/image CPU ` +
          `(a GPU does this inside the step; a CPU-only run adds it to the step)`,
      );
    console.log(`train step consumption: ${Number.isFinite(stepIps) ? stepIps.toFixed(1) + ' images/s' : 'n/a (pass --step-ips or write bench/results/trainStep.json {imagesPerSec})'}; best loader/step: ${Number.isFinite(stepIps) ? (best / stepIps).toFixed(2) + 'x' : 'n/a'}`);
    fs.mkdirSync(path.join(__dirname, 'results'), { recursive: true });
    fs.writeFileSync(path.join(__dirname, 'results', 'data.json'), JSON.stringify({ date: new Date().toISOString(), n: N, srcSize: SRC, size: SIZE, batch: BATCH, gpuIps: GPU_IPS, cpus: os.cpus().length, rows, conversion, prepareSeconds, loadSeconds, stepIps: Number.isFinite(stepIps) ? stepIps : null }, null, 2) + '\n');
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
