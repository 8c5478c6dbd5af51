/**
 * The prepare job (`cxr-train prepare`) as a library function: a dataset read through its adapter
 * (optionally given patient-level splits) packed into fixed-size image shards that `openSplit` reads as
 * the `shards` source.
 */
import fs from 'node:fs';
import path from 'node:path';
import { getAdapter, type BaseAdapterOptions } from '../data/adapters';
import type { Manifest } from '../data/manifest';
import { writeShards, type ShardsMeta, type WriteShardsOptions } from '../data/shards';
import { assignPatientSplits } from '../data/splits';
import { nothingUseful } from './outcome';
import { ensureOutDir } from '../util/paths';

/** Options of {@link prepareShards}. */
export interface PrepareOptions extends Omit<WriteShardsOptions, 'strict'> {
  /** Adapter name (`mimic-cxr`, `chexpert`, `csv`, ...). */
  dataset: string;
  /** Adapter options; `root` is the dataset directory. */
  adapterOptions: BaseAdapterOptions & Record<string, unknown>;
  /** Give samples without a split a patient-level train/validate/test split (seeded). Default false. */
  assignSplits?: boolean;
  /** Seed of the split assignment. Default 0. */
  seed?: number;
  /** Called once with the manifest's issues before packing starts. */
  onManifest?: (manifest: Manifest) => void;
}

/** What {@link prepareShards} read and wrote. */
export interface PrepareResult {
  manifest: Manifest;
  meta: ShardsMeta;
  elapsedMs: number;
  /** Why nothing useful came out (no row gave an image in a shard), or null; the CLI then exits 1. */
  nothingUseful: string | null;
}

/**
 * Reads a dataset with its adapter and writes its shards into `outDir`.
 *
 * @throws CxrError E_CONFIG (unknown dataset), the adapter's E_IO/E_PARSE/E_DATA, and the shard writer's errors.
 */
export async function prepareShards(opts: PrepareOptions): Promise<PrepareResult> {
  const adapter = getAdapter(opts.dataset);
  // Before the dataset is read: an output path that is a file is refused at once.
  const created = !fs.existsSync(ensureOutDir(opts.outDir, '--out'));
  const t0 = Date.now();
  const manifest = await adapter.load(opts.adapterOptions);
  if (opts.assignSplits && manifest.samples.some((s) => !s.split)) {
    manifest.samples = assignPatientSplits(manifest.samples, { seed: opts.seed ?? 0 });
  }
  opts.onManifest?.(manifest);
  const { dataset: _d, adapterOptions, assignSplits: _a, seed: _s, onManifest: _m, ...shardOpts } = opts;
  const meta = await writeShards(manifest, { ...shardOpts, strict: adapterOptions.strict ?? false });
  const none = manifest.samples.length === 0 && manifest.issues.total > 0 ? `nothing produced: no usable row (${manifest.issues.total} dataset issue(s))` : nothingUseful(meta.count, manifest.samples.length, 'rows');
  // A folder made by this run that holds no image is removed: nothing half-made is left behind to clash
  // with the next run (a folder that was there before is left as it was).
  if (meta.count === 0 && created) fs.rmSync(path.resolve(opts.outDir), { recursive: true, force: true });
  return { manifest, meta, elapsedMs: Date.now() - t0, nothingUseful: meta.count > 0 ? null : none };
}
