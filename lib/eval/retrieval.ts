/**
 * Retrieval metrics, the arithmetic only (docs/evaluation.md, "Image–report retrieval" and "k×200"):
 *
 * - image→text and text→image Recall@K and mean/median rank over a similarity matrix, where one query may
 *   have several relevant candidates (identical report texts are one gallery item; several images of one
 *   study share one text);
 * - the k×200 label-prompt protocol of ConVIRT/GLoRIA (CheXpert 5×200): images positive for exactly one of
 *   k labels, up to `perLabel` per label, each classified by the most similar of the k label prompts.
 *
 * Ties are counted against the query: the rank of a query is 1 + the number of non-relevant candidates whose
 * similarity is at least that of the best relevant one. With continuous scores (no ties) this is the rank
 * every convention gives, e.g. scikit-learn's `top_k_accuracy_score`.
 */
import { CxrError } from '../errors';
import { counterRandomU32 } from './bootstrap';
import { isMaskedTruth } from './metrics';

/** Recall@K cut-offs reported by default (CXR-CLIP, GLoRIA, open_clip). */
export const DEFAULT_RECALL_KS: readonly number[] = [1, 5, 10];

/** Retrieval in one direction. */
export interface RetrievalDirection {
  /** Queries. */
  queries: number;
  /** Candidates each query ranks. */
  candidates: number;
  /** K → fraction of queries with a relevant candidate among the first K (keys as strings: "1", "5", "10"). */
  recall: Record<string, number>;
  /** Mean of the ranks (1 = first). */
  meanRank: number;
  /** Median of the ranks (mean of the two middle ones for an even count). */
  medianRank: number;
}

/**
 * `nQ × nC` row-major cosine similarities of two sets of embeddings (L2-normalised here, in double
 * precision). `E_SHAPE` for sizes that do not fit, `E_NUMERIC` for a zero or non-finite row.
 */
export function cosineSimilarities(a: Float32Array, nA: number, b: Float32Array, nB: number, dim: number): Float64Array {
  const na = unitRows(a, nA, dim, 'query embeddings');
  const nb = unitRows(b, nB, dim, 'candidate embeddings');
  const out = new Float64Array(nA * nB);
  for (let i = 0; i < nA; i++) {
    const o = i * dim;
    for (let j = 0; j < nB; j++) {
      const p = j * dim;
      let s = 0;
      for (let k = 0; k < dim; k++) s += na[o + k] * nb[p + k];
      out[i * nB + j] = s;
    }
  }
  return out;
}

function unitRows(x: Float32Array, n: number, dim: number, what: string): Float64Array {
  if (!Number.isInteger(n) || n < 0 || !Number.isInteger(dim) || dim < 1 || x.length !== n * dim) {
    throw new CxrError('E_SHAPE', `${what}: expected ${n} × ${dim} = ${n * dim} values, got ${x.length}`);
  }
  const out = new Float64Array(x.length);
  for (let i = 0; i < n; i++) {
    let ss = 0;
    for (let k = 0; k < dim; k++) {
      const v = x[i * dim + k];
      if (!Number.isFinite(v)) throw new CxrError('E_NUMERIC', `${what}: non-finite value in row ${i}`);
      ss += v * v;
    }
    if (!(ss > 0)) throw new CxrError('E_NUMERIC', `${what}: row ${i} is zero and cannot be normalised`);
    const inv = 1 / Math.sqrt(ss);
    for (let k = 0; k < dim; k++) out[i * dim + k] = x[i * dim + k] * inv;
  }
  return out;
}

/** The transpose of an `n × m` row-major matrix. */
export function transpose(x: Float64Array, n: number, m: number): Float64Array {
  if (x.length !== n * m) throw new CxrError('E_SHAPE', `${x.length} values are not ${n} × ${m}`);
  const out = new Float64Array(x.length);
  for (let i = 0; i < n; i++) for (let j = 0; j < m; j++) out[j * n + i] = x[i * m + j];
  return out;
}

/**
 * Rank of every query (1 = a relevant candidate first): 1 + the non-relevant candidates scoring at least
 * the best relevant one (ties count against the query).
 *
 * @param scores `nQ × nC` row-major similarities (higher is more similar; NaN is an `E_NUMERIC` error).
 * @param relevant for each query, the candidate indices that are correct answers (at least one).
 */
export function retrievalRanks(scores: ArrayLike<number>, nQ: number, nC: number, relevant: ReadonlyArray<ArrayLike<number>>): Int32Array {
  if (scores.length !== nQ * nC) throw new CxrError('E_SHAPE', `${scores.length} similarities are not ${nQ} queries × ${nC} candidates`);
  if (relevant.length !== nQ) throw new CxrError('E_SHAPE', `${relevant.length} relevance lists for ${nQ} queries`);
  const ranks = new Int32Array(nQ);
  const isRel = new Uint8Array(nC);
  for (let q = 0; q < nQ; q++) {
    const rel = relevant[q];
    if (rel.length === 0) throw new CxrError('E_DATA', `query ${q} has no relevant candidate`);
    const o = q * nC;
    let best = -Infinity;
    for (let r = 0; r < rel.length; r++) {
      const c = rel[r];
      if (!Number.isInteger(c) || c < 0 || c >= nC) throw new CxrError('E_SHAPE', `query ${q}: relevant candidate ${c} is not in 0..${nC - 1}`);
      isRel[c] = 1;
      const v = scores[o + c];
      if (Number.isNaN(v)) throw new CxrError('E_NUMERIC', `similarity of query ${q} and candidate ${c} is NaN`);
      if (v > best) best = v;
    }
    let above = 0;
    for (let c = 0; c < nC; c++) {
      const v = scores[o + c];
      if (Number.isNaN(v)) throw new CxrError('E_NUMERIC', `similarity of query ${q} and candidate ${c} is NaN`);
      if (!isRel[c] && v >= best) above++;
    }
    for (let r = 0; r < rel.length; r++) isRel[rel[r]] = 0;
    ranks[q] = above + 1;
  }
  return ranks;
}

/** Recall@K, mean and median rank of a set of ranks. `E_DATA` for no query, `E_CONFIG` for a bad K. */
export function summarizeRanks(ranks: ArrayLike<number>, candidates: number, ks: readonly number[] = DEFAULT_RECALL_KS): RetrievalDirection {
  const n = ranks.length;
  if (n === 0) throw new CxrError('E_DATA', 'no retrieval query');
  for (const k of ks) if (!Number.isInteger(k) || k < 1) throw new CxrError('E_CONFIG', `Recall@K needs integers K >= 1, got ${k}`);
  const recall: Record<string, number> = {};
  for (const k of ks) {
    let hit = 0;
    for (let i = 0; i < n; i++) if (ranks[i] <= k) hit++;
    recall[String(k)] = hit / n;
  }
  const sorted = Float64Array.from(ranks).sort();
  let sum = 0;
  for (let i = 0; i < n; i++) sum += sorted[i];
  const median = n % 2 === 1 ? sorted[(n - 1) / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
  return { queries: n, candidates, recall, meanRank: sum / n, medianRank: median };
}

/** Groups equal strings: the distinct values in order of first appearance and the group of each input. */
export function groupTexts(texts: readonly string[]): { unique: string[]; groupOf: Int32Array } {
  const index = new Map<string, number>();
  const unique: string[] = [];
  const groupOf = new Int32Array(texts.length);
  texts.forEach((t, i) => {
    let g = index.get(t);
    if (g === undefined) {
      g = unique.length;
      index.set(t, g);
      unique.push(t);
    }
    groupOf[i] = g;
  });
  return { unique, groupOf };
}

/** Both directions of image↔text retrieval. */
export interface ImageTextRetrieval {
  imageToText: RetrievalDirection;
  textToImage: RetrievalDirection;
}

/**
 * Image→text and text→image retrieval from an `nImages × nTexts` similarity matrix, where image `i`'s
 * report is text `textOf[i]` (texts distinct; several images may share one). Image→text: each image ranks
 * every text, one relevant. Text→image: each text ranks every image, the images sharing it are all relevant
 * (a hit when any of them is in the first K, the rank of the best of them).
 */
export function imageTextRetrieval(sim: Float64Array, nImages: number, nTexts: number, textOf: ArrayLike<number>, ks: readonly number[] = DEFAULT_RECALL_KS): ImageTextRetrieval {
  if (textOf.length !== nImages) throw new CxrError('E_SHAPE', `${textOf.length} text indices for ${nImages} images`);
  const imagesOf: number[][] = Array.from({ length: nTexts }, () => []);
  for (let i = 0; i < nImages; i++) {
    const t = textOf[i];
    if (!Number.isInteger(t) || t < 0 || t >= nTexts) throw new CxrError('E_SHAPE', `image ${i}: text index ${t} is not in 0..${nTexts - 1}`);
    imagesOf[t].push(i);
  }
  const empty = imagesOf.findIndex((l) => l.length === 0);
  if (empty >= 0) throw new CxrError('E_DATA', `text ${empty} belongs to no image`);
  const i2t = retrievalRanks(sim, nImages, nTexts, Array.from(textOf, (t) => [t]));
  const t2i = retrievalRanks(transpose(sim, nImages, nTexts), nTexts, nImages, imagesOf);
  return { imageToText: summarizeRanks(i2t, nTexts, ks), textToImage: summarizeRanks(t2i, nImages, ks) };
}

// ---------------------------------------------------------------------------------------------
// k×200

/** The CheXpert competition labels of ConVIRT's and GLoRIA's CheXpert 5×200. */
export const KX200_DEFAULT_LABELS: readonly string[] = ['Atelectasis', 'Cardiomegaly', 'Consolidation', 'Edema', 'Pleural Effusion'];
/** Images per label of the protocol. */
export const KX200_DEFAULT_PER_LABEL = 200;

/** The images chosen for a k×200 evaluation. */
export interface Kx200Selection {
  labels: string[];
  /** Row indices (into the truth matrix) of the chosen images, grouped by label in label order. */
  rows: number[];
  /** Class (index into `labels`) of each chosen row. */
  classOf: number[];
  /** Per label: eligible images (positive for it alone) and the number chosen. */
  perLabel: Array<{ label: string; eligible: number; chosen: number }>;
}

/**
 * Picks up to `perLabel` images for each of k labels among the rows positive (1) for exactly that one
 * label and negative (0) or missing for the other k − 1 (an uncertain −1 for any of the k labels leaves the
 * row out: it is not known to be positive for one label only). Where more are eligible, a seeded random
 * subset (counter-based, so the same seed and rows give the same subset) is taken; the chosen rows keep
 * their order.
 *
 * @param truth `n × L` row-major labels (1, 0, −1, NaN) with column `columns[j]` for `labels[j]`.
 * @param columns column of each of the k labels in `truth`.
 */
export function selectKx200(truth: ArrayLike<number>, n: number, L: number, labels: readonly string[], columns: readonly number[], perLabel: number, seed: number): Kx200Selection {
  if (truth.length !== n * L) throw new CxrError('E_SHAPE', `${truth.length} truth values are not ${n} × ${L}`);
  if (labels.length !== columns.length || labels.length < 2) throw new CxrError('E_CONFIG', `the k×200 protocol needs k >= 2 labels, got ${labels.length}`);
  if (!Number.isInteger(perLabel) || perLabel < 1) throw new CxrError('E_CONFIG', `images per label must be a positive integer, got ${perLabel}`);
  const k = labels.length;
  const eligible: number[][] = labels.map(() => []);
  for (let i = 0; i < n; i++) {
    let pos = -1;
    let count = 0;
    let uncertain = false;
    for (let c = 0; c < k; c++) {
      const v = truth[i * L + columns[c]];
      if (isMaskedTruth(v, i)) {
        if (v === -1) uncertain = true;
      } else if (v === 1) {
        pos = c;
        count++;
      }
    }
    if (count === 1 && !uncertain) eligible[pos].push(i);
  }
  const rows: number[] = [];
  const classOf: number[] = [];
  const summary: Kx200Selection['perLabel'] = [];
  eligible.forEach((list, c) => {
    let chosen = list;
    if (list.length > perLabel) {
      // Seeded shuffle key per row (stream = class), smallest keys win; ties broken by row.
      const keyed = list.map((r) => ({ r, key: counterRandomU32(seed, c, r) }));
      keyed.sort((a, b) => a.key - b.key || a.r - b.r);
      chosen = keyed.slice(0, perLabel).map((x) => x.r).sort((a, b) => a - b);
    }
    for (const r of chosen) {
      rows.push(r);
      classOf.push(c);
    }
    summary.push({ label: labels[c], eligible: list.length, chosen: chosen.length });
  });
  return { labels: labels.slice(), rows, classOf, perLabel: summary };
}

/** Result of the k×200 classification. */
export interface Kx200Result {
  labels: string[];
  /** Images per label asked for. */
  perLabelTarget: number;
  /** Images classified. */
  n: number;
  /** Fraction classified as their label (= Recall@1 of image→label-prompt retrieval). */
  accuracy: number;
  /** Per label: eligible, chosen, correct and recall (correct / chosen; null for none chosen). */
  perLabel: Array<{ label: string; eligible: number; chosen: number; correct: number; recall: number | null }>;
  /** Labels with fewer than `perLabelTarget` images. */
  short: string[];
  /** `confusion[i][j]`: images of label i classified as label j. */
  confusion: number[][];
}

/**
 * Classifies the selected images by the most similar label prompt: `sim` is `selection.rows.length × k`
 * (row r: chosen image r against label prompt c, same label order). Ties go to the first label in order
 * only when the true label is not among them (ties count against the image, as in {@link retrievalRanks}).
 */
export function classifyKx200(sim: ArrayLike<number>, selection: Kx200Selection, perLabelTarget: number): Kx200Result {
  const k = selection.labels.length;
  const n = selection.rows.length;
  if (sim.length !== n * k) throw new CxrError('E_SHAPE', `${sim.length} similarities are not ${n} images × ${k} labels`);
  if (n === 0) throw new CxrError('E_DATA', `no image is positive for exactly one of ${selection.labels.join(', ')}`);
  const confusion = Array.from({ length: k }, () => new Array<number>(k).fill(0));
  const ranks = retrievalRanks(sim, n, k, selection.classOf.map((c) => [c]));
  for (let r = 0; r < n; r++) {
    const truthC = selection.classOf[r];
    let pred = truthC;
    if (ranks[r] > 1) {
      // The first label (in order) among the most similar ones that is not the true label.
      let best = -Infinity;
      for (let c = 0; c < k; c++) {
        const v = sim[r * k + c];
        if (c !== truthC && v > best) {
          best = v;
          pred = c;
        }
      }
    }
    confusion[truthC][pred]++;
  }
  const perLabel = selection.perLabel.map((p, c) => {
    const correct = confusion[c][c];
    return { label: p.label, eligible: p.eligible, chosen: p.chosen, correct, recall: p.chosen > 0 ? correct / p.chosen : null };
  });
  let correct = 0;
  for (let c = 0; c < k; c++) correct += confusion[c][c];
  return {
    labels: selection.labels.slice(),
    perLabelTarget,
    n,
    accuracy: correct / n,
    perLabel,
    short: perLabel.filter((p) => p.chosen < perLabelTarget).map((p) => p.label),
    confusion,
  };
}
