/**
 * The calibration part of `cxr-train eval`: calibration metrics of the scored split's probabilities (always),
 * and with a method, the maps fitted on the validation split, applied to both splits, with the metrics
 * before and after (lib/eval/calibration.ts for the metrics, lib/eval/calibrationMap.ts for the maps).
 */
import { calibrationSummary, DEFAULT_CALIBRATION_BINS } from './calibration';
import type { CalibrationSummary } from './calibration';
import { applyCalibration, fitCalibration, LOGIT_DEFINITION } from './calibrationMap';
import type { CalibrationMethod, LabelMap } from './calibrationMap';
import type { NumArray } from './metrics';

/** What `report.json` holds under `calibration`. */
export interface CalibrationReport {
  /** Reliability bins per label. */
  nBins: number;
  /** The scored split's calibration of the model's probabilities. */
  test: { split: string; before: CalibrationSummary; after?: CalibrationSummary };
  /** With a method: the fit. */
  fit?: {
    method: CalibrationMethod;
    split: string;
    logit: string;
    maps: Record<string, LabelMap>;
    skipped: Array<{ label: string; reason: string }>;
    /** The validation split's calibration before and after its own maps (in-sample). */
    validation: { before: CalibrationSummary; after: CalibrationSummary };
    /** The calibration file written. */
    file?: string;
  };
}

/** Inputs of {@link calibrationReport}. */
export interface CalibrationReportInput {
  labels: readonly string[];
  testSplit: string;
  testTruth: NumArray;
  testProbs: NumArray;
  /** Validation split, truth and probabilities (required with `method`). */
  valSplit?: string;
  valTruth?: NumArray;
  valProbs?: NumArray;
  method?: CalibrationMethod;
  nBins?: number;
}

/**
 * Calibration metrics of the scored split, and with `method` the per-label maps fitted on validation and
 * the metrics after them. Returns the report and, with a method, the calibrated test probabilities.
 */
export function calibrationReport(inp: CalibrationReportInput): { report: CalibrationReport; calibratedTest?: Float64Array } {
  const nBins = inp.nBins ?? DEFAULT_CALIBRATION_BINS;
  const before = calibrationSummary(inp.labels, inp.testTruth, inp.testProbs, nBins);
  const report: CalibrationReport = { nBins, test: { split: inp.testSplit, before } };
  if (!inp.method || !inp.valTruth || !inp.valProbs) return { report };
  const fit = fitCalibration(inp.labels, inp.valTruth, inp.valProbs, inp.method);
  const calTest = applyCalibration(fit.labels, inp.labels, inp.testProbs);
  const calVal = applyCalibration(fit.labels, inp.labels, inp.valProbs);
  report.test.after = calibrationSummary(inp.labels, inp.testTruth, calTest, nBins);
  report.fit = {
    method: inp.method,
    split: inp.valSplit ?? 'validation',
    logit: LOGIT_DEFINITION,
    maps: fit.labels,
    skipped: fit.skipped,
    validation: { before: calibrationSummary(inp.labels, inp.valTruth, inp.valProbs, nBins), after: calibrationSummary(inp.labels, inp.valTruth, calVal, nBins) },
  };
  return { report, calibratedTest: calTest };
}
