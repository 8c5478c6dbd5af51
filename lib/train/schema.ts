/**
 * The training config's schema: one descriptor per option (dotted path), holding its type, default, the
 * one-line reason for the default (principle 9), its validation and, for the common ones, its CLI flag.
 * Everything else is derived from this table: the `TrainConfig` type, `DEFAULT_CONFIG`, the per-field
 * validation of `validateTrainConfig` (errors are E_CONFIG naming the path), the opaque keys of the config
 * layering and the `train` command's flags. Presets (the demo, the ablation experiment) layer over these
 * defaults; they do not define their own copies of them.
 */
import { CxrError } from '../errors';
import { availableCores } from '../util/limits';
import type { AugmentOptions, Geometry } from '../data/images';
import type { Split } from '../data/sample';
import { LOSS_DEFAULTS, OPTIMIZER_DEFAULTS } from '../models/defaults';
import { DEFAULT_SAMPLER_OPTIONS, type SamplingMode, type SectionChoice } from '../text/sentenceSampler';

/** One option of the training config. */
export interface OptionSpec<T> {
  /** The default value. */
  readonly default: T;
  /** Why this default (one line). */
  readonly reason: string;
  /** What the option does (docs and CLI help). */
  readonly describe: string;
  /** Checks a value; throws E_CONFIG naming `path` (or a path below it). */
  readonly check: (v: unknown, path: string) => void;
  /** The `train` command's flag for it (without dashes); absent: only `--set path=value`. */
  readonly flag?: string;
  /** A free-form object: replaced whole by a layer, never merged key by key nor checked for unknown keys. */
  readonly opaque?: boolean;
  /** Phantom: carries the value type for type inference. */
  readonly __type?: T;
}

/** Throws the config error for `key`. */
export function configFail(key: string, msg: string): never {
  throw new CxrError('E_CONFIG', `config: "${key}" ${msg}`, { key });
}

type Extra = { reason: string; describe: string; flag?: string };
type IntExtra = Extra & { bound?: Bound };

/** An upper bound of a count: a number, or one computed when checked (the machine's cores), with why. */
export interface Bound {
  readonly max: number | (() => number);
  /** Why the bound (shown in the error), e.g. "the cores available to this process". */
  readonly why: string;
}

function checkInt(v: unknown, key: string, min: number, bound?: Bound): void {
  if (!Number.isInteger(v) || (v as number) < min) configFail(key, `must be an integer >= ${min}, got ${JSON.stringify(v)}`);
  if (bound) {
    const max = typeof bound.max === 'function' ? bound.max() : bound.max;
    if ((v as number) > max) configFail(key, `must be at most ${max} (${bound.why}), got ${JSON.stringify(v)}`);
  }
}
function checkNum(v: unknown, key: string, lo: number, hi: number, loOpen: boolean): void {
  if (typeof v !== 'number' || !Number.isFinite(v) || (loOpen ? v <= lo : v < lo) || v > hi)
    configFail(key, `must be a number in ${loOpen ? '(' : '['}${lo}, ${hi}], got ${JSON.stringify(v)}`);
}
function checkStr(v: unknown, key: string, nullable: boolean): void {
  if (nullable && v === null) return;
  if (typeof v !== 'string' || v === '') configFail(key, `must be a non-empty string${nullable ? ' or null' : ''}, got ${JSON.stringify(v)}`);
}
function checkOneOf(v: unknown, key: string, allowed: readonly unknown[]): void {
  if (!allowed.includes(v)) configFail(key, `must be one of ${allowed.map((a) => JSON.stringify(a)).join(', ')}; got ${JSON.stringify(v)}`);
}

/**
 * `loss.alpha`: a number in (0, 1], or { quantile: q in (0, 1], momentum?: β in [0, 1], freezeAfter?: steps }
 * (β = 1 holds α at the first batch's quantile; freezeAfter K holds it at the running value after K steps).
 */
function checkAlpha(v: unknown, key: string): void {
  if (typeof v === 'number') return checkNum(v, key, 0, 1, true);
  if (typeof v !== 'object' || v === null || Array.isArray(v)) configFail(key, `must be a number in (0, 1] or {quantile: q}, got ${JSON.stringify(v)}`);
  const o = v as Record<string, unknown>;
  for (const k of Object.keys(o))
    if (k !== 'quantile' && k !== 'momentum' && k !== 'freezeAfter') configFail(`${key}.${k}`, 'is not an option (expected quantile, momentum, freezeAfter)');
  checkNum(o.quantile, `${key}.quantile`, 0, 1, true);
  if (o.momentum !== undefined) checkNum(o.momentum, `${key}.momentum`, 0, 1, false);
  if (o.freezeAfter !== undefined && !(Number.isInteger(o.freezeAfter) && (o.freezeAfter as number) >= 1))
    configFail(`${key}.freezeAfter`, `must be an integer >= 1 (steps), got ${JSON.stringify(o.freezeAfter)}`);
}

/** Builders of option descriptors, one per kind of value. */
export const opt = {
  /** An integer >= min (and <= its bound, when it has one). */
  int: (d: number, min: number, x: IntExtra): OptionSpec<number> => {
    const { bound, ...rest } = x;
    return { default: d, ...rest, check: (v, k) => checkInt(v, k, min, bound) };
  },
  /** An integer >= min (and <= its bound, when it has one), or null. */
  intOrNull: (d: number | null, min: number, x: IntExtra): OptionSpec<number | null> => {
    const { bound, ...rest } = x;
    return { default: d, ...rest, check: (v, k) => v === null || checkInt(v, k, min, bound) };
  },
  /** A finite number in [lo, hi] (or (lo, hi] with loOpen). */
  num: (d: number, lo: number, hi: number, x: Extra & { loOpen?: boolean }): OptionSpec<number> => {
    const { loOpen = false, ...rest } = x;
    return { default: d, ...rest, check: (v, k) => checkNum(v, k, lo, hi, loOpen) };
  },
  /** A non-empty string. */
  str: (d: string, x: Extra): OptionSpec<string> => ({ default: d, ...x, check: (v, k) => checkStr(v, k, false) }),
  /** A non-empty string, or null. */
  strOrNull: (d: string | null, x: Extra): OptionSpec<string | null> => ({ default: d, ...x, check: (v, k) => checkStr(v, k, true) }),
  /** Any string (possibly empty). */
  text: (d: string, x: Extra): OptionSpec<string> => ({
    default: d,
    ...x,
    check: (v, k) => typeof v === 'string' || configFail(k, 'must be a string'),
  }),
  /** true or false. */
  bool: (d: boolean, x: Extra): OptionSpec<boolean> => ({
    default: d,
    ...x,
    check: (v, k) => typeof v === 'boolean' || configFail(k, 'must be true or false'),
  }),
  /** One of a fixed set of values. */
  oneOf: <const V extends readonly (string | null)[]>(values: V, d: V[number], x: Extra): OptionSpec<V[number]> => ({
    default: d,
    ...x,
    check: (v, k) => (v === null && values.includes(null) ? undefined : checkOneOf(v, k, values.filter((a) => a !== null))),
  }),
  /** Anything else: its own check. */
  custom: <T>(d: T, check: (v: unknown, path: string) => void, x: Extra & { opaque?: boolean }): OptionSpec<T> => ({ default: d, ...x, check }),
};

/**
 * Upper bounds of the count-like options whose unbounded values exhaust the machine before any work is
 * done (threads, image buffers, batches): each is far above any real run.
 */
export const CONFIG_BOUNDS = {
  /** libtorch and decoder threads: more than the cores only adds contention. */
  cores: { max: availableCores, why: 'the cores available to this process' },
  /** Decoder worker threads: they also wait on storage, so twice the cores (at least 16), never thousands. */
  workers: { max: () => Math.max(16, 2 * availableCores()), why: 'twice the cores available to this process, at least 16' },
  /** Pairs per micro-batch: CLIP's own global batch was 32768. */
  batch: { max: 65536, why: "twice CLIP's global batch of 32768" },
  /** Micro-batches per step. */
  accum: { max: 4096, why: 'an effective batch of millions' },
  /** Images per encode batch. */
  evalBatch: { max: 8192, why: 'one encode call' },
  /** Input image side in pixels (the registry's largest model takes 336). */
  imageSize: { max: 4096, why: 'an input of 16.7 megapixels per image' },
  /** Synthetic studies generated in memory. */
  syntheticN: { max: 1_000_000, why: 'studies held in memory' },
  /** Synthetic image side. */
  syntheticSize: { max: 1024, why: 'one megapixel per synthetic image' },
  /** Synthetic pixels in all (n × size², float32 in memory): 4 GB. */
  syntheticPixels: { max: 1_000_000_000, why: 'synthetic pixels held in memory as float32, 4 GB' },
} as const satisfies Record<string, Bound>;
const B = CONFIG_BOUNDS;

const SPLITS = ['train', 'validate', 'test'] as const satisfies readonly Split[];
/** Files a run can log to (`log.to`). */
export const LOG_SINKS = ['jsonl', 'tensorboard'] as const;
/** One of {@link LOG_SINKS}. */
export type LogSink = (typeof LOG_SINKS)[number];
const AUGMENT_KEYS = ['scale', 'ratio', 'rotateDeg', 'translate', 'brightness', 'contrast', 'hflip'] as const;
const freezeCheck = (v: unknown, k: string) => (typeof v === 'boolean' ? undefined : checkInt(v, k, 1));
const S = DEFAULT_SAMPLER_OPTIONS;
const O = OPTIMIZER_DEFAULTS;
const SAMPLER = '(the sentence sampler default, so training and `cxr-train report` clean reports alike)';

/**
 * The table. Keys are dotted paths; the order is the order of validation and of `--help`. The defaults
 * ARE the embedded default job: synthetic data generated in memory and the tiny `test-vit` model, a few
 * hundred steps on 2 CPU cores. A real run overrides model, data and optimizer (examples/, docs/training.md).
 */
export const TRAIN_SCHEMA = {
  'model.name': opt.str('test-vit', {
    reason: 'tiny ViT: the default job runs in minutes on 2 CPU cores',
    describe: 'Registry model name (test-vit, ViT-B/32, ViT-B/16, ViT-L/14, RN50, RN101, ...), used when model.checkpoint is null',
    flag: 'model',
  }),
  'model.checkpoint': opt.strOrNull(null, {
    reason: 'fresh weights unless a pretrained CLIP folder is given',
    describe: 'Pretrained model folder (own format) or training checkpoint folder to start from',
    flag: 'checkpoint',
  }),
  'model.logitScale': opt.custom<number | null>(null, (v, key) => {
    if (v !== null) checkNum(v, key, 0, 100, true);
  }, {
    reason: "the registry's 1/0.07, as CLIP; training clamps it at 100",
    describe: 'Initial logit scale of a model built from the registry (null: 1/0.07); not used with model.checkpoint',
  }),
  'model.tokenizer': opt.strOrNull(null, {
    reason: 'the shipped CLIP BPE vocabulary matches every causal registry model',
    describe: 'Tokenizer file or folder (CLIP BPE / WordPiece); null: the vocabulary shipped with cxr-train',
  }),
  'data.dataset': opt.str('synthetic', {
    reason: 'embedded data: the default job needs no download',
    describe: 'synthetic | shards | an adapter name (mimic-cxr, chexpert, ...)',
    flag: 'dataset',
  }),
  'data.root': opt.strOrNull(null, {
    reason: 'not needed for synthetic data',
    describe: 'Dataset root / shard folder',
    flag: 'root',
  }),
  'data.options': opt.custom<Record<string, unknown>>({}, (v, k) => (typeof v === 'object' && v !== null && !Array.isArray(v) ? undefined : configFail(k, 'must be a mapping')), {
    reason: "adapters' own defaults",
    describe: 'Extra adapter options (e.g. { views: [PA, AP], reportsRoot: ... }), passed through',
    opaque: true,
  }),
  'data.trainSplit': opt.oneOf(SPLITS, 'train', { reason: 'official training split', describe: 'Split trained on' }),
  'data.valSplit': opt.oneOf(SPLITS, 'validate', {
    reason: 'model selection on validation, never on test',
    describe: 'Split used for validation (loss + zero-shot AUROC)',
  }),
  'data.synthetic.n': opt.int(2000, 10, {
    bound: B.syntheticN,
    reason: '~1600 training pairs: enough for the tiny model to learn the findings',
    describe: 'Synthetic studies generated (dataset synthetic)',
  }),
  'data.synthetic.size': opt.int(32, 16, { bound: B.syntheticSize, reason: "matches test-vit's 32 px input, so no resize", describe: 'Synthetic image side in pixels' }),
  'data.synthetic.seed': opt.int(0, 0, { reason: 'reproducible data', describe: 'Seed of the synthetic generator' }),
  'data.synthetic.findingStrength': opt.num(1, 0, 2, {
    loOpen: true,
    reason: 'the standard difficulty',
    describe: 'Visibility of findings in the synthetic pictures',
  }),
  'data.imageSize': opt.intOrNull(null, 8, { bound: B.imageSize, reason: "follow the model's input size", describe: "Input side in pixels; null: the model's image size", flag: 'image-size' }),
  'data.geometry': opt.oneOf(['pad', 'crop', 'stretch'] as const satisfies readonly Geometry[], 'pad', {
    reason: "CheXzero's aspect-preserving resize + zero pad keeps the whole chest",
    describe: 'pad (CheXzero) | crop (CLIP) | stretch',
  }),
  'data.normalize': opt.oneOf(['clip', 'chexzero', 'none'] as const, 'clip', {
    reason: 'CLIP checkpoints expect CLIP statistics',
    describe: 'Pixel normalisation preset',
  }),
  'data.augment': opt.custom<AugmentOptions | null>(
    { scale: [0.85, 1], rotateDeg: 5, brightness: 0.1, contrast: 0.1 },
    (v, k) => {
      if (v === null) return;
      if (typeof v !== 'object' || Array.isArray(v)) configFail(k, 'must be a mapping or null');
      for (const a of Object.keys(v as object))
        if (!(AUGMENT_KEYS as readonly string[]).includes(a)) configFail(`${k}.${a}`, `is unknown (known: ${AUGMENT_KEYS.join(', ')})`);
    },
    { reason: 'mild, anatomy-preserving (no flips)', describe: 'Training augmentations; null for none', opaque: true },
  ),
  'data.pixels': opt.oneOf(['float32', 'uint8'] as const, 'float32', {
    reason: 'float32 batches are what every backend (native, tfjs) takes; uint8 is the faster path for the native core',
    describe: 'Training batches as normalised float32, or grayscale uint8 normalised on the device (12x fewer bytes)',
    flag: 'pixels',
  }),
  'data.workers': opt.int(2, 0, {
    bound: B.workers,
    reason: 'two decoder threads saturate 2 cores without starving the train step',
    describe: 'Decoder worker threads for image files (ignored for in-memory data)',
    flag: 'workers',
  }),
  'data.cacheMB': opt.num(256, 0, 1048576, {
    reason: 'epochs after the first augment from memory instead of decoding every file again (decoding is most of the loader CPU time)',
    describe: 'MiB of decoded images each decoder thread keeps between epochs (0: decode every time)',
  }),
  'text.mode': opt.oneOf(['full', 'one', 'k', 'uniform'] as const satisfies readonly SamplingMode[], S.mode, {
    reason: `the paper's sentence sampling: k ~ Uniform{1..n} re-drawn every step ${SAMPLER}`,
    describe: 'Sentence sampling: uniform | k | one | full',
    flag: 'text-mode',
  }),
  'text.k': opt.intOrNull(null, 1, { reason: 'only used by mode k', describe: 'Sentences per sample in mode k' }),
  'text.sections': opt.oneOf(['findings+impression', 'impression', 'findings', 'all'] as const satisfies readonly SectionChoice[], S.sections, {
    reason: `both sections carry findings ${SAMPLER}`,
    describe: 'findings+impression | impression | findings | all',
    flag: 'sections',
  }),
  'text.fallbackText': opt.text(S.fallbackText, {
    reason: `neutral text for empty reports (counted) ${SAMPLER}`,
    describe: 'Text of a report with no usable sentence',
  }),
  'text.dropComparisonOnly': opt.bool(S.dropComparisonOnly, {
    reason: `as the paper: comparison-only sentences are kept ${SAMPLER}`,
    describe: 'Drop sentences that only compare with prior studies: true | false (as `cxr-train report --drop-comparison`)',
    flag: 'drop-comparison',
  }),
  'text.dropDuplicates': opt.bool(S.dropDuplicates, {
    reason: `as the paper: repeated sentences are kept ${SAMPLER}`,
    describe: 'Drop repeated sentences: true | false (as `report --drop-duplicates`)',
    flag: 'drop-duplicates',
  }),
  'text.semicolons': opt.bool(S.semicolons, {
    reason: `a semicolon joins clauses of one finding ${SAMPLER}`,
    describe: 'Also split sentences at semicolons: true | false (as `report --semicolons`)',
    flag: 'semicolons',
  }),
  'text.sectionFallback': opt.bool(S.sectionFallback, {
    reason: `header-less reports are still used (counted) ${SAMPLER}`,
    describe: 'Use the report body when the chosen sections are empty',
  }),
  'text.removePlaceholders': opt.bool(S.removePlaceholders, {
    reason: `de-identification placeholders carry no finding ${SAMPLER}`,
    describe: 'Remove de-identification placeholders ("___", "XXXX") and the word that introduces them',
  }),
  'loss.kind': opt.oneOf(['clip', 'relaxed'] as const, 'clip', {
    reason: 'no relaxation form helped in the 5-seed sweep (docs/results.md) and α = 0.8 never engaged: relaxed is opt-in',
    describe: 'clip | relaxed',
    flag: 'loss',
  }),
  'loss.alpha': opt.custom<number | { quantile: number; momentum?: number; freezeAfter?: number }>(0.8, checkAlpha, {
    reason: 'relaxes only near-saturated positives (with loss.kind relaxed); α = 1 is plain CLIP',
    describe: 'Relaxation threshold: α in (0, 1], or {quantile: q, momentum?: β, freezeAfter?: K} for the running q-quantile of the positive similarities, held after K steps (relaxed only)',
    flag: 'alpha',
  }),
  'loss.variant': opt.oneOf(['clamp-diag', 'clamp-numerator', 'margin'] as const, 'clamp-diag', {
    reason: 'zero gradient for positives above α (METHOD.md default)',
    describe: 'clamp-diag | clamp-numerator | margin',
  }),
  'loss.margin': opt.num(LOSS_DEFAULTS.margin, 0, 2, {
    loOpen: true,
    reason: 'the margin form only: a positive stops being pulled once it beats its hardest negative by m (cosine units)',
    describe: 'Margin m in (0, 2] of variant "margin" (relaxed only)',
  }),
  'optimizer.kind': opt.oneOf(['adamw', 'sgd'] as const, 'adamw', {
    reason: 'robust for fine-tuning and training from scratch alike',
    describe: 'adamw | sgd',
    flag: 'optimizer',
  }),
  'optimizer.lr': opt.num(O.lr, 0, 10, {
    loOpen: true,
    reason: 'right for the tiny model from scratch (measured; OPTIMIZER_DEFAULTS); use ~1e-5 to fine-tune a pretrained CLIP',
    describe: 'Peak learning rate (the schedule sets the rate per step)',
    flag: 'lr',
  }),
  'optimizer.weightDecay': opt.num(O.weightDecay, 0, 10, {
    reason: 'CLIP-style decoupled decay, never on norms, biases, embeddings, logit scale (OPTIMIZER_DEFAULTS)',
    describe: 'Decoupled weight decay (AdamW) or L2 (SGD)',
  }),
  'optimizer.betas': opt.custom<[number, number]>(
    [...O.betas],
    (v, k) => {
      if (!Array.isArray(v) || v.length !== 2) configFail(k, 'must be [beta1, beta2]');
      v.forEach((b, i) => checkNum(b, `${k}[${i}]`, 0, 1, false));
    },
    { reason: "CLIP's betas: stable with large contrastive batches (OPTIMIZER_DEFAULTS)", describe: 'AdamW betas [beta1, beta2]' },
  ),
  'optimizer.eps': opt.num(O.eps, 0, 1, { loOpen: true, reason: "CLIP's eps (OPTIMIZER_DEFAULTS)", describe: 'AdamW epsilon' }),
  'optimizer.momentum': opt.num(O.momentum, 0, 1, {
    reason: "CheXzero's SGD momentum, when kind is sgd (OPTIMIZER_DEFAULTS)",
    describe: 'SGD momentum',
  }),
  'schedule.warmupSteps': opt.int(50, 0, {
    reason: '~10% of the default run: avoids early instability at the peak rate',
    describe: 'Linear warm-up steps before the cosine decay',
  }),
  'schedule.minLrRatio': opt.num(0.1, 0, 1, {
    reason: 'cosine to 10% of the peak keeps learning until the last step',
    describe: 'The cosine decays to minLrRatio × lr',
  }),
  batchSize: opt.int(32, 1, {
    bound: B.batch,
    reason: 'large enough for contrastive negatives, small enough for ~5 steps/s on CPU',
    describe: 'Pairs per micro-batch over all processes (each of N processes loads batchSize / N)',
    flag: 'batch-size',
  }),
  accumSteps: opt.int(1, 1, {
    bound: B.accum,
    reason: 'one micro-batch per step unless a larger effective batch is wanted',
    describe: 'Micro-batches per step (loss over the full accumulated batch, feature-cached)',
    flag: 'accum-steps',
  }),
  maxSteps: opt.intOrNull(500, 1, {
    reason: '~1-2 minutes on 2 CPU cores for the default job',
    describe: 'Optimizer steps to run; null: epochs decides',
    flag: 'steps',
  }),
  epochs: opt.intOrNull(null, 1, { reason: 'maxSteps decides', describe: 'Passes over the training split when maxSteps is null', flag: 'epochs' }),
  clipGradNorm: opt.num(1, 0, 1e9, {
    reason: 'guards against rare exploding steps at negligible cost',
    describe: 'Clip the global gradient norm to this; 0: no clipping',
  }),
  'freeze.image': opt.custom<boolean | number>(false, freezeCheck, {
    reason: 'full fine-tuning, as the paper',
    describe: 'Image tower: false trains it, true freezes it, N freezes all but its last N blocks',
  }),
  'freeze.text': opt.custom<boolean | number>(false, freezeCheck, {
    reason: 'full fine-tuning, as the paper',
    describe: 'Text tower: false trains it, true freezes it, N freezes all but its last N blocks',
  }),
  device: opt.custom<string>(
    'auto',
    (v, k) => (typeof v === 'string' && /^(auto|cpu|cuda(:\d+)?)$/.test(v) ? undefined : configFail(k, `must be "auto", "cpu" or "cuda:N", got ${JSON.stringify(v)}`)),
    { reason: 'CUDA when available, else CPU', describe: 'auto | cpu | cuda:N', flag: 'device' },
  ),
  precision: opt.oneOf(['fp32', 'bf16'] as const, 'fp32', {
    reason: 'exact and portable; bf16 is a CUDA speed option',
    describe: 'fp32 | bf16 (CUDA autocast; master weights stay float32)',
    flag: 'precision',
  }),
  threads: opt.intOrNull(null, 1, {
    bound: B.cores,
    reason: 'physical cores',
    describe: 'libtorch intra-op threads (at most the available cores); null: physical cores (or CXR_THREADS)',
    flag: 'threads',
  }),
  seed: opt.int(0, 0, { reason: 'reproducible runs', describe: 'Seed of weights, shuffling, augmentation and sentence sampling', flag: 'seed' }),
  'eval.everySteps': opt.int(100, 0, {
    reason: 'five validations in the default run: a visible learning curve',
    describe: 'Validate every N steps (and at the end); 0: only at the end',
    flag: 'eval-every',
  }),
  'eval.atStart': opt.bool(true, { reason: 'the "before" number of before/after', describe: 'Also validate before the first step' }),
  'eval.promptSet': opt.str('chexzero', {
    reason: 'CheXzero protocol prompts ("{label}" vs "no {label}")',
    describe: 'Zero-shot prompt set: a built-in name or a JSON/YAML file',
  }),
  'eval.batchSize': opt.int(64, 2, { bound: B.evalBatch, reason: 'encode batches: fast without much memory', describe: 'Images per encode / validation-loss batch' }),
  'eval.maxSamples': opt.intOrNull(null, 2, { reason: 'validate on the whole split', describe: 'Use at most this many validation images; null: all' }),
  'eval.retrieval': opt.bool(false, {
    reason: 'a text pass over every validation report costs time; zero-shot AUROC is the selection metric',
    describe: 'Also image↔report Recall@1/5/10 and ranks on the validation split (needs reports; as eval --retrieval, without k×200)',
  }),
  'checkpoint.everySteps': opt.int(100, 0, {
    reason: 'at most ~1 minute of work lost on a crash in the default run',
    describe: 'Write a checkpoint every N steps (and at the end / on stop); 0: only at the end',
    flag: 'checkpoint-every',
  }),
  'checkpoint.keepLast': opt.int(2, 1, { reason: 'bounded disk use; the best is kept besides', describe: 'Keep the last K periodic checkpoints' }),
  'checkpoint.keepBestBy': opt.oneOf(['macroAuroc', 'valLoss', null] as const, 'macroAuroc', {
    reason: 'CheXzero selects checkpoints by validation mean AUROC',
    describe: 'Metric of the best checkpoint: macroAuroc (higher) or valLoss (lower); null: none',
  }),
  outDir: opt.strOrNull(null, {
    reason: 'a new folder per run: never overwrites or mixes runs',
    describe: 'Run folder (checkpoints, metrics.jsonl, final model); null: runs/<date>-<time>',
    flag: 'out',
  }),
  'log.format': opt.oneOf(['auto', 'bar', 'plain', 'json', 'none'] as const, 'auto', {
    reason: 'a progress bar for people, plain lines for log files',
    describe: 'auto | bar | plain | json | none (console); a log file here, e.g. --log tensorboard, is added to log.to',
    flag: 'log',
  }),
  'log.everySteps': opt.int(10, 1, { reason: '~1 line per few seconds on CPU', describe: 'Plain/JSON console lines every N steps' }),
  'log.to': opt.custom<LogSink[]>(
    ['jsonl'],
    (v, k) => {
      if (!Array.isArray(v)) configFail(k, `must be a list of ${LOG_SINKS.join(', ')} (or one comma-separated string), got ${JSON.stringify(v)}`);
      v.forEach((x, i) => checkOneOf(x, `${k}[${i}]`, LOG_SINKS));
    },
    {
      reason: 'metrics.jsonl is enough for scripts; TensorBoard event files on request',
      describe: 'Files the run logs to, in its folder: jsonl (metrics.jsonl) and/or tensorboard (tensorboard/events.out.tfevents.*), e.g. jsonl,tensorboard',
      flag: 'log-to',
    },
  ),
  'distributed.backend': opt.oneOf(['auto', 'gloo', 'nccl'] as const, 'auto', {
    reason: 'NCCL between GPUs, Gloo between CPU processes',
    describe: 'Distributed backend: auto | gloo | nccl',
    flag: 'backend',
  }),
  'distributed.timeoutSec': opt.num(600, 0, 1e7, {
    loOpen: true,
    reason: 'longer than any checkpoint write; a dead peer is noticed at once anyway (closed socket)',
    describe: 'Rendezvous and collective timeout in seconds',
  }),
  'distributed.bucketMb': opt.num(25, 0, 1e5, {
    loOpen: true,
    reason: "PyTorch DDP's bucket size: large messages, still overlapped with backward",
    describe: 'Gradient all-reduce bucket size in MiB',
  }),
} as const satisfies Record<string, OptionSpec<unknown>>;

/** A dotted path of the table. */
export type ConfigPath = keyof typeof TRAIN_SCHEMA;

type ValueOf<S> = S extends OptionSpec<infer T> ? T : never;
type Head<K> = K extends `${infer H}.${string}` ? H : K;
type Rest<K, H extends string> = K extends `${H}.${infer R}` ? R : never;
type Nest<T extends Record<string, unknown>> = {
  -readonly [H in Head<keyof T & string>]: H extends keyof T
    ? ValueOf<T[H]>
    : Nest<{ [R in Rest<keyof T & string, H>]: T[`${H}.${R}` & keyof T] }>;
};
type Widen<T> = T extends string ? (string extends T ? string : T) : T;
/** The config type of a descriptor table: dotted paths become nested sections. */
export type ConfigOf<T extends Record<string, OptionSpec<unknown>>> = Nest<T> extends infer N ? { [K in keyof N]: Widen<N[K]> } : never;

/** The whole training configuration, derived from {@link TRAIN_SCHEMA}. */
export type SchemaConfig = ConfigOf<typeof TRAIN_SCHEMA>;

/** Every entry of the table, in order. */
export function schemaEntries(): Array<[ConfigPath, OptionSpec<unknown>]> {
  return Object.entries(TRAIN_SCHEMA) as Array<[ConfigPath, OptionSpec<unknown>]>;
}

/** The value at a dotted path (undefined when a section is missing). */
export function getPath(o: unknown, key: string): unknown {
  return key.split('.').reduce<unknown>((v, k) => (typeof v === 'object' && v !== null ? (v as Record<string, unknown>)[k] : undefined), o);
}

/** The defaults of the table as a nested config (a fresh object each call). */
export function schemaDefaults(): SchemaConfig {
  const out: Record<string, unknown> = {};
  for (const [key, spec] of schemaEntries()) {
    const parts = key.split('.');
    let node = out;
    for (const p of parts.slice(0, -1)) node = (node[p] ??= {}) as Record<string, unknown>;
    node[parts[parts.length - 1]] = JSON.parse(JSON.stringify(spec.default));
  }
  return out as SchemaConfig;
}

/** Paths of free-form objects (see {@link OptionSpec.opaque}). */
export const OPAQUE_PATHS: ReadonlySet<string> = new Set(schemaEntries().filter(([, s]) => s.opaque).map(([k]) => k));

/** Checks every field of the table in `c`; E_CONFIG names the first bad path. */
export function checkSchemaFields(c: unknown): void {
  for (const [key, spec] of schemaEntries()) spec.check(getPath(c, key), key);
}

/** A CLI flag generated from the table. */
export interface SchemaFlag {
  flag: string;
  path: ConfigPath;
  describe: string;
  default: unknown;
}

/** The `train` command's config flags, in table order. */
export function schemaFlags(): SchemaFlag[] {
  return schemaEntries()
    .filter(([, s]) => s.flag !== undefined)
    .map(([path, s]) => ({ flag: s.flag as string, path, describe: s.describe, default: s.default }));
}
