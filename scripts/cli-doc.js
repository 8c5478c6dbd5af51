#!/usr/bin/env node
/**
 * Writes the generated parts of docs/cli.md (the shared vocabulary table and one section per command)
 * from the commands' yargs definitions in lib/cli. Runs on the TypeScript sources (transpiled on the fly
 * with the project's typescript), so no build is needed.
 *
 *   node scripts/cli-doc.js          # rewrite docs/cli.md
 *   node scripts/cli-doc.js --check  # exit 1 when docs/cli.md is out of date
 */
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const ts = require('typescript');

require.extensions['.ts'] = (m, filename) => {
  const src = fs.readFileSync(filename, 'utf8');
  const out = ts.transpileModule(src, {
    fileName: filename,
    compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022, esModuleInterop: true, resolveJsonModule: true },
  }).outputText;
  m._compile(out, filename);
};

const { updateCliDoc } = require('../lib/cli/doc.ts');
const file = path.resolve(__dirname, '..', 'docs', 'cli.md');
const before = fs.readFileSync(file, 'utf8');
const after = updateCliDoc(before);
if (process.argv.includes('--check')) {
  if (after !== before) {
    process.stderr.write('docs/cli.md is out of date: run node scripts/cli-doc.js\n');
    process.exit(1);
  }
  process.stdout.write('docs/cli.md is up to date\n');
} else if (after !== before) {
  fs.writeFileSync(file, after);
  process.stdout.write('wrote docs/cli.md\n');
} else process.stdout.write('docs/cli.md is up to date\n');
