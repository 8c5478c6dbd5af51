import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { brierScore, calibrationSummary, numpyPercentileSorted, reliabilityBins } from '../../../lib/eval/calibration';
import type { BinStrategy } from '../../../lib/eval/calibration';
import {
  applyCalibration,
  fitCalibration,
  fitPlatt,
  fitTemperature,
  logisticNll,
  probabilityLogit,
  readCalibration,
  writeCalibration,
  LOGIT_EPS,
  CALIBRATION_FORMAT,
} from '../../../lib/eval/calibrationMap';
import type { CalibrationFile } from '../../../lib/eval/calibrationMap';
import { auroc } from '../../../lib/eval/metrics';
import { expectCode } from '../../helpers/errors';

interface Curve {
  nBins: number;
  strategy: BinStrategy;
  edges: number[];
  fractionPositive: number[];
  meanPredicted: number[];
  count: number[];
  ece: number;
}
interface Ref {
  versions: Record<string, string>;
  bins: Array<{ name: string; y: number[]; p: number[]; brier: number; curves: Curve[] }>;
  fits: Array<{ name: string; y: number[]; z: number[]; platt: { a: number; b: number }; temperature: number; temperatureNll: number }>;
}
const ref = JSON.parse(fs.readFileSync(path.join(__dirname, '../../fixtures/eval/calibration-reference.json'), 'utf8')) as Ref;

const near = (a: number, b: number, tol: number): void => {
  if (!(Math.abs(a - b) <= tol)) throw new Error(`${a} vs ${b}: |diff| ${Math.abs(a - b)} > ${tol}`);
};

describe('reliability bins, ECE and Brier equal scikit-learn', () => {
  for (const c of ref.bins) {
    for (const cv of c.curves) {
      test(`${c.name}: calibration_curve ${cv.strategy}, ${cv.nBins} bins`, () => {
        const r = reliabilityBins(c.y, c.p, cv.nBins, cv.strategy);
        expect(r.edges).toHaveLength(cv.edges.length);
        r.edges.forEach((e, i) => expect(e).toBe(cv.edges[i]));
        expect(r.count).toEqual(cv.count);
        expect(r.fractionPositive).toHaveLength(cv.fractionPositive.length);
        r.fractionPositive.forEach((v, i) => near(v, cv.fractionPositive[i], 1e-12));
        r.meanPredicted.forEach((v, i) => near(v, cv.meanPredicted[i], 1e-12));
        near(r.ece, cv.ece, 1e-12);
      });
    }
    test(`${c.name}: brier_score_loss`, () => near(brierScore(c.y, c.p), c.brier, 1e-12));
  }

  test('NumPy percentile arithmetic on a worked example', () => {
    const s = [0.1, 0.2, 0.2, 0.7];
    expect(numpyPercentileSorted(s, 0)).toBe(0.1);
    expect(numpyPercentileSorted(s, 100)).toBe(0.7);
    // v = 3 · 0.5 = 1.5 → t = 0.5 ≥ 0.5: b − (b − a)(1 − t) with a = b = 0.2.
    expect(numpyPercentileSorted(s, 50)).toBe(0.2);
    near(numpyPercentileSorted(s, 90), 0.7 - 0.5 * (1 - 0.7), 1e-15);
  });

  test('masked truth rows (-1, NaN) are left out; out-of-range probabilities and bad options are errors', () => {
    const y = [1, 0, -1, NaN, 1, 0];
    const p = [0.9, 0.2, 0.5, 0.5, 0.6, 0.4];
    const a = reliabilityBins(y, p, 4, 'uniform');
    const b = reliabilityBins([1, 0, 1, 0], [0.9, 0.2, 0.6, 0.4], 4, 'uniform');
    expect(a).toEqual(b);
    near(brierScore(y, p), (0.01 + 0.04 + 0.16 + 0.16) / 4, 1e-15);
    expect(() => reliabilityBins([1, 0], [1.2, 0.1])).toThrow(expect.objectContaining({ code: 'E_DATA' }));
    expect(() => reliabilityBins([1, 0], [0.5, 0.1], 0)).toThrow(expect.objectContaining({ code: 'E_CONFIG' }));
    expect(() => reliabilityBins([2, 0], [0.5, 0.1])).toThrow(expect.objectContaining({ code: 'E_DATA' }));
    expect(() => reliabilityBins([-1], [0.5])).toThrow(expect.objectContaining({ code: 'E_DATA' }));
  });

  test('calibrationSummary: per label and macro, a label without 0/1 truth is skipped', () => {
    const c = ref.bins[0];
    const n = c.y.length;
    const truth = new Float64Array(n * 2);
    const probs = new Float64Array(n * 2);
    for (let i = 0; i < n; i++) {
      truth[2 * i] = c.y[i];
      probs[2 * i] = c.p[i];
      truth[2 * i + 1] = NaN;
      probs[2 * i + 1] = 0.5;
    }
    const s = calibrationSummary(['A', 'B'], truth, probs, 10);
    expect(s.skipped).toEqual(['B']);
    near(s.labels.A.brier, c.brier, 1e-12);
    near(s.labels.A.eceUniform, c.curves.find((x) => x.nBins === 10 && x.strategy === 'uniform')!.ece, 1e-12);
    near(s.labels.A.eceQuantile, c.curves.find((x) => x.nBins === 10 && x.strategy === 'quantile')!.ece, 1e-12);
    expect(s.macro.brier).toBe(s.labels.A.brier);
  });
});

describe('calibration maps', () => {
  test('the logit of a zero-shot probability, clamped at 2^-24', () => {
    near(probabilityLogit(1 / (1 + Math.exp(-0.37))), 0.37, 1e-12);
    expect(probabilityLogit(0)).toBe(probabilityLogit(LOGIT_EPS));
    expect(probabilityLogit(1)).toBe(-probabilityLogit(0));
    near(probabilityLogit(1), Math.log(2 ** 24 - 1), 1e-12);
  });

  for (const f of ref.fits) {
    test(`${f.name}: Platt equals sklearn LogisticRegression(penalty=None) within 1e-6`, () => {
      const r = fitPlatt(f.z, f.y);
      if ('reason' in r) throw new Error(r.reason);
      near(r.a, f.platt.a, 1e-6);
      near(r.b, f.platt.b, 1e-6);
      // Our optimum is at least as good as sklearn's.
      expect(r.nll).toBeLessThanOrEqual(logisticNll(f.z, f.y, f.platt.a, f.platt.b) + 1e-15);
    });

    test(`${f.name}: temperature equals a brute-force minimisation (and scipy's)`, () => {
      const r = fitTemperature(f.z, f.y);
      if ('reason' in r) throw new Error(r.reason);
      // Brute force: the NLL on a grid of T, then two finer grids around the best point.
      let best = NaN;
      let lo = 0.05;
      let hi = 20;
      for (let round = 0; round < 7; round++) {
        let bestNll = Infinity;
        const steps = 400;
        for (let k = 0; k <= steps; k++) {
          const T = lo + ((hi - lo) * k) / steps;
          const v = logisticNll(f.z, f.y, 1 / T, 0);
          if (v < bestNll) {
            bestNll = v;
            best = T;
          }
        }
        const w = (hi - lo) / steps;
        lo = best - 2 * w;
        hi = best + 2 * w;
      }
      near(r.temperature, best, 1e-7);
      near(r.temperature, f.temperature, 1e-6);
      expect(r.nll).toBeLessThanOrEqual(logisticNll(f.z, f.y, 1 / best, 0) + 1e-15);
    });
  }

  test('no fit where maximum likelihood has none: one class, separated, constant, anti-correlated', () => {
    expect(fitPlatt([1, 2, 3], [1, 1, 1])).toEqual({ reason: expect.stringMatching(/one class/) });
    expect(fitPlatt([0, 1, 2, 3], [0, 0, 1, 1])).toEqual({ reason: expect.stringMatching(/separate/) });
    expect(fitPlatt([0, 1, 1, 2], [0, 0, 1, 1])).toEqual({ reason: expect.stringMatching(/separate/) });
    expect(fitPlatt([1, 1, 1, 1], [0, 1, 0, 1])).toEqual({ reason: expect.stringMatching(/all equal/) });
    expect(fitTemperature([-1, -0.5, 0.5, 1], [0, 0, 1, 1])).toEqual({ reason: expect.stringMatching(/signs/) });
    expect(fitTemperature([-1, 0.5, -0.5, 1, 2], [1, 0, 0, 1, 0])).toEqual({ reason: expect.stringMatching(/rank negatives above/) });
    // Overlapping classes not split by sign: a fit exists.
    expect(fitTemperature([-1, 0.5, -0.5, 1, 2], [0, 0, 1, 1, 1])).toHaveProperty('temperature');
  });

  test('fitCalibration + applyCalibration: maps are monotone (AUROC unchanged), skipped labels pass through', () => {
    const f = ref.fits[2];
    const n = f.z.length;
    const truth = new Float64Array(n * 2);
    const probs = new Float32Array(n * 2);
    for (let i = 0; i < n; i++) {
      truth[2 * i] = f.y[i];
      probs[2 * i] = 1 / (1 + Math.exp(-f.z[i]));
      truth[2 * i + 1] = i % 2;
      probs[2 * i + 1] = i % 2 ? 0.7 : 0.3; // separated: no map
    }
    for (const method of ['temperature', 'platt'] as const) {
      const fit = fitCalibration(['A', 'B'], truth, probs, method);
      expect(Object.keys(fit.labels)).toEqual(['A']);
      expect(fit.skipped).toEqual([{ label: 'B', reason: expect.stringMatching(/separate/) }]);
      const m = fit.labels.A;
      expect(m.nllAfter).toBeLessThan(m.nllBefore);
      const cal = applyCalibration(fit.labels, ['A', 'B'], probs);
      const ya = Array.from({ length: n }, (_, i) => truth[2 * i]);
      expect(auroc(ya, Array.from({ length: n }, (_, i) => cal[2 * i]))).toBe(auroc(ya, Array.from({ length: n }, (_, i) => probs[2 * i])));
      for (let i = 0; i < n; i++) expect(cal[2 * i + 1]).toBe(probs[2 * i + 1]);
      if (m.method === 'temperature') near(cal[0], 1 / (1 + Math.exp(-probabilityLogit(probs[0]) / m.temperature)), 1e-15);
      else near(cal[0], 1 / (1 + Math.exp(-(m.a * probabilityLogit(probs[0]) + m.b))), 1e-15);
    }
    expect(() => fitCalibration(['A'], [1], [0.5], 'isotonic' as never)).toThrow(expect.objectContaining({ code: 'E_CONFIG' }));
  });

  test('calibration.json round trip; bad files are E_IO / E_PARSE', () => {
    const d = fs.mkdtempSync(path.join(os.tmpdir(), 'cxr-cal-'));
    const file = path.join(d, 'calibration.json');
    const c: CalibrationFile = {
      format: CALIBRATION_FORMAT,
      version: 1,
      method: 'platt',
      split: 'validate',
      checkpointHashes: ['x'],
      prompts: { name: 'p', hash: 'h' },
      zeroShotTemperature: 1,
      logit: 'z',
      labels: { A: { method: 'platt', a: 2, b: -0.5, n: 10, nPos: 4, nllBefore: 0.7, nllAfter: 0.6 } },
    };
    writeCalibration(file, c);
    expect(readCalibration(file)).toEqual(c);
    fs.writeFileSync(file, JSON.stringify({ ...c, labels: { A: { method: 'platt', a: -1, b: 0 } } }));
    expect(expectCode(() => readCalibration(file), 'E_PARSE').message).toMatch(/"A"/);
    fs.writeFileSync(file, '{');
    expectCode(() => readCalibration(file), 'E_PARSE');
    fs.writeFileSync(file, JSON.stringify({ format: 'other' }));
    expect(expectCode(() => readCalibration(file), 'E_PARSE').message).toMatch(/not a cxr-train calibration/);
    expectCode(() => readCalibration(path.join(d, 'none.json')), 'E_IO');
    fs.rmSync(d, { recursive: true, force: true });
  });
});
