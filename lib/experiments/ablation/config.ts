/**
 * The ablation experiment's config: settings, defaults (`DEFAULT_ABLATION`, `QUICK_ABLATION`), layering
 * and validation, and the plan of runs with each run's training config. The runner is lib/jobs/ablation.ts.
 */
import path from 'node:path';
import { CxrError } from '../../errors';
import type { ShiftPreset } from '../../data/synthetic';
import { resolveTrainConfig } from '../../train/config';
import { TRAIN_SCHEMA } from '../../train/schema';
import type { PartialTrainConfig, TrainConfig } from '../../train/config';
import { cloneJson, mergeLayer, readLayerFile } from '../../util/layers';

/** The four settings of the paper's ablation. */
export type AblationSetting = 'clip' | 'sampling' | 'relaxed' | 'both';
/** All settings, in table order (the first is the baseline). */
export const ABLATION_SETTINGS: readonly AblationSetting[] = ['clip', 'sampling', 'relaxed', 'both'];

export const SETTING_TITLE: Record<AblationSetting, string> = {
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
  /**
   * The sweep axis of the relaxed settings: each relaxed setting runs once per fixed α, once per
   * adaptive quantile q (`loss.alpha: {quantile: q}`) and once per margin m (`loss.variant: margin`).
   * More than one value in all runs a sweep.
   */
  alphas: number[];
  quantiles: number[];
  /**
   * Quantile forms: hold α after this many fine-tuning steps (`loss.alpha.freezeAfter`), so the threshold is
   * measured on the starting model and then kept; null: α keeps following the running quantile.
   */
  quantileFreezeAfter: number | null;
  margins: number[];
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
    /** Initial logit scale of the pre-training (model.logitScale; training clamps it at 100). */
    logitScale: number;
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
  alphas: [TRAIN_SCHEMA['loss.alpha'].default as number], // the training default; add values for a sweep
  quantiles: [], // adaptive thresholds to sweep (none by default)
  quantileFreezeAfter: 30, // the fine-tuning warm-up: a running quantile that never stops follows the positives down (docs/results.md)
  margins: [], // margins to sweep (none by default)
  samplingMode: TRAIN_SCHEMA['text.mode'].default, // the training default: the paper's k ~ U{1..n}
  pretrain: { checkpoint: null, model: 'test-vit', n: 4000, seed: 7, steps: 600, batchSize: TRAIN_SCHEMA.batchSize.default, lr: TRAIN_SCHEMA['optimizer.lr'].default, logitScale: 100 },
  synthetic: { n: 2400, seed: 0, testN: 700, testSeed: 1000, findingStrength: TRAIN_SCHEMA['data.synthetic.findingStrength'].default, prevalenceScale: 1.5, shift: 'strong' as ShiftPreset },
  test: { split: 'test' as const, shifted: null },
  finetune: {
    maxSteps: 300,
    optimizer: { lr: 5e-4 },
    schedule: { warmupSteps: 30 },
    eval: { everySteps: 0, atStart: false },
    checkpoint: { everySteps: 100, keepLast: 1, keepBestBy: null },
    log: { format: 'none' as const },
  } as PartialTrainConfig,
  eval: { bootstrap: 1000, bootstrapSeed: 0, promptSet: TRAIN_SCHEMA['eval.promptSet'].default },
}) as AblationConfig;

/** The `--quick` preset: the whole pipeline in about a minute (for tests and CI), not for conclusions. */
export const QUICK_ABLATION: PartialAblationConfig = {
  seeds: [0],
  pretrain: { n: 300, steps: 40, batchSize: 16 },
  synthetic: { n: 360, testN: 120 },
  finetune: { maxSteps: 24, batchSize: 16, schedule: { warmupSteps: 4 }, checkpoint: { everySteps: 10 } } as PartialTrainConfig,
  eval: { bootstrap: 100 },
};

/** Merges one layer; `finetune` holds training config keys, checked when it is resolved as one. */
function merge(base: AblationConfig, over: unknown, source: string): AblationConfig {
  return mergeLayer(base, over, source, { loose: new Set(['finetune']) });
}

/**
 * Resolves an experiment config: defaults → `--quick` preset (when asked) → the config file → overrides,
 * then validates it (E_CONFIG names the field). The fine-tuning section is validated by resolving it
 * into a full training config.
 */
export function resolveAblationConfig(layers: Array<{ config: unknown; source?: string }>, opts: { quick?: boolean } = {}): AblationConfig {
  let a = cloneJson(DEFAULT_ABLATION) as AblationConfig;
  if (opts.quick) a = merge(a, QUICK_ABLATION, '--quick');
  for (const l of layers) a = merge(a, l.config, l.source ?? 'config');
  const bad = (key: string, msg: string): never => {
    throw new CxrError('E_CONFIG', `ablation config: "${key}" ${msg}`, { key });
  };
  if (typeof a.outDir !== 'string' || a.outDir === '') bad('outDir', 'must be a non-empty string');
  if (!Array.isArray(a.seeds) || a.seeds.length === 0 || a.seeds.some((s) => !Number.isInteger(s) || s < 0)) bad('seeds', 'must be a non-empty list of integers >= 0');
  if (new Set(a.seeds).size !== a.seeds.length) bad('seeds', 'has duplicates');
  if (!Array.isArray(a.settings) || a.settings.length === 0 || a.settings.some((s) => !ABLATION_SETTINGS.includes(s))) bad('settings', `must be a non-empty list of ${ABLATION_SETTINGS.join(', ')}`);
  if (new Set(a.settings).size !== a.settings.length) bad('settings', 'has duplicates');
  if (!Array.isArray(a.alphas) || a.alphas.some((x) => typeof x !== 'number' || !(x > 0 && x <= 1))) bad('alphas', 'must be a list of numbers in (0, 1]');
  if (!Array.isArray(a.quantiles) || a.quantiles.some((x) => typeof x !== 'number' || !(x > 0 && x <= 1))) bad('quantiles', 'must be a list of numbers in (0, 1]');
  if (!Array.isArray(a.margins) || a.margins.some((x) => typeof x !== 'number' || !(x > 0 && x <= 2))) bad('margins', 'must be a list of numbers in (0, 2]');
  if (a.quantileFreezeAfter !== null && !(Number.isInteger(a.quantileFreezeAfter) && a.quantileFreezeAfter >= 1)) bad('quantileFreezeAfter', 'must be an integer >= 1 or null');
  for (const k of ['alphas', 'quantiles', 'margins'] as const) if (new Set(a[k]).size !== a[k].length) bad(k, 'has duplicates');
  if (a.settings.some((k) => k === 'relaxed' || k === 'both') && relaxations(a).length === 0) bad('alphas', 'and quantiles and margins are all empty: the relaxed settings need at least one value');
  if (!['uniform', 'one', 'k'].includes(a.samplingMode)) bad('samplingMode', 'must be uniform, one or k');
  const p = a.pretrain;
  if (p.checkpoint !== null && (typeof p.checkpoint !== 'string' || p.checkpoint === '')) bad('pretrain.checkpoint', 'must be a path or null');
  for (const k of ['n', 'steps', 'batchSize'] as const) if (!Number.isInteger(p[k]) || p[k] < 2) bad(`pretrain.${k}`, 'must be an integer >= 2');
  if (!(p.lr > 0)) bad('pretrain.lr', 'must be > 0');
  if (!(p.logitScale > 0 && p.logitScale <= 100)) bad('pretrain.logitScale', 'must be in (0, 100]');
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
  return readLayerFile(file, 'experiment config') as PartialAblationConfig;
}

// ------------------------------------------------------------------------------------------------
// Runs

/** Zero-shot probabilities of one split: `probs[i][j]` for sample i and label j. */
export interface SplitScores {
  labels: string[];
  ids: string[];
  probs: number[][];
}

/** One point of the relaxation sweep: a fixed α, an adaptive quantile q, or a margin m. */
export interface Relaxation {
  form: 'alpha' | 'quantile' | 'margin';
  value: number;
  /** Quantile form: α held after this many steps (null or absent: running to the end). */
  hold?: number | null;
}

/** The sweep axis in order: fixed α values, then quantiles, then margins. */
export function relaxations(a: AblationConfig): Relaxation[] {
  return [
    ...a.alphas.map((value) => ({ form: 'alpha' as const, value })),
    ...a.quantiles.map((value) => ({ form: 'quantile' as const, value, hold: a.quantileFreezeAfter ?? null })),
    ...a.margins.map((value) => ({ form: 'margin' as const, value })),
  ];
}

/** Short key of a relaxation: `0.8` (α, as before the sweep had other forms), `q0.5` (running), `q0.5h30` (held after 30 steps), `m0.1`. */
export function relaxKey(r: Relaxation): string {
  if (r.form === 'alpha') return String(r.value);
  if (r.form === 'quantile') return `q${r.value}${r.hold ? `h${r.hold}` : ''}`;
  return `m${r.value}`;
}

/** Human title: `α = 0.8`, `α = running 50 % quantile`, `α = 50 % quantile, held after 30 steps`, `margin 0.1`. */
export function relaxTitle(r: Relaxation): string {
  if (r.form === 'alpha') return `α = ${r.value}`;
  if (r.form === 'quantile') {
    const pct = +(100 * r.value).toFixed(1);
    return r.hold ? `α = ${pct} % quantile, held after ${r.hold} steps` : `α = running ${pct} % quantile`;
  }
  return `margin m = ${r.value}`;
}

/** Loss statistics a fine-tuning run recorded from its steps (the fused loss reports them every step). */
export interface RunLossStats {
  /** Steps the statistics cover (the steps run in the call that finished the run). */
  steps: number;
  /** Mean over those steps of the fraction of positives the relaxation changed, and of the threshold used. */
  engagedMean: number;
  alphaMean: number;
  /** The first step of the run (the starting model on its first batch) and the last. */
  first: StepSims | null;
  last: StepSims | null;
}
/** Positive (median, 10 %, 90 %) and mean negative similarity of one step. */
export interface StepSims {
  step: number;
  posQ10: number;
  posQ50: number;
  posQ90: number;
  posMean: number;
  negMean: number;
  engaged: number;
  alpha: number;
}

/** One fine-tuning run (or the pre-trained model evaluated as is). */
export interface RunSpec {
  /** Folder name and key, e.g. `both-a0.8-s1`. */
  id: string;
  /** Setting key: `clip`, `sampling`, `relaxed@0.8`, ... or `pretrained` (no fine-tuning). */
  setting: string;
  kind: AblationSetting | 'pretrained';
  seed: number;
  /** α of the fixed-α form (null otherwise; kept for results of older versions). */
  alpha: number | null;
  /** The relaxation of a relaxed setting; null for the others. */
  relax: Relaxation | null;
}

/** What a finished run stores in its `result.json`. */
export interface RunResult extends RunSpec {
  steps: number;
  elapsedMs: number;
  finalLoss: number | null;
  /** Engagement and similarity statistics of the steps (null for the pre-trained model). */
  lossStats?: RunLossStats | null;
  scores: { validate: SplitScores; test: SplitScores; shifted: SplitScores | null };
}

/** The runs of an experiment in execution order: the pre-trained model, then seed by seed, setting by setting. */
export function planRuns(a: AblationConfig): RunSpec[] {
  const runs: RunSpec[] = [{ id: 'pretrained', setting: 'pretrained', kind: 'pretrained', seed: a.seeds[0], alpha: null, relax: null }];
  const axis = relaxations(a);
  const sweep = axis.length > 1;
  for (const seed of a.seeds) {
    for (const kind of a.settings) {
      const list: Array<Relaxation | null> = kind === 'relaxed' || kind === 'both' ? axis : [null];
      for (const relax of list) {
        const key = relax ? relaxKey(relax) : null;
        const setting = key !== null && sweep ? `${kind}@${key}` : kind;
        const idPart = relax ? `-${relax.form === 'alpha' ? 'a' : ''}${key}` : '';
        runs.push({ id: `${kind}${idPart}-s${seed}`, setting, kind, seed, alpha: relax?.form === 'alpha' ? relax.value : null, relax });
      }
    }
  }
  return runs;
}

/** The loss config of a relaxation. */
function relaxedLoss(r: Relaxation): Record<string, unknown> {
  if (r.form === 'alpha') return { kind: 'relaxed', alpha: r.value, variant: 'clamp-diag' };
  if (r.form === 'quantile') return { kind: 'relaxed', alpha: { quantile: r.value, ...(r.hold ? { freezeAfter: r.hold } : {}) }, variant: 'clamp-diag' };
  return { kind: 'relaxed', variant: 'margin', margin: r.value };
}

/** The training config of one run: identical for all settings except text mode and loss. */
export function runTrainConfig(a: AblationConfig, spec: RunSpec, modelDir: string, outDir: string): TrainConfig {
  const sampled = spec.kind === 'sampling' || spec.kind === 'both';
  const relaxed = spec.kind === 'relaxed' || spec.kind === 'both';
  if (relaxed && !spec.relax) throw new CxrError('E_INTERNAL', `run ${spec.id}: a relaxed setting without a relaxation`);
  return resolveTrainConfig([
    { config: a.finetune, source: 'finetune' },
    {
      config: {
        model: { checkpoint: modelDir },
        text: { mode: sampled ? a.samplingMode : 'full' },
        loss: relaxed ? relaxedLoss(spec.relax!) : { kind: 'clip' },
        seed: spec.seed,
        outDir,
        eval: { promptSet: a.eval.promptSet },
      },
      source: `run ${spec.id}`,
    },
  ]);
}
