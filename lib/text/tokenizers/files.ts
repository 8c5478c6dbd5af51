/** File access for tokenizers: every failure becomes `E_TOKENIZER` naming the file. @internal */
import * as fs from 'fs';
import * as path from 'path';
import * as zlib from 'zlib';
import { CxrError } from '../../errors';

/** Read a UTF-8 text file, gunzipping it when it is gzip-compressed (magic bytes, not the name). */
export function readTokenizerText(file: string, what: string): string {
  let buf: Buffer;
  try {
    buf = fs.readFileSync(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new CxrError('E_TOKENIZER', `cannot read ${what} '${file}': ${code ?? (e as Error).message}`, { path: file }, { cause: e });
  }
  if (buf.length >= 2 && buf[0] === 0x1f && buf[1] === 0x8b) {
    try {
      buf = zlib.gunzipSync(buf);
    } catch (e) {
      throw new CxrError('E_TOKENIZER', `${what} '${file}' is not a valid gzip file: ${(e as Error).message}`, { path: file }, { cause: e });
    }
  }
  const text = new TextDecoder('utf-8', { fatal: false }).decode(buf);
  return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
}

/** Read and parse a JSON file, or throw `E_TOKENIZER`. */
export function readTokenizerJson(file: string, what: string): unknown {
  const text = readTokenizerText(file, what);
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new CxrError('E_TOKENIZER', `${what} '${file}' is not valid JSON: ${(e as Error).message}`, { path: file }, { cause: e });
  }
}

/**
 * Find a file shipped in the package's `assets/` folder. Walks up from this module so it works
 * from `lib/` (ts-jest) and from `dist/` (the published package) alike.
 */
export function packageAsset(rel: string): string {
  let dir = __dirname;
  for (let i = 0; i < 6; i++) {
    const candidate = path.join(dir, 'assets', rel);
    if (fs.existsSync(candidate)) return candidate;
    const parent = path.dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
  throw new CxrError('E_TOKENIZER', `the packaged asset assets/${rel} was not found above ${__dirname}; reinstall cxr-train or pass a file path`);
}

/** True when `p` is an existing directory. */
export function isDirectory(p: string): boolean {
  try {
    return fs.statSync(p).isDirectory();
  } catch {
    return false;
  }
}
