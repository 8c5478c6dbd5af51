/**
 * The ablation job (`cxr-train experiment ablation`). The paper's ablation (METHOD.md §1-5), as one resumable experiment:
 *
 *   pre-train a small CLIP on an unrelated image-text domain (pretrainDomain.ts), or take a given
 *   checkpoint → fine-tune it on the chest X-ray training split under four settings (CLIP loss + full
 *   reports; + sentence sampling; + relaxation; + both) with identical steps, batch, lr and seeds, over
 *   several seeds and optionally several α → zero-shot scores on validation, a held-out test split and a
 *   shifted test split → per-label and macro AUROC, F1/MCC at thresholds fitted on validation, mean ± sd
 *   over seeds, paired (patient-clustered) bootstrap CIs of each setting minus the baseline → results.json,
 *   results.md and a report card per setting.
 *
 * Every unit of work (pre-training, each fine-tuning run) writes its own `result.json` atomically when it
 * finishes, and runs inside its own Trainer folder with periodic checkpoints, so a killed experiment
 * re-run with the same config skips finished units and resumes the interrupted one exactly.
 */
import fs from 'node:fs';
import path from 'node:path';
import { CxrError } from '../errors';
import { Trainer } from '../train/Trainer';
import { resolveTrainConfig } from '../train/config';
import { loadPromptSet } from '../text/prompts';
import type { PromptSet } from '../text/prompts';
import { writeFileAtomic } from '../util/atomic';
import { generateShapes, shapesPromptSet } from '../experiments/pretrainDomain';
import { resolveModelConfig } from '../models/registry';
import { planRuns, runTrainConfig, type AblationConfig, type RunLossStats, type RunResult, type RunSpec, type StepSims } from '../experiments/ablation/config';
import type { StepEvent } from '../train/Trainer';
import type { AblationData } from '../experiments/ablation/data';
import { buildAblationData, scoreSource } from '../experiments/ablation/data';
import { aggregate, macroAurocOf, writeReportCards, type AblationResults } from '../experiments/ablation/aggregate';
import { fmt, resultsMarkdown } from '../experiments/ablation/markdown';
import { ensureOutDir } from '../util/paths';

/** Progress messages of {@link runAblation}. */
export type AblationLog = (line: string) => void;

/** Options of {@link runAblation}. */
export interface RunAblationOptions {
  /** Progress lines (default: none). */
  log?: AblationLog;
  /** Stop after this many runs were started in this call (tests: simulate a killed experiment). */
  stopAfterRuns?: number;
  /** Stops after the current training step; the run's checkpoint lets a re-run continue it. */
  signal?: AbortSignal;
  /** Also write the results markdown here (e.g. docs/results.md). */
  markdownCopy?: string;
  /** The command line shown in the results (default: process.argv). */
  commandLine?: string;
}

/** Outcome of {@link runAblation}. */
export interface AblationOutcome {
  status: 'completed' | 'stopped';
  /** Runs done in this call / skipped because they were already done. */
  ran: string[];
  skipped: string[];
  results: AblationResults | null;
  outDir: string;
}

function readJson<T>(file: string): T | null {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as T;
  } catch {
    return null;
  }
}

function writeJson(file: string, v: unknown): void {
  writeFileAtomic(file, JSON.stringify(v, (_k, x) => (typeof x === 'number' && !Number.isFinite(x) ? null : x), 1) + '\n');
}

/** Pre-trains on the shapes domain (resumable); returns the model folder. */
async function pretrain(a: AblationConfig, outDir: string, opts: RunAblationOptions): Promise<{ modelDir: string; summary: unknown }> {
  if (a.pretrain.checkpoint) return { modelDir: path.resolve(a.pretrain.checkpoint), summary: { checkpoint: a.pretrain.checkpoint } };
  const dir = path.join(outDir, 'pretrain');
  const done = readJson<{ modelDir: string; summary: unknown }>(path.join(dir, 'result.json'));
  if (done && fs.existsSync(done.modelDir)) return done;
  fs.mkdirSync(dir, { recursive: true });
  const p = a.pretrain;
  const promptFile = path.join(dir, 'shapes-prompts.json');
  writeFileAtomic(promptFile, JSON.stringify(shapesPromptSet(), null, 2) + '\n');
  const ft = resolveTrainConfig([{ config: a.finetune, source: 'finetune' }]);
  const tc = resolveTrainConfig([
    {
      config: {
        model: { name: p.model, checkpoint: null, logitScale: p.logitScale },
        data: { geometry: ft.data.geometry, normalize: ft.data.normalize, imageSize: ft.data.imageSize, workers: ft.data.workers },
        text: { mode: 'full', sections: 'all' },
        loss: { kind: 'clip' },
        optimizer: { lr: p.lr },
        schedule: { warmupSteps: Math.max(1, Math.round(p.steps / 10)) },
        batchSize: p.batchSize,
        maxSteps: p.steps,
        seed: p.seed,
        device: ft.device,
        threads: ft.threads,
        outDir: path.join(dir, 'train'),
        eval: { everySteps: 0, atStart: false, promptSet: promptFile },
        checkpoint: { everySteps: Math.max(10, Math.round(p.steps / 4)), keepLast: 1, keepBestBy: null },
        // The fine-tuning runs' log files (metrics.jsonl, TensorBoard) for the pre-training run too.
        log: { format: 'none', to: ft.log.to },
      },
      source: 'pretrain',
    },
  ]);
  const model = loadModelSize(p.model);
  const shapes = generateShapes({ n: p.n, size: model, seed: p.seed });
  opts.log?.(`pre-training ${p.model} on the shapes domain: ${shapes.train.samples.length} pictures, ${p.steps} steps`);
  const trainer = new Trainer(tc, { resume: 'auto', signal: opts.signal, data: { train: shapes.train, val: shapes.val, labelNames: shapes.labelNames, dataset: 'shapes' } });
  try {
    const r = await trainer.fit();
    if (r.status !== 'completed') return { modelDir: '', summary: null };
    const summary = { steps: r.step, elapsedMs: r.elapsedMs, finalLoss: r.losses.at(-1) ?? null, shapesZeroShot: r.finalEval };
    const out = { modelDir: r.modelDir!, summary };
    writeJson(path.join(dir, 'result.json'), out);
    fs.rmSync(path.join(dir, 'train', 'checkpoints'), { recursive: true, force: true });
    opts.log?.(`pre-training done in ${(r.elapsedMs / 1000).toFixed(0)} s; shapes zero-shot macro AUROC ${fmt(r.finalEval?.macroAuroc ?? null)}`);
    return out;
  } finally {
    await trainer.dispose();
  }
}

function loadModelSize(name: string): number {
  // The registry's image size, without instantiating a model.
  return resolveModelConfig(name).vision.imageSize;
}

/** Collects a run's loss statistics from its step events. */
function lossStatsCollector(): { on: (e: StepEvent) => void; result: () => RunLossStats } {
  let n = 0;
  let engaged = 0;
  let alpha = 0;
  let first: StepSims | null = null;
  let last: StepSims | null = null;
  return {
    on: (e) => {
      const sims: StepSims = { step: e.step, posQ10: e.posSimQ10, posQ50: e.posSimQ50, posQ90: e.posSimQ90, posMean: e.posSimMean, negMean: e.negSimMean, engaged: e.relaxEngaged, alpha: e.relaxAlpha };
      if (!first) first = sims;
      last = sims;
      n++;
      engaged += e.relaxEngaged;
      alpha += e.relaxAlpha;
    },
    result: () => ({ steps: n, engagedMean: n ? engaged / n : NaN, alphaMean: n ? alpha / n : NaN, first, last }),
  };
}

async function runOne(a: AblationConfig, spec: RunSpec, modelDir: string, data: AblationData, prompts: PromptSet, outDir: string, opts: RunAblationOptions): Promise<RunResult | null> {
  const dir = path.join(outDir, 'runs', spec.id);
  const tc = runTrainConfig(a, spec, modelDir, path.join(dir, 'train'));
  const trainer = new Trainer(tc, { resume: 'auto', signal: opts.signal, data: data.run });
  try {
    let steps = 0;
    let elapsedMs = 0;
    let finalLoss: number | null = null;
    let lossStats: RunLossStats | null = null;
    if (spec.kind === 'pretrained') await trainer.setup();
    else {
      const stats = lossStatsCollector();
      trainer.on('step', stats.on);
      const r = await trainer.fit();
      lossStats = stats.result();
      if (r.status !== 'completed') return null;
      steps = r.step;
      elapsedMs = r.elapsedMs;
      finalLoss = r.losses.at(-1) ?? null;
    }
    const ds = data.run.dataset;
    const names = data.run.labelNames;
    const scores = {
      validate: await scoreSource(trainer, data.run.val, prompts, ds, names),
      test: await scoreSource(trainer, data.test, prompts, ds, names),
      shifted: data.shifted ? await scoreSource(trainer, data.shifted, prompts, ds, names) : null,
    };
    const res: RunResult = { ...spec, steps, elapsedMs, finalLoss, lossStats, scores };
    writeJson(path.join(dir, 'result.json'), res);
    // The run is done: its optimizer checkpoints only served resuming (the final weights stay in train/model).
    fs.rmSync(path.join(dir, 'train', 'checkpoints'), { recursive: true, force: true });
    return res;
  } finally {
    await trainer.dispose();
  }
}

/**
 * Runs (or continues) the whole experiment and writes `results.json`, `results.md` and one report card
 * per setting (`report-cards/<setting>/report.html`) in `a.outDir`. Finished runs are skipped; an
 * interrupted run continues from its last checkpoint.
 */
export async function runAblation(a: AblationConfig, opts: RunAblationOptions = {}): Promise<AblationOutcome> {
  const t0 = Date.now();
  const outDir = ensureOutDir(a.outDir, 'outDir', { create: true });
  // A different config in the same folder would mix incomparable runs.
  const cfgFile = path.join(outDir, 'ablation-config.json');
  const saved = readJson<AblationConfig>(cfgFile);
  // The folder and the runs' logging (console, metrics.jsonl, TensorBoard) change nothing they compute.
  const comparable = (c: AblationConfig) => {
    const { outDir: _o, ...rest } = c;
    const { log: _l, ...finetune } = (rest.finetune ?? {}) as Record<string, unknown>;
    return { ...rest, finetune };
  };
  const cmp = comparable(a);
  if (saved) {
    const savedCmp = comparable(saved);
    if (JSON.stringify(savedCmp) !== JSON.stringify(cmp)) throw new CxrError('E_CONFIG', `${outDir} holds an experiment with another config (${cfgFile}); use another outDir or the same config`);
  } else writeJson(cfgFile, a);

  const ran: string[] = [];
  const skipped: string[] = [];
  const pre = await pretrain(a, outDir, opts);
  if (!pre.modelDir) return { status: 'stopped', ran, skipped, results: null, outDir };
  const tc0 = runTrainConfig(a, planRuns(a)[0], pre.modelDir, path.join(outDir, 'tmp'));
  const data = await buildAblationData(a, tc0);
  const prompts = loadPromptSet(a.eval.promptSet);
  const runs = planRuns(a);
  const results: RunResult[] = [];
  let started = 0;
  for (const spec of runs) {
    const file = path.join(outDir, 'runs', spec.id, 'result.json');
    const done = readJson<RunResult>(file);
    if (done) {
      results.push(done);
      skipped.push(spec.id);
      continue;
    }
    if (opts.stopAfterRuns !== undefined && started >= opts.stopAfterRuns) return { status: 'stopped', ran, skipped, results: null, outDir };
    if (opts.signal?.aborted) return { status: 'stopped', ran, skipped, results: null, outDir };
    started++;
    const tr = Date.now();
    opts.log?.(`run ${spec.id} (${runs.indexOf(spec) + 1}/${runs.length})...`);
    const r = await runOne(a, spec, pre.modelDir, data, prompts, outDir, opts);
    if (!r) return { status: 'stopped', ran, skipped, results: null, outDir };
    results.push(r);
    ran.push(spec.id);
    const ls = r.lossStats;
    const sims = ls && ls.first && ls.last ? `; s+ median ${fmt(ls.first.posQ50, 2)} → ${fmt(ls.last.posQ50, 2)}, relaxed ${fmt(100 * ls.engagedMean, 0)}% of positives` : '';
    opts.log?.(`run ${spec.id} done in ${((Date.now() - tr) / 1000).toFixed(0)} s: test macro AUROC ${fmt(macroAurocOf(r.scores.test, data.test.samples))}${sims}`);
  }
  const res = aggregate(a, results, data, { pretrain: pre.summary, elapsedMs: Date.now() - t0, commandLine: opts.commandLine ?? process.argv.slice(1).join(' ') });
  writeJson(path.join(outDir, 'results.json'), res);
  const md = resultsMarkdown(res);
  writeFileAtomic(path.join(outDir, 'results.md'), md);
  if (opts.markdownCopy) {
    fs.mkdirSync(path.dirname(path.resolve(opts.markdownCopy)), { recursive: true });
    writeFileAtomic(opts.markdownCopy, md);
  }
  writeReportCards(a, results, data, outDir);
  return { status: 'completed', ran, skipped, results: res, outDir };
}
