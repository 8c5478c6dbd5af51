import {
  bootstrapMatrix,
  bootstrapMetric,
  column,
  counterRandomInt,
  pairedBootstrap,
  pairedPValue,
  percentileInterval,
  quantileSorted,
  Resampler,
} from '../../../lib/eval/bootstrap';
import { auroc, averagePrecision, confusionAt, cutIndex, sortLabel, summarizeSorted } from '../../../lib/eval/metrics';
import { randomCase } from './helpers';

/** Materialises a resample: each row repeated `w[i]` times. */
function expand(y: number[], s: number[], w: Float64Array): { y: number[]; s: number[] } {
  const ey: number[] = [];
  const es: number[] = [];
  for (let i = 0; i < y.length; i++) for (let k = 0; k < w[i]; k++) {
    ey.push(y[i]);
    es.push(s[i]);
  }
  return { y: ey, s: es };
}

describe('counter-based generator and resampler', () => {
  test('depends only on (seed, stream, counter) and is roughly uniform', () => {
    expect(counterRandomInt(7, 3, 11, 1000)).toBe(counterRandomInt(7, 3, 11, 1000));
    const bins = new Array(10).fill(0);
    const N = 50000;
    for (let j = 0; j < N; j++) bins[counterRandomInt(42, j % 97, Math.floor(j / 97), 10)]++;
    const chi2 = bins.reduce((a, b) => a + (b - N / 10) ** 2 / (N / 10), 0);
    expect(chi2).toBeLessThan(30); // 9 dof: p < 1e-3 above 27.9
    // neighbouring streams are not shifted copies of each other
    const a = Array.from({ length: 50 }, (_, j) => counterRandomInt(1, 0, j, 1000));
    const b = Array.from({ length: 50 }, (_, j) => counterRandomInt(1, 1, j, 1000));
    expect(a.filter((x, i) => x === b[i]).length).toBeLessThan(3);
    expect(a.slice(1).filter((x, i) => x === b[i]).length).toBeLessThan(3);
  });

  test('row weights: non-negative integers summing to n; seed changes the draw', () => {
    const rs = new Resampler(200, { seed: 5 });
    const w1 = rs.fill(0, new Float64Array(200));
    expect(w1.reduce((a, b) => a + b, 0)).toBe(200);
    expect(Array.from(w1).every((x) => Number.isInteger(x) && x >= 0)).toBe(true);
    const again = new Resampler(200, { seed: 5 }).fill(0, new Float64Array(200));
    expect(Array.from(again)).toEqual(Array.from(w1));
    const other = new Resampler(200, { seed: 6 }).fill(0, new Float64Array(200));
    expect(Array.from(other)).not.toEqual(Array.from(w1));
    const next = rs.fill(1, new Float64Array(200));
    expect(Array.from(next)).not.toEqual(Array.from(w1));
  });

  test('cluster bootstrap draws patients: equal weights within a patient, nUnits draws', () => {
    const patients = Array.from({ length: 90 }, (_, i) => `p${Math.floor(i / 3)}`); // 30 patients x 3 studies
    const rs = new Resampler(90, { seed: 1, clusters: patients });
    expect(rs.nUnits).toBe(30);
    expect(rs.unit).toBe('cluster');
    for (let r = 0; r < 20; r++) {
      const w = rs.fill(r, new Float64Array(90));
      for (let i = 0; i < 90; i += 3) expect(w[i + 1]).toBe(w[i]), expect(w[i + 2]).toBe(w[i]);
      expect(w.reduce((a, b) => a + b, 0)).toBe(90);
    }
  });
});

describe('weighted metrics equal metrics on the materialised resample', () => {
  test.each([1, 2, 3])('seed %i', (seed) => {
    const { y, s } = randomCase(seed, 120, 0.3, 1);
    y[5] = -1; // masked rows must stay masked with weights
    y[17] = NaN;
    const sl = sortLabel(y, s);
    const rs = new Resampler(y.length, { seed });
    const w = new Float64Array(y.length);
    for (let r = 0; r < 10; r++) {
      rs.fill(r, w);
      const e = expand(y, s, w);
      const t = 0.4;
      const sum = summarizeSorted(sl, w, cutIndex(sl, t));
      expect(sum.auroc).toBeCloseTo(auroc(e.y, e.s), 12);
      expect(sum.auprc).toBeCloseTo(averagePrecision(e.y, e.s), 12);
      expect(sum.confusion).toEqual(confusionAt(e.y, e.s, t));
    }
  });
});

describe('intervals and p-values', () => {
  test('quantiles interpolate linearly (NumPy default)', () => {
    expect(quantileSorted([1, 2, 3, 4], 0.25)).toBe(1.75);
    expect(quantileSorted([1, 2, 3, 4], 0.975)).toBeCloseTo(3.925, 12);
    expect(quantileSorted([5], 0.3)).toBe(5);
    const iv = percentileInterval([NaN, ...Array.from({ length: 101 }, (_, i) => 100 - i)]);
    expect(iv).toEqual({ lo: 2.5, hi: 97.5, n: 101 });
  });

  test('p-value of resampled differences', () => {
    expect(pairedPValue([0, 0, 0])).toBe(1);
    expect(pairedPValue(new Array(999).fill(1))).toBeCloseTo(2 / 1000, 15);
    expect(pairedPValue([-1, 1, -1, 1])).toBe(1);
    expect(pairedPValue([NaN])).toBeNaN();
  });

  test('bootstrap of AUROC: deterministic, brackets the estimate, matches explicit resamples', () => {
    const { y, s } = randomCase(9, 300, 0.3, 2);
    const a = bootstrapMetric(y, s, 'auroc', { seed: 3, resamples: 200 });
    const b = bootstrapMetric(y, s, 'auroc', { seed: 3, resamples: 200 });
    expect(a).toEqual(b);
    expect(a.estimate).toBeCloseTo(auroc(y, s), 15);
    expect(a.lo).toBeLessThan(a.estimate);
    expect(a.hi).toBeGreaterThan(a.estimate);
    expect(a.n).toBe(200);
    // independent recomputation of the same resamples by materialising them
    const rs = new Resampler(y.length, { seed: 3 });
    const vals: number[] = [];
    for (let r = 0; r < 200; r++) {
      const e = expand(y, s, rs.fill(r, new Float64Array(y.length)));
      vals.push(auroc(e.y, e.s));
    }
    const iv = percentileInterval(vals);
    expect(a.lo).toBeCloseTo(iv.lo, 12);
    expect(a.hi).toBeCloseTo(iv.hi, 12);
  });

  test('paired bootstrap: identical sets give 0 and p = 1; a much better set gives a small p', () => {
    const { y, s } = randomCase(11, 300, 0.4, 2);
    const same = pairedBootstrap(y, s, s, 'auroc', { resamples: 200 });
    expect(same).toMatchObject({ delta: 0, lo: 0, hi: 0, p: 1 });
    const noise = randomCase(12, 300, 0.5, 2).s;
    const d = pairedBootstrap(y, s, noise, 'auroc', { resamples: 500, seed: 2 });
    expect(d.delta).toBeCloseTo(auroc(y, s) - auroc(y, noise), 12);
    expect(d.lo).toBeGreaterThan(0);
    expect(d.p).toBeLessThan(0.01);
    const f = pairedBootstrap(y, s, noise, 'mcc', { resamples: 200, thresholdA: 0.5, thresholdB: 0.5 });
    expect(f.hi).toBeGreaterThanOrEqual(f.lo);
  });

  test('bootstrapMatrix runs the statistic once per resample with reused weights', () => {
    let calls = 0;
    const m = bootstrapMatrix(10, 2, (w, out, r) => {
      calls++;
      out[0] = w.reduce((a, b) => a + b, 0);
      out[1] = r;
    }, { resamples: 7 });
    expect(calls).toBe(7);
    expect(Array.from(column(m, 0))).toEqual(new Array(7).fill(10));
    expect(Array.from(column(m, 1))).toEqual([0, 1, 2, 3, 4, 5, 6]);
  });
});
