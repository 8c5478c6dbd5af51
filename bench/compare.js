#!/usr/bin/env node
'use strict';
/**
 * Side-by-side benchmark: the native trainer vs the TensorFlow.js variant (lib/tfjs) on the same model
 * config and the same batch. Each implementation runs in its own child process (so peak RSS is
 * attributable), all children of a model are alive together and are driven in interleaved rounds
 * (native step, tfjs-wasm step, tfjs-cpu step, native step, ...) so that machine noise hits them alike.
 * Reports medians and min-max of ms per train step (forward + loss + backward + AdamW), images/s, the
 * ratio to native, inference (encode images) throughput and peak RSS. Prints a table and writes JSON.
 *
 * Usage: npx tsc -p tsconfig.json && node bench/compare.js
 *          [--models test-vit,small-vit,vit-b-32] [--rounds 5] [--threads 1] [--impls native,tfjs-wasm,tfjs-cpu]
 *          [--json bench/results/compare-<time>.json]
 * Native runs with --threads libtorch threads (default 1: tfjs-wasm is single-threaded in Node).
 * tfjs-cpu (the pure-JS backend) runs for test-vit only. ViT-B/32 rows run at most 3 rounds. A child that
 * fails (e.g. the 4 GiB wasm32 heap aborting, ../shared/design/BUILD-NOTES.md §4c) is reported in the table.
 */
const { fork } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { arg, batchFor, median } = require('./common');

const root = path.resolve(__dirname, '..');
const dist = (p) => path.join(root, 'dist', p);
const L = 32;

/** small-vit: the "small ViT" of the issue (width 256, depth 4, 128 px) with a text tower of the same size. */
const SMALL_VIT = {
  name: 'small-vit',
  embedDim: 256,
  vision: { type: 'vit', imageSize: 128, patchSize: 16, width: 256, layers: 4, heads: 4, act: 'quick_gelu' },
  text: { type: 'causal', vocabSize: 49408, contextLength: 77, width: 256, layers: 4, heads: 4, act: 'quick_gelu' },
  tokenizer: 'clip-bpe',
};

const ROWS = [
  { key: 'test-vit', model: 'test-vit', batch: 8, impls: ['native', 'tfjs-wasm', 'tfjs-cpu'] },
  { key: 'small-vit', model: SMALL_VIT, batch: 8, impls: ['native', 'tfjs-wasm'] },
  { key: 'vit-b-32', model: 'ViT-B/32', batch: 2, impls: ['native', 'tfjs-wasm'], maxRounds: 3 },
  // The wasm32 heap is 4 GiB: BUILD-NOTES §4c saw this abort; with the Adam moments kept outside the heap
  // (lib/tfjs AdamW "js" moments) it may fit. An abort is reported in the table, not fatal.
  { key: 'vit-b-32', model: 'ViT-B/32', batch: 8, impls: ['native', 'tfjs-wasm'], maxRounds: 3 },
];

// ------------------------------------------------------------------------------------------------
// Child: one implementation, one model; answers {cmd} messages from the parent.
async function child() {
  const spec = JSON.parse(process.env.CXR_COMPARE_CHILD);
  const { resolveModelConfig } = require(dist('models/registry.js'));
  const config = resolveModelConfig(spec.model);
  const batch = batchFor(config.vision.imageSize, spec.batch, L);
  const stepOpts = { lr: 1e-5, loss: { kind: 'relaxed', alpha: 0.5 } };
  let model;
  let info = {};
  if (spec.impl === 'native') {
    const { createModel } = require(dist('models/ClipModel.js'));
    const { capabilities } = require(dist('native/index.js'));
    model = createModel(config, { device: 'cpu', seed: 0, threads: spec.threads });
    model.configureOptimizer({ kind: 'adamw', weightDecay: 0.2 });
    const c = capabilities();
    info = { torchVersion: c.torchVersion, blas: c.blas, threads: c.threads, cuda: c.cuda, parallelInfo: c.parallelInfo };
  } else {
    const { TfClipModel } = require(dist('tfjs/model.js'));
    model = await TfClipModel.create(config, { backend: spec.impl.replace('tfjs-', ''), seed: 0 });
    model.configureOptimizer({ weightDecay: 0.2 });
    const tf = require('@tensorflow/tfjs');
    info = { tfjsVersion: tf.version_core, backend: tf.getBackend() };
    if (tf.getBackend() === 'wasm') {
      const wasm = require('@tensorflow/tfjs-backend-wasm');
      info.wasmThreads = wasm.getThreadsCount ? wasm.getThreadsCount() : 1;
    }
  }
  const params = model.parameterCount();
  process.on('message', async (msg) => {
    try {
      if (msg.cmd === 'step') {
        const t0 = performance.now();
        const r = await model.trainStep(batch, stepOpts);
        process.send({ ok: true, ms: performance.now() - t0, loss: r.loss });
      } else if (msg.cmd === 'encode') {
        const t0 = performance.now();
        await model.encodeImages(batch.images, { n: batch.n });
        process.send({ ok: true, ms: performance.now() - t0 });
      } else if (msg.cmd === 'exit') {
        model.dispose();
        process.send({ ok: true, maxRssMB: process.resourceUsage().maxRSS / 1024 }, () => process.exit(0));
      }
    } catch (e) {
      process.send({ ok: false, error: `${e.code ?? ''} ${e.message}`.trim() });
    }
  });
  process.send({ ok: true, ready: true, params, info });
}

// ------------------------------------------------------------------------------------------------
// Parent.
function spawnImpl(impl, row, threads) {
  const env = { ...process.env, CXR_COMPARE_CHILD: JSON.stringify({ impl, model: row.model, batch: row.batch, threads }) };
  if (impl === 'native') env.OMP_NUM_THREADS = String(threads);
  const cp = fork(__filename, [], { env, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const queue = [];
  cp.on('message', (m) => queue.length && queue.shift().resolve(m));
  cp.on('exit', (code) => {
    while (queue.length) queue.shift().resolve({ ok: false, error: `child exited (${code})` });
  });
  const next = () => new Promise((resolve) => queue.push({ resolve }));
  return {
    impl,
    ready: next(),
    call(cmd) {
      const p = next();
      if (cp.connected) cp.send({ cmd });
      return p;
    },
    kill: () => cp.kill(),
  };
}

async function runRow(row, rounds, threads, only) {
  const impls = row.impls.filter((i) => !only || only.includes(i));
  const kids = impls.map((i) => spawnImpl(i, row, threads));
  const res = {};
  for (const k of kids) {
    const r = await k.ready;
    res[k.impl] = { impl: k.impl, step: [], encode: [], error: r.ok ? null : r.error, params: r.params, info: r.info };
  }
  const live = () => kids.filter((k) => !res[k.impl].error);
  // Warm-up: one step and one encode each (allocations, wasm heap growth, libtorch first-call costs).
  for (const k of live()) {
    for (const cmd of ['step', 'encode']) {
      const r = await k.call(cmd);
      if (!r.ok) res[k.impl].error = r.error;
    }
  }
  for (let round = 0; round < Math.min(rounds, row.maxRounds ?? rounds); round++) {
    for (const cmd of ['step', 'encode']) {
      for (const k of live()) {
        const r = await k.call(cmd);
        if (r.ok) res[k.impl][cmd].push(r.ms);
        else res[k.impl].error = r.error;
      }
    }
  }
  for (const k of kids) {
    const r = await k.call('exit');
    res[k.impl].maxRssMB = r.ok ? r.maxRssMB : null;
    k.kill();
  }
  const nativeStep = res.native ? median(res.native.step) : NaN;
  const nativeEnc = res.native ? median(res.native.encode) : NaN;
  return impls.map((i) => {
    const r = res[i];
    const step = median(r.step);
    const enc = median(r.encode);
    return {
      model: row.key,
      batch: row.batch,
      impl: i,
      params: r.params,
      stepMsMedian: step,
      stepMsMin: Math.min(...r.step),
      stepMsMax: Math.max(...r.step),
      imagesPerSecTrain: (row.batch * 1000) / step,
      ratioToNative: step / nativeStep,
      encodeMsMedian: enc,
      imagesPerSecEncode: (row.batch * 1000) / enc,
      encodeRatioToNative: enc / nativeEnc,
      peakRssMB: r.maxRssMB,
      samples: { step: r.step, encode: r.encode },
      error: r.error,
      info: r.info,
      note: row.note,
    };
  });
}

async function parent() {
  if (!fs.existsSync(dist('tfjs/model.js'))) {
    console.error('bench/compare.js: build first (npx tsc -p tsconfig.json)');
    process.exit(1);
  }
  const rounds = Number(arg('rounds', '5'));
  const threads = Number(arg('threads', '1'));
  const models = arg('models', 'test-vit,small-vit,vit-b-32').split(',');
  const only = arg('impls') ? arg('impls').split(',') : null;
  const rows = ROWS.filter((r) => models.includes(r.key));
  const t0 = Date.now();
  const results = [];
  for (const row of rows) {
    process.stderr.write(`compare: ${row.key} batch ${row.batch} (${row.impls.join(', ')})...\n`);
    results.push(...(await runRow(row, rounds, threads, only)));
  }
  const f = (x, d = 0) => (Number.isFinite(x) ? x.toFixed(d) : '–');
  const lines = [
    '| model | batch | impl | train step ms, median (min–max) | train img/s | step vs native | encode ms | encode img/s | encode vs native | peak RSS MB |',
    '|---|---|---|---|---|---|---|---|---|---|',
  ];
  for (const r of results) {
    const err = r.error ? ` (${r.error})` : '';
    lines.push(
      `| ${r.model} | ${r.batch} | ${r.impl}${err} | ${f(r.stepMsMedian)} (${f(r.stepMsMin)}–${f(r.stepMsMax)}) | ${f(r.imagesPerSecTrain, 1)} | ` +
        `${f(r.ratioToNative, 1)}x | ${f(r.encodeMsMedian, 1)} | ${f(r.imagesPerSecEncode, 1)} | ${f(r.encodeRatioToNative, 1)}x | ${f(r.peakRssMB)} |`,
    );
  }
  for (const r of results) if (r.note) lines.push(`\n${r.model} batch ${r.batch}: ${r.note}.`);
  const nativeInfo = results.find((r) => r.impl === 'native' && r.info)?.info ?? {};
  const machine = {
    cpu: os.cpus()[0]?.model,
    logicalCores: os.cpus().length,
    memGB: Math.round(os.totalmem() / 2 ** 30),
    node: process.version,
    nativeThreads: threads,
    ...nativeInfo,
    tfjs: results.find((r) => r.impl.startsWith('tfjs') && r.info)?.info,
    loadAverage: os.loadavg(),
  };
  console.log(lines.join('\n'));
  console.log(`\nmachine: ${machine.cpu}, ${machine.logicalCores} logical cores; native libtorch ${machine.torchVersion ?? '?'} ` +
    `(${threads} thread(s), BLAS ${String(machine.blas ?? '?').split('\n')[0]}); tfjs-wasm single-threaded, SIMD; ` +
    `${rounds} interleaved rounds after 1 warm-up; relaxed loss α=0.5, AdamW; ${((Date.now() - t0) / 1000).toFixed(0)} s total`);
  const out = arg('json', path.join(__dirname, 'results', `compare-${new Date().toISOString().replace(/[:.]/g, '-')}.json`));
  fs.mkdirSync(path.dirname(out), { recursive: true });
  fs.writeFileSync(out, JSON.stringify({ machine, rounds, textLength: L, results, table: lines.join('\n') }, null, 2) + '\n');
  console.log(`wrote ${path.relative(process.cwd(), out)}`);
}

if (process.env.CXR_COMPARE_CHILD) {
  child().catch((e) => {
    if (process.send) process.send({ ok: false, error: `${e.code ?? ''} ${e.message}`.trim() });
    setTimeout(() => process.exit(1), 100);
  });
} else {
  parent().catch((e) => {
    console.error(e);
    process.exit(1);
  });
}
