/**
 * Sentence splitter for radiology report text.
 *
 * One left-to-right pass over the characters (linear time, no backtracking regular expressions), so a
 * 1 MB pathological report costs the same per character as a normal one. Splitting on "." alone breaks
 * "2.5 cm", "Dr. ___" and "No. 2"; the rules here keep those together and still split the lower-case,
 * space-separated sentences of PadChest (" . ").
 */

/** Options of {@link splitSentences}. */
export interface SplitOptions {
  /** Also end a sentence at ";" followed by white space. Default false (a semicolon joins clauses). */
  semicolons?: boolean;
}

/**
 * Abbreviations after which a "." never ends a sentence (compared lower case, without the final dot).
 * Titles and Latin forms are followed by a name or a clause, not by a new sentence.
 */
const STRONG_ABBREVIATIONS = new Set([
  'dr', 'mr', 'mrs', 'ms', 'prof', 'sr', 'jr', 'st', 'vs', 'v', 'e.g', 'i.e', 'eg', 'ie', 'cf', 'approx', 'appr',
  'fig', 'figs', 'incl', 'resp', 'ca', 'esp', 'viz', 'al', 'ref', 'pt', 'pts', 'hx', 'dx', 'sx', 'tx', 'rx',
  'lat', 'ant', 'post', 'sup', 'inf', 'med', 'dist', 'prox', 'bilat', 'b/l', 'r/o', 's/p', 'w/',
]);

/**
 * Abbreviations that can also end a sentence ("measures 2.5 cm. The heart ..."): the "." ends the
 * sentence only when the next word starts with an upper-case letter.
 */
const WEAK_ABBREVIATIONS = new Set([
  'cm', 'mm', 'm', 'ml', 'cc', 'kg', 'g', 'mg', 'in', 'min', 'max', 'sec', 'hr', 'hrs', 'h', 'etc', 'a.m', 'p.m',
  'am', 'pm', 'no', 'nos', 'nr', 'num', 'vol', 'est', 'a.p', 'p.a', 'ap', 'pa', 'c', 't', 'l', 'r', 'u.s',
]);

/** Longest abbreviation token inspected; bounds the look-back so the pass stays linear. */
const MAX_ABBREV_LEN = 8;

/** True for white space and for control characters, which binary junk turns into. */
export function isSpaceLike(code: number): boolean {
  return (
    code <= 0x20 ||
    (code >= 0x7f && code <= 0xa0) ||
    code === 0xfffd ||
    code === 0xfeff ||
    code === 0x2028 ||
    code === 0x2029 ||
    (code >= 0x2000 && code <= 0x200b) ||
    code === 0x3000
  );
}

/**
 * Collapses every run of white space or control characters into one space and trims. This is the
 * normalisation under which every sentence from {@link splitSentences} is a substring of its input.
 */
export function normalizeWhitespace(text: string): string {
  let out = '';
  let pendingSpace = false;
  let runStart = -1;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (isSpaceLike(c)) {
      if (runStart >= 0) {
        out += text.slice(runStart, i);
        runStart = -1;
      }
      pendingSpace = out.length > 0;
    } else {
      if (runStart < 0) {
        if (pendingSpace) out += ' ';
        pendingSpace = false;
        runStart = i;
      }
    }
  }
  if (runStart >= 0) out += text.slice(runStart);
  return out;
}

function isDigit(c: number): boolean {
  return c >= 48 && c <= 57;
}
function isUpper(c: number): boolean {
  return (c >= 65 && c <= 90) || (c >= 0xc0 && c <= 0xde && c !== 0xd7);
}
function isLetter(c: number): boolean {
  return (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || (c >= 0xc0 && c <= 0x24f && c !== 0xd7 && c !== 0xf7);
}
function isAlnum(c: number): boolean {
  return isDigit(c) || isLetter(c);
}
function isClosing(c: number): boolean {
  // ) ] " ' ’ ” : punctuation that may sit between a full stop and the space after it.
  return c === 41 || c === 93 || c === 34 || c === 39 || c === 0x2019 || c === 0x201d;
}

/** True when the text has at least one letter or digit: a sentence of only punctuation is dropped. */
export function hasContent(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (isAlnum(s.charCodeAt(i))) return true;
  return false;
}

/**
 * Length of a list marker at `i` ("1. ", "2) ", "(3) ", "- ", "* ", "• "), or 0. Only called at a line
 * start or a sentence start, where a number followed by a dot is numbering and not a value.
 */
function listMarkerLength(text: string, i: number): number {
  const n = text.length;
  let j = i;
  const c0 = text.charCodeAt(j);
  if (c0 === 45 || c0 === 42 || c0 === 0x2022) {
    // A dash must be followed by a space, so "-2 cm" and "--" stay text.
    return j + 1 < n && isSpaceLike(text.charCodeAt(j + 1)) ? 2 : 0;
  }
  const paren = c0 === 40;
  if (paren) j++;
  const digitsStart = j;
  while (j < n && j - digitsStart < 3 && isDigit(text.charCodeAt(j))) j++;
  if (j === digitsStart) return 0;
  if (j < n && isDigit(text.charCodeAt(j))) return 0; // 4+ digits: a year or a value
  const c = text.charCodeAt(j);
  if (paren ? c !== 41 : c !== 46 && c !== 41) return 0;
  j++;
  if (j >= n) return j - i;
  if (!isSpaceLike(text.charCodeAt(j))) return 0; // "2.5" or "1.)"
  return j + 1 - i;
}

/**
 * True when the line that ends at `lineEnd` asks for a number ("image No.", "series #") and the next
 * line, starting at `next`, begins with one: the number continues the sentence, it is not numbering.
 */
function numberExpected(text: string, lineEnd: number, next: number): boolean {
  if (!isDigit(text.charCodeAt(next))) return false;
  let e = lineEnd;
  while (e > 0 && isSpaceLike(text.charCodeAt(e - 1))) e--;
  if (e === 0) return false;
  const last = text.charCodeAt(e - 1);
  if (last === 35) return true; // "#"
  if (last !== 46) return false;
  const tok = tokenBefore(text, e - 1);
  return tok === 'no' || tok === 'nos' || tok === 'nr' || tok === 'num';
}

/** The token that ends just before position `dot` (letters, digits, dots, slashes), lower case. */
function tokenBefore(text: string, dot: number): string {
  let j = dot;
  while (j > 0 && dot - j < MAX_ABBREV_LEN + 1) {
    const c = text.charCodeAt(j - 1);
    if (isAlnum(c) || c === 46 || c === 47) j--;
    else break;
  }
  if (j > 0 && dot - j >= MAX_ABBREV_LEN + 1 && !isSpaceLike(text.charCodeAt(j - 1))) return '';
  return text.slice(j, dot).toLowerCase();
}

/** Index of the first non-space character at or after `i`, or `text.length`. */
function skipSpaces(text: string, i: number): number {
  while (i < text.length && isSpaceLike(text.charCodeAt(i))) i++;
  return i;
}

/**
 * Decides whether the "." at `dot` (whose next character is white space or the end) ends a sentence.
 * `next` is the index of the next non-space character.
 */
function fullStopEnds(text: string, dot: number, next: number): boolean {
  if (next >= text.length) return true;
  const tok = tokenBefore(text, dot);
  if (tok === '') return true;
  const nextCode = text.charCodeAt(next);
  // "No. 2", "approx. 3 cm", "vs. 4": a number after an abbreviation continues the sentence.
  if (STRONG_ABBREVIATIONS.has(tok)) return false;
  if (WEAK_ABBREVIATIONS.has(tok)) return isUpper(nextCode) && !(tok === 'no' && isDigit(nextCode));
  // Single letters are initials ("J. Smith") unless a new capitalised sentence clearly follows a digit-free word.
  if (tok.length === 1 && isLetter(tok.charCodeAt(0)) && isUpper(tok.charCodeAt(0))) return false;
  // Dotted forms such as "a.m" or "u.s.a" not in the lists: treat as abbreviations that may end a sentence.
  if (tok.indexOf('.') >= 0 && tok.charCodeAt(tok.length - 1) !== 46) return isUpper(nextCode);
  return true;
}

/**
 * Decides whether the "." at `dot`, followed directly (no space) by a character, ends a sentence: only
 * when a word of 2+ letters starting upper case follows ("apex.There") and the token before the dot is
 * a word of 2+ letters that is not a known abbreviation. Decimals ("4.5"), numbering ("1.2.3"), dotted
 * abbreviations ("a.m.", "e.g.", "p.m.") and titles ("Dr.Smith") stay whole.
 */
function gluedFullStopEnds(text: string, dot: number): boolean {
  if (dot + 2 >= text.length) return false;
  if (!isUpper(text.charCodeAt(dot + 1)) || !isLetter(text.charCodeAt(dot + 2))) return false;
  const tok = tokenBefore(text, dot);
  if (tok.length < 2) return false;
  for (let k = 0; k < tok.length; k++) if (!isLetter(tok.charCodeAt(k))) return false;
  return !STRONG_ABBREVIATIONS.has(tok) && !WEAK_ABBREVIATIONS.has(tok);
}

/**
 * Splits text into sentences.
 *
 * Rules (all applied in one linear pass):
 * - "." "!" "?" and "…"/"..." end a sentence when followed by white space or the end of the text,
 *   except after abbreviations (Dr., e.g., vs., approx., No. 2; units such as "cm." end a sentence
 *   only before a capital letter) and after initials; decimals ("2.5 cm", "3.0 x 1.2") never split
 *   because their dot is not followed by a space.
 * - A "." with no space after it ends a sentence only when a capitalised word of 2+ letters follows and
 *   the token before it is a word of 2+ letters that is not an abbreviation ("apex.There are" splits;
 *   "a.m.", "e.g.", "Dr.Smith", "4.5 cm", "1.2.3" do not).
 * - A blank line ends a sentence; a single line break is a wrapped line and joins with a space.
 * - List numbering ("1.", "2)", "(3)", "-", "*", "•") at a line start or after a sentence end starts a
 *   new sentence and is removed from it.
 * - With `semicolons: true`, "; " also ends a sentence.
 * - A missing final full stop is fine: the trailing text is the last sentence.
 *
 * Every returned sentence is non-empty, has at least one letter or digit, has its white space
 * collapsed to single spaces (see {@link normalizeWhitespace}) and is a substring of
 * `normalizeWhitespace(text)`.
 *
 * @param text report or section text (any line endings; control characters count as spaces)
 * @param opts see {@link SplitOptions}
 */
export function splitSentences(text: string, opts: SplitOptions = {}): string[] {
  const semicolons = opts.semicolons === true;
  const out: string[] = [];
  const n = text.length;
  let start = 0; // start of the current sentence (raw index)

  const emit = (end: number) => {
    if (end > start) {
      const s = normalizeWhitespace(text.slice(start, end));
      if (s.length > 0 && hasContent(s)) out.push(s);
    }
  };
  // At a sentence start, skip spaces and a list marker so numbering never becomes part of a sentence.
  const beginSentence = (i: number): number => {
    let j = skipSpaces(text, i);
    const m = j < n ? listMarkerLength(text, j) : 0;
    if (m > 0) j = skipSpaces(text, j + m);
    return j;
  };

  start = beginSentence(0);
  let i = start;
  while (i < n) {
    const c = text.charCodeAt(i);
    if (c === 10 || c === 13) {
      // Line break: look at the next line to see whether it is blank or starts a list item.
      let j = i + 1;
      if (c === 13 && j < n && text.charCodeAt(j) === 10) j++;
      let blank = false;
      // Skip horizontal white space, noting a second line break (a blank line).
      while (j < n) {
        const d = text.charCodeAt(j);
        if (d === 10 || d === 13) blank = true;
        else if (!isSpaceLike(d)) break;
        j++;
      }
      if (blank || (j < n && listMarkerLength(text, j) > 0 && !numberExpected(text, i, j))) {
        emit(i);
        start = beginSentence(j);
        i = start;
        continue;
      }
      i = j;
      continue;
    }
    const isDot = c === 46;
    if (isDot || c === 33 || c === 63 || c === 0x2026 || (semicolons && c === 59)) {
      // Extend over a run of terminators ("?!", "...") and closing quotes or brackets.
      let j = i + 1;
      while (j < n) {
        const d = text.charCodeAt(j);
        if (d === 46 || d === 33 || d === 63 || d === 0x2026) j++;
        else break;
      }
      const runLen = j - i;
      const ellipsis = runLen >= 3 || c === 0x2026;
      while (j < n && isClosing(text.charCodeAt(j))) j++;
      if (j < n && !isSpaceLike(text.charCodeAt(j))) {
        // "apex.There are": a full stop glued to a capitalised word still ends a sentence.
        if (isDot && runLen === 1 && j === i + 1 && gluedFullStopEnds(text, i)) {
          emit(j);
          start = beginSentence(j);
          i = start;
          continue;
        }
        // "2.5", "e.g.,", "a.m.;", "Dr.Smith": not the end of a sentence.
        i = j;
        continue;
      }
      const next = skipSpaces(text, j);
      let ends: boolean;
      if (isDot && runLen === 1) ends = fullStopEnds(text, i, next);
      else if (ellipsis) ends = next >= n || isUpper(text.charCodeAt(next)) || listMarkerLength(text, next) > 0;
      else ends = true;
      if (ends) {
        emit(j);
        start = beginSentence(j);
        i = start;
        continue;
      }
      i = j;
      continue;
    }
    i++;
  }
  emit(n);
  return out;
}
