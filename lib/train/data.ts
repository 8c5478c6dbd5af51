/**
 * Builds the training and validation sources of a run from its config: the synthetic generator (in
 * memory), packed shards (in memory), or a dataset adapter (image files decoded by the loader's workers).
 */
import { CxrError } from '../errors';
import type { FileSource, MemorySource } from '../data/DataLoader';
import { getAdapter } from '../data/adapters';
import { filterSplit } from '../data/manifest';
import type { Sample } from '../data/sample';
import { loadShards } from '../data/shards';
import { synthesizeSamples, toMemorySource } from '../data/synthetic';
import type { TrainConfig } from './config';

/** The sources of a run. */
export interface RunData {
  train: FileSource | MemorySource;
  val: FileSource | MemorySource;
  /** Dataset label names (keys of every sample's labels). */
  labelNames: string[];
  /** Dataset name, for label-name mapping. */
  dataset: string;
}

function isMemory(s: FileSource | MemorySource): s is MemorySource {
  return (s as MemorySource).pixels !== undefined;
}

/** The first `max` samples of a source (the validation cap), sharing pixel memory where possible. */
export function limitSource<S extends FileSource | MemorySource>(src: S, max: number | null): S {
  if (max === null || src.samples.length <= max) return src;
  if (isMemory(src)) {
    const plane = src.width * src.height;
    return { ...src, samples: src.samples.slice(0, max), pixels: src.pixels.subarray(0, max * plane) } as S;
  }
  return { ...src, samples: src.samples.slice(0, max) } as S;
}

function nonEmpty(samples: Sample[], split: string, what: string): void {
  if (samples.length === 0) throw new CxrError('E_DATA', `${what}: the ${split} split is empty`);
}

/**
 * Reads or generates the data of a run. Synthetic data is generated in memory (a pure function of
 * `data.synthetic`), so a resumed run sees exactly the same pairs.
 */
export async function buildRunData(c: TrainConfig): Promise<RunData> {
  const d = c.data;
  let train: FileSource | MemorySource;
  let val: FileSource | MemorySource;
  let labelNames: string[];
  if (d.dataset === 'synthetic') {
    const ds = synthesizeSamples({ n: d.synthetic.n, size: d.synthetic.size, seed: d.synthetic.seed, findingStrength: d.synthetic.findingStrength });
    train = toMemorySource(ds, d.trainSplit);
    val = toMemorySource(ds, d.valSplit);
    labelNames = ds.labelNames;
  } else if (d.dataset === 'shards') {
    train = loadShards(d.root!, { splits: [d.trainSplit] });
    val = loadShards(d.root!, { splits: [d.valSplit] });
    labelNames = (train as ReturnType<typeof loadShards>).meta.labelNames;
  } else {
    const m = await getAdapter(d.dataset).load({ ...d.options, root: d.root! });
    train = { root: m.root, samples: filterSplit(m, d.trainSplit) };
    val = { root: m.root, samples: filterSplit(m, d.valSplit) };
    labelNames = m.labelNames;
  }
  nonEmpty(train.samples, d.trainSplit, `dataset ${d.dataset}`);
  nonEmpty(val.samples, d.valSplit, `dataset ${d.dataset}`);
  return { train, val: limitSource(val, c.eval.maxSamples), labelNames, dataset: d.dataset };
}
