/**
 * Decision thresholds saved by `cxr-train eval` (fitted on a validation split, never on test) and read by
 * `cxr-train predict --thresholds` / `serve --thresholds` for binary calls (`p >= threshold` is positive,
 * the convention of the scoring code).
 */
import fs from 'node:fs';
import { CxrError } from '../errors';
import { writeFileAtomic } from '../util/atomic';
import { forEachLabelColumn, selectThresholdSorted, sortLabel } from './metrics';
import type { ThresholdCriterion } from './metrics';

/** File format tag of a thresholds JSON. */
export const THRESHOLDS_FORMAT = 'cxr-train-thresholds';

/** What a thresholds JSON holds. */
export interface ThresholdsFile {
  format: typeof THRESHOLDS_FORMAT;
  version: 1;
  /** Criterion maximised on the validation split. */
  criterion: ThresholdCriterion;
  /** Split the thresholds were fitted on (e.g. `validate`). */
  split: string;
  /** Dataset they were fitted on. */
  dataset?: string;
  /** SHA-256 of the checkpoint(s) whose probabilities they apply to (an ensemble lists several). */
  checkpointHashes: string[];
  /** Prompt set name and hash: other prompts give other probabilities. */
  prompts: { name: string; hash: string };
  /** Temperature of the softmax the probabilities came from. */
  temperature: number | 'logit-scale';
  /** Label → threshold. Labels with one class in the validation split have none. */
  labels: Record<string, number>;
  /** Labels without a threshold, and why. */
  skipped?: Array<{ label: string; reason: string }>;
}

/**
 * Fits one threshold per label on validation truth and probabilities (row-major n × labels), maximising
 * `criterion`. Labels with one class (after masking uncertain/missing truth) get none and are listed.
 */
export function fitThresholds(
  labels: readonly string[],
  truth: Float64Array,
  probs: ArrayLike<number>,
  criterion: ThresholdCriterion = 'mcc',
): { labels: Record<string, number>; skipped: Array<{ label: string; reason: string }> } {
  const out: Record<string, number> = {};
  const skipped: Array<{ label: string; reason: string }> = [];
  forEachLabelColumn(labels, truth, probs, 'fitThresholds: truth and probabilities', (label, y, s) => {
    const sl = sortLabel(y, s);
    const c = selectThresholdSorted(sl, criterion);
    if (c) out[label] = c.threshold;
    else skipped.push({ label, reason: `one class in the validation split (${sl.nPos} positive, ${sl.nNeg} negative)` });
  });
  return { labels: out, skipped };
}

/** Writes a thresholds JSON atomically. */
export function writeThresholds(file: string, t: ThresholdsFile): void {
  writeFileAtomic(file, JSON.stringify(t, null, 2) + '\n');
}

/**
 * Reads a JSON file `eval` wrote (thresholds, calibration): E_IO when unreadable (naming `what`), E_PARSE when
 * not JSON. The caller checks the content.
 */
export function readEvalJson(file: string, what: string): unknown {
  let raw: string;
  try {
    raw = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new CxrError('E_IO', `cannot read ${what} ${file}: ${(e as Error).message}`, { path: file });
  }
  try {
    return JSON.parse(raw);
  } catch (e) {
    throw new CxrError('E_PARSE', `${file}: not valid JSON (${(e as Error).message})`, { path: file });
  }
}

/**
 * Reads and checks a thresholds JSON written by `cxr-train eval`.
 * @throws CxrError E_IO (unreadable), E_PARSE (not JSON, wrong format, non-numeric threshold).
 */
export function readThresholds(file: string): ThresholdsFile {
  const v = readEvalJson(file, 'thresholds') as ThresholdsFile;
  if (!v || v.format !== THRESHOLDS_FORMAT || typeof v.labels !== 'object' || v.labels === null) {
    throw new CxrError('E_PARSE', `${file}: not a cxr-train thresholds file (write one with \`cxr-train eval --val-split ...\`)`, { path: file });
  }
  for (const [k, t] of Object.entries(v.labels)) {
    if (typeof t !== 'number' || !Number.isFinite(t)) throw new CxrError('E_PARSE', `${file}: threshold of ${JSON.stringify(k)} is not a finite number`, { path: file });
  }
  return v;
}
