#!/usr/bin/env node
'use strict';
// Builds the native addon with cmake-js (the main build); falls back to node-gyp when cmake-js fails.
// libtorch is found through LIBTORCH (a libtorch root), Torch_DIR (its share/cmake/Torch) or the system
// (Debian's libtorch-dev). CXR_WITH_CUDA=1 builds the CUDA kernels (needs a CUDA libtorch); CXR_BUILD_TESTS=1
// the C++ tests beside the addon.
// Node headers come from the node-api-headers package: nothing is downloaded.
const { spawnSync } = require('node:child_process');
const path = require('node:path');
const fs = require('node:fs');

const root = path.resolve(__dirname, '..');
// --install (npm's install hook): a missing libtorch must not fail `npm ci`; the addon loader then says
// what to do (`npm run setup`).
const installHook = process.argv.includes('--install');
const giveUp = () => {
  if (!installHook) process.exit(1);
  console.error('cxr-train: the native addon was not built (see above); run `npm run setup` to install libtorch and build it.');
  process.exit(0);
};
const run = (cmd, args) => spawnSync(cmd, args, { cwd: root, stdio: 'inherit', env: process.env }).status === 0;
const cmakeJs = require.resolve('cmake-js/bin/cmake-js');
const args = [cmakeJs, 'compile'];
if (process.env.Torch_DIR) args.push(`--CDTorch_DIR=${process.env.Torch_DIR}`);
if (/^(1|on|true|yes)$/i.test(process.env.CXR_WITH_CUDA || '')) args.push('--CDCXR_WITH_CUDA=ON');
// CXR_BUILD_TESTS=1: the C++ core tests and benches too, in the same build folder (ctest --test-dir build),
// so that the core is compiled once for the addon and the tests.
if (/^(1|on|true|yes)$/i.test(process.env.CXR_BUILD_TESTS || '')) args.push('--CDCXR_BUILD_TESTS=ON');
if (process.env.CXR_DEBUG) args.push('--debug');

if (run(process.execPath, args)) process.exit(0);
if (process.env.CXR_NO_GYP_FALLBACK) giveUp();
console.error('\ncxr-train: cmake-js failed; trying the node-gyp fallback (binding.gyp)\n');
let gyp;
try {
  gyp = require.resolve('node-gyp/bin/node-gyp.js');
} catch {
  console.error('cxr-train: node-gyp is not installed; fix the cmake-js build (see the messages above)');
  giveUp();
}
const nodedir = fs.existsSync('/usr/include/node/node_api.h') ? ['--nodedir=/usr'] : [];
if (run(process.execPath, [gyp, 'rebuild', ...nodedir])) process.exit(0);
giveUp();
