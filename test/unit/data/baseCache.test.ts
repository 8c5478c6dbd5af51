import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BaseImageCache } from '../../../lib/data/baseCache';
import { DataLoader } from '../../../lib/data/DataLoader';
import type { Batch } from '../../../lib/data/DataLoader';
import { generateSynthetic } from '../../../lib/data/synthetic';
import type { Sample } from '../../../lib/data/sample';

describe('BaseImageCache', () => {
  const img = (n: number, v: number) => new Float32Array(n).fill(v);

  test('keeps at most maxBytes, dropping the least recently used first', () => {
    const c = new BaseImageCache(3 * 400);
    c.set('a', img(100, 1));
    c.set('b', img(100, 2));
    c.set('c', img(100, 3));
    expect(c.get('a')?.[0]).toBe(1); // a is now the most recent
    c.set('d', img(100, 4)); // drops b, the least recently used
    expect(c.get('b')).toBeUndefined();
    expect(c.get('a')?.[0]).toBe(1);
    expect(c.get('c')?.[0]).toBe(3);
    expect(c.get('d')?.[0]).toBe(4);
    expect(c.size).toBe(3);
    expect(c.byteLength).toBe(1200);
    expect(c.hits).toBe(4);
    expect(c.misses).toBe(1);
  });

  test('an entry larger than the bound is not kept; replacing a key counts its bytes once; resize drops the oldest', () => {
    const c = new BaseImageCache(1000);
    c.set('big', img(300, 1));
    expect(c.size).toBe(0);
    c.set('x', img(100, 1));
    c.set('x', img(50, 2));
    expect(c.byteLength).toBe(200);
    expect(c.get('x')?.length).toBe(50);
    c.set('y', img(100, 3));
    c.resize(450);
    expect(c.get('x')).toBeUndefined();
    expect(c.get('y')?.[0]).toBe(3);
    expect(c.byteLength).toBe(400);
  });

  test('keys name the file and the decode settings', () => {
    expect(BaseImageCache.keyOf('/d/a.jpg', '224|pad|{}')).not.toBe(BaseImageCache.keyOf('/d/a.jpg', '224|crop|{}'));
    expect(BaseImageCache.keyOf('/d/a.jpg', '224|pad|{}')).not.toBe(BaseImageCache.keyOf('/d/b.jpg', '224|pad|{}'));
  });
});

describe('DataLoader with the decoded-image cache', () => {
  let dir: string;
  let samples: Sample[];
  const image = { size: 24, geometry: 'pad' as const, normalize: 'clip' as const, augment: { scale: [0.7, 1] as [number, number], rotateDeg: 5, brightness: 0.1 } };
  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cxr-basecache-'));
    const ds = await generateSynthetic({ n: 14, seed: 4, size: 40, outDir: dir });
    samples = ds.samples.map((s) => ({ ...s, image: undefined }));
    fs.writeFileSync(path.join(dir, samples[3].imagePath), Buffer.from('not a jpeg'));
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  async function epochs(l: DataLoader, n: number): Promise<Batch[]> {
    const out: Batch[] = [];
    for (let e = 0; e < n; e++) for await (const b of l.epoch(e)) out.push({ ...b, images: (b.images as Float32Array).slice() });
    return out;
  }

  test.each([0, 2])('batches of later epochs equal those decoded every time (workers %d); a bad file stays skipped', async (workers) => {
    const cached = new DataLoader({ root: dir, samples }, { batchSize: 4, image, seed: 5, workers, cacheMB: 16 });
    const plain = new DataLoader({ root: dir, samples }, { batchSize: 4, image, seed: 5, workers, cacheMB: 0 });
    try {
      const a = await epochs(cached, 3);
      const b = await epochs(plain, 3);
      expect(a.map((x) => x.indices)).toEqual(b.map((x) => x.indices));
      for (let i = 0; i < a.length; i++) expect(Buffer.from((a[i].images as Float32Array).buffer).equals(Buffer.from((b[i].images as Float32Array).buffer))).toBe(true);
      expect(cached.stats.skipped).toBe(3); // once per epoch: failures are not cached
      expect(a.flatMap((x) => x.indices)).not.toContain(3);
      // Each good file is decoded once: with workers, an image goes to the same worker (whose cache holds
      // it) every epoch. The bad file is tried again each epoch.
      expect(cached.stats).toMatchObject({ decoded: 13 + 3, cacheHits: 13 * 2 });
      expect(plain.stats).toMatchObject({ decoded: 14 * 3, cacheHits: 0 });
    } finally {
      await cached.close();
      await plain.close();
    }
  });

  test('cacheMB must be a number >= 0', () => {
    expect(() => new DataLoader({ root: dir, samples }, { batchSize: 4, image, cacheMB: Number.NaN })).toThrow(expect.objectContaining({ code: 'E_CONFIG' }));
  });
});
