/**
 * Random sentence sampling (METHOD.md §3): at every step an image is paired with a fresh draw of
 * sentences from its report. A report is prepared once (parse, pick sections, split, clean, filter);
 * each step then draws from the cached sentence list with a counter-based RNG keyed by
 * (seed, epoch, sample index), so the text never depends on worker count or call order.
 */
import { CxrError } from '../errors';
import { parseReport, type ParsedReport, type SectionName } from './reportParser';
import { hasContent, normalizeWhitespace, splitSentences } from './sentenceSplitter';
import { mulberry32 } from '../util/rng';

/** How many sentences a sample holds. */
export type SamplingMode = 'full' | 'one' | 'k' | 'uniform';
/** Which sections feed the sampler. */
export type SectionChoice = 'findings+impression' | 'impression' | 'findings' | 'all';

/** Options of {@link SentenceSampler}. */
export interface SamplerOptions {
  /**
   * - `uniform` (default): k ~ Uniform{1..n} sentences, n = sentences in the report;
   * - `k`: exactly `k` sentences (all of them when the report has fewer);
   * - `one`: exactly one sentence;
   * - `full`: the whole selected text (the CLIP baseline), cut to the context length at a word boundary.
   */
  mode: SamplingMode;
  /** Sentences per sample in mode `k` (integer ≥ 1). Ignored by the other modes. */
  k?: number;
  /** Sections to draw from. Default 'findings+impression'; 'impression' is CheXzero's choice. */
  sections: SectionChoice;
  /** Seed of the sampling RNG (integer ≥ 0). */
  seed: number;
  /**
   * Drop sentences that only compare with priors ("No interval change.", "Comparison is made to the
   * prior study from ___.") and carry no finding. Default false.
   */
  dropComparisonOnly?: boolean;
  /** Drop repeated sentences (case and spacing ignored), keeping the first. Default false. */
  dropDuplicates?: boolean;
  /**
   * Text used when a report has no usable sentence (counted in `stats().fallbacks`).
   * Default 'chest radiograph': neutral, it claims neither normal nor abnormal.
   */
  fallbackText?: string;
  /**
   * Token budget of the text encoder (CLIP: 77). With it, a sample drops trailing sentences until it
   * fits, and cuts a sentence at a word boundary only when a single sentence is too long. Default: no limit.
   */
  contextLength?: number;
  /**
   * Tokens the tokenizer produces for a text, special tokens included. Default
   * {@link approxTokenCount}, a conservative estimate; pass the real tokenizer's count for exact fits.
   */
  countTokens?: (text: string) => number;
  /**
   * When the chosen sections have no sentence, use the report body instead (findings, impression,
   * other, addendum, recommendation; counted in `stats().sectionFallbacks`). Default true, so header-less
   * and oddly headed reports are still used.
   */
  sectionFallback?: boolean;
  /** Split at semicolons too. Default false. */
  semicolons?: boolean;
  /** Remove de-identification placeholders ("___", IU's "XXXX") and the word that introduces them. Default true. */
  removePlaceholders?: boolean;
}

/** The sampler's defaults, in one place (the training config's `text` section takes its values from here). */
export const DEFAULT_SAMPLER_OPTIONS: Readonly<Required<Omit<SamplerOptions, 'k' | 'contextLength' | 'countTokens'>>> = {
  mode: 'uniform', // the paper's sentence sampling: k ~ Uniform{1..n} re-drawn every step
  sections: 'findings+impression', // both sections carry findings
  seed: 0, // reproducible sampling
  dropComparisonOnly: false, // keep every sentence, as the paper: comparison-only ones are rare and harmless
  dropDuplicates: false, // repeated sentences are kept, as the paper
  fallbackText: 'chest radiograph', // neutral text for empty reports (counted): claims neither normal nor abnormal
  sectionFallback: true, // header-less and oddly headed reports are still used (counted)
  semicolons: false, // a semicolon joins clauses of one finding
  removePlaceholders: true, // de-identification placeholders ("___", "XXXX") carry no finding
};

/** A report reduced to what sampling needs; build once with {@link SentenceSampler.prepare}. */
export interface PreparedReport {
  /** Clean sentences of the chosen sections, in report order. Empty for an unusable report. */
  readonly sentences: readonly string[];
  /** Section of each sentence (same length as `sentences`). */
  readonly sentenceSections: readonly SectionName[];
  /** True when the chosen sections were empty and the report body was used instead. */
  readonly usedSectionFallback: boolean;
}

/** Counters since construction (or {@link SentenceSampler.resetStats}). */
export interface SamplerStats {
  /** Reports prepared. */
  prepared: number;
  /** Prepared reports with no usable sentence. */
  emptyReports: number;
  /** Prepared reports that used the body because the chosen sections were empty. */
  sectionFallbacks: number;
  /** Sentences removed as comparison-only. */
  droppedComparison: number;
  /** Sentences removed because only a placeholder or punctuation was left. */
  droppedPlaceholder: number;
  /** Sentences removed as duplicates. */
  droppedDuplicate: number;
  /** Samples drawn. */
  samples: number;
  /** Samples that returned the fallback text. */
  fallbacks: number;
  /** Sentences left out of samples to fit the context length. */
  droppedForContext: number;
  /** Samples whose text was cut inside a sentence (a single sentence, or `full` mode, over the context length). */
  truncated: number;
}

/** Where in training a sample is drawn: the same pair always gives the same text. */
export interface SampleAt {
  /** Epoch number (integer ≥ 0). */
  epoch: number;
  /** Index of the example in the dataset (not its position in a batch; integer ≥ 0). */
  index: number;
}

const SECTION_SETS: Record<SectionChoice, readonly SectionName[] | null> = {
  'findings+impression': ['findings', 'impression'],
  impression: ['impression'],
  findings: ['findings'],
  all: null,
};
const BODY_SECTIONS: readonly SectionName[] = ['findings', 'impression', 'other', 'addendum', 'recommendation'];

// ---------------------------------------------------------------------------------------------
// Counter-based RNG

/** 32-bit finaliser (from MurmurHash3 / splitmix32): spreads every input bit over the output. */
function mix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x7feb352d);
  h ^= h >>> 15;
  h = Math.imul(h, 0x846ca68b);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Folds a non-negative safe integer (up to 2^53) into the hash state, high and low halves. */
function absorb(h: number, v: number): number {
  const lo = v >>> 0;
  const hi = Math.floor(v / 4294967296) >>> 0;
  h = mix32((h ^ lo) + 0x9e3779b9);
  return mix32((h ^ hi) + 0x7f4a7c15);
}

/**
 * A deterministic generator of floats in [0, 1) for (seed, epoch, index): mulberry32 seeded by a hash
 * of the three integers. No global state: two calls with the same triple give the same stream.
 */
export function rngFor(seed: number, epoch: number, index: number): () => number {
  return mulberry32(absorb(absorb(absorb(0x243f6a88, seed), epoch), index));
}

// ---------------------------------------------------------------------------------------------
// Sentence cleaning and filters

/** Words that introduce a placeholder and mean nothing without it ("from ___", "Dr. ___"). */
const PLACEHOLDER_LEADS = new Set(['with', 'by', 'to', 'on', 'at', 'from', 'dated', 'of', 'dr', 'dr.', 'mr', 'mr.', 'ms', 'ms.', 'mrs', 'mrs.']);

/** True for a de-identification token: "___", "___.", "(___)", "XXXX", "XXXX,". */
function isPlaceholderToken(tok: string): boolean {
  let core = 0;
  let under = 0;
  let x = 0;
  for (let i = 0; i < tok.length; i++) {
    const c = tok.charCodeAt(i);
    if (c === 95) under++;
    else if (c === 88) x++;
    else if ((c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122)) core++;
  }
  return core === 0 && ((under >= 2 && x === 0) || (x >= 2 && under === 0));
}

/** Trailing punctuation of a token (kept when the token is dropped, so "from ___." keeps its "."). */
function trailingPunct(tok: string): string {
  let j = tok.length;
  while (j > 0 && '.,;:!?)'.includes(tok[j - 1])) j--;
  return tok.slice(j);
}

/**
 * Removes de-identification placeholders from a sentence: "___" runs and IU's "XXXX" tokens, plus the
 * preposition or title directly in front ("from ___", "with Dr. ___"), keeping sentence punctuation.
 * Underscore runs inside a token ("___F") are removed from the token. Linear in the sentence length.
 */
export function removePlaceholders(sentence: string): string {
  const toks = normalizeWhitespace(sentence).split(' ');
  const out: string[] = [];
  for (const raw of toks) {
    if (raw.length === 0) continue;
    if (isPlaceholderToken(raw)) {
      // Drop up to two introducing words ("with Dr.", "by Dr.").
      for (let d = 0; d < 2 && out.length > 0; d++) {
        const prev = out[out.length - 1].toLowerCase();
        if (PLACEHOLDER_LEADS.has(prev)) out.pop();
        else break;
      }
      const p = trailingPunct(raw);
      // "clear, ___." → "clear." : the placeholder's own mark replaces a dangling one before it.
      if (p.length > 0 && out.length > 0) out[out.length - 1] = out[out.length - 1].replace(/[.,;:]+$/, '') + p;
      continue;
    }
    const tok = raw.indexOf('__') >= 0 ? raw.replace(/_{2,}/g, '') : raw;
    if (tok.length > 0) out.push(tok);
  }
  return tidyPunctuation(out.join(' '));
}

/** "cardiomegalia ." → "cardiomegalia." (PadChest separates its full stops with spaces). */
function tidyPunctuation(s: string): string {
  return s.indexOf(' ') < 0 ? s : s.replace(/([A-Za-z0-9\u00c0-\u024f)]) ([.,;:!?])(?= |$)/g, '$1$2');
}

/**
 * True when a sentence is only or mostly placeholders: no letter or digit is left once they are gone
 * ("___.", "XXXX"), or they are at least half of its words ("There are XXXX XXXX.", "___ ___ 10:48 PM"),
 * so what is left has lost its meaning.
 */
export function isPlaceholderOnly(sentence: string): boolean {
  const toks = normalizeWhitespace(sentence).split(' ');
  let ph = 0;
  for (const t of toks) if (isPlaceholderToken(t)) ph++;
  if (ph > 0 && ph * 2 >= toks.length) return true;
  return !hasContent(removePlaceholders(sentence));
}

/**
 * Vocabulary of sentences that only compare with earlier studies. A sentence is comparison-only when
 * all its words are in this list (or are numbers, dates, times) and one of them is a comparison cue.
 */
const COMPARISON_CUES = new Set([
  'compared', 'comparison', 'prior', 'priors', 'previous', 'previously', 'unchanged', 'change', 'changes', 'changed',
  'interval', 'stable', 'since', 'earlier', 'preceding', 'recent', 'similar',
]);
const COMPARISON_FILLER = new Set([
  'no', 'not', 'significant', 'significantly', 'substantial', 'appreciable', 'definite', 'is', 'are', 'was', 'were',
  'be', 'been', 'has', 'have', 'had', 'there', 'the', 'a', 'an', 'to', 'with', 'from', 'of', 'on', 'in', 'as', 'at',
  'and', 'made', 'study', 'studies', 'exam', 'exams', 'examination', 'examinations', 'radiograph', 'radiographs',
  'film', 'films', 'image', 'images', 'imaging', 'chest', 'x', 'ray', 'xray', 'cxr', 'ct', 'dated', 'date', 'am', 'pm',
  'a.m', 'p.m', 'appearance', 'overall', 'essentially', 'largely', 'otherwise', 'relatively', 'since', 'than',
  'this', 'that', 'one', 'day', 'days', 'week', 'weeks', 'month', 'months', 'year', 'years', 'ago', 'yesterday',
  'today', 'morning', 'evening', 'also', 'available', 'none', 'none.', 'obtained', 'performed', 'same', 'for',
  'pa', 'ap', 'lateral', 'frontal', 'portable', 'upright', 'supine', 'view', 'views', 'findings', 'remain', 'remains',
  'very', 'little', 'minimal', 'any', 'detectable', 'demonstrable', 'apparent', 'significance', 'when', 'again',
]);

/**
 * True when a sentence only relates the study to earlier ones and names no finding: "No interval
 * change.", "Comparison is made to the prior study from ___.", "Unchanged from ___." — but not
 * "Stable cardiomegaly." (a finding word remains).
 */
export function isComparisonOnly(sentence: string): boolean {
  const words = removePlaceholders(sentence).toLowerCase().split(/[^a-z0-9.]+/);
  let cue = false;
  for (let w of words) {
    w = w.replace(/^\.+|\.+$/g, '');
    if (w.length === 0 || /^[0-9.]+$/.test(w)) continue;
    if (COMPARISON_CUES.has(w)) cue = true;
    else if (!COMPARISON_FILLER.has(w)) return false;
  }
  return cue;
}

/**
 * Estimated CLIP BPE tokens of a text, start and end tokens included: one per word and per
 * punctuation mark plus one for every 6 letters beyond the first 6 of a long word (medical words split
 * into several pieces). Meant to over-estimate slightly, so a fit is rarely cut by the tokenizer.
 */
export function approxTokenCount(text: string): number {
  let n = 2;
  let run = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    const alnum = (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c >= 0xc0;
    if (alnum) {
      if (run === 0 || run % 6 === 0) n++;
      run++;
    } else {
      run = 0;
      if (c > 32) n++;
    }
  }
  return n;
}

// ---------------------------------------------------------------------------------------------

function checkInt(name: string, v: unknown, min: number): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) {
    throw new CxrError('E_CONFIG', `${name} must be an integer >= ${min}, got ${JSON.stringify(v)}`);
  }
  return v;
}

function isParsed(x: unknown): x is ParsedReport {
  return typeof x === 'object' && x !== null && Array.isArray((x as ParsedReport).sections);
}
function isPrepared(x: unknown): x is PreparedReport {
  return typeof x === 'object' && x !== null && Array.isArray((x as PreparedReport).sentences);
}

/**
 * Draws training texts from reports (METHOD.md §3).
 *
 * ```ts
 * const s = new SentenceSampler({ mode: 'uniform', sections: 'findings+impression', seed: 1 });
 * const p = s.prepare(reportText);             // once per report
 * const text = s.sample(p, { epoch, index });  // every step; same (seed, epoch, index) → same text
 * ```
 */
export class SentenceSampler {
  /** The resolved options (defaults filled in). */
  readonly options: Readonly<SamplerOptions & typeof DEFAULT_SAMPLER_OPTIONS>;
  private counters: SamplerStats = SentenceSampler.zeroStats();

  /**
   * @param opts sampling options; missing fields take {@link DEFAULT_SAMPLER_OPTIONS}
   * @throws CxrError E_CONFIG for an unknown mode or section choice, a bad k, seed or context length
   */
  constructor(opts: Partial<SamplerOptions> = {}) {
    const o = { ...DEFAULT_SAMPLER_OPTIONS, ...opts };
    for (const [k, v] of Object.entries(opts)) if (v === undefined) (o as Record<string, unknown>)[k] = (DEFAULT_SAMPLER_OPTIONS as Record<string, unknown>)[k];
    if (!['full', 'one', 'k', 'uniform'].includes(o.mode)) {
      throw new CxrError('E_CONFIG', `sampler mode must be one of full, one, k, uniform; got ${JSON.stringify(o.mode)}`);
    }
    if (!(o.sections in SECTION_SETS)) {
      throw new CxrError('E_CONFIG', `sampler sections must be one of ${Object.keys(SECTION_SETS).join(', ')}; got ${JSON.stringify(o.sections)}`);
    }
    checkInt('sampler seed', o.seed, 0);
    if (o.mode === 'k') checkInt('sampler k (required with mode k)', o.k, 1);
    else if (o.k !== undefined) checkInt('sampler k', o.k, 1);
    if (o.contextLength !== undefined) checkInt('sampler contextLength', o.contextLength, 3);
    if (o.countTokens !== undefined && typeof o.countTokens !== 'function') throw new CxrError('E_CONFIG', 'sampler countTokens must be a function');
    if (typeof o.fallbackText !== 'string') throw new CxrError('E_CONFIG', 'sampler fallbackText must be a string');
    this.options = Object.freeze(o);
  }

  private static zeroStats(): SamplerStats {
    return {
      prepared: 0,
      emptyReports: 0,
      sectionFallbacks: 0,
      droppedComparison: 0,
      droppedPlaceholder: 0,
      droppedDuplicate: 0,
      samples: 0,
      fallbacks: 0,
      droppedForContext: 0,
      truncated: 0,
    };
  }

  /** A copy of the counters. */
  stats(): SamplerStats {
    return { ...this.counters };
  }

  /** Sets every counter back to zero. */
  resetStats(): void {
    this.counters = SentenceSampler.zeroStats();
  }

  /**
   * Parses (when given text), picks the configured sections, splits, removes placeholders and
   * numbering, applies the filters. Cache the result: sampling from it is cheap.
   */
  prepare(report: string | ParsedReport): PreparedReport {
    const parsed = typeof report === 'string' ? parseReport(report) : report;
    if (!isParsed(parsed)) throw new CxrError('E_PARSE', 'prepare() needs report text or a ParsedReport');
    const o = this.options;
    const wanted = SECTION_SETS[o.sections];
    let prepared = this.collect(parsed, wanted);
    let usedSectionFallback = false;
    if (prepared.sentences.length === 0 && wanted !== null && o.sectionFallback) {
      const body = this.collect(parsed, BODY_SECTIONS);
      if (body.sentences.length > 0) {
        prepared = body;
        usedSectionFallback = true;
        this.counters.sectionFallbacks++;
      }
    }
    // Filter counts come from the collection actually used, so a section fallback does not count twice.
    this.counters.droppedPlaceholder += prepared.dropped.placeholder;
    this.counters.droppedComparison += prepared.dropped.comparison;
    this.counters.droppedDuplicate += prepared.dropped.duplicate;
    this.counters.prepared++;
    if (prepared.sentences.length === 0) this.counters.emptyReports++;
    return Object.freeze({ sentences: Object.freeze(prepared.sentences), sentenceSections: Object.freeze(prepared.sections), usedSectionFallback });
  }

  private collect(
    parsed: ParsedReport,
    names: readonly SectionName[] | null,
  ): { sentences: string[]; sections: SectionName[]; dropped: { placeholder: number; comparison: number; duplicate: number } } {
    const o = this.options;
    const dropped = { placeholder: 0, comparison: 0, duplicate: 0 };
    const sentences: string[] = [];
    const sections: SectionName[] = [];
    const seen = new Set<string>();
    for (const sec of parsed.sections) {
      if (names !== null && !names.includes(sec.name)) continue;
      for (const raw of splitSentences(sec.text, { semicolons: o.semicolons })) {
        const s = o.removePlaceholders ? removePlaceholders(raw) : tidyPunctuation(raw);
        if (!hasContent(s) || (o.removePlaceholders && isPlaceholderOnly(raw))) {
          dropped.placeholder++;
          continue;
        }
        if (o.dropComparisonOnly && isComparisonOnly(s)) {
          dropped.comparison++;
          continue;
        }
        if (o.dropDuplicates) {
          const key = s.toLowerCase();
          if (seen.has(key)) {
            dropped.duplicate++;
            continue;
          }
          seen.add(key);
        }
        sentences.push(s);
        sections.push(sec.name);
      }
    }
    return { sentences, sections, dropped };
  }

  /**
   * Indices (into `prepared.sentences`, ascending) of the sentences a sample takes before fitting to
   * the context length. Pure: depends on the sentence count, the options and (seed, epoch, index).
   */
  pick(prepared: PreparedReport, at: SampleAt): number[] {
    const n = prepared.sentences.length;
    const epoch = checkInt('epoch', at?.epoch, 0);
    const index = checkInt('sample index', at?.index, 0);
    if (n === 0) return [];
    const o = this.options;
    if (o.mode === 'full') return Array.from({ length: n }, (_, i) => i);
    const rng = rngFor(o.seed, epoch, index);
    let k: number;
    if (o.mode === 'one') k = 1;
    else if (o.mode === 'k') k = Math.min(o.k as number, n);
    else k = 1 + Math.floor(rng() * n);
    if (k >= n) return Array.from({ length: n }, (_, i) => i);
    // Partial Fisher–Yates: the first k slots become a uniform k-subset; then restore report order.
    const idx = Array.from({ length: n }, (_, i) => i);
    for (let i = 0; i < k; i++) {
      const j = i + Math.floor(rng() * (n - i));
      const t = idx[i];
      idx[i] = idx[j];
      idx[j] = t;
    }
    return idx.slice(0, k).sort((a, b) => a - b);
  }

  /**
   * The training text for a report at (epoch, index). Accepts raw text or a parsed report too, but
   * then parses on every call: prefer {@link prepare} once and pass the result.
   */
  sample(report: string | ParsedReport | PreparedReport, at: SampleAt): string {
    const prepared = isPrepared(report) ? report : this.prepare(report as string | ParsedReport);
    const chosen = this.pick(prepared, at);
    this.counters.samples++;
    if (chosen.length === 0) {
      this.counters.fallbacks++;
      return this.options.fallbackText;
    }
    const parts = chosen.map((i) => prepared.sentences[i]);
    if (this.options.contextLength === undefined) return parts.join(' ');
    return this.fit(parts);
  }

  /** Keeps the text within the context length: drop trailing sentences, else cut at a word boundary. */
  private fit(parts: string[]): string {
    const limit = this.options.contextLength as number;
    const count = this.options.countTokens ?? approxTokenCount;
    const full = this.options.mode === 'full';
    let text = parts.join(' ');
    if (count(text) <= limit) return text;
    if (!full) {
      // Largest prefix of sentences that fits (binary search: token counts grow with the prefix).
      let lo = 1;
      let hi = parts.length - 1;
      let best = 0;
      while (lo <= hi) {
        const mid = (lo + hi) >> 1;
        if (count(parts.slice(0, mid).join(' ')) <= limit) {
          best = mid;
          lo = mid + 1;
        } else hi = mid - 1;
      }
      if (best > 0) {
        this.counters.droppedForContext += parts.length - best;
        return parts.slice(0, best).join(' ');
      }
      this.counters.droppedForContext += parts.length - 1;
      text = parts[0];
    }
    // One sentence (or full mode) too long: cut at the last word boundary that fits.
    const words = text.split(' ');
    let lo = 1;
    let hi = words.length - 1;
    let best = 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (count(words.slice(0, mid).join(' ')) <= limit) {
        best = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    this.counters.truncated++;
    return words.slice(0, best).join(' ');
  }
}
