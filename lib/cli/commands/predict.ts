import type { CommandModule } from 'yargs';
import { CxrError } from '../../errors';
import { opts, withOptions } from '../options';
import { exitIfNothingUseful } from '../outcome';

interface PredictArgs {
  checkpoint: string;
  prompts: string;
  images?: string[];
  dir?: string;
  csv?: string;
  'image-col'?: string;
  'id-col'?: string;
  out?: string;
  heatmaps?: string;
  labels?: string;
  thresholds?: string;
  calibration?: string;
  json: boolean;
  temperature?: string;
  device: string;
  'batch-size': number;
  workers?: number;
  geometry: 'pad' | 'crop' | 'stretch';
  normalize: 'clip' | 'chexzero' | 'none';
  tokenizer?: string;
  quiet: boolean;
}

/**
 * `cxr-train predict`: zero-shot probabilities per pathology for image files (PNG, JPEG, DICOM), one CSV row
 * per image in the format `cxr-train score` reads, optional 0/1 calls at thresholds saved by `eval`.
 */
export const command: CommandModule<object, PredictArgs> = {
  command: 'predict',
  describe: 'Zero-shot pathology probabilities for new images (files, a folder, or a CSV list) to a CSV',
  builder: (y) =>
    withOptions(y, [
      opts.checkpoint({ demandOption: true }),
      opts.prompts(),
      opts.csv({ describe: 'CSV listing images (paths relative to the CSV\'s folder)' }),
      opts.imageCol({ describe: '--csv: column of image paths' }),
      opts.idCol({ describe: '--csv: id column (default: the image path)' }),
      opts.out({ describe: 'Predictions CSV: id, one probability column per label, "LABEL (call)" 0/1 columns with --thresholds (needed unless --heatmaps)' }),
      opts.thresholds(),
      opts.calibration(),
      opts.json({ describe: 'Print every row, the skipped files and counts as JSON on stdout' }),
      opts.temperature(),
      opts.device({ default: 'auto' }),
      opts.batchSize({ default: 32 }),
      opts.workers(),
      opts.geometry(),
      opts.normalize(),
      opts.tokenizer(),
      opts.quiet({ describe: 'No progress bar or summary on stderr' }),
    ])
      .option('images', { type: 'string', array: true, describe: 'Image files (PNG, JPEG, DICOM)' })
      .option('dir', { type: 'string', describe: 'Folder searched recursively for .png/.jpg/.jpeg/.dcm files (and files without extension)' })
      .option('heatmaps', { type: 'string', describe: 'Folder for saliency overlays: one PNG per image and label (Grad-CAM of the zero-shot score; an explanation aid, not a localisation claim), heatmaps.json, index.html' })
      .option('labels', { type: 'string', describe: '--heatmaps: comma-separated labels to explain (default: every label of the prompt set)' })
      .example('$0 predict --checkpoint runs/demo/run/model --dir xrays/ --out predictions.csv', 'Probabilities for every image of a folder')
      .example('$0 predict --checkpoint model/ --csv list.csv --image-col path --thresholds eval/thresholds.json --out pred.csv --json', 'A CSV list, with 0/1 calls (and calibrated probabilities when eval/calibration.json exists), result as JSON')
      .example('$0 predict --checkpoint runs/demo/run/model --dir xrays/ --heatmaps heatmaps/ --labels "Cardiomegaly,Pleural Effusion"', 'Saliency overlays of two labels (open heatmaps/index.html)') as never,
  handler: async (argv) => {
    const { predict } = await import('../../jobs/predict');
    const { parseTemperature } = await import('../../eval/modelEncoder');
    const { pickleWarningOnce } = await import('../../jobs/embed');
    const given = [argv.images, argv.dir, argv.csv].filter((x) => x !== undefined).length;
    if (given !== 1) throw new CxrError('E_CONFIG', 'give exactly one of --images, --dir, --csv');
    if (argv.csv !== undefined && !argv['image-col']) throw new CxrError('E_CONFIG', '--csv needs --image-col');
    if (argv.out === undefined && argv.heatmaps === undefined) throw new CxrError('E_CONFIG', 'give --out (the predictions CSV), --heatmaps DIR, or both');
    const heatmapLabels = argv.labels !== undefined ? String(argv.labels).split(',').map((l) => l.trim()).filter((l) => l !== '') : undefined;
    const temperature = parseTemperature(argv.temperature);
    const tty = !argv.quiet && process.stderr.isTTY;
    let bar: import('cli-progress').SingleBar | null = null;
    if (tty) {
      const { SingleBar, Presets } = await import('cli-progress');
      bar = new SingleBar({ format: 'predict [{bar}] {value}/{total} images | {eta_formatted} left', stream: process.stderr, hideCursor: true }, Presets.shades_classic);
    }
    let started = false;
    const r = await predict({
      checkpoint: argv.checkpoint,
      prompts: argv.prompts,
      ...(argv.images ? { images: argv.images.map(String) } : {}),
      ...(argv.dir !== undefined ? { dir: argv.dir } : {}),
      ...(argv.csv !== undefined ? { csv: argv.csv, imageCol: argv['image-col'] } : {}),
      ...(argv['id-col'] !== undefined ? { idCol: argv['id-col'] } : {}),
      ...(argv.thresholds !== undefined ? { thresholds: argv.thresholds } : {}),
      ...(argv.calibration !== undefined ? { calibration: argv.calibration } : {}),
      ...(temperature !== undefined ? { temperature } : {}),
      ...(argv.out !== undefined ? { out: argv.out } : {}),
      ...(argv.heatmaps !== undefined ? { heatmaps: argv.heatmaps } : {}),
      ...(heatmapLabels !== undefined ? { heatmapLabels } : {}),
      device: argv.device,
      batchSize: argv['batch-size'],
      ...(argv.workers !== undefined ? { workers: argv.workers } : {}),
      geometry: argv.geometry,
      normalize: argv.normalize,
      ...(argv.tokenizer !== undefined ? { tokenizer: argv.tokenizer } : {}),
      onWarning: (w) => pickleWarningOnce(w),
      ...(bar
        ? {
            onProgress: (done: number, total: number) => {
              if (!started) {
                bar!.start(total, 0);
                started = true;
              }
              bar!.update(done);
            },
          }
        : {}),
    });
    if (started) bar!.stop();
    if (argv.json) {
      process.stdout.write(JSON.stringify(r, null, 2) + '\n');
      exitIfNothingUseful('predict', r.nothingUseful);
      return;
    }
    if (!argv.quiet) {
      for (const w of r.warnings) process.stderr.write(`cxr-train: note: ${w}\n`);
      process.stderr.write(
        `predict: ${r.counts.predicted} of ${r.counts.total} image(s) scored (${r.labels.length} labels, ${r.imagesPerSec.toFixed(1)} images/s)${argv.out !== undefined ? ` -> ${argv.out}` : ''}` +
          `${r.counts.ignored ? `; ${r.counts.ignored} non-image file(s) ignored` : ''}${r.counts.skipped ? `; ${r.counts.skipped} skipped:` : ''}\n`,
      );
      const SHOW = 20;
      if (r.calibration) process.stderr.write(`predict: probabilities calibrated: ${r.calibration.description}${r.calibration.file ? ` (${r.calibration.file})` : ''}\n`);
      for (const s of r.skipped.slice(0, SHOW)) process.stderr.write(`  ${s.id}: ${s.reason}\n`);
      if (r.skipped.length > SHOW) process.stderr.write(`  ... and ${r.skipped.length - SHOW} more (--json lists them all)\n`);
      if (r.heatmaps) {
        process.stderr.write(`predict: ${r.heatmaps.files} heatmap overlay(s) -> ${r.heatmaps.html} (Grad-CAM on ${r.heatmaps.layer}; an explanation aid, not a localisation claim)\n`);
        for (const f of r.heatmaps.failed) process.stderr.write(`  heatmap of ${f.id} not written: ${f.reason}\n`);
      }
    }
    exitIfNothingUseful('predict', r.nothingUseful);
  },
};
