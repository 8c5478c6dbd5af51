/**
 * Batch zero-shot inference on image files: `cxr-train predict` as a function. Text embeddings are
 * computed once per (checkpoint, prompt set); images are decoded by the DataLoader (worker threads,
 * prefetching) while the model encodes the previous batch, so decoding and I/O hide behind the model.
 */
import fs from 'node:fs';
import path from 'node:path';
import { CxrError } from '../errors';
import type { SplitSource } from '../data/sources';
import { scoreSplit, type ScoredSplit } from '../eval/scoreSplit';
import type { Sample } from '../data/sample';
import { readCsvTable, formatCsv } from '../util/csv';
import { writeFileAtomic } from '../util/atomic';
import type { ZeroShotClassifier } from '../eval/zeroShot';
import { readThresholds } from '../eval/thresholds';
import type { ThresholdsFile } from '../eval/thresholds';
import { ZeroShotModel } from '../infer/zeroShotModel';
import type { ZeroShotModelOptions } from '../infer/zeroShotModel';
import { nothingUseful } from './outcome';
import { calibrateProbability, calibrationInfo, calibrationWarnings, resolveCalibration } from '../infer/calibration';
import type { CalibrationInfo } from '../infer/calibration';
import type { CalibrationFile } from '../eval/calibrationMap';
import { resolveSaliencyLabels } from '../infer/saliency';
import { writeHeatmaps, type HeatmapResult } from './heatmaps';

/** File extensions `--dir` picks up (files without an extension are tried too: DICOM often has none). */
export const IMAGE_EXTENSIONS = ['.png', '.jpg', '.jpeg', '.dcm', '.dicom'];

/** An image that could not be scored. */
export interface SkippedImage {
  /** Row id (the path as given, relative to `--dir`, or the CSV's id). */
  id: string;
  /** The file. */
  path: string;
  /** Why (error code and message). */
  reason: string;
}

/** Progress of a classification pass. */
export type ProgressFn = (done: number, total: number) => void;

/** Options of {@link classifySource}. */
export interface ClassifySourceOptions {
  /** Decoder worker threads (0: in process). Default: the DataLoader default. */
  workers?: number;
  /** Called after every batch with images processed (scored or skipped) so far. */
  onProgress?: ProgressFn;
  /** Also return the image embeddings (retrieval, ensembles of logits). Default false. */
  keepEmbeddings?: boolean;
}

/**
 * Scores every sample of a source (files or in-memory pixels) with a classifier of `zm`, in source order,
 * through {@link scoreSplit} with the model's batch size and image options; model calls are queued on `zm`.
 */
export function classifySource(zm: ZeroShotModel, clf: ZeroShotClassifier, source: SplitSource, opts: ClassifySourceOptions = {}): Promise<ScoredSplit> {
  return scoreSplit(clf, source, { batchSize: zm.batchSize, image: zm.image, exclusive: (f) => zm.exclusive(f), ...opts });
}

/** Which images to score: exactly one of `images`, `dir`, `csv`. */
export interface PredictInputs {
  /** Image files; their ids are the paths as given. */
  images?: string[];
  /** A folder, searched recursively for PNG/JPEG/DICOM files; ids are paths relative to it. */
  dir?: string;
  /** A CSV (or .csv.gz) listing images in `imageCol`; relative paths are relative to the CSV's folder. */
  csv?: string;
  /** Image path column of `csv`. */
  imageCol?: string;
  /** Id column of `csv`. Default: the image column's value. */
  idCol?: string;
}

/** Options of {@link predict}. */
export interface PredictOptions extends PredictInputs, ZeroShotModelOptions {
  /** Checkpoint to load (any format `loadPretrained` reads); or give `model`. */
  checkpoint?: string;
  /** An already loaded model (not disposed by `predict`). */
  model?: ZeroShotModel;
  /** Thresholds JSON written by `cxr-train eval`, or its content: adds 0/1 calls. */
  thresholds?: string | ThresholdsFile;
  /**
   * Calibration maps (calibration.json of `cxr-train eval --calibrate`, or its content), or `none`. Default: the
   * calibration.json beside a `thresholds` path, when it exists. Probabilities are then calibrated; calls
   * still compare the uncalibrated probability with the threshold (the maps are increasing: the same calls).
   */
  calibration?: string | CalibrationFile;
  /** Write the predictions CSV here. */
  out?: string;
  /**
   * Write a saliency overlay PNG per scored image and label into this folder (with `heatmaps.json` and
   * `index.html`): Grad-CAM of each label's zero-shot score, an explanation aid, not a localisation.
   */
  heatmaps?: string;
  /** Labels of the heatmaps (default: every label of the prompt set); an unknown name is E_CONFIG. */
  heatmapLabels?: string[];
  /** Progress of the heatmap pass (images done, total). */
  onHeatmapProgress?: ProgressFn;
  /** Decoder worker threads. Default: the DataLoader default (2). */
  workers?: number;
  /** Progress callback (done, total). */
  onProgress?: ProgressFn;
}

/** One scored image. */
export interface PredictionRow {
  id: string;
  path: string;
  /** Label → probability (calibrated when a calibration is in use). */
  probabilities: Record<string, number>;
  /** Label → the model's probability before calibration (only when a calibration is in use). */
  uncalibrated?: Record<string, number>;
  /** Label → 0/1 at the thresholds, for labels that have one. */
  calls?: Record<string, 0 | 1>;
}

/** Result of {@link predict}. */
export interface PredictResult {
  /** Label names, in column order. */
  labels: string[];
  rows: PredictionRow[];
  /** Images that could not be scored (missing, unreadable, corrupt, not an image), with reasons. */
  skipped: SkippedImage[];
  /** Files of `dir` passed over because their extension is not an image's (reports, CSVs...). */
  ignored: string[];
  /** `total` = images tried (predicted + skipped); ignored files are not images and not in it. */
  counts: { total: number; predicted: number; skipped: number; ignored: number };
  checkpointHash: string;
  prompts: string;
  temperature: number;
  /** Thresholds applied, when given. */
  thresholds?: Record<string, number>;
  /** The calibration applied to the probabilities, when one is in use. */
  calibration?: CalibrationInfo;
  /** Things to know (e.g. thresholds fitted for another checkpoint). */
  warnings: string[];
  /**
   * Why nothing useful came out (every image skipped), or null; the CLI then exits 1 ({@link nothingUseful})
   * and no CSV is written.
   */
  nothingUseful: string | null;
  /** Wall time of the image pass, ms, and its throughput. */
  ms: number;
  imagesPerSec: number;
  /** The CSV written, when `out` was given. */
  out?: string;
  /** The heatmaps written, when `heatmaps` was given. */
  heatmaps?: HeatmapResult;
}

/** Column name of a label's 0/1 call in the predictions CSV. */
export const callColumn = (label: string): string => `${label} (call)`;

function walk(dir: string, base: string, out: Array<{ rel: string; abs: string }>): void {
  let entries: fs.Dirent[];
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch (e) {
    throw new CxrError('E_IO', `cannot read folder ${dir}: ${(e as Error).message}`, { path: dir });
  }
  for (const e of entries) {
    if (e.name.startsWith('.')) continue;
    const abs = path.join(dir, e.name);
    if (e.isDirectory()) walk(abs, base, out);
    else if (e.isFile()) out.push({ rel: path.relative(base, abs).split(path.sep).join('/'), abs });
  }
}

/**
 * The images to score as (id, absolute path) pairs in a stable order, rows that cannot be images (an empty
 * CSV cell), and the files of a folder that are not images by extension (ignored).
 * @throws CxrError E_CONFIG (none or several inputs, missing --image-col), E_IO, E_DATA (empty input, bad CSV column).
 */
export function listPredictInputs(inp: PredictInputs): { items: Array<{ id: string; path: string }>; passed: SkippedImage[]; ignored: string[] } {
  const given = [inp.images !== undefined, inp.dir !== undefined, inp.csv !== undefined].filter(Boolean).length;
  if (given !== 1) throw new CxrError('E_CONFIG', 'give exactly one of --images, --dir, --csv');
  const items: Array<{ id: string; path: string }> = [];
  const passed: SkippedImage[] = [];
  const ignored: string[] = [];
  if (inp.images) {
    for (const p of inp.images) items.push({ id: p, path: path.resolve(p) });
  } else if (inp.dir !== undefined) {
    if (!fs.existsSync(inp.dir) || !fs.statSync(inp.dir).isDirectory()) throw new CxrError('E_IO', `--dir ${inp.dir} is not a folder`, { path: inp.dir });
    const files: Array<{ rel: string; abs: string }> = [];
    const root = path.resolve(inp.dir);
    walk(root, root, files);
    files.sort((a, b) => (a.rel < b.rel ? -1 : a.rel > b.rel ? 1 : 0));
    for (const f of files) {
      const ext = path.extname(f.rel).toLowerCase();
      if (ext === '' || IMAGE_EXTENSIONS.includes(ext)) items.push({ id: f.rel, path: f.abs });
      else ignored.push(f.rel);
    }
  } else {
    if (!inp.imageCol) throw new CxrError('E_CONFIG', '--csv needs --image-col (the column holding image paths)');
    const t = readCsvTable(inp.csv!);
    const ci = t.header.indexOf(inp.imageCol);
    if (ci < 0) throw new CxrError('E_DATA', `${inp.csv}: no column ${JSON.stringify(inp.imageCol)} (columns: ${t.header.join(', ')})`);
    const ii = inp.idCol !== undefined ? t.header.indexOf(inp.idCol) : ci;
    if (ii < 0) throw new CxrError('E_DATA', `${inp.csv}: no column ${JSON.stringify(inp.idCol)} (columns: ${t.header.join(', ')})`);
    const base = path.dirname(path.resolve(inp.csv!));
    const seen = new Set<string>();
    t.rows.forEach((r, i) => {
      const p = (r[ci] ?? '').trim();
      const id = (r[ii] ?? '').trim();
      if (p === '' || id === '') {
        passed.push({ id: id || `row ${i + 1}`, path: p, reason: `row ${i + 1}: empty ${p === '' ? 'image path' : 'id'}` });
        return;
      }
      if (seen.has(id)) throw new CxrError('E_DATA', `${inp.csv}: id ${JSON.stringify(id)} appears twice (row ${i + 1})`);
      seen.add(id);
      items.push({ id, path: path.resolve(base, p) });
    });
  }
  if (items.length === 0) {
    const why = passed.length ? ` (${passed.length} row(s) passed over: ${passed[0].reason})` : ignored.length ? ` (${ignored.length} file(s) without an image extension: ${IMAGE_EXTENSIONS.join(', ')} are read)` : '';
    throw new CxrError('E_DATA', `no image to score${why}`);
  }
  return { items, passed, ignored };
}

/**
 * Zero-shot probabilities per pathology for every image: `cxr-train predict` as a function.
 *
 * ```ts
 * const r = await predict({ checkpoint: 'runs/x/model', dir: 'xrays/', out: 'preds.csv' });
 * console.log(r.rows[0].probabilities['Pleural Effusion'], r.skipped);
 * ```
 * @throws CxrError E_CONFIG (inputs), E_IO, E_CHECKPOINT/E_TOKENIZER (loading), E_PARSE (thresholds file).
 */
export async function predict(opts: PredictOptions): Promise<PredictResult> {
  if (!opts.model && !opts.checkpoint) throw new CxrError('E_CONFIG', 'predict needs a checkpoint (or a loaded model)');
  const { items, passed, ignored } = listPredictInputs(opts);
  const th = typeof opts.thresholds === 'string' ? readThresholds(opts.thresholds) : opts.thresholds;
  const cal = resolveCalibration(opts.calibration, opts.thresholds);
  const zm = opts.model ?? (await ZeroShotModel.load(opts.checkpoint!, opts));
  try {
    const labels = zm.labels;
    // Checked before any image is scored: a typo must not cost a whole pass.
    const heatmapLabels = opts.heatmaps !== undefined ? resolveSaliencyLabels(labels, opts.heatmapLabels) : [];
    if (opts.heatmaps === undefined && opts.heatmapLabels?.length) throw new CxrError('E_CONFIG', '--labels chooses the heatmaps\' labels: give --heatmaps DIR too');
    const warnings: string[] = [];
    let thresholds: Record<string, number> | undefined;
    if (th) {
      thresholds = {};
      for (const l of labels) if (th.labels[l] !== undefined) thresholds[l] = th.labels[l];
      const extra = Object.keys(th.labels).filter((l) => !labels.includes(l));
      if (extra.length) warnings.push(`thresholds for labels the prompt set does not have were ignored: ${extra.join(', ')}`);
      const none = labels.filter((l) => thresholds![l] === undefined);
      if (none.length) warnings.push(`no threshold (no call column) for: ${none.join(', ')}`);
      if (th.checkpointHashes && !th.checkpointHashes.includes(zm.checkpointHash)) warnings.push('the thresholds were fitted for another checkpoint: calls may not be calibrated for this one');
      if (th.prompts && th.prompts.hash !== zm.classifier.promptHash) warnings.push(`the thresholds were fitted with another prompt set (${th.prompts.name}): calls may not be calibrated`);
    }
    if (cal) warnings.push(...calibrationWarnings(cal, { checkpointHash: zm.checkpointHash, promptHash: zm.classifier.promptHash, labels, temperature: opts.temperature ?? 1 }));
    const samples: Sample[] = items.map((it) => ({ id: it.id, imagePath: it.path, labels: {}, patientId: it.id, studyId: it.id }));
    const total = items.length + passed.length;
    const t0 = Date.now();
    const res = await classifySource(zm, zm.classifier, { root: path.parse(process.cwd()).root, samples }, {
      ...(opts.workers !== undefined ? { workers: opts.workers } : {}),
      ...(opts.onProgress ? { onProgress: (d: number) => opts.onProgress!(d + passed.length, total) } : {}),
    });
    const ms = Date.now() - t0;
    const L = labels.length;
    const rows: PredictionRow[] = res.indices.map((idx, r) => {
      const probabilities: Record<string, number> = {};
      labels.forEach((l, j) => (probabilities[l] = res.probs[r * L + j]));
      const row: PredictionRow = { id: items[idx].id, path: items[idx].path, probabilities };
      if (thresholds) {
        row.calls = {};
        for (const [l, t] of Object.entries(thresholds)) row.calls[l] = probabilities[l] >= t ? 1 : 0;
      }
      if (cal) {
        row.uncalibrated = { ...probabilities };
        for (const l of labels) probabilities[l] = calibrateProbability(cal, l, probabilities[l]);
      }
      return row;
    });
    const skipped: SkippedImage[] = [...passed, ...res.failures.map((f) => ({ id: items[f.index].id, path: items[f.index].path, reason: f.reason }))];
    const result: PredictResult = {
      labels,
      rows,
      skipped,
      ignored,
      counts: { total, predicted: rows.length, skipped: skipped.length, ignored: ignored.length },
      checkpointHash: zm.checkpointHash,
      prompts: zm.prompts.name,
      temperature: zm.temperature,
      ...(thresholds ? { thresholds } : {}),
      ...(cal ? { calibration: calibrationInfo(cal, labels) } : {}),
      warnings,
      nothingUseful: nothingUseful(rows.length, total, 'images'),
      ms,
      imagesPerSec: ms > 0 ? (1000 * rows.length) / ms : 0,
    };
    if (opts.out && result.nothingUseful === null) {
      writeFileAtomic(opts.out, formatPredictRows(result));
      result.out = opts.out;
    }
    if (opts.heatmaps !== undefined && result.nothingUseful === null) {
      result.heatmaps = await writeHeatmaps(zm, rows.map((r) => ({ id: r.id, path: r.path })), {
        dir: opts.heatmaps,
        labels: heatmapLabels,
        ...(opts.onHeatmapProgress ? { onProgress: opts.onHeatmapProgress } : {}),
      });
    }
    return result;
  } finally {
    if (!opts.model) zm.dispose();
  }
}

/**
 * The predictions CSV: `id`, one probability column per label (the format `cxr-train score --pred` reads),
 * then one `LABEL (call)` 0/1 column per label with a threshold.
 */
export function formatPredictRows(r: Pick<PredictResult, 'labels' | 'rows' | 'thresholds'>): string {
  const callLabels = r.thresholds ? r.labels.filter((l) => r.thresholds![l] !== undefined) : [];
  const out: Array<Array<string | number>> = [['id', ...r.labels, ...callLabels.map(callColumn)]];
  for (const row of r.rows) out.push([row.id, ...r.labels.map((l) => row.probabilities[l]), ...callLabels.map((l) => row.calls![l])]);
  return formatCsv(out);
}
