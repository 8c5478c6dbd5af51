/**
 * The one record every dataset adapter produces. Adapters read official layouts and emit `Sample`s; the
 * image pipeline, loader, shards and evaluation only ever see this shape.
 */

/** The 14 CheXpert observations in the official CheXpert `train.csv` column order. */
export const CHEXPERT_LABELS = [
  'No Finding',
  'Enlarged Cardiomediastinum',
  'Cardiomegaly',
  'Lung Opacity',
  'Lung Lesion',
  'Edema',
  'Consolidation',
  'Pneumonia',
  'Atelectasis',
  'Pneumothorax',
  'Pleural Effusion',
  'Pleural Other',
  'Fracture',
  'Support Devices',
] as const;

/** One of the 14 CheXpert label names. */
export type ChexpertLabel = (typeof CHEXPERT_LABELS)[number];

/** The same 14 names in the column order of MIMIC-CXR-JPG's `mimic-cxr-2.0.0-chexpert.csv` (alphabetical). */
export const MIMIC_CHEXPERT_COLUMNS: readonly ChexpertLabel[] = [...CHEXPERT_LABELS].sort();

/**
 * A label value: 1 positive, 0 negative, -1 uncertain, NaN missing (not mentioned). Missing is NaN rather
 * than absent so that label vectors stay dense and aligned with the manifest's label names.
 */
export type LabelValue = number;

/** Official split names (MIMIC-CXR spells validation `validate`). */
export type Split = 'train' | 'validate' | 'test';

/** One image with its study's report and labels. */
export interface Sample {
  /** Unique id within the dataset (MIMIC: dicom_id; CheXpert: the image path). */
  id: string;
  /** Image file path, relative to the dataset root (or absolute). Empty for in-memory samples. */
  imagePath: string;
  /** Raw report text of the study, when the dataset has reports (never parsed here). */
  report?: string;
  /** Label name → {@link LabelValue}. Names are the manifest's `labelNames`. */
  labels: Record<string, LabelValue>;
  /** Patient id; splits and bootstrap resampling group by it. */
  patientId: string;
  /** Study id; several images can share one study (and its report). */
  studyId: string;
  /** View position as released (PA, AP, LATERAL, LL, ...), upper-case; undefined when unknown. */
  view?: string;
  /** Official split when the dataset defines one. */
  split?: Split;
  /** Dataset-specific extras (e.g. age, sex, reader id). */
  meta?: Record<string, unknown>;
}

/** Normalises a split name from the official files (valid/val/validation → validate). */
export function normalizeSplit(s: string | undefined): Split | undefined {
  if (s === undefined) return undefined;
  const v = s.trim().toLowerCase();
  if (v === 'train' || v === 'training') return 'train';
  if (v === 'validate' || v === 'valid' || v === 'val' || v === 'validation') return 'validate';
  if (v === 'test' || v === 'testing') return 'test';
  return undefined;
}

/** Parses a label cell: '' → NaN, '1'/'1.0' → 1, '0' → 0, '-1' → -1; anything else → undefined (bad cell). */
export function parseLabelCell(cell: string | undefined): LabelValue | undefined {
  if (cell === undefined) return NaN;
  const t = cell.trim();
  if (t === '' || t.toLowerCase() === 'nan') return NaN;
  const v = Number(t);
  if (v === 1 || v === 0 || v === -1) return v;
  return undefined;
}

/** Formats a label value for an official-style CSV ('1.0', '0.0', '-1.0', ''). */
export function formatLabelCell(v: LabelValue): string {
  return Number.isNaN(v) ? '' : v.toFixed(1);
}
