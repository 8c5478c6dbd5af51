/**
 * The training and validation sources of a run, from its config, through {@link openSplit}: the
 * synthetic generator (in memory), packed shards (in memory), or a dataset adapter (image files decoded
 * by the loader's workers).
 */
import { openDataset, openSplit, type DataSource, type OpenedDataset, type SplitSource } from '../data/sources';
import type { TrainConfig } from './config';

/** The sources of a run. */
export interface RunData {
  train: SplitSource;
  val: SplitSource;
  /** Dataset label names (keys of every sample's labels). */
  labelNames: string[];
  /** Dataset name, for label-name mapping. */
  dataset: string;
}

/** The data source a training config names (`data.dataset` with `data.root` / `data.options` / `data.synthetic`). */
export function runDataSource(c: TrainConfig): DataSource {
  const d = c.data;
  if (d.dataset === 'synthetic') {
    const s = d.synthetic;
    return { dataset: 'synthetic', options: { n: s.n, size: s.size, seed: s.seed, findingStrength: s.findingStrength } };
  }
  return { dataset: d.dataset, options: { ...d.options, root: d.root } };
}

/**
 * Reads or generates the data of a run. Synthetic data is generated in memory (a pure function of
 * `data.synthetic`), so a resumed run sees exactly the same pairs. `opened`: the run's dataset already
 * opened (by {@link runDataSource}), so its index is read once.
 */
export async function buildRunData(c: TrainConfig, opened?: OpenedDataset): Promise<RunData> {
  const d = c.data;
  const ds = opened ?? (await openDataset(runDataSource(c)));
  const train = await openSplit(ds, d.trainSplit);
  const val = await openSplit(ds, d.valSplit, { maxSamples: c.eval.maxSamples });
  return { train: train.source, val: val.source, labelNames: ds.labelNames, dataset: d.dataset };
}
