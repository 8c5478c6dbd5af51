#!/usr/bin/env node
/**
 * Layering check of lib/: lists the imports between lib/ folders and fails (exit 1) on an import that
 * runs upward, from a lower folder to a higher one. The order, lowest first (folders on one line are one
 * layer and may import each other):
 *
 *   errors.ts, types.ts, util → native → text → data → models → checkpoints → tfjs → eval → infer → train
 *   → experiments → jobs → cli → index.ts
 *
 * Static `import … from`, `export … from`, `import('…')` and `require('…')` with a relative path count;
 * type-only imports count too (a type that has to come from above belongs lower). lib/index.ts must not
 * import lib/cli (the public API exports jobs, not CLI files).
 *
 *   node scripts/check-layers.js          # prints the folder-to-folder counts, fails on an upward one
 *   node scripts/check-layers.js --quiet  # prints only violations
 */
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const LAYERS = [['errors', 'types', 'util'], ['native'], ['text'], ['data'], ['models'], ['checkpoints'], ['tfjs'], ['eval'], ['infer'], ['train'], ['experiments'], ['jobs'], ['cli'], ['index']];
const rank = new Map();
LAYERS.forEach((names, i) => names.forEach((n) => rank.set(n, i)));

/** Downward imports that are still wrong. */
const FORBIDDEN = new Map([['index -> cli', 'the public API exports jobs (lib/jobs), not CLI files']]);

const LIB = path.resolve(__dirname, '..', 'lib');
const quiet = process.argv.includes('--quiet');

/** The layer name of a path inside lib/: its first folder, or a root file's name without extension. */
function layerOf(abs) {
  const rel = path.relative(LIB, abs);
  const first = rel.split(path.sep)[0];
  return first.replace(/\.(ts|js|json)$/, '');
}

function walk(dir, out) {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) walk(p, out);
    else if (/\.ts$/.test(e.name) && !e.name.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

const IMPORT_RE = /(?:\bfrom\s*|\bimport\s*\(\s*|\brequire\s*\(\s*|^\s*import\s+)['"](\.[^'"]*)['"]/gm;

const counts = new Map();
const violations = [];
const unknown = new Set();
for (const file of walk(LIB, [])) {
  const src = fs.readFileSync(file, 'utf8').replace(/\/\*[\s\S]*?\*\//g, (c) => c.replace(/[^\n]/g, '')).replace(/^\s*\/\/.*$/gm, '');
  const from = layerOf(file);
  for (const m of src.matchAll(IMPORT_RE)) {
    const target = path.resolve(path.dirname(file), m[1]);
    if (!target.startsWith(LIB + path.sep)) continue;
    const to = layerOf(target);
    if (to === from) continue;
    const key = `${from} -> ${to}`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
    for (const l of [from, to]) if (!rank.has(l)) unknown.add(l);
    const line = () => `${path.relative(path.dirname(LIB), file)}:${src.slice(0, m.index).split('\n').length}`;
    if (rank.has(from) && rank.has(to) && rank.get(to) > rank.get(from)) {
      violations.push(`${line()}: ${from} imports ${m[1]} (${to} is above ${from})`);
    } else if (FORBIDDEN.has(key)) {
      violations.push(`${line()}: ${from} imports ${m[1]} (${FORBIDDEN.get(key)})`);
    }
  }
}

if (!quiet) {
  const keys = [...counts.keys()].sort((a, b) => {
    const [fa, ta] = a.split(' -> ');
    const [fb, tb] = b.split(' -> ');
    return (rank.get(fa) ?? 99) - (rank.get(fb) ?? 99) || (rank.get(ta) ?? 99) - (rank.get(tb) ?? 99) || a.localeCompare(b);
  });
  for (const k of keys) console.log(`${String(counts.get(k)).padStart(4)}  ${k}`);
}
for (const u of unknown) violations.push(`lib/${u}: not in the layer order of scripts/check-layers.js (add it)`);
if (violations.length) {
  console.error(`check-layers: ${violations.length} upward or unplaced import(s):`);
  for (const v of violations) console.error(`  ${v}`);
  process.exit(1);
}
if (!quiet) console.log('check-layers: no upward imports');
