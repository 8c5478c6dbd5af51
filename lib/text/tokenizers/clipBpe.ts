/**
 * OpenAI CLIP byte-level BPE tokenizer, reproducing `clip/simple_tokenizer.py` (and open_clip's
 * `SimpleTokenizer`, which is the same algorithm) id for id, without ftfy.
 */
import { CxrError } from '../../errors';
import { packageAsset, readTokenizerJson, readTokenizerText } from './files';
import { htmlUnescape, pyCollapseWhitespace, pyStrip, PY_REGEX_WS } from './pyText';
import type { TextTokenizer, TokenBatch } from './types';
import { TextIdsCache } from './textCache';

/** Id of `<|startoftext|>` in the OpenAI vocabulary. */
export const CLIP_START_ID = 49406;
/** Id of `<|endoftext|>` in the OpenAI vocabulary. */
export const CLIP_END_ID = 49407;
/** Ids in the OpenAI CLIP vocabulary (256 bytes, 256 bytes + `</w>`, 48 894 merges, 2 specials). */
export const CLIP_VOCAB_SIZE = 49408;
/** CLIP's text context length. */
export const CLIP_CONTEXT_LENGTH = 77;

const START_TOKEN = '<|startoftext|>';
const END_TOKEN = '<|endoftext|>';
/** The reference reads merges from lines 1 .. 49152-256-2 of the vocabulary file. */
const OPENAI_MERGES = 49152 - 256 - 2;
/** Bound the per-word cache so a long training run over a huge corpus cannot grow it forever. */
const CACHE_LIMIT = 200_000;


/**
 * The reference pattern `<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+`
 * compiled by Python's `regex` module with IGNORECASE, translated to a JS `u` regex with the same
 * matches on lower-cased text: `\s` is the `regex` module's set (JS's differs), IGNORECASE lets
 * `'s` and the `s` of startoftext match U+017F (long s, unchanged by lower()), and U+0345 is matched
 * by no alternative there (it case-folds to a letter, so the negated class excludes it) and is
 * therefore dropped.
 */
const PRETOKENIZE_RE = new RegExp(
  `<\\|[s\\u017f]tartoftext\\|>|<\\|endoftext\\|>|'[s\\u017f]|'t|'re|'ve|'m|'ll|'d|\\p{L}+|\\p{N}|[^${PY_REGEX_WS}\\p{L}\\p{N}\\u0345]+`,
  'gu',
);

/**
 * GPT-2's reversible byte → printable character table (`bytes_to_unicode`), as `[byte, char]` in
 * the reference's dict order (printable bytes first), which is also the order of the first 256 ids.
 */
function bytesToUnicode(): Array<[number, string]> {
  const bs: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) bs.push(b);
  for (let b = 0xa1; b <= 0xac; b++) bs.push(b);
  for (let b = 0xae; b <= 0xff; b++) bs.push(b);
  const pairs: Array<[number, string]> = bs.map((b) => [b, String.fromCharCode(b)]);
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (!bs.includes(b)) pairs.push([b, String.fromCharCode(256 + n++)]);
  }
  return pairs;
}

const BYTE_PAIRS = bytesToUnicode();
/** Byte value → symbol. */
const BYTE_ENCODER: string[] = [];
for (const [b, c] of BYTE_PAIRS) BYTE_ENCODER[b] = c;
/** Symbols in vocabulary order. */
const BYTE_SYMBOLS = BYTE_PAIRS.map(([, c]) => c);
const BYTE_DECODER = new Map<string, number>(BYTE_PAIRS.map(([b, c]) => [c, b]));

/** Options for {@link ClipTokenizer}. */
export interface ClipTokenizerOptions {
  /** Default length of `encodeBatch` rows (the text model's context length). Default 77. */
  contextLength?: number;
}

/** Vocabulary + merges, from any of the supported file layouts. */
interface BpeTables {
  vocab: Map<string, number>;
  merges: Array<[string, string]>;
  source: string;
}

function checkContextLength(n: number, what: string): void {
  if (!Number.isInteger(n) || n < 2) {
    throw new CxrError('E_CONFIG', `${what} must be an integer >= 2 (room for the start and end tokens), got ${n}`);
  }
}

/**
 * CLIP BPE tokenizer (OpenAI / open_clip / CheXzero text towers).
 *
 * Matches the reference `SimpleTokenizer` exactly except that ftfy's `fix_text` is not applied
 * (see docs/tokenizers.md for what that changes): HTML unescape twice, whitespace collapse, strip,
 * lower-case, the reference pre-tokenisation pattern, byte-level BPE with `</w>` word ends.
 * `encodeBatch` adds start 49406 / end 49407, pads with 0 and truncates like open_clip
 * (`tokens[:L]`, last set to the end token).
 */
export class ClipTokenizer implements TextTokenizer {
  /** Always `'clip-bpe'`. */
  readonly kind = 'clip-bpe' as const;
  /** Ids in the vocabulary (49408 for OpenAI's). */
  readonly vocabSize: number;
  /** Default `encodeBatch` length. */
  readonly contextLength: number;
  /** Id of `<|startoftext|>`. */
  readonly startId: number;
  /** Id of `<|endoftext|>`. */
  readonly endId: number;
  /** Padding id (0, as the reference pads). */
  readonly padId = 0;
  /** Where the vocabulary came from (a path), for messages and provenance. */
  readonly source: string;

  private readonly encoder: Map<string, number>;
  private readonly decoder: Map<number, string>;
  private readonly ranks: Map<string, number>;
  private readonly cache = new Map<string, number[]>();
  private readonly texts = new TextIdsCache();

  private constructor(tables: BpeTables, options: ClipTokenizerOptions = {}) {
    const contextLength = options.contextLength ?? CLIP_CONTEXT_LENGTH;
    checkContextLength(contextLength, 'contextLength');
    this.contextLength = contextLength;
    this.source = tables.source;
    this.encoder = tables.vocab;
    this.decoder = new Map();
    let maxId = -1;
    for (const [tok, id] of tables.vocab) {
      this.decoder.set(id, tok);
      if (id > maxId) maxId = id;
    }
    this.vocabSize = maxId + 1;
    this.ranks = new Map();
    tables.merges.forEach(([a, b], i) => {
      const key = a + ' ' + b;
      // dict(zip(merges, range(...))) keeps the last rank of a duplicated merge; Map.set does too.
      this.ranks.set(key, i);
    });
    const start = tables.vocab.get(START_TOKEN);
    const end = tables.vocab.get(END_TOKEN);
    if (start === undefined || end === undefined) {
      throw new CxrError('E_TOKENIZER', `${tables.source}: the vocabulary has no ${START_TOKEN}/${END_TOKEN}; not a CLIP BPE vocabulary`);
    }
    this.startId = start;
    this.endId = end;
    for (const c of BYTE_ENCODER) {
      if (!tables.vocab.has(c) || !tables.vocab.has(c + '</w>')) {
        throw new CxrError('E_TOKENIZER', `${tables.source}: the vocabulary lacks the byte symbol '${c}' (or '${c}</w>'); not a CLIP byte-level BPE vocabulary`);
      }
    }
  }

  /**
   * Load OpenAI's `bpe_simple_vocab_16e6.txt.gz` (gzip or plain text).
   * @param file path of the merges file; default: the copy shipped in the package (`assets/clip-bpe/`).
   * @param options see {@link ClipTokenizerOptions}.
   * @throws CxrError `E_TOKENIZER` when the file is missing, unreadable or has too few merges.
   */
  static fromBpeFile(file?: string, options?: ClipTokenizerOptions): ClipTokenizer {
    const p = file ?? packageAsset('clip-bpe/bpe_simple_vocab_16e6.txt.gz');
    const lines = readTokenizerText(p, 'CLIP BPE file').split('\n');
    if (lines.length < OPENAI_MERGES + 1) {
      throw new CxrError('E_TOKENIZER', `CLIP BPE file '${p}' has ${lines.length} lines, expected at least ${OPENAI_MERGES + 1} (header + ${OPENAI_MERGES} merges)`, { path: p });
    }
    const merges = lines.slice(1, OPENAI_MERGES + 1).map((line, i) => parseMerge(line, p, i + 2));
    const vocabList: string[] = [...BYTE_SYMBOLS, ...BYTE_SYMBOLS.map((c) => c + '</w>')];
    for (const [a, b] of merges) vocabList.push(a + b);
    vocabList.push(START_TOKEN, END_TOKEN);
    // dict(zip(vocab, range)) keeps the last id of a duplicated string; Map.set does the same.
    const vocab = new Map<string, number>();
    vocabList.forEach((tok, id) => vocab.set(tok, id));
    return new ClipTokenizer({ vocab, merges, source: p }, options);
  }

  /**
   * Load a Hugging Face CLIP tokenizer: `tokenizer.json`, or `vocab.json` + `merges.txt`.
   * Only the vocabulary and merges are taken; the text pipeline stays the reference one (HF's
   * normaliser adds NFC and drops the HTML unescape, which changes ids on some texts).
   * @throws CxrError `E_TOKENIZER` for missing/invalid files or a non-CLIP (no `</w>`) BPE.
   */
  static fromHuggingFace(src: string | { vocabJson: string; mergesTxt: string }, options?: ClipTokenizerOptions): ClipTokenizer {
    if (typeof src === 'string') {
      const json = readTokenizerJson(src, 'tokenizer.json');
      const model = (json as { model?: Record<string, unknown> } | null)?.model;
      if (!model || typeof model !== 'object' || (model.type !== undefined && model.type !== 'BPE')) {
        throw new CxrError('E_TOKENIZER', `tokenizer.json '${src}' has no BPE model (model.type=${String(model?.type)})`, { path: src });
      }
      if (model.end_of_word_suffix !== undefined && model.end_of_word_suffix !== '</w>') {
        throw new CxrError('E_TOKENIZER', `tokenizer.json '${src}' is a BPE without the '</w>' word end; not a CLIP tokenizer`, { path: src });
      }
      const vocab = vocabFromObject(model.vocab, src);
      const added = (json as { added_tokens?: unknown }).added_tokens;
      if (Array.isArray(added)) {
        for (const t of added) {
          const { id, content } = (t ?? {}) as { id?: unknown; content?: unknown };
          if (typeof content === 'string' && Number.isInteger(id)) vocab.set(content, id as number);
        }
      }
      if (!Array.isArray(model.merges)) throw new CxrError('E_TOKENIZER', `tokenizer.json '${src}' has no model.merges array`, { path: src });
      const merges = model.merges.map((m: unknown, i: number): [string, string] => {
        if (typeof m === 'string') return parseMerge(m, src, i);
        if (Array.isArray(m) && m.length === 2 && typeof m[0] === 'string' && typeof m[1] === 'string') return [m[0], m[1]];
        throw new CxrError('E_TOKENIZER', `tokenizer.json '${src}': merge ${i} is not "a b" or ["a","b"]`, { path: src });
      });
      return new ClipTokenizer({ vocab, merges, source: src }, options);
    }
    const vocab = vocabFromObject(readTokenizerJson(src.vocabJson, 'vocab.json'), src.vocabJson);
    const lines = readTokenizerText(src.mergesTxt, 'merges.txt').split('\n');
    const merges: Array<[string, string]> = [];
    lines.forEach((line, i) => {
      if (line.trim() === '' || (i === 0 && line.startsWith('#'))) return;
      merges.push(parseMerge(line, src.mergesTxt, i + 1));
    });
    return new ClipTokenizer({ vocab, merges, source: src.vocabJson }, options);
  }

  /**
   * BPE ids of `text`, without start/end tokens (the reference `SimpleTokenizer.encode`).
   * Text is cleaned and lower-cased first; `<|startoftext|>`/`<|endoftext|>` written in the text
   * become the special ids, as in the reference.
   */
  encode(text: string): number[] {
    if (typeof text !== 'string') throw new CxrError('E_TOKENIZER', `encode expects a string, got ${typeof text}`);
    return this.ids(text).slice();
  }

  /** The ids of `text` (shared with the text cache: callers only read them). */
  private ids(text: string): readonly number[] {
    return this.texts.get(text, (t) => this.encodeUncached(t));
  }

  private encodeUncached(text: string): number[] {
    const clean = pyStrip(pyCollapseWhitespace(pyStrip(htmlUnescape(htmlUnescape(text))))).toLowerCase();
    const out: number[] = [];
    for (const m of clean.matchAll(PRETOKENIZE_RE)) {
      const word = m[0];
      if (word === START_TOKEN) out.push(this.startId);
      else if (word === END_TOKEN) out.push(this.endId);
      else for (const id of this.wordIds(word)) out.push(id);
    }
    return out;
  }

  /**
   * Tokenise a batch into a `batch x length` Int32Array: start, BPE ids, end, zero padding.
   * Longer texts keep their first `length - 1` tokens (start included) and end with the end token.
   * @param texts the texts.
   * @param length row length; default {@link ClipTokenizer.contextLength}.
   */
  encodeBatch(texts: readonly string[], length: number = this.contextLength): TokenBatch {
    checkContextLength(length, 'length');
    if (!Array.isArray(texts)) throw new CxrError('E_TOKENIZER', 'encodeBatch expects an array of strings');
    const ids = new Int32Array(texts.length * length);
    let truncated = 0;
    texts.forEach((text, row) => {
      if (typeof text !== 'string') throw new CxrError('E_TOKENIZER', `encode expects a string, got ${typeof text}`);
      const toks = this.ids(text);
      const base = row * length;
      ids[base] = this.startId;
      const n = Math.min(toks.length, length - 2);
      for (let i = 0; i < n; i++) ids[base + 1 + i] = toks[i];
      // open_clip: [start, t..., end][:L] then the last set to end, so L-2 BPE ids stay.
      if (toks.length > length - 2) truncated++;
      ids[base + 1 + n] = this.endId;
    });
    return { ids, batch: texts.length, length, truncated };
  }

  /** Tokens `text` needs including start and end (more than `contextLength` means truncation). */
  countTokens(text: string): number {
    if (typeof text !== 'string') throw new CxrError('E_TOKENIZER', `encode expects a string, got ${typeof text}`);
    return this.ids(text).length + 2;
  }

  /**
   * Throw `E_TOKENIZER` unless `n` (the model's token-embedding rows) equals {@link vocabSize}.
   */
  assertVocabSize(n: number): void {
    if (n !== this.vocabSize) {
      throw new CxrError('E_TOKENIZER', `tokenizer vocabulary (${this.source}) has ${this.vocabSize} ids but the model's token embedding has ${n} rows`, { tokenizer: this.vocabSize, model: n });
    }
  }

  /**
   * Text for `ids`, as the reference `decode` does it (`</w>` becomes a space, invalid UTF-8
   * becomes U+FFFD).
   * @param options.skipSpecialTokens drop the start token and stop at the end token (so padding is
   *   dropped too). Default false, the reference behaviour.
   * @throws CxrError `E_TOKENIZER` for an id outside the vocabulary.
   */
  decode(ids: ArrayLike<number>, options: { skipSpecialTokens?: boolean } = {}): string {
    const parts: string[] = [];
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      if (options.skipSpecialTokens) {
        if (id === this.startId) continue;
        if (id === this.endId) break;
      }
      const tok = this.decoder.get(id);
      if (tok === undefined) throw new CxrError('E_TOKENIZER', `decode: id ${id} is not in the vocabulary (size ${this.vocabSize})`);
      parts.push(tok);
    }
    const joined = parts.join('');
    const bytes = new Uint8Array(joined.length);
    let n = 0;
    for (const ch of joined) {
      const b = BYTE_DECODER.get(ch);
      if (b === undefined) throw new CxrError('E_TOKENIZER', `decode: symbol '${ch}' is not a byte-level character`);
      bytes[n++] = b;
    }
    return new TextDecoder('utf-8').decode(bytes.subarray(0, n)).split('</w>').join(' ');
  }

  /** BPE ids of one pre-tokenised word; cached per word (before its byte encoding, which it decides). */
  private wordIds(raw: string): number[] {
    const hit = this.cache.get(raw);
    if (hit !== undefined) return hit;
    const token = byteEncode(raw);
    let word = token.split('');
    word[word.length - 1] += '</w>';
    while (word.length > 1) {
      let best = -1;
      let bestRank = Infinity;
      for (let i = 0; i < word.length - 1; i++) {
        const r = this.ranks.get(word[i] + ' ' + word[i + 1]);
        if (r !== undefined && r < bestRank) {
          bestRank = r;
          best = i;
        }
      }
      if (best < 0) break;
      const first = word[best];
      const second = word[best + 1];
      // Merge every non-overlapping occurrence, scanning left to right, as the reference does.
      const next: string[] = [];
      for (let i = 0; i < word.length; ) {
        if (word[i] === first && i < word.length - 1 && word[i + 1] === second) {
          next.push(first + second);
          i += 2;
        } else {
          next.push(word[i]);
          i += 1;
        }
      }
      word = next;
    }
    const ids = word.map((sym) => {
      const id = this.encoder.get(sym);
      if (id === undefined) {
        throw new CxrError('E_TOKENIZER', `${this.source}: BPE produced '${sym}', which is not in the vocabulary (vocabulary and merges do not belong together)`);
      }
      return id;
    });
    if (this.cache.size >= CACHE_LIMIT) this.cache.clear();
    this.cache.set(raw, ids);
    return ids;
  }
}

/** UTF-8 bytes of `s` mapped through `bytes_to_unicode` (lone surrogates become U+FFFD's bytes). */
function byteEncode(s: string): string {
  const bytes = Buffer.from(s, 'utf8');
  let out = '';
  for (let i = 0; i < bytes.length; i++) out += BYTE_ENCODER[bytes[i]];
  return out;
}

function parseMerge(line: string, file: string, lineNo: number): [string, string] {
  const parts = line.trim().split(/\s+/);
  if (parts.length !== 2 || parts[0] === '' || parts[1] === '') {
    throw new CxrError('E_TOKENIZER', `'${file}' line ${lineNo}: a merge must be two symbols separated by a space, got ${JSON.stringify(line.slice(0, 60))}`, { path: file, line: lineNo });
  }
  return [parts[0], parts[1]];
}

function vocabFromObject(v: unknown, file: string): Map<string, number> {
  if (!v || typeof v !== 'object' || Array.isArray(v)) {
    throw new CxrError('E_TOKENIZER', `'${file}': the vocabulary must be a JSON object of token → id`, { path: file });
  }
  const vocab = new Map<string, number>();
  for (const [tok, id] of Object.entries(v as Record<string, unknown>)) {
    if (!Number.isInteger(id) || (id as number) < 0) {
      throw new CxrError('E_TOKENIZER', `'${file}': token ${JSON.stringify(tok)} has id ${JSON.stringify(id)}, expected a non-negative integer`, { path: file });
    }
    vocab.set(tok, id as number);
  }
  return vocab;
}
