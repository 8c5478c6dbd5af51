/**
 * Calibration metrics of probabilities against binary truth: reliability bins (equal-width or equal-mass),
 * expected and maximum calibration error, Brier score and log loss, per label of a score matrix.
 *
 * Binning follows scikit-learn's `calibration_curve` exactly (so that a reliability diagram here and one
 * drawn with sklearn agree bin for bin):
 * - `uniform` (equal width): edges `i · (1/B)` for i = 0..B−1 and 1 (NumPy's `linspace(0, 1, B + 1)`);
 * - `quantile` (equal mass): edges at the `100 · i/B` percentiles of the probabilities, NumPy's default
 *   linear interpolation (computed with NumPy's own arithmetic, see {@link numpyPercentileSorted});
 * - a probability goes to bin k = the number of *inner* edges strictly below it (`np.searchsorted(edges[1:-1], p)`),
 *   so a probability equal to an inner edge belongs to the lower bin, 0 to the first and 1 to the last.
 *
 * ECE = Σ_k (n_k / N) · |mean predicted probability in k − fraction of positives in k| over non-empty bins;
 * MCE is the largest of those gaps. Brier = mean (p − y)². Uncertain (−1) and missing (NaN) truth rows are
 * left out per label, as everywhere in scoring.
 */
import { CxrError } from '../errors';
import { forEachLabelColumn, isMaskedTruth } from './metrics';
import type { NumArray } from './metrics';

/** How reliability bins are cut. */
export type BinStrategy = 'uniform' | 'quantile';

/** Default number of reliability bins (both strategies). */
export const DEFAULT_CALIBRATION_BINS = 10;

/** Reliability bins of one label. Arrays hold non-empty bins only, in increasing probability. */
export interface ReliabilityBins {
  strategy: BinStrategy;
  /** Bins asked for. */
  nBins: number;
  /** The B + 1 edges. */
  edges: number[];
  /** Index (0..B−1) of each non-empty bin. */
  bin: number[];
  /** Rows in each non-empty bin. */
  count: number[];
  /** Mean predicted probability per bin (sklearn's `prob_pred`). */
  meanPredicted: number[];
  /** Fraction of positives per bin (sklearn's `prob_true`). */
  fractionPositive: number[];
  /** Expected calibration error. */
  ece: number;
  /** Maximum calibration error (largest bin gap). */
  mce: number;
}

/**
 * Percentile of ascending finite values with NumPy's default (linear) method, in NumPy's own arithmetic
 * (`np.percentile(a, percent)`, NumPy ≥ 1.22): q = percent / 100, virtual index v = (n − 1)·q, t = v − ⌊v⌋,
 * and the lerp `a + (b − a)·t`, or `b − (b − a)·(1 − t)` when t ≥ 0.5. Bit-equal values matter here because
 * a bin edge that coincides with a probability decides which bin it goes to.
 */
export function numpyPercentileSorted(sorted: ArrayLike<number>, percent: number): number {
  const n = sorted.length;
  if (n === 0) return NaN;
  const q = percent / 100;
  const v = (n - 1) * q;
  if (v >= n - 1) return sorted[n - 1];
  if (v < 0) return sorted[0];
  const lo = Math.floor(v);
  const t = v - lo;
  const a = sorted[lo];
  const b = sorted[lo + 1];
  const d = b - a;
  return t >= 0.5 ? b - d * (1 - t) : a + d * t;
}

/** NumPy's `linspace(0, 1, B + 1)`: `i · (1/B)`, the last edge exactly 1. */
function linspace01(nBins: number): number[] {
  const step = 1 / nBins;
  const e: number[] = [];
  for (let i = 0; i <= nBins; i++) e.push(i * step);
  e[nBins] = 1;
  return e;
}

function checkBins(nBins: number): void {
  if (!Number.isInteger(nBins) || nBins < 1 || nBins > 1000) throw new CxrError('E_CONFIG', `calibration bins must be an integer in [1, 1000], got ${nBins}`);
}

/** Kept rows of one label: truth in {0, 1} and probabilities in [0, 1] (E_DATA otherwise). */
function keptRows(y: NumArray, p: NumArray, what: string): { y: Float64Array; p: Float64Array } {
  if (y.length !== p.length) throw new CxrError('E_SHAPE', `${what}: ${y.length} truth values and ${p.length} probabilities`);
  const ys: number[] = [];
  const ps: number[] = [];
  for (let i = 0; i < y.length; i++) {
    if (isMaskedTruth(y[i], i)) continue;
    const v = p[i];
    if (!(v >= 0 && v <= 1)) throw new CxrError('E_DATA', `${what}: probability ${v} at row ${i} is not in [0, 1]`, { row: i });
    ys.push(y[i]);
    ps.push(v);
  }
  return { y: Float64Array.from(ys), p: Float64Array.from(ps) };
}

/**
 * Reliability bins, ECE and MCE of one label (truth 1/0, −1 and NaN rows left out). Equal to scikit-learn's
 * `calibration_curve(y, p, n_bins=nBins, strategy=...)` on the kept rows (see the module comment).
 * @throws CxrError E_CONFIG (bins), E_DATA (a probability outside [0, 1], bad truth, no row left).
 */
export function reliabilityBins(y: NumArray, p: NumArray, nBins = DEFAULT_CALIBRATION_BINS, strategy: BinStrategy = 'uniform'): ReliabilityBins {
  checkBins(nBins);
  if (strategy !== 'uniform' && strategy !== 'quantile') throw new CxrError('E_CONFIG', `bin strategy must be uniform or quantile, got ${JSON.stringify(strategy)}`);
  const k = keptRows(y, p, 'reliabilityBins');
  const n = k.p.length;
  if (n === 0) throw new CxrError('E_DATA', 'reliabilityBins: no row with a 0/1 truth');
  let edges: number[];
  if (strategy === 'uniform') edges = linspace01(nBins);
  else {
    const sorted = Float64Array.from(k.p).sort();
    edges = linspace01(nBins).map((q) => numpyPercentileSorted(sorted, q * 100));
  }
  const inner = edges.slice(1, -1);
  const count = new Float64Array(nBins);
  const sumP = new Float64Array(nBins);
  const sumY = new Float64Array(nBins);
  for (let i = 0; i < n; i++) {
    // Number of inner edges strictly below p (inner edges ascend): np.searchsorted(inner, p, 'left').
    let lo = 0;
    let hi = inner.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (inner[mid] < k.p[i]) lo = mid + 1;
      else hi = mid;
    }
    count[lo]++;
    sumP[lo] += k.p[i];
    sumY[lo] += k.y[i];
  }
  const out: ReliabilityBins = { strategy, nBins, edges, bin: [], count: [], meanPredicted: [], fractionPositive: [], ece: 0, mce: 0 };
  for (let b = 0; b < nBins; b++) {
    if (count[b] === 0) continue;
    const mp = sumP[b] / count[b];
    const fp = sumY[b] / count[b];
    out.bin.push(b);
    out.count.push(count[b]);
    out.meanPredicted.push(mp);
    out.fractionPositive.push(fp);
    const gap = Math.abs(mp - fp);
    out.ece += (count[b] / n) * gap;
    out.mce = Math.max(out.mce, gap);
  }
  return out;
}

/** Brier score, mean (p − y)² over rows with a 0/1 truth (scikit-learn's `brier_score_loss`). */
export function brierScore(y: NumArray, p: NumArray): number {
  const k = keptRows(y, p, 'brierScore');
  if (k.p.length === 0) throw new CxrError('E_DATA', 'brierScore: no row with a 0/1 truth');
  let s = 0;
  for (let i = 0; i < k.p.length; i++) s += (k.p[i] - k.y[i]) ** 2;
  return s / k.p.length;
}

/** Mean negative log-likelihood (log loss) with probabilities clipped to [1e-15, 1 − 1e-15]. */
export function logLoss(y: NumArray, p: NumArray): number {
  const k = keptRows(y, p, 'logLoss');
  if (k.p.length === 0) throw new CxrError('E_DATA', 'logLoss: no row with a 0/1 truth');
  let s = 0;
  for (let i = 0; i < k.p.length; i++) {
    const q = Math.min(Math.max(k.p[i], 1e-15), 1 - 1e-15);
    s -= k.y[i] === 1 ? Math.log(q) : Math.log(1 - q);
  }
  return s / k.p.length;
}

/** Calibration of one label's probabilities. */
export interface LabelCalibration {
  /** Rows with a 0/1 truth. */
  n: number;
  nPos: number;
  brier: number;
  logLoss: number;
  /** ECE with equal-width bins. */
  eceUniform: number;
  /** ECE with equal-mass bins. */
  eceQuantile: number;
  /** MCE with equal-width bins. */
  mceUniform: number;
  /** Both binnings (the report card draws the equal-width one). */
  bins: { uniform: ReliabilityBins; quantile: ReliabilityBins };
}

/** Calibration of every label of a score matrix, and their macro means. */
export interface CalibrationSummary {
  nBins: number;
  labels: Record<string, LabelCalibration>;
  /** Labels without any 0/1 truth row, left out. */
  skipped: string[];
  /** Unweighted means over the labels scored. */
  macro: { brier: number | null; logLoss: number | null; eceUniform: number | null; eceQuantile: number | null };
}

/**
 * Calibration metrics of row-major `n × labels` probabilities against truth (1/0/−1/NaN).
 * @throws CxrError E_SHAPE, E_DATA (probabilities outside [0, 1]), E_CONFIG (bins).
 */
export function calibrationSummary(labels: readonly string[], truth: NumArray, probs: NumArray, nBins = DEFAULT_CALIBRATION_BINS): CalibrationSummary {
  checkBins(nBins);
  const out: CalibrationSummary = { nBins, labels: {}, skipped: [], macro: { brier: null, logLoss: null, eceUniform: null, eceQuantile: null } };
  forEachLabelColumn(labels, truth, probs, 'calibration: truth and probabilities', (label, y, s) => {
    let n = 0;
    let nPos = 0;
    for (let i = 0; i < y.length; i++) {
      if (isMaskedTruth(y[i], i)) continue;
      n++;
      if (y[i] === 1) nPos++;
    }
    if (n === 0) {
      out.skipped.push(label);
      return;
    }
    const uniform = reliabilityBins(y, s, nBins, 'uniform');
    const quantile = reliabilityBins(y, s, nBins, 'quantile');
    out.labels[label] = { n, nPos, brier: brierScore(y, s), logLoss: logLoss(y, s), eceUniform: uniform.ece, eceQuantile: quantile.ece, mceUniform: uniform.mce, bins: { uniform, quantile } };
  });
  const vals = Object.values(out.labels);
  if (vals.length) {
    const mean = (f: (c: LabelCalibration) => number): number => vals.reduce((a, c) => a + f(c), 0) / vals.length;
    out.macro = { brier: mean((c) => c.brier), logLoss: mean((c) => c.logLoss), eceUniform: mean((c) => c.eceUniform), eceQuantile: mean((c) => c.eceQuantile) };
  }
  return out;
}
