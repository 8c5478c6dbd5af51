import type { CommandModule } from 'yargs';
import { opts, withOptions } from '../options';

interface ServeArgs {
  checkpoint: string;
  port: number;
  host: string;
  prompts: string;
  thresholds?: string;
  calibration?: string;
  temperature?: string;
  'max-upload-mb': number;
  device: string;
  geometry: 'pad' | 'crop' | 'stretch';
  normalize: 'clip' | 'chexzero' | 'none';
  tokenizer?: string;
  json: boolean;
}

/**
 * `cxr-train serve`: a local page to drop chest X-rays on and see the zero-shot probabilities. Binds to
 * loopback unless told otherwise; Ctrl-C (SIGINT) or SIGTERM stops it gracefully.
 */
export const command: CommandModule<object, ServeArgs> = {
  command: 'serve',
  describe: 'Serve a local web page: drop a chest X-ray (PNG, JPEG, DICOM), see per-pathology zero-shot probabilities',
  builder: (y) =>
    withOptions(y, [
      opts.checkpoint({ demandOption: true }),
      { name: 'port', meaning: 'TCP port to listen on (0: any free port)', spec: { type: 'number', default: 8080, describe: 'Port (0: any free port)' }, bound: { integer: true, min: 0, max: 65535 } },
      opts.prompts(),
      opts.thresholds({ describe: 'thresholds.json from `cxr-train eval`: adds positive/negative calls' }),
      opts.calibration(),
      opts.temperature(),
      { name: 'max-upload-mb', meaning: 'largest accepted upload in MB', spec: { type: 'number', default: 50, describe: 'Largest accepted upload (MB); larger ones get HTTP 413' }, check: (v) => (typeof v === 'number' && v > 0 ? undefined : `must be a positive number, got ${String(v)}`) },
      opts.device({ default: 'auto' }),
      opts.geometry(),
      opts.normalize(),
      opts.tokenizer(),
      opts.json({ describe: 'Print the address as one JSON line on stdout once listening' }),
    ])
      .option('host', { type: 'string', default: '127.0.0.1', describe: 'Interface to bind (default loopback only; 0.0.0.0 exposes it to the network)' })
      .example('$0 serve --checkpoint runs/demo/run/model', 'Serve http://127.0.0.1:8080: drop an X-ray on the page')
      .example('$0 serve --checkpoint model/ --thresholds eval/thresholds.json --port 0 --json', 'Any free port, with 0/1 calls; the address as JSON') as never,
  handler: async (argv) => {
    const { startServer } = await import('../../infer/server');
    const { parseTemperature } = await import('../../eval/modelEncoder');
    const { pickleWarningOnce } = await import('../../jobs/embed');
    const temperature = parseTemperature(argv.temperature);
    const server = await startServer({
      checkpoint: argv.checkpoint,
      port: argv.port,
      host: argv.host,
      prompts: argv.prompts,
      ...(argv.thresholds !== undefined ? { thresholds: argv.thresholds } : {}),
      ...(argv.calibration !== undefined ? { calibration: argv.calibration } : {}),
      ...(temperature !== undefined ? { temperature } : {}),
      maxUploadBytes: Math.round(argv['max-upload-mb'] * 1024 * 1024),
      device: argv.device,
      geometry: argv.geometry,
      normalize: argv.normalize,
      ...(argv.tokenizer !== undefined ? { tokenizer: argv.tokenizer } : {}),
      onWarning: (w) => pickleWarningOnce(w),
    });
    const cal = server.calibration;
    if (!['127.0.0.1', 'localhost', '::1'].includes(argv.host)) {
      process.stderr.write(`cxr-train: note: listening on ${argv.host}: anyone who can reach this machine can upload images\n`);
    }
    if (argv.json) process.stdout.write(JSON.stringify({ url: server.url, labels: server.model.labels, prompts: server.model.prompts.name, calibration: cal }) + '\n');
    else process.stdout.write(`cxr-train serve: ${server.url} (${server.model.labels.length} labels, prompts ${server.model.prompts.name}${cal ? `; probabilities calibrated: ${cal.description}${cal.file ? ` (${cal.file})` : ''}` : ''}); Ctrl-C stops\n`);
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
