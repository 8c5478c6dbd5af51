import * as fs from 'fs';
import type { CommandModule } from 'yargs';
import { opts, withOptions } from '../options';
import { convertCheckpoint, pickleWarningOnce } from '../../jobs/embed';

interface ConvertArgs {
  checkpoint: string;
  out: string;
  tokenizer?: string;
  strict: boolean;
  config?: string;
  json: boolean;
}

/** `cxr-train convert`: any supported checkpoint → the project's own format (safetensors + JSON). */
export const command: CommandModule<object, ConvertArgs> = {
  command: 'convert',
  describe: 'Convert a pre-trained checkpoint (OpenAI, open_clip, Hugging Face, TorchScript) to the cxr-train model format',
  builder: (y) =>
    withOptions(y, [
      opts.checkpoint({ demandOption: true, describe: 'weights file (.pt, .bin, .safetensors) or model folder' }),
      opts.out({ demandOption: true, describe: 'output folder (model.safetensors + cxr-model.json)' }),
      opts.tokenizer({ describe: 'tokenizer file or folder to copy beside the weights ("none": record none)' }),
      opts.json({ describe: 'Print the conversion report as JSON on stdout' }),
    ])
      .option('strict', { type: 'boolean', default: true, describe: 'every tensor must match (false: load what matches, report the rest)' })
      .option('config', { type: 'string', describe: 'architecture (registry name or JSON file) instead of inferring it from shapes' })
      .example('$0 convert --checkpoint chexzero_best.pt --out models/chexzero', 'A CheXzero state_dict to the cxr-train format')
      .example('$0 convert --checkpoint hf-clip/ --out models/clip --no-strict --json', 'Load what matches, the report as JSON') as never,
  handler: async (argv) => {
    let config: unknown = argv.config;
    if (typeof config === 'string' && config.endsWith('.json') && fs.existsSync(config)) config = JSON.parse(fs.readFileSync(config, 'utf8'));
    const report = await convertCheckpoint(argv.checkpoint, argv.out, {
      strict: argv.strict,
      device: 'cpu',
      ...(config !== undefined ? { config: config as never } : {}),
      ...(argv.tokenizer !== undefined ? { tokenizer: argv.tokenizer === 'none' ? null : argv.tokenizer } : {}),
      onWarning: (w) => pickleWarningOnce(w),
    });
    if (argv.json) {
      process.stdout.write(JSON.stringify({ out: argv.out, source: report.source, format: report.format, layout: report.layout, inferred: report.inferred, missing: report.missing, unexpected: report.unexpected }, null, 2) + '\n');
      return;
    }
    const skipped = report.missing.length + report.unexpected.length;
    process.stdout.write(
      `converted ${report.source} (${report.format}, ${report.layout} layout${report.inferred ? ', architecture inferred from shapes' : ''}) -> ${argv.out}\n` +
        (skipped ? `skipped: ${[...report.missing.map((m) => 'missing ' + m), ...report.unexpected.map((u) => 'unexpected ' + u)].join(', ')}\n` : ''),
    );
  },
};
