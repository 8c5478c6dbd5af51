/**
 * Step 2 of scoring: point estimates per label on the original rows (threshold fitted on validation or
 * fixed, AUROC / AUPRC / F1 / MCC, curves) and the macro means; the sorted labels and threshold cuts are
 * kept for the bootstrap and the readers.
 */
import { binaryMetrics, cutIndex, macroMean, prCurveSorted, rocCurveSorted, selectThresholdSorted, sortLabel, summarizeSorted } from '../metrics';
import type { SortedLabel, ThresholdCriterion } from '../metrics';
import { scoreColumn, truthColumn, type AlignedInputs } from './align';
import { downsample, fin } from './numbers';
import type { LabelCurves, LabelScore, MacroScore, ScoreOptions, ScoreTablesInput, SkippedLabel, ThresholdSource } from './types';

/** The settings the point estimates depend on, resolved from {@link ScoreOptions}. */
export interface PointSettings {
  binary: boolean;
  fixedThreshold: number;
  criterion: ThresholdCriterion;
  curves: boolean;
  maxCurvePoints: number | undefined;
}

/** Point estimates of every label, and what the bootstrap and the readers need. */
export interface PointEstimates {
  /** Labels with both classes, in order. */
  scored: string[];
  skipped: SkippedLabel[];
  labels: Record<string, LabelScore>;
  curves: Record<string, LabelCurves>;
  macro: MacroScore;
  /** Per scored label: the model's rows sorted by score, and the index of its threshold. */
  sorted: SortedLabel[];
  cuts: number[];
  /** Per reader, per scored label: the reads sorted, and the index of the 0.5 cut. */
  readerSorted: SortedLabel[][];
  readerCuts: number[][];
}

/** Computes the point estimates; notes for the reader of the numbers go to `warnings`. */
export function pointEstimates(input: ScoreTablesInput, aligned: AlignedInputs, settings: PointSettings, warnings: string[]): PointEstimates {
  const labels = aligned.labels;
  const opts = { curves: settings.curves, maxCurvePoints: settings.maxCurvePoints };
  const { binary, fixedThreshold, criterion } = settings;
  const { predAlign, valAlign, readerAligns } = aligned;
  const { truth, pred } = input;
  const scored: string[] = [];
  const skipped: SkippedLabel[] = [];
  const labelsOut: Record<string, LabelScore> = {};
  const curves: Record<string, LabelCurves> = {};
  const sorted: SortedLabel[] = [];
  const cuts: number[] = [];
  const readerSorted: SortedLabel[][] = readerAligns.map(() => []);
  const readerCuts: number[][] = readerAligns.map(() => []);

  for (const label of labels) {
    const y = truthColumn(truth, label);
    const s = scoreColumn(pred, label, predAlign, binary, 'the predictions');
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
  return { scored, skipped, labels: labelsOut, curves, macro, sorted, cuts, readerSorted, readerCuts };
}
