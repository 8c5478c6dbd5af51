#!/usr/bin/env node
'use strict';
// Data-parallel benchmark: pairs/s of `cxr-train train` with 1 process vs `--nproc 2` (Gloo over loopback)
// on the synthetic data, and the share of the step spent waiting on collectives (embedding all-gather +
// the part of the gradient all-reduce not hidden behind backward). Same global batch in every row.
// Prints a table; writes bench/results/distributed.json.
// Usage: node bench/distributed.js [--model test-vit] [--batch 32] [--steps 40] [--rounds 2]. Needs `npm run build`.
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { arg, median } = require('./common');

const root = path.resolve(__dirname, '..');
const cli = path.join(root, 'bin/cxr-train.js');
const model = arg('model', 'test-vit');
const batch = Number(arg('batch', '32'));
const steps = Number(arg('steps', '40'));
const rounds = Number(arg('rounds', '2'));
const warm = Math.min(5, Math.floor(steps / 4));
const cores = os.cpus().length;

const configs = [
  { name: `1 process × ${cores} threads`, nproc: 1, threads: cores },
  { name: '1 process × 1 thread', nproc: 1, threads: 1 },
  { name: `2 processes × ${Math.max(1, Math.floor(cores / 2))} thread(s)`, nproc: 2, threads: Math.max(1, Math.floor(cores / 2)) },
];

function runOnce(c) {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'cxr-bench-dist-'));
  try {
    const args = [cli, 'train', '--out', out, '--model', model, '--steps', String(steps), '--batch-size', String(batch), '--device', 'cpu',
      '--log', 'none', '--set', 'eval.atStart=false', '--set', 'eval.everySteps=0', '--set', 'eval.maxSamples=16',
      '--set', 'checkpoint.everySteps=0', '--set', 'data.workers=0'];
    if (c.nproc > 1) args.push('--nproc', String(c.nproc));
    const p = spawnSync(process.execPath, args, { cwd: root, encoding: 'utf8', env: { ...process.env, CXR_THREADS: String(c.threads) } });
    if (p.status !== 0) throw new Error(`${c.name}: exit ${p.status}\n${p.stderr}`);
    const ev = fs.readFileSync(path.join(out, 'metrics.jsonl'), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l)).filter((e) => e.event === 'step').slice(warm);
    const ms = ev.reduce((a, e) => a + e.msStep + e.msData, 0);
    const pairs = ev.reduce((a, e) => a + e.batch, 0);
    const comm = ev.reduce((a, e) => a + (e.msComm || 0), 0);
    const step = ev.reduce((a, e) => a + e.msStep, 0);
    return { pairsPerSec: (1000 * pairs) / ms, msPerStep: ms / ev.length, commShare: step > 0 ? comm / step : 0, msCommPerStep: comm / ev.length };
  } finally {
    fs.rmSync(out, { recursive: true, force: true });
  }
}

const results = configs.map((c) => ({ ...c, runs: [] }));
for (let r = 0; r < rounds; r++) for (const res of results) res.runs.push(runOnce(res)); // interleaved rounds
const rows = results.map((r) => ({
  config: r.name,
  nproc: r.nproc,
  threads: r.threads,
  pairsPerSec: median(r.runs.map((x) => x.pairsPerSec)),
  msPerStep: median(r.runs.map((x) => x.msPerStep)),
  msCommPerStep: median(r.runs.map((x) => x.msCommPerStep)),
  commShare: median(r.runs.map((x) => x.commShare)),
}));
let commit = '';
try {
  commit = spawnSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: root, encoding: 'utf8' }).stdout.trim();
} catch {}
const base = rows[0].pairsPerSec;
console.log(`data-parallel train step: ${model}, global batch ${batch}, ${steps} steps (first ${warm} skipped), median of ${rounds} interleaved rounds`);
console.log(`machine: ${os.cpus()[0].model}, ${cores} logical CPUs; commit ${commit}`);
console.log('| configuration | pairs/s | ms/step | ms waiting on collectives/step | share of the step | vs first row |');
console.log('|---|---:|---:|---:|---:|---:|');
for (const r of rows)
  console.log(`| ${r.config} | ${r.pairsPerSec.toFixed(1)} | ${r.msPerStep.toFixed(1)} | ${r.msCommPerStep.toFixed(1)} | ${(100 * r.commShare).toFixed(1)}% | ${(r.pairsPerSec / base).toFixed(2)}x |`);
fs.mkdirSync(path.join(root, 'bench/results'), { recursive: true });
fs.writeFileSync(path.join(root, 'bench/results/distributed.json'), JSON.stringify({ model, batch, steps, rounds, commit, cpus: cores, rows, date: new Date().toISOString() }, null, 2) + '\n');
