/**
 * uint8 batches through the binding: grayscale bytes augmented and normalised on the device give the same
 * images as the loader's float32 batches, and the same embeddings, losses and updates as the float32
 * batch the host would have built from them.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createModel } from '../../lib/models/ClipModel';
import type { ClipModel } from '../../lib/models/ClipModel';
import { pixelsToImages } from '../../lib/models/pixels';
import { DataLoader } from '../../lib/data/DataLoader';
import type { Batch, DataLoaderOptions } from '../../lib/data/DataLoader';
import { pixelBatchToFloat } from '../../lib/data/images';
import type { AugmentOptions, PixelBatch } from '../../lib/data/images';
import { generateSynthetic } from '../../lib/data/synthetic';
import { loadNative } from '../../lib/native';
import { lcg, tokens } from '../helpers/inputs';

const S = 32;

function pixelBatch(n: number, seed: number, affine: boolean, normalize: PixelBatch['normalize'] = 'clip'): PixelBatch {
  const r = lcg(seed);
  const pixels = new Uint8Array(n * S * S);
  // Blocks of 8×8 pixels: low-frequency like radiographs.
  for (let i = 0; i < n; i++) {
    const cells = Array.from({ length: 16 }, () => Math.floor(r() * 256));
    for (let y = 0; y < S; y++) for (let x = 0; x < S; x++) pixels[(i * S + y) * S + x] = cells[Math.floor(y / 8) * 4 + Math.floor(x / 8)];
  }
  const pb: PixelBatch = { pixels, normalize };
  if (affine) {
    pb.gain = Float32Array.from({ length: n }, (_, i) => 0.8 + 0.1 * i);
    pb.bias = Float32Array.from({ length: n }, (_, i) => 0.05 * (i % 3) - 0.05);
  }
  return pb;
}

const maxDiff = (a: Float32Array, b: Float32Array) => {
  expect(a.length).toBe(b.length);
  return a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);
};

async function epochs(src: ConstructorParameters<typeof DataLoader>[0], opts: DataLoaderOptions, n: number): Promise<Batch[]> {
  const l = new DataLoader(src, opts);
  const out: Batch[] = [];
  try {
    for (let e = 0; e < n; e++) for await (const b of l.epoch(e)) out.push(b);
  } finally {
    await l.close();
  }
  return out;
}

describe('the loader\'s uint8 batches after the native conversion', () => {
  // The training default and a stronger one with every geometric augmentation (flip, translation).
  const augments: AugmentOptions[] = [
    { scale: [0.85, 1], rotateDeg: 5, brightness: 0.1, contrast: 0.1 },
    { scale: [0.6, 1], ratio: [0.8, 1.25], rotateDeg: 15, translate: 0.08, brightness: 0.3, contrast: 0.3, hflip: true },
  ];
  const worst: Record<string, number> = {};
  afterAll(() => process.stdout.write(`uint8 vs float32 batches after the native conversion, max |difference|: ${JSON.stringify(worst)}\n`));

  test.each([
    ['clip', 0],
    ['clip', 1],
    ['chexzero', 1],
  ] as const)('in-memory bytes (shards, synthetic), %s, augment %d: equal to the float32 batches within 1e-5', async (normalize, ai) => {
    const n = 12;
    const samples = Array.from({ length: n }, (_, i) => ({ id: `s${i}`, patientId: `p${i}`, studyId: `t${i}`, imagePath: '', labels: {}, report: '' }));
    const src = { samples, pixels: pixelBatch(n, 5 + ai, false).pixels, width: S, height: S };
    const image = { size: S, geometry: 'pad' as const, normalize, augment: augments[ai] };
    const fb = await epochs(src, { batchSize: 5, image, seed: 7 }, 2);
    const pb = await epochs(src, { batchSize: 5, image, seed: 7, pixels: 'uint8' }, 2);
    let d = 0;
    let warped = 0;
    for (let k = 0; k < fb.length; k++) {
      const p = pb[k].images as PixelBatch;
      expect(p.pixels.length).toBe(pb[k].n * S * S);
      if (p.warp) warped++;
      d = Math.max(d, maxDiff(pixelsToImages(p, S), fb[k].images as Float32Array));
    }
    expect(warped).toBe(fb.length);
    worst[`memory ${normalize} augment ${ai}`] = d;
    expect(d).toBeLessThan(1e-5);
  });

  test('image files (the demo\'s JPEGs) through the worker pool: equal to the float32 batches within 1e-5', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cxr-pixels-native-'));
    try {
      const ds = await generateSynthetic({ n: 8, seed: 4, size: 48, outDir: dir });
      const files = { root: dir, samples: ds.samples.map((s) => ({ ...s, image: undefined })) };
      const image = { size: S, geometry: 'pad' as const, normalize: 'clip' as const, augment: augments[1] };
      const fb = await epochs(files, { batchSize: 4, image, seed: 2, workers: 0 }, 1);
      const pb = await epochs(files, { batchSize: 4, image, seed: 2, workers: 1, pixels: 'uint8' }, 1);
      let d = 0;
      for (let k = 0; k < fb.length; k++) d = Math.max(d, maxDiff(pixelsToImages(pb[k].images as PixelBatch, S), fb[k].images as Float32Array));
      worst['files clip augment 1'] = d;
      expect(d).toBeLessThan(1e-5);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('uint8 pixel batches', () => {
  let m: ClipModel;
  beforeAll(() => (m = createModel('test-vit', { device: 'cpu', seed: 3 })));
  afterAll(() => m.dispose());

  test.each([
    ['clip', false],
    ['clip', true],
    ['chexzero', true],
  ] as const)('encodeImages: %s normalisation, affine %s: equal to the host float batch', async (normalize, affine) => {
    const pb = pixelBatch(4, 11, affine, normalize);
    const fromBytes = await m.encodeImages(pb, { normalize: true });
    const fromFloats = await m.encodeImages(pixelBatchToFloat(pb, S), { normalize: true });
    expect(fromBytes.length).toBe(4 * m.embedDim);
    expect(maxDiff(fromBytes, fromFloats)).toBeLessThan(1e-5);
  });

  test('encodeImages of a warped batch with a mean weight: equal to the host float batch', async () => {
    const pb = pixelBatch(3, 12, true);
    pb.meanGain = Float32Array.of(0.1, -0.2, 0);
    // Rotation about the centre with a zoom, a flip, and a shift past the edge (zero fill).
    pb.warp = Float64Array.of(3, 0.9, 0.2, -2, -0.2, 0.9, S - 1, -1, 0, 0, 0, 1, -6, 1.3, 0, 5, 0, 1.3);
    const fromBytes = await m.encodeImages(pb, { normalize: true });
    const fromFloats = await m.encodeImages(pixelBatchToFloat(pb, S), { normalize: true });
    expect(maxDiff(pixelsToImages(pb, S), pixelBatchToFloat(pb, S))).toBeLessThan(1e-5);
    expect(maxDiff(fromBytes, fromFloats)).toBeLessThan(1e-5);
  });

  test('trainStep and evalLoss: the same loss and the same update as float32', async () => {
    const a = createModel('test-vit', { device: 'cpu', seed: 9 });
    const b = createModel('test-vit', { device: 'cpu', seed: 9 });
    // SGD: the update is linear in the gradient, so float32 rounding of the inputs stays at its own size
    // (AdamW divides by running gradient magnitudes and amplifies it for near-zero gradients).
    a.configureOptimizer({ kind: 'sgd', momentum: 0.9 });
    b.configureOptimizer({ kind: 'sgd', momentum: 0.9 });
    try {
      for (let step = 0; step < 3; step++) {
        const pb = pixelBatch(8, 20 + step, true);
        const ids = tokens(8, 16, step);
        const ra = await a.trainStep({ images: pb, tokenIds: ids, n: 8, length: 16 }, { lr: 0.05 });
        const rb = await b.trainStep({ images: pixelBatchToFloat(pb, S), tokenIds: ids, n: 8, length: 16 }, { lr: 0.05 });
        expect(Math.abs(ra.loss - rb.loss)).toBeLessThan(1e-5);
        expect(ra.batch).toBe(8);
      }
      const pb = pixelBatch(6, 40, false);
      const ids = tokens(6, 16, 40);
      const la = await a.evalLoss({ images: pb, tokenIds: ids, n: 6, length: 16 });
      const lb = await b.evalLoss({ images: pixelBatchToFloat(pb, S), tokenIds: ids, n: 6, length: 16 });
      expect(Math.abs(la - lb)).toBeLessThan(1e-5);
      const sa = a.getState();
      const sb = b.getState();
      let w = 0;
      for (let i = 0; i < sa.length; i++) w = Math.max(w, maxDiff(sa[i].data, sb[i].data));
      expect(w).toBeLessThan(1e-5);
    } finally {
      a.dispose();
      b.dispose();
    }
  });

  test('bad pixel batches get coded errors', async () => {
    const pb = pixelBatch(2, 1, false);
    await expect(m.encodeImages({ pixels: pb.pixels.subarray(1) })).rejects.toMatchObject({ code: 'E_SHAPE' });
    await expect(m.encodeImages({ ...pb, gain: Float32Array.of(1, 1) })).rejects.toMatchObject({ code: 'E_CONFIG' });
    await expect(m.encodeImages({ ...pb, gain: Float32Array.of(1), bias: Float32Array.of(0) })).rejects.toMatchObject({ code: 'E_SHAPE' });
    await expect(m.encodeImages({ ...pb, gain: Float32Array.of(1, NaN), bias: Float32Array.of(0, 0) })).rejects.toMatchObject({ code: 'E_NUMERIC' });
    await expect(m.encodeImages({ pixels: pb.pixels, normalize: { mean: [0.5], std: [0] } })).rejects.toMatchObject({ code: 'E_CONFIG' });
    // Warp and mean weight: type, length, finiteness.
    const id = [0, 1, 0, 0, 0, 1];
    await expect(m.encodeImages({ ...pb, warp: Float32Array.from([...id, ...id]) as never })).rejects.toMatchObject({ code: 'E_DTYPE' });
    await expect(m.encodeImages({ ...pb, warp: Float64Array.from(id) })).rejects.toMatchObject({ code: 'E_SHAPE' });
    await expect(m.encodeImages({ ...pb, warp: Float64Array.from([...id, 0, 1, NaN, 0, 0, 1]) })).rejects.toMatchObject({ code: 'E_NUMERIC' });
    await expect(m.encodeImages({ ...pb, warp: Float64Array.from([...id, 0, 1, 0, Infinity, 0, 1]) })).rejects.toMatchObject({ code: 'E_NUMERIC' });
    await expect(m.encodeImages({ ...pb, meanGain: Float32Array.of(0) })).rejects.toMatchObject({ code: 'E_SHAPE' });
    await expect(m.encodeImages({ ...pb, meanGain: Float64Array.of(0, 0) as never })).rejects.toMatchObject({ code: 'E_DTYPE' });
    expect(() => pixelsToImages({ ...pb, warp: Float64Array.from(id) }, S)).toThrow(expect.objectContaining({ code: 'E_SHAPE' }));
    // The raw surface (no TypeScript checks) still refuses them with codes, from the binding or the core.
    const raw = loadNative();
    const opts = { scale: [1, 1, 1], offset: [0, 0, 0] };
    expect(() => raw.pixelsToImages(pb.pixels, [2, 1, S, S], { ...opts, warp: Float32Array.from(id) as never })).toThrow(expect.objectContaining({ code: 'E_DTYPE' }));
    expect(() => raw.pixelsToImages(pb.pixels, [2, 1, S, S], { ...opts, warp: Float64Array.from(id) })).toThrow(expect.objectContaining({ code: 'E_SHAPE' }));
    expect(() => raw.pixelsToImages(pb.pixels, [2, 1, S, S], { ...opts, warp: Float64Array.from([...id, NaN, 1, 0, 0, 0, 1]) })).toThrow(expect.objectContaining({ code: 'E_NUMERIC' }));
  });
});
