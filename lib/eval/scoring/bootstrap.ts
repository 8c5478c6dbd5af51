/**
 * Step 4 of scoring: seeded (patient-clustered) bootstrap intervals of every statistic, and paired
 * intervals and p-values of the model minus the reader mean. One resample computes one vector laid out by
 * {@link StatLayout}; the intervals are read back by name.
 */
import { bootstrapMatrix, column, pairedPValue, Resampler } from '../bootstrap';
import { f1Of, mccOf, summarizeSorted, weightedAbove } from '../metrics';
import { columnIndex } from './align';
import { ciOf, fin } from './numbers';
import type { PointEstimates } from './points';
import { MODEL_STATS, StatLayout } from './layout';
import type { CiBounds, DeltaResult, LabelScore, MacroScore, ReadersResult, ScoreResult } from './types';
import type { CsvTable } from '../../util/csv';

/** What the bootstrap resamples and how. */
export interface BootstrapSettings {
  resamples: number;
  seed: number;
  level: number;
  binary: boolean;
  /** The truth table (rows, and the patient column for clusters). */
  truth: CsvTable;
  patientCol: string | null;
}

type Confusion = { tp: number; fp: number; tn: number; fn: number };
const defined = (c: Confusion): boolean => c.tp + c.fn > 0 && c.fp + c.tn > 0;

/**
 * Adds bootstrap intervals to the point estimates (`ci` of every label, the macro means and the readers)
 * in place; returns the bootstrap settings, or null when it is off or no label was scored.
 */
export function addBootstrapIntervals(points: PointEstimates, readers: ReadersResult | undefined, s: BootstrapSettings): ScoreResult['bootstrap'] {
  const { scored, sorted, cuts, readerSorted, readerCuts, labels: labelsOut, macro } = points;
  const { resamples, seed, level, binary, truth, patientCol } = s;
  if (!(resamples > 0 && scored.length > 0)) return null;
  const nRows = truth.rows.length;
  const pIdx = patientCol ? columnIndex(truth, patientCol, 'patient') : -1;
  // A row without a patient id is its own cluster (not one big cluster of all unknown patients).
  const clusters = patientCol ? truth.rows.map((r, i) => r[pIdx].trim() || `\u0000row ${i}`) : undefined;
  const rs = new Resampler(nRows, { seed, clusters });
  const info = { resamples, seed, level, unit: clusters ? ('patient' as const) : ('row' as const), nUnits: rs.nUnits };
  const L = scored.length;
  const R = readerSorted.length;
  const at = new StatLayout(L, R);
  const M = MODEL_STATS.length;
  const F1 = MODEL_STATS.indexOf('f1');
  const MCC = MODEL_STATS.indexOf('mcc');
  const totPos = new Float64Array(L);
  const totNeg = new Float64Array(L);
  const m = bootstrapMatrix(
    nRows,
    at.size,
    (w, out) => {
      const sums = [0, 0, 0, 0];
      for (let li = 0; li < L; li++) {
        const sm = summarizeSorted(sorted[li], w, cuts[li]);
        totPos[li] = sm.confusion.tp + sm.confusion.fn;
        totNeg[li] = sm.confusion.fp + sm.confusion.tn;
        const ok = defined(sm.confusion);
        const v = [sm.auroc, sm.auprc, ok ? f1Of(sm.confusion) : NaN, ok ? mccOf(sm.confusion) : NaN];
        for (let k = 0; k < M; k++) {
          out[at.model(li, k)] = v[k];
          sums[k] += v[k]; // NaN propagates: a resample where any label is undefined is left out of the macro
        }
      }
      for (let k = 0; k < M; k++) out[at.macro(k)] = sums[k] / L;
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
          out[at.reader(ri, li, 'f1')] = f;
          out[at.reader(ri, li, 'mcc')] = mc;
          meanF1[li] += f / R;
          meanMcc[li] += mc / R;
          sf += f;
          sm2 += mc;
        }
        out[at.readerMacro(ri, 'f1')] = sf / L;
        out[at.readerMacro(ri, 'mcc')] = sm2 / L;
      }
      let sf = 0;
      let smc = 0;
      for (let li = 0; li < L; li++) {
        out[at.mean(li, 'f1')] = meanF1[li];
        out[at.mean(li, 'mcc')] = meanMcc[li];
        out[at.delta(li, 'f1')] = out[at.model(li, F1)] - meanF1[li];
        out[at.delta(li, 'mcc')] = out[at.model(li, MCC)] - meanMcc[li];
        sf += meanF1[li];
        smc += meanMcc[li];
      }
      out[at.meanMacro('f1')] = sf / L;
      out[at.meanMacro('mcc')] = smc / L;
      out[at.deltaMacro('f1')] = out[at.macro(F1)] - sf / L;
      out[at.deltaMacro('mcc')] = out[at.macro(MCC)] - smc / L;
    },
    { resamples, seed, clusters },
  );
  const ci = (j: number): CiBounds => ciOf(column(m, j), level);
  const delta = (j: number, d: DeltaResult): DeltaResult => {
    const col = column(m, j);
    return { delta: d.delta, ...ciOf(col, level), p: fin(pairedPValue(col)) };
  };
  // Binary reads have no AUROC / AUPRC: only F1 and MCC get intervals.
  const withCi = (ki: number) => !binary || ki >= F1;
  scored.forEach((l, li) => {
    const c: LabelScore['ci'] = {};
    MODEL_STATS.forEach((k, ki) => {
      if (withCi(ki)) c[k] = ci(at.model(li, ki));
    });
    labelsOut[l].ci = c;
  });
  const mc: MacroScore['ci'] = {};
  MODEL_STATS.forEach((k, ki) => {
    if (withCi(ki)) mc[k] = ci(at.macro(ki));
  });
  macro.ci = mc;
  if (readers) {
    readers.readers.forEach((r, ri) => {
      scored.forEach((l, li) => {
        r.labels[l].ci = { f1: ci(at.reader(ri, li, 'f1')), mcc: ci(at.reader(ri, li, 'mcc')) };
      });
      r.macro.ci = { f1: ci(at.readerMacro(ri, 'f1')), mcc: ci(at.readerMacro(ri, 'mcc')) };
    });
    scored.forEach((l, li) => {
      readers.mean.labels[l].ci = { f1: ci(at.mean(li, 'f1')), mcc: ci(at.mean(li, 'mcc')) };
      readers.comparison.labels[l] = {
        f1: delta(at.delta(li, 'f1'), readers.comparison.labels[l].f1),
        mcc: delta(at.delta(li, 'mcc'), readers.comparison.labels[l].mcc),
      };
    });
    readers.mean.macro.ci = { f1: ci(at.meanMacro('f1')), mcc: ci(at.meanMacro('mcc')) };
    readers.comparison.macro = { f1: delta(at.deltaMacro('f1'), readers.comparison.macro.f1), mcc: delta(at.deltaMacro('mcc'), readers.comparison.macro.mcc) };
  }
  return info;
}
