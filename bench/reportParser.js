#!/usr/bin/env node
'use strict';
/**
 * Time bound of the report parser, splitter and sampler on pathological 1 MB inputs (issue 5: "the
 * parser is linear time"). Each input is timed at 100 KB and 1 MB; a linear pass gives a ratio near 10,
 * catastrophic backtracking gives 100 or more. Prints a table, writes bench/results/reportParser.json.
 * Run after `npx tsc -p tsconfig.json` (reads dist/). Exit code 1 when a 1 MB input takes over BOUND_MS.
 */
const fs = require('node:fs');
const path = require('node:path');
const dist = path.resolve(__dirname, '../dist/text');
if (!fs.existsSync(path.join(dist, 'reportParser.js'))) {
  console.error('dist/text not built: run `npx tsc -p tsconfig.json` first');
  process.exit(2);
}
const { parseReport, parseOpenIXml } = require(path.join(dist, 'reportParser.js'));
const { splitSentences } = require(path.join(dist, 'sentenceSplitter.js'));
const { SentenceSampler } = require(path.join(dist, 'sentenceSampler.js'));

const BOUND_MS = Number(process.env.BOUND_MS || 2000);
const fill = (unit, bytes) => unit.repeat(Math.ceil(bytes / unit.length)).slice(0, bytes);
let seed = 12345;
const rand = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 4294967296);

const INPUTS = {
  'normal report text': (n) => fill('FINDINGS: The heart is normal in size. A 2.5 cm nodule, approx. 3.0 x 1.2 cm. Dr. ___ notified.\nIMPRESSION:\n1. Nodule.\n2. No effusion.\n\n', n),
  'one line, no breaks': (n) => fill('a', n),
  'colons only': (n) => fill(':', n),
  'upper-case words then colon': (n) => fill('ABC DEF GHI ', n - 1) + ':',
  'header-like lines': (n) => fill('FINDINGS:\nREASON FOR\nEXAMINATION:\n', n),
  'spaces then colon': (n) => fill(' ', n - 1) + ':',
  'dots and spaces': (n) => fill('. ', n),
  'abbreviations': (n) => fill('Dr. No. vs. e.g. cm. ', n),
  'numbering': (n) => fill('1. 2) (3) - ', n),
  'ellipses': (n) => fill('... ', n),
  'blank lines': (n) => fill('\n \r\n', n),
  'placeholders': (n) => fill('___ ', n),
  'binary junk': (n) => Array.from({ length: n }, () => String.fromCharCode(Math.floor(rand() * 65536))).join(''),
  'open-I unclosed tags': (n) => fill('<AbstractText Label="FINDINGS">', n),
};

function time(fn) {
  const t0 = process.hrtime.bigint();
  fn();
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

function run(name, text) {
  const sampler = new SentenceSampler({ sections: 'all', seed: 1 });
  if (name.startsWith('open-I')) return time(() => { try { parseOpenIXml(text); } catch (e) { /* no element is fine */ } });
  return time(() => {
    const parsed = parseReport(text);
    for (const s of parsed.sections) splitSentences(s.text, { semicolons: true });
    const p = sampler.prepare(parsed);
    sampler.sample(p, { epoch: 0, index: 0 });
  });
}

const rows = [];
let failed = false;
for (const [name, make] of Object.entries(INPUTS)) {
  const small = make(100 * 1024);
  const big = make(1024 * 1024);
  run(name, small); // warm-up
  const tSmall = Math.min(run(name, small), run(name, small));
  const tBig = Math.min(run(name, big), run(name, big));
  const ok = tBig <= BOUND_MS;
  failed = failed || !ok;
  rows.push({ input: name, ms_100KB: +tSmall.toFixed(1), ms_1MB: +tBig.toFixed(1), ratio: +(tBig / Math.max(tSmall, 0.01)).toFixed(1), within_bound: ok });
}
console.table(rows);
console.log(`bound: ${BOUND_MS} ms per 1 MB input (parse + split + prepare + sample) -> ${failed ? 'FAIL' : 'PASS'}`);
const outDir = path.resolve(__dirname, 'results');
fs.mkdirSync(outDir, { recursive: true });
fs.writeFileSync(path.join(outDir, 'reportParser.json'), JSON.stringify({ node: process.version, boundMs: BOUND_MS, date: new Date().toISOString(), rows }, null, 2));
process.exitCode = failed ? 1 : 0;
