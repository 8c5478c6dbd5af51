import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import yargs from 'yargs';
import { generateSynthetic } from '../../../lib/data/synthetic';
import { mimicCxrAdapter } from '../../../lib/data/adapters/mimicCxr';
import { writeShards, verifyShards, loadShards, ShardReader } from '../../../lib/data/shards';
import { decodeToBase } from '../../../lib/data/images';
import { DataLoader } from '../../../lib/data/DataLoader';
import type { Manifest } from '../../../lib/data/manifest';
import { command as prepareCommand } from '../../../lib/cli/commands/prepare';
import { assignPatientSplits, patientLeaks, splitCounts } from '../../../lib/data/splits';

let root: string;
let manifest: Manifest;
const tmps: string[] = [];
function tmp(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'cxr-shards-'));
  tmps.push(d);
  return d;
}

beforeAll(async () => {
  root = tmp();
  await generateSynthetic({ n: 23, seed: 31, size: 48, outDir: root });
  manifest = await mimicCxrAdapter.load({ root });
});
afterAll(() => {
  for (const d of tmps) fs.rmSync(d, { recursive: true, force: true });
});

async function expectedPixels(m: Manifest, i: number, size: number): Promise<Uint8Array> {
  const base = await decodeToBase(path.join(m.root, m.samples[i].imagePath), size, 'pad');
  return Uint8Array.from(base, (v) => Math.min(255, Math.max(0, Math.round(v * 255))));
}

describe('packed shards', () => {
  test('round trip is bit-exact; samples and labels survive; verify passes', async () => {
    const out = tmp();
    const meta = await writeShards(manifest, { outDir: out, size: 32, shardSize: 10 });
    expect(meta.complete).toBe(true);
    expect(meta.shards).toHaveLength(3);
    expect(meta.count).toBe(23);
    const v = verifyShards(out);
    expect(v).toMatchObject({ ok: true, complete: true, shards: 3, images: 23 });
    const loaded = loadShards(out, { verify: true });
    expect(loaded.samples.map((s) => s.id)).toEqual(manifest.samples.map((s) => s.id));
    for (let i = 0; i < 23; i++) {
      const exp = await expectedPixels(manifest, i, 32);
      expect(Buffer.from(loaded.pixels.subarray(i * 1024, (i + 1) * 1024)).equals(Buffer.from(exp))).toBe(true);
      expect(loaded.samples[i].report).toBe(manifest.samples[i].report);
      for (const l of manifest.labelNames) {
        const a = manifest.samples[i].labels[l];
        if (Number.isNaN(a)) expect(loaded.samples[i].labels[l]).toBeNaN();
        else expect(loaded.samples[i].labels[l]).toBe(a);
      }
    }
    const reader = new ShardReader(out);
    expect(reader.length).toBe(23);
    expect(Buffer.from(reader.read(17)).equals(Buffer.from(loaded.pixels.subarray(17 * 1024, 18 * 1024)))).toBe(true);
    reader.close();
    const train = loadShards(out, { splits: ['train'] });
    expect(train.samples.every((s) => s.split === 'train')).toBe(true);
    expect(train.samples.length).toBe(manifest.samples.filter((s) => s.split === 'train').length);
    // Shards feed the loader without decoding.
    const l = new DataLoader(loaded, { batchSize: 8, image: { size: 32, normalize: 'none' }, shuffle: false });
    const first = (await l.epoch(0).next()).value!;
    expect((first.images as Float32Array)[5 * 32 + 7]).toBeCloseTo(loaded.pixels[5 * 32 + 7] / 255, 6);
    expect(fs.readdirSync(out).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });

  test('an interrupted prepare resumes where it stopped and ends identical to an uninterrupted one', async () => {
    const full = tmp();
    await writeShards(manifest, { outDir: full, size: 32, shardSize: 6 });
    const part = tmp();
    const m1 = await writeShards(manifest, { outDir: part, size: 32, shardSize: 6, maxShards: 2 });
    expect(m1.complete).toBe(false);
    expect(m1.shards).toHaveLength(2);
    expect(verifyShards(part)).toMatchObject({ ok: true, complete: false });
    const firstStat = fs.statSync(path.join(part, 'shard-00000.bin')).mtimeMs;
    // A stray temp file from a killed run is cleaned up.
    fs.writeFileSync(path.join(part, '.shard-00002.bin.123.0.tmp'), 'junk');
    let calls = 0;
    const m2 = await writeShards(manifest, { outDir: part, size: 32, shardSize: 6, onShard: () => calls++ });
    expect(calls).toBe(2); // only the missing shards were written
    expect(m2.complete).toBe(true);
    expect(fs.statSync(path.join(part, 'shard-00000.bin')).mtimeMs).toBe(firstStat);
    for (const f of fs.readdirSync(full)) expect(fs.readFileSync(path.join(part, f)).equals(fs.readFileSync(path.join(full, f)))).toBe(true);
    expect(fs.readdirSync(part).sort()).toEqual(fs.readdirSync(full).sort());
    // Other options in the same directory are refused.
    await expect(writeShards(manifest, { outDir: part, size: 64, shardSize: 6 })).rejects.toMatchObject({ code: 'E_CONFIG' });
  });

  test('verify detects corruption; bad images are skipped and counted; strict is fatal', async () => {
    const out = tmp();
    const d = tmp();
    fs.cpSync(root, d, { recursive: true });
    fs.writeFileSync(path.join(d, manifest.samples[4].imagePath), Buffer.alloc(0));
    const m = await mimicCxrAdapter.load({ root: d });
    const meta = await writeShards(m, { outDir: out, size: 16, shardSize: 50 });
    expect(meta.count).toBe(22);
    expect(meta.issues.byKind['bad-image']).toBe(1);
    expect(meta.issues.examples[0].where).toBe(manifest.samples[4].imagePath);
    await expect(writeShards(m, { outDir: tmp(), size: 16, strict: true })).rejects.toMatchObject({ code: 'E_DATA' });
    const bin = path.join(out, 'shard-00000.bin');
    const b = fs.readFileSync(bin);
    b[100] ^= 0xff;
    fs.writeFileSync(bin, b);
    const v = verifyShards(out);
    expect(v.ok).toBe(false);
    expect(v.problems).toEqual([{ file: 'shard-00000.bin', message: 'checksum mismatch' }]);
    expect(() => loadShards(out, { verify: true })).toThrow(expect.objectContaining({ code: 'E_DATA' }));
  });

  test('cxr-train prepare and prepare --verify', async () => {
    const out = tmp();
    const chunks: string[] = [];
    const spy = jest.spyOn(process.stdout, 'write').mockImplementation((c: string | Uint8Array) => {
      chunks.push(String(c));
      return true;
    });
    const err = jest.spyOn(process.stderr, 'write').mockImplementation(() => true);
    try {
      await yargs(['prepare', '--root', root, '--out', out, '--image-size', '24', '--shard-size', '8', '--splits', 'train,validate']).command(prepareCommand).strict().parseAsync();
      await yargs(['prepare', '--verify', out]).command(prepareCommand).strict().parseAsync();
    } finally {
      spy.mockRestore();
      err.mockRestore();
    }
    const text = chunks.join('');
    const nTrainVal = manifest.samples.filter((s) => s.split !== 'test').length;
    expect(text).toContain(`prepared ${nTrainVal} of ${nTrainVal} images`);
    expect(text).toMatch(/OK: \d+ shard\(s\), \d+ image\(s\)/);
    expect(loadShards(out).samples.every((s) => s.split !== 'test')).toBe(true);
  });
});

describe('patient-level splits', () => {
  test('all images of a patient share a split; existing splits are kept unless overridden', () => {
    const samples = Array.from({ length: 600 }, (_, i) => ({ id: String(i), imagePath: '', labels: {}, patientId: `P${i % 150}`, studyId: String(i) }));
    const a = assignPatientSplits(samples, { seed: 3 });
    expect(patientLeaks(a)).toEqual([]);
    const c = splitCounts(a);
    expect(c.none).toBe(0);
    expect(c.train).toBeGreaterThan(380);
    expect(c.test).toBeGreaterThan(20);
    expect(assignPatientSplits(samples, { seed: 3 })).toEqual(a);
    expect(assignPatientSplits(samples, { seed: 4 })).not.toEqual(a);
    const fixed = assignPatientSplits([{ ...samples[0], split: 'test' as const }], { seed: 3 });
    expect(fixed[0].split).toBe('test');
    const leak = [...a.slice(0, 2), { ...a[0], id: 'x', split: a[0].split === 'train' ? ('test' as const) : ('train' as const) }];
    expect(patientLeaks(leak)).toHaveLength(1);
  });
});
