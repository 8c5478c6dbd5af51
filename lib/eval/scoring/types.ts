/** The types of the scoring pipeline (`scoreTables`, `cxr-train score`): options, inputs and results. */
import type { CsvTable } from '../../util/csv';
import type { ThresholdCriterion } from '../metrics';

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
