/**
 * The linear probe against scikit-learn (test/fixtures/eval/probe_sklearn.json, made by
 * scripts/probe-fixture.py: LogisticRegression(penalty='l2', solver='lbfgs', tol=1e-12) on
 * L2-normalised, StandardScaler-ed float32 embeddings), and the patient-level subsets.
 */
import fs from 'node:fs';
import path from 'node:path';
import { normalizeRows } from '../../../lib/eval/zeroShot';
import { decisionValues, fitLogistic, rawLinear, standardization, type FeatureMatrix } from '../../../lib/eval/probe/logistic';
import { runProbe, selectAndFit, validateCGrid, type ProbeFit, type ProbeSplit } from '../../../lib/eval/probe/protocol';
import { patientSubsets } from '../../../lib/eval/probe/subsets';
import { auroc } from '../../../lib/eval/metrics';
import { expectCode } from '../../helpers/errors';

interface Fixture {
  dim: number;
  cGrid: number[];
  scaler: { mean: number[]; scale: number[] };
  splits: Record<'train' | 'validate' | 'test', { x: number[][]; y: number[][] }>;
  labels: Array<{
    name: string;
    selectedC: number;
    fits: Array<{ C: number; coef: number[]; intercept: number; coefNewton: number[]; interceptNewton: number; valLogLoss: number; valLogLossNewton: number; valAuroc: number; testAuroc: number }>;
  }>;
}

const fx: Fixture = JSON.parse(fs.readFileSync(path.join(__dirname, '../../fixtures/eval/probe_sklearn.json'), 'utf8'));
const D = fx.dim;

function features(split: 'train' | 'validate' | 'test'): FeatureMatrix {
  const rows = fx.splits[split].x;
  const raw = Float32Array.from(rows.flat());
  return { data: normalizeRows(raw, rows.length, D), n: rows.length, d: D };
}
const X = { train: features('train'), validate: features('validate'), test: features('test') };
const all = (n: number): Int32Array => Int32Array.from({ length: n }, (_, i) => i);
const maxAbsDiff = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
};

describe('logistic regression vs sklearn', () => {
  test('standardisation equals StandardScaler (mean, population std)', () => {
    const st = standardization(X.train);
    expect(maxAbsDiff(st.center, fx.scaler.mean)).toBeLessThan(1e-12);
    expect(maxAbsDiff(st.scale, fx.scaler.scale)).toBeLessThan(1e-12);
  });

  const st = standardization(X.train);
  for (const [j, lab] of fx.labels.entries()) {
    for (const ref of lab.fits) {
      test(`${lab.name}, C ${ref.C}: coefficients within 1e-6 of sklearn newton-cholesky, 2e-5 of sklearn lbfgs; test AUROC within 1e-9`, () => {
        const y = Float64Array.from(fx.splits.train.y[j]);
        const m = fitLogistic(X.train, y, { C: ref.C, standardize: st, tol: 1e-10 });
        expect(m.converged).toBe(true);
        const ours = [...m.coef, m.intercept];
        expect(maxAbsDiff(ours, [...ref.coefNewton, ref.interceptNewton])).toBeLessThan(1e-6);
        expect(maxAbsDiff(ours, [...ref.coef, ref.intercept])).toBeLessThan(2e-5);
        const { w, b } = rawLinear(m.coef, m.intercept, st);
        const zt = decisionValues(X.test, w, b);
        expect(Math.abs(auroc(fx.splits.test.y[j], zt) - ref.testAuroc)).toBeLessThan(1e-9);
        const zv = decisionValues(X.validate, w, b);
        expect(Math.abs(auroc(fx.splits.validate.y[j], zv) - ref.valAuroc)).toBeLessThan(1e-9);
      });
    }
  }

  test('the default tolerance (1e-6) already gives every test AUROC within 1e-3 (in fact 1e-4)', () => {
    for (const [j, lab] of fx.labels.entries()) {
      for (const ref of lab.fits) {
        const m = fitLogistic(X.train, Float64Array.from(fx.splits.train.y[j]), { C: ref.C, standardize: st });
        const { w, b } = rawLinear(m.coef, m.intercept, st);
        expect(Math.abs(auroc(fx.splits.test.y[j], decisionValues(X.test, w, b)) - ref.testAuroc)).toBeLessThan(1e-4);
      }
    }
  });

  test('C selection on validation log-loss picks sklearn\'s C; the warm-started grid has sklearn\'s validation log-loss', () => {
    for (const [j, lab] of fx.labels.entries()) {
      const y = Float64Array.from(fx.splits.train.y[j]);
      const yv = Float64Array.from(fx.splits.validate.y[j]);
      const r = selectAndFit(X.train, y, all(X.train.n), { X: X.validate, rows: all(X.validate.n), y: yv }, fx.cGrid, { tol: 1e-10 });
      expect(r.C).toBe(lab.selectedC);
      r.grid.forEach((g, k) => {
        expect(g.C).toBe(lab.fits[k].C);
        // sklearn's own lbfgs stops (on its ftol) up to 1.4e-5 from the optimum, which moves its log-loss
        // by up to 2e-6; its Newton solution is the optimum.
        expect(Math.abs(g.valLogLoss - lab.fits[k].valLogLossNewton)).toBeLessThan(1e-9);
        expect(Math.abs(g.valLogLoss - lab.fits[k].valLogLoss)).toBeLessThan(2e-6);
        expect(Math.abs(g.valAuroc! - lab.fits[k].valAuroc)).toBeLessThan(1e-9);
      });
    }
  });

  test('runProbe at 100 % reproduces sklearn\'s test AUROC of the selected C', () => {
    const split = (s: 'train' | 'validate' | 'test'): ProbeSplit => {
      const n = X[s].n;
      const truth = new Float64Array(n * 2);
      for (let i = 0; i < n; i++) for (let j = 0; j < 2; j++) truth[i * 2 + j] = fx.splits[s].y[j][i];
      return { X: X[s], truth, patients: Array.from({ length: n }, (_, i) => `${s}-p${Math.floor(i / 2)}`) };
    };
    const r = runProbe({ labels: fx.labels.map((l) => l.name), train: split('train'), validate: split('validate'), test: split('test') }, { fractions: [1], cGrid: fx.cGrid, bootstrap: 50, tol: 1e-10 });
    for (const [j, lab] of fx.labels.entries()) {
      const f = r.labels[j].fractions[0] as ProbeFit;
      expect(f.C).toBe(lab.selectedC);
      const ref = lab.fits.find((x) => x.C === lab.selectedC)!;
      expect(Math.abs(f.auroc - ref.testAuroc)).toBeLessThan(1e-9);
      expect(f.ci!.lo!).toBeLessThanOrEqual(f.auroc);
      expect(f.ci!.hi!).toBeGreaterThanOrEqual(f.auroc);
    }
  });

  test('bad input: one class, bad C, bad targets', () => {
    const y0 = new Float64Array(X.train.n);
    expectCode(() => fitLogistic(X.train, y0, { C: 1 }), 'E_DATA');
    const y = Float64Array.from(fx.splits.train.y[0]);
    expectCode(() => fitLogistic(X.train, y, { C: 0 }), 'E_CONFIG');
    expectCode(() => fitLogistic(X.train, y.map((v) => v * 2), { C: 1 }), 'E_DATA');
    expectCode(() => validateCGrid([1, -1]), 'E_CONFIG');
    expectCode(() => validateCGrid([]), 'E_CONFIG');
  });
});

describe('patient-level subsets', () => {
  // 40 patients with 1–3 images each, in an interleaved order.
  const patients: string[] = [];
  for (let k = 0; k < 3; k++) for (let p = 0; p < 40; p++) if (p % 3 >= k) patients.push(`p${p}`);

  test('whole patients, nested, deterministic, at least one patient, independent of image order', () => {
    const [a, b, c] = patientSubsets(patients, [0.01, 0.1, 1], 7);
    expect(a.patients).toBe(1);
    expect(b.patients).toBe(4);
    expect(c.patients).toBe(40);
    expect(c.rows.length).toBe(patients.length);
    for (const s of [a, b]) {
      const chosen = new Set(Array.from(s.rows, (i) => patients[i]));
      expect(chosen.size).toBe(s.patients);
      // Every image of a chosen patient is in, none of the others.
      patients.forEach((p, i) => expect(s.rows.includes(i)).toBe(chosen.has(p)));
    }
    const inB = new Set(Array.from(b.rows));
    for (const i of a.rows) expect(inB.has(i)).toBe(true);
    const again = patientSubsets(patients, [0.01, 0.1, 1], 7);
    expect(Array.from(again[1].rows)).toEqual(Array.from(b.rows));
    const other = patientSubsets(patients, [0.1], 8);
    expect(Array.from(other[0].rows)).not.toEqual(Array.from(b.rows));
    const reversed = patients.slice().reverse();
    const rb = patientSubsets(reversed, [0.1], 7)[0];
    expect(new Set(Array.from(rb.rows, (i) => reversed[i]))).toEqual(new Set(Array.from(b.rows, (i) => patients[i])));
  });

  test('bad fractions are E_CONFIG', () => {
    for (const f of [[0], [1.5], [-0.1], [NaN], [0.1, 0.1], []]) expectCode(() => patientSubsets(patients, f, 0), 'E_CONFIG');
    expectCode(() => patientSubsets(patients, [0.1], -1), 'E_CONFIG');
  });

  test('a fraction without both classes of a label is reported, not fitted; a one-class test split skips the label', () => {
    const n = 60;
    const d = 3;
    const mk = (tag: string, posEvery: number, testOnly = false): ProbeSplit => {
      const data = new Float32Array(n * d);
      const truth = new Float64Array(n * 2);
      for (let i = 0; i < n; i++) {
        const pos = i % posEvery === 0 ? 1 : 0;
        data.set([Math.cos(i) + pos, Math.sin(i), 0.5 + pos], i * d);
        truth[i * 2] = pos;
        truth[i * 2 + 1] = testOnly ? 0 : i % 2;
      }
      return { X: { data: normalizeRows(data, n, d), n, d }, truth, patients: Array.from({ length: n }, (_, i) => `${tag}${i}`) };
    };
    const r = runProbe({ labels: ['Rare', 'Flat'], train: mk('t', 20), validate: mk('v', 5), test: mk('x', 5, true) }, { fractions: [0.05, 1], bootstrap: 0 });
    expect(r.skipped).toEqual([{ label: 'Flat', reason: expect.stringMatching(/test split has no positive/) }]);
    const rare = r.labels.find((l) => l.label === 'Rare')!;
    const small = rare.fractions[0];
    // 5 % of 60 patients = 3 patients; positives are every 20th image: possibly none drawn.
    if ('skipped' in small) expect(r.warnings.some((w) => /Rare at 5% not fitted/.test(w))).toBe(true);
    expect('skipped' in rare.fractions[1]).toBe(false);
    expect(r.warnings).toContain('probe: Flat skipped: the test split has no positive (60 image(s) with a 0/1 truth)');
  });
});
