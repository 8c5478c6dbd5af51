import fs from 'node:fs';
import { CxrError } from '../errors';

/**
 * A small RFC 4180 CSV reader/writer shared by the dataset adapters and the evaluation code.
 *
 * Accepted input: an optional UTF-8 byte-order mark, LF / CRLF / CR line endings, fields quoted with `"`
 * (embedded quotes doubled, embedded separators and newlines allowed), a configurable one-character
 * separator. A final line ending is optional; fully empty lines are skipped because spreadsheets append them.
 */

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
  /** Name used in error messages. */
  source: string;
}

/**
 * Parses CSV text into rows of fields. Throws `E_PARSE` on an unterminated quoted field or on text after a
 * closing quote (`"a"b`), with the 1-based line number.
 */
export function parseCsv(text: string, opts: CsvParseOptions = {}): string[][] {
  const sep = opts.separator ?? ',';
  const source = opts.source ?? 'CSV';
  if (sep.length !== 1 || sep === '"' || sep === '\n' || sep === '\r') {
    throw new CxrError('E_CONFIG', `CSV separator must be one character other than quote or newline, got ${JSON.stringify(sep)}`);
  }
  let i = text.charCodeAt(0) === 0xfeff ? 1 : 0;
  const n = text.length;
  const rows: string[][] = [];
  let row: string[] = [];
  let line = 1;
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
      if (!closed) throw new CxrError('E_PARSE', `${source}: line ${startLine}: unterminated quoted field`, { source, line: startLine });
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
    if (!rowIsEmpty) rows.push(row);
    row = [];
    rowIsEmpty = true;
    if (i >= n) break;
    if (text[i] === '\r' && text[i + 1] === '\n') i += 2;
    else i += 1;
    line++;
    if (i >= n) break;
  }
  return rows;
}

/**
 * Parses CSV text whose first row is a header. Throws `E_PARSE` when the text is empty, a header name is
 * empty or repeated, or a row has a different number of fields than the header.
 */
export function parseCsvTable(text: string, opts: CsvParseOptions = {}): CsvTable {
  const source = opts.source ?? 'CSV';
  const rows = parseCsv(text, opts);
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
        `${source}: data row ${r + 1} has ${body[r].length} fields, the header has ${header.length}`,
        { source, row: r + 1 },
      );
    }
  }
  return { header, rows: body, source };
}

/** Reads and parses a CSV file with a header row. File system failures become `E_IO`. */
export function readCsvTable(file: string, opts: Omit<CsvParseOptions, 'source'> = {}): CsvTable {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new CxrError('E_IO', `cannot read ${file}: ${(e as Error).message}`, { file }, { cause: e });
  }
  return parseCsvTable(text, { ...opts, source: file });
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
 * Streams the rows of an RFC 4180 CSV file (quoted fields, "" escapes, embedded line breaks, CRLF).
 * The first row is the header. A row shorter than the header leaves the missing columns undefined.
 */
export async function* readCsvRows(file: string): AsyncGenerator<{ header: string[]; row: Array<string | undefined>; line: number }> {
  let stream: fs.ReadStream;
  try {
    await fs.promises.access(file, fs.constants.R_OK);
    stream = fs.createReadStream(file, { encoding: 'utf8' });
  } catch (e) {
    throw new CxrError('E_IO', `cannot read CSV file ${file}: ${(e as Error).message}`, { path: file });
  }
  let header: string[] | null = null;
  let field = '';
  let row: string[] = [];
  let quoted = false;
  let pendingQuote = false; // a quote ended the last chunk inside a quoted field: escape or close?
  let line = 1;
  let rowLine = 1;
  let bom = true;
  const done: Array<string[]> = [];
  const endField = () => {
    row.push(field);
    field = '';
  };
  const endRow = () => {
    endField();
    done.push(row);
    row = [];
  };
  for await (const chunk of stream as AsyncIterable<string>) {
    let s = chunk;
    if (bom) {
      if (s.charCodeAt(0) === 0xfeff) s = s.slice(1);
      bom = false;
    }
    let runStart = 0;
    for (let i = 0; i < s.length; i++) {
      const c = s.charCodeAt(i);
      if (pendingQuote) {
        pendingQuote = false;
        if (c === 34) {
          field += '"';
          runStart = i + 1;
          continue;
        }
        quoted = false;
      }
      if (quoted) {
        if (c === 34) {
          field += s.slice(runStart, i);
          if (i + 1 >= s.length) pendingQuote = true;
          else if (s.charCodeAt(i + 1) === 34) {
            field += '"';
            i++;
          } else quoted = false;
          runStart = i + 1;
        } else if (c === 10) line++;
        continue;
      }
      if (c === 34) {
        field += s.slice(runStart, i);
        if (field.length === 0) quoted = true;
        else field += '"'; // a stray quote inside an unquoted field is kept as text
        runStart = i + 1;
      } else if (c === 44) {
        field += s.slice(runStart, i);
        endField();
        runStart = i + 1;
      } else if (c === 10 || c === 13) {
        field += s.slice(runStart, i);
        if (c === 13 && i + 1 < s.length && s.charCodeAt(i + 1) === 10) i++;
        line++;
        endRow();
        runStart = i + 1;
      }
    }
    field += s.slice(runStart);
    for (const r of done.splice(0)) {
      const thisLine = rowLine;
      rowLine = line;
      if (r.length === 1 && r[0] === '') continue; // blank line
      if (header === null) {
        header = r.map((h) => h.trim());
        continue;
      }
      yield { header, row: r, line: thisLine };
    }
  }
  if (pendingQuote) quoted = false;
  if (quoted) throw new CxrError('E_PARSE', `CSV file ${file}: a quoted field opened on or after line ${rowLine} is never closed`, { path: file, line: rowLine });
  if (field.length > 0 || row.length > 0) {
    endField();
    if (header === null) header = row.map((h) => h.trim());
    else yield { header, row, line: rowLine };
  }
  if (header === null) throw new CxrError('E_DATA', `CSV file ${file} is empty (no header row)`, { path: file });
}
