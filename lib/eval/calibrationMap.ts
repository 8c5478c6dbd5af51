/**
 * Calibration maps of zero-shot probabilities: temperature scaling and Platt scaling on "the logit", fitted
 * per label on a validation split by maximum likelihood, saved by `cxr-train eval --calibrate` as
 * `calibration.json` beside `thresholds.json`, applied to the test split and by `predict` and `serve`.
 *
 * **The logit.** A zero-shot probability of one checkpoint is p = σ(t·(u·v⁺ − u·v⁻)) (lib/eval/zeroShot.ts:
 * the two-way softmax over the positive and negative prompt embeddings v⁺, v⁻ of the unit image embedding
 * u, with the temperature t, 1 by default). Its logit z = ln(p / (1 − p)) is therefore exactly
 * t·(cos⁺ − cos⁻), the scaled cosine margin between the positive and the negative prompt. The maps read z
 * back from the stored (float32) probability: z = ln(p / (1 − p)) with p clamped to
 * [{@link LOGIT_EPS}, 1 − {@link LOGIT_EPS}] (2⁻²⁴, float32's resolution next to 1), so |z| ≤ 16.64 and a
 * probability that saturated at 0 or 1 maps to that bound. For an ensemble (probabilities averaged over
 * checkpoints) z is the logit of the averaged probability.
 *
 * **The maps.** temperature: p' = σ(z / T), one T > 0 per label. Platt: p' = σ(a·z + b), a > 0. Both are
 * strictly increasing in p, so AUROC/AUPRC and every call at a threshold are unchanged (a raw threshold τ
 * is the calibrated threshold map(τ)); only the probabilities' meaning changes. Both minimise the mean
 * negative log-likelihood of the validation labels (Newton's method on a convex objective, to 1e-12);
 * Platt's fit uses the hard 0/1 targets (scikit-learn's `LogisticRegression(penalty=None)` on the single
 * feature z, not Platt's smoothed targets). A label whose validation logits separate the classes (the
 * maximum-likelihood fit does not exist), whose logits are constant, which has one class, or whose fit
 * would reverse the ordering (T or a not positive) gets no map, is named with the reason, and its
 * probabilities pass through unchanged.
 */
import { CxrError } from '../errors';
import { writeFileAtomic } from '../util/atomic';
import { forEachLabelColumn, isMaskedTruth } from './metrics';
import type { NumArray } from './metrics';
import { sigmoid } from './zeroShot';
import { readEvalJson } from './thresholds';

/** Calibration methods of `eval --calibrate`. */
export type CalibrationMethod = 'temperature' | 'platt';

/** Probabilities are clamped to [LOGIT_EPS, 1 − LOGIT_EPS] before the logit (2⁻²⁴). */
export const LOGIT_EPS = 2 ** -24;

/** File format tag of a calibration JSON. */
export const CALIBRATION_FORMAT = 'cxr-train-calibration';

/** The logit of a zero-shot probability (see the module comment). */
export function probabilityLogit(p: number): number {
  const q = p < LOGIT_EPS ? LOGIT_EPS : p > 1 - LOGIT_EPS ? 1 - LOGIT_EPS : p;
  return Math.log(q / (1 - q));
}

/** ln(1 + e^x) without overflow. */
function softplus(x: number): number {
  return x > 0 ? x + Math.log1p(Math.exp(-x)) : Math.log1p(Math.exp(x));
}

/** Mean negative log-likelihood of labels y (0/1) under p = σ(a·z + b). */
export function logisticNll(z: ArrayLike<number>, y: ArrayLike<number>, a: number, b: number): number {
  let s = 0;
  for (let i = 0; i < z.length; i++) {
    const x = a * z[i] + b;
    s += softplus(x) - y[i] * x;
  }
  return s / z.length;
}

/** A fit that did not happen, and why. */
export interface NoFit {
  reason: string;
}

/** Why no fit exists for (z, y), or null when the maximum-likelihood fit exists. `intercept`: Platt (a, b) or temperature (scale only). */
function whyNoFit(z: Float64Array, y: Float64Array, intercept: boolean): string | null {
  let nPos = 0;
  let minPos = Infinity;
  let maxPos = -Infinity;
  let minNeg = Infinity;
  let maxNeg = -Infinity;
  for (let i = 0; i < z.length; i++) {
    if (y[i] === 1) {
      nPos++;
      minPos = Math.min(minPos, z[i]);
      maxPos = Math.max(maxPos, z[i]);
    } else {
      minNeg = Math.min(minNeg, z[i]);
      maxNeg = Math.max(maxNeg, z[i]);
    }
  }
  const nNeg = z.length - nPos;
  if (nPos === 0 || nNeg === 0) return `one class in the validation split (${nPos} positive, ${nNeg} negative)`;
  const zMin = Math.min(minPos, minNeg);
  const zMax = Math.max(maxPos, maxNeg);
  if (zMin === zMax) return 'the validation logits are all equal';
  if (intercept) {
    // (Quasi-)separated: some threshold has every positive on one side and every negative on the other.
    if (minPos >= maxNeg || maxPos <= minNeg) return 'the validation logits separate the classes: the maximum-likelihood fit does not exist';
  } else {
    // Through the origin: separated when the sign of z alone splits the classes.
    if ((minPos >= 0 && maxNeg <= 0) || (maxPos <= 0 && minNeg >= 0)) return 'the signs of the validation logits separate the classes: the maximum-likelihood temperature does not exist';
  }
  return null;
}

/**
 * Temperature scaling: the T > 0 minimising the mean NLL of y under σ(z / T) (safeguarded Newton on the
 * convex scale s = 1/T, stopped when the bracket or the step is below 1e-12 relative).
 */
export function fitTemperature(z: ArrayLike<number>, y: ArrayLike<number>): { temperature: number; nll: number; iterations: number } | NoFit {
  const zz = Float64Array.from(z);
  const yy = Float64Array.from(y);
  const why = whyNoFit(zz, yy, false);
  if (why) return { reason: why };
  const grad = (s: number): { g: number; h: number } => {
    let g = 0;
    let h = 0;
    for (let i = 0; i < zz.length; i++) {
      const p = sigmoid(s * zz[i]);
      g += (p - yy[i]) * zz[i];
      h += p * (1 - p) * zz[i] * zz[i];
    }
    return { g, h };
  };
  if (grad(0).g >= 0) return { reason: 'the validation logits rank negatives above positives: a positive temperature cannot fit them' };
  // Bracket the root of the derivative: g(lo) < 0 < g(hi).
  let lo = 0;
  let hi = 1;
  let it = 0;
  while (grad(hi).g < 0) {
    lo = hi;
    hi *= 2;
    if (++it > 200) return { reason: 'no finite temperature fits (the fit diverged)' };
  }
  let s = (lo + hi) / 2;
  for (it = 0; it < 200; it++) {
    const { g, h } = grad(s);
    if (g === 0) break;
    if (g < 0) lo = s;
    else hi = s;
    let next = h > 0 ? s - g / h : NaN;
    if (!(next > lo && next < hi)) next = (lo + hi) / 2;
    const done = Math.abs(next - s) <= 1e-12 * Math.max(1, Math.abs(s)) || hi - lo <= 1e-15 * Math.max(1, hi);
    s = next;
    if (done) break;
  }
  return { temperature: 1 / s, nll: logisticNll(zz, yy, s, 0), iterations: it + 1 };
}

/**
 * Platt scaling: (a, b) minimising the mean NLL of y under σ(a·z + b), by Newton's method with a
 * backtracking line search from (1, 0), to a step below 1e-12.
 */
export function fitPlatt(z: ArrayLike<number>, y: ArrayLike<number>): { a: number; b: number; nll: number; iterations: number } | NoFit {
  const zz = Float64Array.from(z);
  const yy = Float64Array.from(y);
  const why = whyNoFit(zz, yy, true);
  if (why) return { reason: why };
  let a = 1;
  let b = 0;
  let f = logisticNll(zz, yy, a, b);
  let it = 0;
  for (; it < 200; it++) {
    let ga = 0;
    let gb = 0;
    let haa = 0;
    let hab = 0;
    let hbb = 0;
    for (let i = 0; i < zz.length; i++) {
      const p = sigmoid(a * zz[i] + b);
      const r = p - yy[i];
      const w = p * (1 - p);
      ga += r * zz[i];
      gb += r;
      haa += w * zz[i] * zz[i];
      hab += w * zz[i];
      hbb += w;
    }
    const det = haa * hbb - hab * hab;
    if (!(det > 0)) break;
    const da = (hbb * ga - hab * gb) / det;
    const db = (haa * gb - hab * ga) / det;
    let step = 1;
    let na = a - da;
    let nb = b - db;
    let nf = logisticNll(zz, yy, na, nb);
    while (nf > f && step > 1e-10) {
      step /= 2;
      na = a - step * da;
      nb = b - step * db;
      nf = logisticNll(zz, yy, na, nb);
    }
    const small = Math.abs(na - a) <= 1e-12 * Math.max(1, Math.abs(a)) && Math.abs(nb - b) <= 1e-12 * Math.max(1, Math.abs(b));
    if (nf <= f) {
      a = na;
      b = nb;
      f = nf;
    }
    if (small || nf > f) break;
  }
  return { a, b, nll: f, iterations: it + 1 };
}

/** One label's map in a calibration file. */
export type LabelMap =
  | { method: 'temperature'; temperature: number; n: number; nPos: number; nllBefore: number; nllAfter: number }
  | { method: 'platt'; a: number; b: number; n: number; nPos: number; nllBefore: number; nllAfter: number };

/** What `calibration.json` holds. */
export interface CalibrationFile {
  format: typeof CALIBRATION_FORMAT;
  version: 1;
  method: CalibrationMethod;
  /** Split the maps were fitted on (e.g. `validate`). */
  split: string;
  dataset?: string;
  /** SHA-256 of the checkpoint(s) whose probabilities the maps apply to. */
  checkpointHashes: string[];
  /** Prompt set name and hash (other prompts give other logits). */
  prompts: { name: string; hash: string };
  /** Temperature t of the zero-shot softmax the logits came from (not the calibration's T). */
  zeroShotTemperature: number | 'logit-scale';
  /** What "the logit" is, in words (for a reader of the file). */
  logit: string;
  /** Label → map. Labels without one keep their probabilities. */
  labels: Record<string, LabelMap>;
  /** Labels without a map, and why. */
  skipped?: Array<{ label: string; reason: string }>;
}

/** The definition of the logit written into every calibration file. */
export const LOGIT_DEFINITION = 'z = ln(p / (1 - p)) of the zero-shot probability p (clamped to [2^-24, 1 - 2^-24]); for one checkpoint z = t * (cos(image, positive prompts) - cos(image, negative prompts))';

/**
 * Fits one map per label on validation truth (1/0/−1/NaN; −1 and NaN rows left out) and probabilities
 * (row-major n × labels).
 */
export function fitCalibration(labels: readonly string[], truth: NumArray, probs: NumArray, method: CalibrationMethod): { labels: Record<string, LabelMap>; skipped: Array<{ label: string; reason: string }> } {
  if (method !== 'temperature' && method !== 'platt') throw new CxrError('E_CONFIG', `calibration method must be temperature or platt, got ${JSON.stringify(method)}`);
  const out: Record<string, LabelMap> = {};
  const skipped: Array<{ label: string; reason: string }> = [];
  forEachLabelColumn(labels, truth, probs, 'calibration fit: truth and probabilities', (label, y, s) => {
    const zs: number[] = [];
    const ys: number[] = [];
    for (let i = 0; i < y.length; i++) {
      if (isMaskedTruth(y[i], i)) continue;
      zs.push(probabilityLogit(s[i]));
      ys.push(y[i]);
    }
    const nPos = ys.filter((v) => v === 1).length;
    const before = zs.length ? logisticNll(zs, ys, 1, 0) : NaN;
    if (method === 'temperature') {
      const r = fitTemperature(zs, ys);
      if ('reason' in r) skipped.push({ label, reason: r.reason });
      else out[label] = { method, temperature: r.temperature, n: zs.length, nPos, nllBefore: before, nllAfter: r.nll };
    } else {
      const r = fitPlatt(zs, ys);
      if ('reason' in r) skipped.push({ label, reason: r.reason });
      else if (!(r.a > 0)) skipped.push({ label, reason: `the fitted slope a = ${r.a.toPrecision(4)} would reverse the ranking (the logits are anti-correlated with the labels)` });
      else out[label] = { method, a: r.a, b: r.b, n: zs.length, nPos, nllBefore: before, nllAfter: r.nll };
    }
  });
  return { labels: out, skipped };
}

/** A map applied to one probability. */
export function applyLabelMap(m: LabelMap, p: number): number {
  const z = probabilityLogit(p);
  return m.method === 'temperature' ? sigmoid(z / m.temperature) : sigmoid(m.a * z + m.b);
}

/**
 * Applies the maps of `cal` to row-major `n × labels` probabilities (a new Float64Array); labels without a
 * map keep their probabilities.
 */
export function applyCalibration(maps: Record<string, LabelMap>, labels: readonly string[], probs: NumArray): Float64Array {
  const L = labels.length;
  if (L === 0 || probs.length % L !== 0) throw new CxrError('E_SHAPE', `${probs.length} probabilities do not split into ${L} labels`);
  const out = Float64Array.from(probs);
  labels.forEach((l, j) => {
    const m = maps[l];
    if (!m) return;
    for (let i = j; i < out.length; i += L) out[i] = applyLabelMap(m, out[i]);
  });
  return out;
}

/** One line describing a file's calibration, for command output: `temperature scaling (fitted on validate, 13 labels)`. */
export function describeCalibration(c: CalibrationFile): string {
  const n = Object.keys(c.labels).length;
  return `${c.method === 'temperature' ? 'temperature scaling' : 'Platt scaling'} fitted on ${c.split} (${n} label${n === 1 ? '' : 's'}${c.skipped?.length ? `, ${c.skipped.length} without a map` : ''})`;
}

/** Writes a calibration JSON atomically. */
export function writeCalibration(file: string, c: CalibrationFile): void {
  writeFileAtomic(file, JSON.stringify(c, null, 2) + '\n');
}

/**
 * Reads and checks a calibration JSON written by `cxr-train eval --calibrate`.
 * @throws CxrError E_IO (unreadable), E_PARSE (not JSON, wrong format, a bad map).
 */
export function readCalibration(file: string): CalibrationFile {
  const v = readEvalJson(file, 'calibration') as CalibrationFile;
  if (!v || v.format !== CALIBRATION_FORMAT || (v.method !== 'temperature' && v.method !== 'platt') || typeof v.labels !== 'object' || v.labels === null) {
    throw new CxrError('E_PARSE', `${file}: not a cxr-train calibration file (write one with \`cxr-train eval --val-split ... --calibrate temperature\`)`, { path: file });
  }
  for (const [k, m] of Object.entries(v.labels)) {
    const ok = m && (m.method === 'temperature' ? Number.isFinite(m.temperature) && m.temperature > 0 : m.method === 'platt' && Number.isFinite(m.a) && m.a > 0 && Number.isFinite(m.b));
    if (!ok) throw new CxrError('E_PARSE', `${file}: the map of ${JSON.stringify(k)} is not a positive temperature or a Platt (a > 0, b) pair`, { path: file });
  }
  return v;
}
