import { DataLoader } from '../../../lib/data/DataLoader';
import type { MemorySource } from '../../../lib/data/DataLoader';
import { distributedEnv } from '../../../lib/train/distributed';
import { stripLaunchFlags } from '../../../lib/jobs/train';

function source(n: number): MemorySource {
  return {
    samples: Array.from({ length: n }, (_, i) => ({ id: `s${i}`, imagePath: '', report: '', labels: {}, split: 'train' as const })),
    pixels: new Float32Array(n * 4 * 4),
    width: 4,
    height: 4,
  } as unknown as MemorySource;
}
const image = { size: 4, geometry: 'stretch' as const, normalize: 'none' as const };

describe('sharded sampler', () => {
  it('splits every global batch of one process into disjoint per-rank slices, in order', () => {
    const one = new DataLoader(source(103), { batchSize: 12, image, seed: 7, dropLast: true });
    const ranks = [0, 1, 2].map((rank) => new DataLoader(source(103), { batchSize: 4, image, seed: 7, dropLast: true, shard: { rank, count: 3 } }));
    for (const e of [0, 1, 5]) {
      const full = one.plan(e);
      const parts = ranks.map((l) => l.plan(e));
      expect(full.length).toBe(8); // floor(103 / 12)
      parts.forEach((p) => expect(p.length).toBe(full.length));
      full.forEach((batch, i) => expect([...parts[0][i], ...parts[1][i], ...parts[2][i]]).toEqual(batch));
      const seen = parts.flat(2);
      expect(new Set(seen).size).toBe(seen.length);
    }
    expect(ranks[1].batchesPerEpoch).toBe(one.batchesPerEpoch);
    // Another epoch, another permutation.
    expect(ranks[0].plan(0)).not.toEqual(ranks[0].plan(1));
  });

  it('splits an incomplete last batch evenly when it is kept', () => {
    const ranks = [0, 1].map((rank) => new DataLoader(source(10), { batchSize: 4, image, shuffle: false, shard: { rank, count: 2 } }));
    expect(ranks[0].plan(0)).toEqual([[0, 1, 2, 3], [8]]);
    expect(ranks[1].plan(0)).toEqual([[4, 5, 6, 7], [9]]);
  });

  it('rejects a bad shard', () => {
    expect(() => new DataLoader(source(4), { batchSize: 2, image, shard: { rank: 2, count: 2 } })).toThrow(/shard/);
  });
});

describe('torchrun environment', () => {
  it('is null for a single process', () => {
    expect(distributedEnv({})).toBeNull();
    expect(distributedEnv({ WORLD_SIZE: '1', RANK: '0' })).toBeNull();
  });
  it('reads rank, world size, local rank and the rendezvous address', () => {
    expect(distributedEnv({ WORLD_SIZE: '8', RANK: '5', LOCAL_RANK: '1', LOCAL_WORLD_SIZE: '4', MASTER_ADDR: '10.0.0.1', MASTER_PORT: '29500' })).toEqual({
      rank: 5, worldSize: 8, localRank: 1, localWorldSize: 4, masterAddr: '10.0.0.1', masterPort: 29500, ifname: '',
    });
  });
  it('names what is missing or wrong', () => {
    expect(() => distributedEnv({ WORLD_SIZE: '2', MASTER_ADDR: 'h', MASTER_PORT: '1' })).toThrow(/RANK is not set/);
    expect(() => distributedEnv({ WORLD_SIZE: '2', RANK: '2', MASTER_ADDR: 'h', MASTER_PORT: '1' })).toThrow(/RANK 2 is not below WORLD_SIZE 2/);
    expect(() => distributedEnv({ WORLD_SIZE: '2', RANK: '0', MASTER_PORT: '1' })).toThrow(/MASTER_ADDR/);
    expect(() => distributedEnv({ WORLD_SIZE: '2', RANK: '0', MASTER_ADDR: 'h', MASTER_PORT: '70000' })).toThrow(/MASTER_PORT/);
    expect(() => distributedEnv({ WORLD_SIZE: 'two', RANK: '0' })).toThrow(/WORLD_SIZE must be an integer/);
  });
});

describe('launcher', () => {
  it('passes every flag but its own on to the workers', () => {
    expect(stripLaunchFlags(['train', '--nproc', '2', '--out', 'r', '--nnodes=2', '--node-rank', '1', '--master', 'h:1', '--steps', '5'])).toEqual([
      'train', '--out', 'r', '--steps', '5',
    ]);
  });
});
