#!/usr/bin/env node
'use strict';
// Op-by-op profile of one train step, native vs PyTorch on the same libtorch. Both sides run under libtorch's
// legacy autograd profiler (native/bench/step_bench --profile; bench/reference/clip_torch.py "profile"), which
// writes a Chrome trace; this script turns each trace into self time per op and step (an op's time minus the
// ops it called) and prints the ops whose time differs most. The native engine runs twice: with its CPU
// block cache (the default) and without it (CXR_CPU_CACHE_MB=0), which shows what the cache removed.
//
// Usage: node bench/profileStep.js [--models test-vit,ViT-B/32,RN50] [--steps 3] [--threads 1] [--top 12]
//        [--build build]
// Needs `npm run build` (step_bench is built with the addon) and python3-torch for the PyTorch side.
// Writes bench/results/profileStep.json. The profiler's own cost is in every figure: compare the columns,
// not these totals with bench/trainStep.js.
const { spawnSync, execSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { arg } = require('./common');

const root = path.resolve(__dirname, '..');
const { resolveModelConfig } = require(path.join(root, 'dist/models/registry.js'));

const models = arg('models', 'test-vit,ViT-B/32,RN50').split(',');
const steps = Number(arg('steps', '3'));
const threads = Number(arg('threads', '1'));
const top = Number(arg('top', '12'));
const buildDir = path.resolve(root, arg('build', 'build'));
const python = fs.existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
const L = 32;

/** Self time (µs) and calls per op name of a legacy-profiler Chrome trace. Nesting is per thread. */
function selfTimes(file) {
  const events = JSON.parse(fs.readFileSync(file, 'utf8')).filter((e) => e.ph === 'X');
  const byThread = new Map();
  for (const e of events) {
    const k = `${e.pid}/${e.tid}`;
    if (!byThread.has(k)) byThread.set(k, []);
    byThread.get(k).push({ name: e.name, ts: Number(e.ts), dur: Number(e.dur), self: Number(e.dur) });
  }
  const ops = new Map();
  for (const list of byThread.values()) {
    list.sort((a, b) => a.ts - b.ts || b.dur - a.dur);
    const stack = [];
    for (const e of list) {
      while (stack.length && stack[stack.length - 1].ts + stack[stack.length - 1].dur <= e.ts) stack.pop();
      if (stack.length) stack[stack.length - 1].self -= e.dur;
      stack.push(e);
    }
    for (const e of list) {
      const o = ops.get(e.name) ?? { us: 0, calls: 0 };
      o.us += e.self;
      o.calls += 1;
      ops.set(e.name, o);
    }
  }
  return ops;
}

function perStep(ops) {
  const out = {};
  for (const [name, o] of ops) out[name] = { ms: o.us / 1000 / steps, calls: o.calls / steps };
  return out;
}

function runNative(model, cache, trace) {
  const bin = path.join(buildDir, 'step_bench');
  const cfg = path.join(root, 'native/bench/models', `${model.replace(/\//g, '-')}.cfg`);
  const env = { ...process.env, OMP_NUM_THREADS: String(threads), OMP_WAIT_POLICY: 'passive' };
  if (!cache) env.CXR_CPU_CACHE_MB = '0';
  const p = spawnSync(bin, ['--model', cfg, '--length', String(L), '--steps', String(steps), '--warmup', '1', '--threads', String(threads), '--profile', trace], { encoding: 'utf8', env });
  if (p.status !== 0) throw new Error(`step_bench failed: ${p.stderr || p.error}`);
  return perStep(selfTimes(trace));
}

function runTorch(model, trace) {
  const args = { config: resolveModelConfig(model), batch: 8, steps, threads, length: L, warmup: 1, profile: trace };
  const env = { ...process.env, OMP_NUM_THREADS: String(threads), OMP_WAIT_POLICY: 'passive' };
  const p = spawnSync(python, [path.join(__dirname, 'reference/clip_torch.py'), JSON.stringify(args)], { encoding: 'utf8', env });
  if (p.status !== 0) return null;
  return perStep(selfTimes(trace));
}

const total = (t) => (t ? Object.values(t).reduce((s, o) => s + o.ms, 0) : NaN);

function main() {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cxr-profile-'));
  const results = [];
  const fmt = (x) => (Number.isFinite(x) ? x.toFixed(1) : 'n/a');
  let commit = 'unknown';
  try {
    commit = execSync('git rev-parse --short HEAD', { cwd: root, encoding: 'utf8' }).trim();
  } catch {}
  const machine = `${os.cpus()[0].model}, ${os.cpus().length} vCPU`;
  console.log(`op self time per train step (ms), legacy autograd profiler; batch 8, text length ${L}; ${machine}; threads ${threads}; ${steps} steps; commit ${commit}`);
  for (const model of models) {
    const nat = runNative(model, true, path.join(tmp, 'native.json'));
    const raw = runNative(model, false, path.join(tmp, 'native-nocache.json'));
    const ref = runTorch(model, path.join(tmp, 'torch.json'));
    const names = new Set([...Object.keys(nat), ...Object.keys(raw), ...Object.keys(ref ?? {})]);
    const rows = [...names].map((name) => {
      const n = nat[name]?.ms ?? 0;
      const r = raw[name]?.ms ?? 0;
      const t = ref ? ref[name]?.ms ?? 0 : NaN;
      return { op: name, nativeMs: n, nativeCalls: nat[name]?.calls ?? 0, noCacheMs: r, torchMs: t, torchCalls: ref ? ref[name]?.calls ?? 0 : NaN };
    });
    const byGap = (key) => [...rows].sort((a, b) => Math.abs(b[key]) - Math.abs(a[key]));
    rows.forEach((r) => {
      r.nativeMinusTorch = r.nativeMs - r.torchMs;
      r.noCacheMinusTorch = r.noCacheMs - r.torchMs;
    });
    const ordered = ref ? byGap('noCacheMinusTorch') : byGap('noCacheMs');
    console.log(`\n${model}: total self time per step: native ${fmt(total(nat))}, native without the CPU cache ${fmt(total(raw))}, PyTorch ${fmt(total(ref))}`);
    console.log('| op | native ms (calls) | native, no cache ms | PyTorch ms (calls) | no cache − PyTorch | native − PyTorch |');
    console.log('|---|---|---|---|---|---|');
    for (const r of ordered.slice(0, top))
      console.log(`| ${r.op} | ${fmt(r.nativeMs)} (${Math.round(r.nativeCalls)}) | ${fmt(r.noCacheMs)} | ${fmt(r.torchMs)} (${Number.isFinite(r.torchCalls) ? Math.round(r.torchCalls) : 'n/a'}) | ${fmt(r.noCacheMinusTorch)} | ${fmt(r.nativeMinusTorch)} |`);
    results.push({ model, totals: { native: total(nat), nativeNoCache: total(raw), torch: total(ref) }, ops: ordered });
  }
  fs.rmSync(tmp, { recursive: true, force: true });
  fs.mkdirSync(path.join(__dirname, 'results'), { recursive: true });
  const meta = { date: new Date().toISOString(), machine, threads, steps, commit, load: os.loadavg() };
  fs.writeFileSync(path.join(__dirname, 'results/profileStep.json'), JSON.stringify({ meta, results }, null, 2) + '\n');
}

main();
