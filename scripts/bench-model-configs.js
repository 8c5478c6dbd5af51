#!/usr/bin/env node
/**
 * Writes the registry models as complete flat configs for Node-free native tools (native/bench/step_bench
 * on a GPU machine without Node): native/bench/models/<name>.cfg, one `key=value` line per cxr::ModelConfig
 * field, completed through the same function the addon gets (lib/models/flatConfig.ts). Needs dist/
 * (`npm run build:ts`). test/unit/bench-configs.test.ts fails when the committed files differ.
 *
 *   node scripts/bench-model-configs.js          # (re)writes the files
 *   node scripts/bench-model-configs.js --check  # exit 1 when a committed file differs
 */
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const { flatRegistryConfigs, FLAT_CONFIG_DIR } = require(path.join(root, 'dist/models/flatConfig.js'));

const check = process.argv.includes('--check');
const dir = path.join(root, FLAT_CONFIG_DIR);
fs.mkdirSync(dir, { recursive: true });
let stale = 0;
for (const [file, text] of Object.entries(flatRegistryConfigs())) {
  const p = path.join(dir, file);
  const same = fs.existsSync(p) && fs.readFileSync(p, 'utf8') === text;
  if (check) {
    if (!same) {
      console.error(`bench-model-configs: ${path.relative(root, p)} is stale: run node scripts/bench-model-configs.js`);
      stale++;
    }
  } else {
    fs.writeFileSync(p, text);
    console.log(`bench-model-configs: ${same ? 'unchanged' : 'wrote'} ${path.relative(root, p)}`);
  }
}
process.exit(stale ? 1 : 0);
