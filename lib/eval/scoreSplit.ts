/**
 * Scoring a split zero-shot, the one way: every image of a source decoded by the DataLoader (unshuffled,
 * source order), encoded by the classifier's model and turned into probabilities of its prompt set.
 * The Trainer's validation, the ablation, `eval` and `predict` all score through {@link scoreSplit}.
 */
import { CxrError } from '../errors';
import { DataLoader, type Batch } from '../data/DataLoader';
import type { PreprocessOptions } from '../data/images';
import type { SplitSource } from '../data/sources';
import type { ZeroShotClassifier } from './zeroShot';

/** Options of {@link scoreSplit}. */
export interface ScoreSplitOptions {
  /** Images per model call (the loader's batch size); required with a source, ignored with a loader. */
  batchSize?: number;
  /** How images are decoded and preprocessed for the model; required with a source, ignored with a loader. */
  image?: PreprocessOptions;
  /** Decoder worker threads (0: in process) with a source. Default: the DataLoader default. */
  workers?: number;
  /** Wraps every model call (ZeroShotModel queues them so that calls never overlap). Default: call directly. */
  exclusive?: <T>(call: () => Promise<T>) => Promise<T>;
  /** Called after every batch with its probabilities (`b.n × labels`), e.g. for a validation loss. */
  onBatch?: (b: Batch, probs: Float32Array) => Promise<void> | void;
  /** Called after every batch with images processed (scored or skipped) so far. */
  onProgress?: (done: number, total: number) => void;
  /** Also return the image embeddings of the scored images (for retrieval, or ensembles of logits). Default false. */
  keepEmbeddings?: boolean;
}

/** Probabilities of the samples of a split that loaded; the others with their reasons. */
export interface ScoredSplit {
  /** Source indices of the scored images, in order. */
  indices: number[];
  /** `indices.length × labels` row-major probabilities. */
  probs: Float32Array;
  /** Source indices that failed to load, with reasons. */
  failures: Array<{ index: number; reason: string }>;
  /** With `keepEmbeddings`: `indices.length × dim` image embeddings (not normalised), same row order. */
  embeddings?: Float32Array;
}

function isLoader(x: SplitSource | DataLoader): x is DataLoader {
  return x instanceof DataLoader;
}

/**
 * Scores every sample of `split` with `classifier` (a model and a prompt set), in source order. A sample
 * that fails to load is left out and reported. `split` may be an unshuffled DataLoader the caller owns
 * (it is reused, not closed); otherwise a loader is made for the call and closed after it.
 */
export async function scoreSplit(classifier: ZeroShotClassifier, split: SplitSource | DataLoader, opts: ScoreSplitOptions): Promise<ScoredSplit> {
  const own = !isLoader(split);
  if (own && (opts.batchSize === undefined || opts.image === undefined)) throw new CxrError('E_CONFIG', 'scoreSplit: a source needs batchSize and image options');
  const loader = isLoader(split)
    ? split
    : new DataLoader(split, {
        batchSize: opts.batchSize!,
        image: opts.image!,
        shuffle: false,
        ...(opts.workers !== undefined ? { workers: opts.workers } : {}),
        // Every failure is reported by name, not only the first few.
        maxExamples: Math.max(10, split.samples.length),
      });
  const n = loader.length;
  const bs = loader.batchSize;
  const L = classifier.labels.length;
  const call = opts.exclusive ?? (<T>(f: () => Promise<T>) => f());
  const indices: number[] = [];
  const chunks: Float32Array[] = [];
  const embChunks: Float32Array[] = [];
  let planned = 0;
  try {
    await classifier.textEmbeddings();
    for await (const b of loader.epoch(0)) {
      let p: Float32Array;
      if (opts.keepEmbeddings) {
        const r = await call(() => classifier.predictWithEmbeddings(b.images, b.n));
        p = r.probs;
        embChunks.push(r.embeddings);
      } else p = await call(() => classifier.predict(b.images, b.n));
      chunks.push(p);
      indices.push(...b.indices);
      await opts.onBatch?.(b, p);
      // Unshuffled batches are consecutive slices: images up to the end of this slice are done (scored or
      // failed), which also counts batches whose every image failed and that were therefore not yielded.
      planned = Math.min(n, (Math.floor(b.indices[b.indices.length - 1] / bs) + 1) * bs);
      opts.onProgress?.(planned, n);
    }
  } finally {
    if (own) await loader.close();
  }
  if (planned < n) opts.onProgress?.(n, n);
  const probs = concat(chunks, indices.length * L);
  const samples = loader.samples;
  const reasons = new Map<string, string>();
  for (const ex of loader.stats.issues.examples) reasons.set(ex.where, ex.message);
  const ok = new Set(indices);
  const failures: ScoredSplit['failures'] = [];
  for (let i = 0; i < n; i++) {
    if (ok.has(i)) continue;
    const s = samples[i];
    failures.push({ index: i, reason: reasons.get(s.imagePath || s.id) ?? 'failed to load' });
  }
  return { indices, probs, failures, ...(opts.keepEmbeddings ? { embeddings: concat(embChunks, indices.length * classifier.encoder.dim) } : {}) };
}

function concat(chunks: Float32Array[], length: number): Float32Array {
  const out = new Float32Array(length);
  let off = 0;
  for (const c of chunks) {
    out.set(c, off);
    off += c.length;
  }
  return out;
}
