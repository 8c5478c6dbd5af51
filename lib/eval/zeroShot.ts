import crypto from 'node:crypto';
import { CxrError } from '../errors';
import { isPixelBatch, pixelBatchToFloat, type ImageBatch } from '../data/images';

/**
 * Zero-shot classification, CheXzero protocol (METHOD.md §4): for each label a positive and a negative
 * prompt set; image and text embeddings L2-normalised; several templates of one side averaged after
 * normalisation and re-normalised; p(label) = softmax over (positive, negative) of t·cosine, with t = 1 (no
 * temperature) by default. Multi-checkpoint ensembles average probabilities.
 *
 * The pure functions here hold all the arithmetic; {@link ZeroShotClassifier} plugs in any
 * {@link ZeroShotEncoder} (the native model, a tfjs model, a fake in tests).
 */

/**
 * A prompt set: for each label, positive and negative templates. Structurally identical to
 * `PromptSet` in lib/text/prompts (kept local so that evaluation does not depend on the text module).
 */
export interface ZeroShotPromptSet {
  /** Name shown in reports. */
  name: string;
  /** One entry per label, in output order. */
  labels: Array<{ label: string; positive: string[]; negative: string[] }>;
}

/** What zero-shot scoring needs from a model. */
export interface ZeroShotEncoder {
  /** Embeds texts; returns `texts.length × dim` row-major (need not be normalised). */
  encodeTexts(texts: string[]): Promise<Float32Array>;
  /** Embeds `n` preprocessed images (layout defined by the encoder); returns `n × dim` row-major. */
  encodeImages(images: Float32Array, n: number): Promise<Float32Array>;
  /** Embedding size. */
  readonly dim: number;
  /** Identity of the weights (checkpoint hash): the key of the text-embedding cache. */
  readonly id: string;
}

/** Options of {@link zeroShotProbabilities}. */
export interface ZeroShotOptions {
  /**
   * Multiplier t of the cosine similarities before the pos/neg softmax. Default 1: the CheXzero protocol
   * (no temperature). Pass the model's learned logit scale (e.g. exp(logit_scale) ≈ 100) for the
   * `--temperature logit-scale` option.
   */
  temperature?: number;
}

function checkFinite(x: Float32Array, what: string): void {
  for (let i = 0; i < x.length; i++) {
    if (!Number.isFinite(x[i])) throw new CxrError('E_NUMERIC', `${what}: non-finite value at index ${i}`, { index: i });
  }
}

/**
 * L2-normalises each row of an `n × dim` matrix into a new array. A zero row cannot be normalised and is an
 * `E_NUMERIC` error (it would otherwise produce NaN probabilities much later).
 */
export function normalizeRows(x: Float32Array, n: number, dim: number, what = 'embeddings'): Float32Array {
  if (!Number.isInteger(n) || !Number.isInteger(dim) || n < 0 || dim < 1 || x.length !== n * dim) {
    throw new CxrError('E_SHAPE', `${what}: expected ${n} × ${dim} = ${n * dim} values, got ${x.length}`, { n, dim, length: x.length });
  }
  checkFinite(x, what);
  const out = new Float32Array(x.length);
  for (let i = 0; i < n; i++) {
    let ss = 0;
    for (let k = 0; k < dim; k++) ss += x[i * dim + k] * x[i * dim + k];
    if (!(ss > 0)) throw new CxrError('E_NUMERIC', `${what}: row ${i} is zero and cannot be normalised`, { row: i });
    const inv = 1 / Math.sqrt(ss);
    for (let k = 0; k < dim; k++) out[i * dim + k] = x[i * dim + k] * inv;
  }
  return out;
}

/**
 * Averages a template ensemble: normalise every template embedding, average them, re-normalise (open_clip
 * and CheXzero's order). `embeds` is `m × dim` for m templates; returns one unit vector of length dim.
 */
export function templateEnsemble(embeds: Float32Array, dim: number, what = 'templates'): Float32Array {
  if (dim < 1 || embeds.length === 0 || embeds.length % dim !== 0) {
    throw new CxrError('E_SHAPE', `${what}: ${embeds.length} values is not a positive multiple of dim ${dim}`);
  }
  const m = embeds.length / dim;
  const u = normalizeRows(embeds, m, dim, what);
  const mean = new Float32Array(dim);
  for (let i = 0; i < m; i++) for (let k = 0; k < dim; k++) mean[k] += u[i * dim + k];
  // Opposite templates can cancel exactly; that is a broken prompt set, reported by normalizeRows.
  return normalizeRows(mean, 1, dim, `${what} (mean)`);
}

/** Numerically stable 1 / (1 + exp(-d)) = exp(a) / (exp(a) + exp(b)) with d = a − b. */
export function sigmoid(d: number): number {
  if (d >= 0) return 1 / (1 + Math.exp(-d));
  const e = Math.exp(d);
  return e / (1 + e);
}

/**
 * Zero-shot probabilities of `nImages` images for L labels.
 *
 * @param imageEmbeds `nImages × dim` image embeddings (normalised here).
 * @param nImages number of images.
 * @param textEmbedsPos one entry per label: `m × dim` embeddings of its positive templates (m ≥ 1).
 * @param textEmbedsNeg the same for the negative templates.
 * @param dim embedding size.
 * @returns `nImages × L` row-major probabilities p = exp(t·u·v⁺) / (exp(t·u·v⁺) + exp(t·u·v⁻)).
 */
export function zeroShotProbabilities(
  imageEmbeds: Float32Array,
  nImages: number,
  textEmbedsPos: Float32Array[],
  textEmbedsNeg: Float32Array[],
  dim: number,
  opts: ZeroShotOptions = {},
): Float32Array {
  if (textEmbedsPos.length !== textEmbedsNeg.length) {
    throw new CxrError('E_SHAPE', `${textEmbedsPos.length} positive and ${textEmbedsNeg.length} negative prompt embeddings: one of each per label`);
  }
  const pos = textEmbedsPos.map((e, j) => templateEnsemble(e, dim, `positive prompts of label ${j}`));
  const neg = textEmbedsNeg.map((e, j) => templateEnsemble(e, dim, `negative prompts of label ${j}`));
  return probabilitiesFromUnitVectors(normalizeRows(imageEmbeds, nImages, dim, 'image embeddings'), nImages, pos, neg, dim, opts);
}

/** The last step of {@link zeroShotProbabilities}, on already normalised/ensembled vectors. */
function probabilitiesFromUnitVectors(
  img: Float32Array,
  nImages: number,
  pos: Float32Array[],
  neg: Float32Array[],
  dim: number,
  opts: ZeroShotOptions,
): Float32Array {
  const t = opts.temperature ?? 1;
  if (!Number.isFinite(t) || t <= 0) throw new CxrError('E_CONFIG', `temperature must be a positive finite number, got ${opts.temperature}`);
  const L = pos.length;
  // The two-way softmax only depends on u·(v⁺ − v⁻): one dot product per label instead of two.
  const diff = pos.map((p, j) => {
    const d = new Float64Array(dim);
    for (let k = 0; k < dim; k++) d[k] = p[k] - neg[j][k];
    return d;
  });
  const out = new Float32Array(nImages * L);
  for (let i = 0; i < nImages; i++) {
    const o = i * dim;
    for (let j = 0; j < L; j++) {
      const d = diff[j];
      let s = 0;
      for (let k = 0; k < dim; k++) s += img[o + k] * d[k];
      out[i * L + j] = sigmoid(t * s);
    }
  }
  return out;
}

/**
 * Averages probability matrices of several checkpoints (CheXzero's 10-model ensemble). All must have the
 * same length (`E_SHAPE` otherwise); the mean is accumulated in double precision.
 */
export function ensembleProbabilities(list: Float32Array[]): Float32Array {
  if (list.length === 0) throw new CxrError('E_CONFIG', 'ensemble of zero prediction sets');
  const n = list[0].length;
  const acc = new Float64Array(n);
  for (const [k, p] of list.entries()) {
    if (p.length !== n) throw new CxrError('E_SHAPE', `prediction set ${k} has ${p.length} values, set 0 has ${n}`);
    for (let i = 0; i < n; i++) acc[i] += p[i];
  }
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = acc[i] / list.length;
  return out;
}

/** SHA-256 of a prompt set in a canonical JSON form (label order and template order matter). */
export function promptSetHash(ps: ZeroShotPromptSet): string {
  const canon = JSON.stringify({
    name: ps.name,
    labels: ps.labels.map((l) => ({ label: l.label, positive: l.positive, negative: l.negative })),
  });
  return crypto.createHash('sha256').update(canon).digest('hex');
}

/** Checks a prompt set: labels present, unique, each with at least one non-empty positive and negative. */
export function validatePromptSet(ps: ZeroShotPromptSet): void {
  if (!ps || !Array.isArray(ps.labels) || ps.labels.length === 0) throw new CxrError('E_CONFIG', 'prompt set has no labels');
  const seen = new Set<string>();
  for (const l of ps.labels) {
    if (typeof l.label !== 'string' || l.label === '') throw new CxrError('E_CONFIG', `prompt set ${ps.name}: a label has no name`);
    if (seen.has(l.label)) throw new CxrError('E_CONFIG', `prompt set ${ps.name}: label ${JSON.stringify(l.label)} appears twice`);
    seen.add(l.label);
    for (const side of ['positive', 'negative'] as const) {
      const a = l[side];
      if (!Array.isArray(a) || a.length === 0 || a.some((t) => typeof t !== 'string' || t.trim() === '')) {
        throw new CxrError('E_CONFIG', `prompt set ${ps.name}: label ${JSON.stringify(l.label)} needs at least one non-empty ${side} prompt`);
      }
    }
  }
}

/** Per-label ensembled unit text vectors of one (encoder, prompt set) pair. */
export interface TextEmbeddingSet {
  /** Cache key: `${encoder.id}:${promptSetHash}`. */
  key: string;
  dim: number;
  labels: string[];
  /** One unit vector per label (positive templates ensembled). */
  positive: Float32Array[];
  /** One unit vector per label (negative templates ensembled). */
  negative: Float32Array[];
}

/** Options of {@link ZeroShotClassifier}. */
export interface ZeroShotClassifierOptions extends ZeroShotOptions {
  /** Texts per `encodeTexts` call. Default 256. */
  textBatchSize?: number;
  /** Images per `encodeImages` call in {@link ZeroShotClassifier.predict}. Default 64. */
  imageBatchSize?: number;
  /**
   * Cache of text embeddings shared between classifiers, keyed by encoder id + prompt-set hash. Default: a
   * module-wide cache, so that evaluating several splits with one checkpoint encodes the prompts once.
   */
  cache?: Map<string, Promise<TextEmbeddingSet>>;
}

const sharedCache = new Map<string, Promise<TextEmbeddingSet>>();

/**
 * Embeds texts through an encoder in calls of at most `batchSize` texts: `texts.length × dim` row-major, not
 * normalised. Prompt embeddings and retrieval's report texts are encoded through this one loop.
 */
export async function encodeTextBatches(encoder: ZeroShotEncoder, texts: readonly string[], batchSize = 256, exclusive?: <T>(call: () => Promise<T>) => Promise<T>): Promise<Float32Array> {
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new CxrError('E_CONFIG', `text batch size must be a positive integer, got ${batchSize}`);
  const dim = encoder.dim;
  const call = exclusive ?? (<T>(f: () => Promise<T>) => f());
  const all = new Float32Array(texts.length * dim);
  for (let a = 0; a < texts.length; a += batchSize) {
    const chunk = texts.slice(a, a + batchSize);
    const e = await call(() => encoder.encodeTexts(chunk));
    if (e.length !== chunk.length * dim) {
      throw new CxrError('E_SHAPE', `encodeTexts returned ${e.length} values for ${chunk.length} texts × dim ${dim}`);
    }
    all.set(e, a * dim);
  }
  return all;
}

/** Empties the module-wide text-embedding cache (e.g. after disposing a model whose id may be reused). */
export function clearTextEmbeddingCache(): void {
  sharedCache.clear();
}

/**
 * Zero-shot classifier over an encoder and a prompt set: text embeddings are computed once (batched) and
 * cached by encoder id + prompt-set hash; images are then scored batch by batch.
 */
export class ZeroShotClassifier {
  /** The encoder (e.g. a native model wrapper). */
  readonly encoder: ZeroShotEncoder;
  /** The prompt set. */
  readonly prompts: ZeroShotPromptSet;
  /** SHA-256 of the prompt set. */
  readonly promptHash: string;
  /** Label names, in output column order. */
  readonly labels: string[];
  private readonly opts: ZeroShotClassifierOptions;
  private readonly cache: Map<string, Promise<TextEmbeddingSet>>;

  constructor(encoder: ZeroShotEncoder, prompts: ZeroShotPromptSet, opts: ZeroShotClassifierOptions = {}) {
    validatePromptSet(prompts);
    if (!Number.isInteger(encoder.dim) || encoder.dim < 1) throw new CxrError('E_CONFIG', `encoder dim must be a positive integer, got ${encoder.dim}`);
    const t = opts.temperature ?? 1;
    if (!Number.isFinite(t) || t <= 0) throw new CxrError('E_CONFIG', `temperature must be a positive finite number, got ${opts.temperature}`);
    for (const k of ['textBatchSize', 'imageBatchSize'] as const) {
      const v = opts[k];
      if (v !== undefined && (!Number.isInteger(v) || v < 1)) throw new CxrError('E_CONFIG', `${k} must be a positive integer, got ${v}`);
    }
    this.encoder = encoder;
    this.prompts = prompts;
    this.promptHash = promptSetHash(prompts);
    this.labels = prompts.labels.map((l) => l.label);
    this.opts = opts;
    this.cache = opts.cache ?? sharedCache;
  }

  /** Cache key of this classifier's text embeddings. */
  get cacheKey(): string {
    return `${this.encoder.id}:${this.promptHash}`;
  }

  /** The per-label text vectors, computed on first use and cached (concurrent callers share one computation). */
  textEmbeddings(): Promise<TextEmbeddingSet> {
    const key = this.cacheKey;
    let p = this.cache.get(key);
    if (!p) {
      p = this.computeTextEmbeddings(key);
      this.cache.set(key, p);
      // A failed computation must not poison the cache.
      p.catch(() => {
        if (this.cache.get(key) === p) this.cache.delete(key);
      });
    }
    return p;
  }

  private async computeTextEmbeddings(key: string): Promise<TextEmbeddingSet> {
    const dim = this.encoder.dim;
    // Deduplicate texts: templates are often shared between labels' negatives.
    const texts: string[] = [];
    const index = new Map<string, number>();
    for (const l of this.prompts.labels) {
      for (const t of [...l.positive, ...l.negative]) {
        if (!index.has(t)) {
          index.set(t, texts.length);
          texts.push(t);
        }
      }
    }
    const all = await encodeTextBatches(this.encoder, texts, this.opts.textBatchSize ?? 256);
    const gather = (list: string[]): Float32Array => {
      const m = new Float32Array(list.length * dim);
      list.forEach((t, i) => m.set(all.subarray(index.get(t)! * dim, (index.get(t)! + 1) * dim), i * dim));
      return m;
    };
    return {
      key,
      dim,
      labels: this.labels.slice(),
      positive: this.prompts.labels.map((l) => templateEnsemble(gather(l.positive), dim, `positive prompts of ${l.label}`)),
      negative: this.prompts.labels.map((l) => templateEnsemble(gather(l.negative), dim, `negative prompts of ${l.label}`)),
    };
  }

  /** Probabilities (`n × labels.length`, row-major) of already computed image embeddings (`n × dim`). */
  async scoreEmbeddings(imageEmbeds: Float32Array, n: number): Promise<Float32Array> {
    const te = await this.textEmbeddings();
    const dim = this.encoder.dim;
    return probabilitiesFromUnitVectors(normalizeRows(imageEmbeds, n, dim, 'image embeddings'), n, te.positive, te.negative, dim, this.opts);
  }

  /**
   * Encodes and scores `n` images (`images` holds n equal-sized preprocessed images), in batches of
   * `imageBatchSize`. Returns `n × labels.length` probabilities.
   */
  async predict(batch: ImageBatch, n: number): Promise<Float32Array> {
    return (await this.predictWithEmbeddings(batch, n)).probs;
  }

  /**
   * {@link predict}, also returning the image embeddings it computed (`n × dim`, as the encoder gives them,
   * not normalised): retrieval and ensembles of logits reuse the zero-shot pass instead of encoding twice.
   */
  async predictWithEmbeddings(batch: ImageBatch, n: number): Promise<{ probs: Float32Array; embeddings: Float32Array }> {
    // Pixel batches (a loader opened with pixels: 'uint8') are normalised here on the host.
    const images = isPixelBatch(batch) ? pixelBatchToFloat(batch, Math.round(Math.sqrt(batch.pixels.length / Math.max(1, n)))) : batch;
    if (!Number.isInteger(n) || n < 0 || (n > 0 && images.length % n !== 0) || (n === 0 && images.length !== 0)) {
      throw new CxrError('E_SHAPE', `${images.length} values do not split into ${n} equal images`);
    }
    const L = this.labels.length;
    const dim = this.encoder.dim;
    const out = new Float32Array(n * L);
    const embeddings = new Float32Array(n * dim);
    if (n === 0) return { probs: out, embeddings };
    const per = images.length / n;
    const bs = this.opts.imageBatchSize ?? 64;
    for (let a = 0; a < n; a += bs) {
      const m = Math.min(bs, n - a);
      const emb = await this.encoder.encodeImages(images.subarray(a * per, (a + m) * per), m);
      if (emb.length !== m * dim) {
        throw new CxrError('E_SHAPE', `encodeImages returned ${emb.length} values for ${m} images × dim ${dim}`);
      }
      embeddings.set(emb, a * dim);
      out.set(await this.scoreEmbeddings(emb, m), a * L);
    }
    return { probs: out, embeddings };
  }

  /**
   * The logits behind the probabilities of {@link scoreEmbeddings}: t·u·(v⁺ − v⁻) per image and label
   * (`n × labels.length`, double precision), so that p = sigmoid(logit). Ensembles that average logits use them.
   */
  async logitsOfEmbeddings(imageEmbeds: Float32Array, n: number): Promise<Float64Array> {
    const te = await this.textEmbeddings();
    const dim = this.encoder.dim;
    const img = normalizeRows(imageEmbeds, n, dim, 'image embeddings');
    const t = this.opts.temperature ?? 1;
    const L = this.labels.length;
    const out = new Float64Array(n * L);
    for (let j = 0; j < L; j++) {
      const p = te.positive[j];
      const q = te.negative[j];
      for (let i = 0; i < n; i++) {
        let s = 0;
        for (let k = 0; k < dim; k++) s += img[i * dim + k] * (p[k] - q[k]);
        out[i * L + j] = t * s;
      }
    }
    return out;
  }

  /**
   * Scores batches as they come (e.g. from a data loader), yielding each batch's probabilities; memory stays
   * bounded by one batch.
   */
  async *predictBatches(batches: AsyncIterable<{ images: Float32Array; n: number }> | Iterable<{ images: Float32Array; n: number }>): AsyncGenerator<Float32Array> {
    for await (const b of batches) yield await this.predict(b.images, b.n);
  }
}
