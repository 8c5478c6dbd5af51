import type { CommandModule } from 'yargs';
import { CxrError } from '../../errors';
import type { ThresholdCriterion } from '../../eval/metrics';
import { formatScoreText } from './score';

interface EvalArgs {
  checkpoint: string;
  dataset: string;
  root: string;
  split: string;
  'val-split'?: string;
  prompts: string;
  temperature?: string;
  ensemble?: string;
  bootstrap: number;
  seed: number;
  'threshold-metric': ThresholdCriterion;
  threshold: number;
  out: string;
  device: string;
  'batch-size': number;
  workers?: number;
  'max-samples'?: number;
  geometry: 'pad' | 'crop' | 'stretch';
  normalize: 'clip' | 'chexzero' | 'none';
  tokenizer?: string;
  json: boolean;
  quiet: boolean;
  // Adapter options.
  views?: string;
  labeler?: string;
  'reports-root'?: string;
  uncertain?: string;
  aggregation?: string;
  file?: string;
  'image-col'?: string;
  'label-cols'?: string;
  'patient-col'?: string;
  'id-col'?: string;
  'split-col'?: string;
  'view-col'?: string;
}

const list = (v: string | undefined): string[] | undefined =>
  v === undefined || v === '' ? undefined : v.split(',').map((s) => s.trim()).filter(Boolean);

/**
 * `cxr-train eval`: zero-shot predictions of a checkpoint (or ensemble) on a dataset split, scored like
 * `cxr-train score` (thresholds fitted on --val-split and frozen), with the report card and thresholds.json.
 */
export const command: CommandModule<object, EvalArgs> = {
  command: 'eval',
  describe: 'Zero-shot evaluation of a checkpoint on a dataset split: predictions CSV, scores with CIs, report card, thresholds',
  builder: (y) =>
    y
      .option('checkpoint', { type: 'string', demandOption: true, describe: 'Checkpoint (own model folder, OpenAI .pt, Hugging Face or open_clip folder)' })
      .option('dataset', { type: 'string', demandOption: true, describe: 'Adapter: mimic-cxr, chexpert, chestx-ray14, padchest, vindr-cxr, openi, csv, or shards (a prepare output)' })
      .option('root', { type: 'string', demandOption: true, describe: 'Dataset root (for shards: the shard folder)' })
      .option('split', { type: 'string', default: 'test', describe: 'Split scored' })
      .option('val-split', { type: 'string', describe: 'Split the thresholds are fitted on (e.g. validate); never the scored split' })
      .option('prompts', { type: 'string', default: 'chexzero', describe: 'Prompt set: built-in name or JSON/YAML file' })
      .option('temperature', { type: 'string', describe: '"logit-scale" (the model\'s learned scale) or a number; default 1 (CheXzero)' })
      .option('ensemble', { type: 'string', describe: 'Comma-separated further checkpoints: probabilities are averaged' })
      .option('bootstrap', { type: 'number', default: 1000, describe: 'Bootstrap resamples for 95% CIs (0: none)' })
      .option('seed', { type: 'number', default: 0, describe: 'Bootstrap seed' })
      .option('threshold-metric', { choices: ['mcc', 'f1', 'youden'] as const, default: 'mcc' as ThresholdCriterion, describe: 'Criterion maximised on the validation split' })
      .option('threshold', { type: 'number', default: 0.5, describe: 'Threshold without --val-split' })
      .option('out', { type: 'string', demandOption: true, describe: 'Output folder: predictions.csv, truth.csv, report.json/html, thresholds.json' })
      .option('device', { type: 'string', default: 'auto', describe: '"auto", "cpu" or "cuda:N"' })
      .option('batch-size', { type: 'number', default: 32, describe: 'Images per encode call' })
      .option('workers', { type: 'number', describe: 'Image decoding threads (0: in process; default 2)' })
      .option('max-samples', { type: 'number', describe: 'Score at most this many images per split (quick checks)' })
      .option('geometry', { choices: ['pad', 'crop', 'stretch'] as const, default: 'pad' as const, describe: 'Fit images to the square input' })
      .option('normalize', { choices: ['clip', 'chexzero', 'none'] as const, default: 'clip' as const, describe: 'Pixel normalisation (as in training)' })
      .option('tokenizer', { type: 'string', describe: 'Tokenizer file or folder when not beside the checkpoint' })
      .option('json', { type: 'boolean', default: false, describe: 'Print the scores as JSON' })
      .option('quiet', { type: 'boolean', default: false, describe: 'No progress output' })
      .option('views', { type: 'string', describe: 'Adapter: keep only these views (e.g. PA,AP)' })
      .option('labeler', { type: 'string', describe: 'mimic-cxr: chexpert or negbio labels' })
      .option('reports-root', { type: 'string', describe: 'mimic-cxr: folder of the reports files/ tree' })
      .option('uncertain', { type: 'string', describe: 'chexpert: policy for -1 labels (keep = masked in scoring)' })
      .option('aggregation', { type: 'string', describe: 'vindr-cxr: reader aggregation' })
      .option('file', { type: 'string', describe: 'csv: index file' })
      .option('image-col', { type: 'string', describe: 'csv: image path column' })
      .option('label-cols', { type: 'string', describe: 'csv: comma-separated label columns' })
      .option('patient-col', { type: 'string', describe: 'csv: patient id column' })
      .option('id-col', { type: 'string', describe: 'csv: sample id column' })
      .option('split-col', { type: 'string', describe: 'csv: split column' })
      .option('view-col', { type: 'string', describe: 'csv: view column' }) as never,
  handler: async (argv) => {
    const { evaluateCheckpoint } = await import('../../jobs/evaluate');
    const { parseTemperature } = await import('../../eval/modelEncoder');
    const { withoutCurves } = await import('../../eval/score');
    const { pickleWarningOnce } = await import('../../jobs/embed');
    if (!Number.isInteger(argv.bootstrap) || argv.bootstrap < 0) throw new CxrError('E_CONFIG', `--bootstrap must be an integer >= 0, got ${argv.bootstrap}`);
    if (!Number.isInteger(argv.seed)) throw new CxrError('E_CONFIG', `--seed must be an integer, got ${argv.seed}`);
    if (argv['max-samples'] !== undefined && !(Number.isInteger(argv['max-samples']) && argv['max-samples'] > 0)) throw new CxrError('E_CONFIG', '--max-samples must be a positive integer');
    const adapterOptions: { root: string } & Record<string, unknown> = { root: argv.root };
    const put = (k: string, v: unknown): void => {
      if (v !== undefined) adapterOptions[k] = v;
    };
    put('views', list(argv.views));
    put('labeler', argv.labeler);
    put('reportsRoot', argv['reports-root']);
    put('uncertain', argv.uncertain);
    put('aggregation', argv.aggregation);
    put('file', argv.file);
    put('imageCol', argv['image-col']);
    put('labelCols', list(argv['label-cols']));
    put('patientCol', argv['patient-col']);
    put('idCol', argv['id-col']);
    put('splitCol', argv['split-col']);
    put('viewCol', argv['view-col']);
    const temperature = parseTemperature(argv.temperature);
    const tty = !argv.quiet && !argv.json && process.stderr.isTTY;
    let bar: import('cli-progress').SingleBar | null = null;
    let barKey = '';
    const r = await evaluateCheckpoint({
      checkpoint: argv.checkpoint,
      ...(argv.ensemble ? { ensemble: list(argv.ensemble) } : {}),
      dataset: argv.dataset,
      adapterOptions,
      split: argv.split,
      valSplit: argv['val-split'] ?? null,
      prompts: argv.prompts,
      ...(temperature !== undefined ? { temperature } : {}),
      bootstrap: argv.bootstrap,
      seed: argv.seed,
      thresholdCriterion: argv['threshold-metric'],
      threshold: argv.threshold,
      outDir: argv.out,
      device: argv.device,
      batchSize: argv['batch-size'],
      ...(argv.workers !== undefined ? { workers: argv.workers } : {}),
      ...(argv['max-samples'] !== undefined ? { maxSamples: argv['max-samples'] } : {}),
      geometry: argv.geometry,
      normalize: argv.normalize,
      ...(argv.tokenizer !== undefined ? { tokenizer: argv.tokenizer } : {}),
      onWarning: (w) => pickleWarningOnce(w),
      ...(tty
        ? {
            onProgress: (e) => {
              const key = `${e.checkpoint} ${e.split}`;
              if (key !== barKey) {
                bar?.stop();
                const { SingleBar, Presets } = require('cli-progress') as typeof import('cli-progress');
                bar = new SingleBar({ format: `eval ${e.split} [{bar}] {value}/{total} images | {eta_formatted} left`, stream: process.stderr, hideCursor: true }, Presets.shades_classic);
                bar.start(e.total, 0);
                barKey = key;
              }
              bar!.update(e.done);
            },
          }
        : {}),
    });
    (bar as import('cli-progress').SingleBar | null)?.stop();
    if (argv.json) {
      process.stdout.write(JSON.stringify({ ...withoutCurves(r.result), files: r.files, checkpointHashes: r.checkpointHashes, manifestHash: r.manifestHash, splits: r.splits }, null, 2) + '\n');
      return;
    }
    process.stdout.write(formatScoreText(r.result));
    for (const [name, s] of Object.entries(r.splits)) {
      process.stdout.write(`${name}: ${s.images} image(s) scored${s.skipped.length ? `, ${s.skipped.length} skipped (first: ${s.skipped[0].id}: ${s.skipped[0].reason})` : ''}\n`);
    }
    process.stdout.write(`predictions: ${r.files.predictions}\nreport card: ${r.files.reportHtml}\n${r.files.thresholds ? `thresholds: ${r.files.thresholds}\n` : ''}`);
  },
};
