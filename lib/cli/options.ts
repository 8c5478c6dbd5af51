/**
 * The CLI's shared vocabulary: one definition per flag that several commands use (its name, type, bounds
 * and old spellings), so that `--csv`, `--image-size`, `--out`, `--json`, `--workers`, ... mean the same
 * thing and are checked the same way in every command. A command takes a definition and overrides only
 * what differs (its help text, whether it is required); defaults of training are not repeated here (they
 * live in lib/train/schema.ts and lib/models/defaults.ts), and the `train` command's flags come from that
 * schema.
 */
import type { Argv, Options } from 'yargs';
import { CxrError } from '../errors';

/** Bounds of a numeric flag, checked before the command runs. */
export interface Bound {
  /** The value must be an integer. */
  integer?: boolean;
  /** Smallest allowed value (inclusive). */
  min?: number;
  /** Largest allowed value (inclusive). */
  max?: number;
}

/** One flag of the vocabulary. */
export interface CliOption {
  /** The flag without dashes, kebab-case. */
  readonly name: string;
  /** The yargs definition (type, describe, default, choices, demandOption, ...). */
  readonly spec: Options;
  /** Old spellings, still accepted for one release (hidden from `--help`, one note on stderr). */
  readonly old?: readonly string[];
  /** Bounds of a number, refused with E_CONFIG naming the flag. */
  readonly bound?: Bound;
  /** Any other check of a given value: returns what is wrong ("must be ..."), or undefined. */
  readonly check?: (v: unknown) => string | undefined;
  /** One line for the vocabulary table of docs/cli.md: what the flag means in every command. */
  readonly meaning: string;
}

/** What a command may change in a shared definition. */
export type Override = Partial<Options> & { old?: readonly string[] };

/** Message of a value outside `b`, or undefined when it is inside. */
export function boundProblem(v: unknown, b: Bound): string | undefined {
  const what =
    b.min !== undefined && b.max !== undefined
      ? `${b.integer ? 'an integer' : 'a number'} in [${b.min}, ${b.max}]`
      : b.min !== undefined
        ? `${b.integer ? 'an integer' : 'a number'} >= ${b.min}`
        : b.max !== undefined
          ? `${b.integer ? 'an integer' : 'a number'} <= ${b.max}`
          : b.integer
            ? 'an integer'
            : 'a number';
  const n = typeof v === 'number' ? v : typeof v === 'string' && v.trim() !== '' ? Number(v) : NaN;
  if (!Number.isFinite(n) || (b.integer && !Number.isInteger(n)) || (b.min !== undefined && n < b.min) || (b.max !== undefined && n > b.max)) {
    return `must be ${what}, got ${typeof v === 'string' ? JSON.stringify(v) : String(v)}`;
  }
  return undefined;
}

function def(name: string, meaning: string, base: Options, extra: { bound?: Bound; old?: readonly string[]; check?: CliOption['check'] } = {}) {
  return (over: Override = {}): CliOption => {
    const { old, ...spec } = over;
    const o = old ?? extra.old;
    return { name, meaning, spec: { ...base, ...spec }, ...(extra.bound ? { bound: extra.bound } : {}), ...(o && o.length ? { old: o } : {}), ...(extra.check ? { check: extra.check } : {}) };
  };
}

const nonNegInt: Bound = { integer: true, min: 0 };
const posInt: Bound = { integer: true, min: 1 };
const DEVICE = /^(auto|cpu|cuda(:\d+)?)$/;

/**
 * The shared flags. Each is a function of the command's overrides: `opts.csv({ describe: '...' })`.
 * The `meaning` is the same everywhere; the describe text may say what it is in that command.
 */
export const opts = {
  csv: def('csv', 'a CSV index file (.csv, .csv.gz; paths in it relative to the CSV\'s folder unless --root is given)', { type: 'string', describe: 'CSV index file' }),
  imageSize: def('image-size', 'image side in pixels (square)', { type: 'number', describe: 'Image side in pixels' }, { bound: { integer: true, min: 8 }, old: ['size'] }),
  out: def('out', 'where the command writes its output (a folder, or a file where it says so)', { type: 'string', describe: 'Output folder' }),
  json: def('json', 'print the result as JSON on stdout, and nothing else there (progress and notes stay on stderr)', {
    type: 'boolean',
    default: false,
    describe: 'Print the result as JSON on stdout (nothing else on stdout)',
  }),
  quiet: def('quiet', 'no progress output on stderr', { type: 'boolean', default: false, describe: 'No progress output' }),
  threads: def('threads', 'libtorch intra-op threads (default: physical cores, or CXR_THREADS)', { type: 'number', describe: 'libtorch threads (default: physical cores)' }, { bound: posInt }),
  workers: def('workers', 'image decoding worker threads (0: in process)', { type: 'number', describe: 'Image decoding threads (0: in process; default 2)' }, { bound: nonNegInt }),
  concurrency: def('concurrency', 'images decoded concurrently while writing shards', { type: 'number', describe: 'Images decoded concurrently' }, { bound: posInt }),
  seed: def('seed', 'the seed of everything random in the command (integer >= 0)', { type: 'number', describe: 'Seed' }, { bound: nonNegInt }),
  checkpoint: def('checkpoint', 'model weights: an own model folder, OpenAI .pt, Hugging Face or open_clip folder', {
    type: 'string',
    describe: 'Checkpoint (own model folder, OpenAI .pt, Hugging Face or open_clip folder)',
  }),
  tokenizer: def('tokenizer', 'tokenizer file or folder when not beside the checkpoint', { type: 'string', describe: 'Tokenizer file or folder when not beside the checkpoint' }),
  device: def('device', '"auto", "cpu" or "cuda:N"', { type: 'string', describe: '"auto", "cpu" or "cuda:N"' }, {
    check: (v) => (typeof v === 'string' && DEVICE.test(v) ? undefined : `must be "auto", "cpu" or "cuda:N", got ${JSON.stringify(v)}`),
  }),
  geometry: def('geometry', 'how an image is fitted to the square input: pad (CheXzero), crop (CLIP) or stretch', {
    choices: ['pad', 'crop', 'stretch'],
    default: 'pad',
    describe: 'Fit images to the square input',
  }),
  normalize: def('normalize', 'pixel normalisation preset (as in training)', { choices: ['clip', 'chexzero', 'none'], default: 'clip', describe: 'Pixel normalisation (as in training)' }),
  prompts: def('prompts', 'zero-shot prompt set: a built-in name or a JSON/YAML file', { type: 'string', default: 'chexzero', describe: 'Prompt set: built-in name or JSON/YAML file' }),
  temperature: def('temperature', '"logit-scale" (the model\'s learned scale) or a number; default 1 (CheXzero)', {
    type: 'string',
    describe: '"logit-scale" or a number; default 1 (CheXzero)',
  }),
  thresholds: def('thresholds', 'thresholds.json written by `cxr-train eval --val-split` (adds 0/1 calls)', { type: 'string', describe: 'thresholds.json written by `cxr-train eval --val-split`' }),
  calibration: def('calibration', 'calibration.json written by `cxr-train eval --calibrate` (calibrated probabilities), or none; default: the one beside --thresholds, when there', {
    type: 'string',
    describe: 'calibration.json from `cxr-train eval --calibrate`, or none (default: the one beside --thresholds, when there)',
  }),
  batchSize: def('batch-size', 'images (or pairs, for train) per batch', { type: 'number', describe: 'Images per encode call' }, { bound: posInt }),
  bootstrap: def('bootstrap', 'bootstrap resamples for 95% confidence intervals (0: none)', { type: 'number', describe: 'Bootstrap resamples for 95% CIs (0: none)' }, { bound: nonNegInt }),
  threshold: def('threshold', 'probability threshold of a positive call without a validation split, in [0, 1]', { type: 'number', describe: 'Threshold without a validation split' }, {
    bound: { min: 0, max: 1 },
  }),
  thresholdMetric: def('threshold-metric', 'criterion maximised on the validation split: mcc, f1 or youden', { choices: ['mcc', 'f1', 'youden'], default: 'mcc', describe: 'Criterion maximised on validation' }),
  dataset: def('dataset', 'dataset adapter: mimic-cxr, chexpert, chestx-ray14, padchest, vindr-cxr, openi, csv (eval, train: also shards, synthetic)', {
    type: 'string',
    describe: 'Adapter: mimic-cxr, chexpert, chestx-ray14, padchest, vindr-cxr, openi, csv',
  }),
  root: def('root', 'dataset root folder (for shards: the shard folder)', { type: 'string', describe: 'Dataset root folder' }),
  maxSamples: def('max-samples', 'use at most this many images (quick checks)', { type: 'number', describe: 'At most this many images' }, { bound: posInt }),
  n: def('n', 'number of synthetic images (one per study)', { type: 'number', describe: 'Number of images' }, { bound: posInt }),
  findingStrength: def('finding-strength', 'visibility of findings in synthetic images, in (0, 2] (1: standard; 0.5: subtle)', { type: 'number', describe: 'Finding visibility' }, {
    check: (v) => (typeof v === 'number' && v > 0 && v <= 2 ? undefined : `must be a number in (0, 2], got ${String(v)}`),
  }),
  imageCol: def('image-col', 'CSV column of image paths', { type: 'string', describe: 'csv: image path column' }),
  idCol: def('id-col', 'CSV column of sample ids', { type: 'string', describe: 'csv: sample id column' }),
  textCol: def('text-col', 'CSV column of report texts', { type: 'string', describe: 'csv: report text column' }),
  labelCols: def('label-cols', 'comma-separated CSV label columns', { type: 'string', describe: 'csv: comma-separated label columns' }),
  patientCol: def('patient-col', 'CSV column of patient ids', { type: 'string', describe: 'csv: patient id column' }),
  studyCol: def('study-col', 'CSV column of study ids', { type: 'string', describe: 'csv: study id column' }),
  viewCol: def('view-col', 'CSV column of views', { type: 'string', describe: 'csv: view column' }),
  splitCol: def('split-col', 'CSV column of splits', { type: 'string', describe: 'csv: split column' }),
  views: def('views', 'keep only these views (comma-separated, e.g. PA,AP)', { type: 'string', describe: 'Keep only these views (e.g. PA,AP)' }),
};

const camel = (s: string): string => s.replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase());

/** Removes a flag's value under both spellings yargs sets (kebab and camelCase). */
function drop(argv: Record<string, unknown>, name: string): void {
  delete argv[name];
  delete argv[camel(name)];
}

/**
 * Checks a parsed value against an option's bounds and check; throws E_CONFIG naming the flag.
 */
export function checkValue(o: Pick<CliOption, 'name' | 'bound' | 'check'>, v: unknown): void {
  if (v === undefined) return;
  for (const x of Array.isArray(v) ? v : [v]) {
    const msg = (o.bound ? boundProblem(x, o.bound) : undefined) ?? o.check?.(x);
    if (msg) throw new CxrError('E_CONFIG', `--${o.name} ${msg}`, { flag: o.name });
  }
}

/**
 * Defines `options` on a command: each flag, its old spellings as hidden flags, and a middleware that runs
 * before yargs' own validation: an old spelling is moved onto the flag (one note on stderr) and every
 * value is checked against its bounds (E_CONFIG naming the flag), so a bad value is refused before the
 * command writes anything.
 */
export function withOptions<T>(y: Argv<T>, options: readonly CliOption[]): Argv<T> {
  let b = y as Argv<unknown>;
  for (const o of options) {
    b = b.option(o.name, o.spec);
    for (const old of o.old ?? []) {
      const { type, array } = o.spec;
      b = b.option(old, { type, ...(array ? { array } : {}), hidden: true, describe: `old spelling of --${o.name}` });
    }
  }
  b = b.middleware((argv) => {
    const a = argv as Record<string, unknown>;
    for (const o of options) {
      for (const old of o.old ?? []) {
        if (a[old] === undefined) continue;
        process.stderr.write(`cxr-train: note: --${old} is now --${o.name} (the old spelling goes in the next release)\n`);
        a[o.name] = a[old];
        a[camel(o.name)] = a[old];
        drop(a, old);
      }
      checkValue(o, a[o.name]);
    }
  }, true);
  return b as Argv<T>;
}

/** Levenshtein distance of two strings. */
export function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = cur;
  }
  return prev[b.length];
}

const kebab = (s: string): string => s.replace(/([a-z0-9])([A-Z])/g, '$1-$2').toLowerCase();
const squash = (s: string): string => s.toLowerCase().replace(/[-_]/g, '');

/** The valid flag nearest to `flag` (kebab-case, no dashes), or undefined when none is close. */
export function nearestFlag(flag: string, valid: readonly string[]): string | undefined {
  const f = squash(flag);
  let best: string | undefined;
  let bestD = Infinity;
  for (const v of valid) {
    const s = squash(v);
    const d = s.startsWith(f) || f.startsWith(s) ? Math.min(editDistance(f, s), 2) : editDistance(f, s);
    if (d < bestD) [best, bestD] = [v, d];
  }
  return best !== undefined && bestD <= Math.max(2, Math.floor(f.length / 3)) ? best : undefined;
}

/** The flags a command line names (kebab-case, without dashes or a `no-` prefix), up to `--`. */
function givenFlags(argv: readonly string[]): string[] {
  return givenSpellings(argv).map(kebab);
}

/** The flags of a command line as typed (without dashes), up to `--`. */
function givenSpellings(argv: readonly string[]): string[] {
  const out: string[] = [];
  for (const t of argv) {
    if (t === '--') break;
    if (/^-\d/.test(t) || t === '-') continue;
    const m = /^--?([^=]+)/.exec(t);
    if (m) out.push(m[1]);
  }
  return out;
}

/**
 * The CLI's strictness for flags, checked before yargs' own validation (so a misspelt flag is named before
 * a missing required one): the first flag of `argv` that the command does not know, named once with the
 * nearest valid flag, or undefined when every flag is known.
 *
 * @param known every flag of the command (old spellings included)
 * @param visible the flags `--help` shows (the suggestions)
 */
export function unknownFlag(argv: readonly string[], known: readonly string[], visible: readonly string[]): string | undefined {
  const k = new Set(['help', 'version', ...known].map(kebab));
  const valid = [...new Set(['help', ...visible].filter((v) => /^[a-zA-Z][a-zA-Z0-9-]*$/.test(v)).map(kebab))];
  for (const typed of givenSpellings(argv)) {
    const f = kebab(typed);
    if (k.has(f) || (f.startsWith('no-') && k.has(f.slice(3)))) continue;
    const near = nearestFlag(f, valid);
    return `Unknown flag ${typed.length === 1 ? '-' : '--'}${typed}${near ? ` (did you mean --${near}?)` : ''}; \`--help\` lists the flags`;
  }
  return undefined;
}

/**
 * The one message of the CLI's strictness for yargs' unknown-argument list (which names a flag under
 * both its kebab and camelCase forms): each unknown flag once, with the nearest valid flag of the
 * command; stray positional words are named as arguments.
 *
 * @param unknown what yargs lists as unknown
 * @param argv the command line as given
 * @param valid the command's visible flags (kebab-case, no dashes)
 */
export function unknownArgumentsMessage(unknown: readonly string[], argv: readonly string[], visible: readonly string[]): string {
  const given = new Set(givenFlags(argv));
  const valid = [...new Set(['help', ...visible].filter((v) => /^[a-zA-Z][a-zA-Z0-9-]*$/.test(v)).map(kebab))];
  const seen = new Set<string>();
  const parts: string[] = [];
  for (const u of unknown) {
    const k = kebab(u);
    if (seen.has(k)) continue;
    seen.add(k);
    if (given.has(k)) {
      const near = nearestFlag(k, valid);
      parts.push(`Unknown flag ${k.length === 1 ? '-' : '--'}${k}${near ? ` (did you mean --${near}?)` : ''}`);
    } else parts.push(`Unexpected argument "${u}"`);
  }
  return parts.join('; ') + '; `--help` lists the flags';
}
