import path from 'node:path';
import { scoreCsv, scoreTables, formatPredictionsCsv, withoutCurves } from '../../../lib/eval/score';
import { auroc, averagePrecision, metricsAt, selectThreshold } from '../../../lib/eval/metrics';
import { parseCsvTable } from '../../../lib/util/csv';
import type { CsvTable } from '../../../lib/util/csv';
import { isCxrError } from '../../../lib/errors';
import { lcg } from './helpers';

const FIX = path.resolve(__dirname, '../../fixtures/eval');
const fx = (f: string): string => path.join(FIX, f);

function table(source: string, header: string[], rows: Array<Array<string | number>>): CsvTable {
  return { source, header, rows: rows.map((r) => r.map(String)) };
}

function codeOf(f: () => unknown): { code?: string; message?: string } {
  try {
    f();
  } catch (e) {
    return isCxrError(e) ? { code: e.code, message: e.message } : { code: 'other', message: String(e) };
  }
  return {};
}

describe('hand-worked fixture (BOM, CRLF, quoted ids, shuffled rows)', () => {
  const r = scoreCsv({ truth: fx('truth.csv'), pred: fx('pred.csv') }, { bootstrap: 0 });

  test('AUROC / AUPRC / F1 / MCC per label', () => {
    // A: positives .9 .6 .8 .4 vs negatives .2 .6 .1 .3 -> (4 + 4 + 3.5 + 3) / 16
    expect(r.labels.A.auroc).toBeCloseTo(14.5 / 16, 15);
    // B: s3 (-1) and s6 (empty) masked; positives .7 .5 .3 vs negatives .3 .2 .6 -> 6.5 / 9
    expect(r.labels.B.auroc).toBeCloseTo(6.5 / 9, 15);
    expect(r.labels.B.nMasked).toBe(2);
    expect(r.labels.B.n).toBe(6);
    // threshold 0.5 (no validation): A tp 3 fp 1 fn 1 tn 3; B tp 2 fp 1 fn 1 tn 2
    expect(r.labels.A).toMatchObject({ threshold: 0.5, thresholdSource: 'fixed', f1: 0.75, mcc: 0.5 });
    expect(r.labels.B.f1).toBeCloseTo(2 / 3, 15);
    expect(r.labels.B.mcc).toBeCloseTo(1 / 3, 15);
    // A's AP: thresholds .9 (P1,R.25) .8 (P1,R.5) .6 (P3/4,R.75) .4 (P4/5,R1)
    expect(r.labels.A.auprc).toBeCloseTo(0.25 + 0.25 + 0.25 * 0.75 + 0.25 * (4 / 5), 15);
  });

  test('one-class label is skipped, named, and left out of the macro means', () => {
    expect(r.labels.C).toBeUndefined();
    expect(r.skipped).toHaveLength(1);
    expect(r.skipped[0].label).toBe('C');
    expect(r.skipped[0].reason).toMatch(/one class/);
    expect(r.macro.labels).toEqual(['A', 'B']);
    expect(r.macro.auroc).toBeCloseTo((14.5 / 16 + 6.5 / 9) / 2, 15);
    expect(r.settings.patientCol).toBe('patient_id');
    expect(r.warnings.join(' ')).toMatch(/no validation split/);
  });

  test('thresholds are fitted on validation and frozen', () => {
    const v = scoreCsv({ truth: fx('truth.csv'), pred: fx('pred.csv'), valTruth: fx('val_truth.csv'), valPred: fx('val_pred.csv') }, { bootstrap: 0 });
    const vt = parseCsvTable(require('node:fs').readFileSync(fx('val_truth.csv'), 'utf8'));
    const vp = parseCsvTable(require('node:fs').readFileSync(fx('val_pred.csv'), 'utf8'));
    for (const l of ['A', 'B']) {
      const j = vt.header.indexOf(l);
      const expected = selectThreshold(vt.rows.map((x) => Number(x[j])), vp.rows.map((x) => Number(x[j])), 'mcc')!;
      expect(v.labels[l].threshold).toBe(expected.threshold);
      expect(v.labels[l].thresholdSource).toBe('validation');
      expect(v.labels[l].thresholdCriterion).toBe('mcc');
    }
    // test-set F1 at the frozen threshold, recomputed directly
    const ya = [1, 0, 1, 0, 1, 0, 0, 1];
    const sa = [0.9, 0.2, 0.6, 0.6, 0.8, 0.1, 0.3, 0.4];
    expect(v.labels.A.f1).toBeCloseTo(metricsAt(ya, sa, v.labels.A.threshold).f1, 15);
    expect(v.settings.validation).toBe(true);
    // AUROC does not depend on the threshold
    expect(v.labels.A.auroc).toBe(r.labels.A.auroc);
  });

  test('radiologist reads: per reader, mean, model minus mean', () => {
    const rr = scoreCsv({ truth: fx('truth.csv'), pred: fx('pred.csv'), readers: [fx('reader_a.csv'), fx('reader_b.csv')] }, { bootstrap: 200, seed: 4 });
    const rd = rr.readers!;
    expect(rd.readers.map((x) => x.name)).toEqual(['reader_a', 'reader_b']);
    expect(rd.readers[0].labels.A).toMatchObject({ f1: 0.75, mcc: 0.5 });
    expect(rd.readers[0].labels.B.f1).toBeCloseTo(0.8, 15);
    expect(rd.readers[0].labels.B.mcc).toBeCloseTo(6 / Math.sqrt(72), 15);
    expect(rd.readers[1].labels.B.f1).toBeCloseTo(6 / 7, 15);
    expect(rd.mean.labels.B.f1).toBeCloseTo((0.8 + 6 / 7) / 2, 15);
    expect(rd.comparison.labels.B.f1.delta).toBeCloseTo(2 / 3 - (0.8 + 6 / 7) / 2, 15);
    expect(rd.comparison.labels.A.f1.delta).toBe(0);
    expect(rd.comparison.macro.f1.delta).toBeCloseTo(rr.macro.f1! - rd.mean.macro.f1!, 15);
    expect(rd.comparison.labels.B.f1.p).toBeGreaterThan(0);
    expect(rd.comparison.labels.B.f1.p).toBeLessThanOrEqual(1);
    expect(rd.readers[0].labels.A.ci!.f1.n).toBeGreaterThan(0);
  });
});

describe('bootstrap in the pipeline', () => {
  function synthetic(n: number, seed: number, labels = ['A', 'B', 'C']): { truth: CsvTable; pred: CsvTable; y: number[][]; s: number[][] } {
    const r = lcg(seed);
    const y = labels.map(() => [] as number[]);
    const s = labels.map(() => [] as number[]);
    const trows: Array<Array<string | number>> = [];
    const prows: Array<Array<string | number>> = [];
    for (let i = 0; i < n; i++) {
      const tr: Array<string | number> = [`id${i}`, `p${i % Math.ceil(n / 3)}`];
      const pr: Array<string | number> = [`id${i}`];
      labels.forEach((_, j) => {
        const v = r() < 0.05 ? -1 : r() < 0.3 ? 1 : 0;
        const sc = Math.round((r() * 0.7 + (v === 1 ? 0.25 : 0)) * 100) / 100;
        y[j].push(v);
        s[j].push(sc);
        tr.push(v);
        pr.push(sc);
      });
      trows.push(tr);
      prows.push(pr);
    }
    // predictions in reverse order: alignment is by id
    return { truth: table('truth', ['id', 'patient_id', ...labels], trows), pred: table('pred', ['id', ...labels], prows.reverse()), y, s };
  }

  test('point estimates equal the metric functions; seeded CIs are reproducible', () => {
    const d = synthetic(150, 5);
    const a = scoreTables(d, { bootstrap: 300, seed: 11 });
    const b = scoreTables(d, { bootstrap: 300, seed: 11 });
    const c = scoreTables(d, { bootstrap: 300, seed: 12 });
    expect(withoutCurves(a)).toEqual(withoutCurves(b));
    expect(a.labels.A.ci).not.toEqual(c.labels.A.ci);
    ['A', 'B', 'C'].forEach((l, j) => {
      expect(a.labels[l].auroc).toBeCloseTo(auroc(d.y[j], d.s[j]), 15);
      expect(a.labels[l].auprc).toBeCloseTo(averagePrecision(d.y[j], d.s[j]), 15);
      const ci = a.labels[l].ci!;
      expect(ci.auroc!.lo!).toBeLessThanOrEqual(a.labels[l].auroc!);
      expect(ci.auroc!.hi!).toBeGreaterThanOrEqual(a.labels[l].auroc!);
      expect(ci.auroc!.n).toBe(300);
    });
    expect(a.bootstrap).toMatchObject({ resamples: 300, seed: 11, unit: 'patient', nUnits: 50, level: 0.95 });
    expect(a.macro.ci!.auroc!.lo!).toBeLessThan(a.macro.auroc!);
    // curves for the report card start at the origin and end at (1, 1)
    const roc = a.curves!.A.roc;
    expect([roc.fpr[0], roc.tpr[0], roc.fpr[roc.fpr.length - 1], roc.tpr[roc.tpr.length - 1]]).toEqual([0, 0, 1, 1]);
  });

  test('rows without a patient id are their own bootstrap units', () => {
    const truth = table('t', ['id', 'patient_id', 'A'], [['a', 'p1', 1], ['b', 'p1', 0], ['c', '', 1], ['d', '', 0], ['e', 'p2', 1], ['f', 'p2', 0]]);
    const pred = table('p', ['id', 'A'], [['a', 0.9], ['b', 0.1], ['c', 0.8], ['d', 0.3], ['e', 0.4], ['f', 0.6]]);
    expect(scoreTables({ truth, pred }, { bootstrap: 20 }).bootstrap).toMatchObject({ unit: 'patient', nUnits: 4 });
    const noPatients = table('t', ['id', 'A'], truth.rows.map((r) => [r[0], r[2]]));
    expect(scoreTables({ truth: noPatients, pred }, { bootstrap: 20 }).bootstrap).toMatchObject({ unit: 'row', nUnits: 6 });
  });

  test('binary mode: no AUROC/AUPRC, threshold 0.5, F1/MCC CIs', () => {
    const truth = table('t', ['id', 'A'], [['a', 1], ['b', 0], ['c', 1], ['d', 0], ['e', 1]]);
    const pred = table('p', ['id', 'A'], [['a', 1], ['b', 0], ['c', 0], ['d', 1], ['e', 1]]);
    const r = scoreTables({ truth, pred }, { binary: true, bootstrap: 50 });
    expect(r.labels.A).toMatchObject({ auroc: null, auprc: null, threshold: 0.5, thresholdSource: 'binary' });
    expect(r.labels.A.f1).toBeCloseTo(4 / 6, 15);
    expect(r.labels.A.ci!.auroc).toBeUndefined();
    expect(r.labels.A.ci!.f1).toBeDefined();
    expect(r.curves).toBeUndefined();
  });
});

describe('bad input', () => {
  const truth = table('truth.csv', ['id', 'A', 'B'], [['a', 1, 0], ['b', 0, 1], ['c', 1, 1], ['d', 0, 0]]);
  const pred = table('pred.csv', ['id', 'A', 'B'], [['a', 0.9, 0.1], ['b', 0.2, 0.8], ['c', 0.7, 0.6], ['d', 0.1, 0.3]]);

  test('mismatched ids name both directions', () => {
    const p2 = table('pred.csv', pred.header, [...pred.rows.slice(0, 3), ['zz', '0.1', '0.3']]);
    const e = codeOf(() => scoreTables({ truth, pred: p2 }, { bootstrap: 0 }));
    expect(e.code).toBe('E_DATA');
    expect(e.message).toMatch(/mismatched ids: 1 id\(s\) of truth.csv missing from pred.csv \("d"\); 1 id\(s\) in pred.csv not in truth.csv \("zz"\)/);
  });

  test('duplicate ids, missing labels, unknown --labels', () => {
    const dup = table('pred.csv', pred.header, [...pred.rows, ['a', '0.5', '0.5']]);
    expect(codeOf(() => scoreTables({ truth, pred: dup }, { bootstrap: 0 })).message).toMatch(/appears twice/);
    const noB = table('pred.csv', ['id', 'A'], pred.rows.map((r) => r.slice(0, 2)));
    const e = codeOf(() => scoreTables({ truth, pred: noB }, { bootstrap: 0 }));
    expect(e.code).toBe('E_DATA');
    expect(e.message).toMatch(/missing label "B"/);
    expect(codeOf(() => scoreTables({ truth, pred }, { labels: ['A', 'Z'], bootstrap: 0 })).message).toMatch(/missing label "Z"/);
    expect(codeOf(() => scoreTables({ truth, pred }, { idCol: 'nope', bootstrap: 0 })).code).toBe('E_DATA');
    // --labels selects and orders
    expect(Object.keys(scoreTables({ truth, pred }, { labels: ['B'], bootstrap: 0 }).labels)).toEqual(['B']);
  });

  test('NaN or non-numeric predictions; non-0/1 binary reads; bad truth codes', () => {
    const nan = table('pred.csv', pred.header, [['a', 'NaN', '0.1'], ...pred.rows.slice(1)]);
    expect(codeOf(() => scoreTables({ truth, pred: nan }, { bootstrap: 0 })).message).toMatch(/pred.csv: row 1, label "A": .*NaN/);
    const empty = table('pred.csv', pred.header, [['a', '', '0.1'], ...pred.rows.slice(1)]);
    expect(codeOf(() => scoreTables({ truth, pred: empty }, { bootstrap: 0 })).code).toBe('E_DATA');
    const outside = table('pred.csv', pred.header, [['a', '1.2', '0'], ['b', '0', '1'], ['c', '1', '1'], ['d', '0', '0']]);
    const e = codeOf(() => scoreTables({ truth, pred: outside }, { binary: true, bootstrap: 0 }));
    expect(e.code).toBe('E_DATA');
    expect(e.message).toMatch(/outside \[0, 1\]/);
    const frac = table('pred.csv', pred.header, [['a', '0.5', '0'], ['b', '0', '1'], ['c', '1', '1'], ['d', '0', '0']]);
    expect(codeOf(() => scoreTables({ truth, pred: frac }, { binary: true, bootstrap: 0 })).message).toMatch(/not 0 or 1/);
    const badTruth = table('truth.csv', truth.header, [['a', '2', '0'], ...truth.rows.slice(1)]);
    expect(codeOf(() => scoreTables({ truth: badTruth, pred }, { bootstrap: 0 })).message).toMatch(/truth "2" is not 1, 0, -1/);
    // predictions are probabilities: logits, infinities and other values outside [0, 1] are refused, naming the row
    const logits = table('pred.csv', pred.header, [['a', '0.2', '0.1'], ['b', '-1', '2'], ['c', '0.7', '0.6'], ['d', '0.1', '0.3']]);
    expect(codeOf(() => scoreTables({ truth, pred: logits }, { bootstrap: 0 })).message).toMatch(/row 2, label "A": prediction "-1" is not a probability in \[0, 1\]/);
  });

  test('option errors are E_CONFIG', () => {
    expect(codeOf(() => scoreTables({ truth, pred, valTruth: truth }, {})).code).toBe('E_CONFIG');
    expect(codeOf(() => scoreTables({ truth, pred }, { bootstrap: -1 })).code).toBe('E_CONFIG');
    expect(codeOf(() => scoreTables({ truth, pred }, { seed: 1.5 })).code).toBe('E_CONFIG');
    expect(codeOf(() => scoreTables({ truth, pred }, { thresholdCriterion: 'auc' as never })).code).toBe('E_CONFIG');
    expect(codeOf(() => scoreTables({ truth, pred, valTruth: truth, valPred: pred }, { binary: true })).code).toBe('E_CONFIG');
  });

  test('one class in validation: fixed threshold and a warning', () => {
    const vt = table('vt', ['id', 'A', 'B'], [['x', 1, 0], ['y', 1, 1]]);
    const vp = table('vp', ['id', 'A', 'B'], [['x', 0.3, 0.2], ['y', 0.6, 0.7]]);
    const r = scoreTables({ truth, pred, valTruth: vt, valPred: vp }, { bootstrap: 0, threshold: 0.4 });
    expect(r.labels.A).toMatchObject({ threshold: 0.4, thresholdSource: 'fixed' });
    expect(r.labels.B.thresholdSource).toBe('validation');
    expect(r.warnings.join(' ')).toMatch(/A: one class in the validation split/);
  });
});

test('formatPredictionsCsv round-trips through the scorer', () => {
  const text = formatPredictionsCsv(['a', 'b,2'], ['A', 'No Finding'], Float32Array.of(0.25, 0.5, 0.75, 1));
  const t = parseCsvTable(text);
  expect(t.header).toEqual(['id', 'A', 'No Finding']);
  expect(t.rows).toEqual([['a', '0.25', '0.5'], ['b,2', '0.75', '1']]);
  expect(codeOf(() => formatPredictionsCsv(['a'], ['A', 'B'], new Float32Array(3))).code).toBe('E_SHAPE');
});
