import {
  auroc,
  averagePrecision,
  binaryMetrics,
  confusionAt,
  cutIndex,
  macroMean,
  metricsAt,
  prCurve,
  rocCurve,
  selectThreshold,
  sortLabel,
  summarizeSorted,
} from '../../../lib/eval/metrics';
import { isCxrError } from '../../../lib/errors';
import { randomCase } from './helpers';

// ---- Independent brute-force definitions (no sorting tricks) ----

function bruteAuroc(y: number[], s: number[]): number {
  let sum = 0;
  let pairs = 0;
  for (let i = 0; i < y.length; i++) {
    if (y[i] !== 1) continue;
    for (let j = 0; j < y.length; j++) {
      if (y[j] !== 0) continue;
      pairs++;
      if (s[i] > s[j]) sum += 1;
      else if (s[i] === s[j]) sum += 0.5;
    }
  }
  return sum / pairs;
}

function bruteCounts(y: number[], s: number[], t: number): { tp: number; fp: number; tn: number; fn: number } {
  let tp = 0, fp = 0, tn = 0, fn = 0;
  for (let i = 0; i < y.length; i++) {
    if (y[i] !== 0 && y[i] !== 1) continue;
    const p = s[i] >= t;
    if (y[i] === 1 && p) tp++;
    else if (y[i] === 1) fn++;
    else if (p) fp++;
    else tn++;
  }
  return { tp, fp, tn, fn };
}

/** Trapezoid over the ROC points at every distinct threshold plus +Infinity. */
function bruteTrapezoid(y: number[], s: number[]): number {
  const ts = [Infinity, ...Array.from(new Set(s)).sort((a, b) => b - a)];
  const pts = ts.map((t) => {
    const c = bruteCounts(y, s, t);
    return [c.fp / (c.fp + c.tn), c.tp / (c.tp + c.fn)];
  });
  let a = 0;
  for (let k = 1; k < pts.length; k++) a += ((pts[k][0] - pts[k - 1][0]) * (pts[k][1] + pts[k - 1][1])) / 2;
  return a;
}

/** scikit-learn's average_precision_score: sum over thresholds of (R_n - R_{n-1}) * P_n. */
function bruteAp(y: number[], s: number[]): number {
  const ts = Array.from(new Set(s)).sort((a, b) => b - a);
  let prevR = 0;
  let ap = 0;
  for (const t of ts) {
    const c = bruteCounts(y, s, t);
    const r = c.tp / (c.tp + c.fn);
    const p = c.tp + c.fp > 0 ? c.tp / (c.tp + c.fp) : 1;
    ap += (r - prevR) * p;
    prevR = r;
  }
  return ap;
}

function bruteMcc(c: { tp: number; fp: number; tn: number; fn: number }): number {
  const d = Math.sqrt((c.tp + c.fp) * (c.tp + c.fn) * (c.tn + c.fp) * (c.tn + c.fn));
  return d === 0 ? 0 : (c.tp * c.tn - c.fp * c.fn) / d;
}

describe('hand-worked cases', () => {
  test('AUROC and AP of the scikit-learn documentation example', () => {
    const y = [0, 0, 1, 1];
    const s = [0.1, 0.4, 0.35, 0.8];
    expect(auroc(y, s)).toBeCloseTo(0.75, 15);
    // P@0.8 = 1 (R 0.5), P@0.4 = 1/2, P@0.35 = 2/3 (R 1) -> 0.5*1 + 0.5*(2/3)
    expect(averagePrecision(y, s)).toBeCloseTo(0.5 + 1 / 3, 15);
  });

  test('ties count one half', () => {
    // pos 0.9 vs negs {0.9, 0.1}: 0.5 + 1; pos 0.1 vs negs: 0 + 0.5 -> 2 / 4
    expect(auroc([1, 0, 1, 0], [0.9, 0.9, 0.1, 0.1])).toBe(0.5);
    // a perfect ranking with one tie across classes
    expect(auroc([1, 1, 0, 0], [0.9, 0.5, 0.5, 0.1])).toBe(0.875);
  });

  test('all-equal scores', () => {
    const y = [0, 1, 0, 1, 1];
    const s = [0.3, 0.3, 0.3, 0.3, 0.3];
    expect(auroc(y, s)).toBe(0.5);
    expect(averagePrecision(y, s)).toBeCloseTo(0.6, 15); // one threshold: precision = prevalence, recall 1
    const roc = rocCurve(y, s);
    expect(Array.from(roc.fpr)).toEqual([0, 1]);
    expect(Array.from(roc.tpr)).toEqual([0, 1]);
    expect(selectThreshold(y, s)?.threshold).toBe(0.3);
  });

  test('perfect and inverted rankings', () => {
    expect(auroc([0, 0, 1, 1], [1, 2, 3, 4])).toBe(1);
    expect(auroc([1, 1, 0, 0], [1, 2, 3, 4])).toBe(0);
    expect(averagePrecision([0, 0, 1, 1], [1, 2, 3, 4])).toBe(1);
  });

  test('threshold metrics at score >= threshold', () => {
    const y = [1, 1, 1, 1, 0, 0, 0, 0];
    const s = [0.9, 0.8, 0.7, 0.2, 0.6, 0.3, 0.2, 0.1];
    // t = 0.6: tp 3 (0.9,0.8,0.7), fn 1, fp 1 (0.6 counts: >=), tn 3
    const m = metricsAt(y, s, 0.6);
    expect([m.tp, m.fn, m.fp, m.tn]).toEqual([3, 1, 1, 3]);
    expect(m.mcc).toBeCloseTo(0.5, 15); // (9 - 1) / sqrt(4^4)
    expect(m.f1).toBeCloseTo(0.75, 15);
    expect(m.sensitivity).toBe(0.75);
    expect(m.specificity).toBe(0.75);
    expect(m.ppv).toBe(0.75);
    expect(m.npv).toBe(0.75);
    expect(m.accuracy).toBe(0.75);
    expect(m.youden).toBeCloseTo(0.5, 15);
  });

  test('zero denominators: F1/MCC 0 (scikit-learn), ratios NaN', () => {
    const m = binaryMetrics({ tp: 0, fp: 0, tn: 5, fn: 3 });
    expect(m.f1).toBe(0);
    expect(m.mcc).toBe(0);
    expect(m.ppv).toBeNaN();
    expect(m.sensitivity).toBe(0);
  });

  test('one class: AUROC NaN, no threshold', () => {
    expect(auroc([1, 1, 1], [0.1, 0.2, 0.3])).toBeNaN();
    expect(averagePrecision([0, 0], [0.1, 0.2])).toBeNaN();
    expect(selectThreshold([0, 0, 0], [0.1, 0.2, 0.3])).toBeNull();
  });
});

describe('masking and bad input', () => {
  test('uncertain (-1) and missing (NaN) truth are left out per label', () => {
    const y = [0, -1, 1, NaN, 1, 0];
    const s = [0.1, 0.99, 0.8, NaN, 0.35, 0.4]; // NaN score on a masked row is fine
    expect(auroc(y, s)).toBe(auroc([0, 1, 1, 0], [0.1, 0.8, 0.35, 0.4]));
    const sl = sortLabel(y, s);
    expect(sl.nMasked).toBe(2);
    expect(sl.nPos).toBe(2);
    expect(sl.nNeg).toBe(2);
    expect(confusionAt(y, s, 0.5)).toEqual({ tp: 1, fn: 1, fp: 0, tn: 2 });
  });

  test('NaN score on a kept row, unknown truth code, length mismatch', () => {
    const code = (f: () => unknown): string | undefined => {
      try {
        f();
      } catch (e) {
        return isCxrError(e) ? e.code : 'other';
      }
      return undefined;
    };
    expect(code(() => auroc([0, 1], [0.2, NaN]))).toBe('E_DATA');
    expect(code(() => auroc([0, 2], [0.2, 0.3]))).toBe('E_DATA');
    expect(code(() => auroc([0, 1, 1], [0.2, 0.3]))).toBe('E_SHAPE');
    expect(code(() => selectThreshold([0, 1], [0, 1], 'auc' as never))).toBe('E_CONFIG');
  });
});

describe('against brute-force definitions on random data with ties', () => {
  const seeds = [1, 2, 3, 4, 5, 6, 7, 8];
  test.each(seeds)('seed %i: AUROC = Mann-Whitney pairs = trapezoid over the full ROC', (seed) => {
    const { y, s } = randomCase(seed, 60 + seed * 7, 0.1 + seed * 0.08, seed % 2 ? 1 : 2);
    const a = auroc(y, s);
    expect(a).toBeCloseTo(bruteAuroc(y, s), 12);
    expect(a).toBeCloseTo(bruteTrapezoid(y, s), 12);
  });

  test.each(seeds)('seed %i: AP = scikit-learn definition', (seed) => {
    const { y, s } = randomCase(seed + 100, 50 + seed * 11, 0.15 + seed * 0.07, seed % 3 ? 1 : 2);
    expect(averagePrecision(y, s)).toBeCloseTo(bruteAp(y, s), 12);
  });

  test.each(seeds)('seed %i: ROC/PR curves and confusion counts match direct counting', (seed) => {
    const { y, s } = randomCase(seed + 200, 40, 0.4, 1);
    const roc = rocCurve(y, s);
    const pr = prCurve(y, s);
    for (let k = 0; k < roc.thresholds.length; k++) {
      const c = bruteCounts(y, s, roc.thresholds[k]);
      expect(roc.tpr[k]).toBeCloseTo(c.tp / (c.tp + c.fn), 14);
      expect(roc.fpr[k]).toBeCloseTo(c.fp / (c.fp + c.tn), 14);
    }
    for (let k = 0; k < pr.thresholds.length; k++) {
      const c = bruteCounts(y, s, pr.thresholds[k]);
      expect(pr.recall[k]).toBeCloseTo(c.tp / (c.tp + c.fn), 14);
      expect(pr.precision[k]).toBeCloseTo(c.tp / (c.tp + c.fp), 14);
    }
    const sl = sortLabel(y, s);
    for (const t of [-1, 0, 0.15, 0.3, 0.5, 0.55, 0.7, 1, 2]) {
      expect(summarizeSorted(sl, undefined, cutIndex(sl, t)).confusion).toEqual(bruteCounts(y, s, t));
      expect(confusionAt(y, s, t)).toEqual(bruteCounts(y, s, t));
    }
  });

  test.each(seeds)('seed %i: threshold selection = best of all distinct scores (MCC, F1, Youden)', (seed) => {
    const { y, s } = randomCase(seed + 300, 80, 0.3, 2);
    const cands = Array.from(new Set(s)).sort((a, b) => b - a);
    const crits = {
      mcc: bruteMcc,
      f1: (c: { tp: number; fp: number; fn: number }) => (2 * c.tp) / (2 * c.tp + c.fp + c.fn),
      youden: (c: { tp: number; fp: number; tn: number; fn: number }) => c.tp / (c.tp + c.fn) + c.tn / (c.tn + c.fp) - 1,
    };
    for (const [name, fn] of Object.entries(crits)) {
      let best = -Infinity;
      let bestT = NaN;
      for (const t of cands) {
        const v = fn(bruteCounts(y, s, t));
        if (v > best + 1e-12) {
          best = v;
          bestT = t;
        }
      }
      const got = selectThreshold(y, s, name as 'mcc')!;
      expect(got.value).toBeCloseTo(best, 12);
      expect(got.threshold).toBe(bestT);
    }
  });
});

describe('macroMean', () => {
  test('skips and names undefined labels', () => {
    const m = macroMean({ A: 0.8, B: NaN, C: 0.6, D: null });
    expect(m.mean).toBeCloseTo(0.7, 15);
    expect(m.included).toEqual(['A', 'C']);
    expect(m.skipped).toEqual(['B', 'D']);
    expect(macroMean({ A: 0.8, C: 0.6 }, ['C']).mean).toBe(0.6);
    expect(macroMean({}).mean).toBeNaN();
  });
});
