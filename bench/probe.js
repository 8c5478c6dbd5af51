#!/usr/bin/env node
'use strict';
/**
 * Benchmark of the linear-probe solver (lib/eval/probe): one label, N training rows × D dimensions
 * (random unit-norm features with a planted direction), the default C grid with warm starts, selection on
 * a validation set of N/4 rows. Needs the compiled library: `npx tsc -p tsconfig.json` first (reads dist/).
 *
 *   N=20000 D=512 node bench/probe.js
 *
 * Prints the time per C and in all, the iterations, and the load average; writes bench/results/probe-<timestamp>.json.
 */
const fs = require('node:fs');
const path = require('node:path');
const os = require('node:os');

let protocol;
try {
  protocol = require('../dist/eval/probe/protocol');
} catch (e) {
  console.error('bench/probe.js: build first (npx tsc -p tsconfig.json): ' + e.message);
  process.exit(1);
}

const N = Number(process.env.N || 20000);
const D = Number(process.env.D || 512);

function lcg(seed) {
  let x = seed >>> 0 || 1;
  return () => ((x = (Math.imul(x, 1664525) + 1013904223) >>> 0) / 4294967296);
}

function make(n, seed) {
  const r = lcg(seed);
  const gauss = () => Math.sqrt(-2 * Math.log(r() + 1e-12)) * Math.cos(2 * Math.PI * r());
  const data = new Float32Array(n * D);
  const y = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let ss = 0;
    let s = 0;
    for (let k = 0; k < D; k++) {
      const v = gauss();
      data[i * D + k] = v;
      ss += v * v;
      if (k < 8) s += v;
    }
    y[i] = s / Math.sqrt(8) + gauss() > 1 ? 1 : 0;
    const inv = 1 / Math.sqrt(ss);
    for (let k = 0; k < D; k++) data[i * D + k] *= inv;
  }
  return { X: { data, n, d: D }, y };
}

const train = make(N, 1);
const val = make(Math.max(50, N >> 2), 2);
const all = (n) => Int32Array.from({ length: n }, (_, i) => i);
const times = [];
let t = process.hrtime.bigint();
const t0 = t;
const r = protocol.selectAndFit(train.X, train.y, all(N), { X: val.X, rows: all(val.X.n), y: val.y }, protocol.DEFAULT_C_GRID, {
  onFit: () => {
    const now = process.hrtime.bigint();
    times.push(Number(now - t) / 1e6);
    t = now;
  },
});
const total = Number(process.hrtime.bigint() - t0) / 1e6;
console.log(`probe solver benchmark: ${N} rows x ${D} dims, C grid of ${r.grid.length} (node ${process.version}, ${os.cpus()[0].model}, load ${os.loadavg()[0].toFixed(1)})`);
console.log('C          iterations  converged  ms      val log-loss');
r.grid.forEach((g, i) => console.log(`${String(g.C).padEnd(10)} ${String(g.iterations).padEnd(11)} ${String(g.converged).padEnd(10)} ${times[i].toFixed(0).padEnd(7)} ${g.valLogLoss.toFixed(5)}`));
console.log(`total ${(total / 1000).toFixed(2)} s; C kept ${r.C}`);
const dir = path.join(__dirname, 'results');
fs.mkdirSync(dir, { recursive: true });
const file = path.join(dir, `probe-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
fs.writeFileSync(file, JSON.stringify({ bench: 'probe', n: N, d: D, node: process.version, cpu: os.cpus()[0].model, load: os.loadavg(), totalMs: total, grid: r.grid.map((g, i) => ({ ...g, ms: times[i] })) }, null, 2) + '\n');
console.log(`wrote ${path.relative(process.cwd(), file)}`);
