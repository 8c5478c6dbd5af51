/**
 * The training configuration. Its options (type, default with its one-line reason, check, CLI flag) are
 * the descriptor table in schema.ts (principle 9: one place for defaults). A run's config is merged
 * defaults → config file (YAML or JSON) → CLI flags, validated (unknown keys are named, E_CONFIG),
 * printed at start and saved inside every checkpoint.
 *
 * The defaults ARE the embedded default job: synthetic data generated in memory and the tiny `test-vit`
 * model, a few hundred steps on 2 CPU cores. A real run (MIMIC-CXR + a CLIP checkpoint) overrides model,
 * data and optimizer; see examples/ and docs/training.md.
 */
import path from 'node:path';
import yaml from 'js-yaml';
import { checkExpandedSize, cloneJson, isPlainObject, mergeLayer, readLayerFile } from '../util/layers';
import { CONFIG_BOUNDS, LOG_SINKS, OPAQUE_PATHS, checkSchemaFields, configFail, getPath, schemaDefaults, type SchemaConfig } from './schema';
export { CONFIG_BOUNDS, TRAIN_SCHEMA, schemaFlags, type OptionSpec, type SchemaFlag } from './schema';

/**
 * The whole training configuration, derived from the descriptor table {@link TRAIN_SCHEMA} (lib/train/schema.ts),
 * where every option's type, default, reason, check and flag live. Every field is present after
 * {@link resolveTrainConfig}.
 */
export type TrainConfig = SchemaConfig;
/** Which model to train. */
export type ModelSection = TrainConfig['model'];
/** Where the pairs come from and how images are prepared. */
export type DataSection = TrainConfig['data'];
/** Sentence sampling (METHOD.md §3). */
export type TextSection = TrainConfig['text'];
/** The contrastive loss (METHOD.md §1-2). */
export type LossSection = TrainConfig['loss'];
/** The optimizer; the learning rate per step comes from the schedule. */
export type OptimizerSection = TrainConfig['optimizer'];
/** Linear warm-up then cosine decay to `minLrRatio × lr` (see schedule.ts). */
export type ScheduleSection = TrainConfig['schedule'];
/** Freezing per tower: `false` trains it, `true` freezes it whole, N freezes all but its last N blocks. */
export type FreezeSection = TrainConfig['freeze'];
/** Periodic validation. */
export type EvalSection = TrainConfig['eval'];
/** Checkpointing. */
export type CheckpointSection = TrainConfig['checkpoint'];
/** Console and file logging. */
export type LogSection = TrainConfig['log'];
/** Data parallelism (see lib/train/distributed.ts and docs/distributed.md). */
export type DistributedSection = TrainConfig['distributed'];

/** A partial config, as read from a file or flags: any subset of fields, nested. */
export type PartialTrainConfig = { [K in keyof TrainConfig]?: TrainConfig[K] extends object | null ? DeepPartial<TrainConfig[K]> : TrainConfig[K] };
type DeepPartial<T> = T extends Array<unknown> ? T : T extends object ? { [K in keyof T]?: DeepPartial<T[K]> } : T;

/** The defaults: the table's (each with its reason there). */
export const DEFAULT_CONFIG: Readonly<TrainConfig> = Object.freeze(schemaDefaults());

const isObject = isPlainObject;
const clone = cloneJson;

/**
 * Deep-merges `over` into `base` (a new object). Unknown keys are rejected with their full path, so a
 * typo never silently falls back to a default.
 */
export function mergeConfig(base: TrainConfig, over: unknown, source = 'config'): TrainConfig {
  return mergeLayer(base, over, source, { opaque: OPAQUE_PATHS });
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
  // Null-prototype nodes: a dotted key such as `__proto__.x` or `constructor.x` names a key (refused later as
  // unknown), never an object's prototype.
  const out: Record<string, unknown> = Object.create(null);
  for (const [dotted, raw] of Object.entries(pairs)) {
    const parts = dotted.split('.');
    let node = out;
    for (const p of parts.slice(0, -1)) {
      if (!isObject(node[p])) node[p] = Object.create(null);
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
      checkExpandedSize(v, `--set ${dotted}`);
    }
    node[parts[parts.length - 1]] = v;
  }
  return out as PartialTrainConfig;
}

/**
 * Checks a complete config: every field against its descriptor (types and ranges), then the rules that
 * tie fields together. E_CONFIG names the field.
 */
export function validateTrainConfig(c: TrainConfig): TrainConfig {
  normalizeLog(c);
  checkSchemaFields(c);
  if (c.data.dataset !== 'synthetic' && c.data.root === null) configFail('data.root', `is required for dataset "${c.data.dataset}"`);
  const px = c.data.synthetic.n * c.data.synthetic.size ** 2;
  if (c.data.dataset === 'synthetic' && px > CONFIG_BOUNDS.syntheticPixels.max)
    configFail('data.synthetic.n', `times data.synthetic.size² must be at most ${CONFIG_BOUNDS.syntheticPixels.max} (${CONFIG_BOUNDS.syntheticPixels.why}), got ${px}`);
  if (c.data.trainSplit === c.data.valSplit) configFail('data.valSplit', 'must differ from data.trainSplit');
  if (c.text.mode === 'k' && !(Number.isInteger(c.text.k) && (c.text.k as number) >= 1))
    configFail('text.k', `must be an integer >= 1, got ${JSON.stringify(c.text.k)}`);
  if (c.batchSize * c.accumSteps < 2) configFail('batchSize', 'times accumSteps must be at least 2 (the contrastive loss needs negatives)');
  if (c.maxSteps === null && c.epochs === null) configFail('maxSteps', 'or "epochs" must be set');
  if (c.freeze.image === true && c.freeze.text === true) configFail('freeze', 'freezes both towers: nothing left to train');
  if (c.precision === 'bf16' && c.device === 'cpu') configFail('precision', 'bf16 is a CUDA option; use fp32 on the CPU');
  return c;
}

/**
 * `--log-to jsonl,tensorboard` arrives as one string (a YAML list stays a list); and `--log tensorboard`
 * (a log file named where the console format goes, as open_clip users type it) adds the file to `log.to`,
 * leaving the console format as it was (`auto` unless named too: `--log plain,tensorboard`).
 */
function normalizeLog(c: TrainConfig): void {
  if (!isObject(c.log)) return;
  const list = (v: unknown): unknown => (typeof v === 'string' ? v.split(',').map((x) => x.trim()).filter(Boolean) : v);
  const to = list(c.log.to);
  const format = list(c.log.format);
  if (Array.isArray(format) && Array.isArray(to) && format.some((f) => (LOG_SINKS as readonly unknown[]).includes(f))) {
    const sinks = format.filter((f) => (LOG_SINKS as readonly unknown[]).includes(f));
    const rest = format.filter((f) => !sinks.includes(f));
    c.log.to = [...new Set([...to, ...sinks])] as TrainConfig['log']['to'];
    c.log.format = (rest.length === 0 ? DEFAULT_CONFIG.log.format : rest.length === 1 ? rest[0] : rest.join(',')) as TrainConfig['log']['format'];
  } else c.log.to = to as TrainConfig['log']['to'];
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
  for (const l of layers) c = mergeConfig(c, logShorthand(l.config), l.source);
  const v = validateTrainConfig(c);
  // A relaxation setting given with the CLIP loss would do nothing: say so instead of ignoring it (a value
  // equal to its default is not a setting: printed configs carry every key).
  if (v.loss.kind === 'clip')
    for (const l of layers)
      for (const k of ['alpha', 'variant', 'margin'] as const)
        if (isPlainObject(l.config) && isPlainObject(l.config.loss) && l.config.loss[k] !== undefined &&
            JSON.stringify(l.config.loss[k]) !== JSON.stringify(DEFAULT_CONFIG.loss[k]))
          configFail(`loss.${k}`, 'is a setting of the relaxed loss, but loss.kind is "clip" (the default): add loss.kind: relaxed (--loss relaxed)');
  return v;
}

/** `log: [jsonl, tensorboard]` in a layer is short for `log: { to: [jsonl, tensorboard] }`. */
function logShorthand(layer: unknown): unknown {
  if (!isObject(layer) || !(Array.isArray(layer.log) || typeof layer.log === 'string')) return layer;
  return { ...layer, log: { to: layer.log } };
}

/** Fields that must not change when a run resumes (they change what the next steps compute). */
export const RESUME_LOCKED_KEYS = [
  'model', 'data.dataset', 'data.root', 'data.options', 'data.trainSplit', 'data.synthetic', 'data.imageSize', 'data.geometry',
  'data.normalize', 'data.augment', 'data.pixels', 'text', 'loss', 'optimizer', 'schedule', 'batchSize', 'accumSteps', 'clipGradNorm', 'freeze',
  'seed', 'precision',
] as const;

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
