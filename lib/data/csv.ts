/**
 * Dataset CSV tables: transparent `.gz` decompression (bounded) and header-keyed rows over lib/util/csv's
 * parser. Text that is not valid UTF-8 and rows longer than the header are counted, not dropped silently.
 */
import fs from 'node:fs';
import zlib from 'node:zlib';
import { CxrError } from '../errors';
import { MAX_TEXT_BYTES, parseCsv as parseUtil, parseCsvRecords } from '../util/csv';
import type { IssueLog } from './manifest';

/** Parses CSV text into rows of string cells (the project's one CSV parser, lib/util/csv). */
export function parseCsv(text: string): string[][] {
  return parseUtil(text);
}

/** A CSV with a header: column names and rows as objects. */
export interface Table {
  header: string[];
  rows: Record<string, string>[];
  /** 1-based line-ish row numbers (data row k is row k+1 of the file) for error messages. */
  file: string;
  /** 1-based line of the file where each row starts. */
  lines: number[];
}

/** Options of {@link readText} and {@link readTable}. */
export interface ReadTextOptions {
  /** Largest text accepted, in bytes after decompression. Default {@link MAX_TEXT_BYTES}. */
  maxBytes?: number;
}

/** A text file read by {@link readTextChecked}. */
export interface TextFile {
  text: string;
  /** The bytes were not valid UTF-8: the bad sequences became U+FFFD. */
  invalidUtf8: boolean;
}

const utf8Strict = new TextDecoder('utf-8', { fatal: true });

/**
 * Reads a text file, gunzipping `.gz` files, and says whether it was valid UTF-8.
 * @throws CxrError E_IO (unreadable), E_PARSE (not gzip), E_DATA (over `maxBytes`, compressed or not)
 */
export function readTextChecked(file: string, opts: ReadTextOptions = {}): TextFile {
  const maxBytes = opts.maxBytes ?? MAX_TEXT_BYTES;
  let buf: Buffer;
  try {
    const size = fs.statSync(file).size;
    if (size > maxBytes) throw new CxrError('E_DATA', `${file} is ${size} bytes, over the limit of ${maxBytes} bytes for an index file`, { path: file, limit: maxBytes });
    buf = fs.readFileSync(file);
  } catch (e) {
    if (e instanceof CxrError) throw e;
    throw new CxrError('E_IO', `cannot read ${file}: ${(e as Error).message}`, { path: file });
  }
  if (file.endsWith('.gz') || (buf[0] === 0x1f && buf[1] === 0x8b)) {
    try {
      // Bounded: a small archive can expand to gigabytes; decompression stops at the limit.
      buf = zlib.gunzipSync(buf, { maxOutputLength: maxBytes });
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (e instanceof RangeError || code === 'ERR_BUFFER_TOO_LARGE')
        throw new CxrError('E_DATA', `${file} decompresses to more than the limit of ${maxBytes} bytes for an index file`, { path: file, limit: maxBytes });
      throw new CxrError('E_PARSE', `cannot gunzip ${file}: ${(e as Error).message}`, { path: file });
    }
  }
  let invalidUtf8 = false;
  try {
    utf8Strict.decode(buf);
  } catch {
    invalidUtf8 = true;
  }
  return { text: buf.toString('utf8'), invalidUtf8 };
}

/** Reads a text file, gunzipping `.gz` files (see {@link readTextChecked}). */
export function readText(file: string, opts: ReadTextOptions = {}): string {
  return readTextChecked(file, opts).text;
}

/** Records one `bad-encoding` issue per row holding U+FFFD when the file was not valid UTF-8. */
export function logBadEncoding(log: IssueLog, invalidUtf8: boolean, where: string, cells: Iterable<string>): void {
  if (!invalidUtf8) return;
  for (const c of cells) {
    if (c.includes('\uFFFD')) {
      log.add('bad-encoding', where, 'not valid UTF-8 (Latin-1 or another encoding?): the bad bytes became U+FFFD; re-save the file as UTF-8');
      return;
    }
  }
}

/**
 * Reads a CSV (optionally gzipped) with a header row into a {@link Table}. Empty lines are skipped; a
 * short row's missing cells are empty. With `log`, a row longer than the header (its extra cells are
 * ignored) is an `extra-cells` issue and a row with bytes that are not UTF-8 a `bad-encoding` issue.
 */
export function readTable(file: string, opts: ReadTextOptions & { log?: IssueLog; where?: string } = {}): Table {
  const { text, invalidUtf8 } = readTextChecked(file, opts);
  const parsed = parseCsvRecords(text, { source: file });
  const keep = parsed.rows.map((r, i) => i).filter((i) => !(parsed.rows[i].length === 1 && parsed.rows[i][0] === ''));
  if (keep.length === 0) throw new CxrError('E_PARSE', `${file} is empty (no header row)`, { path: file });
  const rows = keep.map((i) => parsed.rows[i]);
  const lines = keep.map((i) => parsed.lines[i]);
  const header = rows[0].map((h) => h.trim());
  const where = opts.where ?? file;
  return {
    header,
    file,
    lines: lines.slice(1),
    rows: rows.slice(1).map((r, i) => {
      const o: Record<string, string> = {};
      for (let k = 0; k < header.length; k++) o[header[k]] = r[k] ?? '';
      if (opts.log) {
        if (r.length > header.length)
          opts.log.add('extra-cells', `${where}:${lines[i + 1]}`, `${r.length} cells, the header has ${header.length}: the last ${r.length - header.length} were ignored`);
        logBadEncoding(opts.log, invalidUtf8, `${where}:${lines[i + 1]}`, r);
      }
      return o;
    }),
  };
}

/** The first of `candidates` that exists (e.g. `x.csv` then `x.csv.gz`), or undefined. */
export function firstExisting(candidates: string[]): string | undefined {
  return candidates.find((c) => fs.existsSync(c));
}
