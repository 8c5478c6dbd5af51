/**
 * `cxr-train eval` as a function: zero-shot predictions of a checkpoint (or an ensemble of checkpoints) on
 * a dataset split, written as CSVs `cxr-train score` reads; the same scoring (thresholds fitted on the
 * validation split's predictions and frozen, never on test; seeded bootstrap); the report card; and the
 * thresholds JSON `predict --thresholds` reads.
 *
 *   dataset (adapter or shards) → splits → prompt labels ∩ dataset labels → per checkpoint: probabilities
 *   of every split → ensemble mean → CSVs → scoreTables → report.json + report.html + thresholds.json
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { CxrError } from '../errors';
import { normalizeSplit } from '../data/sample';
import type { Sample } from '../data/sample';
import { openDataset, openSplit, type SplitSource } from '../data/sources';
import { loadPromptSet, DEFAULT_PROMPT_SET } from '../text/prompts';
import type { PromptSet } from '../text/prompts';
import { formatCsv, parseCsvTable } from '../util/csv';
import { writeFileAtomic } from '../util/atomic';
import { ZeroShotModel } from '../infer/zeroShotModel';
import type { ZeroShotModelOptions } from '../infer/zeroShotModel';
import { classifySource } from './predict';
import { alignPromptLabels } from '../eval/modelEncoder';
import { ensembleProbabilities, promptSetHash } from '../eval/zeroShot';
import { formatPredictionsCsv, scoreTables } from '../eval/score';
import type { ScoreResult } from '../eval/score';
import type { ThresholdCriterion } from '../eval/metrics';
import { writeReportCard, type ReportSection } from '../eval/reportCard';
import { RetrievalEvaluation, type RetrievalOptions, type RetrievalReport } from '../eval/retrievalEval';
import { averageLogits, compareEnsemble, type EnsembleAverage, type EnsembleReport } from '../eval/ensemble';
import { ensembleSection, retrievalSection } from '../eval/retrievalCard';
import { fitThresholds, THRESHOLDS_FORMAT, writeThresholds } from '../eval/thresholds';
import type { ThresholdsFile } from '../eval/thresholds';
import { ensureOutDir } from '../util/paths';
import { calibrationReport } from '../eval/calibrationReport';
import type { CalibrationReport } from '../eval/calibrationReport';
import { CALIBRATION_FORMAT, writeCalibration } from '../eval/calibrationMap';
import type { CalibrationMethod } from '../eval/calibrationMap';
import { checkSubgroupColumns, subgroupAuroc } from '../eval/subgroups';
import type { SubgroupAttribute, SubgroupReport } from '../eval/subgroups';
import { calibrationSection, subgroupSection } from '../eval/reportSections';

/** Options of {@link evaluateCheckpoint}. */
export interface EvaluateOptions extends Omit<ZeroShotModelOptions, 'prompts' | 'onWarning'> {
  /** Checkpoint to evaluate (any format `loadPretrained` reads). */
  checkpoint: string;
  /** More checkpoints: probabilities are averaged over all (CheXzero's ensemble). */
  ensemble?: string[];
  /** How ensemble members are combined: `probabilities` (CheXzero, default) or `logits` (sigmoid of the mean logit). */
  ensembleAverage?: EnsembleAverage;
  /** Image↔report retrieval and k×200 on the scored split (true: the defaults). Default off. */
  retrieval?: boolean | RetrievalOptions;
  /** Dataset adapter name (`mimic-cxr`, `chexpert`, `csv`, ...) or `shards` (a `cxr-train prepare` output). */
  dataset: string;
  /** Adapter options; `root` is required (for `shards`, the shard folder). */
  adapterOptions: { root: string } & Record<string, unknown>;
  /** Split scored. Default `test`. */
  split?: string;
  /** Split the thresholds are fitted on (e.g. `validate`); none: fixed threshold, and no thresholds.json. */
  valSplit?: string | null;
  /** Prompt set name or file. Default `chexzero`. */
  prompts?: string;
  /** Bootstrap resamples (0: none). Default 1000. */
  bootstrap?: number;
  /** Bootstrap seed. Default 0. */
  seed?: number;
  /** Criterion maximised on validation. Default `mcc`. */
  thresholdCriterion?: ThresholdCriterion;
  /** Threshold without a validation split. Default 0.5. */
  threshold?: number;
  /** Use at most this many images per split (first ones in manifest order), for quick checks. */
  maxSamples?: number;
  /** Decoder worker threads. Default: the DataLoader default. */
  workers?: number;
  /** Output folder (created). */
  outDir: string;
  /**
   * What the data are, for the report card's title and provenance (e.g. `synthetic data (cxr-train demo
   * generator, seed 0)`). Default: the adapter and its root, `mimic-cxr at /data/mimic-cxr-jpg`.
   */
  dataSource?: string;
  /** Progress of each pass. */
  onProgress?: (e: { checkpoint: string; split: string; done: number; total: number }) => void;
  /** Load warnings and notes. */
  onWarning?: (w: string) => void;
  /** Fit a calibration map per label on `valSplit` (required) and apply it to the scored split; writes calibration.json. */
  calibrate?: CalibrationMethod;
  /** Reliability bins of the calibration metrics. Default 10. */
  calibrationBins?: number;
  /** AUROC per group of these attributes (sex, age, view) with intervals and the gap to overall. */
  subgroups?: SubgroupAttribute[];
  /** Smallest group scored (images). Default 50 (lib/eval/subgroups.ts). */
  subgroupMinSize?: number;
  /** Age band edges in years. Default 18, 40, 60, 80. */
  ageBands?: number[];
}

/** Files written by {@link evaluateCheckpoint}. */
export interface EvaluateFiles {
  predictions: string;
  truth: string;
  valPredictions?: string;
  valTruth?: string;
  reportJson: string;
  reportHtml: string;
  /** Present with a validation split. */
  thresholds?: string;
  /** calibration.json (with `calibrate`). */
  calibration?: string;
  /** The scored split's calibrated probabilities (with `calibrate`). */
  calibratedPredictions?: string;
}

/** Result of {@link evaluateCheckpoint}. */
export interface EvaluateResult {
  /** The scores (as `cxr-train score` computes them on the written CSVs). */
  result: ScoreResult;
  files: EvaluateFiles;
  /** SHA-256 of each checkpoint's weights, in order. */
  checkpointHashes: string[];
  /** SHA-256 of the evaluated part of the dataset manifest (see {@link manifestHash}). */
  manifestHash: string;
  /** Labels scored (prompt labels the dataset has), in column order. */
  labels: string[];
  /** Dataset labels no prompt covers. */
  unmatched: string[];
  /** Images per split: scored and skipped (failed to load, with reasons). */
  splits: Record<string, { images: number; skipped: Array<{ id: string; reason: string }> }>;
  /** The thresholds written, with a validation split. */
  thresholds?: ThresholdsFile;
  /** Calibration of the scored split (and with `calibrate`, the maps and the metrics after them). */
  calibration: CalibrationReport;
  /** With `subgroups`. */
  subgroups?: SubgroupReport;
  /** With `retrieval`. */
  retrieval?: RetrievalReport;
  /** With an ensemble: every member beside the ensemble, and the deltas over the best member. */
  ensemble?: EnsembleReport;
}

/** A split ready for the loader. */
interface SplitData {
  name: string;
  source: SplitSource;
}

/**
 * SHA-256 of a dataset's evaluated samples in canonical JSON: dataset, label names and, per sample, id,
 * image path, split, patient and labels (missing as null). The same files and labels give the same hash
 * wherever the dataset root lives.
 */
export function manifestHash(dataset: string, labelNames: readonly string[], samples: readonly Sample[]): string {
  const h = crypto.createHash('sha256');
  h.update(JSON.stringify({ dataset, labelNames }));
  for (const s of samples) {
    const labels = labelNames.map((l) => (s.labels[l] === undefined || Number.isNaN(s.labels[l]) ? null : s.labels[l]));
    h.update('\n' + JSON.stringify([s.id, s.imagePath, s.split ?? null, s.patientId, labels]));
  }
  return h.digest('hex');
}

async function loadSplits(opts: EvaluateOptions, names: string[]): Promise<{ dataset: string; labelNames: string[]; splits: SplitData[] }> {
  const ds = await openDataset({ dataset: opts.dataset, options: opts.adapterOptions });
  const splits: SplitData[] = [];
  for (const name of names) splits.push({ name, source: (await openSplit(ds, name, { maxSamples: opts.maxSamples })).source });
  return { dataset: ds.dataset, labelNames: ds.labelNames, splits };
}

/**
 * Evaluates a checkpoint (or an ensemble) zero-shot on a dataset split and writes, in `outDir`:
 * `predictions.csv` + `truth.csv` (and `val_predictions.csv` + `val_truth.csv` with a validation split: the
 * inputs of `cxr-train score`), `report.json` + `report.html`, and `thresholds.json` (with a validation split).
 *
 * @throws CxrError E_CONFIG (options, no shared label), E_DATA (empty split, every image failing, ensemble
 *   members disagreeing on the images), and the loading errors of the checkpoint and dataset.
 */
export async function evaluateCheckpoint(opts: EvaluateOptions): Promise<EvaluateResult> {
  const testSplit = opts.split ?? 'test';
  const valSplit = opts.valSplit ?? null;
  if (valSplit !== null && normalizeSplit(valSplit) === normalizeSplit(testSplit)) {
    throw new CxrError('E_CONFIG', `the validation split (${valSplit}) must differ from the scored split (${testSplit}): thresholds are never fitted on the test split`);
  }
  if (opts.calibrate && valSplit === null) throw new CxrError('E_CONFIG', '--calibrate fits its maps on the validation split: give --val-split too');
  ensureOutDir(opts.outDir, '--out');
  const checkpoints = [opts.checkpoint, ...(opts.ensemble ?? [])];
  const prompts: PromptSet = loadPromptSet(opts.prompts ?? DEFAULT_PROMPT_SET);
  const names = valSplit === null ? [testSplit] : [testSplit, valSplit];
  const data = await loadSplits(opts, names);
  if (opts.subgroups?.length) checkSubgroupColumns(data.splits[0].source.samples, opts.subgroups, testSplit);
  const aligned = alignPromptLabels(prompts, data.dataset, data.labelNames);
  const labels = aligned.used.map((l) => l.label);
  const L = labels.length;
  const usedSet: PromptSet = { name: prompts.name, labels: aligned.used };
  const allSamples = data.splits.flatMap((s) => s.source.samples);
  const mHash = manifestHash(data.dataset, data.labelNames, allSamples);
  const average = opts.ensembleAverage ?? 'probabilities';
  if (average !== 'probabilities' && average !== 'logits') throw new CxrError('E_CONFIG', `ensemble average must be probabilities or logits, got ${JSON.stringify(average)}`);
  // Checked before any model is loaded: the split has reports, the k×200 labels exist.
  const rt = opts.retrieval ? new RetrievalEvaluation(testSplit, data.splits[0].source.samples, labels, aligned.datasetName, opts.retrieval === true ? {} : opts.retrieval) : null;

  // Probabilities per checkpoint and split; ensemble members must score the same images.
  const perSplit = data.splits.map(() => ({ indices: null as number[] | null, probs: [] as Float32Array[], logits: [] as Float64Array[], failures: [] as Array<{ index: number; reason: string }> }));
  const hashes: string[] = [];
  const temperatures: number[] = [];
  for (const ck of checkpoints) {
    const zm = await ZeroShotModel.load(ck, { ...opts, prompts: usedSet, onWarning: opts.onWarning });
    try {
      hashes.push(zm.checkpointHash);
      temperatures.push(zm.temperature);
      const clf = zm.classifier;
      for (const [k, sp] of data.splits.entries()) {
        const r = await classifySource(zm, clf, sp.source, {
          ...(opts.workers !== undefined ? { workers: opts.workers } : {}),
          keepEmbeddings: (rt !== null && k === 0) || (average === 'logits' && checkpoints.length > 1),
          ...(opts.onProgress ? { onProgress: (done: number, total: number) => opts.onProgress!({ checkpoint: ck, split: sp.name, done, total }) } : {}),
        });
        if (r.indices.length === 0) throw new CxrError('E_DATA', `every image of the ${sp.name} split failed to load (first: ${r.failures[0]?.reason ?? '?'})`);
        const ps = perSplit[k];
        if (ps.indices === null) {
          ps.indices = r.indices;
          ps.failures = r.failures;
        } else if (ps.indices.length !== r.indices.length || ps.indices.some((x, i) => x !== r.indices[i])) {
          throw new CxrError('E_DATA', `ensemble member ${ck} scored other images of the ${sp.name} split than ${checkpoints[0]} (a file failed to load in one pass only?)`);
        }
        ps.probs.push(r.probs);
        if (average === 'logits' && checkpoints.length > 1) ps.logits.push(await clf.logitsOfEmbeddings(r.embeddings!, r.indices.length));
        if (rt && k === 0) {
          await rt.addMember({
            checkpoint: ck,
            samples: r.indices.map((i) => sp.source.samples[i]),
            embeddings: r.embeddings!,
            classifier: clf,
            countTokens: (t) => zm.tokenizer.countTokens(t),
            contextLength: zm.model.contextLength,
            exclusive: (f) => zm.exclusive(f),
          });
        }
      }
    } finally {
      zm.dispose();
    }
  }

  ensureOutDir(opts.outDir, '--out', { create: true });
  const files: Partial<EvaluateFiles> = {};
  const tables: Record<string, { truth: string; pred: string }> = {};
  const splitsOut: EvaluateResult['splits'] = {};
  let valTruth: Float64Array | null = null;
  const test = { ids: [] as string[], patients: [] as string[], samples: [] as Sample[], truth: new Float64Array(0), probs: new Float32Array(0) };
  let valIds: string[] = [];
  let valProbs: Float32Array | null = null;
  data.splits.forEach((sp, k) => {
    const ps = perSplit[k];
    const idx = ps.indices!;
    const probs = ps.probs.length === 1 ? ps.probs[0] : average === 'logits' ? averageLogits(ps.logits) : ensembleProbabilities(ps.probs);
    const samples = idx.map((i) => sp.source.samples[i]);
    const ids = samples.map((s) => s.id);
    const truth = new Float64Array(samples.length * L);
    samples.forEach((s, i) => aligned.used.forEach((l, j) => (truth[i * L + j] = s.labels[aligned.datasetName.get(l.label)!] ?? NaN)));
    const truthRows: Array<Array<string | number>> = [['id', 'patient_id', ...labels]];
    samples.forEach((s, i) => truthRows.push([s.id, s.patientId, ...labels.map((_, j) => (Number.isNaN(truth[i * L + j]) ? '' : truth[i * L + j]))]));
    const predCsv = formatPredictionsCsv(ids, labels, probs);
    const truthCsv = formatCsv(truthRows);
    const isVal = k === 1;
    const predFile = path.join(opts.outDir, isVal ? 'val_predictions.csv' : 'predictions.csv');
    const truthFile = path.join(opts.outDir, isVal ? 'val_truth.csv' : 'truth.csv');
    writeFileAtomic(predFile, predCsv);
    writeFileAtomic(truthFile, truthCsv);
    if (isVal) {
      files.valPredictions = predFile;
      files.valTruth = truthFile;
      valTruth = truth;
      valProbs = probs;
      valIds = ids;
    } else {
      files.predictions = predFile;
      files.truth = truthFile;
      Object.assign(test, { ids, patients: samples.map((s) => s.patientId), samples, truth, probs });
    }
    tables[isVal ? 'val' : 'test'] = { truth: truthCsv, pred: predCsv };
    splitsOut[sp.name] = { images: idx.length, skipped: ps.failures.map((f) => ({ id: sp.source.samples[f.index].id, reason: f.reason })) };
  });

  // The same scoring as `cxr-train score` on the CSVs just written.
  const criterion = opts.thresholdCriterion ?? 'mcc';
  const scoreOpts = {
    labels,
    idCol: 'id',
    patientCol: 'patient_id',
    bootstrap: opts.bootstrap ?? 1000,
    seed: opts.seed ?? 0,
    thresholdCriterion: criterion,
    ...(opts.threshold !== undefined ? { threshold: opts.threshold } : {}),
  };
  const scoreInput = (pred: string, valPred: string | undefined) => ({
    truth: parseCsvTable(tables.test.truth, { source: files.truth }),
    pred: parseCsvTable(pred, { source: files.predictions }),
    ...(tables.val && valPred !== undefined
      ? { valTruth: parseCsvTable(tables.val.truth, { source: files.valTruth }), valPred: parseCsvTable(valPred, { source: files.valPredictions }) }
      : {}),
  });
  const result = scoreTables(scoreInput(tables.test.pred, tables.val?.pred), scoreOpts);
  // An ensemble: each member scored the same way, beside the ensemble, with the deltas over the best member.
  let ensemble: EnsembleReport | undefined;
  if (checkpoints.length > 1) {
    const valMembers = perSplit[1]?.probs;
    ensemble = compareEnsemble({
      average,
      labels,
      checkpoints,
      hashes,
      memberResults: perSplit[0].probs.map((p, m) =>
        scoreTables(scoreInput(formatPredictionsCsv(test.ids, labels, p), valMembers ? formatPredictionsCsv(valIds, labels, valMembers[m]) : undefined), scoreOpts),
      ),
      ensembleResult: result,
      truth: test.truth,
      memberProbs: perSplit[0].probs,
      ensembleProbs: test.probs,
      patients: test.patients,
      ...(valTruth && valMembers ? { val: { truth: valTruth, memberProbs: valMembers } } : {}),
      bootstrap: opts.bootstrap ?? 1000,
      seed: opts.seed ?? 0,
    });
  }
  const retrieval = rt?.finish();
  result.inputs = {
    truth: files.truth!,
    pred: files.predictions!,
    ...(files.valTruth ? { valTruth: files.valTruth, valPred: files.valPredictions } : {}),
  };
  for (const [name, s] of Object.entries(splitsOut)) if (s.skipped.length) result.warnings.push(`${name}: ${s.skipped.length} image(s) failed to load and were left out`);
  if (aligned.unmatched.length) result.warnings.push(`dataset labels without prompts (not scored): ${aligned.unmatched.join(', ')}`);

  let thresholds: ThresholdsFile | undefined;
  if (valTruth && valProbs) {
    const fit = fitThresholds(labels, valTruth, valProbs, criterion);
    thresholds = {
      format: THRESHOLDS_FORMAT,
      version: 1,
      criterion,
      split: valSplit!,
      dataset: data.dataset,
      checkpointHashes: hashes,
      prompts: { name: usedSet.name, hash: promptSetHash(usedSet) },
      temperature: opts.temperature ?? 1,
      labels: fit.labels,
      ...(fit.skipped.length ? { skipped: fit.skipped } : {}),
    };
    files.thresholds = path.join(opts.outDir, 'thresholds.json');
    writeThresholds(files.thresholds, thresholds);
  }

  // Calibration (its metrics always; with --calibrate the maps fitted on validation) and subgroups.
  const cal = calibrationReport({
    labels,
    testSplit,
    testTruth: test.truth,
    testProbs: test.probs,
    ...(valTruth && valProbs ? { valSplit: valSplit!, valTruth, valProbs } : {}),
    ...(opts.calibrate ? { method: opts.calibrate } : {}),
    ...(opts.calibrationBins !== undefined ? { nBins: opts.calibrationBins } : {}),
  });
  if (cal.report.fit) {
    const f = cal.report.fit;
    files.calibration = path.join(opts.outDir, 'calibration.json');
    writeCalibration(files.calibration, {
      format: CALIBRATION_FORMAT,
      version: 1,
      method: f.method,
      split: f.split,
      dataset: data.dataset,
      checkpointHashes: hashes,
      prompts: { name: usedSet.name, hash: promptSetHash(usedSet) },
      zeroShotTemperature: opts.temperature ?? 1,
      logit: f.logit,
      labels: f.maps,
      ...(f.skipped.length ? { skipped: f.skipped } : {}),
    });
    f.file = files.calibration;
    files.calibratedPredictions = path.join(opts.outDir, 'calibrated_predictions.csv');
    writeFileAtomic(files.calibratedPredictions, formatPredictionsCsv(test.ids, labels, cal.calibratedTest!));
  }
  const subgroups = opts.subgroups?.length
    ? subgroupAuroc(labels, test.truth, test.probs, test.samples, {
        attributes: opts.subgroups,
        ...(opts.subgroupMinSize !== undefined ? { minSize: opts.subgroupMinSize } : {}),
        ...(opts.ageBands ? { ageBands: opts.ageBands } : {}),
        bootstrap: opts.bootstrap ?? 1000,
        seed: opts.seed ?? 0,
        splitName: testSplit,
      })
    : undefined;
  const sections = [calibrationSection(cal.report), ...(subgroups ? [subgroupSection(subgroups, { auroc: result.macro.auroc, ...(result.macro.ci?.auroc ? { ci: result.macro.ci.auroc } : {}) })] : [])];

  const dataRoot = path.resolve(opts.adapterOptions.root);
  const dataSource = opts.dataSource ?? `${data.dataset} at ${dataRoot}`;
  const written = writeReportCard(opts.outDir, result, {
    title: `cxr-train eval: ${path.basename(path.resolve(opts.checkpoint))}${checkpoints.length > 1 ? ` (+${checkpoints.length - 1} ensemble)` : ''} on ${dataSource}, ${testSplit} split`,
    checkpointHash: hashes.join(', '),
    datasetManifestHash: mHash,
    dataset: data.dataset,
    dataSource,
    dataRoot,
    testSplit,
    ...(valSplit !== null ? { thresholdSplit: valSplit } : {}),
    prompts: usedSet,
    config: {
      command: 'eval',
      checkpoints,
      checkpointHashes: hashes,
      dataset: data.dataset,
      dataSource,
      adapterOptions: opts.adapterOptions,
      split: testSplit,
      valSplit,
      prompts: prompts.name,
      promptHash: promptSetHash(usedSet),
      temperature: opts.temperature ?? 1,
      temperatures,
      geometry: opts.geometry ?? 'pad',
      normalize: opts.normalize ?? 'clip',
      bootstrap: opts.bootstrap ?? 1000,
      seed: opts.seed ?? 0,
      thresholdCriterion: criterion,
      maxSamples: opts.maxSamples ?? null,
      images: Object.fromEntries(Object.entries(splitsOut).map(([k, v]) => [k, { scored: v.images, skipped: v.skipped.length, skippedExamples: v.skipped.slice(0, 50) }])),
      unmatchedLabels: aligned.unmatched,
      calibrate: opts.calibrate ?? null,
      subgroups: opts.subgroups ?? null,
      ...(checkpoints.length > 1 ? { ensembleAverage: average } : {}),
      ...(opts.retrieval ? { retrieval: opts.retrieval === true ? {} : opts.retrieval } : {}),
    },
  }, [...sections, ...(retrieval ? [retrievalSection(retrieval)] : []), ...(ensemble ? [ensembleSection(ensemble)] : [])]);
  files.reportJson = written.json;
  files.reportHtml = written.html;
  return {
    result,
    files: files as EvaluateFiles,
    checkpointHashes: hashes,
    manifestHash: mHash,
    labels,
    unmatched: aligned.unmatched,
    splits: splitsOut,
    ...(thresholds ? { thresholds } : {}),
    calibration: cal.report,
    ...(subgroups ? { subgroups } : {}),
    ...(retrieval ? { retrieval } : {}),
    ...(ensemble ? { ensemble } : {}),
  };
}
