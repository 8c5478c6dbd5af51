import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { createModel } from '../../lib/models/ClipModel';
import { nativeStats, releaseCpuCache } from '../../lib/native';

describe('long runs do not leak', () => {
  it('500 train steps of test-vit grow RSS by less than 50 MB, and counters return to zero', async () => {
    // Slow only on an oversubscribed machine (~20 ms a step when idle): the bound is correctness, not speed.
    const m = createModel('test-vit', { device: 'cpu', seed: 1 });
    const n = 8;
    const L = 16;
    const images = new Float32Array(n * 3 * 32 * 32).map((_, i) => Math.sin(i * 0.37));
    const tokenIds = new Int32Array(n * L);
    for (let i = 0; i < n; i++) {
      tokenIds[i * L] = 49406;
      for (let j = 1; j < 6 + i; j++) tokenIds[i * L + j] = 1000 + i * 31 + j;
      tokenIds[i * L + 6 + i] = 49407;
    }
    const batch = { images, tokenIds, n, length: L };
    // Warm-up: allocator pools and thread pools settle first.
    for (let i = 0; i < 30; i++) await m.trainStep(batch, { lr: 1e-4 });
    if (global.gc) global.gc();
    const before = process.memoryUsage().rss;
    for (let i = 0; i < 500; i++) {
      const r = await m.trainStep(batch, { lr: 1e-4, loss: { kind: 'relaxed', alpha: 0.8 } });
      if (!Number.isFinite(r.loss)) throw new Error(`step ${i}: loss ${r.loss}`);
      if (i % 50 === 0) await m.encodeImages(images);
    }
    if (global.gc) global.gc();
    const growth = (process.memoryUsage().rss - before) / 2 ** 20;
    expect(growth).toBeLessThan(50);
    // The CPU block cache served the repeated steps' large blocks from what earlier steps freed.
    const cache = nativeStats().cpuCache;
    expect(cache.installed).toBe(true);
    expect(cache.hits).toBeGreaterThan(cache.misses);
    expect(cache.cachedBytes).toBeLessThanOrEqual(cache.limitBytes);
    m.dispose();
    expect(nativeStats().liveModels).toBe(0);
    expect(nativeStats().externalBytes).toBe(0);
    // With the model gone its blocks are cached, not in use; releasing gives them all back.
    releaseCpuCache();
    expect(nativeStats().cpuCache.cachedBytes).toBe(0);
  }, 600_000);
});

describe('CXR_CPU_CACHE_MB', () => {
  it('a value that is not a number of MiB is E_CONFIG when the addon loads, not a silent default', () => {
    const root = path.resolve(__dirname, '../..');
    const p = spawnSync(process.execPath, [path.join(root, 'bin/cxr-train.js'), 'doctor', '--json'], { encoding: 'utf8', env: { ...process.env, CXR_CPU_CACHE_MB: '2GB' } });
    expect(p.status).toBe(1);
    expect(p.stdout + p.stderr).toContain('CXR_CPU_CACHE_MB must be a number of MiB >= 0');
  });
});
