/**
 * Python-compatible text primitives. The CLIP reference tokenizer is Python (`html.unescape`,
 * `str.strip`, the `regex` module's `\s`), and JavaScript's built-ins differ from it at the edges
 * (JS `\s` includes U+FEFF but not U+0085; `trim()` does not strip U+001C..U+001F). Token ids must
 * equal the reference exactly, so these helpers reproduce Python's behaviour rather than JS's.
 * @internal
 */
import entities from './htmlEntities.json';

/**
 * The `regex` module's `\s` (Unicode White_Space), as a character-class body. Used for the CLIP
 * whitespace collapse and inside the pre-tokenisation pattern.
 */
export const PY_REGEX_WS = '\\t\\n\\v\\f\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';

/** Python's `str.isspace()` set (what `str.strip()` removes): White_Space plus U+001C..U+001F. */
const PY_STRIP_WS = PY_REGEX_WS + '\\x1c-\\x1f';
const STRIP_RE = new RegExp(`^[${PY_STRIP_WS}]+|[${PY_STRIP_WS}]+$`, 'gu');
const COLLAPSE_RE = new RegExp(`[${PY_REGEX_WS}]+`, 'gu');

/** `s.strip()` with Python's whitespace definition. */
export function pyStrip(s: string): string {
  return s.replace(STRIP_RE, '');
}

/** `regex.sub(r'\s+', ' ', s)` with the `regex` module's whitespace definition. */
export function pyCollapseWhitespace(s: string): string {
  return s.replace(COLLAPSE_RE, ' ');
}

const named = entities.named as Record<string, string>;
const invalidCharrefs = entities.invalidCharrefs as Record<string, string>;
const invalidCodepoints = new Set<number>(entities.invalidCodepoints);
// Same grammar as CPython's html._charref; the `u` flag makes {1,32} count code points like Python.
const CHARREF_RE = /&(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?)/gu;

function numericCharref(digits: string, radix: number): string {
  // Python parses arbitrarily long numbers; anything past 0x10FFFF ends up as U+FFFD, so we only
  // need the exact value when it is small.
  const trimmed = digits.replace(/^0+/, '');
  const num = trimmed.length > 8 ? Number.POSITIVE_INFINITY : trimmed.length === 0 ? 0 : parseInt(trimmed, radix);
  const fix = invalidCharrefs[String(num)];
  if (fix !== undefined) return fix;
  if ((num >= 0xd800 && num <= 0xdfff) || num > 0x10ffff) return '\ufffd';
  if (invalidCodepoints.has(num)) return '';
  return String.fromCodePoint(num);
}

function replaceCharref(_m: string, ref: string): string {
  if (ref[0] === '#') {
    const body = ref.endsWith(';') ? ref.slice(0, -1) : ref;
    if (body[1] === 'x' || body[1] === 'X') return numericCharref(body.slice(2), 16);
    return numericCharref(body.slice(1), 10);
  }
  const exact = named[ref];
  if (exact !== undefined) return exact;
  // Longest known prefix (entities such as "amp" are valid without the semicolon), as the HTML5
  // standard and CPython do. Index by code points so astral characters count as one.
  const cps = Array.from(ref);
  for (let x = cps.length - 1; x > 1; x--) {
    const prefix = cps.slice(0, x).join('');
    const hit = named[prefix];
    if (hit !== undefined) return hit + cps.slice(x).join('');
  }
  return '&' + ref;
}

/** Python's `html.unescape(s)`: named, decimal and hex character references, HTML5 rules. */
export function htmlUnescape(s: string): string {
  if (!s.includes('&')) return s;
  return s.replace(CHARREF_RE, replaceCharref);
}
