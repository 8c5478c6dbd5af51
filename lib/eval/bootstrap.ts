import { CxrError } from '../errors';
import { cutIndex, f1Of, mccOf, sortLabel, summarizeSorted } from './metrics';
import type { NumArray, SortedLabel } from './metrics';

/**
 * Seeded, reproducible bootstrap (METHOD.md §5): 1000 resamples by default, by patient when patient ids
 * exist (cluster bootstrap), percentile 95% intervals, and a paired bootstrap for differences.
 *
 * A resample is represented by a weight vector over rows: the weight of a row is how many times its unit
 * (patient, or the row itself) was drawn. Metrics are then evaluated on the rows sorted once, with those
 * weights, which avoids re-sorting 1000 times.
 *
 * Random numbers come from a counter-based generator: draw `j` of resample `r` depends only on
 * (seed, r, j), so results do not depend on evaluation order and any resample can be recomputed alone.
 */

/** Default number of bootstrap resamples. */
export const DEFAULT_RESAMPLES = 1000;
/** Default confidence level of the intervals. */
export const DEFAULT_CI_LEVEL = 0.95;

/** Options shared by the bootstrap functions. */
export interface BootstrapOptions {
  /** Number of resamples. Default 1000. */
  resamples?: number;
  /** Seed (any integer; reduced to 32 bits). Default 0. */
  seed?: number;
  /**
   * Cluster (patient) id per row. Rows with the same id are drawn together, which keeps the correlation of
   * several studies of one patient inside each resample. Default: each row is its own unit.
   */
  clusters?: ArrayLike<string | number>;
  /** Confidence level of percentile intervals. Default 0.95 (percentiles 2.5 and 97.5). */
  level?: number;
}

/** Bob Jenkins / Chris Wellons style 32-bit integer hash with full avalanche; a bijection on uint32. */
function mix32(x: number): number {
  x ^= x >>> 17;
  x = Math.imul(x, 0xed5ad4bb);
  x ^= x >>> 11;
  x = Math.imul(x, 0xac4c1b51);
  x ^= x >>> 15;
  x = Math.imul(x, 0x31848bab);
  x ^= x >>> 14;
  return x >>> 0;
}

/**
 * Counter-based uniform 32-bit integer for (seed, stream, counter). Two hash rounds keyed by the seed and
 * the stream decorrelate neighbouring counters and streams.
 */
export function counterRandomU32(seed: number, stream: number, counter: number): number {
  const key = mix32((seed | 0) ^ 0x5bd1e995);
  const base = mix32((stream >>> 0) + key);
  return mix32(((Math.imul(counter >>> 0, 0x9e3779b9) + base) ^ key) >>> 0);
}

/** Uniform integer in [0, n) for (seed, stream, counter); bias ≤ n / 2³², negligible for any data set. */
export function counterRandomInt(seed: number, stream: number, counter: number, n: number): number {
  return Math.floor((counterRandomU32(seed, stream, counter) / 4294967296) * n);
}

/** Draws resamples as per-row weight vectors. */
export class Resampler {
  /** Number of rows. */
  readonly nRows: number;
  /** Number of resampling units (patients, or rows). */
  readonly nUnits: number;
  /** Whether units are clusters given by the caller or single rows. */
  readonly unit: 'cluster' | 'row';
  /** The seed. */
  readonly seed: number;
  private readonly unitOfRow: Int32Array | null;
  private readonly counts: Int32Array;

  /** `nRows` rows, optional cluster ids (one per row) and a seed. */
  constructor(nRows: number, opts: { seed?: number; clusters?: ArrayLike<string | number> } = {}) {
    if (!Number.isInteger(nRows) || nRows < 1) throw new CxrError('E_DATA', `bootstrap needs at least one row, got ${nRows}`);
    this.nRows = nRows;
    this.seed = opts.seed ?? 0;
    if (!Number.isFinite(this.seed)) throw new CxrError('E_CONFIG', `bootstrap seed must be a finite integer, got ${opts.seed}`);
    if (opts.clusters !== undefined) {
      if (opts.clusters.length !== nRows) {
        throw new CxrError('E_SHAPE', `${opts.clusters.length} cluster ids for ${nRows} rows`);
      }
      // Units are numbered in order of first appearance so that the draw does not depend on id spelling order.
      const ids = new Map<string | number, number>();
      this.unitOfRow = new Int32Array(nRows);
      for (let i = 0; i < nRows; i++) {
        const id = opts.clusters[i];
        let u = ids.get(id);
        if (u === undefined) {
          u = ids.size;
          ids.set(id, u);
        }
        this.unitOfRow[i] = u;
      }
      this.nUnits = ids.size;
      this.unit = 'cluster';
    } else {
      this.unitOfRow = null;
      this.nUnits = nRows;
      this.unit = 'row';
    }
    this.counts = new Int32Array(this.nUnits);
  }

  /** Fills `w` (length nRows) with the row weights of resample `r`. */
  fill(r: number, w: Float64Array): Float64Array {
    const counts = this.counts;
    counts.fill(0);
    const n = this.nUnits;
    for (let j = 0; j < n; j++) counts[counterRandomInt(this.seed, r, j, n)]++;
    if (this.unitOfRow === null) for (let i = 0; i < n; i++) w[i] = counts[i];
    else for (let i = 0; i < this.nRows; i++) w[i] = counts[this.unitOfRow[i]];
    return w;
  }
}

/**
 * Quantile of sorted finite values with linear interpolation between order statistics (NumPy's default,
 * "type 7"). NaN for an empty array.
 */
export function quantileSorted(sorted: ArrayLike<number>, q: number): number {
  const n = sorted.length;
  if (n === 0) return NaN;
  const h = (n - 1) * q;
  const lo = Math.floor(h);
  const hi = Math.min(lo + 1, n - 1);
  return sorted[lo] + (h - lo) * (sorted[hi] - sorted[lo]);
}

/** A percentile interval and how many resamples it rests on. */
export interface Interval {
  /** Lower bound (percentile (1 − level)/2). */
  lo: number;
  /** Upper bound (percentile (1 + level)/2). */
  hi: number;
  /** Resamples where the statistic was defined (e.g. both classes drawn); the rest are left out. */
  n: number;
}

/** Percentile interval of bootstrap values; NaN values (undefined resamples) are left out and counted. */
export function percentileInterval(values: ArrayLike<number>, level = DEFAULT_CI_LEVEL): Interval {
  if (!(level > 0 && level < 1)) throw new CxrError('E_CONFIG', `confidence level must be in (0, 1), got ${level}`);
  const finite: number[] = [];
  for (let i = 0; i < values.length; i++) if (!Number.isNaN(values[i])) finite.push(values[i]);
  const sorted = Float64Array.from(finite).sort();
  // Rounded so that level 0.95 gives exactly the 2.5th percentile ((1 - 0.95) / 2 is 0.025000000000000022).
  const a = Math.round(((1 - level) / 2) * 1e12) / 1e12;
  return { lo: quantileSorted(sorted, a), hi: quantileSorted(sorted, 1 - a), n: sorted.length };
}

/**
 * Two-sided bootstrap p-value of "the difference is 0" from resampled differences:
 * p = min(1, 2 · min(#{δ ≤ 0} + 1, #{δ ≥ 0} + 1) / (B + 1)), where the +1 keeps p above 0 with finitely
 * many resamples. NaN differences are left out. NaN when nothing is left.
 */
export function pairedPValue(deltas: ArrayLike<number>): number {
  let le = 0;
  let ge = 0;
  let b = 0;
  for (let i = 0; i < deltas.length; i++) {
    const d = deltas[i];
    if (Number.isNaN(d)) continue;
    b++;
    if (d <= 0) le++;
    if (d >= 0) ge++;
  }
  if (b === 0) return NaN;
  return Math.min(1, (2 * Math.min(le + 1, ge + 1)) / (b + 1));
}

/**
 * Runs `stat` on `resamples` weight vectors and returns the values as a matrix `[resample][k]`, where `k`
 * indexes the entries of the statistic (several metrics and labels can share one resample). `stat` must
 * not keep the weight vector: it is reused.
 */
export function bootstrapMatrix(
  nRows: number,
  k: number,
  stat: (w: Float64Array, out: Float64Array, r: number) => void,
  opts: BootstrapOptions = {},
): Float64Array[] {
  const resamples = opts.resamples ?? DEFAULT_RESAMPLES;
  if (!Number.isInteger(resamples) || resamples < 1) throw new CxrError('E_CONFIG', `bootstrap resamples must be a positive integer, got ${resamples}`);
  const rs = new Resampler(nRows, opts);
  const w = new Float64Array(nRows);
  const out: Float64Array[] = [];
  for (let r = 0; r < resamples; r++) {
    rs.fill(r, w);
    const row = new Float64Array(k).fill(NaN);
    stat(w, row, r);
    out.push(row);
  }
  return out;
}

/** Column `j` of a bootstrap matrix. */
export function column(m: Float64Array[], j: number): Float64Array {
  const c = new Float64Array(m.length);
  for (let r = 0; r < m.length; r++) c[r] = m[r][j];
  return c;
}

/** A metric a bootstrap can resample. `threshold` applies to F1 and MCC (default 0.5). */
export type ResampledMetric = 'auroc' | 'auprc' | 'f1' | 'mcc';

function metricOfSorted(sl: SortedLabel, metric: ResampledMetric, w: NumArray | undefined, cut: number): number {
  const s = summarizeSorted(sl, w, metric === 'f1' || metric === 'mcc' ? cut : -1);
  switch (metric) {
    case 'auroc':
      return s.auroc;
    case 'auprc':
      return s.auprc;
    case 'f1':
      return s.confusion.tp + s.confusion.fn > 0 && s.confusion.fp + s.confusion.tn > 0 ? f1Of(s.confusion) : NaN;
    case 'mcc':
      return s.confusion.tp + s.confusion.fn > 0 && s.confusion.fp + s.confusion.tn > 0 ? mccOf(s.confusion) : NaN;
    default:
      throw new CxrError('E_CONFIG', `unknown metric ${JSON.stringify(metric)}`);
  }
}

/** Estimate on the full data with its bootstrap interval. */
export interface BootstrapEstimate extends Interval {
  /** The metric on the original rows. */
  estimate: number;
}

/**
 * Bootstrap interval of one metric of one label. Resamples with one class are left out (counted in `n`).
 */
export function bootstrapMetric(
  y: NumArray,
  s: NumArray,
  metric: ResampledMetric,
  opts: BootstrapOptions & { threshold?: number } = {},
): BootstrapEstimate {
  const sl = sortLabel(y, s);
  const cut = cutIndex(sl, opts.threshold ?? 0.5);
  const m = bootstrapMatrix(y.length, 1, (w, out) => {
    out[0] = metricOfSorted(sl, metric, w, cut);
  }, opts);
  return { estimate: metricOfSorted(sl, metric, undefined, cut), ...percentileInterval(column(m, 0), opts.level) };
}

/** A paired difference A − B with its interval and p-value. */
export interface PairedEstimate extends Interval {
  /** metric(A) − metric(B) on the original rows. */
  delta: number;
  /** Two-sided bootstrap p-value of a zero difference ({@link pairedPValue}). */
  p: number;
}

/**
 * Paired bootstrap of metric(A) − metric(B) for two prediction sets on the same rows: both are evaluated on
 * the same resamples, so the interval reflects the difference, not two independent uncertainties.
 * `thresholdA` / `thresholdB` apply to F1 and MCC (default 0.5 each).
 */
export function pairedBootstrap(
  y: NumArray,
  sA: NumArray,
  sB: NumArray,
  metric: ResampledMetric,
  opts: BootstrapOptions & { thresholdA?: number; thresholdB?: number } = {},
): PairedEstimate {
  if (sA.length !== sB.length) throw new CxrError('E_SHAPE', `prediction sets have ${sA.length} and ${sB.length} rows`);
  const a = sortLabel(y, sA);
  const b = sortLabel(y, sB);
  const cutA = cutIndex(a, opts.thresholdA ?? 0.5);
  const cutB = cutIndex(b, opts.thresholdB ?? 0.5);
  const m = bootstrapMatrix(y.length, 1, (w, out) => {
    out[0] = metricOfSorted(a, metric, w, cutA) - metricOfSorted(b, metric, w, cutB);
  }, opts);
  const d = column(m, 0);
  return {
    delta: metricOfSorted(a, metric, undefined, cutA) - metricOfSorted(b, metric, undefined, cutB),
    ...percentileInterval(d, opts.level),
    p: pairedPValue(d),
  };
}
