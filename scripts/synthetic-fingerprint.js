#!/usr/bin/env node
/**
 * Fingerprint of the synthetic generator's output: SHA-256 of every image (float32 bytes), report and
 * label row for a few configurations, and of every file of a written dataset. Used to show that a change
 * to the generator leaves its output bit-identical: run it against two builds and compare.
 *
 *   node scripts/synthetic-fingerprint.js [DIST]   # DIST: a compiled lib (default: ./dist)
 *
 * Files listed in --skip (default: synthetic-regions.json, which older builds do not write) are left out
 * of the written-dataset hash.
 */
'use strict';
const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const dist = path.resolve(process.argv[2] || path.join(__dirname, '..', 'dist'));
const skip = new Set(['synthetic-regions.json']);
const { synthesizeSamples, generateSynthetic } = require(path.join(dist, 'data', 'synthetic'));

function h(...parts) {
  const x = crypto.createHash('sha256');
  for (const p of parts) x.update(typeof p === 'string' ? p : Buffer.from(p.buffer, p.byteOffset, p.byteLength));
  return x.digest('hex');
}

(async () => {
  const out = {};
  const configs = [
    { n: 300, seed: 0, size: 64 },
    { n: 200, seed: 11, size: 128, findingStrength: 0.6 },
    { n: 120, seed: 3, size: 96, shift: 'strong' },
  ];
  for (const c of configs) {
    const ds = synthesizeSamples(c);
    const img = crypto.createHash('sha256');
    const txt = crypto.createHash('sha256');
    for (const s of ds.samples) {
      img.update(Buffer.from(s.image.buffer, s.image.byteOffset, s.image.byteLength));
      txt.update(JSON.stringify([s.id, s.split, s.report, s.labels, s.spec, s.meta]));
    }
    out[JSON.stringify(c)] = { images: img.digest('hex'), reportsLabelsSpecs: txt.digest('hex') };
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cxr-fp-'));
  await generateSynthetic({ n: 60, seed: 0, size: 64, outDir: dir });
  const files = [];
  const walk = (d) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (!skip.has(path.relative(dir, p))) files.push(path.relative(dir, p));
    }
  };
  walk(dir);
  files.sort();
  out.writtenDataset = { files: files.length, sha256: h(...files.map((f) => f + '\0' + h(fs.readFileSync(path.join(dir, f))))) };
  fs.rmSync(dir, { recursive: true, force: true });
  process.stdout.write(JSON.stringify(out, null, 2) + '\n');
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
