import { DataLoader } from '../../../lib/data/DataLoader';
import type { MemorySource } from '../../../lib/data/DataLoader';
import type { Sample } from '../../../lib/data/sample';
import { scoreSplit } from '../../../lib/eval/scoreSplit';
import { ZeroShotClassifier, type ZeroShotEncoder } from '../../../lib/eval/zeroShot';
import { lcg } from './helpers';

const DIM = 4;
const SIZE = 8;

/** Image embedding: the means of four quarters of the preprocessed image; text embedding: seeded by its characters. */
const encoder: ZeroShotEncoder = {
  dim: DIM,
  id: 'fake',
  async encodeTexts(texts) {
    const out = new Float32Array(texts.length * DIM);
    texts.forEach((t, i) => {
      const r = lcg([...t].reduce((a, c) => a * 31 + c.charCodeAt(0), 7) >>> 0);
      for (let k = 0; k < DIM; k++) out[i * DIM + k] = r() * 2 - 1;
    });
    return out;
  },
  async encodeImages(images, n) {
    const per = images.length / n;
    const out = new Float32Array(n * DIM);
    for (let i = 0; i < n; i++) for (let k = 0; k < DIM; k++) {
      const a = i * per + (k * per) / DIM;
      let s = 0;
      for (let j = 0; j < per / DIM; j++) s += images[a + j];
      out[i * DIM + k] = s / (per / DIM) + 0.01 * (k + 1);
    }
    return out;
  },
};

const prompts = {
  name: 'test',
  labels: [
    { label: 'A', positive: ['a'], negative: ['no a'] },
    { label: 'B', positive: ['b'], negative: ['no b'] },
  ],
};

function source(n: number): MemorySource {
  const r = lcg(5);
  const samples: Sample[] = Array.from({ length: n }, (_, i) => ({ id: `s${i}`, patientId: `p${i}`, imagePath: '', report: '', labels: {}, split: 'test' }) as Sample);
  return { samples, pixels: Float32Array.from({ length: n * SIZE * SIZE }, () => r()), width: SIZE, height: SIZE };
}

const image = { size: SIZE, geometry: 'pad' as const, normalize: 'none' as const };

describe('scoreSplit', () => {
  it('scores every sample in source order, independent of the batch size', async () => {
    const src = source(7);
    const clf = () => new ZeroShotClassifier(encoder, prompts, { cache: new Map() });
    const progress: Array<[number, number]> = [];
    let batches = 0;
    let calls = 0;
    const a = await scoreSplit(clf(), src, {
      batchSize: 3,
      image,
      workers: 0,
      onProgress: (d, t) => progress.push([d, t]),
      onBatch: (b, p) => {
        batches++;
        expect(p.length).toBe(b.n * 2);
      },
      exclusive: (f) => (calls++, f()),
    });
    const b = await scoreSplit(clf(), src, { batchSize: 1, image, workers: 0 });
    expect(a.indices).toEqual([0, 1, 2, 3, 4, 5, 6]);
    expect(a.failures).toEqual([]);
    expect(a.probs.length).toBe(7 * 2);
    for (let i = 0; i < a.probs.length; i++) expect(a.probs[i]).toBeCloseTo(b.probs[i], 6);
    expect(new Set(Array.from(a.probs)).size).toBeGreaterThan(2);
    expect(batches).toBe(3);
    expect(calls).toBe(3);
    expect(progress[progress.length - 1]).toEqual([7, 7]);
  });

  it('reuses a loader the caller owns without closing it, and needs batch and image options for a source', async () => {
    const src = source(4);
    const loader = new DataLoader(src, { batchSize: 2, image, shuffle: false, workers: 0 });
    const clf = new ZeroShotClassifier(encoder, prompts, { cache: new Map() });
    const first = await scoreSplit(clf, loader, {});
    const again = await scoreSplit(clf, loader, {});
    expect(Array.from(again.probs)).toEqual(Array.from(first.probs));
    await loader.close();
    await expect(scoreSplit(clf, src, {})).rejects.toMatchObject({ code: 'E_CONFIG' });
  });
});
