/**
 * The one check of output and run folders given by users (`--out`, `outDir`, `--resume`): a path that is a
 * file, or that runs through a file, is a coded E_IO naming it, never a raw EEXIST / ENOTDIR from `mkdir`
 * or `readdir`.
 */
import fs from 'node:fs';
import path from 'node:path';
import { CxrError } from '../errors';

function statOf(p: string): fs.Stats | undefined {
  try {
    return fs.statSync(p);
  } catch {
    return undefined;
  }
}

/**
 * Checks that `dir` can be an output folder: an existing folder, or a path whose nearest existing parent is
 * a folder. With `create`, makes it (and its parents). Returns the absolute path.
 * @param what how the user named it, e.g. `--out` (shown in the error)
 * @throws CxrError E_IO when `dir` or one of its parents is a file, or the folder cannot be created.
 */
export function ensureOutDir(dir: string, what = '--out', opts: { create?: boolean } = {}): string {
  if (typeof dir !== 'string' || dir === '') throw new CxrError('E_CONFIG', `${what}: the output folder must be a non-empty path`);
  const abs = path.resolve(dir);
  const st = statOf(abs);
  if (st && !st.isDirectory()) throw new CxrError('E_IO', `${what} ${dir}: is a file, not a folder; choose a folder path (new or existing)`, { path: abs });
  if (!st) {
    for (let p = path.dirname(abs); ; p = path.dirname(p)) {
      const ps = statOf(p);
      if (ps && !ps.isDirectory()) throw new CxrError('E_IO', `${what} ${dir}: ${p} is a file, so no folder can be made below it`, { path: abs });
      if (ps || p === path.dirname(p)) break;
    }
  }
  if (opts.create) {
    try {
      fs.mkdirSync(abs, { recursive: true });
    } catch (e) {
      throw new CxrError('E_IO', `${what} ${dir}: cannot create the folder (${(e as Error).message})`, { path: abs }, { cause: e });
    }
  }
  return abs;
}

/**
 * Checks a folder given to be read as a run or checkpoint folder (`--resume`): when the path exists it must
 * be a folder. A missing path passes: the caller says what it expected there. Returns the absolute path.
 * @throws CxrError E_IO when it is a file (or runs through one).
 */
export function checkRunFolder(dir: string, what = '--resume'): string {
  const abs = path.resolve(dir);
  const st = statOf(abs);
  if (st && !st.isDirectory()) throw new CxrError('E_IO', `${what} ${dir}: is a file, not a run folder or checkpoint folder`, { path: abs });
  if (!st) ensureOutDir(abs, what);
  return abs;
}
