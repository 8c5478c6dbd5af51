/**
 * `cxr-train eval --retrieval` and ensemble members end to end on a small synthetic MIMIC-CXR-JPG layout
 * with untrained test-vit models (the plumbing is the point; the metrics are tested in test/unit/eval).
 */
import fs from 'node:fs';
import path from 'node:path';
import { evaluateCheckpoint } from '../../lib/jobs/evaluate';
import { readCsvTable } from '../../lib/util/csv';
import { sigmoid } from '../../lib/eval/zeroShot';
import { runCli as cli } from '../helpers/cli';
import { tinyEvalSetup } from '../helpers/evalSetup';
import { rejectsWith } from '../helpers/errors';

const { tmp, ds, modelA, modelB } = tinyEvalSetup('cxr-retrieval-e2e-');

const common = { dataset: 'mimic-cxr', adapterOptions: { root: ds }, split: 'test', workers: 0, device: 'cpu' } as const;

test('CLI: eval --retrieval writes the retrieval section (JSON and HTML) and prints both directions and k×200', async () => {
  const out = path.join(tmp, 'cli');
  const r = await cli(['eval', '--checkpoint', modelA, '--dataset', 'mimic-cxr', '--root', ds, '--val-split', 'validate', '--bootstrap', '20', '--retrieval', '--kx200-per-label', '3', '--out', out, '--workers', '0', '--device', 'cpu']);
  expect(r.err).toBe('');
  expect(r.code).toBe(0);
  expect(r.out).toMatch(/retrieval on test: \d+\/\d+ images with a report text/);
  expect(r.out).toMatch(/image→text/);
  expect(r.out).toMatch(/5×3 label-prompt retrieval: accuracy/);
  const rep = JSON.parse(fs.readFileSync(path.join(out, 'report.json'), 'utf8'));
  const rt = rep.retrieval;
  const n = readCsvTable(path.join(out, 'predictions.csv')).rows.length;
  expect(rt.images.scored).toBe(n);
  expect(rt.images.withText).toBe(n); // every synthetic study has a report
  expect(rt.scores.imageToText.queries).toBe(n);
  expect(rt.scores.imageToText.candidates).toBe(rt.texts.distinct);
  expect(rt.scores.textToImage.queries).toBe(rt.texts.distinct);
  for (const d of [rt.scores.imageToText, rt.scores.textToImage]) {
    expect(d.recall['1']).toBeLessThanOrEqual(d.recall['5']);
    expect(d.recall['5']).toBeLessThanOrEqual(d.recall['10']);
    expect(d.meanRank).toBeGreaterThanOrEqual(1);
  }
  expect(rt.kx200).toEqual({ labels: ['Atelectasis', 'Cardiomegaly', 'Consolidation', 'Edema', 'Pleural Effusion'], perLabel: 3, seed: 0, prompts: 'positive' });
  const kx = rt.scores.kx200;
  expect(kx.perLabel.every((p: { chosen: number; eligible: number }) => p.chosen === Math.min(3, p.eligible))).toBe(true);
  expect(kx.n).toBe(kx.perLabel.reduce((a: number, p: { chosen: number }) => a + p.chosen, 0));
  const html = fs.readFileSync(path.join(out, 'report.html'), 'utf8');
  expect(html).toContain('<h2 id="retrieval">Retrieval</h2>');
  expect(html).toContain('<table class="retrieval">');
  expect(html).toContain('5×3 label-prompt retrieval');
  expect(html).not.toMatch(/(src|href)="https?:/);
  // --json carries the same section.
  const j = await cli(['eval', '--checkpoint', modelA, '--dataset', 'mimic-cxr', '--root', ds, '--bootstrap', '0', '--retrieval', '--kx200', 'none', '--out', path.join(tmp, 'cli-json'), '--workers', '0', '--device', 'cpu', '--json']);
  expect(j.code).toBe(0);
  const parsed = JSON.parse(j.out);
  expect(parsed.retrieval.scores.imageToText).toEqual(rt.scores.imageToText);
  expect(parsed.retrieval.kx200).toBeNull();
});

test('bad input: a split without reports is E_DATA, k×200 labels the data lacks are E_CONFIG (before any model is loaded)', async () => {
  await rejectsWith(evaluateCheckpoint({ ...common, adapterOptions: { root: ds, reports: false }, checkpoint: modelA, retrieval: true, outDir: path.join(tmp, 'no-reports') }), 'E_DATA');
  const e = await rejectsWith(
    evaluateCheckpoint({ ...common, checkpoint: path.join(tmp, 'missing-model'), retrieval: { kx200Labels: ['Edema', 'Not A Label'] }, outDir: path.join(tmp, 'bad-kx') }),
    'E_CONFIG',
  );
  expect(e.message).toMatch(/Not A Label/);
  const c = await cli(['eval', '--checkpoint', modelA, '--dataset', 'mimic-cxr', '--root', ds, '--retrieval', '--kx200', 'Edema', '--out', path.join(tmp, 'bad-cli'), '--workers', '0', '--device', 'cpu']);
  expect(c.code).not.toBe(0);
  expect(c.err).toMatch(/E_CONFIG/);
  const d = await cli(['eval', '--checkpoint', modelA, '--dataset', 'mimic-cxr', '--root', ds, '--kx200', 'Edema,Atelectasis', '--out', path.join(tmp, 'bad-cli2'), '--workers', '0', '--device', 'cpu']);
  expect(d.code).not.toBe(0);
  expect(d.err).toMatch(/E_CONFIG.*--retrieval/);
});

test('ensemble: members beside the ensemble, logits averaged on request, retrieval per member', async () => {
  const out = path.join(tmp, 'ens');
  const r = await evaluateCheckpoint({ ...common, checkpoint: modelA, ensemble: [modelB], ensembleAverage: 'logits', valSplit: 'validate', bootstrap: 20, retrieval: { kx200PerLabel: 2 }, outDir: out });
  const e = r.ensemble!;
  expect(e.members.map((m) => m.name)).toEqual([modelA, modelB]);
  expect(e.average).toBe('logits');
  expect(e.best.chosenOn).toBe('validation');
  expect(e.ensemble.macroAuroc).toBe(r.result.macro.auroc);
  expect(e.deltas!.macro.n).toBeGreaterThan(0);
  expect(r.retrieval!.members).toHaveLength(2);
  // Logit averaging: each ensemble probability is the sigmoid of the members' mean logit.
  const single = await Promise.all([modelA, modelB].map((m, i) => evaluateCheckpoint({ ...common, checkpoint: m, bootstrap: 0, outDir: path.join(tmp, `single-${i}`) })));
  const [pa, pb] = single.map((s) => readCsvTable(s.files.predictions).rows);
  const pe = readCsvTable(r.files.predictions).rows;
  const logit = (p: number) => Math.log(p / (1 - p));
  for (let i = 0; i < pe.length; i++) {
    for (let j = 1; j < pe[i].length; j++) expect(Number(pe[i][j])).toBeCloseTo(sigmoid((logit(Number(pa[i][j])) + logit(Number(pb[i][j]))) / 2), 5);
  }
  const html = fs.readFileSync(r.files.reportHtml, 'utf8');
  expect(html).toContain('<h2 id="ensemble">Ensemble members</h2>');
  expect(html).toContain('<h2 id="retrieval">Retrieval</h2>');
  const rep = JSON.parse(fs.readFileSync(r.files.reportJson, 'utf8'));
  expect(rep.ensemble.members).toHaveLength(2);
  expect(rep.meta.config.ensembleAverage).toBe('logits');
});
