import path from 'node:path';
import { CxrError } from '../errors';
import { formatCsv, readCsvTable } from '../util/csv';
import { DEFAULT_CI_LEVEL, DEFAULT_RESAMPLES } from './bootstrap';
import { alignInputs } from './scoring/align';
import { addBootstrapIntervals } from './scoring/bootstrap';
import { pointEstimates } from './scoring/points';
import { readerEstimates } from './scoring/readers';
import type { ScoreOptions, ScoreResult, ScoreTablesInput } from './scoring/types';

/**
 * The scoring pipeline behind `cxr-train score` (METHOD.md §5): align truth and predictions by id, mask
 * uncertain/missing truth per label, fit thresholds on a validation split (never on test) and freeze them,
 * compute AUROC / AUPRC / F1 / MCC with seeded bootstrap intervals, macro means, and optionally compare
 * with radiologist reads on the same ids. The steps live in ./scoring: align → points → readers →
 * bootstrap (with a typed statistic layout); this file holds the entry points.
 */


export type {
  ThresholdSource,
  CiBounds,
  DeltaResult,
  LabelScore,
  MacroScore,
  SkippedLabel,
  ReaderScore,
  ReadersResult,
  LabelCurves,
  ScoreResult,
  ScoreOptions,
  ScoreTablesInput,
} from './scoring/types';

/**
 * Scores predictions (or binary reads) against the truth. See {@link ScoreOptions} for the defaults and
 * {@link ScoreResult} for the output. Errors: mismatched ids, duplicate ids, missing label columns, NaN,
 * infinite, non-numeric or out-of-[0, 1] predictions, non-0/1 reads in binary mode, truth other than 1/0/-1/empty → `E_DATA`;
 * invalid options (a threshold outside [0, 1] ...) → `E_CONFIG`. A label with one class in the test split is skipped and named in `skipped`.
 */
export function scoreTables(input: ScoreTablesInput, opts: ScoreOptions = {}): ScoreResult {
  const binary = opts.binary ?? false;
  const resamples = opts.bootstrap ?? DEFAULT_RESAMPLES;
  const seed = opts.seed ?? 0;
  const level = opts.level ?? DEFAULT_CI_LEVEL;
  const criterion = opts.thresholdCriterion ?? 'mcc';
  const fixedThreshold = opts.threshold ?? 0.5;
  if (!Number.isInteger(resamples) || resamples < 0) throw new CxrError('E_CONFIG', `bootstrap resamples must be an integer >= 0, got ${resamples}`);
  if (!Number.isFinite(seed) || !Number.isInteger(seed)) throw new CxrError('E_CONFIG', `seed must be an integer, got ${seed}`);
  if (!(level > 0 && level < 1)) throw new CxrError('E_CONFIG', `confidence level must be in (0, 1), got ${level}`);
  if (!['mcc', 'f1', 'youden'].includes(criterion)) throw new CxrError('E_CONFIG', `threshold criterion must be mcc, f1 or youden, got ${JSON.stringify(criterion)}`);
  if (!(typeof fixedThreshold === 'number' && fixedThreshold >= 0 && fixedThreshold <= 1))
    throw new CxrError('E_CONFIG', `threshold must be a probability in [0, 1], got ${opts.threshold}`);
  if ((input.valTruth === undefined) !== (input.valPred === undefined)) {
    throw new CxrError('E_CONFIG', 'validation truth and validation predictions must be given together');
  }
  if (binary && input.valTruth) throw new CxrError('E_CONFIG', 'binary reads have no threshold to fit: drop the validation files');

  // 1. align the tables, 2. point estimates, 3. readers, 4. bootstrap intervals.
  const aligned = alignInputs(input, opts);
  const warnings: string[] = [];
  const curvesOn = !binary && (opts.curves ?? true);
  const points = pointEstimates(input, aligned, { binary, fixedThreshold, criterion, curves: opts.curves ?? true, maxCurvePoints: opts.maxCurvePoints }, warnings);
  const readers = readerEstimates(input, points);
  const bootstrap = addBootstrapIntervals(points, readers, { resamples, seed, level, binary, truth: input.truth, patientCol: aligned.patientCol });

  const result: ScoreResult = {
    labels: points.labels,
    macro: points.macro,
    skipped: points.skipped,
    ...(readers ? { readers } : {}),
    bootstrap,
    settings: {
      binary,
      idCol: aligned.idCol,
      patientCol: aligned.patientCol,
      thresholdCriterion: criterion,
      fixedThreshold,
      validation: aligned.valAlign !== null,
      nRows: input.truth.rows.length,
    },
    warnings,
  };
  if (curvesOn) result.curves = points.curves;
  return result;
}

/** File inputs of {@link scoreCsv}. */
export interface ScoreCsvInput {
  /** Truth CSV: id column, optional patient column, one column per label (1, 0, -1, empty). */
  truth: string;
  /** Predictions CSV: id column and one score (or 0/1 read) column per label. */
  pred: string;
  /** Validation truth, to fit thresholds on. */
  valTruth?: string;
  /** Validation predictions. */
  valPred?: string;
  /** Radiologist reads (0/1), one CSV per reader, same ids as `truth`. */
  readers?: string[];
}

/** Reader name from its file: the base name without extension, made unique with a suffix. */
function readerNames(files: string[]): string[] {
  const seen = new Map<string, number>();
  return files.map((f) => {
    const base = path.basename(f).replace(/\.[^.]*$/, '') || f;
    const k = (seen.get(base) ?? 0) + 1;
    seen.set(base, k);
    return k === 1 ? base : `${base}#${k}`;
  });
}

/** Reads the CSV files and runs {@link scoreTables}; see there for the errors. */
export function scoreCsv(input: ScoreCsvInput, opts: ScoreOptions = {}): ScoreResult {
  const names = readerNames(input.readers ?? []);
  const result = scoreTables(
    {
      truth: readCsvTable(input.truth),
      pred: readCsvTable(input.pred),
      ...(input.valTruth ? { valTruth: readCsvTable(input.valTruth) } : {}),
      ...(input.valPred ? { valPred: readCsvTable(input.valPred) } : {}),
      ...(input.readers && input.readers.length
        ? { readers: input.readers.map((f, i) => ({ name: names[i], table: readCsvTable(f) })) }
        : {}),
    },
    opts,
  );
  result.inputs = {
    truth: input.truth,
    pred: input.pred,
    ...(input.valTruth ? { valTruth: input.valTruth } : {}),
    ...(input.valPred ? { valPred: input.valPred } : {}),
    ...(input.readers && input.readers.length ? { readers: input.readers.slice() } : {}),
  };
  if (result.readers) result.readers.readers.forEach((r, i) => (r.file = input.readers![i]));
  return result;
}

/**
 * Formats predictions as a CSV that {@link scoreCsv} reads: an id column then one column per label.
 * `probs` is row-major `ids.length × labels.length`.
 */
export function formatPredictionsCsv(ids: readonly string[], labels: readonly string[], probs: ArrayLike<number>, idCol = 'id'): string {
  if (probs.length !== ids.length * labels.length) {
    throw new CxrError('E_SHAPE', `${probs.length} probabilities for ${ids.length} ids × ${labels.length} labels`);
  }
  const rows: Array<Array<string | number>> = [[idCol, ...labels]];
  ids.forEach((id, i) => {
    const r: Array<string | number> = [id];
    for (let j = 0; j < labels.length; j++) r.push(probs[i * labels.length + j]);
    rows.push(r);
  });
  return formatCsv(rows);
}

/** The result without curve points (what `cxr-train score --json` prints). */
export function withoutCurves(r: ScoreResult): Omit<ScoreResult, 'curves'> {
  const { curves: _curves, ...rest } = r;
  return rest;
}
