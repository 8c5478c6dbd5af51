import * as fs from 'fs';
import type { CommandModule } from 'yargs';
import { opts, withOptions } from '../options';
import { CxrError } from '../../errors';
import { embedWithCheckpoint, pickleWarningOnce, readRawImages, readTextsArg } from '../../jobs/embed';

interface EmbedArgs {
  checkpoint: string;
  tokenizer?: string;
  'images-raw'?: string;
  'image-shape'?: string;
  images?: string[];
  texts?: string[];
  out: string;
  strict: boolean;
  config?: string;
  device: string;
  geometry: 'pad' | 'crop' | 'stretch';
  normalize: 'clip' | 'chexzero';
  json: boolean;
}

/**
 * `cxr-train embed`: image and text embeddings (projected, un-normalised) of any supported checkpoint, as
 * JSON: { token_ids, image_embeds, text_embeds, logit_scale (exponentiated), logits_per_image? }.
 */
export const command: CommandModule<object, EmbedArgs> = {
  command: 'embed',
  describe: 'Embed images and texts with a pre-trained checkpoint (OpenAI, open_clip, Hugging Face, own format) to JSON',
  builder: (y) =>
    withOptions(y, [
      opts.checkpoint({ demandOption: true, describe: 'weights file (.pt, .bin, .safetensors) or model folder' }),
      opts.tokenizer({ describe: 'tokenizer file or folder (default: the checkpoint\'s, or the shipped CLIP vocabulary)' }),
      opts.out({ demandOption: true, describe: 'output JSON file' }),
      opts.device({ default: 'cpu', describe: '"cpu", "cuda:N" or "auto"' }),
      opts.geometry({ describe: '--images: fit to the square input' }),
      opts.normalize({ choices: ['clip', 'chexzero'], describe: '--images: pixel normalisation' }),
      opts.json({ describe: 'Print what was embedded (format, counts, dimension, --out) as JSON on stdout' }),
    ])
      .option('images-raw', { type: 'string', describe: 'little-endian float32 images, already normalised (needs --image-shape)' })
      .option('image-shape', { type: 'string', describe: 'N,C,H,W of --images-raw (C must be 3, H = W = the model\'s image size)' })
      .option('images', { type: 'string', array: true, describe: 'image files (PNG, JPEG, DICOM), preprocessed by the image pipeline' })
      .option('texts', { type: 'string', array: true, describe: 'a JSON file (array of strings) or the texts themselves' })
      .option('strict', { type: 'boolean', default: true, describe: 'every tensor must match (false: load what matches, report the rest)' })
      .option('config', { type: 'string', describe: 'architecture (registry name or JSON file) instead of inferring it from shapes' })
      .example('$0 embed --checkpoint ViT-B-32.pt --images cxr1.png --texts "no pleural effusion" --out emb.json', 'Embeddings of one image and one text')
      .example('$0 embed --checkpoint models/chexzero --texts prompts.json --out text-emb.json --json', 'Text embeddings only; the summary as JSON') as never,
  handler: async (argv) => {
    if (argv['images-raw'] !== undefined && argv.images !== undefined)
      throw new CxrError('E_CONFIG', 'give either --images-raw or --images, not both');
    if ((argv['images-raw'] === undefined) !== (argv['image-shape'] === undefined))
      throw new CxrError('E_CONFIG', '--images-raw and --image-shape go together');
    const texts = argv.texts ? readTextsArg(argv.texts) : undefined;
    const raw = argv['images-raw'] !== undefined ? readRawImages(argv['images-raw'], argv['image-shape']!) : undefined;
    if (!texts && !raw && !argv.images) throw new CxrError('E_CONFIG', 'nothing to embed: give --texts and/or --images / --images-raw');
    let config: string | undefined = argv.config;
    let configObj: unknown;
    if (config !== undefined && config.endsWith('.json') && fs.existsSync(config)) {
      configObj = JSON.parse(fs.readFileSync(config, 'utf8'));
      config = undefined;
    }
    const result = await embedWithCheckpoint(argv.checkpoint, {
      strict: argv.strict,
      device: argv.device,
      ...(config !== undefined ? { config } : configObj !== undefined ? { config: configObj as never } : {}),
      // Without texts no tokenizer is needed (images of a model whose vocabulary has no tokenizer at hand).
      ...(argv.tokenizer !== undefined ? { tokenizer: argv.tokenizer } : texts ? {} : { tokenizer: null }),
      ...(texts ? { texts } : {}),
      ...(raw ? { rawImages: raw } : {}),
      ...(argv.images ? { imageFiles: argv.images, geometry: argv.geometry, normalize: argv.normalize } : {}),
      onWarning: (w) => pickleWarningOnce(w),
    });
    fs.writeFileSync(argv.out, JSON.stringify(result.output) + '\n');
    const r = result.report;
    if (argv.json) {
      const summary = { out: argv.out, format: r.format, layout: r.layout, inferred: r.inferred, images: result.output.image_embeds?.length ?? 0, texts: result.output.text_embeds?.length ?? 0, embedDim: r.config.embedDim };
      process.stdout.write(JSON.stringify(summary, null, 2) + '\n');
      return;
    }
    process.stderr.write(
      `embed: ${r.format} (${r.layout} layout${r.inferred ? ', architecture inferred from shapes' : ''}) -> ${argv.out}: ` +
        `${result.output.image_embeds?.length ?? 0} images, ${result.output.text_embeds?.length ?? 0} texts, dim ${r.config.embedDim}\n`,
    );
  },
};
