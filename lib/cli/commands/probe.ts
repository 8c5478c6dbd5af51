import type { CommandModule } from 'yargs';
import { CxrError } from '../../errors';
import { opts, withOptions } from '../options';
import { datasetFromArgs, list, withDatasetOptions, type DatasetArgs } from '../dataArgs';

interface ProbeArgs extends DatasetArgs {
  checkpoint: string;
  'train-split': string;
  'val-split': string;
  split: string;
  labels?: string;
  fractions: string;
  'c-grid'?: string;
  'subset-seed': number;
  prompts: string;
  temperature?: string;
  bootstrap: number;
  seed: number;
  tol: number;
  'max-iter': number;
  out: string;
  /** A folder, or false from `--no-cache` (yargs' negation of --cache). */
  cache?: string | false;
  device: string;
  'batch-size': number;
  workers?: number;
  'max-samples'?: number;
  geometry: 'pad' | 'crop' | 'stretch';
  normalize: 'clip' | 'chexzero' | 'none';
  tokenizer?: string;
  json: boolean;
  quiet: boolean;
}

/** A comma-separated list of numbers, E_CONFIG naming the flag otherwise. */
function numbers(flag: string, v: string): number[] {
  const xs = list(v) ?? [];
  if (xs.length === 0) throw new CxrError('E_CONFIG', `--${flag} needs comma-separated numbers, got ${JSON.stringify(v)}`);
  return xs.map((x) => {
    const n = Number(x);
    if (!Number.isFinite(n)) throw new CxrError('E_CONFIG', `--${flag}: ${JSON.stringify(x)} is not a number`);
    return n;
  });
}

/**
 * `cxr-train probe`: linear probes on a checkpoint's frozen image embeddings with 1 %, 10 % and 100 % of
 * the training labels, next to the zero-shot AUROC of the same checkpoint on the same test split.
 */
export const command: CommandModule<object, ProbeArgs> = {
  command: 'probe',
  describe: 'Linear probes on frozen image embeddings (1/10/100 % of the training labels, C chosen on validation) next to zero-shot AUROC',
  builder: (y) =>
    withOptions(withDatasetOptions(y), [
      opts.checkpoint({ demandOption: true }),
      opts.prompts({ describe: 'Prompt set of the zero-shot column: built-in name or JSON/YAML file' }),
      opts.temperature(),
      opts.bootstrap({ default: 1000 }),
      opts.seed({ default: 0, describe: 'Bootstrap seed' }),
      opts.out({ demandOption: true, describe: 'Output folder: probe.json, probe.html (and the embedding cache, unless --cache)' }),
      opts.device({ default: 'auto' }),
      opts.batchSize({ default: 32 }),
      opts.workers(),
      opts.maxSamples({ describe: 'Use at most this many images per split (quick checks)' }),
      opts.geometry(),
      opts.normalize(),
      opts.tokenizer(),
      opts.json({ describe: 'Print the results as JSON on stdout' }),
      opts.quiet(),
    ])
      .option('train-split', { type: 'string', default: 'train', describe: 'Split the probes are fitted on' })
      .option('val-split', { type: 'string', default: 'validate', describe: 'Split C is chosen on (lowest log-loss)' })
      .option('split', { type: 'string', default: 'test', describe: 'Split scored' })
      .option('labels', { type: 'string', describe: 'Comma-separated labels (default: the dataset labels the prompt set covers)' })
      .option('fractions', { type: 'string', default: '1,10,100', describe: 'Label fractions in percent of the training patients, in (0, 100]' })
      .option('c-grid', { type: 'string', describe: 'Comma-separated inverse regularisation strengths C (default 1e-4,1e-3,...,100)' })
      .option('subset-seed', { type: 'number', default: 0, describe: 'Seed of the patient-level training subsets' })
      .option('tol', { type: 'number', default: 1e-6, describe: 'Solver tolerance: max |gradient| of the mean objective' })
      .option('max-iter', { type: 'number', default: 1000, describe: 'L-BFGS iterations per fit at most' })
      .option('cache', { type: 'string', describe: 'Embedding cache folder (default: OUT/embeddings; share one across outputs); --no-cache: none' })
      .example('$0 probe --checkpoint runs/demo/run/model --dataset shards --root runs/demo/shards --out probe/', 'Probe table of a run next to its zero-shot AUROC')
      .example('$0 probe --checkpoint model/ --dataset mimic-cxr --root data/mimic --fractions 1,10 --labels Edema,Atelectasis --cache emb/ --out probe/ --json', 'Two labels, two fractions, a shared embedding cache, JSON out') as never,
  handler: async (argv) => {
    const { probeCheckpoint } = await import('../../jobs/probe');
    const { formatProbeText } = await import('../../eval/probe/format');
    const { parseTemperature } = await import('../../eval/modelEncoder');
    const { pickleWarningOnce } = await import('../../jobs/embed');
    const { dataset, adapterOptions } = datasetFromArgs(argv);
    const fractions = numbers('fractions', argv.fractions).map((p) => {
      if (!(p > 0 && p <= 100)) throw new CxrError('E_CONFIG', `--fractions are percentages in (0, 100], got ${p}`);
      return p / 100;
    });
    const cGrid = argv['c-grid'] !== undefined ? numbers('c-grid', argv['c-grid']) : undefined;
    if (!Number.isInteger(argv['subset-seed']) || argv['subset-seed'] < 0) throw new CxrError('E_CONFIG', `--subset-seed must be an integer >= 0, got ${argv['subset-seed']}`);
    if (!(argv.tol > 0)) throw new CxrError('E_CONFIG', `--tol must be positive, got ${argv.tol}`);
    if (!Number.isInteger(argv['max-iter']) || argv['max-iter'] < 1) throw new CxrError('E_CONFIG', `--max-iter must be a positive integer, got ${argv['max-iter']}`);
    const cache = argv.cache as unknown;
    if (cache !== undefined && cache !== false && (typeof cache !== 'string' || cache === '')) throw new CxrError('E_CONFIG', '--cache needs a folder (or --no-cache for none)');
    const temperature = parseTemperature(argv.temperature);
    const progress = !argv.quiet && !argv.json;
    let lastSplit = '';
    const r = await probeCheckpoint({
      checkpoint: argv.checkpoint,
      dataset,
      adapterOptions,
      trainSplit: argv['train-split'],
      valSplit: argv['val-split'],
      testSplit: argv.split,
      ...(argv.labels !== undefined ? { labels: list(argv.labels) ?? [] } : {}),
      prompts: argv.prompts,
      ...(temperature !== undefined ? { temperature } : {}),
      fractions,
      ...(cGrid ? { cGrid } : {}),
      subsetSeed: argv['subset-seed'],
      bootstrap: argv.bootstrap,
      seed: argv.seed,
      tol: argv.tol,
      maxIter: argv['max-iter'],
      outDir: argv.out,
      ...(cache === false ? { cacheDir: null } : typeof cache === 'string' ? { cacheDir: cache } : {}),
      device: argv.device,
      batchSize: argv['batch-size'],
      ...(argv.workers !== undefined ? { workers: argv.workers } : {}),
      ...(argv['max-samples'] !== undefined ? { maxSamples: argv['max-samples'] } : {}),
      geometry: argv.geometry,
      normalize: argv.normalize,
      ...(argv.tokenizer !== undefined ? { tokenizer: argv.tokenizer } : {}),
      onWarning: (w) => pickleWarningOnce(w),
      ...(progress
        ? {
            onProgress: (e) => {
              if (e.stage === 'embed' && e.split !== lastSplit) {
                lastSplit = e.split;
                process.stderr.write(`probe: embedding the ${e.split} split (${e.total} images)\n`);
              }
            },
          }
        : {}),
    });
    if (argv.json) {
      // The probe weights stay in probe.json.
      process.stdout.write(JSON.stringify(r, (k, v) => (k === 'weights' ? undefined : v), 2) + '\n');
      return;
    }
    process.stdout.write(formatProbeText(r));
    for (const [k, s] of Object.entries(r.splits)) {
      process.stdout.write(`${k} (${s.name}): ${s.images} image(s) embedded, cache ${s.cache}${s.skipped.length ? `, ${s.skipped.length} skipped (first: ${s.skipped[0].id}: ${s.skipped[0].reason})` : ''}\n`);
    }
    for (const w of r.warnings) process.stderr.write(`cxr-train: warning: ${w}\n`);
    process.stdout.write(`results: ${r.file}\npage: ${r.html}\n`);
  },
};
