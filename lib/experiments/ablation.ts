/**
 * The paper's ablation (METHOD.md §1-5), as one resumable experiment:
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
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import yaml from 'js-yaml';
import { CxrError } from '../errors';
import type { ShiftPreset } from '../data/synthetic';
import { openDataset, openSplit, type SplitSource, type SyntheticSourceOptions } from '../data/sources';
import type { Sample } from '../data/sample';
import { Trainer } from '../train/Trainer';
import { buildRunData, runDataSource } from '../train/data';
import type { RunData } from '../train/data';
import { resolveTrainConfig } from '../train/config';
import type { PartialTrainConfig, TrainConfig } from '../train/config';
import { loadPromptSet } from '../text/prompts';
import type { PromptSet } from '../text/prompts';
import { ZeroShotClassifier } from '../eval/zeroShot';
import { scoreSplit } from '../eval/scoreSplit';
import { alignPromptLabels } from '../eval/modelEncoder';
import { macroMean, perLabelAuroc, sortLabel, summarizeSorted } from '../eval/metrics';
import type { SortedLabel } from '../eval/metrics';
import { bootstrapMatrix, column, pairedPValue, percentileInterval } from '../eval/bootstrap';
import { scoreTables } from '../eval/score';
import type { ScoreResult } from '../eval/score';
import { writeReportCard } from '../eval/reportCard';
import type { CsvTable } from '../util/csv';
import { writeFileAtomic } from '../util/atomic';
import { generateShapes, shapesPromptSet } from './pretrainDomain';
import { resolveModelConfig } from '../models/registry';

/** The four settings of the paper's ablation. */
export type AblationSetting = 'clip' | 'sampling' | 'relaxed' | 'both';
/** All settings, in table order (the first is the baseline). */
export const ABLATION_SETTINGS: readonly AblationSetting[] = ['clip', 'sampling', 'relaxed', 'both'];

const SETTING_TITLE: Record<AblationSetting, string> = {
  clip: 'CLIP loss, full reports (baseline)',
  sampling: '+ sentence sampling',
  relaxed: '+ relaxation',
  both: '+ sampling + relaxation',
};

/** The experiment's configuration (every field has a default; see {@link DEFAULT_ABLATION}). */
export interface AblationConfig {
  /** Experiment folder (runs, results.json, results.md, report cards). */
  outDir: string;
  /** Fine-tuning seeds (weights order, shuffling, sentence draws); each setting runs once per seed. */
  seeds: number[];
  /** Settings to run; the first is the baseline of the paired comparisons. */
  settings: AblationSetting[];
  /** α of the relaxed settings; more than one value runs a sweep (each relaxed setting once per α). */
  alphas: number[];
  /** Sentence sampling mode of the sampling settings (`uniform`: k ~ U{1..n}, `one`, `k`). */
  samplingMode: 'uniform' | 'one' | 'k';
  /** The general-domain model the fine-tuning starts from. */
  pretrain: {
    /** A model folder / real CLIP checkpoint to start from instead of pre-training; null: pre-train on shapes. */
    checkpoint: string | null;
    /** Registry model pre-trained on the shapes domain. */
    model: string;
    /** Shapes pictures generated (10% validation). */
    n: number;
    seed: number;
    steps: number;
    batchSize: number;
    lr: number;
  };
  /** Chest X-ray data when `finetune.data.dataset` is `synthetic` (otherwise the dataset's own splits are used). */
  synthetic: {
    /** Studies generated for the train + validation splits. */
    n: number;
    /** Generator seed of train + validation. */
    seed: number;
    /** Studies generated for the test split, with a different generator seed (so nothing is shared). */
    testN: number;
    testSeed: number;
    /** Picture strength of findings (1: the generator's default; lower: subtler). */
    findingStrength: number;
    /** Multiplies every finding's prevalence (more findings per report and more sharing in a batch). */
    prevalenceScale: number;
    /** Shift preset of the shifted test split (same studies as test, other acquisition settings). */
    shift: ShiftPreset;
  };
  /** Test data when the dataset is not synthetic. */
  test: {
    /** Split of the fine-tuning dataset used as the held-out test. */
    split: 'test' | 'validate';
    /** A second dataset as the shifted test (e.g. CheXpert after MIMIC-CXR); null: none. */
    shifted: { dataset: string; root: string; split: 'test' | 'validate' | 'train'; options?: Record<string, unknown> } | null;
  };
  /** Overrides of the training config for every fine-tuning run (steps, batch, lr, model image options...). */
  finetune: PartialTrainConfig;
  /** Evaluation. */
  eval: {
    /** Bootstrap resamples for intervals and paired differences. */
    bootstrap: number;
    bootstrapSeed: number;
    /** Zero-shot prompt set (built-in name or file). */
    promptSet: string;
  };
}

type DeepPartial<T> = T extends Array<unknown> ? T : T extends object ? { [K in keyof T]?: DeepPartial<T[K]> } : T;
/** A partial experiment config, as read from a file. */
export type PartialAblationConfig = DeepPartial<AblationConfig>;

/**
 * The default experiment: sized for about 15 minutes on 2 CPU cores (pre-training ~1.5 min, 12 fine-tuning
 * runs of 300 steps with batch 32, evaluation on ~600 test studies).
 */
export const DEFAULT_ABLATION: Readonly<AblationConfig> = Object.freeze({
  outDir: 'runs/ablation',
  seeds: [0, 1, 2], // the issue's minimum: mean ± sd over 3 seeds
  settings: [...ABLATION_SETTINGS],
  alphas: [0.8], // the library default; add values for a sweep
  samplingMode: 'uniform' as const, // the paper's k ~ U{1..n}
  pretrain: { checkpoint: null, model: 'test-vit', n: 4000, seed: 7, steps: 600, batchSize: 32, lr: 1e-3 },
  synthetic: { n: 2400, seed: 0, testN: 700, testSeed: 1000, findingStrength: 1, prevalenceScale: 1.5, shift: 'strong' as ShiftPreset },
  test: { split: 'test' as const, shifted: null },
  finetune: {
    maxSteps: 300,
    batchSize: 32,
    optimizer: { lr: 5e-4 },
    schedule: { warmupSteps: 30 },
    eval: { everySteps: 0, atStart: false },
    checkpoint: { everySteps: 100, keepLast: 1, keepBestBy: null },
    log: { format: 'none' as const },
  } as PartialTrainConfig,
  eval: { bootstrap: 1000, bootstrapSeed: 0, promptSet: 'chexzero' },
}) as AblationConfig;

/** The `--quick` preset: the whole pipeline in about a minute (for tests and CI), not for conclusions. */
export const QUICK_ABLATION: PartialAblationConfig = {
  seeds: [0],
  pretrain: { n: 300, steps: 40, batchSize: 16 },
  synthetic: { n: 360, testN: 120 },
  finetune: { maxSteps: 24, batchSize: 16, schedule: { warmupSteps: 4 }, checkpoint: { everySteps: 10 }, eval: { batchSize: 64 } } as PartialTrainConfig,
  eval: { bootstrap: 100 },
};

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Deep-merges `over` into `base`, rejecting unknown keys (except inside `finetune`, validated by the trainer). */
function merge(base: Record<string, unknown>, over: unknown, source: string, prefix = ''): Record<string, unknown> {
  if (over === undefined || over === null) return base;
  if (!isObject(over)) throw new CxrError('E_CONFIG', `${source}: "${prefix || 'config'}" must be a mapping`);
  const out: Record<string, unknown> = JSON.parse(JSON.stringify(base));
  for (const [k, v] of Object.entries(over)) {
    const key = prefix ? `${prefix}.${k}` : k;
    if (!(k in base)) throw new CxrError('E_CONFIG', `${source}: unknown key "${key}" (known: ${Object.keys(base).join(', ')})`, { key });
    if (v === undefined) continue;
    if (key === 'finetune') out[k] = deepMergeLoose(out[k] as Record<string, unknown>, v);
    else if (isObject(base[k]) && isObject(v)) out[k] = merge(base[k] as Record<string, unknown>, v, source, key);
    else out[k] = JSON.parse(JSON.stringify(v));
  }
  return out;
}

function deepMergeLoose(a: Record<string, unknown>, b: unknown): Record<string, unknown> {
  if (!isObject(b)) throw new CxrError('E_CONFIG', 'finetune must be a mapping of training config keys');
  const out: Record<string, unknown> = { ...a };
  for (const [k, v] of Object.entries(b)) out[k] = isObject(v) && isObject(out[k]) ? deepMergeLoose(out[k] as Record<string, unknown>, v) : v;
  return out;
}

/**
 * Resolves an experiment config: defaults → `--quick` preset (when asked) → the config file → overrides,
 * then validates it (E_CONFIG names the field). The fine-tuning section is validated by resolving it
 * into a full training config.
 */
export function resolveAblationConfig(layers: Array<{ config: unknown; source?: string }>, opts: { quick?: boolean } = {}): AblationConfig {
  let c = JSON.parse(JSON.stringify(DEFAULT_ABLATION)) as Record<string, unknown>;
  if (opts.quick) c = merge(c, QUICK_ABLATION, '--quick');
  for (const l of layers) c = merge(c, l.config, l.source ?? 'config');
  const a = c as unknown as AblationConfig;
  const bad = (key: string, msg: string): never => {
    throw new CxrError('E_CONFIG', `ablation config: "${key}" ${msg}`, { key });
  };
  if (typeof a.outDir !== 'string' || a.outDir === '') bad('outDir', 'must be a non-empty string');
  if (!Array.isArray(a.seeds) || a.seeds.length === 0 || a.seeds.some((s) => !Number.isInteger(s) || s < 0)) bad('seeds', 'must be a non-empty list of integers >= 0');
  if (new Set(a.seeds).size !== a.seeds.length) bad('seeds', 'has duplicates');
  if (!Array.isArray(a.settings) || a.settings.length === 0 || a.settings.some((s) => !ABLATION_SETTINGS.includes(s))) bad('settings', `must be a non-empty list of ${ABLATION_SETTINGS.join(', ')}`);
  if (new Set(a.settings).size !== a.settings.length) bad('settings', 'has duplicates');
  if (!Array.isArray(a.alphas) || a.alphas.length === 0 || a.alphas.some((x) => typeof x !== 'number' || !(x > 0 && x <= 1))) bad('alphas', 'must be a non-empty list of numbers in (0, 1]');
  if (!['uniform', 'one', 'k'].includes(a.samplingMode)) bad('samplingMode', 'must be uniform, one or k');
  const p = a.pretrain;
  if (p.checkpoint !== null && (typeof p.checkpoint !== 'string' || p.checkpoint === '')) bad('pretrain.checkpoint', 'must be a path or null');
  for (const k of ['n', 'steps', 'batchSize'] as const) if (!Number.isInteger(p[k]) || p[k] < 2) bad(`pretrain.${k}`, 'must be an integer >= 2');
  if (!(p.lr > 0)) bad('pretrain.lr', 'must be > 0');
  const s = a.synthetic;
  for (const k of ['n', 'testN'] as const) if (!Number.isInteger(s[k]) || s[k] < 20) bad(`synthetic.${k}`, 'must be an integer >= 20');
  for (const k of ['seed', 'testSeed'] as const) if (!Number.isInteger(s[k]) || s[k] < 0) bad(`synthetic.${k}`, 'must be an integer >= 0');
  if (s.seed === s.testSeed) bad('synthetic.testSeed', 'must differ from synthetic.seed (the test data must not share the generator stream)');
  if (!(s.findingStrength > 0 && s.findingStrength <= 2)) bad('synthetic.findingStrength', 'must be in (0, 2]');
  if (!(s.prevalenceScale > 0 && s.prevalenceScale <= 3)) bad('synthetic.prevalenceScale', 'must be in (0, 3]');
  if (!['none', 'mild', 'strong'].includes(s.shift)) bad('synthetic.shift', 'must be none, mild or strong');
  if (!Number.isInteger(a.eval.bootstrap) || a.eval.bootstrap < 0) bad('eval.bootstrap', 'must be an integer >= 0');
  // Validates the fine-tuning overrides (unknown keys, ranges) now rather than after pre-training.
  resolveTrainConfig([{ config: a.finetune, source: 'finetune' }]);
  return a;
}

/** Reads an experiment config file (YAML or JSON). */
export function readAblationConfigFile(file: string): PartialAblationConfig {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new CxrError('E_IO', `cannot read ${file}: ${(e as Error).message}`, { path: file });
  }
  try {
    return ((/\.ya?ml$/i.test(file) ? yaml.load(text) : JSON.parse(text)) ?? {}) as PartialAblationConfig;
  } catch (e) {
    throw new CxrError('E_PARSE', `${file}: ${(e as Error).message.split('\n')[0]}`, { path: file });
  }
}

// ------------------------------------------------------------------------------------------------
// Data

type Source = SplitSource;

/** The experiment's splits. */
export interface AblationData {
  run: RunData;
  test: Source;
  shifted: Source | null;
  /** Describes where each split came from (for the results). */
  description: Record<string, string>;
}

/** Builds train / validation / test / shifted-test sources for the fine-tuning config. */
export async function buildAblationData(a: AblationConfig, tc: TrainConfig): Promise<AblationData> {
  if (tc.data.dataset === 'synthetic') {
    const s = a.synthetic;
    const size = tc.data.synthetic.size;
    const prevalence = { scale: s.prevalenceScale };
    const synthetic = (options: SyntheticSourceOptions) => openDataset({ dataset: 'synthetic', options: { ...options } });
    const main = await synthetic({ n: s.n, size, seed: s.seed, findingStrength: s.findingStrength, prevalence, splitFractions: [0.85, 0.15, 0] });
    const train = (await openSplit(main, 'train', { allowEmpty: true })).source;
    const val = (await openSplit(main, 'validate', { allowEmpty: true })).source;
    // Test: its own generator seed (no shared random stream) and patients disjoint from training (ids drawn
    // by another seed could collide by chance: such patients are dropped).
    const excludePatients = new Set([...train.samples, ...val.samples].map((x) => x.patientId));
    const testOpts: SyntheticSourceOptions = { n: s.testN, size, seed: s.testSeed, findingStrength: s.findingStrength, prevalence, splitFractions: [0, 0, 1], excludePatients };
    const test = (await openSplit(await synthetic(testOpts), 'test', { allowEmpty: true })).source;
    const shifted = s.shift === 'none' ? null : (await openSplit(await synthetic({ ...testOpts, shift: s.shift, shiftSplits: ['test'] }), 'test', { allowEmpty: true })).source;
    const run: RunData = { train, val, labelNames: main.labelNames, dataset: 'synthetic' };
    return {
      run,
      test,
      shifted,
      description: {
        train: `synthetic seed ${s.seed}, ${run.train.samples.length} studies`,
        validate: `synthetic seed ${s.seed}, ${run.val.samples.length} studies (patient-disjoint from train)`,
        test: `synthetic seed ${s.testSeed}, ${test.samples.length} studies (own generator seed, patient-disjoint)`,
        shifted: shifted ? `the test studies rendered with shift preset "${s.shift}" (contrast, noise, exposure, heart size)` : 'none',
      },
    };
  }
  const d = tc.data;
  const ds = await openDataset(runDataSource(tc));
  const run = await buildRunData(tc, ds);
  const test = (await openSplit(ds, a.test.split)).source;
  const sh = a.test.shifted;
  const shifted = sh ? (await openSplit({ dataset: sh.dataset, options: { ...(sh.options ?? {}), root: sh.root } }, sh.split, { allowEmpty: true })).source : null;
  return {
    run,
    test,
    shifted,
    description: {
      train: `${d.dataset} ${d.trainSplit}, ${run.train.samples.length} images`,
      validate: `${d.dataset} ${d.valSplit}, ${run.val.samples.length} images`,
      test: `${d.dataset} ${a.test.split}, ${test.samples.length} images`,
      shifted: sh && shifted ? `${sh.dataset} ${sh.split}, ${shifted.samples.length} images` : 'none',
    },
  };
}

// ------------------------------------------------------------------------------------------------
// Zero-shot scoring of a source with a trainer's current weights

/** Zero-shot probabilities of one split: `probs[i][j]` for sample i and label j. */
export interface SplitScores {
  labels: string[];
  ids: string[];
  probs: number[][];
}

/** Scores every image of `src` zero-shot with the trainer's current weights (the CheXzero protocol). */
export async function scoreSource(trainer: Trainer, src: Source, prompts: PromptSet, dataset: string, labelNames: string[]): Promise<SplitScores> {
  const c = trainer.config;
  const aligned = alignPromptLabels(prompts, dataset, labelNames);
  const used = aligned.used.map((l) => ({ prompt: l, name: aligned.datasetName.get(l.label)! }));
  // One image encode per loader batch.
  const clf = new ZeroShotClassifier(trainer.encoder(), { name: prompts.name, labels: aligned.used }, { cache: new Map(), imageBatchSize: c.eval.batchSize });
  const size = c.data.imageSize ?? trainer.model.imageSize;
  const r = await scoreSplit(clf, src, { batchSize: c.eval.batchSize, image: { size, geometry: c.data.geometry, normalize: c.data.normalize }, workers: c.data.workers });
  if (r.failures.length) throw new CxrError('E_DATA', `${r.failures.length} image(s) failed to load during evaluation`);
  const L = used.length;
  const ids = r.indices.map((i) => src.samples[i].id);
  const probs = r.indices.map((_, k) => Array.from(r.probs.subarray(k * L, (k + 1) * L), (v) => Math.round(v * 1e7) / 1e7));
  return { labels: used.map((u) => u.name), ids, probs };
}

// ------------------------------------------------------------------------------------------------
// Runs

/** One fine-tuning run (or the pre-trained model evaluated as is). */
export interface RunSpec {
  /** Folder name and key, e.g. `both-a0.8-s1`. */
  id: string;
  /** Setting key: `clip`, `sampling`, `relaxed@0.8`, ... or `pretrained` (no fine-tuning). */
  setting: string;
  kind: AblationSetting | 'pretrained';
  seed: number;
  alpha: number | null;
}

/** What a finished run stores in its `result.json`. */
export interface RunResult extends RunSpec {
  steps: number;
  elapsedMs: number;
  finalLoss: number | null;
  scores: { validate: SplitScores; test: SplitScores; shifted: SplitScores | null };
}

/** The runs of an experiment in execution order: the pre-trained model, then seed by seed, setting by setting. */
export function planRuns(a: AblationConfig): RunSpec[] {
  const runs: RunSpec[] = [{ id: 'pretrained', setting: 'pretrained', kind: 'pretrained', seed: a.seeds[0], alpha: null }];
  const sweep = a.alphas.length > 1;
  for (const seed of a.seeds) {
    for (const kind of a.settings) {
      const alphas = kind === 'relaxed' || kind === 'both' ? a.alphas : [null];
      for (const alpha of alphas) {
        const setting = alpha !== null && sweep ? `${kind}@${alpha}` : kind;
        runs.push({ id: `${kind}${alpha !== null ? `-a${alpha}` : ''}-s${seed}`, setting, kind, seed, alpha });
      }
    }
  }
  return runs;
}

/** The training config of one run: identical for all settings except text mode and loss. */
export function runTrainConfig(a: AblationConfig, spec: RunSpec, modelDir: string, outDir: string): TrainConfig {
  const sampled = spec.kind === 'sampling' || spec.kind === 'both';
  const relaxed = spec.kind === 'relaxed' || spec.kind === 'both';
  return resolveTrainConfig([
    { config: a.finetune, source: 'finetune' },
    {
      config: {
        model: { checkpoint: modelDir },
        text: { mode: sampled ? a.samplingMode : 'full' },
        loss: relaxed ? { kind: 'relaxed', alpha: spec.alpha! } : { kind: 'clip' },
        seed: spec.seed,
        outDir,
        eval: { promptSet: a.eval.promptSet },
      },
      source: `run ${spec.id}`,
    },
  ]);
}

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
        model: { name: p.model, checkpoint: null },
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
        log: { format: 'none' },
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

async function runOne(a: AblationConfig, spec: RunSpec, modelDir: string, data: AblationData, prompts: PromptSet, outDir: string, opts: RunAblationOptions): Promise<RunResult | null> {
  const dir = path.join(outDir, 'runs', spec.id);
  const tc = runTrainConfig(a, spec, modelDir, path.join(dir, 'train'));
  const trainer = new Trainer(tc, { resume: 'auto', signal: opts.signal, data: data.run });
  try {
    let steps = 0;
    let elapsedMs = 0;
    let finalLoss: number | null = null;
    if (spec.kind === 'pretrained') await trainer.setup();
    else {
      const r = await trainer.fit();
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
    const res: RunResult = { ...spec, steps, elapsedMs, finalLoss, scores };
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
  const outDir = path.resolve(a.outDir);
  fs.mkdirSync(outDir, { recursive: true });
  // A different config in the same folder would mix incomparable runs.
  const cfgFile = path.join(outDir, 'ablation-config.json');
  const saved = readJson<AblationConfig>(cfgFile);
  const { outDir: _o, ...cmp } = a;
  if (saved) {
    const { outDir: _s, ...savedCmp } = saved;
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
    opts.log?.(`run ${spec.id} done in ${((Date.now() - tr) / 1000).toFixed(0)} s: test macro AUROC ${fmt(macroAurocOf(r.scores.test, data.test.samples))}`);
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

// ------------------------------------------------------------------------------------------------
// Aggregation

/** Truth matrix of a split aligned with `scores` (1, 0, -1, NaN). */
function truthOf(scores: SplitScores, samples: Sample[]): number[][] {
  const byId = new Map(samples.map((s) => [s.id, s]));
  return scores.ids.map((id) => scores.labels.map((l) => byId.get(id)?.labels[l] ?? NaN));
}

/** AUROC per label of a run's scores against the split's truth (rows aligned with `scores.ids`). */
function labelAurocs(scores: SplitScores, truth: number[][]): Record<string, number | null> {
  return perLabelAuroc(scores.labels, truth.flat(), scores.probs.flat());
}

function macroAurocOf(scores: SplitScores, samples: Sample[]): number | null {
  const m = macroMean(labelAurocs(scores, truthOf(scores, samples))).mean;
  return Number.isNaN(m) ? null : m;
}

function table(header: string[], rows: Array<Array<string | number>>, source: string): CsvTable {
  return { header, rows: rows.map((r) => r.map((v) => (typeof v === 'number' ? (Number.isNaN(v) ? '' : String(v)) : v))), source };
}

/** Scores one run's split through the `cxr-train score` pipeline (thresholds fitted on validation). */
function scoreRun(r: RunResult, split: 'test' | 'shifted', data: AblationData, bootstrap: number, seed: number, curves: boolean): ScoreResult {
  const s = r.scores[split]!;
  const samples = (split === 'test' ? data.test : data.shifted!).samples;
  const byId = new Map(samples.map((x) => [x.id, x]));
  const valById = new Map(data.run.val.samples.map((x) => [x.id, x]));
  const header = ['id', 'patient_id', ...s.labels];
  const truthRows = s.ids.map((id) => [id, byId.get(id)!.patientId, ...s.labels.map((l) => byId.get(id)!.labels[l] ?? NaN)]);
  const v = r.scores.validate;
  return scoreTables(
    {
      truth: table(header, truthRows, `${split} truth`),
      pred: table(['id', ...s.labels], s.ids.map((id, i) => [id, ...s.probs[i]]), `${r.id} ${split}`),
      valTruth: table(['id', ...v.labels], v.ids.map((id) => [id, ...v.labels.map((l) => valById.get(id)!.labels[l] ?? NaN)]), 'validate truth'),
      valPred: table(['id', ...v.labels], v.ids.map((id, i) => [id, ...v.probs[i]]), `${r.id} validate`),
    },
    { bootstrap, seed, curves, patientCol: 'patient_id' },
  );
}

/** Mean and sample standard deviation (sd null for one value). */
function meanSd(xs: Array<number | null>): { mean: number | null; sd: number | null; n: number } {
  const v = xs.filter((x): x is number => x !== null && Number.isFinite(x));
  if (v.length === 0) return { mean: null, sd: null, n: 0 };
  const m = v.reduce((p, x) => p + x, 0) / v.length;
  const sd = v.length > 1 ? Math.sqrt(v.reduce((p, x) => p + (x - m) ** 2, 0) / (v.length - 1)) : null;
  return { mean: m, sd, n: v.length };
}

/** One setting's numbers on one split. */
export interface SettingSplitResult {
  macroAuroc: { mean: number | null; sd: number | null; n: number; perSeed: Array<number | null> };
  macroF1: { mean: number | null; sd: number | null; n: number };
  macroMcc: { mean: number | null; sd: number | null; n: number };
  /** Per-label AUROC, mean over seeds. */
  perLabelAuroc: Record<string, number | null>;
  /** Setting minus baseline, macro AUROC averaged over seeds, paired bootstrap over test patients. */
  deltaVsBaseline: { delta: number | null; lo: number | null; hi: number | null; p: number | null; resamples: number } | null;
}

/** The experiment's results (results.json). */
export interface AblationResults {
  createdAt: string;
  commandLine: string;
  commit: string | null;
  machine: string;
  elapsedMs: number;
  config: AblationConfig;
  data: Record<string, string>;
  pretrain: unknown;
  baseline: string;
  /** Labels in the macro means of each split (both classes present). */
  macroLabels: Record<string, string[]>;
  settings: Array<{ setting: string; title: string; alpha: number | null; seeds: number[]; splits: Record<string, SettingSplitResult> }>;
}

function settingTitle(setting: string): string {
  if (setting === 'pretrained') return 'pre-trained, no fine-tuning';
  const [kind, alpha] = setting.split('@');
  return SETTING_TITLE[kind as AblationSetting] + (alpha ? ` (α = ${alpha})` : '');
}

/**
 * Paired bootstrap over test rows (resampled by patient) of mean over seeds of
 * macroAUROC(setting, seed) − macroAUROC(baseline, seed), on a fixed label set.
 */
function pairedMacroDelta(runsA: RunResult[], runsB: RunResult[], split: 'test' | 'shifted', truth: number[][], labels: string[], clusters: string[], resamples: number, seed: number) {
  const sorted = (runs: RunResult[]) =>
    runs.map((r) => {
      const s = r.scores[split]!;
      return labels.map((l) => {
        const j = s.labels.indexOf(l);
        return sortLabel(truth.map((row) => row[j]), s.probs.map((row) => row[j]));
      });
    });
  const A = sorted(runsA);
  const B = sorted(runsB);
  const macro = (sl: SortedLabel[], w?: Float64Array): number => {
    let sum = 0;
    for (const x of sl) sum += summarizeSorted(x, w).auroc;
    return sum / sl.length;
  };
  const stat = (w?: Float64Array): number => {
    let d = 0;
    for (let k = 0; k < A.length; k++) d += macro(A[k], w) - macro(B[k], w);
    return d / A.length;
  };
  const delta = stat();
  if (resamples === 0) return { delta: Number.isFinite(delta) ? delta : null, lo: null, hi: null, p: null, resamples: 0 };
  const m = bootstrapMatrix(truth.length, 1, (w, out) => {
    out[0] = stat(w);
  }, { resamples, seed, clusters });
  const d = column(m, 0);
  const iv = percentileInterval(d);
  const fin = (x: number) => (Number.isFinite(x) ? x : null);
  return { delta: fin(delta), lo: fin(iv.lo), hi: fin(iv.hi), p: fin(pairedPValue(d)), resamples: iv.n };
}

function gitCommit(): string | null {
  try {
    return execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: path.resolve(__dirname, '..', '..'), stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim() || null;
  } catch {
    return null;
  }
}

function aggregate(a: AblationConfig, results: RunResult[], data: AblationData, extra: { pretrain: unknown; elapsedMs: number; commandLine: string }): AblationResults {
  const bySetting = new Map<string, RunResult[]>();
  for (const r of results) {
    if (!bySetting.has(r.setting)) bySetting.set(r.setting, []);
    bySetting.get(r.setting)!.push(r);
  }
  const baseline = planRuns(a).find((r) => r.kind !== 'pretrained')!.setting;
  const splits: Array<'test' | 'shifted'> = data.shifted ? ['test', 'shifted'] : ['test'];
  const macroLabels: Record<string, string[]> = {};
  const out: AblationResults['settings'] = [];
  const truths: Record<string, number[][]> = {};
  const clusters: Record<string, string[]> = {};
  for (const split of splits) {
    const ref = results[0].scores[split]!;
    const samples = (split === 'test' ? data.test : data.shifted!).samples;
    truths[split] = truthOf(ref, samples);
    const byId = new Map(samples.map((x) => [x.id, x.patientId]));
    clusters[split] = ref.ids.map((id) => byId.get(id)!);
    // Labels with both classes in this split, the same for every setting.
    macroLabels[split] = ref.labels.filter((_, j) => {
      const col = truths[split].map((r) => r[j]);
      return col.includes(1) && col.includes(0);
    });
  }
  for (const [setting, runs] of bySetting) {
    runs.sort((x, y) => x.seed - y.seed);
    const entry = { setting, title: settingTitle(setting), alpha: runs[0].alpha, seeds: runs.map((r) => r.seed), splits: {} as Record<string, SettingSplitResult> };
    for (const split of splits) {
      const labels = macroLabels[split];
      const per = runs.map((r) => labelAurocs(r.scores[split]!, truths[split]));
      const macroPerSeed = per.map((p) => {
        const m = macroMean(p, labels).mean;
        return Number.isNaN(m) ? null : m;
      });
      const scored = runs.map((r) => scoreRun(r, split, data, 0, a.eval.bootstrapSeed, false));
      const perLabelMean: Record<string, number | null> = {};
      for (const l of runs[0].scores[split]!.labels) perLabelMean[l] = meanSd(per.map((p) => p[l])).mean;
      let delta: SettingSplitResult['deltaVsBaseline'] = null;
      if (setting !== baseline && setting !== 'pretrained' && bySetting.has(baseline)) {
        // Pair runs by seed.
        const base = bySetting.get(baseline)!;
        const pairsA: RunResult[] = [];
        const pairsB: RunResult[] = [];
        for (const r of runs) {
          const b = base.find((x) => x.seed === r.seed);
          if (b) {
            pairsA.push(r);
            pairsB.push(b);
          }
        }
        if (pairsA.length) delta = pairedMacroDelta(pairsA, pairsB, split, truths[split], labels, clusters[split], a.eval.bootstrap, a.eval.bootstrapSeed);
      }
      entry.splits[split] = {
        macroAuroc: { ...meanSd(macroPerSeed), perSeed: macroPerSeed },
        macroF1: meanSd(scored.map((s) => s.macro.f1)),
        macroMcc: meanSd(scored.map((s) => s.macro.mcc)),
        perLabelAuroc: perLabelMean,
        deltaVsBaseline: delta,
      };
    }
    out.push(entry);
  }
  return {
    createdAt: new Date().toISOString(),
    commandLine: extra.commandLine,
    commit: gitCommit(),
    machine: `${os.cpus()[0]?.model ?? 'unknown CPU'}, ${os.cpus().length} logical cores, ${os.platform()} ${os.arch()}, node ${process.version}`,
    elapsedMs: extra.elapsedMs,
    config: a,
    data: data.description,
    pretrain: extra.pretrain,
    baseline,
    macroLabels,
    settings: out,
  };
}

/** Report card per setting, of its first seed, on the test split (and the shifted one), with bootstrap CIs. */
function writeReportCards(a: AblationConfig, results: RunResult[], data: AblationData, outDir: string): void {
  const first = new Map<string, RunResult>();
  for (const r of [...results].sort((x, y) => x.seed - y.seed)) if (!first.has(r.setting)) first.set(r.setting, r);
  for (const [setting, r] of first) {
    for (const split of data.shifted ? (['test', 'shifted'] as const) : (['test'] as const)) {
      const res = scoreRun(r, split, data, a.eval.bootstrap, a.eval.bootstrapSeed, true);
      const dir = path.join(outDir, 'report-cards', setting.replace(/[^\w.@-]/g, '_'), split);
      writeReportCard(dir, res, { title: `Ablation: ${settingTitle(setting)}, seed ${r.seed}, ${split}`, dataset: data.run.dataset, testSplit: split, thresholdSplit: 'validate', config: { setting, seed: r.seed, alpha: r.alpha } });
    }
  }
}

function fmt(v: number | null | undefined, d = 3): string {
  return v === null || v === undefined || !Number.isFinite(v) ? 'n/a' : v.toFixed(d);
}
function pm(x: { mean: number | null; sd: number | null }): string {
  return x.sd === null ? fmt(x.mean) : `${fmt(x.mean)} ± ${fmt(x.sd)}`;
}
function signed(v: number | null): string {
  return v === null ? 'n/a' : (v >= 0 ? '+' : '−') + Math.abs(v).toFixed(3);
}

/** The results as markdown: the main table, per-label AUROC, and the provenance. */
export function resultsMarkdown(r: AblationResults): string {
  const splits = Object.keys(r.macroLabels);
  const L: string[] = [];
  L.push('# Ablation results', '');
  L.push(`Generated by \`cxr-train experiment ablation\` on ${r.createdAt}; ${(r.elapsedMs / 60000).toFixed(1)} min wall time.`, '');
  L.push(`- command: \`${r.commandLine}\``, `- commit: ${r.commit ?? 'unknown'}`, `- machine: ${r.machine}`);
  L.push(`- seeds: ${r.config.seeds.join(', ')}; α: ${r.config.alphas.join(', ')}; sampling mode: ${r.config.samplingMode}; fine-tuning: ${JSON.stringify(r.config.finetune)}`);
  for (const [k, v] of Object.entries(r.data)) L.push(`- ${k}: ${v}`);
  L.push('');
  for (const split of splits) {
    L.push(`## ${split === 'test' ? 'Held-out test split' : 'Shifted test split'}`, '');
    L.push(`Zero-shot (CheXzero prompts), macro over ${r.macroLabels[split].length} labels: mean ± sd over seeds. F1/MCC at per-label thresholds fitted (max MCC) on validation. Δ: macro AUROC minus the baseline, averaged over seeds, 95% paired bootstrap CI (${r.config.eval.bootstrap} resamples by patient) and p.`, '');
    L.push('| setting | macro AUROC | macro F1 | macro MCC | Δ AUROC vs baseline [95% CI] | p |', '|---|---|---|---|---|---|');
    for (const s of r.settings) {
      const x = s.splits[split];
      const d = x.deltaVsBaseline;
      const dtxt = s.setting === r.baseline ? '(baseline)' : d ? `${signed(d.delta)} [${signed(d.lo)}, ${signed(d.hi)}]` : '—';
      L.push(`| ${s.title} | ${pm(x.macroAuroc)} | ${pm(x.macroF1)} | ${pm(x.macroMcc)} | ${dtxt} | ${d && d.p !== null ? d.p.toFixed(3) : ''} |`);
    }
    L.push('');
    const labels = r.macroLabels[split];
    L.push(`Per-label AUROC (mean over seeds), ${split}:`, '');
    L.push(`| setting | ${labels.join(' | ')} |`, `|---|${labels.map(() => '---').join('|')}|`);
    for (const s of r.settings) L.push(`| ${s.title} | ${labels.map((l) => fmt(s.splits[split].perLabelAuroc[l])).join(' | ')} |`);
    L.push('');
  }
  return L.join('\n');
}
