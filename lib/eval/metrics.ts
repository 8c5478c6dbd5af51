import { CxrError } from '../errors';

/**
 * Exact classification metrics on typed arrays (METHOD.md §5).
 *
 * Conventions shared by every function here:
 * - Ground truth `y`: 1 = positive, 0 = negative, -1 = uncertain, NaN = missing. Uncertain and missing rows
 *   are masked out *per label* (a row can count for one label and not for another). Any other value is an
 *   `E_DATA` error, because a silently mis-coded label corrupts every number downstream.
 * - Scores `s`: any ordered numbers (probabilities, logits, 0/1 reads). A NaN score on a row that is not
 *   masked is an `E_DATA` error.
 * - A row is predicted positive when `score >= threshold`.
 * - Metrics that are undefined (AUROC with one class, a ratio with a zero denominator) are NaN, so that
 *   callers and bootstrap resamples can skip them explicitly. F1 and MCC follow scikit-learn and are 0 when
 *   their denominator is 0.
 * - Optional weights `w` are indexed by the *original* row index (not the masked position); a weight is the
 *   multiplicity of the row, which is how a bootstrap resample is evaluated without re-sorting.
 */

/** Numbers a metric reads: plain arrays or any typed array. */
export type NumArray = ArrayLike<number>;

/**
 * One label's kept rows, sorted once by score (descending) and grouped into runs of tied scores. Every
 * metric, weighted or not, is a single linear pass over this structure.
 */
export interface SortedLabel {
  /** Original row indices of the kept rows, by score descending (ties in row order). */
  readonly order: Int32Array;
  /** 1 where the row at the same position of `order` is positive. */
  readonly positive: Uint8Array;
  /** Start offset in `order` of each tie group, plus a final entry `order.length`. */
  readonly groupStart: Int32Array;
  /** The score shared by each tie group, descending. */
  readonly groupScore: Float64Array;
  /** Number of positive and negative kept rows (unweighted). */
  readonly nPos: number;
  readonly nNeg: number;
  /** Number of rows masked out (uncertain or missing truth). */
  readonly nMasked: number;
}

/** Counts of a confusion matrix (weighted counts may be fractional). */
export interface Confusion {
  tp: number;
  fp: number;
  tn: number;
  fn: number;
}

/** Threshold metrics derived from a confusion matrix. */
export interface BinaryMetrics {
  /** Recall of positives, tp / (tp + fn). */
  sensitivity: number;
  /** Recall of negatives, tn / (tn + fp). */
  specificity: number;
  /** Precision, tp / (tp + fp). */
  ppv: number;
  /** tn / (tn + fn). */
  npv: number;
  /** (tp + tn) / all. */
  accuracy: number;
  /** 2tp / (2tp + fp + fn); 0 when the denominator is 0 (scikit-learn). */
  f1: number;
  /** Matthews correlation coefficient; 0 when a marginal is 0 (scikit-learn). */
  mcc: number;
  /** Youden's J = sensitivity + specificity - 1. */
  youden: number;
}

/** Criterion maximised by {@link selectThreshold}. */
export type ThresholdCriterion = 'mcc' | 'f1' | 'youden';

function checkLengths(y: NumArray, s: NumArray, what = 'scores'): void {
  if (y.length !== s.length) {
    throw new CxrError('E_SHAPE', `truth has ${y.length} rows but ${what} have ${s.length}`, { truth: y.length, scores: s.length });
  }
}

/** True when a truth value is masked out (uncertain -1 or missing NaN). Throws `E_DATA` on other codes. */
export function isMaskedTruth(v: number, row = -1): boolean {
  if (v === 1 || v === 0) return false;
  if (v === -1 || Number.isNaN(v)) return true;
  throw new CxrError('E_DATA', `truth value ${v}${row >= 0 ? ` at row ${row}` : ''} is not 1, 0, -1 (uncertain) or missing`, { value: v, row });
}

/**
 * Masks uncertain/missing rows, checks scores, and sorts the kept rows by score once. The result is the
 * input of every `*Sorted` function and of the bootstrap.
 */
export function sortLabel(y: NumArray, s: NumArray): SortedLabel {
  checkLengths(y, s);
  const keep: number[] = [];
  let nPos = 0;
  let nNeg = 0;
  for (let i = 0; i < y.length; i++) {
    if (isMaskedTruth(y[i], i)) continue;
    if (Number.isNaN(s[i])) throw new CxrError('E_DATA', `score at row ${i} is NaN`, { row: i });
    keep.push(i);
    if (y[i] === 1) nPos++;
    else nNeg++;
  }
  // Stable sort so that tie order (irrelevant to the metrics) is at least reproducible.
  keep.sort((a, b) => (s[b] - s[a]) || (a - b));
  const n = keep.length;
  const order = Int32Array.from(keep);
  const positive = new Uint8Array(n);
  const starts: number[] = [];
  const scores: number[] = [];
  for (let k = 0; k < n; k++) {
    positive[k] = y[order[k]] === 1 ? 1 : 0;
    const v = s[order[k]];
    if (k === 0 || v !== scores[scores.length - 1]) {
      starts.push(k);
      scores.push(v);
    }
  }
  starts.push(n);
  return {
    order,
    positive,
    groupStart: Int32Array.from(starts),
    groupScore: Float64Array.from(scores),
    nPos,
    nNeg,
    nMasked: y.length - n,
  };
}

/** Everything a bootstrap resample needs for one label, computed in one pass. */
export interface WeightedSummary {
  /** AUROC (NaN when one class has zero weight). */
  auroc: number;
  /** Average precision (NaN when positives have zero weight). */
  auprc: number;
  /** Weighted confusion counts at the threshold given to {@link summarizeSorted}. */
  confusion: Confusion;
}

/**
 * Number of leading positions of `sl.order` whose score is `>= threshold` (binary search over groups).
 * `Infinity` gives 0 (nothing positive), `-Infinity` gives all rows.
 */
export function cutIndex(sl: SortedLabel, threshold: number): number {
  // groupScore is descending: find the first group with score < threshold.
  let lo = 0;
  let hi = sl.groupScore.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sl.groupScore[mid] >= threshold) lo = mid + 1;
    else hi = mid;
  }
  return sl.groupStart[lo];
}

/**
 * AUROC, average precision and the confusion matrix at a cut, in one pass over the sorted rows, with
 * optional per-row weights (indexed by original row). `cut` comes from {@link cutIndex}; pass -1 to skip
 * the confusion matrix.
 *
 * AUROC is the Mann-Whitney statistic with ties counted one half, which equals the trapezoidal area under
 * the full ROC curve; walking tie groups from the top, each negative scores the positives above it plus
 * half the positives tied with it.
 */
export function summarizeSorted(sl: SortedLabel, w?: NumArray, cut = -1): WeightedSummary {
  const { order, positive, groupStart } = sl;
  const nGroups = groupStart.length - 1;
  let posAbove = 0;
  let negAbove = 0;
  let aucSum = 0;
  let apSum = 0;
  let tpCut = 0;
  let fpCut = 0;
  for (let g = 0; g < nGroups; g++) {
    const a = groupStart[g];
    const b = groupStart[g + 1];
    let wp = 0;
    let wn = 0;
    if (w === undefined) {
      for (let k = a; k < b; k++) {
        if (positive[k] === 1) wp++;
        else wn++;
      }
    } else {
      for (let k = a; k < b; k++) {
        const wk = w[order[k]];
        if (positive[k] === 1) wp += wk;
        else wn += wk;
      }
    }
    aucSum += wn * (posAbove + 0.5 * wp);
    posAbove += wp;
    negAbove += wn;
    if (wp > 0) apSum += (wp * posAbove) / (posAbove + negAbove);
    if (b === cut) {
      tpCut = posAbove;
      fpCut = negAbove;
    }
  }
  const P = posAbove;
  const N = negAbove;
  const confusion: Confusion = cut < 0 ? { tp: NaN, fp: NaN, tn: NaN, fn: NaN } : { tp: tpCut, fp: fpCut, fn: P - tpCut, tn: N - fpCut };
  return {
    auroc: P > 0 && N > 0 ? aucSum / (P * N) : NaN,
    auprc: P > 0 ? apSum / P : NaN,
    confusion,
  };
}

/**
 * Weighted positives and negatives among the first `cut` rows of `sl.order` (the rows predicted positive at
 * the threshold that gave `cut`). Cheaper than {@link summarizeSorted} when only a confusion matrix is needed
 * and the class totals are known, e.g. several readers scored against the same truth.
 */
export function weightedAbove(sl: SortedLabel, w: NumArray, cut: number): { tp: number; fp: number } {
  const { order, positive } = sl;
  let tp = 0;
  let fp = 0;
  for (let k = 0; k < cut; k++) {
    if (positive[k] === 1) tp += w[order[k]];
    else fp += w[order[k]];
  }
  return { tp, fp };
}

/** Exact tie-aware AUROC (Mann-Whitney U / (P·N) with midranks); NaN when only one class is present. */
export function auroc(y: NumArray, s: NumArray): number {
  return summarizeSorted(sortLabel(y, s)).auroc;
}

/**
 * Average precision, scikit-learn's definition: AP = Σₙ (Rₙ − Rₙ₋₁) Pₙ over the distinct score thresholds
 * (no interpolation). NaN when there is no positive.
 */
export function averagePrecision(y: NumArray, s: NumArray): number {
  return summarizeSorted(sortLabel(y, s)).auprc;
}

/** Points of a ROC curve, one per distinct score plus the origin. */
export interface RocCurve {
  /** False-positive rate, non-decreasing, from 0 to 1. */
  fpr: Float64Array;
  /** True-positive rate, non-decreasing, from 0 to 1. */
  tpr: Float64Array;
  /** Threshold of each point (`score >= threshold`); the first is `Infinity` (nothing positive). */
  thresholds: Float64Array;
}

/** ROC curve over every distinct score (no point dropped). Rates are NaN for a class that is absent. */
export function rocCurveSorted(sl: SortedLabel): RocCurve {
  const nGroups = sl.groupStart.length - 1;
  const fpr = new Float64Array(nGroups + 1);
  const tpr = new Float64Array(nGroups + 1);
  const thresholds = new Float64Array(nGroups + 1);
  thresholds[0] = Infinity;
  let tp = 0;
  let fp = 0;
  for (let g = 0; g < nGroups; g++) {
    for (let k = sl.groupStart[g]; k < sl.groupStart[g + 1]; k++) {
      if (sl.positive[k] === 1) tp++;
      else fp++;
    }
    tpr[g + 1] = tp / sl.nPos;
    fpr[g + 1] = fp / sl.nNeg;
    thresholds[g + 1] = sl.groupScore[g];
  }
  if (sl.nPos === 0) tpr.fill(NaN);
  if (sl.nNeg === 0) fpr.fill(NaN);
  return { fpr, tpr, thresholds };
}

/** {@link rocCurveSorted} from raw arrays. */
export function rocCurve(y: NumArray, s: NumArray): RocCurve {
  return rocCurveSorted(sortLabel(y, s));
}

/** Points of a precision-recall curve, one per distinct score, by threshold descending. */
export interface PrCurve {
  /** Recall at each threshold, non-decreasing. */
  recall: Float64Array;
  /** Precision at each threshold. */
  precision: Float64Array;
  /** The thresholds (`score >= threshold`), descending. */
  thresholds: Float64Array;
}

/** Precision-recall curve over every distinct score. */
export function prCurveSorted(sl: SortedLabel): PrCurve {
  const nGroups = sl.groupStart.length - 1;
  const recall = new Float64Array(nGroups);
  const precision = new Float64Array(nGroups);
  let tp = 0;
  let fp = 0;
  for (let g = 0; g < nGroups; g++) {
    for (let k = sl.groupStart[g]; k < sl.groupStart[g + 1]; k++) {
      if (sl.positive[k] === 1) tp++;
      else fp++;
    }
    recall[g] = sl.nPos > 0 ? tp / sl.nPos : NaN;
    precision[g] = tp / (tp + fp);
  }
  return { recall, precision, thresholds: Float64Array.from(sl.groupScore) };
}

/** {@link prCurveSorted} from raw arrays. */
export function prCurve(y: NumArray, s: NumArray): PrCurve {
  return prCurveSorted(sortLabel(y, s));
}

/** Confusion matrix at `threshold` (`score >= threshold` is positive), masked rows left out. */
export function confusionAt(y: NumArray, s: NumArray, threshold: number): Confusion {
  checkLengths(y, s);
  const c: Confusion = { tp: 0, fp: 0, tn: 0, fn: 0 };
  for (let i = 0; i < y.length; i++) {
    if (isMaskedTruth(y[i], i)) continue;
    if (Number.isNaN(s[i])) throw new CxrError('E_DATA', `score at row ${i} is NaN`, { row: i });
    const predPos = s[i] >= threshold;
    if (y[i] === 1) {
      if (predPos) c.tp++;
      else c.fn++;
    } else if (predPos) c.fp++;
    else c.tn++;
  }
  return c;
}

/** Matthews correlation coefficient of a confusion matrix (0 when a marginal is empty, as scikit-learn). */
export function mccOf(c: Confusion): number {
  const den = (c.tp + c.fp) * (c.tp + c.fn) * (c.tn + c.fp) * (c.tn + c.fn);
  if (!(den > 0)) return 0;
  return (c.tp * c.tn - c.fp * c.fn) / Math.sqrt(den);
}

/** F1 of a confusion matrix (0 when there is no positive, predicted or true, as scikit-learn). */
export function f1Of(c: Confusion): number {
  const den = 2 * c.tp + c.fp + c.fn;
  return den > 0 ? (2 * c.tp) / den : 0;
}

/** All threshold metrics of a confusion matrix. Ratios with a zero denominator are NaN. */
export function binaryMetrics(c: Confusion): BinaryMetrics {
  const div = (a: number, b: number): number => (b > 0 ? a / b : NaN);
  const sensitivity = div(c.tp, c.tp + c.fn);
  const specificity = div(c.tn, c.tn + c.fp);
  return {
    sensitivity,
    specificity,
    ppv: div(c.tp, c.tp + c.fp),
    npv: div(c.tn, c.tn + c.fn),
    accuracy: div(c.tp + c.tn, c.tp + c.tn + c.fp + c.fn),
    f1: f1Of(c),
    mcc: mccOf(c),
    youden: sensitivity + specificity - 1,
  };
}

/** {@link binaryMetrics} of the predictions `score >= threshold`. */
export function metricsAt(y: NumArray, s: NumArray, threshold: number): BinaryMetrics & Confusion {
  const c = confusionAt(y, s, threshold);
  return { ...c, ...binaryMetrics(c) };
}

/** Value of a threshold criterion for a confusion matrix. */
export function criterionOf(c: Confusion, criterion: ThresholdCriterion): number {
  switch (criterion) {
    case 'mcc':
      return mccOf(c);
    case 'f1':
      return f1Of(c);
    case 'youden':
      return c.tp / (c.tp + c.fn) + c.tn / (c.tn + c.fp) - 1;
    default:
      throw new CxrError('E_CONFIG', `unknown threshold criterion ${JSON.stringify(criterion)} (mcc, f1 or youden)`);
  }
}

/** A threshold chosen by {@link selectThreshold}. */
export interface ThresholdChoice {
  /** The chosen threshold: one of the distinct validation scores. */
  threshold: number;
  /** The criterion's value there, on the data it was chosen on. */
  value: number;
  /** The criterion maximised. */
  criterion: ThresholdCriterion;
}

/**
 * Chooses the threshold that maximises `criterion` (default MCC, METHOD.md §5) over the candidate
 * thresholds = the distinct scores (the ROC thresholds without the `Infinity` point, which predicts nothing
 * positive). Ties in the criterion go to the highest threshold so that the choice is deterministic.
 * Returns null when the rows hold only one class (every threshold is then equally meaningless).
 */
export function selectThresholdSorted(sl: SortedLabel, criterion: ThresholdCriterion = 'mcc'): ThresholdChoice | null {
  if (sl.nPos === 0 || sl.nNeg === 0) return null;
  criterionOf({ tp: 1, fp: 0, tn: 1, fn: 0 }, criterion); // validates the name before the sweep
  let tp = 0;
  let fp = 0;
  let best = -Infinity;
  let bestT = NaN;
  const nGroups = sl.groupStart.length - 1;
  for (let g = 0; g < nGroups; g++) {
    for (let k = sl.groupStart[g]; k < sl.groupStart[g + 1]; k++) {
      if (sl.positive[k] === 1) tp++;
      else fp++;
    }
    const v = criterionOf({ tp, fp, fn: sl.nPos - tp, tn: sl.nNeg - fp }, criterion);
    if (v > best) {
      best = v;
      bestT = sl.groupScore[g];
    }
  }
  return { threshold: bestT, value: best, criterion };
}

/** {@link selectThresholdSorted} from raw arrays. */
export function selectThreshold(y: NumArray, s: NumArray, criterion: ThresholdCriterion = 'mcc'): ThresholdChoice | null {
  return selectThresholdSorted(sortLabel(y, s), criterion);
}

/** A macro mean with the labels it covers and the ones it had to leave out. */
export interface MacroMean {
  /** Mean over `included`; NaN when nothing is included. */
  mean: number;
  /** Labels whose value entered the mean. */
  included: string[];
  /** Labels left out because their value is undefined (e.g. one class), by name. */
  skipped: string[];
}

/**
 * AUROC of every label of row-major `n × labels.length` truth and scores, `truth` as 1 / 0 (anything else,
 * e.g. -1 uncertain or NaN missing, is left out by {@link auroc}); null for a label with one class only.
 */
export function perLabelAuroc(labels: readonly string[], truth: NumArray, scores: NumArray): Record<string, number | null> {
  const out: Record<string, number | null> = {};
  forEachLabelColumn(labels, truth, scores, 'perLabelAuroc', (label, y, s) => {
    const a = auroc(y, s);
    out[label] = Number.isNaN(a) ? null : a;
  });
  return out;
}

/**
 * Calls `fn` with each label's truth and score columns of row-major `n × labels.length` matrices.
 * E_SHAPE (naming `what`) when the two do not have the same length or do not split into the labels.
 */
export function forEachLabelColumn(
  labels: readonly string[],
  truth: NumArray,
  scores: NumArray,
  what: string,
  fn: (label: string, y: Float64Array, s: Float64Array, j: number) => void,
): void {
  const L = labels.length;
  const n = L === 0 ? 0 : truth.length / L;
  if (scores.length !== truth.length || !Number.isInteger(n)) throw new CxrError('E_SHAPE', `${what}: ${truth.length} truth values and ${scores.length} scores for ${L} labels`);
  labels.forEach((label, j) => {
    const y = new Float64Array(n);
    const s = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      y[i] = truth[i * L + j];
      s[i] = scores[i * L + j];
    }
    fn(label, y, s, j);
  });
}

/**
 * Unweighted mean over labels, skipping (and naming) labels whose value is NaN or null (e.g. AUROC of a label
 * with one class). `only`, when given, restricts the mean to those labels.
 */
export function macroMean(values: Record<string, number | null | undefined>, only?: readonly string[]): MacroMean {
  const names = only ?? Object.keys(values);
  const included: string[] = [];
  const skipped: string[] = [];
  let sum = 0;
  for (const k of names) {
    const v = values[k];
    if (v === null || v === undefined || Number.isNaN(v)) skipped.push(k);
    else {
      included.push(k);
      sum += v;
    }
  }
  return { mean: included.length ? sum / included.length : NaN, included, skipped };
}
