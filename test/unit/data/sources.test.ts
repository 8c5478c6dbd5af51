import { openDataset, openSplit, limitSource } from '../../../lib/data/sources';
import type { MemorySource } from '../../../lib/data/DataLoader';
import { synthesizeSamples, toMemorySource } from '../../../lib/data/synthetic';

const synthetic = (options: Record<string, unknown>) => ({ dataset: 'synthetic', options: { n: 60, size: 16, seed: 3, ...options } });

async function codeOf(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
  } catch (e) {
    return (e as { code?: string }).code;
  }
  return undefined;
}

describe('openSplit', () => {
  it('takes a split of the synthetic source: the same samples and pixels as the generator gives', async () => {
    const s = await openSplit(synthetic({}), 'validate');
    const ref = toMemorySource(synthesizeSamples({ n: 60, size: 16, seed: 3 }), 'validate');
    expect(s.split).toBe('validate');
    expect(s.dataset).toBe('synthetic');
    expect(s.source.samples.map((x) => x.id)).toEqual(ref.samples.map((x) => x.id));
    expect(Array.from((s.source as MemorySource).pixels)).toEqual(Array.from(ref.pixels));
    expect(s.labelNames.length).toBeGreaterThan(0);
  });

  it('normalises split names, opens a dataset once for several splits, and caps with maxSamples', async () => {
    const ds = await openDataset(synthetic({}));
    const a = await openSplit(ds, 'valid');
    expect(a.split).toBe('validate');
    const train = await openSplit(ds, 'train', { maxSamples: 5 });
    expect(train.source.samples).toHaveLength(5);
    expect((train.source as MemorySource).pixels.length).toBe(5 * 16 * 16);
  });

  it('drops excluded patients (a second seed kept patient-disjoint)', async () => {
    const all = await openSplit(synthetic({ splitFractions: [0, 0, 1] }), 'test');
    const drop = all.source.samples.slice(0, 10).map((x) => x.patientId);
    const kept = await openSplit(synthetic({ splitFractions: [0, 0, 1], excludePatients: drop }), 'test');
    expect(kept.source.samples.some((x) => drop.includes(x.patientId))).toBe(false);
    expect(kept.source.samples.length).toBe(all.source.samples.filter((x) => !drop.includes(x.patientId)).length);
    expect(kept.source.samples.length).toBeLessThan(all.source.samples.length);
  });

  it('an empty split is E_DATA unless allowed; unknown splits, datasets and a missing root are E_CONFIG', async () => {
    const src = synthetic({ splitFractions: [1, 0, 0] });
    expect(await codeOf(openSplit(src, 'test'))).toBe('E_DATA');
    expect((await openSplit(src, 'test', { allowEmpty: true })).source.samples).toHaveLength(0);
    expect(await codeOf(openSplit(src, 'holdout'))).toBe('E_CONFIG');
    expect(await codeOf(openSplit({ dataset: 'no-such-dataset', options: { root: '/tmp' } }, 'test'))).toBe('E_CONFIG');
    expect(await codeOf(openSplit({ dataset: 'mimic-cxr', options: {} }, 'test'))).toBe('E_CONFIG');
    expect(await codeOf(openSplit({ dataset: 'shards', options: {} }, 'test'))).toBe('E_CONFIG');
  });

  it('limitSource keeps file sources and short sources as they are', () => {
    const files = { root: '/data', samples: synthesizeSamples({ n: 20, size: 16, seed: 1, render: false, keepImages: false }).samples };
    expect(limitSource(files, null)).toBe(files);
    expect(limitSource(files, 100)).toBe(files);
    expect(limitSource(files, 3).samples).toEqual(files.samples.slice(0, 3));
  });
});
