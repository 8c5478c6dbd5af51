/**
 * Minimal RFC 4180 CSV reading (quoted fields, doubled quotes, embedded commas and newlines, CRLF) and
 * transparent `.gz` decompression, enough for the official dataset CSVs without a dependency.
 */
import fs from 'node:fs';
import zlib from 'node:zlib';
import { CxrError } from '../errors';

/** Parses CSV text into rows of string cells. A trailing newline does not make an empty row. */
export function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let cell = '';
  let i = 0;
  let inQuotes = false;
  const n = text.length;
  if (text.charCodeAt(0) === 0xfeff) i = 1; // BOM
  while (i < n) {
    const ch = text[i];
    if (inQuotes) {
      if (ch === '"') {
        if (text[i + 1] === '"') {
          cell += '"';
          i += 2;
          continue;
        }
        inQuotes = false;
        i++;
        continue;
      }
      cell += ch;
      i++;
      continue;
    }
    if (ch === '"' && cell.length === 0) {
      inQuotes = true;
      i++;
    } else if (ch === ',') {
      row.push(cell);
      cell = '';
      i++;
    } else if (ch === '\n' || ch === '\r') {
      row.push(cell);
      rows.push(row);
      row = [];
      cell = '';
      i += ch === '\r' && text[i + 1] === '\n' ? 2 : 1;
    } else {
      cell += ch;
      i++;
    }
  }
  if (inQuotes) throw new CxrError('E_PARSE', 'CSV ends inside a quoted field');
  if (cell.length > 0 || row.length > 0) {
    row.push(cell);
    rows.push(row);
  }
  return rows;
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
