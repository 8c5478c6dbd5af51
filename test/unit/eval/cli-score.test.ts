import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { runCli as run } from '../../helpers/cli';


const FIX = path.resolve(__dirname, '../../fixtures/eval');
const fx = (f: string): string => path.join(FIX, f);


describe('cxr-train score', () => {
  test('--json prints the documented shape, without curves', async () => {
    const r = await run(['score', '--truth', fx('truth.csv'), '--pred', fx('pred.csv'), '--val-truth', fx('val_truth.csv'), '--val-pred', fx('val_pred.csv'), '--bootstrap', '200', '--seed', '3', '--json']);
    expect(r.code).toBe(0);
    const j = JSON.parse(r.out);
    expect(Object.keys(j.labels)).toEqual(['A', 'B']);
    for (const k of ['auroc', 'auprc', 'f1', 'mcc', 'threshold', 'thresholdSource', 'ci']) expect(j.labels.A).toHaveProperty(k);
    expect(j.labels.A.thresholdSource).toBe('validation');
    expect(j.labels.A.ci.auroc.lo).toBeLessThanOrEqual(j.labels.A.auroc);
    expect(j.macro.labels).toEqual(['A', 'B']);
    expect(j.skipped).toEqual([expect.objectContaining({ label: 'C' })]);
    expect(j.curves).toBeUndefined();
    expect(j.bootstrap).toMatchObject({ resamples: 200, seed: 3, unit: 'patient', nUnits: 4 });
  });

  test('table output with readers and a report card', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cxr-score-'));
    try {
      const r = await run(['score', '--truth', fx('truth.csv'), '--pred', fx('pred.csv'), '--readers', `${fx('reader_a.csv')},${fx('reader_b.csv')}`, '--labels', 'A,B', '--bootstrap', '100', '--out', dir]);
      expect(r.code).toBe(0);
      expect(r.out).toMatch(/^label\s+n\s+pos\s+AUROC\s+AUPRC\s+F1\s+MCC/m);
      expect(r.out).toMatch(/^macro \(2\)/m);
      expect(r.out).toMatch(/model vs readers/);
      expect(r.out).toMatch(/reader_a/);
      expect(fs.existsSync(path.join(dir, 'report.html'))).toBe(true);
      const rep = JSON.parse(fs.readFileSync(path.join(dir, 'report.json'), 'utf8'));
      expect(rep.result.readers.readers).toHaveLength(2);
      expect(rep.result.curves.A.roc.fpr.length).toBeGreaterThan(2);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('bad input exits 1 with E_DATA; bad options exit 2 with E_CONFIG', async () => {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cxr-score-'));
    try {
      const bad = path.join(tmp, 'pred.csv');
      fs.writeFileSync(bad, 'id,A,B,C\ns1,0.1,0.2,0.3\n');
      const r = await run(['score', '--truth', fx('truth.csv'), '--pred', bad]);
      expect(r.code).toBe(1);
      expect(r.err).toMatch(/^cxr-train: E_DATA: mismatched ids/);
      const c = await run(['score', '--truth', fx('truth.csv'), '--pred', fx('pred.csv'), '--val-truth', fx('val_truth.csv')]);
      expect(c.code).toBe(2);
      expect(c.err).toMatch(/E_CONFIG: --val-truth and --val-pred go together/);
      const m = await run(['score', '--truth', fx('truth.csv')]);
      expect(m.code).toBe(2);
      const io = await run(['score', '--truth', path.join(tmp, 'nope.csv'), '--pred', fx('pred.csv')]);
      expect(io.code).toBe(1);
      expect(io.err).toMatch(/E_IO/);
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  });
});
