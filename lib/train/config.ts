/**
 * The training configuration: every default in one place, each with a one-line reason (principle 9).
 * A run's config is merged defaults → config file (YAML or JSON) → CLI flags, validated (unknown keys
 * are named, E_CONFIG), printed at start and saved inside every checkpoint.
 *
 * The defaults ARE the embedded default job: synthetic data generated in memory and the tiny `test-vit`
 * model, a few hundred steps on 2 CPU cores. A real run (MIMIC-CXR + a CLIP checkpoint) overrides model,
 * data and optimizer; see examples/ and docs/training.md.
 */
import path from 'node:path';
import yaml from 'js-yaml';
import { CxrError } from '../errors';
import { cloneJson, isPlainObject, mergeLayer, readLayerFile } from '../util/layers';
import type { AugmentOptions, Geometry } from '../data/images';
import type { Split } from '../data/sample';
import { DEFAULT_SAMPLER_OPTIONS, type SamplingMode, type SectionChoice } from '../text/sentenceSampler';

/** Which model to train. */
export interface ModelSection {
  /** Registry name (`test-vit`, `ViT-B/32`, `RN50`, ...) used when `checkpoint` is null. */
  name: string;
  /** A model folder written by `ClipModel.save` / a training checkpoint folder; null: fresh weights. */
  checkpoint: string | null;
  /** Tokenizer file or folder (CLIP BPE / WordPiece); null: the vocabulary shipped with cxr-train. */
  tokenizer: string | null;
}

/** Where the pairs come from and how images are prepared. */
export interface DataSection {
  /** `synthetic` (generated in memory), `shards` (packed by `cxr-train prepare`), or an adapter name (`mimic-cxr`, `chexpert`, ...). */
  dataset: string;
  /** Dataset root (adapters) or shard folder (`shards`); unused for `synthetic`. */
  root: string | null;
  /** Extra adapter options (e.g. `{ views: ['PA','AP'], reportsRoot: ... }`), passed through. */
  options: Record<string, unknown>;
  /** Split trained on. */
  trainSplit: Split;
  /** Split used for validation (loss + zero-shot AUROC). */
  valSplit: Split;
  /** The synthetic generator (dataset `synthetic` only). */
  synthetic: { n: number; size: number; seed: number; findingStrength: number };
  /** Input side in pixels; null: the model's image size. */
  imageSize: number | null;
  /** `pad` (CheXzero), `crop` (CLIP) or `stretch`. */
  geometry: Geometry;
  /** Pixel normalisation preset. */
  normalize: 'clip' | 'chexzero' | 'none';
  /** Training augmentations; null for none. */
  augment: AugmentOptions | null;
  /** Decoder worker threads for image files (ignored for in-memory data). */
  workers: number;
}

/** Sentence sampling (METHOD.md §3). */
export interface TextSection {
  mode: SamplingMode;
  /** Sentences per sample in mode `k`. */
  k: number | null;
  sections: SectionChoice;
  /** Text of a report with no usable sentence. */
  fallbackText: string;
  /** Drop sentences that only compare with prior studies (`cxr-train report --drop-comparison` shows the effect). */
  dropComparisonOnly: boolean;
  /** Drop repeated sentences, keeping the first (`report --drop-duplicates`). */
  dropDuplicates: boolean;
  /** Also end sentences at semicolons (`report --semicolons`). */
  semicolons: boolean;
  /** Use the report body when the chosen sections are empty. */
  sectionFallback: boolean;
  /** Remove de-identification placeholders ("___", "XXXX") and the word that introduces them. */
  removePlaceholders: boolean;
}

/** The contrastive loss (METHOD.md §1-2). */
export interface LossSection {
  kind: 'clip' | 'relaxed';
  /** Positive-pair threshold α in (0, 1] (relaxed only). */
  alpha: number;
  variant: 'clamp-diag' | 'clamp-numerator';
}

/** The optimizer; the learning rate per step comes from the schedule. */
export interface OptimizerSection {
  kind: 'adamw' | 'sgd';
  /** Peak learning rate. */
  lr: number;
  weightDecay: number;
  betas: [number, number];
  eps: number;
  /** SGD momentum. */
  momentum: number;
}

/** Linear warm-up then cosine decay to `minLrRatio × lr` (see schedule.ts). */
export interface ScheduleSection {
  warmupSteps: number;
  minLrRatio: number;
}

/**
 * Freezing per tower: `false` trains it, `true` freezes it whole, a number N freezes all but its last N
 * transformer/residual blocks (its final norm and projection stay trainable).
 */
export interface FreezeSection {
  image: boolean | number;
  text: boolean | number;
}

/** Periodic validation. */
export interface EvalSection {
  /** Validate every N optimizer steps (and at the end); 0: only at the end. */
  everySteps: number;
  /** Also validate before the first step (the "before" number). */
  atStart: boolean;
  /** Zero-shot prompt set: a built-in name or a JSON/YAML file. */
  promptSet: string;
  /** Images per encode / validation-loss batch. */
  batchSize: number;
  /** Use at most this many validation images (the first ones); null: all. */
  maxSamples: number | null;
}

/** Checkpointing. */
export interface CheckpointSection {
  /** Write a checkpoint every N steps (and at the end / on stop); 0: only at the end. */
  everySteps: number;
  /** Keep the last K periodic checkpoints (the best one is kept besides). */
  keepLast: number;
  /** Metric that picks the best checkpoint: `macroAuroc` (higher is better) or `valLoss` (lower); null: none. */
  keepBestBy: 'macroAuroc' | 'valLoss' | null;
}

/** Console and file logging. */
export interface LogSection {
  /** `auto` (bar on a TTY, plain lines otherwise), `bar`, `plain`, `json` (JSON lines on stdout) or `none`. */
  format: 'auto' | 'bar' | 'plain' | 'json' | 'none';
  /** Plain/JSON console lines every N steps. */
  everySteps: number;
}

/**
 * Data parallelism (used when the process runs under `--nproc` or torchrun's environment; see
 * lib/train/distributed.ts and docs/distributed.md).
 */
export interface DistributedSection {
  /** `auto` (NCCL on CUDA when built with it, else Gloo), `gloo` or `nccl`. */
  backend: 'auto' | 'gloo' | 'nccl';
  /** Rendezvous and collective timeout: a rank that hangs this long stops the job. */
  timeoutSec: number;
  /** Gradient all-reduce bucket size in MiB. */
  bucketMb: number;
}

/** The whole training configuration. Every field is present after {@link resolveTrainConfig}. */
export interface TrainConfig {
  model: ModelSection;
  data: DataSection;
  text: TextSection;
  loss: LossSection;
  optimizer: OptimizerSection;
  schedule: ScheduleSection;
  /**
   * Pairs per micro-batch over all processes: with N processes each loads `batchSize / N` of them and the
   * loss is taken over all `batchSize` (so N does not change what a step computes, and a run may resume
   * with another N).
   */
  batchSize: number;
  /**
   * Micro-batches per optimizer step. The contrastive loss is over all of them (feature-cached
   * accumulation in the native step: embeddings of every micro-batch are computed without gradient, then
   * each micro-batch is recomputed with gradient against the full set), so the step equals one batch of
   * `batchSize × accumSteps` while activations are held for one micro-batch at a time.
   */
  accumSteps: number;
  /** Optimizer steps to run; null: `epochs` decides. */
  maxSteps: number | null;
  /** Passes over the training split when `maxSteps` is null. */
  epochs: number | null;
  /** Clip the global gradient norm to this; 0: no clipping. */
  clipGradNorm: number;
  freeze: FreezeSection;
  /** `auto`, `cpu` or `cuda:N`. */
  device: string;
  /** `fp32`, or `bf16` autocast (CUDA only; master weights stay float32). */
  precision: 'fp32' | 'bf16';
  /** libtorch intra-op threads; null: physical cores (or CXR_THREADS). */
  threads: number | null;
  /** Seed of weights, shuffling, augmentation and sentence sampling. */
  seed: number;
  eval: EvalSection;
  checkpoint: CheckpointSection;
  /** Run folder (checkpoints, metrics.jsonl, final model); null: `runs/<date>-<time>`. */
  outDir: string | null;
  log: LogSection;
  distributed: DistributedSection;
}

/** A partial config, as read from a file or flags: any subset of fields, nested. */
export type PartialTrainConfig = { [K in keyof TrainConfig]?: TrainConfig[K] extends object | null ? DeepPartial<TrainConfig[K]> : TrainConfig[K] };
type DeepPartial<T> = T extends Array<unknown> ? T : T extends object ? { [K in keyof T]?: DeepPartial<T[K]> } : T;

/** The defaults, one reason each. */
export const DEFAULT_CONFIG: Readonly<TrainConfig> = Object.freeze({
  model: {
    name: 'test-vit', // tiny ViT: the default job runs in minutes on 2 CPU cores
    checkpoint: null, // fresh weights unless a pretrained CLIP folder is given
    tokenizer: null, // the shipped CLIP BPE vocabulary matches every causal registry model
  },
  data: {
    dataset: 'synthetic', // embedded data: the default job needs no download
    root: null, // not needed for synthetic data
    options: {}, // adapters' own defaults
    trainSplit: 'train' as Split, // official training split
    valSplit: 'validate' as Split, // model selection on validation, never on test
    synthetic: {
      n: 2000, // ~1600 training pairs: enough for the tiny model to learn the findings
      size: 32, // matches test-vit's 32 px input, so no resize
      seed: 0, // reproducible data
      findingStrength: 1, // the standard difficulty
    },
    imageSize: null, // follow the model's input size
    geometry: 'pad' as Geometry, // CheXzero's aspect-preserving resize + zero pad keeps the whole chest
    normalize: 'clip' as const, // CLIP checkpoints expect CLIP statistics
    augment: { scale: [0.85, 1], rotateDeg: 5, brightness: 0.1, contrast: 0.1 } as AugmentOptions, // mild, anatomy-preserving (no flips)
    workers: 2, // two decoder threads saturate 2 cores without starving the train step
  },
  text: {
    // The values are the sampler's (DEFAULT_SAMPLER_OPTIONS), so training and `cxr-train report` clean and
    // sample reports alike; the reasons are here.
    mode: DEFAULT_SAMPLER_OPTIONS.mode, // the paper's sentence sampling: k ~ Uniform{1..n} re-drawn every step
    k: null, // only used by mode k
    sections: DEFAULT_SAMPLER_OPTIONS.sections, // both sections carry findings
    fallbackText: DEFAULT_SAMPLER_OPTIONS.fallbackText, // neutral text for empty reports (counted)
    dropComparisonOnly: DEFAULT_SAMPLER_OPTIONS.dropComparisonOnly, // as the paper: comparison-only sentences are kept
    dropDuplicates: DEFAULT_SAMPLER_OPTIONS.dropDuplicates, // as the paper: repeated sentences are kept
    semicolons: DEFAULT_SAMPLER_OPTIONS.semicolons, // a semicolon joins clauses of one finding
    sectionFallback: DEFAULT_SAMPLER_OPTIONS.sectionFallback, // header-less reports are still used (counted)
    removePlaceholders: DEFAULT_SAMPLER_OPTIONS.removePlaceholders, // de-identification placeholders carry no finding
  },
  loss: {
    kind: 'relaxed' as const, // the paper's positive-pair relaxation (METHOD.md §2)
    alpha: 0.8, // relaxes only near-saturated positives; α = 1 is plain CLIP
    variant: 'clamp-diag' as const, // zero gradient for positives above α (METHOD.md default)
  },
  optimizer: {
    kind: 'adamw' as const, // robust for fine-tuning and training from scratch alike
    lr: 1e-3, // right for the tiny model from scratch (measured); use ~1e-5 to fine-tune a pretrained CLIP
    weightDecay: 0.1, // CLIP-style decoupled decay (never on norms, biases, embeddings, logit scale)
    betas: [0.9, 0.98] as [number, number], // CLIP's betas: stable with large contrastive batches
    eps: 1e-6, // CLIP's eps
    momentum: 0.9, // CheXzero's SGD momentum, when kind is sgd
  },
  schedule: {
    warmupSteps: 50, // ~10% of the default run: avoids early instability at the peak rate
    minLrRatio: 0.1, // cosine to 10% of the peak keeps learning until the last step
  },
  batchSize: 32, // large enough for contrastive negatives, small enough for ~5 steps/s on CPU
  accumSteps: 1, // one micro-batch per step unless a larger effective batch is wanted
  maxSteps: 500, // ~1-2 minutes on 2 CPU cores for the default job
  epochs: null, // maxSteps decides
  clipGradNorm: 1, // guards against rare exploding steps at negligible cost
  freeze: { image: false, text: false }, // full fine-tuning, as the paper
  device: 'auto', // CUDA when available, else CPU
  precision: 'fp32' as const, // exact and portable; bf16 is a CUDA speed option
  threads: null, // physical cores
  seed: 0, // reproducible runs
  eval: {
    everySteps: 100, // five validations in the default run: a visible learning curve
    atStart: true, // the "before" number of before/after
    promptSet: 'chexzero', // CheXzero protocol prompts ("{label}" vs "no {label}")
    batchSize: 64, // encode batches: fast without much memory
    maxSamples: null, // validate on the whole split
  },
  checkpoint: {
    everySteps: 100, // at most ~1 minute of work lost on a crash in the default run
    keepLast: 2, // bounded disk use; the best is kept besides
    keepBestBy: 'macroAuroc' as const, // CheXzero selects checkpoints by validation mean AUROC
  },
  outDir: null, // a new folder per run: never overwrites or mixes runs
  log: {
    format: 'auto' as const, // a progress bar for people, plain lines for log files
    everySteps: 10, // ~1 line per few seconds on CPU
  },
  distributed: {
    backend: 'auto' as const, // NCCL between GPUs, Gloo between CPU processes
    timeoutSec: 600, // longer than any checkpoint write; a dead peer is noticed at once anyway (closed socket)
    bucketMb: 25, // PyTorch DDP's bucket size: large messages, still overlapped with backward
  },
}) as TrainConfig;

/** Fields whose value is a free-form object (not merged key by key nor checked for unknown keys). */
const OPAQUE = new Set(['data.options', 'data.augment']);

const isObject = isPlainObject;
const clone = cloneJson;

/**
 * Deep-merges `over` into `base` (a new object). Unknown keys are rejected with their full path, so a
 * typo never silently falls back to a default.
 */
export function mergeConfig(base: TrainConfig, over: unknown, source = 'config'): TrainConfig {
  return mergeLayer(base, over, source, { opaque: OPAQUE });
}

/** Reads a config file: YAML (.yaml/.yml) or JSON; E_IO when unreadable, E_PARSE when malformed. */
export function readConfigFile(file: string): PartialTrainConfig {
  return readLayerFile(file, 'config') as PartialTrainConfig;
}

/**
 * Turns dotted CLI overrides (`{"optimizer.lr": "1e-4", "loss.kind": "clip"}`) into a nested partial
 * config. Values are parsed as YAML scalars/flow collections (`1e-4` → number, `true`, `null`,
 * `[0.8, 1]`), so flags and files accept the same spellings.
 */
export function overridesToConfig(pairs: Record<string, string | number | boolean | null>): PartialTrainConfig {
  const out: Record<string, unknown> = {};
  for (const [dotted, raw] of Object.entries(pairs)) {
    const parts = dotted.split('.');
    let node = out;
    for (const p of parts.slice(0, -1)) {
      if (!isObject(node[p])) node[p] = {};
      node = node[p] as Record<string, unknown>;
    }
    let v: unknown = raw;
    if (typeof raw === 'string') {
      try {
        v = yaml.load(raw);
      } catch {
        v = raw;
      }
      if (v === undefined) v = raw;
    }
    node[parts[parts.length - 1]] = v;
  }
  return out as PartialTrainConfig;
}

function fail(key: string, msg: string): never {
  throw new CxrError('E_CONFIG', `config: "${key}" ${msg}`, { key });
}
function int(v: unknown, key: string, min: number): void {
  if (!Number.isInteger(v) || (v as number) < min) fail(key, `must be an integer >= ${min}, got ${JSON.stringify(v)}`);
}
function optInt(v: unknown, key: string, min: number): void {
  if (v !== null) int(v, key, min);
}
function num(v: unknown, key: string, lo: number, hi: number, loOpen = false): void {
  if (typeof v !== 'number' || !Number.isFinite(v) || (loOpen ? v <= lo : v < lo) || v > hi)
    fail(key, `must be a number in ${loOpen ? '(' : '['}${lo}, ${hi}], got ${JSON.stringify(v)}`);
}
function oneOf<T>(v: unknown, key: string, allowed: readonly T[]): void {
  if (!allowed.includes(v as T)) fail(key, `must be one of ${allowed.map((a) => JSON.stringify(a)).join(', ')}; got ${JSON.stringify(v)}`);
}
function str(v: unknown, key: string, nullable = false): void {
  if (nullable && v === null) return;
  if (typeof v !== 'string' || v === '') fail(key, `must be a non-empty string${nullable ? ' or null' : ''}, got ${JSON.stringify(v)}`);
}

const SPLITS = ['train', 'validate', 'test'] as const;

/** Checks every field of a complete config (types and ranges); E_CONFIG names the field. */
export function validateTrainConfig(c: TrainConfig): TrainConfig {
  str(c.model.name, 'model.name');
  str(c.model.checkpoint, 'model.checkpoint', true);
  str(c.model.tokenizer, 'model.tokenizer', true);
  str(c.data.dataset, 'data.dataset');
  str(c.data.root, 'data.root', true);
  if (c.data.dataset !== 'synthetic' && c.data.root === null) fail('data.root', `is required for dataset "${c.data.dataset}"`);
  if (!isObject(c.data.options)) fail('data.options', 'must be a mapping');
  oneOf(c.data.trainSplit, 'data.trainSplit', SPLITS);
  oneOf(c.data.valSplit, 'data.valSplit', SPLITS);
  if (c.data.trainSplit === c.data.valSplit) fail('data.valSplit', 'must differ from data.trainSplit');
  int(c.data.synthetic.n, 'data.synthetic.n', 10);
  int(c.data.synthetic.size, 'data.synthetic.size', 16);
  int(c.data.synthetic.seed, 'data.synthetic.seed', 0);
  num(c.data.synthetic.findingStrength, 'data.synthetic.findingStrength', 0, 2, true);
  optInt(c.data.imageSize, 'data.imageSize', 8);
  oneOf(c.data.geometry, 'data.geometry', ['pad', 'crop', 'stretch']);
  oneOf(c.data.normalize, 'data.normalize', ['clip', 'chexzero', 'none']);
  if (c.data.augment !== null && !isObject(c.data.augment)) fail('data.augment', 'must be a mapping or null');
  if (c.data.augment) {
    const known = ['scale', 'ratio', 'rotateDeg', 'translate', 'brightness', 'contrast', 'hflip'];
    for (const k of Object.keys(c.data.augment)) if (!known.includes(k)) fail(`data.augment.${k}`, `is unknown (known: ${known.join(', ')})`);
  }
  int(c.data.workers, 'data.workers', 0);
  oneOf(c.text.mode, 'text.mode', ['full', 'one', 'k', 'uniform']);
  oneOf(c.text.sections, 'text.sections', ['findings+impression', 'impression', 'findings', 'all']);
  if (c.text.mode === 'k') int(c.text.k, 'text.k', 1);
  else optInt(c.text.k, 'text.k', 1);
  if (typeof c.text.fallbackText !== 'string') fail('text.fallbackText', 'must be a string');
  for (const k of ['dropComparisonOnly', 'dropDuplicates', 'semicolons', 'sectionFallback', 'removePlaceholders'] as const) {
    if (typeof c.text[k] !== 'boolean') fail(`text.${k}`, 'must be true or false');
  }
  oneOf(c.loss.kind, 'loss.kind', ['clip', 'relaxed']);
  num(c.loss.alpha, 'loss.alpha', 0, 1, true);
  oneOf(c.loss.variant, 'loss.variant', ['clamp-diag', 'clamp-numerator']);
  oneOf(c.optimizer.kind, 'optimizer.kind', ['adamw', 'sgd']);
  num(c.optimizer.lr, 'optimizer.lr', 0, 10, true);
  num(c.optimizer.weightDecay, 'optimizer.weightDecay', 0, 10);
  if (!Array.isArray(c.optimizer.betas) || c.optimizer.betas.length !== 2) fail('optimizer.betas', 'must be [beta1, beta2]');
  c.optimizer.betas.forEach((b, i) => num(b, `optimizer.betas[${i}]`, 0, 1));
  num(c.optimizer.eps, 'optimizer.eps', 0, 1, true);
  num(c.optimizer.momentum, 'optimizer.momentum', 0, 1);
  int(c.schedule.warmupSteps, 'schedule.warmupSteps', 0);
  num(c.schedule.minLrRatio, 'schedule.minLrRatio', 0, 1);
  int(c.batchSize, 'batchSize', 1);
  int(c.accumSteps, 'accumSteps', 1);
  if (c.batchSize * c.accumSteps < 2) fail('batchSize', 'times accumSteps must be at least 2 (the contrastive loss needs negatives)');
  optInt(c.maxSteps, 'maxSteps', 1);
  optInt(c.epochs, 'epochs', 1);
  if (c.maxSteps === null && c.epochs === null) fail('maxSteps', 'or "epochs" must be set');
  num(c.clipGradNorm, 'clipGradNorm', 0, 1e9);
  for (const t of ['image', 'text'] as const) {
    const v = c.freeze[t];
    if (typeof v !== 'boolean') int(v, `freeze.${t}`, 1);
  }
  if (c.freeze.image === true && c.freeze.text === true) fail('freeze', 'freezes both towers: nothing left to train');
  if (typeof c.device !== 'string' || !/^(auto|cpu|cuda(:\d+)?)$/.test(c.device)) fail('device', `must be "auto", "cpu" or "cuda:N", got ${JSON.stringify(c.device)}`);
  oneOf(c.precision, 'precision', ['fp32', 'bf16']);
  if (c.precision === 'bf16' && c.device === 'cpu') fail('precision', 'bf16 is a CUDA option; use fp32 on the CPU');
  optInt(c.threads, 'threads', 1);
  int(c.seed, 'seed', 0);
  int(c.eval.everySteps, 'eval.everySteps', 0);
  if (typeof c.eval.atStart !== 'boolean') fail('eval.atStart', 'must be true or false');
  str(c.eval.promptSet, 'eval.promptSet');
  int(c.eval.batchSize, 'eval.batchSize', 2);
  optInt(c.eval.maxSamples, 'eval.maxSamples', 2);
  int(c.checkpoint.everySteps, 'checkpoint.everySteps', 0);
  int(c.checkpoint.keepLast, 'checkpoint.keepLast', 1);
  if (c.checkpoint.keepBestBy !== null) oneOf(c.checkpoint.keepBestBy, 'checkpoint.keepBestBy', ['macroAuroc', 'valLoss']);
  str(c.outDir, 'outDir', true);
  oneOf(c.log.format, 'log.format', ['auto', 'bar', 'plain', 'json', 'none']);
  int(c.log.everySteps, 'log.everySteps', 1);
  oneOf(c.distributed.backend, 'distributed.backend', ['auto', 'gloo', 'nccl']);
  num(c.distributed.timeoutSec, 'distributed.timeoutSec', 0, 1e7, true);
  num(c.distributed.bucketMb, 'distributed.bucketMb', 0, 1e5, true);
  return c;
}

/**
 * Merges layers over the defaults (later layers win: typically the config file, then CLI flags) and
 * validates the result.
 *
 * @param layers partial configs, e.g. `[readConfigFile('run.yaml'), overridesToConfig(flags)]`
 * @param base the starting point (default {@link DEFAULT_CONFIG}; a checkpoint's config when resuming)
 */
export function resolveTrainConfig(layers: Array<{ config: unknown; source?: string }>, base: TrainConfig = DEFAULT_CONFIG): TrainConfig {
  // A checkpoint's config from an older version lacks newer sections: they take their defaults.
  let c = base === DEFAULT_CONFIG ? clone(base) : mergeConfig(clone(DEFAULT_CONFIG), clone(base), 'checkpoint');
  for (const l of layers) c = mergeConfig(c, l.config, l.source);
  return validateTrainConfig(c);
}

/** Fields that must not change when a run resumes (they change what the next steps compute). */
export const RESUME_LOCKED_KEYS = [
  'model', 'data.dataset', 'data.root', 'data.options', 'data.trainSplit', 'data.synthetic', 'data.imageSize', 'data.geometry',
  'data.normalize', 'data.augment', 'text', 'loss', 'optimizer', 'schedule', 'batchSize', 'accumSteps', 'clipGradNorm', 'freeze',
  'seed', 'precision',
] as const;

function getPath(o: unknown, key: string): unknown {
  return key.split('.').reduce<unknown>((v, k) => (isObject(v) ? v[k] : undefined), o);
}

/** The locked fields that differ between a checkpoint's config and the config of the resuming run. */
export function resumeConflicts(saved: TrainConfig, now: TrainConfig): string[] {
  // A checkpoint from an older version lacks newer fields: they had their defaults then.
  const full = mergeConfig(clone(DEFAULT_CONFIG), clone(saved), 'checkpoint');
  return RESUME_LOCKED_KEYS.filter((k) => JSON.stringify(getPath(full, k)) !== JSON.stringify(getPath(now, k)));
}

/** `runs/<yyyymmdd>-<hhmmss>` in the local time zone, for a run without an explicit outDir. */
export function defaultRunDir(now = new Date(), base = 'runs'): string {
  const p = (n: number) => String(n).padStart(2, '0');
  return path.join(base, `${now.getFullYear()}${p(now.getMonth() + 1)}${p(now.getDate())}-${p(now.getHours())}${p(now.getMinutes())}${p(now.getSeconds())}`);
}

/** The config as YAML (printed at start, and handy as a template: `cxr-train train --print-config`). */
export function configToYaml(c: TrainConfig): string {
  return yaml.dump(c, { lineWidth: 120, noRefs: true });
}
