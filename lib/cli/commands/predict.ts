import type { CommandModule } from 'yargs';
import { CxrError } from '../../errors';
import { exitIfNothingUseful } from '../outcome';

interface PredictArgs {
  checkpoint: string;
  prompts: string;
  images?: string[];
  dir?: string;
  csv?: string;
  'image-col'?: string;
  'id-col'?: string;
  out: string;
  thresholds?: string;
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
    y
      .option('checkpoint', { type: 'string', demandOption: true, describe: 'Checkpoint (own model folder, OpenAI .pt, Hugging Face or open_clip folder)' })
      .option('prompts', { type: 'string', default: 'chexzero', describe: 'Prompt set: built-in name or JSON/YAML file' })
      .option('images', { type: 'string', array: true, describe: 'Image files (PNG, JPEG, DICOM)' })
      .option('dir', { type: 'string', describe: 'Folder searched recursively for .png/.jpg/.jpeg/.dcm files (and files without extension)' })
      .option('csv', { type: 'string', describe: 'CSV listing images (paths relative to the CSV\'s folder)' })
      .option('image-col', { type: 'string', describe: '--csv: column of image paths' })
      .option('id-col', { type: 'string', describe: '--csv: id column (default: the image path)' })
      .option('out', { type: 'string', demandOption: true, describe: 'Predictions CSV: id, one probability column per label, "LABEL (call)" 0/1 columns with --thresholds' })
      .option('thresholds', { type: 'string', describe: 'thresholds.json written by `cxr-train eval --val-split`' })
      .option('json', { type: 'boolean', default: false, describe: 'Print every row, the skipped files and counts as JSON' })
      .option('temperature', { type: 'string', describe: '"logit-scale" or a number; default 1 (CheXzero)' })
      .option('device', { type: 'string', default: 'auto', describe: '"auto", "cpu" or "cuda:N"' })
      .option('batch-size', { type: 'number', default: 32, describe: 'Images per encode call' })
      .option('workers', { type: 'number', describe: 'Image decoding threads (0: in process; default 2)' })
      .option('geometry', { choices: ['pad', 'crop', 'stretch'] as const, default: 'pad' as const, describe: 'Fit images to the square input' })
      .option('normalize', { choices: ['clip', 'chexzero', 'none'] as const, default: 'clip' as const, describe: 'Pixel normalisation (as in training)' })
      .option('tokenizer', { type: 'string', describe: 'Tokenizer file or folder when not beside the checkpoint' })
      .option('quiet', { type: 'boolean', default: false, describe: 'No progress bar or summary on stderr' }) as never,
  handler: async (argv) => {
    const { predict } = await import('../../jobs/predict');
    const { parseTemperature } = await import('../../eval/modelEncoder');
    const { pickleWarningOnce } = await import('../../jobs/embed');
    const given = [argv.images, argv.dir, argv.csv].filter((x) => x !== undefined).length;
    if (given !== 1) throw new CxrError('E_CONFIG', 'give exactly one of --images, --dir, --csv');
    if (argv.csv !== undefined && !argv['image-col']) throw new CxrError('E_CONFIG', '--csv needs --image-col');
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
      ...(temperature !== undefined ? { temperature } : {}),
      out: argv.out,
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
        `predict: ${r.counts.predicted} of ${r.counts.total} image(s) scored (${r.labels.length} labels, ${r.imagesPerSec.toFixed(1)} images/s) -> ${argv.out}` +
          `${r.counts.ignored ? `; ${r.counts.ignored} non-image file(s) ignored` : ''}${r.counts.skipped ? `; ${r.counts.skipped} skipped:` : ''}\n`,
      );
      const SHOW = 20;
      for (const s of r.skipped.slice(0, SHOW)) process.stderr.write(`  ${s.id}: ${s.reason}\n`);
      if (r.skipped.length > SHOW) process.stderr.write(`  ... and ${r.skipped.length - SHOW} more (--json lists them all)\n`);
    }
    exitIfNothingUseful('predict', r.nothingUseful);
  },
};
