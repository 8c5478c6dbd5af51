/** `cxr-train embed --images` goes through the project's image pipeline; literal --texts work too. */
import * as fs from 'fs';
import * as path from 'path';
import sharp from 'sharp';
import { ClipModel } from '../../../lib/models/ClipModel';
import { loadImage } from '../../../lib/data/images';
import { ClipTokenizer } from '../../../lib/text/tokenizer';
import { main } from '../../../lib/cli/index';
import { maxAbsDiff, perturb, tmpDir, writeState } from './helpers';

test('embed --images (PNG) and literal --texts equal the API on the same inputs', async () => {
  const dir = tmpDir('images');
  const files: string[] = [];
  for (let i = 0; i < 2; i++) {
    const px = Buffer.alloc(40 * 48);
    for (let k = 0; k < px.length; k++) px[k] = (k * (i + 3) + 17 * i) % 256;
    const f = path.join(dir, `img${i}.png`);
    await sharp(px, { raw: { width: 40, height: 48, channels: 1 } }).png().toFile(f);
    files.push(f);
  }
  const model = ClipModel.create('test-vit', { device: 'cpu', seed: 3 });
  perturb(model, 7);
  const ck = path.join(dir, 'vit.safetensors');
  writeState(ck, model.getState());
  const S = model.imageSize;
  const imgs = new Float32Array(2 * 3 * S * S);
  for (let i = 0; i < 2; i++) imgs.set(await loadImage(files[i], { size: S, geometry: 'pad', normalize: 'clip' }), i * 3 * S * S);
  const wantImg = await model.encodeImages(imgs);
  const texts = ['no pleural effusion', 'small pneumothorax'];
  const batch = ClipTokenizer.fromBpeFile(undefined, { contextLength: 32 }).encodeBatch(texts, 32);
  const wantTxt = await model.encodeTokenIds(batch.ids, 2, 32);
  model.dispose();
  const out = path.join(dir, 'o.json');
  const err = jest.spyOn(process.stderr, 'write').mockImplementation(() => true);
  let code: number;
  try {
    // test-vit has 2 heads of width 32 (not OpenAI's width / 64 rule), so the architecture is named.
    code = await main(['embed', '--checkpoint', ck, '--config', 'test-vit', '--images', ...files, '--texts', ...texts, '--out', out]);
  } finally {
    err.mockRestore();
  }
  expect(code).toBe(0);
  const o = JSON.parse(fs.readFileSync(out, 'utf8'));
  expect(o.token_ids).toEqual(Array.from({ length: 2 }, (_, i) => Array.from(batch.ids.slice(i * 32, (i + 1) * 32))));
  expect(maxAbsDiff(o.image_embeds.flat(), wantImg)).toBeLessThan(1e-6);
  expect(maxAbsDiff(o.text_embeds.flat(), wantTxt)).toBeLessThan(1e-6);
  expect(o.logits_per_image).toHaveLength(2);
  expect(o.logits_per_image[0]).toHaveLength(2);
});
