/**
 * BERT WordPiece tokenizer (uncased or cased), for BERT text towers such as BiomedCLIP's PubMedBERT.
 * Follows Google's original `tokenization.py` (= Hugging Face's Rust `BertNormalizer` +
 * `BertPreTokenizer` + `WordPiece`): clean text, CJK characters split, optional lower-casing and
 * accent stripping, punctuation split, greedy longest-match-first WordPiece with `##`.
 */
import { CxrError } from '../../errors';
import { readTokenizerJson, readTokenizerText } from './files';
import type { TextTokenizer, TokenBatch } from './types';
import { TextIdsCache } from './textCache';

/** Options for {@link WordPieceTokenizer}. */
export interface WordPieceOptions {
  /** Lower-case the text (BERT *uncased*). Default true; `fromHuggingFace` reads it from the file. */
  lowercase?: boolean;
  /** Strip accents (NFD, drop combining marks). Default: same as `lowercase`, as BERT does. */
  stripAccents?: boolean;
  /** Put spaces around CJK ideographs so each is its own word. Default true. */
  tokenizeChineseChars?: boolean;
  /** Default `encodeBatch` length (the text model's context length). Default 512. */
  contextLength?: number;
  /** Words longer than this many characters become `[UNK]`. Default 100. */
  maxInputCharsPerWord?: number;
  /** Unknown token. Default `[UNK]`. */
  unkToken?: string;
  /** Classification (start) token. Default `[CLS]`. */
  clsToken?: string;
  /** Separator (end) token. Default `[SEP]`. */
  sepToken?: string;
  /** Padding token. Default `[PAD]`. */
  padToken?: string;
  /** Sub-word continuation prefix. Default `##`. */
  continuingSubwordPrefix?: string;
}

const CACHE_LIMIT = 200_000;
/** Python `str.split()` whitespace (what `whitespace_tokenize` splits on). */
const PY_SPACE_RE = /[\t\n\v\f\r\x1c-\x1f \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+/u;
const CONTROL_RE = /\p{C}/u;
const ZS_RE = /\p{Zs}/u;
const PUNCT_RE = /\p{P}/u;
const MN_RE = /\p{Mn}/gu;

function isCjk(cp: number): boolean {
  return (
    (cp >= 0x4e00 && cp <= 0x9fff) ||
    (cp >= 0x3400 && cp <= 0x4dbf) ||
    (cp >= 0x20000 && cp <= 0x2a6df) ||
    (cp >= 0x2a700 && cp <= 0x2b73f) ||
    (cp >= 0x2b740 && cp <= 0x2b81f) ||
    (cp >= 0x2b820 && cp <= 0x2ceaf) ||
    (cp >= 0xf900 && cp <= 0xfaff) ||
    (cp >= 0x2f800 && cp <= 0x2fa1f)
  );
}

function isPunctuation(ch: string, cp: number): boolean {
  // BERT counts all non-alphanumeric ASCII ("$", "^", "`") as punctuation, plus Unicode P*.
  if ((cp >= 33 && cp <= 47) || (cp >= 58 && cp <= 64) || (cp >= 91 && cp <= 96) || (cp >= 123 && cp <= 126)) return true;
  return PUNCT_RE.test(ch);
}

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** BERT WordPiece tokenizer. Construct with {@link WordPieceTokenizer.fromVocabFile} or `fromHuggingFace`. */
export class WordPieceTokenizer implements TextTokenizer {
  /** Always `'wordpiece'`. */
  readonly kind = 'wordpiece' as const;
  /** Ids in the vocabulary (largest id + 1). */
  readonly vocabSize: number;
  /** Default `encodeBatch` length. */
  readonly contextLength: number;
  /** Whether text is lower-cased. */
  readonly lowercase: boolean;
  /** Whether accents are stripped. */
  readonly stripAccents: boolean;
  /** Id of `[CLS]`. */
  readonly clsId: number;
  /** Id of `[SEP]`. */
  readonly sepId: number;
  /** Id of `[PAD]`. */
  readonly padId: number;
  /** Id of `[UNK]`. */
  readonly unkId: number;
  /** Where the vocabulary came from, for messages and provenance. */
  readonly source: string;

  private readonly vocab: Map<string, number>;
  private readonly inverse: Map<number, string>;
  private readonly tokenizeChineseChars: boolean;
  private readonly maxChars: number;
  private readonly prefix: string;
  private readonly specialRe: RegExp;
  private readonly specials: Set<string>;
  private readonly cache = new Map<string, number[]>();
  private readonly texts = new TextIdsCache();

  /**
   * Build from an in-memory vocabulary (token → id).
   * @throws CxrError `E_TOKENIZER` when a special token is missing from the vocabulary.
   */
  constructor(vocab: Map<string, number>, options: WordPieceOptions = {}, source = '(in memory)') {
    this.source = source;
    this.vocab = vocab;
    this.inverse = new Map();
    let maxId = -1;
    for (const [t, id] of vocab) {
      if (!this.inverse.has(id)) this.inverse.set(id, t);
      if (id > maxId) maxId = id;
    }
    this.vocabSize = maxId + 1;
    this.lowercase = options.lowercase ?? true;
    this.stripAccents = options.stripAccents ?? this.lowercase;
    this.tokenizeChineseChars = options.tokenizeChineseChars ?? true;
    this.maxChars = options.maxInputCharsPerWord ?? 100;
    this.prefix = options.continuingSubwordPrefix ?? '##';
    const contextLength = options.contextLength ?? 512;
    if (!Number.isInteger(contextLength) || contextLength < 2) {
      throw new CxrError('E_CONFIG', `contextLength must be an integer >= 2 (room for [CLS] and [SEP]), got ${contextLength}`);
    }
    this.contextLength = contextLength;
    const need = (tok: string, what: string): number => {
      const id = vocab.get(tok);
      if (id === undefined) throw new CxrError('E_TOKENIZER', `${source}: the vocabulary has no ${what} token '${tok}'`, { path: source });
      return id;
    };
    const unk = options.unkToken ?? '[UNK]';
    const cls = options.clsToken ?? '[CLS]';
    const sep = options.sepToken ?? '[SEP]';
    const pad = options.padToken ?? '[PAD]';
    this.unkId = need(unk, 'unknown');
    this.clsId = need(cls, 'CLS');
    this.sepId = need(sep, 'SEP');
    this.padId = need(pad, 'padding');
    // Special tokens written in the text stay whole (Hugging Face splits them out before the
    // normaliser); [MASK] too when the vocabulary has it.
    this.specials = new Set([unk, cls, sep, pad, ...(vocab.has('[MASK]') ? ['[MASK]'] : [])]);
    this.specialRe = new RegExp(`(${[...this.specials].sort((a, b) => b.length - a.length).map(escapeRe).join('|')})`);
  }

  /**
   * Load a BERT `vocab.txt` (one token per line, id = line number from 0).
   * @param options casing etc.; BERT *uncased* is the default, pass `{ lowercase: false }` for cased.
   * @throws CxrError `E_TOKENIZER` when the file is missing, empty or lacks the special tokens.
   */
  static fromVocabFile(file: string, options?: WordPieceOptions): WordPieceTokenizer {
    const lines = readTokenizerText(file, 'WordPiece vocab.txt').split(/\r\n|\r|\n/);
    if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
    if (lines.length === 0) throw new CxrError('E_TOKENIZER', `WordPiece vocab '${file}' is empty`, { path: file });
    const vocab = new Map<string, number>();
    lines.forEach((tok, id) => vocab.set(tok, id));
    return new WordPieceTokenizer(vocab, options, file);
  }

  /**
   * Load a Hugging Face `tokenizer.json` with a WordPiece model; casing and accent stripping are
   * taken from its `BertNormalizer` unless given in `options`.
   * @throws CxrError `E_TOKENIZER` for a missing/invalid file or a model that is not WordPiece.
   */
  static fromHuggingFace(file: string, options: WordPieceOptions = {}): WordPieceTokenizer {
    const json = readTokenizerJson(file, 'tokenizer.json') as Record<string, unknown> | null;
    const model = json?.model as Record<string, unknown> | undefined;
    if (!model || typeof model !== 'object' || model.type !== 'WordPiece') {
      throw new CxrError('E_TOKENIZER', `tokenizer.json '${file}' is not a WordPiece tokenizer (model.type=${String(model?.type)})`, { path: file });
    }
    const rawVocab = model.vocab;
    if (!rawVocab || typeof rawVocab !== 'object' || Array.isArray(rawVocab)) {
      throw new CxrError('E_TOKENIZER', `tokenizer.json '${file}' has no model.vocab object`, { path: file });
    }
    const vocab = new Map<string, number>();
    for (const [tok, id] of Object.entries(rawVocab as Record<string, unknown>)) {
      if (!Number.isInteger(id) || (id as number) < 0) {
        throw new CxrError('E_TOKENIZER', `tokenizer.json '${file}': token ${JSON.stringify(tok)} has id ${JSON.stringify(id)}`, { path: file });
      }
      vocab.set(tok, id as number);
    }
    const opts: WordPieceOptions = { ...options };
    const norm = json?.normalizer as Record<string, unknown> | null | undefined;
    if (norm && typeof norm === 'object') {
      if (norm.type !== 'BertNormalizer') {
        throw new CxrError('E_TOKENIZER', `tokenizer.json '${file}': normalizer '${String(norm.type)}' is not supported (only BertNormalizer)`, { path: file });
      }
      if (opts.lowercase === undefined && typeof norm.lowercase === 'boolean') opts.lowercase = norm.lowercase;
      if (opts.stripAccents === undefined && typeof norm.strip_accents === 'boolean') opts.stripAccents = norm.strip_accents;
      if (opts.tokenizeChineseChars === undefined && typeof norm.handle_chinese_chars === 'boolean') opts.tokenizeChineseChars = norm.handle_chinese_chars;
    } else if (opts.lowercase === undefined) {
      opts.lowercase = false;
    }
    if (opts.unkToken === undefined && typeof model.unk_token === 'string') opts.unkToken = model.unk_token;
    if (opts.continuingSubwordPrefix === undefined && typeof model.continuing_subword_prefix === 'string') opts.continuingSubwordPrefix = model.continuing_subword_prefix;
    if (opts.maxInputCharsPerWord === undefined && Number.isInteger(model.max_input_chars_per_word)) opts.maxInputCharsPerWord = model.max_input_chars_per_word as number;
    return new WordPieceTokenizer(vocab, opts, file);
  }

  /** Word pieces of `text` (strings, no [CLS]/[SEP]). */
  tokenize(text: string): string[] {
    return this.encode(text).map((id) => this.inverse.get(id) ?? '[UNK]');
  }

  /** WordPiece ids of `text`, without [CLS]/[SEP]. */
  encode(text: string): number[] {
    if (typeof text !== 'string') throw new CxrError('E_TOKENIZER', `encode expects a string, got ${typeof text}`);
    return this.ids(text).slice();
  }

  /** The ids of `text` (shared with the text cache: callers only read them). */
  private ids(text: string): readonly number[] {
    if (typeof text !== 'string') throw new CxrError('E_TOKENIZER', `encode expects a string, got ${typeof text}`);
    return this.texts.get(text, (t) => this.encodeUncached(t));
  }

  private encodeUncached(text: string): number[] {
    const out: number[] = [];
    for (const segment of text.split(this.specialRe)) {
      if (segment === '') continue;
      if (this.specials.has(segment)) {
        out.push(this.vocab.get(segment) as number);
        continue;
      }
      for (const word of this.basicTokenize(segment)) for (const id of this.wordPiece(word)) out.push(id);
    }
    return out;
  }

  /**
   * `[CLS]`, ids, `[SEP]`, `[PAD]`... per row, with an attention mask. Texts longer than
   * `length - 2` word pieces keep the first ones and still end with `[SEP]`.
   * @param length row length; default {@link WordPieceTokenizer.contextLength}.
   */
  encodeBatch(texts: readonly string[], length: number = this.contextLength): TokenBatch {
    if (!Number.isInteger(length) || length < 2) throw new CxrError('E_CONFIG', `length must be an integer >= 2, got ${length}`);
    if (!Array.isArray(texts)) throw new CxrError('E_TOKENIZER', 'encodeBatch expects an array of strings');
    const ids = new Int32Array(texts.length * length).fill(this.padId);
    const attentionMask = new Uint8Array(texts.length * length);
    let truncated = 0;
    texts.forEach((text, row) => {
      const toks = this.ids(text);
      const n = Math.min(toks.length, length - 2);
      if (toks.length > n) truncated++;
      const base = row * length;
      ids[base] = this.clsId;
      for (let i = 0; i < n; i++) ids[base + 1 + i] = toks[i];
      ids[base + 1 + n] = this.sepId;
      attentionMask.fill(1, base, base + n + 2);
    });
    return { ids, attentionMask, batch: texts.length, length, truncated };
  }

  /** Tokens `text` needs including [CLS] and [SEP]. */
  countTokens(text: string): number {
    return this.ids(text).length + 2;
  }

  /** Throw `E_TOKENIZER` unless `n` (the model's token-embedding rows) equals {@link vocabSize}. */
  assertVocabSize(n: number): void {
    if (n !== this.vocabSize) {
      throw new CxrError('E_TOKENIZER', `tokenizer vocabulary (${this.source}) has ${this.vocabSize} ids but the model's token embedding has ${n} rows`, { tokenizer: this.vocabSize, model: n });
    }
  }

  /**
   * Text for `ids`: pieces joined with spaces, `##` continuations glued on; [CLS]/[SEP]/[PAD]
   * dropped unless `skipSpecialTokens` is false.
   */
  decode(ids: ArrayLike<number>, options: { skipSpecialTokens?: boolean } = {}): string {
    const skip = options.skipSpecialTokens ?? true;
    const words: string[] = [];
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      if (skip && (id === this.clsId || id === this.sepId || id === this.padId)) continue;
      const tok = this.inverse.get(id);
      if (tok === undefined) throw new CxrError('E_TOKENIZER', `decode: id ${id} is not in the vocabulary (size ${this.vocabSize})`);
      if (tok.startsWith(this.prefix) && words.length > 0) words[words.length - 1] += tok.slice(this.prefix.length);
      else words.push(tok);
    }
    return words.join(' ');
  }

  /** BERT BasicTokenizer: clean, CJK split, whitespace split, case/accents, punctuation split. */
  private basicTokenize(text: string): string[] {
    let clean = '';
    for (const ch of text) {
      const cp = ch.codePointAt(0) as number;
      if (ch === ' ' || ch === '\t' || ch === '\n' || ch === '\r' || ZS_RE.test(ch)) clean += ' ';
      else if (cp === 0 || cp === 0xfffd || CONTROL_RE.test(ch)) continue;
      else if (this.tokenizeChineseChars && isCjk(cp)) clean += ' ' + ch + ' ';
      else clean += ch;
    }
    const out: string[] = [];
    for (let word of clean.split(PY_SPACE_RE)) {
      if (word === '') continue;
      if (this.lowercase) word = word.toLowerCase();
      if (this.stripAccents) word = word.normalize('NFD').replace(MN_RE, '');
      let cur = '';
      for (const ch of word) {
        if (isPunctuation(ch, ch.codePointAt(0) as number)) {
          if (cur !== '') out.push(cur);
          out.push(ch);
          cur = '';
        } else {
          cur += ch;
        }
      }
      if (cur !== '') out.push(cur);
    }
    return out;
  }

  /** Greedy longest-match-first WordPiece of one word; a word with any unmatched part is [UNK]. */
  private wordPiece(word: string): number[] {
    const hit = this.cache.get(word);
    if (hit !== undefined) return hit;
    const chars = Array.from(word);
    let ids: number[] = [];
    if (chars.length > this.maxChars) {
      ids = [this.unkId];
    } else {
      let start = 0;
      while (start < chars.length) {
        let end = chars.length;
        let found: number | undefined;
        while (start < end) {
          const sub = (start > 0 ? this.prefix : '') + chars.slice(start, end).join('');
          found = this.vocab.get(sub);
          if (found !== undefined) break;
          end--;
        }
        if (found === undefined) {
          ids = [this.unkId];
          break;
        }
        ids.push(found);
        start = end;
      }
    }
    if (this.cache.size >= CACHE_LIMIT) this.cache.clear();
    this.cache.set(word, ids);
    return ids;
  }
}
