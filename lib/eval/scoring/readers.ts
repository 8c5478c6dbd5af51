/** Step 3 of scoring: radiologists' binary reads on the same rows, their mean, and the model minus that mean. */
import { binaryMetrics, macroMean, summarizeSorted } from '../metrics';
import { fin } from './numbers';
import type { PointEstimates } from './points';
import type { ReaderScore, ReadersResult, ScoreTablesInput } from './types';

/** Point estimates of the readers against the model's (intervals are added by the bootstrap); none without readers. */
export function readerEstimates(input: ScoreTablesInput, points: PointEstimates): ReadersResult | undefined {
  const { scored, readerSorted, readerCuts, labels: labelsOut, macro } = points;
  if (!input.readers || input.readers.length === 0) return undefined;
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
  return {
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
