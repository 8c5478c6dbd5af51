#!/usr/bin/env node
'use strict';
/**
 * Benchmark of the evaluation metrics: bootstrap CIs (AUROC, AUPRC, F1, MCC per label + macro) for
 * 500 samples x 14 labels x 1000 resamples, the size of the CheXpert test-set benchmark.
 * Needs the compiled library: `npx tsc -p tsconfig.json` first (reads dist/).
 * Prints a table and writes bench/results/metrics-<timestamp>.json.
 */
const fs = require('node:fs');
const path = require('node:path');
const os = require('node:os');

let score;
let metrics;
try {
  score = require('../dist/eval/score');
  metrics = require('../dist/eval/metrics');
} catch (e) {
  console.error('bench/metrics.js: build first (npx tsc -p tsconfig.json): ' + e.message);
  process.exit(1);
}

const N = Number(process.env.N || 500);
const L = Number(process.env.LABELS || 14);
const B = Number(process.env.RESAMPLES || 1000);
const REPEATS = Number(process.env.REPEATS || 5);

function lcg(seed) {
  let x = seed >>> 0 || 1;
  return () => ((x = (Math.imul(x, 1664525) + 1013904223) >>> 0) / 4294967296);
}

function makeTables(withPatients) {
  const r = lcg(12345);
  const labels = Array.from({ length: L }, (_, j) => `L${j}`);
  const th = ['id', ...(withPatients ? ['patient_id'] : []), ...labels];
  const ph = ['id', ...labels];
  const trows = [];
  const prows = [];
  for (let i = 0; i < N; i++) {
    const t = [`s${i}`, ...(withPatients ? [`p${Math.floor(i / 2)}`] : [])];
    const p = [`s${i}`];
    for (let j = 0; j < L; j++) {
      const u = r();
      const y = u < 0.05 ? -1 : r() < 0.1 + 0.02 * j ? 1 : 0;
      t.push(String(y));
      p.push(String(Math.round((r() * 0.7 + (y === 1 ? 0.3 : 0)) * 1000) / 1000));
    }
    trows.push(t);
    prows.push(p);
  }
  return {
    truth: { header: th, rows: trows, source: 'truth' },
    pred: { header: ph, rows: prows, source: 'pred' },
  };
}

function time(fn) {
  const times = [];
  let out;
  fn(); // warm-up (JIT)
  for (let k = 0; k < REPEATS; k++) {
    const t0 = process.hrtime.bigint();
    out = fn();
    times.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  times.sort((a, b) => a - b);
  return { medianMs: times[Math.floor(times.length / 2)], minMs: times[0], out };
}

const cases = [];
const plain = makeTables(false);
const clustered = makeTables(true);
const readers = [1, 2, 3].map((k) => {
  const r = lcg(999 + k);
  return {
    name: `reader${k}`,
    table: {
      header: plain.pred.header,
      rows: plain.truth.rows.map((row) => [row[0], ...row.slice(1).map((v) => String((v === '1') !== r() < 0.2 ? 1 : 0))]),
      source: `reader${k}`,
    },
  };
});

cases.push(['sort + point metrics (no bootstrap)', time(() => score.scoreTables(plain, { bootstrap: 0, curves: false }))]);
cases.push([`bootstrap ${B} by row`, time(() => score.scoreTables(plain, { bootstrap: B, seed: 1, curves: false }))]);
cases.push([`bootstrap ${B} by patient (2 studies each)`, time(() => score.scoreTables(clustered, { bootstrap: B, seed: 1, curves: false }))]);
cases.push([`bootstrap ${B} + 3 readers (paired deltas)`, time(() => score.scoreTables({ ...plain, readers }, { bootstrap: B, seed: 1, curves: false }))]);
// One label, one metric, for scale: sort per call vs the sorted sweep.
const y = plain.truth.rows.map((r) => Number(r[1]));
const s = plain.pred.rows.map((r) => Number(r[1]));
cases.push(['AUROC of one label (sort + sweep), x1000', time(() => { let a = 0; for (let k = 0; k < 1000; k++) a += metrics.auroc(y, s); return a; })]);

const rows = cases.map(([name, t]) => ({ name, medianMs: +t.medianMs.toFixed(2), minMs: +t.minMs.toFixed(2) }));
console.log(`metrics benchmark: ${N} samples x ${L} labels, ${B} resamples, median of ${REPEATS} (node ${process.version}, ${os.cpus()[0].model}, ${os.cpus().length} cpus)`);
const w = Math.max(...rows.map((r) => r.name.length));
console.log('case'.padEnd(w) + '  median ms     min ms');
for (const r of rows) console.log(r.name.padEnd(w) + '  ' + String(r.medianMs).padStart(9) + '  ' + String(r.minMs).padStart(9));
const macro = cases[1][1].out.macro;
console.log(`(sanity: macro AUROC ${macro.auroc.toFixed(4)} [${macro.ci.auroc.lo.toFixed(4)}, ${macro.ci.auroc.hi.toFixed(4)}])`);

const dir = path.join(__dirname, 'results');
fs.mkdirSync(dir, { recursive: true });
const file = path.join(dir, `metrics-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
fs.writeFileSync(file, JSON.stringify({ bench: 'metrics', n: N, labels: L, resamples: B, repeats: REPEATS, node: process.version, cpu: os.cpus()[0].model, cpus: os.cpus().length, date: new Date().toISOString(), rows }, null, 2) + '\n');
console.log(`wrote ${path.relative(process.cwd(), file)}`);
