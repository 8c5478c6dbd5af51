/**
 * The ablation's data (train / validate / test / shifted test, opened with `openSplit`) and the zero-shot
 * scoring of a split with a trainer's current weights (through `scoreSplit`).
 */
import { CxrError } from '../../errors';
import { openDataset, openSplit, type SplitSource, type SyntheticSourceOptions } from '../../data/sources';
import { Trainer } from '../../train/Trainer';
import { buildRunData, runDataSource } from '../../train/data';
import type { RunData } from '../../train/data';
import type { TrainConfig } from '../../train/config';
import type { PromptSet } from '../../text/prompts';
import { ZeroShotClassifier } from '../../eval/zeroShot';
import { scoreSplit } from '../../eval/scoreSplit';
import { alignPromptLabels } from '../../eval/modelEncoder';
import type { AblationConfig, SplitScores } from './config';

// ------------------------------------------------------------------------------------------------
// Data

type Source = SplitSource;


/** The experiment's splits. */
export interface AblationData {
  run: RunData;
  test: Source;
  shifted: Source | null;
  /** Describes where each split came from (for the results). */
  description: Record<string, string>;
}

/** Builds train / validation / test / shifted-test sources for the fine-tuning config. */
export async function buildAblationData(a: AblationConfig, tc: TrainConfig): Promise<AblationData> {
  if (tc.data.dataset === 'synthetic') {
    const s = a.synthetic;
    const size = tc.data.synthetic.size;
    const prevalence = { scale: s.prevalenceScale };
    const synthetic = (options: SyntheticSourceOptions) => openDataset({ dataset: 'synthetic', options: { ...options } });
    const main = await synthetic({ n: s.n, size, seed: s.seed, findingStrength: s.findingStrength, prevalence, splitFractions: [0.85, 0.15, 0] });
    const train = (await openSplit(main, 'train', { allowEmpty: true })).source;
    const val = (await openSplit(main, 'validate', { allowEmpty: true })).source;
    // Test: its own generator seed (no shared random stream) and patients disjoint from training (ids drawn
    // by another seed could collide by chance: such patients are dropped).
    const excludePatients = new Set([...train.samples, ...val.samples].map((x) => x.patientId));
    const testOpts: SyntheticSourceOptions = { n: s.testN, size, seed: s.testSeed, findingStrength: s.findingStrength, prevalence, splitFractions: [0, 0, 1], excludePatients };
    const test = (await openSplit(await synthetic(testOpts), 'test', { allowEmpty: true })).source;
    const shifted = s.shift === 'none' ? null : (await openSplit(await synthetic({ ...testOpts, shift: s.shift, shiftSplits: ['test'] }), 'test', { allowEmpty: true })).source;
    const run: RunData = { train, val, labelNames: main.labelNames, dataset: 'synthetic' };
    return {
      run,
      test,
      shifted,
      description: {
        train: `synthetic seed ${s.seed}, ${run.train.samples.length} studies`,
        validate: `synthetic seed ${s.seed}, ${run.val.samples.length} studies (patient-disjoint from train)`,
        test: `synthetic seed ${s.testSeed}, ${test.samples.length} studies (own generator seed, patient-disjoint)`,
        shifted: shifted ? `the test studies rendered with shift preset "${s.shift}" (contrast, noise, exposure, heart size)` : 'none',
      },
    };
  }
  const d = tc.data;
  const ds = await openDataset(runDataSource(tc));
  const run = await buildRunData(tc, ds);
  const test = (await openSplit(ds, a.test.split)).source;
  const sh = a.test.shifted;
  const shifted = sh ? (await openSplit({ dataset: sh.dataset, options: { ...(sh.options ?? {}), root: sh.root } }, sh.split, { allowEmpty: true })).source : null;
  return {
    run,
    test,
    shifted,
    description: {
      train: `${d.dataset} ${d.trainSplit}, ${run.train.samples.length} images`,
      validate: `${d.dataset} ${d.valSplit}, ${run.val.samples.length} images`,
      test: `${d.dataset} ${a.test.split}, ${test.samples.length} images`,
      shifted: sh && shifted ? `${sh.dataset} ${sh.split}, ${shifted.samples.length} images` : 'none',
    },
  };
}

// ------------------------------------------------------------------------------------------------
// Zero-shot scoring of a source with a trainer's current weights


/** Scores every image of `src` zero-shot with the trainer's current weights (the CheXzero protocol). */
export async function scoreSource(trainer: Trainer, src: Source, prompts: PromptSet, dataset: string, labelNames: string[]): Promise<SplitScores> {
  const c = trainer.config;
  const aligned = alignPromptLabels(prompts, dataset, labelNames);
  const used = aligned.used.map((l) => ({ prompt: l, name: aligned.datasetName.get(l.label)! }));
  // One image encode per loader batch.
  const clf = new ZeroShotClassifier(trainer.encoder(), { name: prompts.name, labels: aligned.used }, { cache: new Map(), imageBatchSize: c.eval.batchSize });
  const size = c.data.imageSize ?? trainer.model.imageSize;
  const r = await scoreSplit(clf, src, { batchSize: c.eval.batchSize, image: { size, geometry: c.data.geometry, normalize: c.data.normalize }, workers: c.data.workers });
  if (r.failures.length) throw new CxrError('E_DATA', `${r.failures.length} image(s) failed to load during evaluation`);
  const L = used.length;
  const ids = r.indices.map((i) => src.samples[i].id);
  const probs = r.indices.map((_, k) => Array.from(r.probs.subarray(k * L, (k + 1) * L), (v) => Math.round(v * 1e7) / 1e7));
  return { labels: used.map((u) => u.name), ids, probs };
}
