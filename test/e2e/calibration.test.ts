/**
 * `cxr-train eval --calibrate temperature --subgroups sex,view` end to end on a small synthetic MIMIC-CXR-JPG
 * layout with an untrained test-vit (the numbers are not the point, the plumbing is), then `predict` and
 * `serve` with the calibration.json written beside thresholds.json.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { generateSynthetic } from '../../lib/data/synthetic';
import { ClipModel } from '../../lib/models/ClipModel';
import { readCsvTable } from '../../lib/util/csv';
import { readCalibration, applyLabelMap } from '../../lib/eval/calibrationMap';
import { startServer } from '../../lib/infer/server';
import { runCli as cli } from '../helpers/cli';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cxr-calib-e2e-'));
const ds = path.join(tmp, 'ds');
const model = path.join(tmp, 'model');
const evalOut = path.join(tmp, 'eval');
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

beforeAll(async () => {
  await generateSynthetic({ n: 240, size: 32, seed: 5, outDir: ds });
  const m = ClipModel.create('test-vit', { device: 'cpu', seed: 1 });
  m.save(model);
  m.dispose();
}, 600_000);

describe('eval --calibrate temperature --subgroups sex,view', () => {
  test('writes calibration.json, the calibration and subgroup sections; predict and serve apply it and say so', async () => {
    const e = await cli(['eval', '--checkpoint', model, '--dataset', 'mimic-cxr', '--root', ds, '--val-split', 'validate', '--bootstrap', '50', '--calibrate', 'temperature', '--subgroups', 'sex,view', '--subgroup-min-size', '5', '--out', evalOut, '--workers', '0', '--device', 'cpu']);
    expect(e.err).toBe('');
    expect(e.code).toBe(0);
    expect(e.out).toMatch(/calibration \(test, macro over \d+ labels, 10 bins\): Brier [\d.]+ -> [\d.]+, ECE equal-width [\d.]+ -> [\d.]+/);
    expect(e.out).toMatch(/subgroups \(macro AUROC, gap to overall, 95% CI\):\n {2}sex: female/);
    expect(e.out).toMatch(/ {2}view: PA/);
    expect(e.out).toContain(`calibration: ${path.join(evalOut, 'calibration.json')}`);
    process.stdout.write(`eval printed:\n${e.out}\n`);

    const cal = readCalibration(path.join(evalOut, 'calibration.json'));
    expect(cal.method).toBe('temperature');
    expect(cal.split).toBe('validate');
    expect(Object.keys(cal.labels).length + (cal.skipped?.length ?? 0)).toBe(14);
    expect(Object.keys(cal.labels).length).toBeGreaterThan(0);

    const rep = JSON.parse(fs.readFileSync(path.join(evalOut, 'report.json'), 'utf8'));
    expect(rep.calibration.fit.method).toBe('temperature');
    expect(rep.calibration.test.before.labels).toBeDefined();
    expect(rep.calibration.test.after.macro.brier).toEqual(expect.any(Number));
    expect(rep.subgroups.attributes).toEqual(['sex', 'view']);
    expect(rep.subgroups.groups.map((g: { attribute: string; group: string }) => `${g.attribute}:${g.group}`)).toEqual(expect.arrayContaining(['sex:female', 'sex:male', 'view:PA']));
    // The subgroups' overall AUROC is the report's.
    for (const [l, s] of Object.entries(rep.result.labels as Record<string, { auroc: number }>)) expect(rep.subgroups.overall[l].auroc).toBe(s.auroc);
    const html = fs.readFileSync(path.join(evalOut, 'report.html'), 'utf8');
    expect(html).toContain('<h2 id="calibration">');
    expect(html).toContain('<h2 id="subgroups">');
    expect((html.match(/class="plot reliability"/g) ?? []).length).toBe(Object.keys(rep.calibration.test.before.labels).length);
    expect(html).toContain('class="plot forest"');
    // calibrated_predictions.csv: the map applied to predictions.csv.
    const raw = readCsvTable(path.join(evalOut, 'predictions.csv'));
    const calibrated = readCsvTable(path.join(evalOut, 'calibrated_predictions.csv'));
    const label = Object.keys(cal.labels)[0];
    const j = raw.header.indexOf(label);
    raw.rows.forEach((r, i) => expect(Number(calibrated.rows[i][j])).toBeCloseTo(applyLabelMap(cal.labels[label], Number(r[j])), 12));

    // predict with the thresholds: the calibration beside them is applied, and said.
    const list = path.join(tmp, 'list.csv');
    const testImgs = raw.rows.slice(0, 4).map((r) => r[0]);
    const split = readCsvTable(path.join(ds, 'mimic-cxr-2.0.0-split.csv'));
    const rel = testImgs.map((id) => {
      const row = split.rows.find((x) => x[0] === id)!;
      return `ds/files/p${row[2].slice(0, 2)}/p${row[2]}/s${row[1]}/${id}.jpg`;
    });
    fs.writeFileSync(list, 'file\n' + rel.join('\n') + '\n');
    const predOut = path.join(tmp, 'pred.csv');
    const p = await cli(['predict', '--checkpoint', model, '--csv', list, '--image-col', 'file', '--out', predOut, '--thresholds', path.join(evalOut, 'thresholds.json'), '--workers', '0', '--device', 'cpu']);
    expect(p.code).toBe(0);
    expect(p.err).toContain(`predict: probabilities calibrated: temperature scaling fitted on validate`);
    process.stdout.write(`predict printed (stderr):\n${p.err}\n`);
    const pj = await cli(['predict', '--checkpoint', model, '--csv', list, '--image-col', 'file', '--out', predOut, '--thresholds', path.join(evalOut, 'thresholds.json'), '--json', '--workers', '0', '--device', 'cpu']);
    const r = JSON.parse(pj.out);
    expect(r.calibration).toMatchObject({ method: 'temperature', split: 'validate', file: path.join(evalOut, 'calibration.json') });
    const row0 = r.rows[0];
    expect(row0.probabilities[label]).toBeCloseTo(applyLabelMap(cal.labels[label], row0.uncalibrated[label]), 12);
    // The same image scored in eval has the same calibrated probability.
    const k = raw.rows.findIndex((x) => x[0] === testImgs[0]);
    expect(row0.probabilities[label]).toBeCloseTo(Number(calibrated.rows[k][j]), 6);
    // --calibration none turns it off.
    const off = JSON.parse((await cli(['predict', '--checkpoint', model, '--csv', list, '--image-col', 'file', '--out', predOut, '--thresholds', path.join(evalOut, 'thresholds.json'), '--calibration', 'none', '--json', '--workers', '0', '--device', 'cpu'])).out);
    expect(off.calibration).toBeUndefined();
    expect(off.rows[0].probabilities[label]).toBe(row0.uncalibrated[label]);

    // serve: /api/info names the calibration; predictions carry calibrated and uncalibrated probabilities.
    const server = await startServer({ checkpoint: model, port: 0, device: 'cpu', thresholds: path.join(evalOut, 'thresholds.json') });
    try {
      expect(server.calibration).toMatchObject({ method: 'temperature', split: 'validate' });
      const info = (await (await fetch(`${server.url}api/info`)).json()) as { calibration: { description: string } };
      expect(info.calibration.description).toMatch(/^temperature scaling fitted on validate/);
      const img = fs.readFileSync(path.join(tmp, rel[0]));
      const res = (await (await fetch(`${server.url}api/predict`, { method: 'POST', body: img, headers: { 'content-type': 'image/jpeg' } })).json()) as { calibrated: boolean; labels: Array<{ label: string; probability: number; uncalibrated: number }> };
      expect(res.calibrated).toBe(true);
      const x = res.labels.find((l) => l.label === label)!;
      expect(x.probability).toBeCloseTo(applyLabelMap(cal.labels[label], x.uncalibrated), 12);
    } finally {
      await server.close();
    }
  }, 900_000);

  test('coded errors: --calibrate without --val-split, a subgroup column the split lacks', async () => {
    const a = await cli(['eval', '--checkpoint', model, '--dataset', 'mimic-cxr', '--root', ds, '--calibrate', 'platt', '--out', path.join(tmp, 'x'), '--workers', '0', '--device', 'cpu']);
    expect(a.code).not.toBe(0);
    expect(a.err).toMatch(/E_CONFIG.*--val-split/);
    fs.renameSync(path.join(ds, 'patients.csv'), path.join(ds, 'patients.csv.off'));
    try {
      const b = await cli(['eval', '--checkpoint', model, '--dataset', 'mimic-cxr', '--root', ds, '--subgroups', 'sex,age', '--out', path.join(tmp, 'y'), '--workers', '0', '--device', 'cpu']);
      expect(b.code).not.toBe(0);
      expect(b.err).toMatch(/E_DATA.*the test split has no sex or age for any image \(it has: view\)/);
    } finally {
      fs.renameSync(path.join(ds, 'patients.csv.off'), path.join(ds, 'patients.csv'));
    }
  }, 600_000);
});
