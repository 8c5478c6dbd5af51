/**
 * Parity with OpenAI's reference implementation on the tiny CLIP in test/fixtures/openai-clip-tiny-vit (README there): the loader,
 * the ViT, the causal text tower, the projections, the logit scale and the tokenizer. Through the API
 * and through `cxr-train embed`.
 */
import * as fs from 'fs';
import * as path from 'path';
import { loadPretrained } from '../../../lib/checkpoints/pretrained';
import { embedWithCheckpoint, readRawImages } from '../../../lib/jobs/embed';
import { main } from '../../../lib/cli/index';
import { PARITY, tmpDir } from './helpers';

interface Reference {
  config: Record<string, number>;
  image_shape: number[];
  texts: string[];
  token_ids: number[][];
  image_embeds: number[][];
  text_embeds: number[][];
  logit_scale: number;
  logits_per_image: number[][];
}


function maxErr(a: number[][], b: number[][]): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  a.forEach((row, i) => {
    expect(row.length).toBe(b[i].length);
    row.forEach((x, j) => (m = Math.max(m, Math.abs(x - b[i][j]))));
  });
  return m;
}

describe('parity with the OpenAI reference (openai-clip-tiny-vit)', () => {
  const ref: Reference = JSON.parse(fs.readFileSync(path.join(PARITY, 'reference.json'), 'utf8'));
  const shape = ref.image_shape.join(',');

  test('architecture inferred from shapes equals the reference config', async () => {
    const { model, report } = await loadPretrained(path.join(PARITY, 'model.pt'), { device: 'cpu' });
    try {
      expect(report.format).toBe('torch-save');
      expect(report.layout).toBe('openai');
      expect(report.inferred).toBe(true);
      expect(report.dtypes).toEqual({ F16: expect.any(Number) });
      const c = report.config;
      expect(c.embedDim).toBe(ref.config.embed_dim);
      expect(c.vision).toMatchObject({ type: 'vit', imageSize: ref.config.image_resolution, layers: ref.config.vision_layers, width: ref.config.vision_width, patchSize: ref.config.vision_patch_size, heads: ref.config.vision_width / 64 });
      expect(c.text).toMatchObject({ type: 'causal', contextLength: ref.config.context_length, vocabSize: ref.config.vocab_size, width: ref.config.transformer_width, heads: ref.config.transformer_heads, layers: ref.config.transformer_layers });
      expect(report.warnings.join(' ')).toMatch(/pickle-based/);
    } finally {
      model.dispose();
    }
  });

  test('embeddings, logits and token ids match (API)', async () => {
    const raw = readRawImages(path.join(PARITY, 'images.f32'), shape);
    const { output } = await embedWithCheckpoint(path.join(PARITY, 'model.pt'), { device: 'cpu', texts: ref.texts, rawImages: raw });
    expect(output.token_ids).toEqual(ref.token_ids);
    const e1 = maxErr(output.image_embeds!, ref.image_embeds);
    const e2 = maxErr(output.text_embeds!, ref.text_embeds);
    const e3 = maxErr(output.logits_per_image!, ref.logits_per_image);
    console.log(`parity (API): image_embeds max abs err ${e1.toExponential(2)}, text_embeds ${e2.toExponential(2)}, logits ${e3.toExponential(2)}, logit_scale ${Math.abs(output.logit_scale - ref.logit_scale).toExponential(2)}`);
    expect(e1).toBeLessThan(1e-4);
    expect(e2).toBeLessThan(1e-4);
    expect(e3).toBeLessThan(1e-3);
    expect(Math.abs(output.logit_scale - ref.logit_scale)).toBeLessThan(1e-4);
  });

  test('the embed command writes the same JSON', async () => {
    const dir = tmpDir('parity');
    const out = path.join(dir, 'out.json');
    const textsFile = path.join(dir, 'texts.json');
    fs.writeFileSync(textsFile, JSON.stringify(ref.texts));
    const err = jest.spyOn(process.stderr, 'write').mockImplementation(() => true);
    let code: number;
    let notes: string[];
    try {
      code = await main(['embed', '--checkpoint', path.join(PARITY, 'model.pt'), '--images-raw', path.join(PARITY, 'images.f32'), '--image-shape', shape, '--texts', textsFile, '--out', out]);
      notes = err.mock.calls.map((c) => String(c[0]));
    } finally {
      err.mockRestore();
    }
    expect(code).toBe(0);
    expect(notes.filter((n) => n.includes('pickle-based')).length).toBe(1);
    const o = JSON.parse(fs.readFileSync(out, 'utf8'));
    expect(o.token_ids).toEqual(ref.token_ids);
    const e1 = maxErr(o.image_embeds, ref.image_embeds);
    const e2 = maxErr(o.text_embeds, ref.text_embeds);
    const e3 = maxErr(o.logits_per_image, ref.logits_per_image);
    console.log(`parity (embed command): image_embeds ${e1.toExponential(2)}, text_embeds ${e2.toExponential(2)}, logits ${e3.toExponential(2)}`);
    expect(e1).toBeLessThan(1e-4);
    expect(e2).toBeLessThan(1e-4);
    expect(e3).toBeLessThan(1e-3);
    expect(Math.abs(o.logit_scale - ref.logit_scale)).toBeLessThan(1e-4);
  });
});
