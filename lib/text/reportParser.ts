/**
 * Radiology report section parser.
 *
 * Raw report text (MIMIC-CXR free text, CheXpert-Plus columns, Open-I/IU XML or CSV rows, PadChest's
 * header-less report field, a plain paragraph) becomes an ordered list of sections with canonical names.
 * The parser reads the text line by line and inspects a bounded prefix of each line, and a bounded
 * window before each ":", so it is linear in the input length; it never throws on odd text.
 */
import { CxrError } from '../errors';
import { isSpaceLike } from './sentenceSplitter';

/** Canonical section names. Anything unrecognised is `other` and keeps its header. */
export type SectionName =
  | 'findings'
  | 'impression'
  | 'indication'
  | 'history'
  | 'comparison'
  | 'technique'
  | 'recommendation'
  | 'notification'
  | 'addendum'
  | 'other';

/** All canonical section names, in the order reports usually present them. */
export const SECTION_NAMES: readonly SectionName[] = [
  'indication',
  'history',
  'technique',
  'comparison',
  'findings',
  'impression',
  'recommendation',
  'notification',
  'addendum',
  'other',
];

/** One section of a report. */
export interface ReportSection {
  /** Canonical name. */
  name: SectionName;
  /** The header as written (without the colon), or null for text that had no header. */
  header: string | null;
  /**
   * The section text: line ends normalised to "\n", control characters replaced by spaces, each line
   * trimmed, runs of blank lines reduced to one, trimmed. Empty when the header had no text under it.
   */
  text: string;
}

/** Result of parsing one report. */
export interface ParsedReport {
  /** Sections in report order. Empty for an empty (or all white space) report. */
  sections: ReportSection[];
}

/** Options of {@link parseReport}. */
export interface ParseOptions {
  /**
   * Name given to a report with no recognised header at all (PadChest, a plain paragraph).
   * Default 'findings': such text describes the image and should be sampled.
   */
  headerless?: SectionName;
  /** Name given to text that precedes the first header of a report that has headers. Default 'other'. */
  leading?: SectionName;
}

/** Marker for title lines such as "FINAL REPORT": they end the previous section and start no new one. */
type HeaderKind = SectionName | 'title';

/**
 * Header spellings (lower case, letters and single spaces only) mapped to canonical names. Plurals
 * are found by also trying the form without a final "s".
 */
const HEADER_MAP: ReadonlyMap<string, HeaderKind> = new Map<string, HeaderKind>([
  ['findings', 'findings'],
  ['finding', 'findings'],
  ['findings and impression', 'findings'],
  ['findings impression', 'findings'],
  ['impression and findings', 'findings'],
  ['report', 'findings'],
  ['report text', 'findings'],
  ['body', 'findings'],
  ['description', 'findings'],
  ['observation', 'findings'],
  ['impression', 'impression'],
  ['final impression', 'impression'],
  ['conclusion', 'impression'],
  ['summary', 'impression'],
  ['opinion', 'impression'],
  ['diagnosis', 'impression'],
  ['end of impression', 'impression'],
  ['impresion', 'impression'],
  ['conclusion diagnostica', 'impression'],
  ['indication', 'indication'],
  ['clinical indication', 'indication'],
  ['reason for exam', 'indication'],
  ['reason for examination', 'indication'],
  ['reason for study', 'indication'],
  ['reason for the exam', 'indication'],
  ['reason for the examination', 'indication'],
  ['reason', 'indication'],
  ['clinical question', 'indication'],
  ['indicacion', 'indication'],
  ['history', 'history'],
  ['clinical history', 'history'],
  ['medical history', 'history'],
  ['clinical information', 'history'],
  ['clinical data', 'history'],
  ['clinical details', 'history'],
  ['hx', 'history'],
  ['clinical hx', 'history'],
  ['comparison', 'comparison'],
  ['comparison study', 'comparison'],
  ['comparison exam', 'comparison'],
  ['comparison examination', 'comparison'],
  ['prior', 'comparison'],
  ['prior study', 'comparison'],
  ['prior exam', 'comparison'],
  ['technique', 'technique'],
  ['examination', 'technique'],
  ['exam', 'technique'],
  ['procedure', 'technique'],
  ['procedure comment', 'technique'],
  ['study', 'technique'],
  ['view', 'technique'],
  ['type of examination', 'technique'],
  ['examination type', 'technique'],
  ['recommendation', 'recommendation'],
  ['follow up', 'recommendation'],
  ['followup', 'recommendation'],
  ['notification', 'notification'],
  ['communication', 'notification'],
  ['critical result', 'notification'],
  ['critical finding', 'notification'],
  ['addendum', 'addendum'],
  ['addendum begin', 'addendum'],
  ['final report', 'title'],
  ['preliminary report', 'title'],
  ['final addendum', 'addendum'],
]);

/** Longest header (characters) looked at; real headers are far shorter, and the bound keeps the scan linear. */
const MAX_HEADER_LEN = 60;
/** An unknown upper-case header has at most this many words; longer upper-case runs are shouted text. */
const MAX_UNKNOWN_HEADER_WORDS = 6;

/** Lower case, non-letters to single spaces, trimmed: the key for {@link HEADER_MAP}. */
function headerKey(h: string): string {
  // "RECOMMENDATION(S)" and "IMPRESSION(S)" mean the plural.
  if (h.indexOf('(') >= 0) h = h.replace(/\(s\)/gi, 's');
  let out = '';
  let space = false;
  for (let i = 0; i < h.length; i++) {
    const c = h.charCodeAt(i) | 0x20; // ASCII lower case for letters
    if (c >= 97 && c <= 122) {
      if (space && out.length > 0) out += ' ';
      space = false;
      out += String.fromCharCode(c);
    } else space = true;
  }
  return out;
}

/**
 * Header views such as "PA AND LATERAL VIEWS OF THE CHEST" head the findings in older MIMIC reports.
 * Only upper-case headers with an imaging word qualify, so ordinary text is not caught.
 */
const IMAGING_WORDS = new Set(['chest', 'radiograph', 'radiographs', 'view', 'views', 'film', 'films', 'xray', 'cxr']);

/** Canonical kind for a header text, or undefined when not a known header. */
export function canonicalSectionName(header: string): SectionName | undefined {
  const k = lookupHeader(header);
  return k === undefined || k === 'title' ? undefined : k;
}

function lookupHeader(header: string): HeaderKind | undefined {
  const key = headerKey(header);
  if (key.length === 0) return undefined;
  const direct = HEADER_MAP.get(key);
  if (direct) return direct;
  if (key.endsWith('s')) {
    const singular = HEADER_MAP.get(key.slice(0, -1));
    if (singular) return singular;
  }
  // "FINDINGS/IMPRESSION" or "IMPRESSION/RECOMMENDATIONS": the first known part names the section.
  return undefined;
}

/** Characters allowed inside a header name (letters, space, / & ( ) ' - , and "."). */
function isHeaderChar(c: number): boolean {
  return (
    (c >= 65 && c <= 90) ||
    (c >= 97 && c <= 122) ||
    c === 32 ||
    c === 9 ||
    c === 47 ||
    c === 38 ||
    c === 40 ||
    c === 41 ||
    c === 39 ||
    c === 45 ||
    c === 44 ||
    (c >= 0xc0 && c <= 0xff && c !== 0xd7 && c !== 0xf7)
  );
}

function isAllUpper(s: string): boolean {
  let letters = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 97 && c <= 122) return false;
    if (c >= 65 && c <= 90) letters++;
  }
  return letters >= 2;
}

function wordCount(s: string): number {
  const k = headerKey(s);
  if (k.length === 0) return 0;
  let n = 1;
  for (let i = 0; i < k.length; i++) if (k.charCodeAt(i) === 32) n++;
  return n;
}

/** Resolves a header text to its kind (known or, when upper case and short, 'other'). */
function classifyHeader(raw: string, allowUnknown: boolean): HeaderKind | undefined {
  const known = lookupHeader(raw);
  if (known) return known;
  // Compound headers: "FINDINGS/IMPRESSION", "IMPRESSION AND RECOMMENDATION".
  const key = headerKey(raw);
  const slash = raw.indexOf('/');
  if (slash > 0) {
    const first = lookupHeader(raw.slice(0, slash));
    if (first) return first;
  }
  if (!allowUnknown || !isAllUpper(raw)) return undefined;
  const words = wordCount(raw);
  if (words === 0) return undefined;
  // View headers are long ("PORTABLE SEMI-UPRIGHT FRONTAL VIEW OF THE CHEST"), so they get more words.
  if (words <= 2 * MAX_UNKNOWN_HEADER_WORDS) for (const w of key.split(' ')) if (IMAGING_WORDS.has(w)) return 'findings';
  if (words > MAX_UNKNOWN_HEADER_WORDS) return undefined;
  if (key.startsWith('impression')) return 'impression';
  if (key.startsWith('findings')) return 'findings';
  return 'other';
}

/** A header found in the text: its raw span and where its section's text starts. */
interface HeaderHit {
  /** Index where the header starts (the section before it ends here). */
  start: number;
  /** Index just after the header and its colon (the section text starts here). */
  textStart: number;
  header: string;
  kind: HeaderKind;
}

/**
 * Replaces CR LF / CR with LF and control characters, U+FFFD and other odd spaces with a plain space,
 * so later stages see clean lines. Keeps length-independent semantics (linear, no regex).
 */
export function cleanReportText(text: string): string {
  let out = '';
  let runStart = 0;
  const n = text.length;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c === 10 || c === 32) continue;
    if (c === 13) {
      out += text.slice(runStart, i) + '\n';
      if (i + 1 < n && text.charCodeAt(i + 1) === 10) i++;
      runStart = i + 1;
    } else if (isSpaceLike(c)) {
      out += text.slice(runStart, i) + ' ';
      runStart = i + 1;
    }
  }
  return out + text.slice(runStart);
}

/** Trims each line, reduces runs of blank lines to one and trims the whole text. */
function tidySection(text: string): string {
  const lines = text.split('\n');
  const out: string[] = [];
  let blank = false;
  for (const raw of lines) {
    const line = raw.trim();
    if (line.length === 0) {
      blank = out.length > 0;
      continue;
    }
    if (blank) out.push('');
    blank = false;
    out.push(line);
  }
  return out.join('\n');
}

/** Header at the start of a line (after indentation): "FINDINGS:", "Impression:", "IMPRESSION" alone. */
function headerAtLineStart(
  text: string,
  lineStart: number,
  lineEnd: number,
  nextLine: [number, number] | null,
  afterBreak: boolean,
): HeaderHit | null {
  let s = lineStart;
  while (s < lineEnd && (text.charCodeAt(s) === 32 || text.charCodeAt(s) === 9)) s++;
  if (s >= lineEnd) return null;
  const first = text.charCodeAt(s);
  if (!((first >= 65 && first <= 90) || (first >= 97 && first <= 122))) return null;
  const limit = Math.min(lineEnd, s + MAX_HEADER_LEN + 1);
  let j = s;
  while (j < limit && isHeaderChar(text.charCodeAt(j))) j++;
  const c = j < lineEnd ? text.charCodeAt(j) : -1;
  if (c === 58) {
    // "HEADER:" followed by the section text on the same line, or nothing.
    const raw = text.slice(s, j).trim();
    const known = classifyHeader(raw, false);
    if (known) return { start: lineStart, textStart: j + 1, header: raw, kind: known };
    // "FINAL REPORT INDICATION:": a known upper-case header ends the run; the words before it stay text.
    if (isAllUpper(raw)) {
      for (let w = s + 1; w < j; w++) {
        if (text.charCodeAt(w - 1) !== 32 || text.charCodeAt(w) === 32) continue;
        const tail = text.slice(w, j).trim();
        const k = classifyHeader(tail, false);
        if (k) return { start: w, textStart: j + 1, header: tail, kind: k };
      }
    }
    const kind = classifyHeader(raw, true);
    if (kind) return { start: lineStart, textStart: j + 1, header: raw, kind };
    return null;
  }
  if (j === lineEnd || (c === 46 && j + 1 === lineEnd) || (c === 45 && j + 1 === lineEnd)) {
    // A whole line that is only a known header ("IMPRESSION", "Addendum", "FINAL REPORT").
    const raw = text.slice(s, j).trim();
    if (raw.length === 0 || raw.length > MAX_HEADER_LEN) return null;
    const known = classifyHeader(raw, false);
    // A lower-case word alone on a wrapped line ("... stable vs.\nprior") is text: a header without a
    // colon must be upper case, or capitalised after a blank line or a finished sentence.
    const capital = raw.charCodeAt(0) >= 65 && raw.charCodeAt(0) <= 90;
    if (known && (isAllUpper(raw) || (capital && afterBreak && wordCount(raw) <= 3))) return { start: lineStart, textStart: lineEnd, header: raw, kind: known };
    // A header broken over two lines: "REASON FOR" + "EXAMINATION: ...".
    if (nextLine && isAllUpper(raw) && wordCount(raw) <= 4) {
      const [ns, ne] = nextLine;
      let k = ns;
      while (k < ne && (text.charCodeAt(k) === 32 || text.charCodeAt(k) === 9)) k++;
      const kLimit = Math.min(ne, k + MAX_HEADER_LEN + 1);
      let m = k;
      while (m < kLimit && isHeaderChar(text.charCodeAt(m))) m++;
      if (m < ne && text.charCodeAt(m) === 58) {
        const tail = text.slice(k, m).trim();
        const joined = raw + ' ' + tail;
        const kind = lookupHeader(joined);
        if (kind && isAllUpper(tail)) return { start: lineStart, textStart: m + 1, header: joined, kind };
      }
    }
  }
  return null;
}

/**
 * Headers in the middle of a line ("... clear. IMPRESSION: No acute process."), as in single-line
 * reports from CSV exports. Only known headers count: upper case anywhere, any case after a sentence
 * end. Looks back at most {@link MAX_HEADER_LEN} characters from each ":".
 */
function headersInLine(text: string, from: number, lineEnd: number, out: HeaderHit[], afterHeader: boolean): void {
  let i = from;
  while (i < lineEnd) {
    // Search this line only: an indexOf over the rest of the text per line would be quadratic.
    let colon = i;
    while (colon < lineEnd && text.charCodeAt(colon) !== 58) colon++;
    if (colon >= lineEnd) return;
    i = colon + 1;
    // Walk back over header characters.
    let b = colon;
    while (b > from && colon - b < MAX_HEADER_LEN && isHeaderChar(text.charCodeAt(b - 1))) b--;
    const window = text.slice(b, colon);
    // Try word suffixes, longest first, so "THE LUNGS ARE CLEAR IMPRESSION" yields "IMPRESSION".
    const words: number[] = [];
    for (let k = 0; k < window.length; k++) {
      const ch = window.charCodeAt(k);
      const prev = k === 0 ? 32 : window.charCodeAt(k - 1);
      if (ch !== 32 && ch !== 9 && (prev === 32 || prev === 9)) words.push(k);
    }
    for (const w of words) {
      const cand = window.slice(w).trim();
      const kind = classifyHeader(cand, false);
      if (!kind) continue;
      const startAbs = b + w;
      // What precedes the candidate: line start, or a sentence end / punctuation then space.
      let p = startAbs - 1;
      while (p >= from && (text.charCodeAt(p) === 32 || text.charCodeAt(p) === 9)) p--;
      const before = p < from ? -1 : text.charCodeAt(p);
      // Right after another header's colon a header word is content ("INDICATION: History: ___M ...").
      if (before === -1 && afterHeader) break;
      const afterSentence = before === -1 || before === 46 || before === 33 || before === 63 || before === 59;
      if (isAllUpper(cand) ? p < startAbs - 1 || before === -1 : afterSentence) {
        out.push({ start: startAbs, textStart: colon + 1, header: cand, kind });
      }
      break;
    }
  }
}

/**
 * Parses raw report text into ordered sections.
 *
 * - Headers are recognised at a line start ("FINDINGS:", "Impression:", a line that is only
 *   "IMPRESSION" or "ADDENDUM", a header broken over two lines such as "REASON FOR\nEXAMINATION:") and,
 *   for known names, in the middle of a line ("... clear. IMPRESSION: ...").
 * - Known spellings map to canonical names (e.g. CONCLUSION → impression, REASON FOR EXAMINATION →
 *   indication, EXAMINATION → technique). An unknown upper-case header of at most six words becomes
 *   `other` with its header kept ("WET READ"); headers with an imaging word ("PA AND LATERAL VIEWS OF
 *   THE CHEST") head findings, as in older MIMIC reports. "FINAL REPORT" is a title and is dropped.
 * - Text before the first header is a section named `opts.leading` ('other') with a null header; a
 *   report with no header at all is one section named `opts.headerless` ('findings').
 * - A header with nothing under it is kept with empty text (a report of only headers parses to
 *   sections whose text is '').
 * - CR LF and CR become LF, control characters and binary junk become spaces; an empty report gives
 *   `{ sections: [] }`. De-identification placeholders (`___`) are kept here; the sampler removes them.
 *
 * @throws CxrError E_PARSE when `text` is not a string.
 */
export function parseReport(text: string, opts: ParseOptions = {}): ParsedReport {
  if (typeof text !== 'string') throw new CxrError('E_PARSE', `report text must be a string, got ${text === null ? 'null' : typeof text}`);
  const src = cleanReportText(text);
  const hits: HeaderHit[] = [];
  const n = src.length;
  let ls = 0;
  let afterBreak = true; // the previous line was blank or ended a sentence
  let nextColon = src.indexOf(':'); // first ":" at or after the scan point, -1 when none is left
  while (ls <= n) {
    let le = src.indexOf('\n', ls);
    if (le < 0) le = n;
    let next: [number, number] | null = null;
    if (le < n) {
      let ne = src.indexOf('\n', le + 1);
      if (ne < 0) ne = n;
      next = [le + 1, ne];
    }
    let scanFrom = ls;
    const h = headerAtLineStart(src, ls, le, next, afterBreak);
    let last = le;
    while (last > ls && (src.charCodeAt(last - 1) === 32 || src.charCodeAt(last - 1) === 9)) last--;
    if (last > ls) {
      const lc = src.charCodeAt(last - 1);
      afterBreak = lc === 46 || lc === 33 || lc === 63 || lc === 58 || h !== null;
    } else afterBreak = true;
    if (h) {
      hits.push(h);
      scanFrom = Math.min(h.textStart, le);
      if (h.textStart > le) {
        // The header ran over into the next line: continue after it on that line.
        headersInLine(src, h.textStart, next ? next[1] : n, hits, true);
        ls = next ? next[1] + 1 : n + 1;
        continue;
      }
    }
    if (nextColon < scanFrom && nextColon !== -1) nextColon = src.indexOf(':', scanFrom);
    if (nextColon !== -1 && nextColon < le) headersInLine(src, scanFrom, le, hits, h !== null);
    ls = le + 1;
  }

  const sections: ReportSection[] = [];
  if (hits.length === 0) {
    const body = tidySection(src);
    if (body.length > 0) sections.push({ name: opts.headerless ?? 'findings', header: null, text: body });
    return { sections };
  }
  const lead = tidySection(src.slice(0, hits[0].start));
  if (lead.length > 0) sections.push({ name: opts.leading ?? 'other', header: null, text: lead });
  for (let h = 0; h < hits.length; h++) {
    const hit = hits[h];
    const end = h + 1 < hits.length ? hits[h + 1].start : n;
    const body = tidySection(src.slice(Math.min(hit.textStart, end), end));
    if (hit.kind === 'title') {
      if (body.length > 0) sections.push({ name: opts.leading ?? 'other', header: null, text: body });
      continue;
    }
    sections.push({ name: hit.kind, header: hit.header, text: body });
  }
  return { sections };
}

/** Column names (lower case, without a "section_" prefix) that hold report sections. */
const COLUMN_SECTIONS: ReadonlyMap<string, SectionName> = new Map<string, SectionName>([
  ['findings', 'findings'],
  ['impression', 'impression'],
  ['end_of_impression', 'impression'],
  ['summary', 'impression'],
  ['indication', 'indication'],
  ['clinical_history', 'history'],
  ['history', 'history'],
  ['comparison', 'comparison'],
  ['technique', 'technique'],
  ['procedure_comments', 'technique'],
  ['recommendation', 'recommendation'],
  ['recommendations', 'recommendation'],
  ['notification', 'notification'],
  ['addendum', 'addendum'],
]);

/** Columns holding the whole report, parsed as free text when no section column has text. */
const WHOLE_REPORT_COLUMNS = ['report', 'section_narrative', 'narrative', 'text', 'report_text'];

/**
 * Builds a report from per-section columns: CheXpert-Plus (`section_findings`, `section_impression`,
 * `section_clinical_history`, `section_history`, `section_comparison`, `section_technique`,
 * `section_procedure_comments`, `section_end_of_impression`, `section_summary`), the Open-I/IU CSV
 * export (`indication`, `comparison`, `findings`, `impression`) and similar. Column names match case
 * insensitively. Section columns are taken in the order of the object's keys; other columns (ids,
 * paths, labels) are ignored. When no section column has text, the first non-empty whole-report column
 * (`report`, `section_narrative`, `narrative`, `text`) is parsed with {@link parseReport}.
 */
export function parseReportColumns(cols: Record<string, string | undefined | null>, opts: ParseOptions = {}): ParsedReport {
  if (cols === null || typeof cols !== 'object') throw new CxrError('E_PARSE', 'report columns must be an object of strings');
  const sections: ReportSection[] = [];
  const lower = new Map<string, string>();
  for (const [k, v] of Object.entries(cols)) {
    if (typeof v !== 'string') continue;
    lower.set(k.toLowerCase().trim(), v);
    const key = k.toLowerCase().trim().replace(/^section_/, '');
    const name = COLUMN_SECTIONS.get(key);
    if (!name) continue;
    const text = tidySection(cleanReportText(v));
    if (text.length === 0) continue;
    sections.push({ name, header: k, text });
  }
  if (sections.length > 0) return { sections };
  for (const c of WHOLE_REPORT_COLUMNS) {
    const v = lower.get(c);
    if (v !== undefined && v.trim().length > 0) return parseReport(v, opts);
  }
  return { sections: [] };
}

/** Decodes the five XML entities and numeric character references (linear, one pass). */
function decodeXmlEntities(s: string): string {
  if (s.indexOf('&') < 0) return s;
  let out = '';
  let i = 0;
  while (i < s.length) {
    const amp = s.indexOf('&', i);
    if (amp < 0) break;
    out += s.slice(i, amp);
    const semi = s.indexOf(';', amp);
    const ent = semi > amp && semi - amp <= 10 ? s.slice(amp + 1, semi) : '';
    let rep: string | undefined;
    if (ent === 'amp') rep = '&';
    else if (ent === 'lt') rep = '<';
    else if (ent === 'gt') rep = '>';
    else if (ent === 'quot') rep = '"';
    else if (ent === 'apos') rep = "'";
    else if (ent.startsWith('#')) {
      const code = ent[1] === 'x' || ent[1] === 'X' ? parseInt(ent.slice(2), 16) : parseInt(ent.slice(1), 10);
      if (Number.isFinite(code) && code > 0 && code <= 0x10ffff) rep = String.fromCodePoint(code);
    }
    if (rep !== undefined) {
      out += rep;
      i = semi + 1;
    } else {
      out += '&';
      i = amp + 1;
    }
  }
  return out + s.slice(i);
}

/** Removes tags inside an element's text ("<b>x</b>" → "x"), linear. */
function stripTags(s: string): string {
  if (s.indexOf('<') < 0) return s;
  let out = '';
  let i = 0;
  while (i < s.length) {
    const lt = s.indexOf('<', i);
    if (lt < 0) break;
    out += s.slice(i, lt);
    const gt = s.indexOf('>', lt);
    if (gt < 0) {
      i = lt;
      break;
    }
    i = gt + 1;
  }
  return out + s.slice(i);
}

/**
 * Parses an Open-I / IU X-ray report XML file: every `<AbstractText Label="...">` element becomes a
 * section (Label mapped like a header: FINDINGS, IMPRESSION, INDICATION, COMPARISON, ...; unknown
 * labels are `other`). Entities are decoded and nested tags dropped. An element without a closing tag
 * ends the scan (the rest is ignored). IU's "XXXX" de-identification marks are kept here.
 *
 * @throws CxrError E_PARSE when the text has no `<AbstractText` element at all.
 */
export function parseOpenIXml(xml: string): ParsedReport {
  if (typeof xml !== 'string') throw new CxrError('E_PARSE', 'Open-I XML must be a string');
  const sections: ReportSection[] = [];
  const OPEN = '<AbstractText';
  const CLOSE = '</AbstractText>';
  let i = 0;
  let found = false;
  while (true) {
    const open = xml.indexOf(OPEN, i);
    if (open < 0) break;
    found = true;
    const gt = xml.indexOf('>', open);
    if (gt < 0) break;
    const attrs = xml.slice(open + OPEN.length, gt);
    if (attrs.endsWith('/')) {
      i = gt + 1;
      continue;
    }
    const close = xml.indexOf(CLOSE, gt);
    if (close < 0) break;
    const label = readAttr(attrs, 'Label');
    const body = tidySection(cleanReportText(decodeXmlEntities(stripTags(xml.slice(gt + 1, close)))));
    const known = label ? lookupHeader(label) : undefined;
    const name: SectionName = known && known !== 'title' ? known : 'other';
    sections.push({ name, header: label, text: body });
    i = close + CLOSE.length;
  }
  if (!found) throw new CxrError('E_PARSE', 'not an Open-I report: no <AbstractText> element found');
  return { sections };
}

/** Reads `name="value"` (or single quotes) from an attribute string, bounded by its length. */
function readAttr(attrs: string, name: string): string | null {
  const lowerAttrs = attrs.toLowerCase();
  const at = lowerAttrs.indexOf(name.toLowerCase() + '=');
  if (at < 0) return null;
  const q = attrs.charAt(at + name.length + 1);
  if (q !== '"' && q !== "'") return null;
  const end = attrs.indexOf(q, at + name.length + 2);
  if (end < 0) return null;
  return decodeXmlEntities(attrs.slice(at + name.length + 2, end)).trim();
}

/** Concatenated text of the sections with the given names, in report order, separated by blank lines. */
export function sectionText(report: ParsedReport, names: readonly SectionName[]): string {
  return report.sections
    .filter((s) => names.includes(s.name) && s.text.length > 0)
    .map((s) => s.text)
    .join('\n\n');
}
