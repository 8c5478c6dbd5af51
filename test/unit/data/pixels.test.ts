/**
 * uint8 batches: the unwarped bytes + per-image augmentation (warp, gain, mean weight) the loader hands to
 * the native side describe the same images as its float32 batches, to float32 rounding: nothing is
 * rounded to a byte after resampling. Here expanded by the host conversion (pixelBatchToFloat); the
 * native conversion is checked against the same float batches in test/native/pixels.test.ts.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DataLoader } from '../../../lib/data/DataLoader';
import type { Batch } from '../../../lib/data/DataLoader';
import { concatImageBatches, drawAugment, finishImage, finishPixels, isPixelBatch, normalizeCoefficients, pixelBatchToFloat, warpAffine } from '../../../lib/data/images';
import type { AugmentOptions, ImageBatch, PixelBatch } from '../../../lib/data/images';
import { generateSynthetic } from '../../../lib/data/synthetic';
import { lcg } from '../../helpers/inputs';

const S = 24;
const plane = S * S;

function bytes(n: number, seed: number): Uint8Array {
  const r = lcg(seed);
  const out = new Uint8Array(n * plane);
  for (let i = 0; i < out.length; i++) out[i] = Math.floor(r() * 256);
  return out;
}

function maxDiff(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** One image through both paths: float32 directly, and bytes + augmentation expanded on the host. */
function both(base: Uint8Array, augment: AugmentOptions | null, seed: number): { f: Float32Array; p: Float32Array; pb: PixelBatch } {
  const opts = { size: S, normalize: 'clip' as const, augment };
  const f = finishImage(Float32Array.from(base, (v) => v / 255), opts, seed);
  const out = new Uint8Array(plane);
  const r = finishPixels(base, opts, seed, out, 0);
  const pb: PixelBatch = { pixels: out, normalize: 'clip', gain: Float32Array.of(r.gain), bias: Float32Array.of(0), meanGain: Float32Array.of(r.meanGain) };
  if (r.warp) pb.warp = Float64Array.from(r.warp);
  return { f, p: pixelBatchToFloat(pb, S), pb };
}

// One byte step after CLIP normalisation: (1/255) / min std.
const BYTE = 1 / 255 / 0.26130258;

describe('finishPixels', () => {
  const base = bytes(1, 3);
  test('no augmentation: the same floats (float32 rounding only)', () => {
    const { f, p } = both(base, null, 1);
    expect(maxDiff(f, p)).toBeLessThan(1e-5);
  });
  test('brightness and contrast only: folded into gain and mean weight, no warp', () => {
    for (const seed of [1, 2, 3]) {
      const { f, p, pb } = both(base, { brightness: 0.3, contrast: 0.4 }, seed);
      expect(maxDiff(f, p)).toBeLessThan(1e-5);
      expect(pb.warp).toBeUndefined();
      expect([...pb.pixels]).toEqual([...base]);
    }
  });
  test('with a geometric warp: the unwarped bytes and the warp give the float images (float32 rounding only)', () => {
    const aug: AugmentOptions = { scale: [0.7, 1], rotateDeg: 8, translate: 0.05, brightness: 0.1, contrast: 0.1, hflip: true };
    let worst = 0;
    for (const seed of [4, 5, 6, 7, 8, 9]) {
      const { f, p, pb } = both(base, aug, seed);
      worst = Math.max(worst, maxDiff(f, p));
      expect([...pb.pixels]).toEqual([...base]); // nothing warped (or rounded) on the host
      // And the maps are not trivially equal: the warp did run.
      expect(maxDiff(f, both(base, null, seed).f)).toBeGreaterThan(10 * BYTE);
    }
    expect(worst).toBeLessThan(1e-5);
  });
  test('warpAffine: the identity draw is exactly the identity map; a flip reverses x', () => {
    expect(warpAffine(drawAugment({ brightness: 0.2 }, 3), S)).toEqual([0, 1, 0, 0, 0, 1]);
    const a = warpAffine({ ...drawAugment({}, 1), flip: true }, S);
    // Output column x samples source column S-1-x.
    [S - 1, -1, 0, 0, 0, 1].forEach((v, i) => expect(a[i]).toBeCloseTo(v, 12));
  });
  test('float bases are written as rounded bytes', () => {
    const out = new Uint8Array(4);
    finishPixels(Float32Array.of(0, 0.5, 1, 0.2), { size: 2, augment: null }, 0, out, 0);
    expect([...out]).toEqual([0, 128, 255, 51]);
  });
  test('shape errors are coded', () => {
    expect(() => finishPixels(new Uint8Array(10), { size: S }, 0, new Uint8Array(plane), 0)).toThrow(expect.objectContaining({ code: 'E_SHAPE' }));
    expect(() => finishPixels(base, { size: S }, 0, new Uint8Array(plane), 1)).toThrow(expect.objectContaining({ code: 'E_SHAPE' }));
  });
});

describe('pixel batches', () => {
  test('pixelBatchToFloat repeats the grey value on three CLIP-normalised channels', () => {
    const pb: PixelBatch = { pixels: Uint8Array.of(0, 255, 51, 102), normalize: 'clip' };
    const f = pixelBatchToFloat(pb, 2);
    const { scale, offset } = normalizeCoefficients('clip');
    for (let c = 0; c < 3; c++) for (let i = 0; i < 4; i++) expect(f[c * 4 + i]).toBeCloseTo((pb.pixels[i] / 255) * scale[c] + offset[c], 6);
  });
  test('concatImageBatches joins bytes and augmentations in order, fills missing parts with neutral values, refuses mixtures', () => {
    const a: PixelBatch = { pixels: bytes(2, 1), gain: Float32Array.of(1, 2), bias: Float32Array.of(0, 0.1), warp: Float64Array.from({ length: 12 }, (_, i) => i) };
    const b: PixelBatch = { pixels: bytes(1, 2), gain: Float32Array.of(3), bias: Float32Array.of(0.2), meanGain: Float32Array.of(0.5) };
    const j = concatImageBatches([a, b]) as PixelBatch;
    expect(isPixelBatch(j)).toBe(true);
    expect(j.pixels.length).toBe(3 * plane);
    expect([...j.pixels.subarray(2 * plane)]).toEqual([...b.pixels]);
    expect([...j.gain!]).toEqual([1, 2, 3]);
    expect([...j.bias!].map((x) => +x.toFixed(6))).toEqual([0, 0.1, 0.2]);
    expect([...j.meanGain!]).toEqual([0, 0, 0.5]);
    expect([...j.warp!]).toEqual([...Array.from({ length: 12 }, (_, i) => i), 0, 1, 0, 0, 0, 1]);
    // A part without any per-image array takes its image count from the others' plane.
    const c = concatImageBatches([a, { pixels: bytes(1, 3) }]) as PixelBatch;
    expect([...c.gain!]).toEqual([1, 2, 1]);
    expect(() => concatImageBatches([a, new Float32Array(3 * plane)])).toThrow(expect.objectContaining({ code: 'E_DTYPE' }));
    const fl = concatImageBatches([Float32Array.of(1, 2), Float32Array.of(3)]);
    expect([...(fl as Float32Array)]).toEqual([1, 2, 3]);
  });
});

describe('DataLoader with pixels: uint8', () => {
  const image = { size: S, geometry: 'pad' as const, normalize: 'clip' as const, augment: { scale: [0.8, 1] as [number, number], rotateDeg: 5, brightness: 0.1, contrast: 0.1 } };
  const samples = Array.from({ length: 10 }, (_, i) => ({ id: `s${i}`, patientId: `p${i}`, studyId: `t${i}`, imagePath: '', labels: {}, report: '' }));
  const src = { samples, pixels: bytes(10, 9), width: S, height: S };

  async function epoch(l: DataLoader): Promise<Batch[]> {
    const out: Batch[] = [];
    for await (const b of l.epoch(1)) out.push(b);
    await l.close();
    return out;
  }
  const asFloat = (x: ImageBatch): Float32Array => (isPixelBatch(x) ? pixelBatchToFloat(x, S) : x);

  test('memory sources (shards, synthetic): byte batches equal the float batches (float32 rounding)', async () => {
    const fb = await epoch(new DataLoader(src, { batchSize: 4, image, seed: 3 }));
    const pb = await epoch(new DataLoader(src, { batchSize: 4, image, seed: 3, pixels: 'uint8' }));
    expect(pb.map((b) => b.indices)).toEqual(fb.map((b) => b.indices));
    for (let k = 0; k < fb.length; k++) {
      const p = pb[k].images as PixelBatch;
      expect(isPixelBatch(p)).toBe(true);
      expect(p.pixels.length).toBe(pb[k].n * plane); // 1 byte a pixel instead of 3 floats
      expect(p.gain!.length).toBe(pb[k].n);
      expect(p.warp!.length).toBe(6 * pb[k].n);
      // The unwarped source bytes cross, in batch order.
      pb[k].indices.forEach((idx, slot) => expect(p.pixels.subarray(slot * plane, (slot + 1) * plane)).toEqual(src.pixels.subarray(idx * plane, (idx + 1) * plane)));
      expect(maxDiff(asFloat(p), fb[k].images as Float32Array)).toBeLessThan(1e-5);
    }
  });
  test('without augmentation the byte batch is the source bytes and carries no affine', async () => {
    const pb = await epoch(new DataLoader(src, { batchSize: 5, image: { ...image, augment: null }, shuffle: false, pixels: 'uint8' }));
    const p = pb[0].images as PixelBatch;
    expect([...p.pixels]).toEqual([...src.pixels.subarray(0, 5 * plane)]);
    expect(p.gain).toBeUndefined();
    expect(p.warp).toBeUndefined();
  });
  test('image files through the worker pool: the same bytes as in process', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cxr-pixels-'));
    try {
      const ds = await generateSynthetic({ n: 6, seed: 2, size: 40, outDir: dir });
      const files = { root: dir, samples: ds.samples.map((s) => ({ ...s, image: undefined })) };
      fs.writeFileSync(path.join(dir, files.samples[2].imagePath), 'not an image');
      const ip = await epoch(new DataLoader(files, { batchSize: 3, image, seed: 1, workers: 0, pixels: 'uint8' }));
      const fl = await epoch(new DataLoader(files, { batchSize: 3, image, seed: 1, workers: 0 }));
      // One worker takes whole batches; two split each batch by image and the parts are put back in order.
      for (const workers of [1, 2]) {
        const w = await epoch(new DataLoader(files, { batchSize: 3, image, seed: 1, workers, pixels: 'uint8' }));
        expect(w.reduce((a, b) => a + b.n, 0)).toBe(5); // the broken file is skipped, the batch compacted
        expect(w.map((b) => b.indices)).toEqual(ip.map((b) => b.indices));
        for (let k = 0; k < w.length; k++) {
          const a = w[k].images as PixelBatch;
          const b = ip[k].images as PixelBatch;
          expect([...a.pixels]).toEqual([...b.pixels]);
          expect([...a.gain!]).toEqual([...b.gain!]);
          expect([...a.warp!]).toEqual([...b.warp!]);
          expect(maxDiff(asFloat(a), fl[k].images as Float32Array)).toBeLessThan(1e-5);
        }
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
  test('an unknown pixel format is E_CONFIG', () => {
    expect(() => new DataLoader(src, { batchSize: 2, image, pixels: 'float16' as never })).toThrow(expect.objectContaining({ code: 'E_CONFIG' }));
  });
});
