#!/usr/bin/env node
'use strict';
// Train-step benchmark, two tables.
// 1. Native (this package) vs the same model in PyTorch (Debian's python3-torch, the same libtorch
//    underneath), same threads, interleaved rounds, medians. PyTorch runs as installed (glibc malloc) and,
//    when libjemalloc2 is installed, also with LD_PRELOAD=libjemalloc (PyTorch's CPU tuning advice; the
//    native engine keeps its own CPU block cache, native/include/cxr/cpu_cache.h).
// 2. The whole train loop (Trainer.fit on the demo's synthetic data and model: loading, augmentation,
//    sentence sampling, tokenising, the step) against the bare native step on the loop's own model and a
//    batch it trained on, in pairs/s, interleaved rounds.
// Usage: node bench/trainStep.js [--threads 1,2] [--rounds R] [--models a,b] [--loop-steps N] [--no-loop]
//        [--no-step]
// Prints the tables; writes bench/results/trainStep.json. Needs `npm run build`. Rows whose PyTorch side
// cannot run (no python3-torch) are reported native-only.
const { spawnSync, execSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { arg, batchFor, median } = require('./common');

const root = path.resolve(__dirname, '..');
const { createModel } = require(path.join(root, 'dist/models/ClipModel.js'));
const { capabilities, setThreads } = require(path.join(root, 'dist/native/index.js'));
const { resolveModelConfig } = require(path.join(root, 'dist/models/registry.js'));

const threadList = arg('threads', '1,2').split(',').map(Number);
const rounds = Number(arg('rounds', '2'));
const loopSteps = Number(arg('loop-steps', '120'));
const jemalloc = ['/usr/lib/x86_64-linux-gnu/libjemalloc.so.2', '/usr/lib/aarch64-linux-gnu/libjemalloc.so.2'].find((f) => fs.existsSync(f)) ?? null;
const rows = [
  { model: 'test-vit', batch: 8, steps: 10 },
  { model: 'ViT-B/32', batch: 8, steps: 3 },
  { model: 'RN50', batch: 8, steps: 3 },
].filter((r) => !arg('models') || arg('models').split(',').includes(r.model));
const L = 32;
const python = fs.existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
const haveTorch = spawnSync(python, ['-c', 'import torch'], { stdio: 'ignore' }).status === 0;

function torchRef(cfg, row, threads, preload) {
  const env = { ...process.env, OMP_NUM_THREADS: String(threads), OMP_WAIT_POLICY: 'passive' };
  if (preload) env.LD_PRELOAD = preload;
  const p = spawnSync(
    python,
    [path.join(__dirname, 'reference/clip_torch.py'), JSON.stringify({ config: cfg, batch: row.batch, steps: row.steps + 1, threads, length: L })],
    { encoding: 'utf8', env },
  );
  if (p.status === 0) return JSON.parse(p.stdout.trim().split('\n').pop()).ms.slice(1);
  process.stderr.write(p.stderr);
  return [];
}

async function stepRows(threads) {
  setThreads(threads);
  process.env.OMP_NUM_THREADS = String(threads);
  const results = [];
  for (const row of rows) {
    const cfg = resolveModelConfig(row.model);
    const model = createModel(row.model, { device: 'cpu', seed: 0 });
    model.configureOptimizer({ kind: 'adamw', weightDecay: 0.2 });
    const batch = batchFor(cfg.vision.imageSize, row.batch, L);
    await model.trainStep(batch, { lr: 1e-5 }); // warm-up
    const nat = [];
    const ref = [];
    const refJe = [];
    for (let r = 0; r < rounds; r++) {
      for (let i = 0; i < row.steps; i++) nat.push((await model.trainStep(batch, { lr: 1e-5 })).msTotal);
      if (haveTorch) {
        ref.push(...torchRef(cfg, row, threads, null));
        if (jemalloc) refJe.push(...torchRef(cfg, row, threads, jemalloc));
      }
    }
    model.dispose();
    const n = median(nat);
    const t = ref.length ? median(ref) : NaN;
    const tj = refJe.length ? median(refJe) : NaN;
    results.push({
      threads,
      model: row.model,
      batch: row.batch,
      imageSize: cfg.vision.imageSize,
      nativeMs: n,
      nativeImagesPerSec: (row.batch * 1000) / n,
      torchMs: t,
      torchImagesPerSec: (row.batch * 1000) / t,
      ratio: n / t,
      torchJemallocMs: tj,
      ratioJemalloc: n / tj,
      nativeSteps: nat.length,
      torchSteps: ref.length,
    });
  }
  return results;
}

/**
 * The train loop vs the bare step, on the demo's model and data (1200 synthetic images, ~960 for training:
 * 30 steps per epoch at batch 32). One Trainer (no evaluation, no periodic checkpoints) runs `loopSteps`
 * steps per round; pairs/s is the wall time between step events, taken apart for the first epoch (steps
 * 6 on: every image decoded) and the later ones (decoded images come from the loader's cache). The bare
 * step is measured inside the same run, so that both see the same machine (whose speed drifts by 10-20 %
 * over minutes here): in the later epochs, every 10th step is preceded by 3 bare steps on the previous
 * batch with the loop's step options, timed apart and taken out of the loop's time. Each round's ratio is
 * against its own bare steps; the table gives the medians of the rounds' rates and ratios.
 */
async function loopRows(threads) {
  const { generateSynthetic } = require(path.join(root, 'dist/data/synthetic/index.js'));
  const { resolveTrainConfig } = require(path.join(root, 'dist/train/config.js'));
  const { buildRunData } = require(path.join(root, 'dist/train/data.js'));
  const { Trainer } = require(path.join(root, 'dist/train/Trainer.js'));
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cxr-loop-bench-'));
  const out = [];
  try {
    const size = resolveModelConfig('test-vit').vision.imageSize;
    await generateSynthetic({ n: 1200, seed: 0, size, outDir: path.join(tmp, 'data') });
    const first = [];
    const later = [];
    const bare = [];
    let info = null;
    const rate = (ev) => (ev.length < 2 ? NaN : (1000 * ev.slice(1).reduce((a, e) => a + e.pairs, 0)) / (ev[ev.length - 1].t - ev[0].t));
    for (let r = 0; r < rounds; r++) {
      const config = resolveTrainConfig([
        {
          source: 'bench',
          config: {
            outDir: path.join(tmp, `run${r}`),
            model: { name: 'test-vit' },
            data: { dataset: 'mimic-cxr', root: path.join(tmp, 'data'), trainSplit: 'train', valSplit: 'validate' },
            maxSteps: loopSteps,
            device: 'cpu',
            threads,
            seed: r,
            eval: { everySteps: 0, atStart: false },
            checkpoint: { everySteps: 0 },
            log: { format: 'none' },
          },
        },
      ]);
      const data = await buildRunData(config);
      const trainer = new Trainer(config, { data });
      await trainer.setup();
      const model = trainer.model;
      let lastBatch = null;
      let lastOpts = null;
      let epoch0 = null;
      let calls = 0;
      // Bare blocks inside the later epochs: [start, end] times, pairs stepped.
      const blocks = [];
      const step = model.trainStep.bind(model);
      model.trainStep = async (b, o) => {
        epoch0 ??= b.epoch;
        // Every 10th step of the later epochs: 3 bare steps on the previous batch first. The loader is ahead
        // there (its prefetch queue full), so it does no work during the block and the loop's steps around
        // it see the same machine state.
        if (b.epoch !== epoch0 && lastBatch && calls++ % 10 === 0) {
          const t0 = performance.now();
          for (let i = 0; i < 3; i++) await step(lastBatch, lastOpts);
          blocks.push({ t0, t1: performance.now(), pairs: 3 * lastBatch.n });
        }
        lastBatch = b;
        lastOpts = o;
        return step(b, o);
      };
      const events = [];
      trainer.on('step', (e) => events.push({ t: performance.now(), pairs: e.batch, epoch: e.epoch, step: e.step }));
      await trainer.fit();
      first.push(rate(events.filter((e) => e.epoch === epoch0 && e.step >= 5)));
      const lat = events.filter((e) => e.epoch !== epoch0);
      const inside = blocks.filter((k) => k.t0 >= lat[0].t && k.t1 <= lat[lat.length - 1].t);
      const bareMs = inside.reduce((a, k) => a + (k.t1 - k.t0), 0);
      later.push((1000 * lat.slice(1).reduce((a, e) => a + e.pairs, 0)) / (lat[lat.length - 1].t - lat[0].t - bareMs));
      bare.push((1000 * blocks.reduce((a, k) => a + k.pairs, 0)) / blocks.reduce((a, k) => a + (k.t1 - k.t0), 0));
      model.trainStep = step;
      info = { batch: config.batchSize, textLength: lastBatch.length, workers: config.data.workers, pixels: config.data.pixels, cacheMB: config.data.cacheMB };
      await trainer.dispose();
    }
    out.push({
      threads,
      model: 'test-vit',
      ...info,
      firstEpochPairsPerSec: median(first),
      laterEpochsPairsPerSec: median(later),
      barePairsPerSec: median(bare),
      ratioFirstEpoch: median(first.map((f, i) => f / bare[i])),
      ratioLaterEpochs: median(later.map((l, i) => l / bare[i])),
      rounds: { first, later, bare },
    });
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  return out;
}

async function main() {
  const caps = capabilities();
  const results = [];
  const loops = [];
  for (const threads of threadList) {
    if (!process.argv.includes('--no-step')) results.push(...(await stepRows(threads)));
    if (!process.argv.includes('--no-loop')) loops.push(...(await loopRows(threads)));
  }
  let commit = 'unknown';
  try {
    commit = execSync('git rev-parse --short HEAD', { cwd: root, encoding: 'utf8' }).trim();
  } catch {}
  const meta = {
    date: new Date().toISOString(),
    machine: `${os.cpus()[0].model}, ${os.cpus().length} vCPU, ${Math.round(os.totalmem() / 2 ** 30)} GiB`,
    threads: threadList,
    rounds,
    load: os.loadavg(),
    commit,
    torch: caps.torchVersion,
    blas: caps.blas,
    reference: haveTorch ? 'python3-torch (same libtorch)' : 'python3-torch not installed: native only',
    jemalloc,
  };
  const fmt = (x, d = 1) => (Number.isFinite(x) ? x.toFixed(d) : 'n/a');
  const load = meta.load.map((x) => x.toFixed(2)).join(' ');
  if (results.length) {
    console.log(`train step (forward + loss + backward + AdamW), median ms of ${rounds} interleaved rounds; ${meta.machine}; libtorch ${caps.torchVersion}; commit ${commit}; load at the end ${load}`);
    console.log('| threads | model | batch | px | native ms | native img/s | PyTorch ms | PyTorch img/s | native/PyTorch | PyTorch+jemalloc ms | native/(PyTorch+jemalloc) |');
    console.log('|---|---|---|---|---|---|---|---|---|---|---|');
    for (const r of results)
      console.log(`| ${r.threads} | ${r.model} | ${r.batch} | ${r.imageSize} | ${fmt(r.nativeMs)} | ${fmt(r.nativeImagesPerSec)} | ${fmt(r.torchMs)} | ${fmt(r.torchImagesPerSec)} | ${fmt(r.ratio, 2)} | ${fmt(r.torchJemallocMs)} | ${fmt(r.ratioJemalloc, 2)} |`);
  }
  if (loops.length) {
    console.log(`\ntrain loop (Trainer.fit: loading, augmentation, sentence sampling, tokenising, step) vs the bare step, pairs/s, medians of ${rounds} rounds of ${loopSteps} steps; each ratio is the median of the rounds' ratios to the bare steps interleaved with the loop`);
    console.log('| threads | model | batch | loader workers | pixels | decoded-image cache MiB | loop, 1st epoch | loop, later epochs | bare step | 1st epoch/bare | later/bare |');
    console.log('|---|---|---|---|---|---|---|---|---|---|---|');
    for (const r of loops)
      console.log(`| ${r.threads} | ${r.model} | ${r.batch} | ${r.workers} | ${r.pixels} | ${r.cacheMB} | ${fmt(r.firstEpochPairsPerSec)} | ${fmt(r.laterEpochsPairsPerSec)} | ${fmt(r.barePairsPerSec)} | ${fmt(r.ratioFirstEpoch, 3)} | ${fmt(r.ratioLaterEpochs, 3)} |`);
  }
  fs.mkdirSync(path.join(__dirname, 'results'), { recursive: true });
  fs.writeFileSync(path.join(__dirname, 'results/trainStep.json'), JSON.stringify({ meta, results, loops }, null, 2) + '\n');
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
