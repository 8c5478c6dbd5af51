/**
 * Retrieval on a scored split (`cxr-train eval --retrieval`): image↔report Recall@K and ranks, and the k×200
 * label-prompt protocol, from the image embeddings of the zero-shot pass (no second image pass) and report
 * texts encoded through the same encoder (docs/evaluation.md).
 *
 * Report text: the sampler's `full` mode over the chosen sections (default findings + impression), with
 * its cleaning (placeholders removed, sentences split and rejoined) and cut to the model's context length
 * by the model's own tokenizer: the whole report as training would see it, deterministic (no sentence
 * draw). Images without a report, or whose report has no usable sentence, are left out and counted.
 * Identical texts (exact string equality after that preparation) are one gallery item: an image's report is
 * found when that text is; a text finds any of the images sharing it.
 *
 * Ensembles: each member's similarity matrices are computed alone and the ensemble's are their mean (as
 * the zero-shot probabilities are averaged); the report lists every member and the ensemble.
 */
import { CxrError } from '../errors';
import type { Sample } from '../data/sample';
import { SentenceSampler, DEFAULT_SAMPLER_OPTIONS, type SectionChoice } from '../text/sentenceSampler';
import {
  classifyKx200,
  cosineSimilarities,
  DEFAULT_RECALL_KS,
  groupTexts,
  imageTextRetrieval,
  KX200_DEFAULT_LABELS,
  KX200_DEFAULT_PER_LABEL,
  selectKx200,
  type ImageTextRetrieval,
  type Kx200Result,
  type Kx200Selection,
} from './retrieval';
import { encodeTextBatches, type ZeroShotClassifier } from './zeroShot';

/** Options of a retrieval evaluation. */
export interface RetrievalOptions {
  /** Report sections the text is taken from. Default `findings+impression` (the sampler's default). */
  sections?: SectionChoice;
  /** Recall@K cut-offs. Default 1, 5, 10. */
  ks?: number[];
  /**
   * Labels of the k×200 protocol (prompt-set label names), or null to skip it. Default the five CheXpert
   * competition labels of ConVIRT/GLoRIA's 5×200.
   */
  kx200Labels?: string[] | null;
  /** Images per label of the k×200 protocol. Default 200. */
  kx200PerLabel?: number;
  /** Seed of the k×200 subset where more images are eligible. Default 0. */
  seed?: number;
  /** Texts per encoder call. Default 256. */
  textBatchSize?: number;
}

/** Retrieval numbers of one checkpoint (or of the ensemble). */
export interface RetrievalScores extends Partial<ImageTextRetrieval> {
  kx200?: Kx200Result;
}

/** What the report holds. */
export interface RetrievalReport {
  /** The split evaluated. */
  split: string;
  /** How the report text was formed (sections, mode, context length) and the duplicate and tie rules. */
  text: { sections: SectionChoice; mode: 'full'; contextLength: number; duplicates: string; ties: string };
  /** Recall@K cut-offs. */
  ks: number[];
  /** Images scored; with a usable report text; left out for want of a report or of a usable sentence. */
  images: { scored: number; withText: number; noReport: number; noSentence: number };
  /** Distinct texts (the gallery of image→text) and images whose text another image has too. */
  texts: { distinct: number; imagesSharingText: number };
  /** The k×200 settings, or null when skipped. */
  kx200: { labels: string[]; perLabel: number; seed: number; prompts: 'positive' } | null;
  /** Scores of the ensemble (the mean similarity of its members), or of the single checkpoint. */
  scores: RetrievalScores;
  /** Per member, with an ensemble. */
  members?: Array<{ checkpoint: string; scores: RetrievalScores }>;
  /** Notes for the reader (e.g. fewer than 200 images for a label). */
  warnings: string[];
}

/** A member's view of the data: scored samples in order, their embeddings, and the classifier. */
export interface RetrievalMember {
  checkpoint: string;
  /** The scored samples, in the order of `embeddings`. */
  samples: readonly Sample[];
  /** `samples.length × dim` image embeddings of the zero-shot pass. */
  embeddings: Float32Array;
  /** The zero-shot classifier (its encoder embeds the texts; its positive prompts are the k×200 prompts). */
  classifier: ZeroShotClassifier;
  /** Tokenizer token count and context length of the member's model (texts are cut to fit). */
  countTokens: (text: string) => number;
  contextLength: number;
  /** Serialises model calls (ZeroShotModel.exclusive). */
  exclusive?: <T>(call: () => Promise<T>) => Promise<T>;
}

const DUPLICATE_RULE = 'Identical texts (exact string equality after preparation) are one gallery item; text→image counts a hit when any image sharing the text is retrieved';
const TIE_RULE = 'ties count against the query: rank = 1 + non-relevant candidates with similarity ≥ the best relevant one';

/**
 * The evaluation text of each report (null: no report, or no usable sentence), by the rule of this module.
 * Equal raw reports (images of one study) are prepared once.
 */
export function retrievalTexts(
  reports: ReadonlyArray<string | undefined>,
  opts: { sections?: SectionChoice; contextLength: number; countTokens: (t: string) => number },
): { texts: Array<string | null>; noReport: number; noSentence: number } {
  const sampler = new SentenceSampler({ mode: 'full', sections: opts.sections ?? DEFAULT_SAMPLER_OPTIONS.sections, seed: 0, contextLength: opts.contextLength, countTokens: opts.countTokens });
  const cache = new Map<string, string | null>();
  let noReport = 0;
  let noSentence = 0;
  const texts = reports.map((r) => {
    if (r === undefined || r.trim() === '') {
      noReport++;
      return null;
    }
    let t = cache.get(r);
    if (t === undefined) {
      const p = sampler.prepare(r);
      t = p.sentences.length === 0 ? null : sampler.sample(p, { epoch: 0, index: 0 });
      cache.set(r, t);
    }
    if (t === null) noSentence++;
    return t;
  });
  return { texts, noReport, noSentence };
}

/**
 * Checks the options against the data before any model is loaded: the split has reports (`E_DATA`), the
 * k×200 labels are known to the prompt set and the dataset (`E_CONFIG`). Returns the resolved k×200 labels.
 *
 * @param samples the split's samples; @param labels prompt labels the dataset has (the scored labels).
 */
export function checkRetrievalInputs(split: string, samples: readonly Sample[], labels: readonly string[], opts: RetrievalOptions): string[] | null {
  if (!samples.some((s) => s.report !== undefined && s.report.trim() !== '')) {
    throw new CxrError('E_DATA', `the ${split} split has no report text: retrieval needs image-report pairs (a dataset with reports, e.g. mimic-cxr with its reports, or a csv with a report column)`);
  }
  for (const k of opts.ks ?? DEFAULT_RECALL_KS) if (!Number.isInteger(k) || k < 1) throw new CxrError('E_CONFIG', `Recall@K needs integers K >= 1, got ${k}`);
  const per = opts.kx200PerLabel ?? KX200_DEFAULT_PER_LABEL;
  if (!Number.isInteger(per) || per < 1) throw new CxrError('E_CONFIG', `--kx200-per-label must be a positive integer, got ${per}`);
  const kl = opts.kx200Labels === undefined ? [...KX200_DEFAULT_LABELS] : opts.kx200Labels;
  if (kl === null) return null;
  if (new Set(kl).size !== kl.length) throw new CxrError('E_CONFIG', `k×200 labels repeat: ${kl.join(', ')}`);
  if (kl.length < 2) throw new CxrError('E_CONFIG', `the k×200 protocol needs at least 2 labels, got ${kl.length}`);
  const missing = kl.filter((l) => !labels.includes(l));
  if (missing.length) {
    throw new CxrError(
      'E_CONFIG',
      `k×200 with k = ${kl.length} needs labels the prompt set and the dataset both have; ${missing.join(', ')} ${missing.length === 1 ? 'is' : 'are'} not among them (${labels.length} available: ${labels.join(', ')}). Name others with --kx200 A,B,... or skip it with --kx200 none`,
      { missing, available: [...labels] },
    );
  }
  return kl;
}

/** Running sums of the members' similarity matrices (only the sums are kept: a 10-member ensemble on a
 * full test split would otherwise hold 10 images × texts matrices). */
interface SimSums {
  i2t: Float64Array;
  kx: Float64Array | null;
}

/**
 * Collects the members of an evaluation (one, or an ensemble) and computes the report. Create it before
 * loading any model (the inputs are checked then), add each member after its zero-shot pass.
 */
export class RetrievalEvaluation {
  private readonly opts: RetrievalOptions;
  private readonly kxLabels: string[] | null;
  private readonly members: Array<{ checkpoint: string; scores: RetrievalScores }> = [];
  private sums: SimSums | null = null;
  private texts: Array<string | null> | null = null;
  private textInfo: { noReport: number; noSentence: number; contextLength: number } | null = null;
  private rows: number[] = [];
  private groups: { unique: string[]; groupOf: Int32Array } | null = null;
  private selection: Kx200Selection | null = null;
  private ids: string[] | null = null;

  /**
   * @param split the split's name (for messages and the report).
   * @param samples every sample of the split (checked for reports).
   * @param labels the scored prompt labels; @param datasetName prompt label → the dataset's label name.
   */
  constructor(
    private readonly split: string,
    samples: readonly Sample[],
    private readonly labels: readonly string[],
    private readonly datasetName: ReadonlyMap<string, string>,
    opts: RetrievalOptions = {},
  ) {
    this.opts = opts;
    this.kxLabels = checkRetrievalInputs(split, samples, labels, opts);
  }

  /** Adds one checkpoint's embeddings (members must have scored the same images). */
  async addMember(m: RetrievalMember): Promise<void> {
    const n = m.samples.length;
    const dim = m.classifier.encoder.dim;
    if (m.embeddings.length !== n * dim) throw new CxrError('E_SHAPE', `${m.embeddings.length} embedding values for ${n} images × dim ${dim}`);
    const t = retrievalTexts(
      m.samples.map((s) => s.report),
      { ...(this.opts.sections ? { sections: this.opts.sections } : {}), contextLength: m.contextLength, countTokens: m.countTokens },
    );
    const ids = m.samples.map((s) => s.id);
    if (this.texts === null) {
      this.texts = t.texts;
      this.ids = ids;
      this.textInfo = { noReport: t.noReport, noSentence: t.noSentence, contextLength: m.contextLength };
      this.rows = [];
      t.texts.forEach((x, i) => x !== null && this.rows.push(i));
      if (this.rows.length === 0) {
        throw new CxrError('E_DATA', `no scored image of the ${this.split} split has a usable report text (${t.noReport} without a report, ${t.noSentence} without a usable sentence in the chosen sections)`);
      }
      this.groups = groupTexts(this.rows.map((i) => t.texts[i]!));
      if (this.kxLabels) {
        const L = this.labels.length;
        const truth = new Float64Array(n * L);
        m.samples.forEach((s, i) => this.labels.forEach((l, j) => (truth[i * L + j] = s.labels[this.datasetName.get(l) ?? l] ?? NaN)));
        const cols = this.kxLabels.map((l) => this.labels.indexOf(l));
        this.selection = selectKx200(truth, n, L, this.kxLabels, cols, this.opts.kx200PerLabel ?? KX200_DEFAULT_PER_LABEL, this.opts.seed ?? 0);
      }
    } else {
      if (ids.length !== this.ids!.length || ids.some((x, i) => x !== this.ids![i])) throw new CxrError('E_DATA', `ensemble member ${m.checkpoint} scored other images than the first member`);
      if (t.texts.some((x, i) => x !== this.texts![i])) {
        throw new CxrError('E_DATA', `ensemble member ${m.checkpoint} cuts report texts differently (another tokenizer or context length): the members' retrieval cannot be averaged`);
      }
    }
    const g = this.groups!;
    const img = gatherRows(m.embeddings, this.rows, dim);
    const textEmb = await encodeTextBatches(m.classifier.encoder, g.unique, this.opts.textBatchSize ?? 256, m.exclusive);
    const i2t = cosineSimilarities(img, this.rows.length, textEmb, g.unique.length, dim);
    let kx: Float64Array | null = null;
    if (this.selection && this.selection.rows.length > 0) {
      const te = await m.classifier.textEmbeddings();
      const vecs = new Float32Array(this.selection.labels.length * dim);
      this.selection.labels.forEach((l, c) => vecs.set(te.positive[te.labels.indexOf(l)], c * dim));
      kx = cosineSimilarities(gatherRows(m.embeddings, this.selection.rows, dim), this.selection.rows.length, vecs, this.selection.labels.length, dim);
    }
    this.members.push({ checkpoint: m.checkpoint, scores: this.scoresOf(i2t, kx) });
    if (this.sums === null) this.sums = { i2t, kx };
    else {
      addInto(this.sums.i2t, i2t);
      if (this.sums.kx && kx) addInto(this.sums.kx, kx);
    }
  }

  private scoresOf(i2t: Float64Array, kx: Float64Array | null): RetrievalScores {
    const g = this.groups!;
    const ks = this.opts.ks ?? [...DEFAULT_RECALL_KS];
    const out: RetrievalScores = { ...imageTextRetrieval(i2t, this.rows.length, g.unique.length, g.groupOf, ks) };
    if (this.selection && kx) out.kx200 = classifyKx200(kx, this.selection, this.opts.kx200PerLabel ?? KX200_DEFAULT_PER_LABEL);
    return out;
  }

  /** The report over the members added so far. `E_CONFIG` before any member. */
  finish(): RetrievalReport {
    if (this.members.length === 0 || !this.groups || !this.textInfo || !this.sums) throw new CxrError('E_CONFIG', 'retrieval: no member was added');
    const warnings: string[] = [];
    const info = this.textInfo;
    if (info.noReport) warnings.push(`${info.noReport} scored image(s) of the ${this.split} split have no report and were left out of image–report retrieval`);
    if (info.noSentence) warnings.push(`${info.noSentence} scored image(s) have a report without a usable sentence in the chosen sections and were left out of image–report retrieval`);
    const M = this.members.length;
    const mean = (x: Float64Array | null): Float64Array | null => (x === null ? null : x.map((v) => v / M));
    const scores = M === 1 ? this.members[0].scores : this.scoresOf(mean(this.sums.i2t)!, mean(this.sums.kx));
    const per = this.opts.kx200PerLabel ?? KX200_DEFAULT_PER_LABEL;
    if (this.selection) {
      const short = this.selection.perLabel.filter((p) => p.chosen < per);
      if (short.length) warnings.push(`k×200: fewer than ${per} eligible images for ${short.map((p) => `${p.label} (${p.chosen})`).join(', ')}; the accuracy rests on ${this.selection.rows.length} image(s), not ${per * this.selection.labels.length}`);
      if (this.selection.rows.length === 0) warnings.push(`k×200: no image of the ${this.split} split is positive for exactly one of ${this.selection.labels.join(', ')}: not computed`);
    }
    const g = this.groups;
    const counts = new Int32Array(g.unique.length);
    for (const x of g.groupOf) counts[x]++;
    let sharing = 0;
    for (const x of g.groupOf) if (counts[x] > 1) sharing++;
    return {
      split: this.split,
      text: { sections: this.opts.sections ?? DEFAULT_SAMPLER_OPTIONS.sections, mode: 'full', contextLength: info.contextLength, duplicates: DUPLICATE_RULE, ties: TIE_RULE },
      ks: this.opts.ks ?? [...DEFAULT_RECALL_KS],
      images: { scored: this.texts!.length, withText: this.rows.length, noReport: info.noReport, noSentence: info.noSentence },
      texts: { distinct: g.unique.length, imagesSharingText: sharing },
      kx200: this.kxLabels ? { labels: this.kxLabels, perLabel: per, seed: this.opts.seed ?? 0, prompts: 'positive' } : null,
      scores,
      ...(M > 1 ? { members: this.members.map((m) => ({ checkpoint: m.checkpoint, scores: m.scores })) } : {}),
      warnings,
    };
  }
}

function addInto(acc: Float64Array, x: Float64Array): void {
  for (let i = 0; i < acc.length; i++) acc[i] += x[i];
}

function gatherRows(x: Float32Array, rows: readonly number[], dim: number): Float32Array {
  const out = new Float32Array(rows.length * dim);
  rows.forEach((r, i) => out.set(x.subarray(r * dim, (r + 1) * dim), i * dim));
  return out;
}
