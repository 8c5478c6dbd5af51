/**
 * The probe's embedding cache: a hit returns exactly what was written; another checkpoint, other images or
 * other preprocessing make an entry stale; a damaged file (truncated, flipped byte, garbage) is detected,
 * recomputed and replaced, never used. And the split identity that keys it.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { cachedEmbeddings, embeddingCacheFile, embedSplit, readEmbeddingCache, splitIdentity, writeEmbeddingCache, type EmbeddingKey, type SplitEmbeddings } from '../../../lib/eval/probe/embeddings';
import { ZeroShotClassifier, type ZeroShotEncoder } from '../../../lib/eval/zeroShot';
import type { MemorySource } from '../../../lib/data/DataLoader';
import type { Sample } from '../../../lib/data/sample';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cxr-probe-cache-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const key: EmbeddingKey = { checkpointHash: 'ab'.repeat(32), split: 'test', splitHash: 'cd'.repeat(32), image: { size: 32, geometry: 'pad', normalize: 'clip' } };
const emb: SplitEmbeddings = { ids: ['a', 'b', 'c'], embeds: Float32Array.from([0.1, -2, 3.5, 1e-8, 7, -0.25]), dim: 2, failures: [{ id: 'd', reason: 'E_IO: missing' }] };

function counted(e: SplitEmbeddings): { compute: () => Promise<SplitEmbeddings>; calls: () => number } {
  let n = 0;
  return {
    compute: async () => {
      n++;
      return e;
    },
    calls: () => n,
  };
}

describe('embedding cache', () => {
  test('miss writes, hit reads back bit-exact without computing', async () => {
    const dir = path.join(tmp, 'c1');
    const c = counted(emb);
    const a = await cachedEmbeddings(dir, key, c.compute);
    expect(a.cache).toBe('miss');
    expect(fs.existsSync(embeddingCacheFile(dir, key))).toBe(true);
    const b = await cachedEmbeddings(dir, key, c.compute);
    expect(b.cache).toBe('hit');
    expect(c.calls()).toBe(1);
    expect(b.embeddings.ids).toEqual(emb.ids);
    expect(Array.from(b.embeddings.embeds)).toEqual(Array.from(emb.embeds));
    expect(b.embeddings.failures).toEqual(emb.failures);
    // No temporary file is left beside it.
    expect(fs.readdirSync(dir)).toEqual([path.basename(embeddingCacheFile(dir, key))]);
  });

  test('another checkpoint is another file; changed images or preprocessing make the entry stale', async () => {
    const dir = path.join(tmp, 'c2');
    writeEmbeddingCache(embeddingCacheFile(dir, key), key, emb);
    expect(embeddingCacheFile(dir, { ...key, checkpointHash: 'ef'.repeat(32) })).not.toBe(embeddingCacheFile(dir, key));
    const other = { ...key, splitHash: '00'.repeat(32) };
    expect(readEmbeddingCache(embeddingCacheFile(dir, other), other)).toEqual({ outcome: 'stale', reason: 'made for other images (files, pixels or samples changed)' });
    const geo = { ...key, image: { ...key.image, geometry: 'crop' } };
    expect(readEmbeddingCache(embeddingCacheFile(dir, geo), geo)).toMatchObject({ outcome: 'stale', reason: expect.stringMatching(/image preprocessing/) });
    const notes: string[] = [];
    const c = counted({ ...emb, embeds: emb.embeds.map((x) => x + 1) });
    const r = await cachedEmbeddings(dir, other, c.compute, (n) => notes.push(n));
    expect(r.cache).toBe('stale');
    expect(c.calls()).toBe(1);
    expect(notes[0]).toMatch(/is stale \(made for other images \(files, pixels or samples changed\)\): recomputing the test split/);
    // Replaced: now a hit for the new key with the new values.
    const again = readEmbeddingCache(embeddingCacheFile(dir, other), other);
    expect(again.outcome).toBe('hit');
    if (again.outcome === 'hit') expect(again.embeddings.embeds[0]).toBeCloseTo(1.1, 6);
  });

  test.each([
    ['a flipped data byte', (b: Buffer) => { b[b.length - 3] ^= 0x40; return b; }, /checksum/],
    ['truncation', (b: Buffer) => b.subarray(0, b.length - 5), /data bytes/],
    ['a truncated header', (b: Buffer) => b.subarray(0, 40), /truncated header|unreadable header/],
    ['garbage', () => Buffer.from('hello world, not embeddings'), /not a cxr-train embeddings file/],
    ['an empty file', () => Buffer.alloc(0), /not a cxr-train embeddings file/],
  ])('damage (%s) is detected, recomputed and replaced', async (_what, damage, reason) => {
    const dir = path.join(tmp, `d-${Math.random().toString(36).slice(2)}`);
    const file = embeddingCacheFile(dir, key);
    writeEmbeddingCache(file, key, emb);
    fs.writeFileSync(file, damage(fs.readFileSync(file)));
    const r0 = readEmbeddingCache(file, key);
    expect(r0.outcome).toBe('damaged');
    if (r0.outcome === 'damaged') expect(r0.reason).toMatch(reason);
    const notes: string[] = [];
    const c = counted(emb);
    const r = await cachedEmbeddings(dir, key, c.compute, (n) => notes.push(n));
    expect(r.cache).toBe('damaged');
    expect(c.calls()).toBe(1);
    expect(notes).toHaveLength(1);
    expect(readEmbeddingCache(file, key).outcome).toBe('hit');
  });

  test('no cache folder: computed every time, nothing written', async () => {
    const c = counted(emb);
    expect((await cachedEmbeddings(null, key, c.compute)).cache).toBe('off');
    expect((await cachedEmbeddings(null, key, c.compute)).cache).toBe('off');
    expect(c.calls()).toBe(2);
  });
});

describe('split identity and embedSplit', () => {
  const sample = (id: string): Sample => ({ id, imagePath: '', labels: {}, patientId: `p-${id}`, studyId: id });
  const mem = (pix: number[]): MemorySource => ({ samples: pix.map((_, i) => sample(`s${i}`)), pixels: Float32Array.from(pix.flatMap((v) => Array(64).fill(v))), width: 8, height: 8 });

  test('changes with pixels, ids and order; not with labels', () => {
    const a = mem([0.1, 0.5, 0.9]);
    const h = splitIdentity('synthetic', 'test', a);
    expect(splitIdentity('synthetic', 'test', mem([0.1, 0.5, 0.9]))).toBe(h);
    expect(splitIdentity('synthetic', 'test', mem([0.1, 0.5, 0.8]))).not.toBe(h);
    expect(splitIdentity('synthetic', 'train', a)).not.toBe(h);
    const relabelled = { ...a, samples: a.samples.map((s) => ({ ...s, labels: { Edema: 1 } })) };
    expect(splitIdentity('synthetic', 'test', relabelled)).toBe(h);
    const renamed = { ...a, samples: a.samples.map((s, i) => ({ ...s, id: i === 0 ? 'x' : s.id })) };
    expect(splitIdentity('synthetic', 'test', renamed)).not.toBe(h);
  });

  test('files: a replaced image changes the identity', () => {
    const dir = path.join(tmp, 'files');
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'a.png'), 'one');
    const src = { root: dir, samples: [{ ...sample('a'), imagePath: 'a.png' }] };
    const h = splitIdentity('csv', 'test', src);
    fs.writeFileSync(path.join(dir, 'a.png'), 'three');
    expect(splitIdentity('csv', 'test', src)).not.toBe(h);
  });

  test('embedSplit returns what the encoder returned, in split order, through scoreSplit', async () => {
    // A fake encoder: the embedding of an image is (mean pixel, 1).
    const enc: ZeroShotEncoder = {
      dim: 2,
      id: 'fake',
      encodeTexts: async (t) => Float32Array.from(t.flatMap((_, i) => [1, i + 1])),
      encodeImages: async (images, n) => {
        const per = images.length / n;
        const out = new Float32Array(n * 2);
        for (let i = 0; i < n; i++) {
          let s = 0;
          for (let k = 0; k < per; k++) s += images[i * per + k];
          out[i * 2] = s / per;
          out[i * 2 + 1] = 1;
        }
        return out;
      },
    };
    const clf = new ZeroShotClassifier(enc, { name: 't', labels: [{ label: 'A', positive: ['a'], negative: ['no a'] }] });
    const src = mem([0.1, 0.5, 0.9, 0.3, 0.7]);
    const e = await embedSplit(clf, src, { batchSize: 2, image: { size: 8, normalize: 'none' }, workers: 0 });
    expect(e.ids).toEqual(['s0', 's1', 's2', 's3', 's4']);
    expect(e.dim).toBe(2);
    const means = Array.from({ length: 5 }, (_, i) => e.embeds[i * 2]);
    // Monotone in the pixel value, in split order (the exact value depends on the preprocessing).
    expect(means[0]).toBeLessThan(means[3]);
    expect(means[3]).toBeLessThan(means[1]);
    expect(means[1]).toBeLessThan(means[4]);
    expect(means[4]).toBeLessThan(means[2]);
  });
});
