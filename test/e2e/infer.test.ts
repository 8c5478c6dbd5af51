/**
 * `cxr-train eval` and `cxr-train predict` end to end on a small synthetic MIMIC-CXR-JPG layout with an
 * untrained test-vit (fast: the numbers are not the point, the plumbing is).
 */
import fs from 'node:fs';
import path from 'node:path';
import { evaluateCheckpoint, manifestHash } from '../../lib/jobs/evaluate';
import { scoreCsv } from '../../lib/eval/score';
import { readCsvTable } from '../../lib/util/csv';
import { readThresholds } from '../../lib/eval/thresholds';
import { predict, callColumn } from '../../lib/jobs/predict';
import { ZeroShotModel } from '../../lib/infer/zeroShotModel';
import { hashCheckpoint } from '../../lib/eval/modelEncoder';
import { runCli as cli } from '../helpers/cli';
import { tinyEvalSetup } from '../helpers/evalSetup';

const { tmp, ds, modelA, modelB } = tinyEvalSetup('cxr-infer-e2e-');


describe('evaluateCheckpoint', () => {
  test('writes predictions/truth CSVs that `score` reproduces, thresholds fitted on validation only, and the report card', async () => {
    const out = path.join(tmp, 'eval');
    const r = await evaluateCheckpoint({
      checkpoint: modelA,
      dataset: 'mimic-cxr',
      adapterOptions: { root: ds },
      split: 'test',
      valSplit: 'validate',
      bootstrap: 50,
      seed: 3,
      outDir: out,
      workers: 0,
      device: 'cpu',
    });
    // The chexzero prompt set covers all 14 CheXpert labels of MIMIC.
    expect(r.labels).toHaveLength(14);
    expect(r.checkpointHashes).toEqual([await hashCheckpoint(modelA)]);
    const pred = readCsvTable(r.files.predictions);
    const truth = readCsvTable(r.files.truth);
    expect(pred.header).toEqual(['id', ...r.labels]);
    expect(pred.rows.length).toBe(r.splits.test.images);
    expect(truth.rows.map((x) => x[0])).toEqual(pred.rows.map((x) => x[0]));
    for (const row of pred.rows) for (const v of row.slice(1)) expect(Number(v)).toBeGreaterThanOrEqual(0), expect(Number(v)).toBeLessThanOrEqual(1);
    // The validation split is another set of images than test.
    const valIds = new Set(readCsvTable(r.files.valPredictions!).rows.map((x) => x[0]));
    expect(pred.rows.some((x) => valIds.has(x[0]))).toBe(false);

    // `cxr-train score` on the written files gives the same numbers.
    const again = scoreCsv(
      { truth: r.files.truth, pred: r.files.predictions, valTruth: r.files.valTruth, valPred: r.files.valPredictions },
      { bootstrap: 50, seed: 3 },
    );
    expect(again.macro.auroc).toBeCloseTo(r.result.macro.auroc!, 12);
    expect(Object.keys(again.labels)).toEqual(Object.keys(r.result.labels));
    for (const [l, s] of Object.entries(r.result.labels)) {
      expect(s.thresholdSource === 'validation' || s.thresholdSource === 'fixed').toBe(true);
      if (s.thresholdSource === 'validation') expect(r.thresholds!.labels[l]).toBe(s.threshold);
      expect(again.labels[l].threshold).toBe(s.threshold);
    }

    // Thresholds: from validation predictions only (every fitted threshold is one of the validation scores).
    const th = readThresholds(r.files.thresholds!);
    expect(th.split).toBe('validate');
    expect(th.checkpointHashes).toEqual(r.checkpointHashes);
    const vp = readCsvTable(r.files.valPredictions!);
    for (const [l, t] of Object.entries(th.labels)) {
      const col = vp.header.indexOf(l);
      expect(vp.rows.some((x) => Number(x[col]) === t)).toBe(true);
    }

    // Report card with provenance.
    const rep = JSON.parse(fs.readFileSync(r.files.reportJson, 'utf8'));
    expect(rep.meta.checkpointHash).toBe(r.checkpointHashes[0]);
    expect(rep.meta.datasetManifestHash).toMatch(/^[0-9a-f]{64}$/);
    expect(rep.meta.datasetManifestHash).toBe(r.manifestHash);
    expect(rep.meta.prompts.labels).toHaveLength(14);
    const html = fs.readFileSync(r.files.reportHtml, 'utf8');
    expect(html).toContain(r.checkpointHashes[0]);
    expect(html).toContain('<svg');
    // Without a description of the data, the card names the adapter and its root folder.
    expect(rep.meta).toMatchObject({ dataset: 'mimic-cxr', dataSource: `mimic-cxr at ${path.resolve(ds)}`, dataRoot: path.resolve(ds) });
    expect(html).toMatch(new RegExp(`<h1>cxr-train eval: [^<]+ on mimic-cxr at ${path.resolve(ds).replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}, test split</h1>`));
    expect(html).not.toMatch(/(src|href)="https?:/);
  });

  test('a two-checkpoint ensemble averages the members’ probabilities; the manifest hash depends on the labels', async () => {
    const common = { dataset: 'mimic-cxr', adapterOptions: { root: ds }, split: 'test', bootstrap: 0, workers: 0, device: 'cpu' } as const;
    const a = await evaluateCheckpoint({ ...common, checkpoint: modelA, outDir: path.join(tmp, 'ea') });
    const b = await evaluateCheckpoint({ ...common, checkpoint: modelB, outDir: path.join(tmp, 'eb') });
    const ab = await evaluateCheckpoint({ ...common, checkpoint: modelA, ensemble: [modelB], outDir: path.join(tmp, 'eab') });
    expect(ab.checkpointHashes).toHaveLength(2);
    expect(ab.files.thresholds).toBeUndefined();
    const pa = readCsvTable(a.files.predictions).rows;
    const pb = readCsvTable(b.files.predictions).rows;
    const pab = readCsvTable(ab.files.predictions).rows;
    for (let i = 0; i < pab.length; i++) {
      for (let j = 1; j < pab[i].length; j++) expect(Number(pab[i][j])).toBeCloseTo((Number(pa[i][j]) + Number(pb[i][j])) / 2, 6);
    }
    expect(ab.result.warnings.some((w) => /no validation split/.test(w))).toBe(true);
    const s = [{ id: 'x', imagePath: 'x.jpg', labels: { A: 1 }, patientId: 'p', studyId: 's' }];
    expect(manifestHash('d', ['A'], s)).not.toBe(manifestHash('d', ['A'], [{ ...s[0], labels: { A: 0 } }]));
  });

  test('the validation split must not be the scored split', async () => {
    await expect(
      evaluateCheckpoint({ checkpoint: modelA, dataset: 'mimic-cxr', adapterOptions: { root: ds }, split: 'test', valSplit: 'test', outDir: path.join(tmp, 'bad') }),
    ).rejects.toMatchObject({ code: 'E_CONFIG' });
  });
});

describe('predict', () => {
  test('every image gets a row of probabilities in [0, 1]; corrupt and non-image files are listed with reasons; thresholds add calls', async () => {
    const dir = path.join(tmp, 'pred-in');
    fs.mkdirSync(path.join(dir, 'sub'), { recursive: true });
    const jpgs: string[] = [];
    const walk = (d: string): void => {
      for (const e of fs.readdirSync(d, { withFileTypes: true })) {
        if (e.isDirectory()) walk(path.join(d, e.name));
        else if (e.name.endsWith('.jpg')) jpgs.push(path.join(d, e.name));
      }
    };
    walk(path.join(ds, 'files'));
    jpgs.slice(0, 7).forEach((f, i) => fs.copyFileSync(f, path.join(dir, i < 3 ? 'sub' : '', `img${i}.jpg`)));
    fs.writeFileSync(path.join(dir, 'broken.png'), Buffer.from('\x89PNG\r\n\x1a\nthis is not a png'));
    fs.writeFileSync(path.join(dir, 'notes.txt'), 'hello');
    const thresholds = { format: 'cxr-train-thresholds', version: 1, criterion: 'mcc', split: 'validate', checkpointHashes: ['other'], prompts: { name: 'x', hash: 'y' }, temperature: 1, labels: { 'Pleural Effusion': 0.5, Cardiomegaly: 0 } } as const;
    const out = path.join(tmp, 'preds.csv');
    const progress: number[] = [];
    // A relative folder: paths resolve against the working directory.
    const r = await predict({ checkpoint: modelA, dir: path.relative(process.cwd(), dir), out, thresholds: thresholds as never, device: 'cpu', workers: 0, batchSize: 4, onProgress: (d) => progress.push(d) });
    expect(r.counts).toEqual({ total: 8, predicted: 7, skipped: 1, ignored: 1 });
    expect(r.skipped.map((s) => s.id)).toEqual(['broken.png']);
    expect(r.ignored).toEqual(['notes.txt']);
    expect(r.skipped.find((s) => s.id === 'broken.png')!.reason).toMatch(/E_DATA|decode/);
    expect(progress[progress.length - 1]).toBe(8);
    expect(r.labels).toHaveLength(14);
    for (const row of r.rows) {
      for (const p of Object.values(row.probabilities)) expect(p >= 0 && p <= 1).toBe(true);
      expect(row.calls!.Cardiomegaly).toBe(1); // p >= 0 always
      expect(row.calls!['Pleural Effusion']).toBe(row.probabilities['Pleural Effusion'] >= 0.5 ? 1 : 0);
    }
    expect(r.warnings.some((w) => /another checkpoint/.test(w))).toBe(true);
    const csv = readCsvTable(out);
    expect(csv.header).toEqual(['id', ...r.labels, callColumn('Cardiomegaly'), callColumn('Pleural Effusion')]);
    expect(csv.rows.map((x) => x[0])).toEqual(['img3.jpg', 'img4.jpg', 'img5.jpg', 'img6.jpg', 'sub/img0.jpg', 'sub/img1.jpg', 'sub/img2.jpg']);

    // The same images given as files, by a loaded model, give the same probabilities (text embeddings reused).
    const zm = await ZeroShotModel.load(modelA, { device: 'cpu' });
    try {
      const r2 = await predict({ model: zm, images: [path.join(dir, 'img3.jpg'), path.join(dir, 'missing.jpg')], workers: 0 });
      expect(r2.counts).toEqual({ total: 2, predicted: 1, skipped: 1, ignored: 0 });
      expect(r2.skipped[0].reason).toMatch(/E_IO/);
      for (const l of r.labels) expect(r2.rows[0].probabilities[l]).toBeCloseTo(r.rows[0].probabilities[l], 6);
    } finally {
      zm.dispose();
    }

    // --temperature logit-scale: t = exp(logit_scale) (1/0.07 for a fresh model) sharpens every probability
    // away from 0.5 in the same direction.
    const hot = await ZeroShotModel.load(modelA, { device: 'cpu', temperature: 'logit-scale' });
    try {
      expect(hot.temperature).toBeCloseTo(1 / 0.07, 3);
      const r3 = await predict({ model: hot, images: [path.join(dir, 'img3.jpg')], workers: 0 });
      for (const l of r.labels) {
        const p1 = r.rows[0].probabilities[l] - 0.5;
        const pt = r3.rows[0].probabilities[l] - 0.5;
        expect(Math.sign(pt)).toBe(Math.sign(p1));
        expect(Math.abs(pt)).toBeGreaterThan(Math.abs(p1));
      }
    } finally {
      hot.dispose();
    }
  });

  test('CLI: eval writes thresholds that predict --csv --thresholds reads; --json prints rows', async () => {
    const evalOut = path.join(tmp, 'cli-eval');
    const e = await cli(['eval', '--checkpoint', modelA, '--dataset', 'mimic-cxr', '--root', ds, '--split', 'test', '--val-split', 'validate', '--bootstrap', '20', '--out', evalOut, '--workers', '0', '--device', 'cpu']);
    expect(e.err).toBe('');
    expect(e.code).toBe(0);
    expect(e.out).toMatch(/macro/);
    expect(fs.existsSync(path.join(evalOut, 'report.html'))).toBe(true);
    const th = readThresholds(path.join(evalOut, 'thresholds.json'));

    const list = path.join(tmp, 'list.csv');
    const truth = readCsvTable(path.join(evalOut, 'truth.csv'));
    const rel = truth.rows.slice(0, 3).map((r) => {
      const sub = r[0];
      const hit = (function find(d: string): string | undefined {
        for (const x of fs.readdirSync(d, { withFileTypes: true })) {
          const p = path.join(d, x.name);
          if (x.isDirectory()) {
            const f = find(p);
            if (f) return f;
          } else if (x.name === `${sub}.jpg`) return p;
        }
        return undefined;
      })(path.join(ds, 'files'))!;
      return path.relative(tmp, hit);
    });
    fs.writeFileSync(list, 'key,file\n' + rel.map((p, i) => `k${i},${p}`).join('\n') + '\n');
    const predOut = path.join(tmp, 'cli-preds.csv');
    const p = await cli(['predict', '--checkpoint', modelA, '--csv', list, '--image-col', 'file', '--id-col', 'key', '--out', predOut, '--thresholds', path.join(evalOut, 'thresholds.json'), '--json', '--workers', '0', '--device', 'cpu']);
    expect(p.code).toBe(0);
    const j = JSON.parse(p.out);
    expect(j.counts).toEqual({ total: 3, predicted: 3, skipped: 0, ignored: 0 });
    expect(j.rows.map((r: { id: string }) => r.id)).toEqual(['k0', 'k1', 'k2']);
    expect(Object.keys(j.thresholds)).toEqual(Object.keys(th.labels).filter((l) => j.labels.includes(l)));
    // Same checkpoint and prompt set as the thresholds were fitted for: no calibration warning.
    expect(j.warnings.filter((w: string) => /another/.test(w))).toEqual([]);
    const csv = readCsvTable(predOut);
    expect(csv.rows).toHaveLength(3);

    const bad = await cli(['predict', '--checkpoint', modelA, '--out', predOut]);
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/exactly one of --images, --dir, --csv/);
  });
});
