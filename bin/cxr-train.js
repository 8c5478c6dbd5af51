#!/usr/bin/env node
'use strict';
// Thin shim: the CLI lives in dist/cli (compiled from lib/cli).
require('../dist/cli/index.js').main(process.argv.slice(2)).then(
  (code) => { process.exitCode = code; },
  (err) => { console.error(err && err.stack ? err.stack : String(err)); process.exitCode = 1; },
);
