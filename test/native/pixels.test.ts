/**
 * uint8 batches through the binding: grayscale bytes normalised on the device give the same embeddings,
 * losses and updates as the float32 batch the host would have built from them.
 */
import { createModel } from '../../lib/models/ClipModel';
import type { ClipModel } from '../../lib/models/ClipModel';
import { pixelBatchToFloat } from '../../lib/data/images';
import type { PixelBatch } from '../../lib/data/images';
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

const maxDiff = (a: Float32Array, b: Float32Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);

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
  });
});
