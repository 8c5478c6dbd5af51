import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DataLoader } from '../../../lib/data/DataLoader';
import type { Batch } from '../../../lib/data/DataLoader';
import { generateSynthetic, synthesizeSamples, toMemorySource } from '../../../lib/data/synthetic';
import { loadImage } from '../../../lib/data/images';
import type { Sample } from '../../../lib/data/sample';

let dir: string;
let samples: Sample[];
const image = { size: 24, geometry: 'pad' as const, normalize: 'clip' as const, augment: { scale: [0.7, 1] as [number, number], rotateDeg: 5, brightness: 0.1 } };

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cxr-loader-'));
  const ds = await generateSynthetic({ n: 22, seed: 8, size: 40, outDir: dir });
  samples = ds.samples.map((s) => ({ ...s, image: undefined }));
  // One corrupt and one missing image: both must be skipped and counted.
  fs.writeFileSync(path.join(dir, samples[5].imagePath), Buffer.from('not a jpeg'));
  fs.unlinkSync(path.join(dir, samples[9].imagePath));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

type FloatBatch = Omit<Batch, 'images'> & { images: Float32Array };
async function collect(l: DataLoader, e: number): Promise<FloatBatch[]> {
  const out: FloatBatch[] = [];
  for await (const b of l.epoch(e)) out.push({ ...b, images: (b.images as Float32Array).slice() });
  return out;
}

describe('DataLoader over files', () => {
  test('in-process: contiguous batches, bad samples skipped and counted, values equal to loadImage', async () => {
    const l = new DataLoader({ root: dir, samples }, { batchSize: 8, image, seed: 3, workers: 0 });
    expect(l.mode).toBe('in-process');
    const batches = await collect(l, 0);
    expect(batches.map((b) => b.n).reduce((a, b) => a + b, 0)).toBe(20);
    expect(l.stats.skipped).toBe(2);
    expect(l.stats.issues.byKind['bad-image']).toBe(2);
    expect(l.stats.issues.examples.map((e) => e.where).sort()).toEqual([samples[5].imagePath, samples[9].imagePath].sort());
    const chw = 3 * 24 * 24;
    const all = batches.flatMap((b) => b.indices);
    expect(new Set(all).size).toBe(20);
    expect(all).not.toContain(5);
    expect(all).not.toContain(9);
    for (const b of batches) {
      expect(b.images.length).toBe(b.n * chw);
      expect(b.samples.map((s) => s.id)).toEqual(b.indices.map((i) => samples[i].id));
    }
    // Image k of a batch is exactly the single-image pipeline with seed hashSeed(seed, epoch, index).
    const { hashSeed } = await import('../../../lib/util/rng');
    const b0 = batches.find((b) => b.n < 8) ?? batches[0];
    for (let k = 0; k < b0.n; k++) {
      const ref = await loadImage(path.join(dir, samples[b0.indices[k]].imagePath), image, hashSeed(3, 0, b0.indices[k]));
      expect(Buffer.from(b0.images.subarray(k * chw, (k + 1) * chw).slice().buffer).equals(Buffer.from(ref.buffer))).toBe(true);
    }
    await l.close();
  });

  test('worker pool gives bit-identical batches to in-process, then shuts down cleanly', async () => {
    const a = new DataLoader({ root: dir, samples }, { batchSize: 5, image, seed: 11, workers: 0 });
    const w = new DataLoader({ root: dir, samples }, { batchSize: 5, image, seed: 11, workers: 2, prefetch: 3 });
    expect(w.mode).toBe('workers');
    const ea = await collect(a, 1);
    const ew = await collect(w, 1);
    expect(ew.map((b) => b.indices)).toEqual(ea.map((b) => b.indices));
    for (let i = 0; i < ea.length; i++) expect(Buffer.from(ew[i].images.buffer).equals(Buffer.from(ea[i].images.buffer))).toBe(true);
    expect(w.stats.skipped).toBe(2);
    // Breaking out early and starting another epoch works; close() is idempotent and final.
    for await (const b of w.epoch(2)) {
      expect(b.n).toBeGreaterThan(0);
      break;
    }
    await w.close();
    await w.close();
    await expect(w.epoch(3).next()).rejects.toMatchObject({ code: 'E_DISPOSED' });
    await a.close();
  });

  test('seeded shuffling per epoch, drop-last, no shuffle', () => {
    const l = new DataLoader({ root: dir, samples }, { batchSize: 4, image, seed: 1, workers: 0, dropLast: true });
    const p0 = l.plan(0);
    expect(p0).toHaveLength(5);
    expect(p0.every((b) => b.length === 4)).toBe(true);
    expect(l.plan(0)).toEqual(p0);
    expect(l.plan(1)).not.toEqual(p0);
    expect(new DataLoader({ root: dir, samples }, { batchSize: 4, image, seed: 2, workers: 0 }).plan(0)).not.toEqual(p0);
    const ordered = new DataLoader({ root: dir, samples }, { batchSize: 10, image, shuffle: false, workers: 0 }).plan(0);
    expect(ordered.map((b) => b.length)).toEqual([10, 10, 2]);
    expect(ordered[0]).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(() => new DataLoader({ root: dir, samples }, { batchSize: 0, image })).toThrow(expect.objectContaining({ code: 'E_CONFIG' }));
  });
});

describe('DataLoader over memory', () => {
  test('float and uint8 pixels, augmentation, bounded prefetch', async () => {
    const ds = synthesizeSamples({ n: 40, seed: 2, size: 32 });
    const pixels = new Float32Array(40 * 32 * 32);
    ds.samples.forEach((s, i) => pixels.set(s.image!, i * 32 * 32));
    const touched = new Set<number>();
    const tracked = new Proxy(ds.samples as Sample[], {
      get(t, k) {
        if (typeof k === 'string' && /^\d+$/.test(k)) touched.add(Number(k));
        return Reflect.get(t, k);
      },
    });
    const opts = { batchSize: 4, image: { size: 32, normalize: 'none' as const }, seed: 5, prefetch: 2 };
    const l = new DataLoader({ samples: tracked, pixels, width: 32, height: 32 }, opts);
    const it = l.epoch(0);
    const first = await it.next();
    expect(first.done).toBe(false);
    const b = first.value as Batch;
    // At most the prefetch window (+ the batch being delivered) has been prepared.
    expect(touched.size).toBeLessThanOrEqual(4 * (opts.prefetch + 1));
    // Without augmentation and at native size the batch holds the pixels themselves on 3 channels.
    const idx = b.indices[0];
    for (let c = 0; c < 3; c++) for (const k of [0, 100, 555]) expect((b.images as Float32Array)[c * 1024 + k]).toBeCloseTo(pixels[idx * 1024 + k], 6);
    await it.return(undefined);
    const u8 = Uint8Array.from(pixels, (v) => Math.round(v * 255));
    const l8 = new DataLoader({ samples: ds.samples, pixels: u8, width: 32, height: 32 }, { ...opts, image: { size: 16, normalize: 'none', augment: { rotateDeg: 5 } } });
    let count = 0;
    for await (const bb of l8.epoch(0)) {
      expect((bb.images as Float32Array).length).toBe(bb.n * 3 * 16 * 16);
      count += bb.n;
    }
    expect(count).toBe(40);
    expect(() => new DataLoader({ samples: ds.samples, pixels: new Float32Array(10), width: 32, height: 32 }, opts)).toThrow(expect.objectContaining({ code: 'E_SHAPE' }));
    const src = toMemorySource(ds, 'train');
    expect(src.samples.every((s) => s.split === 'train')).toBe(true);
    expect(src.pixels.length).toBe(src.samples.length * 1024);
    expect(Array.from(src.pixels.subarray(1024, 1034))).toEqual(Array.from(src.samples[1].image!.subarray(0, 10)));
  });
});
