/**
 * Opening a dataset split, the one way: a named source (a dataset adapter such as `mimic-cxr` or `csv`,
 * packed `shards`, or the in-memory `synthetic` generator) opened once, then split by name into a source
 * the DataLoader reads. Training, validation, the ablation, `eval` and `predict`-style scoring all open
 * their data here.
 */
import { CxrError } from '../errors';
import { getAdapter } from './adapters';
import type { FileSource, MemorySource } from './DataLoader';
import { filterSplit } from './manifest';
import { normalizeSplit, type Split } from './sample';
import { loadShards, readShardsMeta } from './shards';
import { synthesizeSamples, toMemorySource, type SyntheticOptions } from './synthetic';

/** Image files on disk or pre-decoded pixels in memory. */
export type SplitSource = FileSource | MemorySource;

/** Which data: a source name and its options (`root` for adapters and shards). */
export interface DataSource {
  /** Dataset adapter name (`mimic-cxr`, `chexpert`, `csv`, ...), `shards` or `synthetic`. */
  dataset: string;
  /** Adapter options (`root` is the dataset directory or shard folder); the generator's options for `synthetic`. */
  options?: Record<string, unknown>;
}

/** A dataset opened once; each split is taken from it without reading the index again. */
export interface OpenedDataset {
  /** The dataset's own name (the manifest's, e.g. `chestx-ray14`), for label-name mapping. */
  dataset: string;
  /** Label names (keys of every sample's labels). */
  labelNames: string[];
  /** Where the split's images are: describes the source in messages. */
  where: string;
  /** The samples of one split (possibly none). */
  split(name: Split): SplitSource;
}

/** Turns a source's options into an opened dataset: the interface synthetic data and shards implement too. */
export interface SourceAdapter {
  name: string;
  open(options: Record<string, unknown>): Promise<OpenedDataset>;
}

/** One opened split. */
export interface OpenedSplit {
  /** The split name as asked (e.g. `valid`), and its canonical form. */
  name: string;
  split: Split;
  dataset: string;
  labelNames: string[];
  source: SplitSource;
}

/** Options of {@link openSplit}. */
export interface OpenSplitOptions {
  /** Keep only the first N samples (in source order); null or undefined: all. */
  maxSamples?: number | null;
  /** Return an empty split instead of E_DATA. Default false. */
  allowEmpty?: boolean;
}

/** Options of the `synthetic` source: the generator's, plus patients to leave out. */
export interface SyntheticSourceOptions extends Omit<SyntheticOptions, 'outDir' | 'keepImages' | 'onProgress'> {
  /** Patients dropped from every split (to keep a second generator seed patient-disjoint from the first). */
  excludePatients?: Iterable<string>;
}

function rootOf(options: Record<string, unknown>, dataset: string): string {
  const root = options.root;
  if (typeof root !== 'string' || root === '') throw new CxrError('E_CONFIG', `dataset ${dataset}: the dataset root (--root) is required`);
  return root;
}

/** The in-memory generator (a pure function of its options: a resumed run sees the same pairs). */
export const syntheticSource: SourceAdapter = {
  name: 'synthetic',
  async open(options) {
    const { excludePatients, ...gen } = options as unknown as SyntheticSourceOptions;
    let ds = synthesizeSamples(gen);
    if (excludePatients) {
      const out = new Set(excludePatients);
      ds = { ...ds, samples: ds.samples.filter((s) => !out.has(s.patientId)) };
    }
    return { dataset: 'synthetic', labelNames: ds.labelNames, where: `synthetic seed ${gen.seed ?? 0}`, split: (name) => toMemorySource(ds, name) };
  },
};

/** Packed shards written by `cxr-train prepare` (pre-decoded pixels, read into memory per split). */
export const shardsSource: SourceAdapter = {
  name: 'shards',
  async open(options) {
    const root = rootOf(options, 'shards');
    const labelNames = readShardsMeta(root).labelNames;
    return { dataset: 'shards', labelNames, where: `shards ${root}`, split: (name) => loadShards(root, { splits: [name] }) };
  },
};

const sources = new Map<string, SourceAdapter>([
  [syntheticSource.name, syntheticSource],
  [shardsSource.name, shardsSource],
]);

/** A dataset adapter (its manifest read once) as a source. */
function manifestSource(dataset: string): SourceAdapter {
  const adapter = getAdapter(dataset);
  return {
    name: adapter.name,
    async open(options) {
      // A CSV index without a root: its image paths are relative to the index file.
      const root = dataset === 'csv' && !options.root && typeof options.file === 'string' ? '' : rootOf(options, dataset);
      const m = await adapter.load({ ...options, root });
      return { dataset: m.dataset, labelNames: m.labelNames, where: `dataset ${dataset}`, split: (name) => ({ root: m.root, samples: filterSplit(m, name) }) };
    },
  };
}

/** Opens a dataset once (E_CONFIG for an unknown name or a missing root). */
export async function openDataset(source: DataSource): Promise<OpenedDataset> {
  const adapter = sources.get(source.dataset) ?? manifestSource(source.dataset);
  return adapter.open(source.options ?? {});
}

function isOpened(x: DataSource | OpenedDataset): x is OpenedDataset {
  return typeof (x as OpenedDataset).split === 'function';
}

/** The first `max` samples of a source, sharing pixel memory (null or undefined: the source itself). */
export function limitSource<S extends SplitSource>(src: S, max: number | null | undefined): S {
  if (max === null || max === undefined || src.samples.length <= max) return src;
  if ((src as MemorySource).pixels !== undefined) {
    const m = src as MemorySource;
    return { ...m, samples: m.samples.slice(0, max), pixels: m.pixels.subarray(0, max * m.width * m.height) } as S;
  }
  return { ...src, samples: src.samples.slice(0, max) };
}

/**
 * One split of a dataset, ready for the DataLoader. Pass an {@link OpenedDataset} to take several splits
 * from one reading of the index.
 *
 * @throws CxrError E_CONFIG (unknown dataset or split, no root), E_DATA (the split is empty, unless
 *   `allowEmpty`), and the adapter's errors.
 */
export async function openSplit(source: DataSource | OpenedDataset, split: string, opts: OpenSplitOptions = {}): Promise<OpenedSplit> {
  const ds = isOpened(source) ? source : await openDataset(source);
  const canonical = normalizeSplit(split);
  if (!canonical) throw new CxrError('E_CONFIG', `unknown split '${split}' (train, validate, test)`);
  const src = ds.split(canonical);
  if (src.samples.length === 0 && !opts.allowEmpty) throw new CxrError('E_DATA', `${ds.where}: the ${split} split is empty`);
  return { name: split, split: canonical, dataset: ds.dataset, labelNames: ds.labelNames, source: limitSource(src, opts.maxSamples) };
}
