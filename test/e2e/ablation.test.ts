/**
 * The `--quick` ablation end to end (about a minute): the structure of the results, determinism by seed,
 * and resume after a killed experiment. Asserts correctness only, never which setting wins.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { resolveAblationConfig, type RunResult } from '../../lib/experiments/ablation/config';
import type { AblationResults } from '../../lib/experiments/ablation/aggregate';
import { runAblation } from '../../lib/jobs/ablation';
import { CxrError } from '../../lib/errors';
import { main } from '../../lib/cli/index';

jest.setTimeout(600_000);
const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'cxr-ablation-e2e-'));
afterAll(() => fs.rmSync(tmpRoot, { recursive: true, force: true }));

const quick = (outDir: string) => resolveAblationConfig([{ config: { outDir, finetune: { threads: 1 } } }], { quick: true });
const runResult = (dir: string, id: string): RunResult => JSON.parse(fs.readFileSync(path.join(dir, 'runs', id, 'result.json'), 'utf8'));

describe('experiment ablation --quick', () => {
  const dirA = path.join(tmpRoot, 'a');
  const dirB = path.join(tmpRoot, 'b');
  let resA: AblationResults;

  it('runs the whole pipeline and writes results.json, results.md and a report card per setting', async () => {
    const withTb = resolveAblationConfig([{ config: { outDir: dirA, finetune: { threads: 1, log: { to: ['jsonl', 'tensorboard'] } } } }], { quick: true });
    const out = await runAblation(withTb, { commandLine: 'test' });
    expect(out.status).toBe('completed');
    // finetune.log.to: every training run (pre-training included) writes its TensorBoard event file.
    for (const run of ['pretrain', 'runs/clip-s0', 'runs/both-a0.8-s0']) {
      const files = fs.existsSync(path.join(dirA, run, 'train', 'tensorboard')) ? fs.readdirSync(path.join(dirA, run, 'train', 'tensorboard')) : [];
      expect({ run, files: files.filter((f) => f.includes('tfevents')).length }).toEqual({ run, files: 1 });
    }
    expect(out.ran).toEqual(['pretrained', 'clip-s0', 'sampling-s0', 'relaxed-a0.8-s0', 'both-a0.8-s0']);
    resA = JSON.parse(fs.readFileSync(path.join(dirA, 'results.json'), 'utf8'));
    expect(resA.settings.map((s) => s.setting)).toEqual(['pretrained', 'clip', 'sampling', 'relaxed', 'both']);
    expect(resA.baseline).toBe('clip');
    expect(Object.keys(resA.macroLabels)).toEqual(['test', 'shifted']);
    for (const s of resA.settings) {
      for (const split of ['test', 'shifted']) {
        const x = s.splits[split];
        expect(x.macroAuroc.mean).toBeGreaterThanOrEqual(0);
        expect(x.macroAuroc.mean).toBeLessThanOrEqual(1);
        expect(x.macroAuroc.perSeed).toHaveLength(1);
        expect(x.macroMcc.mean).toBeGreaterThanOrEqual(-1);
        expect(x.macroMcc.mean).toBeLessThanOrEqual(1);
        expect(Object.keys(x.perLabelAuroc)).toEqual(expect.arrayContaining(resA.macroLabels[split]));
        if (s.setting === 'clip' || s.setting === 'pretrained') expect(x.deltaVsBaseline).toBeNull();
        else {
          const d = x.deltaVsBaseline!;
          expect(d.delta).toBeCloseTo(x.macroAuroc.mean! - resA.settings.find((t) => t.setting === 'clip')!.splits[split].macroAuroc.mean!, 9);
          expect(d.lo!).toBeLessThanOrEqual(d.hi!);
          expect(d.resamples).toBeGreaterThan(0);
        }
      }
      const card = path.join(dirA, 'report-cards', s.setting, 'test', 'report.html');
      expect(fs.existsSync(card)).toBe(true);
    }
    // The macro mean is the mean of the per-label AUROCs over the macro labels.
    const clip = resA.settings.find((s) => s.setting === 'clip')!.splits.test;
    const labels = resA.macroLabels.test;
    expect(clip.macroAuroc.mean).toBeCloseTo(labels.reduce((p, l) => p + clip.perLabelAuroc[l]!, 0) / labels.length, 9);
    // Every run scored every test study, with probabilities in [0, 1].
    const r = runResult(dirA, 'both-a0.8-s0');
    expect(r.scores.test.ids.length).toBe(r.scores.shifted!.ids.length);
    expect(r.scores.test.probs.flat().every((p) => p >= 0 && p <= 1)).toBe(true);
    const md = fs.readFileSync(path.join(dirA, 'results.md'), 'utf8');
    expect(md).toContain('| setting | macro AUROC | macro F1 | macro MCC |');
    expect(md).toContain('+ sampling + relaxation');
  });

  it('sweeps α, held quantiles and margins: engagement statistics per setting and Δ against sampling alone', async () => {
    const dir = path.join(tmpRoot, 'sweep');
    const a = resolveAblationConfig([{ config: { outDir: dir, settings: ['clip', 'sampling', 'both'], alphas: [0.5], quantiles: [0.5], quantileFreezeAfter: 10, margins: [0.1], finetune: { threads: 1 } } }], { quick: true });
    const out = await runAblation(a, { commandLine: 'test' });
    expect(out.status).toBe('completed');
    expect(out.ran).toEqual(['pretrained', 'clip-s0', 'sampling-s0', 'both-a0.5-s0', 'both-q0.5h10-s0', 'both-m0.1-s0']);
    const res: AblationResults = JSON.parse(fs.readFileSync(path.join(dir, 'results.json'), 'utf8'));
    expect(res.samplingSetting).toBe('sampling');
    for (const s of res.settings) {
      if (s.setting === 'pretrained') {
        expect(s.engagement).toBeNull();
        continue;
      }
      const e = s.engagement!;
      // The statistics of every step: a share in [0, 1], ordered quantiles.
      expect(e.engaged!).toBeGreaterThanOrEqual(0);
      expect(e.engaged!).toBeLessThanOrEqual(1);
      expect(e.first.q10!).toBeLessThanOrEqual(e.first.q50!);
      expect(e.first.q50!).toBeLessThanOrEqual(e.first.q90!);
      if (!s.setting.startsWith('both')) expect(e.engaged).toBe(0);
      const d = s.splits.test.deltaVsSampling;
      if (s.setting.startsWith('both')) {
        const sampling = res.settings.find((t) => t.setting === 'sampling')!.splits.test.macroAuroc.mean!;
        expect(d!.delta).toBeCloseTo(s.splits.test.macroAuroc.mean! - sampling, 9);
      } else expect(d ?? null).toBeNull();
    }
    // The adaptive threshold engages from the first step (its α is the batch median there): about half the positives.
    const q = runResult(dir, 'both-q0.5h10-s0').lossStats!;
    expect(q.first!.engaged).toBeGreaterThanOrEqual(0.4);
    expect(q.first!.engaged).toBeLessThanOrEqual(0.6);
    expect(q.steps).toBe(res.config.finetune.maxSteps);
    const md = fs.readFileSync(path.join(dir, 'results.md'), 'utf8');
    expect(md).toContain('## How often the relaxation engages');
    expect(md).toContain('Δ AUROC vs sampling');
    expect(md).toContain('α = 50 % quantile, held after 10 steps');
    expect(md).toContain('margin m = 0.1');
  });

  it('a killed experiment continues with the runs not yet done and gives the same numbers (determinism by seed)', async () => {
    const stopped = await runAblation(quick(dirB), { stopAfterRuns: 2, commandLine: 'test' });
    expect(stopped.status).toBe('stopped');
    expect(stopped.ran).toEqual(['pretrained', 'clip-s0']);
    expect(fs.existsSync(path.join(dirB, 'results.json'))).toBe(false);
    const resumed = await runAblation(quick(dirB), { commandLine: 'test' });
    expect(resumed.status).toBe('completed');
    expect(resumed.skipped).toEqual(['pretrained', 'clip-s0']);
    expect(resumed.ran).toEqual(['sampling-s0', 'relaxed-a0.8-s0', 'both-a0.8-s0']);
    for (const id of ['clip-s0', 'both-a0.8-s0']) {
      const a = runResult(dirA, id).scores.test.probs.flat();
      const b = runResult(dirB, id).scores.test.probs.flat();
      expect(b.length).toBe(a.length);
      let maxDiff = 0;
      for (let i = 0; i < a.length; i++) maxDiff = Math.max(maxDiff, Math.abs(a[i] - b[i]));
      expect(maxDiff).toBeLessThan(1e-5);
    }
    const resB: AblationResults = JSON.parse(fs.readFileSync(path.join(dirB, 'results.json'), 'utf8'));
    for (const s of resA.settings) {
      const t = resB.settings.find((x) => x.setting === s.setting)!;
      expect(t.splits.test.macroAuroc.mean).toBeCloseTo(s.splits.test.macroAuroc.mean!, 4);
    }
    // A finished experiment re-run does nothing but rewrite the results.
    const again = await runAblation(quick(dirB), { commandLine: 'test' });
    expect(again.ran).toEqual([]);
  });

  it('refuses to mix another config into an experiment folder', async () => {
    const other = resolveAblationConfig([{ config: { outDir: dirB, alphas: [0.5] } }], { quick: true });
    await expect(runAblation(other)).rejects.toBeInstanceOf(CxrError);
  });

  it('the CLI prints the resolved config and rejects an unknown experiment', async () => {
    const chunks: string[] = [];
    const spy = jest.spyOn(process.stdout, 'write').mockImplementation((c: string | Uint8Array) => {
      chunks.push(String(c));
      return true;
    });
    const errSpy = jest.spyOn(process.stderr, 'write').mockImplementation(() => true);
    try {
      expect(await main(['experiment', 'ablation', '--quick', '--seeds', '3,4', '--print-config'])).toBe(0);
      expect(chunks.join('')).toMatch(/seeds:\n\s+- 3\n\s+- 4/);
      expect(await main(['experiment', 'nonsense'])).not.toBe(0);
    } finally {
      spy.mockRestore();
      errSpy.mockRestore();
    }
  });
});
