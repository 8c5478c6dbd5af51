import fs from 'node:fs';
import { CxrError } from '../errors';

/**
 * A small RFC 4180 CSV reader/writer shared by the dataset adapters and the evaluation code.
 *
 * Accepted input: an optional UTF-8 byte-order mark, LF / CRLF / CR line endings, fields quoted with `"`
 * (embedded quotes doubled, embedded separators and newlines allowed), a configurable one-character
 * separator. A final line ending is optional; fully empty lines are skipped because spreadsheets append them.
 */

/**
 * Largest text file (bytes, after decompression) the CSV and index readers take: under V8's string limit
 * (about 512 MiB), so an oversized file is a coded error instead of a string-length crash.
 */
export const MAX_TEXT_BYTES = 500 * 1024 * 1024;

/** Options of {@link parseCsv}. */
export interface CsvParseOptions {
  /** Field separator, one character. Default `,`. */
  separator?: string;
  /** Name shown in error messages (usually the file path). Default `CSV`. */
  source?: string;
}

/** A parsed CSV file with a header row. */
export interface CsvTable {
  /** Column names from the first row, trimmed. */
  header: string[];
  /** Data rows; every row has exactly `header.length` fields. */
  rows: string[][];
  /** 1-based line of the file where each data row starts (when parsed from text). */
  lines?: number[];
  /** Name used in error messages. */
  source: string;
}

/**
 * Parses CSV text into rows of fields. Throws `E_PARSE` on an unterminated quoted field or on text after a
 * closing quote (`"a"b`), with the 1-based line number.
 */
export function parseCsv(text: string, opts: CsvParseOptions = {}): string[][] {
  return parseCsvRecords(text, opts).rows;
}

/** {@link parseCsv} with the 1-based line where each row starts (for messages that name a row). */
export function parseCsvRecords(text: string, opts: CsvParseOptions = {}): { rows: string[][]; lines: number[] } {
  const sep = opts.separator ?? ',';
  const source = opts.source ?? 'CSV';
  if (sep.length !== 1 || sep === '"' || sep === '\n' || sep === '\r') {
    throw new CxrError('E_CONFIG', `CSV separator must be one character other than quote or newline, got ${JSON.stringify(sep)}`);
  }
  let i = text.charCodeAt(0) === 0xfeff ? 1 : 0;
  const n = text.length;
  const rows: string[][] = [];
  const lines: number[] = [];
  let row: string[] = [];
  let line = 1;
  let rowLine = 1;
  let rowIsEmpty = true; // a line with no characters at all, to be skipped
  while (i <= n) {
    // At the start of a field.
    let field: string;
    if (i < n && text[i] === '"') {
      const startLine = line;
      i++;
      let buf = '';
      let closed = false;
      while (i < n) {
        const j = text.indexOf('"', i);
        if (j < 0) break;
        buf += text.slice(i, j);
        for (let k = i; k < j; k++) if (text[k] === '\n' || (text[k] === '\r' && text[k + 1] !== '\n')) line++;
        if (text[j + 1] === '"') {
          buf += '"';
          i = j + 2;
        } else {
          i = j + 1;
          closed = true;
          break;
        }
      }
      if (!closed) throw new CxrError('E_PARSE', `${source}: line ${startLine}: unterminated quoted field (the quote opened there is never closed)`, { source, line: startLine });
      if (i < n && text[i] !== sep && text[i] !== '\n' && text[i] !== '\r') {
        throw new CxrError('E_PARSE', `${source}: line ${line}: unexpected character after closing quote`, { source, line });
      }
      field = buf;
      rowIsEmpty = false;
    } else {
      let j = i;
      while (j < n) {
        const c = text[j];
        if (c === sep || c === '\n' || c === '\r') break;
        j++;
      }
      field = text.slice(i, j);
      if (j > i) rowIsEmpty = false;
      i = j;
    }
    row.push(field);
    if (i < n && text[i] === sep) {
      rowIsEmpty = false;
      i++;
      continue;
    }
    // End of record: newline or end of text.
    if (!rowIsEmpty) {
      rows.push(row);
      lines.push(rowLine);
    }
    row = [];
    rowIsEmpty = true;
    if (i >= n) break;
    if (text[i] === '\r' && text[i + 1] === '\n') i += 2;
    else i += 1;
    line++;
    rowLine = line;
    if (i >= n) break;
  }
  return { rows, lines };
}

/**
 * Parses CSV text whose first row is a header. Throws `E_PARSE` when the text is empty, a header name is
 * empty or repeated, or a row has a different number of fields than the header.
 */
export function parseCsvTable(text: string, opts: CsvParseOptions = {}): CsvTable {
  const source = opts.source ?? 'CSV';
  const { rows, lines } = parseCsvRecords(text, opts);
  if (rows.length === 0) throw new CxrError('E_PARSE', `${source}: empty CSV (no header row)`, { source });
  const header = rows[0].map((h) => h.trim());
  const seen = new Set<string>();
  for (const h of header) {
    if (h === '') throw new CxrError('E_PARSE', `${source}: empty column name in header`, { source });
    if (seen.has(h)) throw new CxrError('E_PARSE', `${source}: column ${JSON.stringify(h)} appears twice in the header`, { source, column: h });
    seen.add(h);
  }
  const body = rows.slice(1);
  for (let r = 0; r < body.length; r++) {
    if (body[r].length !== header.length) {
      throw new CxrError(
        'E_PARSE',
        `${source}: data row ${r + 1} (line ${lines[r + 1]}) has ${body[r].length} fields, the header has ${header.length}`,
        { source, row: r + 1, line: lines[r + 1] },
      );
    }
  }
  return { header, rows: body, lines: lines.slice(1), source };
}

/**
 * Reads a whole text file as UTF-8, refusing files over `maxBytes` (E_DATA naming the limit) instead of
 * failing on V8's string length. File system failures become `E_IO`.
 */
export function readTextFile(file: string, maxBytes = MAX_TEXT_BYTES): string {
  try {
    const size = fs.statSync(file).size;
    if (size > maxBytes) throw new CxrError('E_DATA', `${file} is ${size} bytes, over the limit of ${maxBytes} bytes for a text file`, { path: file, limit: maxBytes });
    return fs.readFileSync(file, 'utf8');
  } catch (e) {
    if (e instanceof CxrError) throw e;
    throw new CxrError('E_IO', `cannot read ${file}: ${(e as Error).message}`, { path: file, file }, { cause: e });
  }
}

/** Reads and parses a CSV file with a header row. File system failures become `E_IO`. */
export function readCsvTable(file: string, opts: Omit<CsvParseOptions, 'source'> = {}): CsvTable {
  return parseCsvTable(readTextFile(file), { ...opts, source: file });
}

/** Quotes one field when it holds the separator, a quote, a newline, or leading/trailing spaces. */
export function formatCsvField(value: string | number | null | undefined, separator = ','): string {
  if (value === null || value === undefined) return '';
  const s = typeof value === 'number' ? (Number.isNaN(value) ? '' : String(value)) : value;
  if (s.includes(separator) || s.includes('"') || s.includes('\n') || s.includes('\r') || s !== s.trim()) {
    return '"' + s.replace(/"/g, '""') + '"';
  }
  return s;
}

/**
 * Formats rows as CSV text (LF line endings, final newline). `null`, `undefined` and NaN become empty
 * fields, so that a reader sees them as missing.
 */
export function formatCsv(rows: ReadonlyArray<ReadonlyArray<string | number | null | undefined>>, separator = ','): string {
  let out = '';
  for (const r of rows) out += r.map((v) => formatCsvField(v, separator)).join(separator) + '\n';
  return out;
}

/**
 * The rows of a CSV file with a header, one by one, through the same strict parser as
 * {@link readCsvTable} (so every command refuses the same malformed files): `E_PARSE` for an
 * unterminated quote, text after a closing quote, or a row whose field count differs from the header's,
 * naming the line; `E_DATA` for an empty file; `E_IO` when unreadable.
 */
export async function* readCsvRows(file: string): AsyncGenerator<{ header: string[]; row: Array<string | undefined>; line: number }> {
  let text: string;
  try {
    text = readTextFile(file);
  } catch (e) {
    if (e instanceof CxrError && e.code === 'E_IO') throw new CxrError('E_IO', `cannot read CSV file ${file}: ${(e.cause as Error | undefined)?.message ?? e.message}`, { path: file });
    throw e;
  }
  if (/^\uFEFF?[\r\n]*$/.test(text))
    throw new CxrError('E_DATA', `CSV file ${file} is empty (no header row)`, { path: file });
  const t = parseCsvTable(text, { source: `CSV file ${file}` });
  for (let r = 0; r < t.rows.length; r++) yield { header: t.header, row: t.rows[r], line: t.lines![r] };
}
