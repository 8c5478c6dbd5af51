/**
 * The linear-probe protocol on frozen image embeddings (label efficiency as CXR-CLIP, GLoRIA and MedKLIP
 * report it), as a pure function of embeddings, truth and patient ids:
 *
 *  1. features: each embedding L2-normalised (as zero-shot scoring does), then standardised per dimension
 *     with the mean and population standard deviation of the training subset (sklearn's StandardScaler);
 *  2. for each label fraction (default 1 %, 10 %, 100 %), a seeded patient-level subset of the training
 *     split ({@link patientSubsets}: nested, every image of a drawn patient);
 *  3. for each label, one L2-regularised logistic regression per C of the grid (default 10⁻⁴ … 10², one per
 *     decade) on the subset's rows with a 0/1 truth; the C with the lowest validation log-loss is kept
 *     (ties: the smaller C); the model is not refitted on train + validation;
 *  4. test AUROC of the kept model, with a patient-level bootstrap interval, next to the zero-shot AUROC of
 *     the same checkpoint on the same test rows, and the paired bootstrap difference probe − zero-shot.
 *
 * Uncertain (-1) and missing truth is left out label by label, in every split, as in scoring. A label
 * whose test or validation rows (or whose full training split) hold one class only is skipped with a
 * reason; a fraction whose subset holds one class of a label is reported for that label as not fitted,
 * with the reason (the subset is not enlarged: that would change the fraction).
 */
import { CxrError } from '../../errors';
import { auroc, isMaskedTruth } from '../metrics';
import { bootstrapMetric, pairedBootstrap, DEFAULT_CI_LEVEL } from '../bootstrap';
import type { CiBounds, DeltaResult, SkippedLabel } from '../scoring/types';
import { fin } from '../scoring/numbers';
import { decisionValues, fitLogistic, rawLinear, standardization, type FeatureMatrix, type LogisticModel } from './logistic';
import { patientSubsets, validateFractions } from './subsets';

/** The C values tried by default: one per decade, 10⁻⁴ … 10². */
export const DEFAULT_C_GRID: readonly number[] = [1e-4, 1e-3, 1e-2, 1e-1, 1, 10, 100];
/** Default label fractions: 1 %, 10 % and 100 % of the training patients. */
export const DEFAULT_FRACTIONS: readonly number[] = [0.01, 0.1, 1];
/** Default solver tolerance (max |gradient| of the mean objective). */
export const DEFAULT_PROBE_TOL = 1e-6;
/** Default L-BFGS iteration limit per fit. */
export const DEFAULT_PROBE_MAX_ITER = 1000;

/** One split's embeddings (already L2-normalised), truth and patients. */
export interface ProbeSplit {
  /** `n × d` features. */
  X: FeatureMatrix;
  /** `n × labels` truth (1, 0, -1 uncertain, NaN missing), row-major, columns in `labels` order. */
  truth: Float64Array;
  /** Patient id of each row. */
  patients: string[];
}

/** Input of {@link runProbe}. */
export interface ProbeInput {
  labels: string[];
  train: ProbeSplit;
  validate: ProbeSplit;
  test: ProbeSplit;
  /**
   * Zero-shot probabilities of the test rows (`n × labels`, same order), or null per label without a
   * prompt; absent: no zero-shot comparison.
   */
  zeroShot?: { probs: Float32Array | Float64Array; has: boolean[] };
}

/** Options of {@link runProbe}. */
export interface ProbeOptions {
  /** Label fractions in (0, 1]. Default {@link DEFAULT_FRACTIONS}. */
  fractions?: readonly number[];
  /** C values. Default {@link DEFAULT_C_GRID}. */
  cGrid?: readonly number[];
  /** Seed of the patient subsets. Default 0. */
  subsetSeed?: number;
  /** Bootstrap resamples (0: none). Default 1000. */
  bootstrap?: number;
  /** Bootstrap seed. Default 0. */
  seed?: number;
  tol?: number;
  maxIter?: number;
  /** Called after each fit (for progress). */
  onFit?: (e: { label: string; fraction: number; C: number }) => void;
}

/** One C of the grid, as seen on validation. */
export interface ProbeGridPoint {
  C: number;
  valLogLoss: number;
  valAuroc: number | null;
  iterations: number;
  converged: boolean;
}

/** The probe of one label at one fraction. */
export interface ProbeFit {
  fraction: number;
  /** Patients and images of the training subset (all labels). */
  patients: number;
  images: number;
  /** Training rows of this label (truth 0/1) and their classes. */
  n: number;
  nPos: number;
  nNeg: number;
  /** The C kept (lowest validation log-loss). */
  C: number;
  /** Every C tried. */
  grid: ProbeGridPoint[];
  /** Test AUROC of the kept model. */
  auroc: number;
  ci?: CiBounds;
  /** Probe minus zero-shot AUROC on the same test rows, paired bootstrap. */
  deltaZeroShot?: DeltaResult;
  /** Weights on the L2-normalised (unstandardised) embedding and intercept, to apply the probe elsewhere. */
  weights?: number[];
  intercept?: number;
}

/** A fraction at which a label was not fitted. */
export interface ProbeFractionSkipped {
  fraction: number;
  patients: number;
  images: number;
  skipped: string;
}

/** Results of one label. */
export interface ProbeLabel {
  label: string;
  /** Test rows with a 0/1 truth. */
  test: { n: number; nPos: number; nNeg: number };
  /** Zero-shot AUROC on the same test rows, when the label has a prompt. */
  zeroShot?: { auroc: number; ci?: CiBounds };
  fractions: Array<ProbeFit | ProbeFractionSkipped>;
}

/** Output of {@link runProbe}. */
export interface ProbeResult {
  labels: ProbeLabel[];
  /** Labels left out entirely, with the reason. */
  skipped: SkippedLabel[];
  /** Mean AUROC per fraction and of zero-shot over the labels fitted at every fraction (and with zero-shot, when any). */
  macro: { labels: string[]; fractions: Array<{ fraction: number; auroc: number | null }>; zeroShot: number | null };
  settings: {
    fractions: number[];
    cGrid: number[];
    selection: 'validation log-loss';
    features: 'L2-normalised, standardised on the training subset';
    subsetSeed: number;
    tol: number;
    maxIter: number;
    bootstrap: { resamples: number; seed: number; level: number; unit: 'patient' } | null;
    dim: number;
    images: { train: number; validate: number; test: number };
  };
  warnings: string[];
}

/** Rows of a split with a 0/1 truth for label column `j`, optionally inside `within`. */
function labelRows(s: ProbeSplit, L: number, j: number, within?: Int32Array): { rows: Int32Array; y: Float64Array; nPos: number } {
  const n = s.X.n;
  const y = new Float64Array(n).fill(NaN);
  const rows: number[] = [];
  let nPos = 0;
  const take = (i: number): void => {
    const v = s.truth[i * L + j];
    if (isMaskedTruth(v, i)) return;
    y[i] = v;
    rows.push(i);
    if (v === 1) nPos++;
  };
  if (within) for (const i of within) take(i);
  else for (let i = 0; i < n; i++) take(i);
  return { rows: Int32Array.from(rows), y, nPos };
}

/** Mean log-loss of decision values `z` against 0/1 targets. */
function meanLogLoss(z: Float64Array, y: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < z.length; i++) {
    const v = y[i] === 1 ? -z[i] : z[i];
    s += v > 0 ? v + Math.log1p(Math.exp(-v)) : Math.log1p(Math.exp(v));
  }
  return s / z.length;
}

/** Checks the C grid: positive finite numbers (E_CONFIG). Returned sorted ascending, deduplicated. */
export function validateCGrid(grid: readonly number[]): number[] {
  if (grid.length === 0) throw new CxrError('E_CONFIG', 'the C grid is empty');
  for (const c of grid) if (typeof c !== 'number' || !Number.isFinite(c) || c <= 0) throw new CxrError('E_CONFIG', `C values must be positive numbers, got ${c}`);
  return [...new Set(grid)].sort((a, b) => a - b);
}

/**
 * Fits one label on `trainRows` for every C (ascending, each warm-started from the previous optimum;
 * the optimum is unique, so this changes only the time) and keeps the C of lowest validation log-loss.
 */
export function selectAndFit(
  X: FeatureMatrix,
  y: Float64Array,
  trainRows: Int32Array,
  val: { X: FeatureMatrix; rows: Int32Array; y: Float64Array },
  cGrid: readonly number[],
  opts: { tol?: number; maxIter?: number; standardizeRows?: Int32Array; onFit?: (C: number) => void } = {},
): { C: number; model: LogisticModel; w: Float64Array; b: number; grid: ProbeGridPoint[] } {
  const st = standardization(X, opts.standardizeRows ?? trainRows);
  const yVal = Float64Array.from(val.rows, (r) => val.y[r]);
  let best: { C: number; model: LogisticModel; w: Float64Array; b: number; loss: number } | null = null;
  const grid: ProbeGridPoint[] = [];
  let prev: LogisticModel | undefined;
  for (const C of cGrid) {
    const model = fitLogistic(X, y, {
      C,
      rows: trainRows,
      standardize: st,
      tol: opts.tol ?? DEFAULT_PROBE_TOL,
      maxIter: opts.maxIter ?? DEFAULT_PROBE_MAX_ITER,
      ...(prev ? { init: { coef: prev.coef, intercept: prev.intercept } } : {}),
    });
    prev = model;
    opts.onFit?.(C);
    const { w, b } = rawLinear(model.coef, model.intercept, st);
    const z = decisionValues(val.X, w, b, val.rows);
    const loss = meanLogLoss(z, yVal);
    grid.push({ C, valLogLoss: loss, valAuroc: fin(auroc(yVal, z)), iterations: model.iterations, converged: model.converged });
    // Strictly lower only: ties keep the smaller C (stronger regularisation).
    if (best === null || loss < best.loss) best = { C, model, w: Float64Array.from(w), b, loss };
  }
  return { C: best!.C, model: best!.model, w: best!.w, b: best!.b, grid };
}

/**
 * Runs the protocol (see the file comment).
 * @throws CxrError E_CONFIG (fractions, C grid, seeds), E_SHAPE (splits of different widths or truth
 *   sizes), E_DATA (bad truth codes).
 */
export function runProbe(input: ProbeInput, opts: ProbeOptions = {}): ProbeResult {
  const fractions = [...(opts.fractions ?? DEFAULT_FRACTIONS)];
  validateFractions(fractions);
  fractions.sort((a, b) => a - b);
  const cGrid = validateCGrid(opts.cGrid ?? DEFAULT_C_GRID);
  const resamples = opts.bootstrap ?? 1000;
  if (!Number.isInteger(resamples) || resamples < 0) throw new CxrError('E_CONFIG', `bootstrap resamples must be an integer >= 0, got ${resamples}`);
  const seed = opts.seed ?? 0;
  const subsetSeed = opts.subsetSeed ?? 0;
  const tol = opts.tol ?? DEFAULT_PROBE_TOL;
  const maxIter = opts.maxIter ?? DEFAULT_PROBE_MAX_ITER;
  const { labels, train, validate, test } = input;
  const L = labels.length;
  const d = train.X.d;
  for (const [name, s] of [['train', train], ['validate', validate], ['test', test]] as const) {
    if (s.X.d !== d) throw new CxrError('E_SHAPE', `${name} embeddings have ${s.X.d} dimensions, train ${d}`);
    if (s.truth.length !== s.X.n * L) throw new CxrError('E_SHAPE', `${name}: ${s.truth.length} truth values for ${s.X.n} rows × ${L} labels`);
    if (s.patients.length !== s.X.n) throw new CxrError('E_SHAPE', `${name}: ${s.patients.length} patient ids for ${s.X.n} rows`);
    if (s.X.n === 0) throw new CxrError('E_DATA', `the ${name} split has no embedded image`);
  }
  if (input.zeroShot && input.zeroShot.probs.length !== test.X.n * L) throw new CxrError('E_SHAPE', `zero-shot probabilities: ${input.zeroShot.probs.length} values for ${test.X.n} rows × ${L} labels`);
  const subsets = patientSubsets(train.patients, fractions, subsetSeed);
  const boot = { resamples, seed, clusters: test.patients, level: DEFAULT_CI_LEVEL };
  const ciOf = (e: { lo: number; hi: number; n: number }): CiBounds => ({ lo: fin(e.lo), hi: fin(e.hi), n: e.n });
  const out: ProbeLabel[] = [];
  const skipped: SkippedLabel[] = [];
  const warnings: string[] = [];
  const col = (s: ProbeSplit, j: number): Float64Array => Float64Array.from({ length: s.X.n }, (_, i) => s.truth[i * L + j]);

  for (let j = 0; j < L; j++) {
    const label = labels[j];
    const te = labelRows(test, L, j);
    const va = labelRows(validate, L, j);
    const trAll = labelRows(train, L, j);
    const oneClass = (r: { rows: Int32Array; nPos: number }): boolean => r.nPos === 0 || r.nPos === r.rows.length;
    const why = oneClass(te) ? 'test' : oneClass(va) ? 'validate' : oneClass(trAll) ? 'train' : null;
    if (why) {
      const r = why === 'test' ? te : why === 'validate' ? va : trAll;
      const reason = `the ${why} split has ${r.nPos === 0 ? 'no positive' : 'no negative'} (${r.rows.length} image(s) with a 0/1 truth)`;
      skipped.push({ label, reason });
      warnings.push(`probe: ${label} skipped: ${reason}`);
      continue;
    }
    const yTest = col(test, j);
    const hasZs = !!input.zeroShot && input.zeroShot.has[j];
    const zs = hasZs ? Float64Array.from({ length: test.X.n }, (_, i) => input.zeroShot!.probs[i * L + j]) : null;
    const res: ProbeLabel = { label, test: { n: te.rows.length, nPos: te.nPos, nNeg: te.rows.length - te.nPos }, fractions: [] };
    if (zs) {
      if (resamples > 0) {
        const e = bootstrapMetric(yTest, zs, 'auroc', boot);
        res.zeroShot = { auroc: e.estimate, ci: ciOf(e) };
      } else res.zeroShot = { auroc: auroc(yTest, zs) };
    }
    for (const sub of subsets) {
      const tr = labelRows(train, L, j, sub.rows);
      if (oneClass(tr)) {
        const reason = `the ${pct(sub.fraction)} subset (${sub.patients} patient(s), ${sub.rows.length} image(s)) has ${tr.nPos === 0 ? 'no positive' : 'no negative'} of ${label}`;
        res.fractions.push({ fraction: sub.fraction, patients: sub.patients, images: sub.rows.length, skipped: reason });
        warnings.push(`probe: ${label} at ${pct(sub.fraction)} not fitted: ${reason}`);
        continue;
      }
      const fit = selectAndFit(train.X, tr.y, tr.rows, { X: validate.X, rows: va.rows, y: va.y }, cGrid, {
        tol,
        maxIter,
        standardizeRows: sub.rows,
        onFit: (C) => opts.onFit?.({ label, fraction: sub.fraction, C }),
      });
      if (!fit.model.converged) warnings.push(`probe: ${label} at ${pct(sub.fraction)}, C ${fit.C}: the solver stopped at max |gradient| ${fit.model.gradMax.toExponential(2)} > tol ${tol} after ${fit.model.iterations} iterations`);
      // AUROC on decision values: the same ranking as probabilities, without ties where exp saturates.
      const p = decisionValues(test.X, fit.w, fit.b);
      const r: ProbeFit = {
        fraction: sub.fraction,
        patients: sub.patients,
        images: sub.rows.length,
        n: tr.rows.length,
        nPos: tr.nPos,
        nNeg: tr.rows.length - tr.nPos,
        C: fit.C,
        grid: fit.grid,
        auroc: auroc(yTest, p),
        weights: Array.from(fit.w),
        intercept: fit.b,
      };
      if (resamples > 0) {
        r.ci = ciOf(bootstrapMetric(yTest, p, 'auroc', boot));
        if (zs) {
          const dlt = pairedBootstrap(yTest, p, zs, 'auroc', boot);
          r.deltaZeroShot = { delta: fin(dlt.delta), lo: fin(dlt.lo), hi: fin(dlt.hi), n: dlt.n, p: fin(dlt.p) };
        }
      }
      res.fractions.push(r);
    }
    out.push(res);
  }

  const anyZs = out.some((l) => l.zeroShot);
  const macroLabels = out.filter((l) => l.fractions.every((f) => !('skipped' in f)) && (!anyZs || l.zeroShot)).map((l) => l.label);
  const inMacro = out.filter((l) => macroLabels.includes(l.label));
  const mean = (xs: number[]): number | null => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : null);
  return {
    labels: out,
    skipped,
    macro: {
      labels: macroLabels,
      fractions: fractions.map((f, k) => ({ fraction: f, auroc: mean(inMacro.map((l) => (l.fractions[k] as ProbeFit).auroc)) })),
      zeroShot: anyZs ? mean(inMacro.map((l) => l.zeroShot!.auroc)) : null,
    },
    settings: {
      fractions,
      cGrid,
      selection: 'validation log-loss',
      features: 'L2-normalised, standardised on the training subset',
      subsetSeed,
      tol,
      maxIter,
      bootstrap: resamples > 0 ? { resamples, seed, level: DEFAULT_CI_LEVEL, unit: 'patient' } : null,
      dim: d,
      images: { train: train.X.n, validate: validate.X.n, test: test.X.n },
    },
    warnings,
  };
}

/** A fraction as a percentage for messages and tables: 0.01 → "1%". */
export function pct(f: number): string {
  return `${+(f * 100).toPrecision(6)}%`;
}
