/**
 * uint8 batches: the bytes + per-image (gain, bias) the loader hands to the native side describe the same
 * images as its float32 batches, to the quantisation of one byte (exactly, when no geometric warp runs).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DataLoader } from '../../../lib/data/DataLoader';
import type { Batch } from '../../../lib/data/DataLoader';
import { concatImageBatches, finishImage, finishPixels, isPixelBatch, normalizeCoefficients, pixelBatchToFloat } from '../../../lib/data/images';
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

/** One image through both paths: float32 directly, and bytes + affine expanded on the host. */
function both(base: Uint8Array, augment: AugmentOptions | null, seed: number): { f: Float32Array; p: Float32Array } {
  const opts = { size: S, normalize: 'clip' as const, augment };
  const f = finishImage(Float32Array.from(base, (v) => v / 255), opts, seed);
  const out = new Uint8Array(plane);
  const { gain, bias } = finishPixels(base, opts, seed, out, 0);
  const p = pixelBatchToFloat({ pixels: out, normalize: 'clip', gain: Float32Array.of(gain), bias: Float32Array.of(bias) }, S);
  return { f, p };
}

// One byte step after CLIP normalisation: (1/255) / min std.
const BYTE = 1 / 255 / 0.26130258;

describe('finishPixels', () => {
  const base = bytes(1, 3);
  test('no augmentation: the same floats (float32 rounding only)', () => {
    const { f, p } = both(base, null, 1);
    expect(maxDiff(f, p)).toBeLessThan(1e-5);
  });
  test('brightness and contrast only: folded into gain and bias exactly', () => {
    for (const seed of [1, 2, 3]) {
      const { f, p } = both(base, { brightness: 0.3, contrast: 0.4 }, seed);
      expect(maxDiff(f, p)).toBeLessThan(1e-5);
    }
  });
  test('with a geometric warp: within half a byte, times the gain', () => {
    const aug: AugmentOptions = { scale: [0.7, 1], rotateDeg: 8, translate: 0.05, brightness: 0.1, contrast: 0.1, hflip: true };
    for (const seed of [4, 5, 6, 7]) {
      const { f, p } = both(base, aug, seed);
      // Rounding the warped value to a byte moves it by ≤ 0.5/255 (×1.21 at most from gain, and the
      // mean that feeds the bias by as much), so ≤ 0.5·1.21·2 byte steps after normalisation.
      expect(maxDiff(f, p)).toBeLessThanOrEqual(1.25 * BYTE);
      // And the maps are not trivially equal: the warp did run.
      expect(maxDiff(f, both(base, null, seed).f)).toBeGreaterThan(10 * BYTE);
    }
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
  test('concatImageBatches joins bytes and affines in order, and refuses mixtures', () => {
    const a: PixelBatch = { pixels: bytes(2, 1), gain: Float32Array.of(1, 2), bias: Float32Array.of(0, 0.1) };
    const b: PixelBatch = { pixels: bytes(1, 2), gain: Float32Array.of(3), bias: Float32Array.of(0.2) };
    const j = concatImageBatches([a, b]) as PixelBatch;
    expect(isPixelBatch(j)).toBe(true);
    expect(j.pixels.length).toBe(3 * plane);
    expect([...j.pixels.subarray(2 * plane)]).toEqual([...b.pixels]);
    expect([...j.gain!]).toEqual([1, 2, 3]);
    expect([...j.bias!].map((x) => +x.toFixed(6))).toEqual([0, 0.1, 0.2]);
    expect(() => concatImageBatches([a, new Float32Array(3 * plane)])).toThrow(expect.objectContaining({ code: 'E_DTYPE' }));
    expect(() => concatImageBatches([a, { pixels: bytes(1, 3) }])).toThrow(expect.objectContaining({ code: 'E_DTYPE' }));
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

  test('memory sources (shards, synthetic): byte batches equal the float batches to a byte', async () => {
    const fb = await epoch(new DataLoader(src, { batchSize: 4, image, seed: 3 }));
    const pb = await epoch(new DataLoader(src, { batchSize: 4, image, seed: 3, pixels: 'uint8' }));
    expect(pb.map((b) => b.indices)).toEqual(fb.map((b) => b.indices));
    for (let k = 0; k < fb.length; k++) {
      const p = pb[k].images as PixelBatch;
      expect(isPixelBatch(p)).toBe(true);
      expect(p.pixels.length).toBe(pb[k].n * plane); // 1 byte a pixel instead of 3 floats
      expect(p.gain!.length).toBe(pb[k].n);
      expect(maxDiff(asFloat(p), fb[k].images as Float32Array)).toBeLessThanOrEqual(1.25 * BYTE);
    }
  });
  test('without augmentation the byte batch is the source bytes and carries no affine', async () => {
    const pb = await epoch(new DataLoader(src, { batchSize: 5, image: { ...image, augment: null }, shuffle: false, pixels: 'uint8' }));
    const p = pb[0].images as PixelBatch;
    expect([...p.pixels]).toEqual([...src.pixels.subarray(0, 5 * plane)]);
    expect(p.gain).toBeUndefined();
  });
  test('image files through the worker pool: the same bytes as in process', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cxr-pixels-'));
    try {
      const ds = await generateSynthetic({ n: 6, seed: 2, size: 40, outDir: dir });
      const files = { root: dir, samples: ds.samples.map((s) => ({ ...s, image: undefined })) };
      fs.writeFileSync(path.join(dir, files.samples[2].imagePath), 'not an image');
      const w = await epoch(new DataLoader(files, { batchSize: 3, image, seed: 1, workers: 1, pixels: 'uint8' }));
      const ip = await epoch(new DataLoader(files, { batchSize: 3, image, seed: 1, workers: 0, pixels: 'uint8' }));
      const fl = await epoch(new DataLoader(files, { batchSize: 3, image, seed: 1, workers: 0 }));
      expect(w.reduce((a, b) => a + b.n, 0)).toBe(5); // the broken file is skipped, the batch compacted
      for (let k = 0; k < w.length; k++) {
        const a = w[k].images as PixelBatch;
        const b = ip[k].images as PixelBatch;
        expect([...a.pixels]).toEqual([...b.pixels]);
        expect([...a.gain!]).toEqual([...b.gain!]);
        expect(maxDiff(asFloat(a), fl[k].images as Float32Array)).toBeLessThanOrEqual(1.25 * BYTE);
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
  test('an unknown pixel format is E_CONFIG', () => {
    expect(() => new DataLoader(src, { batchSize: 2, image, pixels: 'float16' as never })).toThrow(expect.objectContaining({ code: 'E_CONFIG' }));
  });
});
