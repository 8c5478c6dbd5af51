#!/usr/bin/env node
'use strict';
// Train-step benchmark: native (this package) vs the same model in PyTorch (Debian's python3-torch, the same
// libtorch underneath), same threads, interleaved rounds, medians. Prints a table; writes
// bench/results/trainStep.json. Usage: node bench/trainStep.js [--threads N] [--rounds R] [--models a,b]
// Needs `npm run build`. Rows whose PyTorch side cannot run (no python3-torch) are reported native-only.
const { spawnSync, execSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { arg, batchFor, median } = require('./common');

const root = path.resolve(__dirname, '..');
const { createModel } = require(path.join(root, 'dist/models/ClipModel.js'));
const { capabilities, setThreads } = require(path.join(root, 'dist/native/index.js'));
const { resolveModelConfig } = require(path.join(root, 'dist/models/registry.js'));

const threads = Number(arg('threads', '1'));
const rounds = Number(arg('rounds', '2'));
const rows = [
  { model: 'test-vit', batch: 8, steps: 10 },
  { model: 'ViT-B/32', batch: 8, steps: 3 },
  { model: 'RN50', batch: 8, steps: 3 },
].filter((r) => !arg('models') || arg('models').split(',').includes(r.model));
const L = 32;
const python = fs.existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
const haveTorch = spawnSync(python, ['-c', 'import torch'], { stdio: 'ignore' }).status === 0;

async function main() {
  setThreads(threads);
  process.env.OMP_NUM_THREADS = String(threads);
  const caps = capabilities();
  const results = [];
  for (const row of rows) {
    const cfg = resolveModelConfig(row.model);
    const model = createModel(row.model, { device: 'cpu', seed: 0 });
    model.configureOptimizer({ kind: 'adamw', weightDecay: 0.2 });
    const batch = batchFor(cfg.vision.imageSize, row.batch, L);
    await model.trainStep(batch, { lr: 1e-5 }); // warm-up
    const nat = [];
    const ref = [];
    for (let r = 0; r < rounds; r++) {
      for (let i = 0; i < row.steps; i++) nat.push((await model.trainStep(batch, { lr: 1e-5 })).msTotal);
      if (haveTorch) {
        const p = spawnSync(
          python,
          [path.join(__dirname, 'reference/clip_torch.py'), JSON.stringify({ config: cfg, batch: row.batch, steps: row.steps + 1, threads, length: L })],
          { encoding: 'utf8', env: { ...process.env, OMP_WAIT_POLICY: 'passive' } },
        );
        if (p.status === 0) ref.push(...JSON.parse(p.stdout.trim().split('\n').pop()).ms.slice(1));
        else process.stderr.write(p.stderr);
      }
    }
    model.dispose();
    const n = median(nat);
    const t = ref.length ? median(ref) : NaN;
    results.push({
      model: row.model,
      batch: row.batch,
      imageSize: cfg.vision.imageSize,
      nativeMs: n,
      nativeImagesPerSec: (row.batch * 1000) / n,
      torchMs: t,
      torchImagesPerSec: (row.batch * 1000) / t,
      ratio: n / t,
      nativeSteps: nat.length,
      torchSteps: ref.length,
    });
  }
  let commit = 'unknown';
  try {
    commit = execSync('git rev-parse --short HEAD', { cwd: root, encoding: 'utf8' }).trim();
  } catch {}
  const meta = {
    date: new Date().toISOString(),
    machine: `${os.cpus()[0].model}, ${os.cpus().length} vCPU, ${Math.round(os.totalmem() / 2 ** 30)} GiB`,
    threads,
    rounds,
    commit,
    torch: caps.torchVersion,
    blas: caps.blas,
    reference: haveTorch ? 'python3-torch (same libtorch)' : 'python3-torch not installed: native only',
  };
  const fmt = (x, d = 1) => (Number.isFinite(x) ? x.toFixed(d) : 'n/a');
  console.log(`train step (forward + loss + backward + AdamW), median ms; ${meta.machine}; threads ${threads}; commit ${commit}`);
  console.log('| model | batch | px | native ms | native img/s | PyTorch ms | PyTorch img/s | native/PyTorch |');
  console.log('|---|---|---|---|---|---|---|---|');
  for (const r of results)
    console.log(`| ${r.model} | ${r.batch} | ${r.imageSize} | ${fmt(r.nativeMs)} | ${fmt(r.nativeImagesPerSec)} | ${fmt(r.torchMs)} | ${fmt(r.torchImagesPerSec)} | ${fmt(r.ratio, 2)} |`);
  fs.mkdirSync(path.join(__dirname, 'results'), { recursive: true });
  fs.writeFileSync(path.join(__dirname, 'results/trainStep.json'), JSON.stringify({ meta, results }, null, 2) + '\n');
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
