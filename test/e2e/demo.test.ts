/**
 * `cxr-train demo` end to end, small (400 images, 30 steps): the JSON result, the report card, and the
 * held-out test split, checked against what the trainer's data loaders actually delivered during fit().
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DataLoader } from '../../lib/data/DataLoader';
import type { Batch } from '../../lib/data/DataLoader';
import { Trainer } from '../../lib/train/Trainer';
import { CHEXPERT_LABELS } from '../../lib/data/sample';
import { readCsvTable } from '../../lib/util/csv';
import { runCli as cli } from '../helpers/cli';
import { eventFiles, readEventFile, scalarsOf } from '../helpers/tfevents';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cxr-demo-e2e-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));


/**
 * Records the ids of every sample any DataLoader yields while a Trainer.fit() runs: training batches and
 * validation (model selection) batches, i.e. everything the training side of the demo looked at.
 */
function recordTrainingSamples(): { ids: Set<string>; restore: () => void } {
  const ids = new Set<string>();
  let inFit = 0;
  const origFit = Trainer.prototype.fit;
  const origEpoch = DataLoader.prototype.epoch;
  const fitSpy = jest.spyOn(Trainer.prototype, 'fit').mockImplementation(async function (this: Trainer) {
    inFit++;
    try {
      return await origFit.call(this);
    } finally {
      inFit--;
    }
  });
  const epochSpy = jest.spyOn(DataLoader.prototype, 'epoch').mockImplementation(async function* (this: DataLoader, e?: number): AsyncGenerator<Batch, void, undefined> {
    for await (const b of origEpoch.call(this, e)) {
      if (inFit > 0) for (const s of b.samples) ids.add(s.id);
      yield b;
    }
  });
  return {
    ids,
    restore: () => {
      fitSpy.mockRestore();
      epochSpy.mockRestore();
    },
  };
}

describe('cxr-train demo', () => {
  test('generates data, trains, evaluates on a held-out test split the training never saw, writes the report card', async () => {
    const out = path.join(tmp, 'demo');
    const rec = recordTrainingSamples();
    let r;
    try {
      r = await cli(['demo', '--out', out, '--n', '400', '--steps', '30', '--eval-every', '10', '--bootstrap', '50', '--threads', '2', '--json', '--log-to', 'jsonl,tensorboard']);
    } finally {
      rec.restore();
    }
    expect(r.code).toBe(0);
    expect(r.err).toMatch(/\[1\/4\] generating/);
    expect(r.err).toMatch(/\[4\/4\]/);
    const d = JSON.parse(r.out);
    expect(d.status).toBe('completed');
    expect(d.training.steps).toBe(30);
    // --log-to tensorboard: one event file in the run folder, with the 30 training losses.
    const tb = eventFiles(path.join(d.training.runDir, 'tensorboard'));
    expect(tb).toHaveLength(1);
    expect(scalarsOf(readEventFile(tb[0])).get('train/loss')!.map(([s]) => s)).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));

    // The report card of the trained checkpoint (and of the untrained weights) exists.
    expect(fs.existsSync(d.test.reportCard)).toBe(true);
    expect(fs.existsSync(d.test.reportJson)).toBe(true);
    expect(fs.existsSync(d.test.untrainedReportCard)).toBe(true);
    expect(fs.readFileSync(d.test.reportCard, 'utf8')).toContain('<svg');
    // The card names the data (synthetic, from the demo's generator), not the layout they are read through.
    const cardHtml = fs.readFileSync(d.test.reportCard, 'utf8');
    expect(cardHtml).toMatch(/<title>cxr-train eval: model on synthetic data \(cxr-train demo generator: 400 images, seed 0, finding strength 1\), test split<\/title>/);
    expect(cardHtml).not.toMatch(/on mimic-cxr test/);
    expect(cardHtml).toContain(`<tr><td>Data root</td><td><code>${d.data.dir}</code></td></tr>`);
    // It is the evaluation of the checkpoint the run selected, on the test split.
    const rep = JSON.parse(fs.readFileSync(d.test.reportJson, 'utf8'));
    expect(rep.meta.config.checkpoints).toEqual([d.training.evaluated.model]);
    expect(rep.meta.config.split).toBe('test');
    expect(d.training.evaluated.model.startsWith(path.join(out, 'run', 'checkpoints'))).toBe(true);

    // Per-label AUROC for every label; a label without a number is one the test split cannot score.
    expect(Object.keys(d.test.labels).sort()).toEqual([...CHEXPERT_LABELS].sort());
    const skipped = new Set(d.test.skipped.map((s: { label: string }) => s.label));
    let scored = 0;
    for (const [label, x] of Object.entries(d.test.labels) as Array<[string, { auroc: number | null; untrainedAuroc: number | null; ci: { lo: number; hi: number } | null }]>) {
      if (x.auroc === null) {
        expect(skipped.has(label)).toBe(true);
        continue;
      }
      scored++;
      expect(x.auroc).toBeGreaterThanOrEqual(0);
      expect(x.auroc).toBeLessThanOrEqual(1);
      expect(x.untrainedAuroc).toEqual(expect.any(Number));
      expect(x.ci!.lo).toBeLessThanOrEqual(x.auroc);
      expect(x.ci!.hi).toBeGreaterThanOrEqual(x.auroc);
    }
    expect(scored).toBeGreaterThanOrEqual(5);
    for (const m of [d.test.macroAuroc, d.test.untrainedMacroAuroc]) {
      expect(typeof m).toBe('number');
      expect(m).toBeGreaterThanOrEqual(0);
      expect(m).toBeLessThanOrEqual(1);
    }
    // The macro mean is the mean of the per-label numbers.
    const nums = Object.values(d.test.labels as Record<string, { auroc: number | null }>).map((x) => x.auroc).filter((a): a is number => a !== null);
    expect(d.test.macroAuroc).toBeCloseTo(nums.reduce((a, b) => a + b, 0) / nums.length, 10);

    // Held out: the dataset on disk has a test split, the evaluation scored exactly it, and not one of its
    // images (nor patients) was delivered to the trainer, whose batches did cover train and validate.
    const splitCsv = readCsvTable(path.join(d.data.dir, 'mimic-cxr-2.0.0-split.csv'));
    const col = (n: string) => splitCsv.header.indexOf(n);
    const splitOf = new Map(splitCsv.rows.map((row) => [row[col('dicom_id')], row[col('split')]]));
    const patientOf = new Map(splitCsv.rows.map((row) => [row[col('dicom_id')], row[col('subject_id')]]));
    const testIds = splitCsv.rows.filter((row) => row[col('split')] === 'test').map((row) => row[col('dicom_id')]);
    expect(testIds.length).toBe(d.data.images.test);
    const scoredIds = readCsvTable(path.join(out, 'eval', 'predictions.csv')).rows.map((row) => row[0]);
    expect(new Set(scoredIds)).toEqual(new Set(testIds));

    const used = [...rec.ids];
    expect(used.length).toBeGreaterThan(d.data.images.validate);
    expect(used.filter((id) => splitOf.get(id) === 'test')).toEqual([]);
    expect(new Set(used.map((id) => splitOf.get(id)))).toEqual(new Set(['train', 'validate']));
    const usedPatients = new Set(used.map((id) => patientOf.get(id)));
    expect(testIds.filter((id) => usedPatients.has(patientOf.get(id)))).toEqual([]);
    // The demo's own record agrees.
    const splits = JSON.parse(fs.readFileSync(d.splits.file, 'utf8'));
    expect(splits.overlap).toEqual({ ids: 0, patients: 0 });
    expect(new Set(splits.test.ids)).toEqual(new Set(testIds));
    for (const id of used) expect(splits.train.ids.includes(id) || splits.validate.ids.includes(id)).toBe(true);
  }, 180_000);

  test('usage errors exit 2 with one clear line', async () => {
    const bad = await cli(['demo', '--out', path.join(tmp, 'x'), '--steps', '0']);
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/--steps must be an integer >= 1/);
    const busy = path.join(tmp, 'busy');
    fs.mkdirSync(busy);
    fs.writeFileSync(path.join(busy, 'keep.txt'), 'x');
    const r = await cli(['demo', '--out', busy, '--steps', '5']);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/not empty/);
    expect(fs.readdirSync(busy)).toEqual(['keep.txt']);
  });
});
