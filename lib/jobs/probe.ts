/**
 * `cxr-train probe` as a function: linear probes on a checkpoint's frozen image embeddings with 1 %, 10 %
 * and 100 % of the training labels, next to the zero-shot AUROC of the same checkpoint on the same test
 * images (the label-efficiency table of CXR-CLIP, GLoRIA and MedKLIP).
 *
 *   dataset → train / validate / test splits → embeddings per split (cached: lib/eval/probe/embeddings)
 *   → zero-shot probabilities of the test embeddings (the checkpoint's classifier) → per label and fraction:
 *   logistic regression with C chosen on validation (lib/eval/probe/protocol) → probe.json
 */
import path from 'node:path';
import { CxrError } from '../errors';
import { openDataset, openSplit, type OpenedSplit } from '../data/sources';
import { loadPromptSet, DEFAULT_PROMPT_SET, type PromptSet } from '../text/prompts';
import { writeFileAtomic } from '../util/atomic';
import { ensureOutDir } from '../util/paths';
import { ZeroShotModel, type ZeroShotModelOptions } from '../infer/zeroShotModel';
import { alignPromptLabels, type AlignedLabels } from '../eval/modelEncoder';
import { normalizeRows, promptSetHash } from '../eval/zeroShot';
import { cachedEmbeddings, embedSplit, splitIdentity, type CacheOutcome, type EmbeddingKey, type SplitEmbeddings } from '../eval/probe/embeddings';
import { runProbe, validateCGrid, DEFAULT_C_GRID, DEFAULT_FRACTIONS, type ProbeResult, type ProbeSplit } from '../eval/probe/protocol';
import { validateFractions } from '../eval/probe/subsets';
import { renderProbeHtml } from '../eval/probe/html';

/** Options of {@link probeCheckpoint}. */
export interface ProbeJobOptions extends Omit<ZeroShotModelOptions, 'prompts' | 'onWarning'> {
  /** Checkpoint (any format `loadPretrained` reads). */
  checkpoint: string;
  /** Dataset adapter name or `shards` / `synthetic`. */
  dataset: string;
  /** Adapter options (`root` for adapters and shards). */
  adapterOptions: Record<string, unknown>;
  /** Split names. Default `train`, `validate`, `test`. */
  trainSplit?: string;
  valSplit?: string;
  testSplit?: string;
  /** Labels to probe (dataset or prompt names). Default: the dataset labels the prompt set covers. */
  labels?: string[];
  /** Prompt set of the zero-shot column. Default `chexzero`. */
  prompts?: string;
  /** Label fractions in (0, 1]. Default 0.01, 0.1, 1. */
  fractions?: number[];
  /** C grid. Default 1e-4 … 100, one per decade. */
  cGrid?: number[];
  /** Seed of the patient subsets. Default 0. */
  subsetSeed?: number;
  /** Bootstrap resamples (0: none). Default 1000. */
  bootstrap?: number;
  /** Bootstrap seed. Default 0. */
  seed?: number;
  /** Solver tolerance and iteration limit. */
  tol?: number;
  maxIter?: number;
  /** At most this many images per split (first ones), for quick checks. */
  maxSamples?: number;
  /** Decoder worker threads. */
  workers?: number;
  /** Output folder (created): probe.json. */
  outDir: string;
  /** Embedding cache folder; null: no cache. Default `<outDir>/embeddings`. */
  cacheDir?: string | null;
  /** Progress of each embedding pass and of the fits. */
  onProgress?: (e: { stage: 'embed'; split: string; done: number; total: number } | { stage: 'fit'; label: string; fraction: number; C: number }) => void;
  /** Warnings and notes (load notes, cache notes). */
  onWarning?: (w: string) => void;
}

/** Output of {@link probeCheckpoint} (also written as probe.json). */
export interface ProbeJobResult extends ProbeResult {
  checkpoint: string;
  checkpointHash: string;
  dataset: string;
  splits: Record<'train' | 'validate' | 'test', { name: string; images: number; skipped: Array<{ id: string; reason: string }>; cache: CacheOutcome; cacheFile: string | null }>;
  /** Zero-shot settings of the comparison column (null when no label has a prompt). */
  zeroShot: { prompts: string; promptHash: string; temperature: number } | null;
  /** probe.json */
  file: string;
  /** probe.html: the same results as a page in the report card's style. */
  html: string;
}

/** The probe's labels: canonical (prompt) name → dataset name, and which have prompts. */
function chooseLabels(ds: { dataset: string; labelNames: string[] }, aligned: AlignedLabels | null, asked: string[] | undefined): Array<{ name: string; column: string; prompt: boolean }> {
  const byName = new Map<string, { name: string; column: string; prompt: boolean }>();
  const prompted = new Set(aligned ? aligned.used.map((l) => l.label) : []);
  if (aligned) for (const [canon, col] of aligned.datasetName) byName.set(canon, { name: canon, column: col, prompt: prompted.has(canon) });
  for (const col of ds.labelNames) if (![...byName.values()].some((v) => v.column === col)) byName.set(col, { name: col, column: col, prompt: false });
  if (!asked) {
    const all = [...byName.values()];
    const withPrompt = all.filter((l) => l.prompt);
    return withPrompt.length ? withPrompt : all;
  }
  const out: Array<{ name: string; column: string; prompt: boolean }> = [];
  for (const a of asked) {
    const hit = byName.get(a) ?? [...byName.values()].find((v) => v.column === a);
    if (!hit) throw new CxrError('E_CONFIG', `unknown label "${a}": the dataset has ${[...byName.values()].map((v) => v.name).join(', ')}`);
    if (!out.includes(hit)) out.push(hit);
  }
  return out;
}

/**
 * Runs the probe and writes `probe.json` in `outDir`.
 * @throws CxrError E_CONFIG (fractions, C grid, labels, splits), E_DATA (empty splits, every image
 *   failing), and the loading errors of the checkpoint and the dataset.
 */
export async function probeCheckpoint(opts: ProbeJobOptions): Promise<ProbeJobResult> {
  // Cheap checks before the slow work.
  const fractions = opts.fractions ?? [...DEFAULT_FRACTIONS];
  validateFractions(fractions);
  const cGrid = validateCGrid(opts.cGrid ?? DEFAULT_C_GRID);
  const names = { train: opts.trainSplit ?? 'train', validate: opts.valSplit ?? 'validate', test: opts.testSplit ?? 'test' };
  ensureOutDir(opts.outDir, '--out');
  const ds = await openDataset({ dataset: opts.dataset, options: opts.adapterOptions });
  const splits = {} as Record<'train' | 'validate' | 'test', OpenedSplit>;
  for (const k of ['train', 'validate', 'test'] as const) splits[k] = await openSplit(ds, names[k], { maxSamples: opts.maxSamples });
  const canon = new Set(Object.values(splits).map((s) => s.split));
  if (canon.size !== 3) throw new CxrError('E_CONFIG', `the train, validation and test splits must differ (got ${names.train}, ${names.validate}, ${names.test})`);

  const prompts: PromptSet = loadPromptSet(opts.prompts ?? DEFAULT_PROMPT_SET);
  let aligned: AlignedLabels | null = null;
  try {
    aligned = alignPromptLabels(prompts, ds.dataset, ds.labelNames);
  } catch (e) {
    if (!(e instanceof CxrError && e.code === 'E_CONFIG')) throw e;
    opts.onWarning?.(`probe: ${(e as Error).message}: no zero-shot column`);
  }
  const labels = chooseLabels(ds, aligned, opts.labels);
  const promptLabels = aligned ? aligned.used.filter((l) => labels.some((x) => x.prompt && x.name === l.label)) : [];
  const usedSet: PromptSet = { name: prompts.name, labels: promptLabels.length ? promptLabels : prompts.labels };

  ensureOutDir(opts.outDir, '--out', { create: true });
  const cacheDir = opts.cacheDir === undefined ? path.join(opts.outDir, 'embeddings') : opts.cacheDir;
  const zm = await ZeroShotModel.load(opts.checkpoint, { ...opts, prompts: usedSet, onWarning: opts.onWarning });
  const emb = {} as Record<'train' | 'validate' | 'test', { e: SplitEmbeddings; cache: CacheOutcome; file: string | null }>;
  let zsProbs: Float32Array | null = null;
  try {
    for (const k of ['train', 'validate', 'test'] as const) {
      const sp = splits[k];
      const key: EmbeddingKey = {
        checkpointHash: zm.checkpointHash,
        split: sp.split,
        splitHash: splitIdentity(ds.dataset, sp.split, sp.source),
        image: { size: zm.image.size, geometry: String(zm.image.geometry ?? 'pad'), normalize: String(zm.image.normalize ?? 'clip') },
      };
      const r = await cachedEmbeddings(
        cacheDir,
        key,
        () =>
          embedSplit(zm.classifier, sp.source, {
            batchSize: zm.batchSize,
            image: zm.image,
            exclusive: (f) => zm.exclusive(f),
            ...(opts.workers !== undefined ? { workers: opts.workers } : {}),
            ...(opts.onProgress ? { onProgress: (done, total) => opts.onProgress!({ stage: 'embed', split: sp.name, done, total }) } : {}),
          }),
        opts.onWarning,
      );
      emb[k] = { e: r.embeddings, cache: r.cache, file: r.file };
    }
    // Zero-shot on the test embeddings: the classifier's own scoring (what scoreSplit applies per batch).
    if (promptLabels.length) zsProbs = await zm.classifier.scoreEmbeddings(emb.test.e.embeds, emb.test.e.ids.length);
  } finally {
    zm.dispose();
  }

  const L = labels.length;
  const toProbeSplit = (k: 'train' | 'validate' | 'test'): ProbeSplit => {
    const { e } = emb[k];
    const byId = new Map(splits[k].source.samples.map((s) => [s.id, s]));
    const n = e.ids.length;
    const truth = new Float64Array(n * L);
    const patients: string[] = [];
    e.ids.forEach((id, i) => {
      const s = byId.get(id);
      if (!s) throw new CxrError('E_DATA', `embedded sample ${id} is not in the ${names[k]} split`);
      patients.push(s.patientId);
      labels.forEach((l, j) => (truth[i * L + j] = s.labels[l.column] ?? NaN));
    });
    return { X: { data: normalizeRows(e.embeds, n, e.dim, `${names[k]} embeddings`), n, d: e.dim }, truth, patients };
  };
  const test = toProbeSplit('test');
  let zeroShot: { probs: Float32Array; has: boolean[] } | undefined;
  if (zsProbs) {
    const P = promptLabels.length;
    const n = test.X.n;
    const probs = new Float32Array(n * L).fill(NaN);
    const has = labels.map((l) => promptLabels.some((p) => p.label === l.name));
    labels.forEach((l, j) => {
      const pj = promptLabels.findIndex((p) => p.label === l.name);
      if (pj >= 0) for (let i = 0; i < n; i++) probs[i * L + j] = zsProbs![i * P + pj];
    });
    zeroShot = { probs, has };
  }
  const result = runProbe(
    { labels: labels.map((l) => l.name), train: toProbeSplit('train'), validate: toProbeSplit('validate'), test, ...(zeroShot ? { zeroShot } : {}) },
    {
      fractions,
      cGrid,
      ...(opts.subsetSeed !== undefined ? { subsetSeed: opts.subsetSeed } : {}),
      ...(opts.bootstrap !== undefined ? { bootstrap: opts.bootstrap } : {}),
      ...(opts.seed !== undefined ? { seed: opts.seed } : {}),
      ...(opts.tol !== undefined ? { tol: opts.tol } : {}),
      ...(opts.maxIter !== undefined ? { maxIter: opts.maxIter } : {}),
      ...(opts.onProgress ? { onFit: (e) => opts.onProgress!({ stage: 'fit', ...e }) } : {}),
    },
  );
  for (const k of ['train', 'validate', 'test'] as const) {
    if (emb[k].e.failures.length) result.warnings.push(`${names[k]}: ${emb[k].e.failures.length} image(s) failed to load and were left out`);
  }
  const file = path.join(opts.outDir, 'probe.json');
  const html = path.join(opts.outDir, 'probe.html');
  const createdAt = new Date().toISOString();
  const out: ProbeJobResult = {
    checkpoint: opts.checkpoint,
    checkpointHash: zm.checkpointHash,
    dataset: ds.dataset,
    ...result,
    splits: Object.fromEntries(
      (['train', 'validate', 'test'] as const).map((k) => [k, { name: names[k], images: emb[k].e.ids.length, skipped: emb[k].e.failures, cache: emb[k].cache, cacheFile: emb[k].file }]),
    ) as ProbeJobResult['splits'],
    zeroShot: zeroShot ? { prompts: usedSet.name, promptHash: promptSetHash(usedSet), temperature: zm.temperature } : null,
    file,
    html,
  };
  writeFileAtomic(file, JSON.stringify({ format: 'cxr-train probe', version: 1, createdAt, ...out }, null, 2) + '\n');
  writeFileAtomic(html, renderProbeHtml(out, { ...out, createdAt }));
  return out;
}
