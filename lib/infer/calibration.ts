/**
 * Which calibration `predict` and `serve` apply, and the checks that it fits the model in use. A
 * calibration.json written by `cxr-train eval --calibrate` sits beside thresholds.json: given
 * `--thresholds DIR/thresholds.json`, `DIR/calibration.json` is used when it exists; `--calibration FILE`
 * names one explicitly, `--calibration none` turns it off.
 */
import fs from 'node:fs';
import path from 'node:path';
import { applyLabelMap, describeCalibration, readCalibration } from '../eval/calibrationMap';
import type { CalibrationFile } from '../eval/calibrationMap';
import type { ThresholdsFile } from '../eval/thresholds';
import type { TemperatureOption } from '../eval/modelEncoder';

/** File name of the calibration maps, beside thresholds.json. */
export const CALIBRATION_FILE = 'calibration.json';

/** A calibration in use. */
export interface ActiveCalibration {
  /** The file read (absent when the content was passed in). */
  file?: string;
  content: CalibrationFile;
  /** e.g. `temperature scaling fitted on validate (14 labels)`. */
  description: string;
}

/** What is said about calibration in `predict --json` / `serve`'s /api/info. */
export interface CalibrationInfo {
  file: string | null;
  method: CalibrationFile['method'];
  split: string;
  /** Labels whose probabilities are calibrated. */
  labels: string[];
  description: string;
}

/**
 * The calibration to apply: `calibration` (a path, its content, or `none`), else the calibration.json beside
 * a thresholds *path*, else none.
 * @throws CxrError E_IO / E_PARSE (an unreadable or broken file named explicitly or found beside the thresholds).
 */
export function resolveCalibration(calibration: string | CalibrationFile | undefined, thresholds: string | ThresholdsFile | undefined): ActiveCalibration | null {
  if (calibration === 'none') return null;
  if (calibration !== undefined && typeof calibration !== 'string') return { content: calibration, description: describeCalibration(calibration) };
  let file = calibration;
  if (file === undefined && typeof thresholds === 'string') {
    const beside = path.join(path.dirname(thresholds), CALIBRATION_FILE);
    if (fs.existsSync(beside)) file = beside;
  }
  if (file === undefined) return null;
  const content = readCalibration(file);
  return { file, content, description: describeCalibration(content) };
}

/**
 * Warnings when a calibration was fitted for other probabilities than the model's (another checkpoint,
 * prompt set or zero-shot temperature), and labels it has no map for.
 */
export function calibrationWarnings(c: ActiveCalibration, m: { checkpointHash: string; promptHash: string; labels: readonly string[]; temperature: TemperatureOption }): string[] {
  const w: string[] = [];
  const cal = c.content;
  if (!cal.checkpointHashes.includes(m.checkpointHash)) w.push('the calibration was fitted for another checkpoint: calibrated probabilities may be off for this one');
  if (cal.prompts.hash !== m.promptHash) w.push(`the calibration was fitted with another prompt set (${cal.prompts.name}): calibrated probabilities may be off`);
  if (String(cal.zeroShotTemperature) !== String(m.temperature)) w.push(`the calibration was fitted on probabilities at --temperature ${cal.zeroShotTemperature}, these use ${m.temperature}: calibrated probabilities are off`);
  const none = m.labels.filter((l) => !cal.labels[l]);
  if (none.length) w.push(`no calibration map (probabilities left as they are) for: ${none.join(', ')}`);
  return w;
}

/** The info block for output. */
export function calibrationInfo(c: ActiveCalibration, labels: readonly string[]): CalibrationInfo {
  return { file: c.file ?? null, method: c.content.method, split: c.content.split, labels: labels.filter((l) => c.content.labels[l]), description: c.description };
}

/** The calibrated probability of `label` (unchanged without a map). */
export function calibrateProbability(c: ActiveCalibration, label: string, p: number): number {
  const m = c.content.labels[label];
  return m ? applyLabelMap(m, p) : p;
}
