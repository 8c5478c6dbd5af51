import type { CommandModule } from 'yargs';
import { opts, withOptions } from '../options';
import { modelNames, resolveModelConfig } from '../../models/registry';

/** `cxr-train models`: the registry of named architectures. */
export const command: CommandModule = {
  command: 'models',
  describe: 'List the named model architectures (registry)',
  builder: (y) =>
    withOptions(y, [opts.json({ describe: 'Print the registry as JSON on stdout' })])
      .example('$0 models', 'List the registry')
      .example('$0 models --json', 'The same as JSON'),
  handler: (argv) => {
    const rows = modelNames().map((name) => {
      const c = resolveModelConfig(name);
      const v = c.vision;
      const image = v.type === 'vit' ? `ViT w${v.width} d${v.layers} p${v.patchSize}` : `ResNet [${(v.resnetLayers ?? []).join(',')}] w${v.resnetWidth}`;
      return { name, image, imageSize: v.imageSize, text: `${c.text.type} w${c.text.width} d${c.text.layers}`, contextLength: c.text.contextLength, embedDim: c.embedDim, tokenizer: c.tokenizer ?? 'clip-bpe' };
    });
    if (argv.json) {
      process.stdout.write(JSON.stringify(rows, null, 2) + '\n');
      return;
    }
    const cols = ['name', 'image', 'imageSize', 'text', 'contextLength', 'embedDim', 'tokenizer'] as const;
    const width = cols.map((k) => Math.max(k.length, ...rows.map((r) => String(r[k]).length)));
    const line = (vals: string[]) => vals.map((x, i) => x.padEnd(width[i])).join('  ').trimEnd() + '\n';
    process.stdout.write(line([...cols]));
    for (const r of rows) process.stdout.write(line(cols.map((k) => String(r[k]))));
  },
};
