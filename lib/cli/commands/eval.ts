import type { CommandModule } from 'yargs';
import { CxrError } from '../../errors';
import type { ThresholdCriterion } from '../../eval/metrics';
import { formatScoreText } from './score';
import { opts, withOptions } from '../options';
import { datasetFromArgs, list, withDatasetOptions, type DatasetArgs } from '../dataArgs';

interface EvalArgs extends DatasetArgs {
  checkpoint: string;
  split: string;
  'val-split'?: string;
  prompts: string;
  temperature?: string;
  ensemble?: string;
  'ensemble-average': 'probabilities' | 'logits';
  retrieval: boolean;
  'retrieval-sections': 'findings+impression' | 'impression' | 'findings' | 'all';
  kx200?: string;
  'kx200-per-label': number;
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
  calibrate?: 'temperature' | 'platt';
  'calibration-bins': number;
  subgroups?: string;
  'subgroup-min-size': number;
  'age-bands'?: string;
}

/**
 * `cxr-train eval`: zero-shot predictions of a checkpoint (or ensemble) on a dataset split, scored like
 * `cxr-train score` (thresholds fitted on --val-split and frozen), with the report card and thresholds.json.
 */
export const command: CommandModule<object, EvalArgs> = {
  command: 'eval',
  describe: 'Zero-shot evaluation of a checkpoint on a dataset split: predictions CSV, scores with CIs, report card, thresholds',
  builder: (y) =>
    withOptions(withDatasetOptions(y, { oldFile: true }), [
      opts.checkpoint({ demandOption: true }),
      opts.prompts(),
      opts.temperature({ describe: '"logit-scale" (the model\'s learned scale) or a number; default 1 (CheXzero)' }),
      opts.bootstrap({ default: 1000 }),
      opts.seed({ default: 0, describe: 'Bootstrap seed' }),
      opts.thresholdMetric({ describe: 'Criterion maximised on the validation split' }),
      opts.threshold({ default: 0.5, describe: 'Threshold without --val-split, in [0, 1]' }),
      opts.out({ demandOption: true, describe: 'Output folder: predictions.csv, truth.csv, report.json/html, thresholds.json' }),
      opts.device({ default: 'auto' }),
      opts.batchSize({ default: 32 }),
      opts.workers(),
      opts.maxSamples({ describe: 'Score at most this many images per split (quick checks)' }),
      opts.geometry(),
      opts.normalize(),
      opts.tokenizer(),
      opts.json({ describe: 'Print the scores as JSON on stdout' }),
      opts.quiet(),
      { name: 'calibration-bins', meaning: 'reliability bins of ECE and the reliability diagrams', spec: { type: 'number', default: 10, describe: 'Reliability bins of ECE and the reliability diagrams (equal-width and equal-mass)' }, bound: { integer: true, min: 1, max: 1000 } },
      { name: 'subgroup-min-size', meaning: 'smallest subgroup scored, in images', spec: { type: 'number', default: 50, describe: 'With --subgroups: groups with fewer images are named and left out' }, bound: { integer: true, min: 1 } },
    ])
      .option('split', { type: 'string', default: 'test', describe: 'Split scored' })
      .option('val-split', { type: 'string', describe: 'Split the thresholds are fitted on (e.g. validate); never the scored split' })
      .option('ensemble', { type: 'string', describe: 'Comma-separated further checkpoints: probabilities are averaged' })
      .option('calibrate', { type: 'string', choices: ['temperature', 'platt'], describe: 'Fit a calibration map per label on --val-split (on the logit of the probability), apply it to the scored split, write calibration.json (predict and serve use it)' })
      .option('subgroups', { type: 'string', describe: 'AUROC with CIs per group of these columns: sex, age (in bands), view' })
      .option('age-bands', { type: 'string', describe: 'Age band edges in years (default 18,40,60,80: <18, 18-39, 40-59, 60-79, 80+)' })
      .option('ensemble-average', { choices: ['probabilities', 'logits'] as const, default: 'probabilities' as const, describe: 'How ensemble members are combined: mean probability (CheXzero) or sigmoid of the mean logit' })
      .option('retrieval', { type: 'boolean', default: false, describe: 'Also image↔report Recall@1/5/10 and ranks on the scored split (needs reports), and the k×200 label-prompt protocol' })
      .option('retrieval-sections', { choices: ['findings+impression', 'impression', 'findings', 'all'] as const, default: 'findings+impression' as const, describe: 'Report sections of the retrieval text (whole, cut to the context length)' })
      .option('kx200', { type: 'string', describe: 'k×200 labels, comma-separated, or none; default the CheXpert 5×200 five (Atelectasis, Cardiomegaly, Consolidation, Edema, Pleural Effusion)' })
      .option('kx200-per-label', { type: 'number', default: 200, describe: 'k×200: images per label (fewer when the split has fewer; said in the report)' })
      .example('$0 eval --checkpoint runs/demo/run/model --dataset mimic-cxr --root data/synth --val-split validate --out eval/', 'Test-split AUROC with CIs; thresholds fitted on validation')
      .example('$0 eval --checkpoint runs/demo/run/model --dataset mimic-cxr --root data/synth --val-split validate --calibrate temperature --subgroups sex,age,view --out eval/', 'Also calibration (maps in eval/calibration.json) and subgroup AUROC')
      .example('$0 eval --checkpoint runs/demo/run/model --dataset mimic-cxr --root data/synth --val-split validate --retrieval --out eval/', 'Also image↔report retrieval and CheXpert 5×200 in the report card')
      .example('$0 eval --checkpoint a/model --ensemble b/model,c/model --dataset mimic-cxr --root data/synth --val-split validate --out eval/', 'An ensemble: every member beside it, deltas over the best member')
      .example('$0 eval --checkpoint model/ --csv test.csv --image-col path --label-cols Edema,Effusion --split-col split --out eval/ --json', 'A labelled CSV (paths relative to it), scores as JSON') as never,
  handler: async (argv) => {
    const { evaluateCheckpoint } = await import('../../jobs/evaluate');
    const { parseTemperature } = await import('../../eval/modelEncoder');
    const { withoutCurves } = await import('../../eval/score');
    const { pickleWarningOnce } = await import('../../jobs/embed');
    const { formatEnsembleText, formatRetrievalText } = await import('../retrievalText');
    const { dataset, adapterOptions } = datasetFromArgs(argv);
    if (argv.kx200 !== undefined && !argv.retrieval) throw new CxrError('E_CONFIG', '--kx200 belongs to --retrieval: add --retrieval');
    const temperature = parseTemperature(argv.temperature);
    const { parseSubgroupAttributes, checkAgeBands } = await import('../../eval/subgroups');
    const subgroups = argv.subgroups !== undefined ? parseSubgroupAttributes(argv.subgroups) : undefined;
    const ageBands = argv['age-bands'] !== undefined ? checkAgeBands(argv['age-bands'].split(',').map((x) => (x.trim() === '' ? NaN : Number(x)))) : undefined;
    const tty = !argv.quiet && !argv.json && process.stderr.isTTY;
    let bar: import('cli-progress').SingleBar | null = null;
    let barKey = '';
    const r = await evaluateCheckpoint({
      checkpoint: argv.checkpoint,
      ...(argv.ensemble ? { ensemble: list(argv.ensemble) } : {}),
      ensembleAverage: argv['ensemble-average'],
      ...(argv.retrieval
        ? {
            retrieval: {
              sections: argv['retrieval-sections'],
              ...(argv.kx200 !== undefined ? { kx200Labels: argv.kx200.trim().toLowerCase() === 'none' ? null : list(argv.kx200) ?? [] } : {}),
              kx200PerLabel: argv['kx200-per-label'],
              seed: argv.seed,
            },
          }
        : {}),
      dataset,
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
      ...(argv.calibrate ? { calibrate: argv.calibrate } : {}),
      calibrationBins: argv['calibration-bins'],
      ...(subgroups ? { subgroups, subgroupMinSize: argv['subgroup-min-size'] } : {}),
      ...(ageBands ? { ageBands } : {}),
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
      const extra = { ...(r.retrieval ? { retrieval: r.retrieval } : {}), ...(r.ensemble ? { ensemble: r.ensemble } : {}) };
      process.stdout.write(JSON.stringify({ ...withoutCurves(r.result), files: r.files, checkpointHashes: r.checkpointHashes, manifestHash: r.manifestHash, splits: r.splits, calibration: r.calibration, ...(r.subgroups ? { subgroups: r.subgroups } : {}), ...extra }, (_k, v) => (typeof v === 'number' && !Number.isFinite(v) ? null : v), 2) + '\n');
      return;
    }
    process.stdout.write(formatScoreText(r.result));
    if (r.ensemble) process.stdout.write(formatEnsembleText(r.ensemble));
    if (r.retrieval) process.stdout.write(formatRetrievalText(r.retrieval));
    for (const [name, s] of Object.entries(r.splits)) {
      process.stdout.write(`${name}: ${s.images} image(s) scored${s.skipped.length ? `, ${s.skipped.length} skipped (first: ${s.skipped[0].id}: ${s.skipped[0].reason})` : ''}\n`);
    }
    const { formatCalibrationText, formatSubgroupText } = await import('../evalText');
    process.stdout.write(formatCalibrationText(r.calibration));
    if (r.subgroups) process.stdout.write(formatSubgroupText(r.subgroups));
    process.stdout.write(`predictions: ${r.files.predictions}\nreport card: ${r.files.reportHtml}\n${r.files.thresholds ? `thresholds: ${r.files.thresholds}\n` : ''}${r.files.calibration ? `calibration: ${r.files.calibration}\n` : ''}`);
  },
};
