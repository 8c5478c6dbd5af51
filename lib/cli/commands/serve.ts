import type { CommandModule } from 'yargs';
import { CxrError } from '../../errors';

interface ServeArgs {
  checkpoint: string;
  port: number;
  host: string;
  prompts: string;
  thresholds?: string;
  temperature?: string;
  'max-upload-mb': number;
  device: string;
  geometry: 'pad' | 'crop' | 'stretch';
  normalize: 'clip' | 'chexzero' | 'none';
  tokenizer?: string;
}

/**
 * `cxr-train serve`: a local page to drop chest X-rays on and see the zero-shot probabilities. Binds to
 * loopback unless told otherwise; Ctrl-C (SIGINT) or SIGTERM stops it gracefully.
 */
export const command: CommandModule<object, ServeArgs> = {
  command: 'serve',
  describe: 'Serve a local web page: drop a chest X-ray (PNG, JPEG, DICOM), see per-pathology zero-shot probabilities',
  builder: (y) =>
    y
      .option('checkpoint', { type: 'string', demandOption: true, describe: 'Checkpoint (own model folder, OpenAI .pt, Hugging Face or open_clip folder)' })
      .option('port', { type: 'number', default: 8080, describe: 'Port (0: any free port)' })
      .option('host', { type: 'string', default: '127.0.0.1', describe: 'Interface to bind (default loopback only; 0.0.0.0 exposes it to the network)' })
      .option('prompts', { type: 'string', default: 'chexzero', describe: 'Prompt set: built-in name or JSON/YAML file' })
      .option('thresholds', { type: 'string', describe: 'thresholds.json from `cxr-train eval`: adds positive/negative calls' })
      .option('temperature', { type: 'string', describe: '"logit-scale" or a number; default 1 (CheXzero)' })
      .option('max-upload-mb', { type: 'number', default: 50, describe: 'Largest accepted upload (MB); larger ones get HTTP 413' })
      .option('device', { type: 'string', default: 'auto', describe: '"auto", "cpu" or "cuda:N"' })
      .option('geometry', { choices: ['pad', 'crop', 'stretch'] as const, default: 'pad' as const, describe: 'Fit images to the square input' })
      .option('normalize', { choices: ['clip', 'chexzero', 'none'] as const, default: 'clip' as const, describe: 'Pixel normalisation (as in training)' })
      .option('tokenizer', { type: 'string', describe: 'Tokenizer file or folder when not beside the checkpoint' }) as never,
  handler: async (argv) => {
    const { startServer } = await import('../../infer/server');
    const { parseTemperature } = await import('../../eval/modelEncoder');
    const { pickleWarningOnce } = await import('../../jobs/embed');
    if (!(argv['max-upload-mb'] > 0)) throw new CxrError('E_CONFIG', `--max-upload-mb must be positive, got ${argv['max-upload-mb']}`);
    const temperature = parseTemperature(argv.temperature);
    const server = await startServer({
      checkpoint: argv.checkpoint,
      port: argv.port,
      host: argv.host,
      prompts: argv.prompts,
      ...(argv.thresholds !== undefined ? { thresholds: argv.thresholds } : {}),
      ...(temperature !== undefined ? { temperature } : {}),
      maxUploadBytes: Math.round(argv['max-upload-mb'] * 1024 * 1024),
      device: argv.device,
      geometry: argv.geometry,
      normalize: argv.normalize,
      ...(argv.tokenizer !== undefined ? { tokenizer: argv.tokenizer } : {}),
      onWarning: (w) => pickleWarningOnce(w),
    });
    if (!['127.0.0.1', 'localhost', '::1'].includes(argv.host)) {
      process.stderr.write(`cxr-train: note: listening on ${argv.host}: anyone who can reach this machine can upload images\n`);
    }
    process.stdout.write(`cxr-train serve: ${server.url} (${server.model.labels.length} labels, prompts ${server.model.prompts.name}); Ctrl-C stops\n`);
    await new Promise<void>((resolve) => {
      const stop = (): void => {
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
        resolve();
      };
      process.on('SIGINT', stop);
      process.on('SIGTERM', stop);
    });
    process.stderr.write('cxr-train serve: stopping (finishing running requests)\n');
    await server.close();
  },
};
