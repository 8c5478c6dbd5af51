/**
 * Synthetic chest X-ray dataset: procedural radiographs with findings, CheXpert-style labels and
 * MIMIC-style reports, written in the MIMIC-CXR-JPG layout (so the real adapter reads it) or returned in
 * memory. It is the embedded default dataset for demos, tests and the ablation benchmark.
 */
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import sharp from 'sharp';
import { CxrError } from '../../errors';
import { Rng, hashSeed } from '../../util/rng';
import { writeFileAtomic } from '../../util/atomic';
import type { Sample, Split } from '../sample';
import { CHEXPERT_LABELS, MIMIC_CHEXPERT_COLUMNS, formatLabelCell } from '../sample';
import { sampleCase, stateToLabel } from './findings';
import type { CaseSpec, PrevalenceOptions } from './findings';
import { renderCase } from './phantom';
import type { FindingRegion, RenderStyle } from './phantom';
import { writeReport } from './report';

export type { CaseSpec, FindingState, PrevalenceOptions } from './findings';
export type { FindingRegion, RegionBox, RenderStyle } from './phantom';

/** Distribution-shift presets: lower contrast, more noise and blur, over-exposure, larger hearts. */
export type ShiftPreset = 'none' | 'mild' | 'strong';

/** Options of {@link generateSynthetic}. */
export interface SyntheticOptions {
  /** Number of images (one frontal image per study). */
  n: number;
  /** Seed; the same seed gives bit-identical output. Default 0. */
  seed?: number;
  /** Image side in pixels (square). Default 128. */
  size?: number;
  /** Shift preset applied to the splits in `shiftSplits`. Default 'none'. */
  shift?: ShiftPreset;
  /** Splits rendered with the shift preset. Default ['test']. */
  shiftSplits?: Split[];
  /** Fractions of patients in train / validate / test. Default [0.8, 0.1, 0.1]. */
  splitFractions?: [number, number, number];
  /** When set, write the MIMIC-CXR-JPG layout here. */
  outDir?: string;
  /** Keep the Float32 pixels in the returned samples. Default: true without outDir, false with it. */
  keepImages?: boolean;
  /** JPEG quality when writing. Default 92. */
  jpegQuality?: number;
  /** Also write the CSVs gzip-compressed (`.csv.gz`, as in the real release) instead of plain `.csv`. Default false. */
  gzip?: boolean;
  /**
   * Strength of every finding in the picture (default 1). Lower values (e.g. 0.5) make findings subtler:
   * smaller hearts and effusions, fainter opacities; a harder task for ablations. The labels and reports
   * do not change.
   */
  findingStrength?: number;
  /** Render pictures (default true). `false` draws labels and reports only, for fast statistics. */
  render?: boolean;
  /** Prevalence knobs. */
  prevalence?: PrevalenceOptions;
  /** Called after every image with (done, total). */
  onProgress?: (done: number, total: number) => void;
}

/** A synthetic sample: a {@link Sample} plus, optionally, its pixels and the spec it was drawn from. */
export interface SyntheticSample extends Sample {
  /** size×size grayscale in [0, 1], row-major; present when `keepImages`. */
  image?: Float32Array;
  width: number;
  height: number;
  /** The ground truth the picture and report were derived from. */
  spec: CaseSpec;
  /** Whether the shift preset was applied to this image. */
  shifted: boolean;
  /** Where each localised finding was drawn (rendered samples only; see {@link FindingRegion}). */
  regions?: FindingRegion[];
}

/** Result of {@link generateSynthetic}. */
export interface SyntheticDataset {
  samples: SyntheticSample[];
  labelNames: string[];
  size: number;
  seed: number;
  /** Where files were written (when outDir was given). */
  outDir?: string;
}

const SPLITS: Split[] = ['train', 'validate', 'test'];

/** The acquisition style for one image. */
export function styleFor(rng: Rng, shift: ShiftPreset, size: number): RenderStyle {
  const s: RenderStyle = {
    contrast: rng.uniform(0.9, 1.1),
    gamma: rng.uniform(0.9, 1.1),
    noise: rng.uniform(0.012, 0.024),
    blurPx: 0,
    exposure: rng.uniform(-0.03, 0.03),
  };
  if (shift !== 'none') {
    const k = shift === 'strong' ? 1 : 0.5;
    s.contrast *= 1 - 0.22 * k;
    s.gamma *= 1 + 0.2 * k;
    s.noise = s.noise * (1 + 0.6 * k) + 0.012 * k;
    s.blurPx = shift === 'strong' && size >= 96 ? Math.max(1, Math.round(size / 128)) : 0;
    s.exposure += 0.06 * k;
  }
  return s;
}

function ctrShiftFor(shift: ShiftPreset): number {
  return shift === 'strong' ? 0.04 : shift === 'mild' ? 0.02 : 0;
}

function hex8(v: number): string {
  return (v >>> 0).toString(16).padStart(8, '0');
}

interface StudyPlan {
  subjectId: number;
  studyId: number;
  dicomId: string;
  split: Split;
  studyIndex: number;
}

/** Patients with 1-4 studies each, unique ids, patient-disjoint splits. */
function planStudies(n: number, seed: number, fractions: [number, number, number]): StudyPlan[] {
  const rng = new Rng(hashSeed(seed, 0x5eed));
  const subjects = new Set<number>();
  const studies = new Set<number>();
  const patients: { subjectId: number; nStudies: number }[] = [];
  let total = 0;
  while (total < n) {
    let id: number;
    do id = 10000000 + rng.int(9000000);
    while (subjects.has(id));
    subjects.add(id);
    const k = Math.min(n - total, 1 + rng.weighted([0.5, 0.25, 0.15, 0.1]));
    patients.push({ subjectId: id, nStudies: k });
    total += k;
  }
  // Patients, not images, are assigned to splits, in a seeded order, by cumulative image count.
  const order = rng.shuffle(patients.map((_, i) => i));
  const fsum = fractions[0] + fractions[1] + fractions[2];
  const splitOf = new Map<number, Split>();
  let cum = 0;
  for (const pi of order) {
    const pos = cum / n;
    const split: Split = pos < fractions[0] / fsum ? 'train' : pos < (fractions[0] + fractions[1]) / fsum ? 'validate' : 'test';
    splitOf.set(pi, split);
    cum += patients[pi].nStudies;
  }
  const plans: StudyPlan[] = [];
  patients.forEach((p, pi) => {
    for (let s = 0; s < p.nStudies; s++) {
      let sid: number;
      do sid = 50000000 + rng.int(9000000);
      while (studies.has(sid));
      studies.add(sid);
      const idx = plans.length;
      const dicomId = [1, 2, 3, 4, 5].map((k) => hex8(hashSeed(seed, idx, k))).join('-');
      plans.push({ subjectId: p.subjectId, studyId: sid, dicomId, split: splitOf.get(pi)!, studyIndex: s });
    }
  });
  return plans;
}

/** Relative image path in the MIMIC-CXR-JPG layout. */
export function mimicImagePath(subjectId: string | number, studyId: string | number, dicomId: string): string {
  const p = String(subjectId);
  return `files/p${p.slice(0, 2)}/p${p}/s${studyId}/${dicomId}.jpg`;
}

/** Relative report path in the MIMIC-CXR reports layout. */
export function mimicReportPath(subjectId: string | number, studyId: string | number): string {
  const p = String(subjectId);
  return `files/p${p.slice(0, 2)}/p${p}/s${studyId}.txt`;
}

/** Converts [0,1] floats to 8-bit grey with rounding. */
export function toUint8(img: Float32Array): Uint8Array {
  const out = new Uint8Array(img.length);
  for (let i = 0; i < img.length; i++) {
    const v = Math.round(img[i] * 255);
    out[i] = v < 0 ? 0 : v > 255 ? 255 : v;
  }
  return out;
}

/** Patient demographics of the synthetic data: sex (MIMIC-IV's `gender` spelling) and age in years. */
export interface SyntheticDemographics {
  sex: 'F' | 'M';
  age: number;
}

/**
 * Demographics of a synthetic patient, drawn from their own stream keyed on (seed, patient id): nothing else
 * reads that stream, so adding them changed no picture, label, report or id of any dataset. Sex is male with
 * probability 0.52 and age ~ N(62, 17) rounded and clamped to [18, 95] (roughly MIMIC-CXR's adults). They are
 * independent of the findings: subgroup gaps on synthetic data by sex or age are sampling noise only.
 */
export function syntheticDemographics(seed: number, subjectId: number): SyntheticDemographics {
  const rng = new Rng(hashSeed(seed, 0xde30, subjectId));
  const sex = rng.bernoulli(0.52) ? 'M' : 'F';
  const age = Math.min(95, Math.max(18, Math.round(rng.normal(62, 17))));
  return { sex, age };
}

/**
 * Draws one synthetic sample (picture, labels, report) without touching the disk; `index` is its
 * position in the dataset. Pure function of (options, plan, index).
 */
function makeSample(index: number, plan: StudyPlan, seed: number, size: number, shift: ShiftPreset, shiftSplits: Split[], prevalence: PrevalenceOptions | undefined, keepImage: boolean, render = true, findingStrength = 1): SyntheticSample {
  const shifted = shift !== 'none' && shiftSplits.includes(plan.split);
  const eff = shifted ? shift : 'none';
  const spec = sampleCase(new Rng(hashSeed(seed, 1, index)), { ctrShift: ctrShiftFor(eff), prevalence, strength: findingStrength });
  const renderRng = new Rng(hashSeed(seed, 2, index));
  const style = styleFor(renderRng, eff, size);
  const regions: FindingRegion[] = [];
  const image = render ? renderCase(spec, size, renderRng, style, regions) : undefined;
  const report = writeReport(spec, new Rng(hashSeed(seed, 3, index)));
  const labels: Record<string, number> = {};
  for (const l of CHEXPERT_LABELS) labels[l] = stateToLabel(spec.states[l]);
  return {
    id: plan.dicomId,
    imagePath: mimicImagePath(plan.subjectId, plan.studyId, plan.dicomId),
    report: report.text,
    labels,
    patientId: String(plan.subjectId),
    studyId: String(plan.studyId),
    view: spec.view,
    split: plan.split,
    image: keepImage && render ? image : undefined,
    width: size,
    height: size,
    spec,
    shifted,
    ...(render ? { regions } : {}),
    meta: { findingsSentences: report.findings, impressionSentences: report.impression, ...syntheticDemographics(seed, plan.subjectId) },
  };
}

function validate(o: SyntheticOptions): void {
  if (!Number.isInteger(o.n) || o.n < 1) throw new CxrError('E_CONFIG', `synthetic n must be a positive integer, got ${o.n}`);
  const size = o.size ?? 128;
  if (!Number.isInteger(size) || size < 16 || size > 4096) throw new CxrError('E_CONFIG', `synthetic size must be an integer in [16, 4096], got ${size}`);
  if (o.shift !== undefined && !['none', 'mild', 'strong'].includes(o.shift)) throw new CxrError('E_CONFIG', `unknown shift preset '${o.shift}' (none, mild, strong)`);
  if (o.seed !== undefined && !Number.isFinite(o.seed)) throw new CxrError('E_CONFIG', `synthetic seed must be a number`);
  if (o.findingStrength !== undefined && !(o.findingStrength > 0 && o.findingStrength <= 2)) throw new CxrError('E_CONFIG', `findingStrength must be in (0, 2], got ${o.findingStrength}`);
  // Checked before anything is written: a bad value must not leave a partial dataset behind.
  if (o.jpegQuality !== undefined && !(Number.isInteger(o.jpegQuality) && o.jpegQuality >= 1 && o.jpegQuality <= 100))
    throw new CxrError('E_CONFIG', `jpegQuality must be an integer in [1, 100], got ${o.jpegQuality}`);
  if (o.splitFractions !== undefined) {
    const f = o.splitFractions;
    // Fractions are normalised by their sum, so only each one's range and a positive sum matter.
    if (!Array.isArray(f) || f.length !== 3 || f.some((v) => typeof v !== 'number' || !(v >= 0 && v <= 1)) || !(f[0] + f[1] + f[2] > 0))
      throw new CxrError('E_CONFIG', `splitFractions must be three numbers in [0, 1] with a positive sum, got ${JSON.stringify(f)}`);
  }
}

/**
 * Generates samples in memory only (synchronous). Same content as {@link generateSynthetic} for the same
 * options, without files; images are kept unless `keepImages: false`.
 */
export function synthesizeSamples(opts: SyntheticOptions): SyntheticDataset {
  validate(opts);
  const seed = opts.seed ?? 0;
  const size = opts.size ?? 128;
  const plans = planStudies(opts.n, seed, opts.splitFractions ?? [0.8, 0.1, 0.1]);
  const keep = opts.keepImages ?? true;
  const samples = plans.map((p, i) => {
    const s = makeSample(i, p, seed, size, opts.shift ?? 'none', opts.shiftSplits ?? ['test'], opts.prevalence, keep, opts.render ?? true, opts.findingStrength ?? 1);
    opts.onProgress?.(i + 1, plans.length);
    return s;
  });
  return { samples, labelNames: [...CHEXPERT_LABELS], size, seed };
}

function csvCell(v: string): string {
  return /[",\n]/.test(v) ? `"${v.replace(/"/g, '""')}"` : v;
}

/**
 * Generates a synthetic dataset. With `outDir`, writes the MIMIC-CXR-JPG layout there:
 * `files/pXX/pNNNNNNNN/sNNNNNNNN/<dicom_id>.jpg`, the reports `files/pXX/pNNNNNNNN/sNNNNNNNN.txt`,
 * `mimic-cxr-2.0.0-split.csv`, `-metadata.csv`, `-chexpert.csv` and `-negbio.csv`, and `patients.csv` (MIMIC-IV's
 * demographics: subject_id, gender, anchor_age) (`.csv.gz` with `gzip`), plus `synthetic.json` describing the generator options. Without `outDir`, returns samples
 * with pixels in memory.
 */
export async function generateSynthetic(opts: SyntheticOptions): Promise<SyntheticDataset> {
  validate(opts);
  if (!opts.outDir) return synthesizeSamples(opts);
  const seed = opts.seed ?? 0;
  const size = opts.size ?? 128;
  const shift = opts.shift ?? 'none';
  const shiftSplits = opts.shiftSplits ?? ['test'];
  const outDir = path.resolve(opts.outDir);
  const keep = opts.keepImages ?? false;
  const quality = opts.jpegQuality ?? 92;
  try {
    fs.mkdirSync(outDir, { recursive: true });
  } catch (e) {
    throw new CxrError('E_IO', `cannot create ${outDir}: ${(e as Error).message}`);
  }
  const plans = planStudies(opts.n, seed, opts.splitFractions ?? [0.8, 0.1, 0.1]);
  const samples: SyntheticSample[] = [];
  const madeDirs = new Set<string>();
  const pending: Promise<void>[] = [];
  // Rendering is synchronous JS; JPEG encoding runs on libuv threads, so a few encodes in flight overlap
  // with drawing the next image.
  const maxInFlight = 4;
  for (let i = 0; i < plans.length; i++) {
    const s = makeSample(i, plans[i], seed, size, shift, shiftSplits, opts.prevalence, true, true, opts.findingStrength ?? 1);
    const img = s.image!;
    if (!keep) s.image = undefined;
    samples.push(s);
    const imgAbs = path.join(outDir, s.imagePath);
    const dir = path.dirname(imgAbs);
    if (!madeDirs.has(dir)) {
      fs.mkdirSync(dir, { recursive: true });
      madeDirs.add(dir);
    }
    fs.writeFileSync(path.join(outDir, mimicReportPath(s.patientId, s.studyId)), s.report!);
    const px = toUint8(img);
    pending.push(
      sharp(Buffer.from(px.buffer, px.byteOffset, px.byteLength), { raw: { width: size, height: size, channels: 1 } })
        .jpeg({ quality, chromaSubsampling: '4:4:4' })
        .toBuffer()
        .then((buf) => fs.promises.writeFile(imgAbs, buf)),
    );
    if (pending.length >= maxInFlight) await pending.shift();
    opts.onProgress?.(i + 1, plans.length);
  }
  await Promise.all(pending);

  const ext = opts.gzip ? '.csv.gz' : '.csv';
  const write = (name: string, rows: string[]) => {
    const text = rows.join('\n') + '\n';
    writeFileAtomic(path.join(outDir, name + ext), opts.gzip ? zlib.gzipSync(text) : text);
  };
  write('mimic-cxr-2.0.0-split', ['dicom_id,study_id,subject_id,split', ...samples.map((s) => `${s.id},${s.studyId},${s.patientId},${s.split}`)]);
  const baseDate = 21000101;
  write('mimic-cxr-2.0.0-metadata', [
    'dicom_id,subject_id,study_id,PerformedProcedureStepDescription,ViewPosition,Rows,Columns,StudyDate,StudyTime,ProcedureCodeSequence_CodeMeaning,ViewCodeSequence_CodeMeaning,PatientOrientationCodeSequence_CodeMeaning',
    ...samples.map((s, i) => {
      const desc = s.view === 'AP' ? 'CHEST (PORTABLE AP)' : 'CHEST (PA AND LAT)';
      const vc = s.view === 'AP' ? 'antero-posterior' : 'postero-anterior';
      const date = baseDate + 10000 * (hashSeed(seed, 7, i) % 80) + 100 * (1 + (hashSeed(seed, 8, i) % 12)) + (1 + (hashSeed(seed, 9, i) % 28));
      const secs = hashSeed(seed, 10, i) % 86400;
      const time = [Math.floor(secs / 3600), Math.floor(secs / 60) % 60, secs % 60].map((v) => String(v).padStart(2, '0')).join('') + '.000';
      return [s.id, s.patientId, s.studyId, csvCell(desc), s.view ?? '', String(size), String(size), String(date), time, csvCell(desc), vc, 'Erect'].join(',');
    }),
  ]);
  // One row per study (as in the release), in the official (alphabetical) column order.
  const labelRows = ['subject_id,study_id,' + MIMIC_CHEXPERT_COLUMNS.map(csvCell).join(','), ...samples.map((s) => `${s.patientId},${s.studyId},` + MIMIC_CHEXPERT_COLUMNS.map((l) => formatLabelCell(s.labels[l])).join(','))];
  write('mimic-cxr-2.0.0-chexpert', labelRows);
  write('mimic-cxr-2.0.0-negbio', labelRows);
  // Demographics as MIMIC-IV's hosp/patients table has them (subject_id, gender, anchor_age), one row per patient.
  const patientRows = new Map<string, string>();
  for (const s of samples) if (!patientRows.has(s.patientId)) patientRows.set(s.patientId, `${s.patientId},${s.meta!.sex},${s.meta!.age}`);
  write('patients', ['subject_id,gender,anchor_age', ...patientRows.values()]);
  writeFileAtomic(
    path.join(outDir, SYNTHETIC_REGIONS_FILE),
    JSON.stringify({ generator: 'cxr-train synthetic', version: 1, units: 'normalised image coordinates [x0, y0, x1, y1], x right, y down', size, images: Object.fromEntries(samples.map((s) => [s.id, s.regions ?? []])) }) + '\n',
  );
  writeFileAtomic(
    path.join(outDir, 'synthetic.json'),
    JSON.stringify({ generator: 'cxr-train synthetic', version: 1, n: opts.n, seed, size, shift, shiftSplits, splitFractions: opts.splitFractions ?? [0.8, 0.1, 0.1], jpegQuality: quality, prevalence: opts.prevalence ?? {}, findingStrength: opts.findingStrength ?? 1 }, null, 2) + '\n',
  );
  return { samples, labelNames: [...CHEXPERT_LABELS], size, seed, outDir };
}

/** Split names in official order. */
export const SYNTHETIC_SPLITS: readonly Split[] = SPLITS;

/** The file beside a written dataset that holds every image's finding regions, by image (dicom) id. */
export const SYNTHETIC_REGIONS_FILE = 'synthetic-regions.json';

/**
 * The finding regions of a dataset written by {@link generateSynthetic}, by image id.
 * @throws CxrError E_IO (no regions file: not a synthetic dataset, or written before regions were recorded), E_PARSE.
 */
export function readSyntheticRegions(dir: string): Map<string, FindingRegion[]> {
  const file = path.join(dir, SYNTHETIC_REGIONS_FILE);
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new CxrError('E_IO', `cannot read ${file}: ${(e as Error).message} (regions are written by the synthetic generator of this version)`, { path: file });
  }
  let doc: { images?: Record<string, FindingRegion[]> };
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw new CxrError('E_PARSE', `${file}: ${(e as Error).message}`, { path: file });
  }
  if (!doc || typeof doc.images !== 'object' || doc.images === null) throw new CxrError('E_PARSE', `${file}: no "images" object`, { path: file });
  return new Map(Object.entries(doc.images));
}

/**
 * Packs in-memory synthetic samples into a DataLoader memory source (one contiguous Float32Array), e.g.
 * `new DataLoader(toMemorySource(synthesizeSamples({ n: 2000, size: 64 })), {...})`.
 */
export function toMemorySource(ds: SyntheticDataset, split?: Split): { samples: SyntheticSample[]; pixels: Float32Array; width: number; height: number } {
  const samples = split ? ds.samples.filter((s) => s.split === split) : ds.samples;
  const plane = ds.size * ds.size;
  const pixels = new Float32Array(samples.length * plane);
  samples.forEach((s, i) => {
    if (!s.image) throw new CxrError('E_CONFIG', 'toMemorySource needs samples generated with keepImages (the default without outDir)');
    pixels.set(s.image, i * plane);
  });
  return { samples, pixels, width: ds.size, height: ds.size };
}
