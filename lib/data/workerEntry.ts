/** How to start a worker thread of lib/data: the compiled .js file, or under ts-jest/ts-node the .ts file through a transpiling bootstrap. */
import fs from 'node:fs';
import path from 'node:path';

/** The `new Worker(file, { eval })` arguments of the worker module `name` (without extension) in `dir`, or undefined. */
export function workerEntry(dir: string, name: string): { file: string; eval: boolean } | undefined {
  const js = path.join(dir, `${name}.js`);
  if (__filename.endsWith('.js') && fs.existsSync(js)) return { file: js, eval: false };
  const ts = path.join(dir, `${name}.ts`);
  if (!fs.existsSync(ts)) return undefined;
  let tsc: string;
  try {
    tsc = require.resolve('typescript');
  } catch {
    return undefined;
  }
  // Development only (ts-jest, ts-node): compile the worker's TypeScript modules on load.
  const code = `
const ts = require(${JSON.stringify(tsc)});
const fs = require('fs');
require.extensions['.ts'] = function (m, filename) {
  const out = ts.transpileModule(fs.readFileSync(filename, 'utf8'), { fileName: filename, compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022, esModuleInterop: true } });
  m._compile(out.outputText, filename);
};
require(${JSON.stringify(ts)});
`;
  return { file: code, eval: true };
}
