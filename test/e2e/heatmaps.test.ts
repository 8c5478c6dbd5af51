/**
 * `predict --heatmaps`: one overlay PNG per image and label, written atomically, deterministic, the caveat
 * in heatmaps.json and index.html; a bad label is E_CONFIG before anything is scored or written.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { ClipModel } from '../../lib/models/ClipModel';
import { predict } from '../../lib/jobs/predict';
import { ATOMIC_TEMP_PATTERN } from '../../lib/util/atomic';
import { blobPng } from '../helpers/inputs';
import { rejectsWith } from '../helpers/errors';
import { runCli } from '../helpers/cli';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cxr-heat-'));
const modelDir = path.join(tmp, 'model');
const imgDir = path.join(tmp, 'images');

beforeAll(async () => {
  const m = ClipModel.create('test-vit', { device: 'cpu', seed: 3 });
  m.save(modelDir);
  m.dispose();
  fs.mkdirSync(path.join(imgDir, 'sub'), { recursive: true });
  fs.writeFileSync(path.join(imgDir, 'a.png'), await blobPng(96));
  fs.writeFileSync(path.join(imgDir, 'sub', 'b.png'), await blobPng(64));
  fs.writeFileSync(path.join(imgDir, 'notes.txt'), 'not an image');
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('predict --heatmaps', () => {
  test('writes an overlay per image and label, deterministic, with the caveat', async () => {
    const out1 = path.join(tmp, 'h1');
    const labels = ['Pleural Effusion', 'Cardiomegaly'];
    const r = await predict({ checkpoint: modelDir, dir: imgDir, heatmaps: out1, heatmapLabels: labels, device: 'cpu', workers: 0 });
    expect(r.heatmaps!.files).toBe(4);
    expect(r.heatmaps!.failed).toEqual([]);
    const files = fs.readdirSync(out1).sort();
    expect(files).toEqual(['a.Cardiomegaly.png', 'a.Pleural_Effusion.png', 'heatmaps.json', 'index.html', 'sub_b.Cardiomegaly.png', 'sub_b.Pleural_Effusion.png']);
    expect(files.some((f) => ATOMIC_TEMP_PATTERN.test(f))).toBe(false);
    const meta = await sharp(path.join(out1, 'a.Cardiomegaly.png')).metadata();
    expect([meta.format, meta.width, meta.height]).toEqual(['png', 384, 384]);
    const idx = JSON.parse(fs.readFileSync(path.join(out1, 'heatmaps.json'), 'utf8'));
    expect(idx.caveat).toMatch(/explanation aid, not a localisation claim/);
    expect(idx.labels).toEqual(['Cardiomegaly', 'Pleural Effusion']); // prompt-set order
    expect(idx.layer).toMatch(/transformer\.resblocks\.0/);
    // The probability written with each overlay is the one predict reports.
    for (const row of r.rows) {
      const e = idx.images.find((x: { id: string }) => x.id === row.id);
      for (const l of labels) expect(e.files[l].probability).toBeCloseTo(row.probabilities[l], 5);
    }
    expect(fs.readFileSync(path.join(out1, 'index.html'), 'utf8')).toContain('not a localisation claim');
    // Deterministic: a second run writes the same bytes.
    const out2 = path.join(tmp, 'h2');
    await predict({ checkpoint: modelDir, dir: imgDir, heatmaps: out2, heatmapLabels: labels, device: 'cpu', workers: 0 });
    for (const f of files.filter((x) => x.endsWith('.png'))) expect(fs.readFileSync(path.join(out2, f)).equals(fs.readFileSync(path.join(out1, f)))).toBe(true);
  }, 120000);

  test('an unknown label is E_CONFIG before anything is written; --labels needs --heatmaps', async () => {
    const out = path.join(tmp, 'bad');
    await rejectsWith(predict({ checkpoint: modelDir, dir: imgDir, heatmaps: out, heatmapLabels: ['Effusion'], device: 'cpu', workers: 0 }), 'E_CONFIG');
    expect(fs.existsSync(out)).toBe(false);
    await rejectsWith(predict({ checkpoint: modelDir, dir: imgDir, out: path.join(tmp, 'p.csv'), heatmapLabels: ['Cardiomegaly'], device: 'cpu', workers: 0 }), 'E_CONFIG');
  }, 60000);

  test('CLI: --heatmaps without --out, all labels', async () => {
    const out = path.join(tmp, 'cli');
    const r = await runCli(['predict', '--checkpoint', modelDir, '--images', path.join(imgDir, 'a.png'), '--heatmaps', out, '--device', 'cpu', '--quiet']);
    expect(r.code).toBe(0);
    const pngs = fs.readdirSync(out).filter((f) => f.endsWith('.png'));
    expect(pngs.length).toBe(14); // every label of the default prompt set
    const none = await runCli(['predict', '--checkpoint', modelDir, '--images', path.join(imgDir, 'a.png'), '--device', 'cpu', '--quiet']);
    expect(none.code).not.toBe(0);
    expect(none.err).toMatch(/--out .*--heatmaps/);
  }, 120000);
});
