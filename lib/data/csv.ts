/**
 * Dataset CSV tables: transparent `.gz` decompression and header-keyed rows over lib/util/csv's parser.
 */
import fs from 'node:fs';
import zlib from 'node:zlib';
import { CxrError } from '../errors';
import { parseCsv as parseUtil } from '../util/csv';

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
}

/** Reads a text file, gunzipping `.gz` files. */
export function readText(file: string): string {
  let buf: Buffer;
  try {
    buf = fs.readFileSync(file);
  } catch (e) {
    throw new CxrError('E_IO', `cannot read ${file}: ${(e as Error).message}`, { path: file });
  }
  if (file.endsWith('.gz') || (buf[0] === 0x1f && buf[1] === 0x8b)) {
    try {
      buf = zlib.gunzipSync(buf);
    } catch (e) {
      throw new CxrError('E_PARSE', `cannot gunzip ${file}: ${(e as Error).message}`, { path: file });
    }
  }
  return buf.toString('utf8');
}

/** Reads a CSV (optionally gzipped) with a header row into a {@link Table}. Empty lines are skipped. */
export function readTable(file: string): Table {
  const rows = parseCsv(readText(file)).filter((r) => !(r.length === 1 && r[0] === ''));
  if (rows.length === 0) throw new CxrError('E_PARSE', `${file} is empty (no header row)`, { path: file });
  const header = rows[0].map((h) => h.trim());
  return {
    header,
    file,
    rows: rows.slice(1).map((r) => {
      const o: Record<string, string> = {};
      for (let k = 0; k < header.length; k++) o[header[k]] = r[k] ?? '';
      return o;
    }),
  };
}

/** The first of `candidates` that exists (e.g. `x.csv` then `x.csv.gz`), or undefined. */
export function firstExisting(candidates: string[]): string | undefined {
  return candidates.find((c) => fs.existsSync(c));
}
