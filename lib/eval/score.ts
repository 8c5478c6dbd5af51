import path from 'node:path';
import { CxrError } from '../errors';
import { formatCsv, readCsvTable } from '../util/csv';
import type { CsvTable } from '../util/csv';
import {
  binaryMetrics,
  cutIndex,
  f1Of,
  macroMean,
  mccOf,
  prCurveSorted,
  rocCurveSorted,
  selectThresholdSorted,
  sortLabel,
  summarizeSorted,
  weightedAbove,
} from './metrics';
import type { SortedLabel, ThresholdCriterion } from './metrics';
import { bootstrapMatrix, column, DEFAULT_CI_LEVEL, DEFAULT_RESAMPLES, pairedPValue, percentileInterval, Resampler } from './bootstrap';

/**
 * The scoring pipeline behind `cxr-train score` (METHOD.md §5): align truth and predictions by id, mask
 * uncertain/missing truth per label, fit thresholds on a validation split (never on test) and freeze them,
 * compute AUROC / AUPRC / F1 / MCC with seeded bootstrap intervals, macro means, and optionally compare
 * with radiologist reads on the same ids.
 */

/** Where a label's threshold came from. */
export type ThresholdSource = 'validation' | 'fixed' | 'binary';

/** A 95% (by default) percentile bootstrap interval; null bounds when no resample was defined. */
export interface CiBounds {
  lo: number | null;
  hi: number | null;
  /** Resamples the interval rests on (resamples with one class drawn are left out). */
  n: number;
}

/** A paired difference with its interval and two-sided p-value. */
export interface DeltaResult extends CiBounds {
  /** Difference on the original rows. */
  delta: number | null;
  p: number | null;
}

/** Metrics of one label. Null means undefined (e.g. a zero denominator, or AUROC in binary mode). */
export interface LabelScore {
  /** Rows scored for this label (uncertain/missing truth left out). */
  n: number;
  nPos: number;
  nNeg: number;
  /** Rows left out because the truth was uncertain (-1) or missing. */
  nMasked: number;
  /** Exact tie-aware AUROC; null in binary mode. */
  auroc: number | null;
  /** Average precision; null in binary mode. */
  auprc: number | null;
  f1: number;
  mcc: number;
  sensitivity: number | null;
  specificity: number | null;
  ppv: number | null;
  npv: number | null;
  accuracy: number | null;
  /** The threshold applied (`score >= threshold` is positive). */
  threshold: number;
  /** Where the threshold came from: fitted on validation, the fixed default, or binary reads. */
  thresholdSource: ThresholdSource;
  /** The criterion maximised on validation, when `thresholdSource` is `validation`. */
  thresholdCriterion?: ThresholdCriterion;
  /** Bootstrap intervals; absent when the bootstrap is off. */
  ci?: Partial<Record<'auroc' | 'auprc' | 'f1' | 'mcc', CiBounds>>;
}

/** Macro means over the labels that have both classes. */
export interface MacroScore {
  auroc: number | null;
  auprc: number | null;
  f1: number | null;
  mcc: number | null;
  /** Labels averaged. */
  labels: string[];
  ci?: Partial<Record<'auroc' | 'auprc' | 'f1' | 'mcc', CiBounds>>;
}

/** A label left out of the scores, and why. */
export interface SkippedLabel {
  label: string;
  reason: string;
}

/** One reader's (radiologist's) binary reads scored against the truth. */
export interface ReaderScore {
  /** Reader name (file name without extension). */
  name: string;
  /** The file the reads came from. */
  file?: string;
  labels: Record<string, { f1: number; mcc: number; sensitivity: number | null; specificity: number | null; ci?: { f1: CiBounds; mcc: CiBounds } }>;
  macro: { f1: number | null; mcc: number | null; ci?: { f1: CiBounds; mcc: CiBounds } };
}

/** Model versus readers, as in the CheXpert test-set benchmark. */
export interface ReadersResult {
  readers: ReaderScore[];
  /** Mean over readers of each reader's metric, per label and macro. */
  mean: {
    labels: Record<string, { f1: number; mcc: number; ci?: { f1: CiBounds; mcc: CiBounds } }>;
    macro: { f1: number | null; mcc: number | null; ci?: { f1: CiBounds; mcc: CiBounds } };
  };
  /** Model minus reader mean (paired bootstrap over the same resamples), per label and macro. */
  comparison: {
    labels: Record<string, { f1: DeltaResult; mcc: DeltaResult }>;
    macro: { f1: DeltaResult; mcc: DeltaResult };
  };
}

/** Curve points for the report card (down-sampled for display when very long). */
export interface LabelCurves {
  roc: { fpr: number[]; tpr: number[] };
  pr: { recall: number[]; precision: number[] };
  /** Positive fraction: the PR curve of a random score. */
  prevalence: number;
}

/** The output of {@link scoreTables} / {@link scoreCsv}. */
export interface ScoreResult {
  /** Per-label scores of labels with both classes, in label order. */
  labels: Record<string, LabelScore>;
  /** Macro means over `macro.labels`. */
  macro: MacroScore;
  /** Labels left out, each with a reason (e.g. one class in the test split). */
  skipped: SkippedLabel[];
  /** Radiologist comparison when reader files were given. */
  readers?: ReadersResult;
  /** Bootstrap settings, or null when the bootstrap was off. */
  bootstrap: { resamples: number; seed: number; level: number; unit: 'patient' | 'row'; nUnits: number } | null;
  /** Settings the numbers depend on. */
  settings: {
    binary: boolean;
    idCol: string;
    patientCol: string | null;
    thresholdCriterion: ThresholdCriterion;
    fixedThreshold: number;
    /** Whether thresholds were fitted on a validation split. */
    validation: boolean;
    nRows: number;
  };
  /** Input files, when scored from files. */
  inputs?: { truth: string; pred: string; valTruth?: string; valPred?: string; readers?: string[] };
  /** Things a reader of the numbers should know (e.g. scores outside [0, 1]). */
  warnings: string[];
  /** ROC / PR curve points per label (not in binary mode); left out of the CLI's `--json` output. */
  curves?: Record<string, LabelCurves>;
}

/** Options of {@link scoreTables}. */
export interface ScoreOptions {
  /** Labels to score, in order. Default: every truth column except the id and patient columns. */
  labels?: string[];
  /** Id column in every file. Default `id` when the truth has it, else the truth's first column. */
  idCol?: string;
  /**
   * Patient id column of the truth file, for the cluster bootstrap. Default: `patient_id` or `patient` when the
   * truth has such a column, else none (rows are resampled individually).
   */
  patientCol?: string;
  /** Predictions are 0/1 reads, not scores: no AUROC/AUPRC, threshold 0.5. Default false. */
  binary?: boolean;
  /** Bootstrap resamples; 0 turns the bootstrap off. Default 1000. */
  bootstrap?: number;
  /** Bootstrap seed. Default 0. */
  seed?: number;
  /** Confidence level of intervals. Default 0.95. */
  level?: number;
  /** Criterion maximised when fitting thresholds on validation. Default `mcc` (METHOD.md §5). */
  thresholdCriterion?: ThresholdCriterion;
  /** Threshold used when there is no validation split (or it has one class). Default 0.5. */
  threshold?: number;
  /** Keep curve points for the report card. Default true. */
  curves?: boolean;
  /** Maximum points per curve kept for display. Default 1000. */
  maxCurvePoints?: number;
}

/** Tables (already parsed) to score. */
export interface ScoreTablesInput {
  truth: CsvTable;
  pred: CsvTable;
  valTruth?: CsvTable;
  valPred?: CsvTable;
  /** Binary radiologist reads on the same ids as `truth`. */
  readers?: Array<{ name: string; table: CsvTable }>;
}

const MISSING = new Set(['', 'nan', 'na', 'n/a', 'null', 'none']);

function parseTruthCell(v: string, src: string, row: number, col: string): number {
  const t = v.trim();
  if (MISSING.has(t.toLowerCase())) return NaN;
  const x = Number(t);
  if (x === 1 || x === 0 || x === -1) return x;
  throw new CxrError('E_DATA', `${src}: row ${row + 1}, label ${JSON.stringify(col)}: truth ${JSON.stringify(v)} is not 1, 0, -1 (uncertain) or empty (missing)`, {
    source: src,
    row: row + 1,
    label: col,
  });
}

function parseScoreCell(v: string, src: string, row: number, col: string, binary: boolean): number {
  const t = v.trim();
  const x = t === '' ? NaN : Number(t);
  if (Number.isNaN(x)) {
    throw new CxrError('E_DATA', `${src}: row ${row + 1}, label ${JSON.stringify(col)}: prediction ${JSON.stringify(v)} is missing or not a number (NaN)`, {
      source: src,
      row: row + 1,
      label: col,
    });
  }
  if (binary && x !== 0 && x !== 1) {
    throw new CxrError(
      'E_DATA',
      `${src}: row ${row + 1}, label ${JSON.stringify(col)}: binary read ${JSON.stringify(v)} is not 0 or 1${x < 0 || x > 1 ? ' (outside [0, 1])' : ''}`,
      { source: src, row: row + 1, label: col },
    );
  }
  return x;
}

function columnIndex(t: CsvTable, name: string, what: string): number {
  const i = t.header.indexOf(name);
  if (i < 0) {
    throw new CxrError('E_DATA', `${t.source}: missing ${what} column ${JSON.stringify(name)} (columns: ${t.header.join(', ')})`, {
      source: t.source,
      column: name,
    });
  }
  return i;
}

/** Maps ids to row numbers; duplicate or empty ids are `E_DATA`. */
function indexIds(t: CsvTable, idIdx: number): Map<string, number> {
  const m = new Map<string, number>();
  t.rows.forEach((r, i) => {
    const id = r[idIdx].trim();
    if (id === '') throw new CxrError('E_DATA', `${t.source}: row ${i + 1} has an empty id`, { source: t.source, row: i + 1 });
    if (m.has(id)) throw new CxrError('E_DATA', `${t.source}: id ${JSON.stringify(id)} appears twice (rows ${m.get(id)! + 1} and ${i + 1})`, { source: t.source, id });
    m.set(id, i);
  });
  return m;
}

/** Row of `other` for each row of `ref`, requiring identical id sets (clear `E_DATA` otherwise). */
function alignRows(ref: CsvTable, refIds: Map<string, number>, other: CsvTable, idCol: string): Int32Array {
  const otherIds = indexIds(other, columnIndex(other, idCol, 'id'));
  const missing: string[] = [];
  const extra: string[] = [];
  const map = new Int32Array(ref.rows.length);
  for (const [id, i] of refIds) {
    const j = otherIds.get(id);
    if (j === undefined) missing.push(id);
    else map[i] = j;
  }
  for (const id of otherIds.keys()) if (!refIds.has(id)) extra.push(id);
  if (missing.length || extra.length) {
    const show = (a: string[]): string => a.slice(0, 5).map((x) => JSON.stringify(x)).join(', ') + (a.length > 5 ? ', ...' : '');
    const parts: string[] = [];
    if (missing.length) parts.push(`${missing.length} id(s) of ${ref.source} missing from ${other.source} (${show(missing)})`);
    if (extra.length) parts.push(`${extra.length} id(s) in ${other.source} not in ${ref.source} (${show(extra)})`);
    throw new CxrError('E_DATA', `mismatched ids: ${parts.join('; ')}`, { missing: missing.length, extra: extra.length });
  }
  return map;
}

function truthColumn(t: CsvTable, label: string): Float64Array {
  const c = columnIndex(t, label, 'label');
  return Float64Array.from(t.rows, (r, i) => parseTruthCell(r[c], t.source, i, label));
}

function scoreColumn(t: CsvTable, label: string, align: Int32Array, binary: boolean, what: string): Float64Array {
  const i = t.header.indexOf(label);
  if (i < 0) {
    throw new CxrError('E_DATA', `${t.source}: missing label ${JSON.stringify(label)} in ${what} (columns: ${t.header.join(', ')})`, {
      source: t.source,
      label,
    });
  }
  const out = new Float64Array(align.length);
  for (let k = 0; k < align.length; k++) out[k] = parseScoreCell(t.rows[align[k]][i], t.source, align[k], label, binary);
  return out;
}

const fin = (x: number): number | null => (Number.isFinite(x) ? x : null);

function ciOf(values: Float64Array, level: number): CiBounds {
  const iv = percentileInterval(values, level);
  return { lo: fin(iv.lo), hi: fin(iv.hi), n: iv.n };
}

function downsample(xs: Float64Array, ys: Float64Array, max: number): { x: number[]; y: number[] } {
  const n = xs.length;
  if (n <= max) return { x: Array.from(xs), y: Array.from(ys) };
  const x: number[] = [];
  const y: number[] = [];
  const step = (n - 1) / (max - 1);
  for (let k = 0; k < max; k++) {
    const i = Math.round(k * step);
    x.push(xs[i]);
    y.push(ys[i]);
  }
  return { x, y };
}

/** Resolves the id and patient columns and the label list of a truth table. */
function resolveColumns(truth: CsvTable, opts: ScoreOptions): { idCol: string; patientCol: string | null; labels: string[] } {
  const idCol = opts.idCol ?? (truth.header.includes('id') ? 'id' : truth.header[0]);
  columnIndex(truth, idCol, 'id');
  let patientCol: string | null = null;
  if (opts.patientCol !== undefined) {
    columnIndex(truth, opts.patientCol, 'patient');
    patientCol = opts.patientCol;
  } else if (truth.header.includes('patient_id') && idCol !== 'patient_id') patientCol = 'patient_id';
  else if (truth.header.includes('patient') && idCol !== 'patient') patientCol = 'patient';
  let labels: string[];
  if (opts.labels && opts.labels.length) {
    labels = opts.labels.map((l) => l.trim()).filter((l) => l !== '');
    const dup = labels.find((l, i) => labels.indexOf(l) !== i);
    if (dup !== undefined) throw new CxrError('E_CONFIG', `label ${JSON.stringify(dup)} is listed twice`);
    for (const l of labels) {
      if (!truth.header.includes(l)) {
        throw new CxrError('E_DATA', `${truth.source}: missing label ${JSON.stringify(l)} in the truth (columns: ${truth.header.join(', ')})`, {
          source: truth.source,
          label: l,
        });
      }
    }
  } else labels = truth.header.filter((h) => h !== idCol && h !== patientCol);
  if (labels.length === 0) throw new CxrError('E_DATA', `${truth.source}: no label columns besides the id column`, { source: truth.source });
  return { idCol, patientCol, labels };
}

/**
 * Scores predictions (or binary reads) against the truth. See {@link ScoreOptions} for the defaults and
 * {@link ScoreResult} for the output. Errors: mismatched ids, duplicate ids, missing label columns, NaN or
 * non-numeric predictions, non-0/1 reads in binary mode, truth other than 1/0/-1/empty → `E_DATA`;
 * invalid options → `E_CONFIG`. A label with one class in the test split is skipped and named in `skipped`.
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
  if (!Number.isFinite(fixedThreshold)) throw new CxrError('E_CONFIG', `threshold must be a finite number, got ${opts.threshold}`);
  if ((input.valTruth === undefined) !== (input.valPred === undefined)) {
    throw new CxrError('E_CONFIG', 'validation truth and validation predictions must be given together');
  }
  if (binary && input.valTruth) throw new CxrError('E_CONFIG', 'binary reads have no threshold to fit: drop the validation files');

  const { truth, pred } = input;
  if (truth.rows.length === 0) throw new CxrError('E_DATA', `${truth.source}: no data rows`, { source: truth.source });
  const { idCol, patientCol, labels } = resolveColumns(truth, opts);
  const truthIds = indexIds(truth, columnIndex(truth, idCol, 'id'));
  const predAlign = alignRows(truth, truthIds, pred, idCol);
  const warnings: string[] = [];

  let valAlign: Int32Array | null = null;
  if (input.valTruth && input.valPred) {
    const vt = input.valTruth;
    if (vt.rows.length === 0) throw new CxrError('E_DATA', `${vt.source}: no data rows`, { source: vt.source });
    columnIndex(vt, idCol, 'id');
    valAlign = alignRows(vt, indexIds(vt, columnIndex(vt, idCol, 'id')), input.valPred, idCol);
  }
  const readerAligns = (input.readers ?? []).map((r) => alignRows(truth, truthIds, r.table, idCol));

  const scored: string[] = [];
  const skipped: SkippedLabel[] = [];
  const labelsOut: Record<string, LabelScore> = {};
  const curves: Record<string, LabelCurves> = {};
  const sorted: SortedLabel[] = [];
  const cuts: number[] = [];
  const readerSorted: SortedLabel[][] = readerAligns.map(() => []);
  const readerCuts: number[][] = readerAligns.map(() => []);
  let outside = 0;

  for (const label of labels) {
    const y = truthColumn(truth, label);
    const s = scoreColumn(pred, label, predAlign, binary, 'the predictions');
    for (const v of s) if (v < 0 || v > 1) outside++;
    // Parse every reader column even for labels skipped below, so that bad reads are never silently ignored.
    const readerScores = readerAligns.map((a, ri) => scoreColumn(input.readers![ri].table, label, a, true, `reader ${input.readers![ri].name}`));
    let threshold = fixedThreshold;
    let thresholdSource: ThresholdSource = binary ? 'binary' : 'fixed';
    let fitted = false;
    if (binary) threshold = 0.5;
    else if (valAlign && input.valTruth && input.valPred) {
      const yv = truthColumn(input.valTruth, label);
      const sv = scoreColumn(input.valPred, label, valAlign, false, 'the validation predictions');
      const choice = selectThresholdSorted(sortLabel(yv, sv), criterion);
      if (choice) {
        threshold = choice.threshold;
        thresholdSource = 'validation';
        fitted = true;
      } else warnings.push(`${label}: one class in the validation split, threshold fixed at ${fixedThreshold}`);
    }
    const sl = sortLabel(y, s);
    if (sl.nPos === 0 || sl.nNeg === 0) {
      skipped.push({ label, reason: `one class in the test split (${sl.nPos} positive, ${sl.nNeg} negative, ${sl.nMasked} masked)` });
      continue;
    }
    const cut = cutIndex(sl, threshold);
    const sum = summarizeSorted(sl, undefined, cut);
    const bm = binaryMetrics(sum.confusion);
    labelsOut[label] = {
      n: sl.order.length,
      nPos: sl.nPos,
      nNeg: sl.nNeg,
      nMasked: sl.nMasked,
      auroc: binary ? null : fin(sum.auroc),
      auprc: binary ? null : fin(sum.auprc),
      f1: bm.f1,
      mcc: bm.mcc,
      sensitivity: fin(bm.sensitivity),
      specificity: fin(bm.specificity),
      ppv: fin(bm.ppv),
      npv: fin(bm.npv),
      accuracy: fin(bm.accuracy),
      threshold,
      thresholdSource,
      ...(fitted ? { thresholdCriterion: criterion } : {}),
    };
    if (!binary && (opts.curves ?? true)) {
      const max = Math.max(16, opts.maxCurvePoints ?? 1000);
      const roc = rocCurveSorted(sl);
      const pr = prCurveSorted(sl);
      const r = downsample(roc.fpr, roc.tpr, max);
      const p = downsample(pr.recall, pr.precision, max);
      curves[label] = { roc: { fpr: r.x, tpr: r.y }, pr: { recall: p.x, precision: p.y }, prevalence: sl.nPos / (sl.nPos + sl.nNeg) };
    }
    scored.push(label);
    sorted.push(sl);
    cuts.push(cut);
    readerScores.forEach((rs, ri) => {
      const rsl = sortLabel(y, rs);
      readerSorted[ri].push(rsl);
      readerCuts[ri].push(cutIndex(rsl, 0.5));
    });
  }
  if (!binary && outside > 0) warnings.push(`${outside} prediction(s) outside [0, 1]: treated as scores; thresholds are on the same scale`);
  if (!valAlign && !binary) {
    warnings.push(`no validation split: F1/MCC use the fixed threshold ${fixedThreshold} (thresholds are never tuned on the test split)`);
  }

  const pick = (k: 'auroc' | 'auprc' | 'f1' | 'mcc'): Record<string, number | null> =>
    Object.fromEntries(scored.map((l) => [l, labelsOut[l][k]]));
  const macro: MacroScore = {
    auroc: binary ? null : fin(macroMean(pick('auroc'), scored).mean),
    auprc: binary ? null : fin(macroMean(pick('auprc'), scored).mean),
    f1: fin(macroMean(pick('f1'), scored).mean),
    mcc: fin(macroMean(pick('mcc'), scored).mean),
    labels: scored.slice(),
  };

  let readersOut: ReadersResult | undefined;
  if (input.readers && input.readers.length) {
    const rlist: ReaderScore[] = input.readers.map((r, ri) => {
      const lab: ReaderScore['labels'] = {};
      scored.forEach((l, li) => {
        const c = summarizeSorted(readerSorted[ri][li], undefined, readerCuts[ri][li]).confusion;
        const bm = binaryMetrics(c);
        lab[l] = { f1: bm.f1, mcc: bm.mcc, sensitivity: fin(bm.sensitivity), specificity: fin(bm.specificity) };
      });
      const mean = (k: 'f1' | 'mcc'): number | null => fin(macroMean(Object.fromEntries(scored.map((l) => [l, lab[l][k]]))).mean);
      return { name: r.name, labels: lab, macro: { f1: mean('f1'), mcc: mean('mcc') } };
    });
    const meanLabels: ReadersResult['mean']['labels'] = {};
    const cmpLabels: ReadersResult['comparison']['labels'] = {};
    for (const l of scored) {
      const f1 = rlist.reduce((a, r) => a + r.labels[l].f1, 0) / rlist.length;
      const mcc = rlist.reduce((a, r) => a + r.labels[l].mcc, 0) / rlist.length;
      meanLabels[l] = { f1, mcc };
      cmpLabels[l] = {
        f1: { delta: labelsOut[l].f1 - f1, lo: null, hi: null, n: 0, p: null },
        mcc: { delta: labelsOut[l].mcc - mcc, lo: null, hi: null, n: 0, p: null },
      };
    }
    const mm = (k: 'f1' | 'mcc'): number | null => fin(macroMean(Object.fromEntries(scored.map((l) => [l, meanLabels[l][k]]))).mean);
    const mf1 = mm('f1');
    const mmcc = mm('mcc');
    readersOut = {
      readers: rlist,
      mean: { labels: meanLabels, macro: { f1: mf1, mcc: mmcc } },
      comparison: {
        labels: cmpLabels,
        macro: {
          f1: { delta: macro.f1 !== null && mf1 !== null ? macro.f1 - mf1 : null, lo: null, hi: null, n: 0, p: null },
          mcc: { delta: macro.mcc !== null && mmcc !== null ? macro.mcc - mmcc : null, lo: null, hi: null, n: 0, p: null },
        },
      },
    };
  }

  let bootstrapInfo: ScoreResult['bootstrap'] = null;
  if (resamples > 0 && scored.length > 0) {
    const nRows = truth.rows.length;
    const pIdx = patientCol ? columnIndex(truth, patientCol, 'patient') : -1;
    // A row without a patient id is its own cluster (not one big cluster of all unknown patients).
    const clusters = patientCol ? truth.rows.map((r, i) => r[pIdx].trim() || `\u0000row ${i}`) : undefined;
    const rs = new Resampler(nRows, { seed, clusters });
    bootstrapInfo = { resamples, seed, level, unit: clusters ? 'patient' : 'row', nUnits: rs.nUnits };
    const L = scored.length;
    const R = readerSorted.length;
    // Layout of one resample's statistic vector.
    const M = 4; // auroc, auprc, f1, mcc per label
    const oModel = 0;
    const oMacro = L * M; // 4 macro means
    const oReader = oMacro + 4; // R × L × 2 (f1, mcc)
    const oReaderMacro = oReader + R * L * 2; // R × 2
    const oMean = oReaderMacro + R * 2; // L × 2 reader mean
    const oMeanMacro = oMean + L * 2; // 2
    const oDelta = oMeanMacro + 2; // L × 2 model − reader mean
    const oDeltaMacro = oDelta + L * 2; // 2
    const K = R > 0 ? oDeltaMacro + 2 : oReader;
    const totPos = new Float64Array(L);
    const totNeg = new Float64Array(L);
    const defined = (c: { tp: number; fp: number; tn: number; fn: number }): boolean => c.tp + c.fn > 0 && c.fp + c.tn > 0;
    const m = bootstrapMatrix(
      nRows,
      K,
      (w, out) => {
        const sums = [0, 0, 0, 0];
        for (let li = 0; li < L; li++) {
          const sm = summarizeSorted(sorted[li], w, cuts[li]);
          totPos[li] = sm.confusion.tp + sm.confusion.fn;
          totNeg[li] = sm.confusion.fp + sm.confusion.tn;
          const ok = defined(sm.confusion);
          const v = [sm.auroc, sm.auprc, ok ? f1Of(sm.confusion) : NaN, ok ? mccOf(sm.confusion) : NaN];
          for (let k = 0; k < M; k++) {
            out[oModel + li * M + k] = v[k];
            sums[k] += v[k]; // NaN propagates: a resample where any label is undefined is left out of the macro
          }
        }
        for (let k = 0; k < M; k++) out[oMacro + k] = sums[k] / L;
        if (R === 0) return;
        const meanF1 = new Float64Array(L);
        const meanMcc = new Float64Array(L);
        for (let ri = 0; ri < R; ri++) {
          let sf = 0;
          let sm2 = 0;
          for (let li = 0; li < L; li++) {
            // Class totals are the model's (same truth, same mask): only the predicted positives need a pass.
            const a = weightedAbove(readerSorted[ri][li], w, readerCuts[ri][li]);
            const c = { tp: a.tp, fp: a.fp, fn: totPos[li] - a.tp, tn: totNeg[li] - a.fp };
            const ok = defined(c);
            const f = ok ? f1Of(c) : NaN;
            const mc = ok ? mccOf(c) : NaN;
            out[oReader + (ri * L + li) * 2] = f;
            out[oReader + (ri * L + li) * 2 + 1] = mc;
            meanF1[li] += f / R;
            meanMcc[li] += mc / R;
            sf += f;
            sm2 += mc;
          }
          out[oReaderMacro + ri * 2] = sf / L;
          out[oReaderMacro + ri * 2 + 1] = sm2 / L;
        }
        let sf = 0;
        let smc = 0;
        for (let li = 0; li < L; li++) {
          out[oMean + li * 2] = meanF1[li];
          out[oMean + li * 2 + 1] = meanMcc[li];
          out[oDelta + li * 2] = out[oModel + li * M + 2] - meanF1[li];
          out[oDelta + li * 2 + 1] = out[oModel + li * M + 3] - meanMcc[li];
          sf += meanF1[li];
          smc += meanMcc[li];
        }
        out[oMeanMacro] = sf / L;
        out[oMeanMacro + 1] = smc / L;
        out[oDeltaMacro] = out[oMacro + 2] - sf / L;
        out[oDeltaMacro + 1] = out[oMacro + 3] - smc / L;
      },
      { resamples, seed, clusters },
    );
    const ci = (j: number): CiBounds => ciOf(column(m, j), level);
    const delta = (j: number, d: DeltaResult): DeltaResult => {
      const col = column(m, j);
      return { delta: d.delta, ...ciOf(col, level), p: fin(pairedPValue(col)) };
    };
    const names = ['auroc', 'auprc', 'f1', 'mcc'] as const;
    scored.forEach((l, li) => {
      const c: LabelScore['ci'] = {};
      names.forEach((k, ki) => {
        if (!binary || ki >= 2) c[k] = ci(oModel + li * M + ki);
      });
      labelsOut[l].ci = c;
    });
    const mc: MacroScore['ci'] = {};
    names.forEach((k, ki) => {
      if (!binary || ki >= 2) mc[k] = ci(oMacro + ki);
    });
    macro.ci = mc;
    if (readersOut) {
      const ro = readersOut;
      ro.readers.forEach((r, ri) => {
        scored.forEach((l, li) => {
          r.labels[l].ci = { f1: ci(oReader + (ri * L + li) * 2), mcc: ci(oReader + (ri * L + li) * 2 + 1) };
        });
        r.macro.ci = { f1: ci(oReaderMacro + ri * 2), mcc: ci(oReaderMacro + ri * 2 + 1) };
      });
      scored.forEach((l, li) => {
        ro.mean.labels[l].ci = { f1: ci(oMean + li * 2), mcc: ci(oMean + li * 2 + 1) };
        ro.comparison.labels[l] = {
          f1: delta(oDelta + li * 2, ro.comparison.labels[l].f1),
          mcc: delta(oDelta + li * 2 + 1, ro.comparison.labels[l].mcc),
        };
      });
      ro.mean.macro.ci = { f1: ci(oMeanMacro), mcc: ci(oMeanMacro + 1) };
      ro.comparison.macro = { f1: delta(oDeltaMacro, ro.comparison.macro.f1), mcc: delta(oDeltaMacro + 1, ro.comparison.macro.mcc) };
    }
  }

  const result: ScoreResult = {
    labels: labelsOut,
    macro,
    skipped,
    ...(readersOut ? { readers: readersOut } : {}),
    bootstrap: bootstrapInfo,
    settings: {
      binary,
      idCol,
      patientCol,
      thresholdCriterion: criterion,
      fixedThreshold,
      validation: valAlign !== null,
      nRows: truth.rows.length,
    },
    warnings,
  };
  if (!binary && (opts.curves ?? true)) result.curves = curves;
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
