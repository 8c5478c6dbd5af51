/**
 * Retrieval in training validation (`eval.retrieval`, off by default): the numbers land in the eval events
 * of metrics.jsonl and in the console line; a validation split without reports stops the run at setup.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Trainer } from '../../lib/train/Trainer';
import { resolveTrainConfig } from '../../lib/train/config';
import type { PartialTrainConfig } from '../../lib/train/config';
import { formatEval } from '../../lib/train/reporter';
import { synthesizeSamples, toMemorySource } from '../../lib/data/synthetic';
import { rejectsWith } from '../helpers/errors';

const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'cxr-train-retrieval-'));
afterAll(() => fs.rmSync(tmpRoot, { recursive: true, force: true }));

const config = (outDir: string, over: PartialTrainConfig['eval'] = {}) =>
  resolveTrainConfig([
    {
      config: {
        outDir,
        data: { synthetic: { n: 100 } },
        batchSize: 8,
        maxSteps: 3,
        threads: 1,
        schedule: { warmupSteps: 1 },
        eval: { everySteps: 0, atStart: true, batchSize: 32, ...over },
        checkpoint: { everySteps: 0, keepBestBy: null },
        log: { format: 'none' },
      },
    },
  ]);

test('eval.retrieval adds image↔report retrieval to every validation (metrics.jsonl, console line); off by default', async () => {
  expect(config(path.join(tmpRoot, 'default')).eval.retrieval).toBe(false);
  const t = new Trainer(config(path.join(tmpRoot, 'on'), { retrieval: true }));
  try {
    const r = await t.fit();
    expect(r.status).toBe('completed');
    const evals = fs.readFileSync(path.join(r.outDir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l)).filter((l) => l.event === 'eval');
    expect(evals).toHaveLength(2);
    for (const e of evals) {
      expect(e.retrieval.images).toBe(e.n); // every synthetic image has a report
      expect(e.retrieval.texts).toBeGreaterThan(1);
      for (const d of [e.retrieval.imageToText, e.retrieval.textToImage]) {
        expect(d.recall['1']).toBeLessThanOrEqual(d.recall['5']);
        expect(d.recall['5']).toBeLessThanOrEqual(d.recall['10']);
        expect(d.meanRank).toBeGreaterThanOrEqual(1);
      }
    }
    expect(formatEval(r.finalEval!)).toMatch(/retrieval R@1\/5\/10 image→text [\d.]+\/[\d.]+\/[\d.]+%/);
  } finally {
    await t.dispose();
  }
});

test('eval.retrieval on a validation split without reports is E_DATA before training', async () => {
  const ds = synthesizeSamples({ n: 60 });
  const strip = (src: ReturnType<typeof toMemorySource>) => ({ ...src, samples: src.samples.map(({ report: _r, ...s }) => s) });
  const t = new Trainer(config(path.join(tmpRoot, 'no-reports'), { retrieval: true }), { data: { dataset: 'synthetic', labelNames: ds.labelNames, train: toMemorySource(ds, 'train'), val: strip(toMemorySource(ds, 'validate')) } });
  try {
    await rejectsWith(t.fit(), 'E_DATA');
  } finally {
    await t.dispose();
  }
});
