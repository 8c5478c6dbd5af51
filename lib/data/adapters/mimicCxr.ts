/**
 * MIMIC-CXR-JPG 2.x (+ MIMIC-CXR reports). Layout read:
 * - `mimic-cxr-2.0.0-split.csv[.gz]`: dicom_id, study_id, subject_id, split (train/validate/test);
 * - `mimic-cxr-2.0.0-metadata.csv[.gz]`: dicom_id, subject_id, study_id, ViewPosition, ...;
 * - `mimic-cxr-2.0.0-chexpert.csv[.gz]` or `-negbio.csv[.gz]`: subject_id, study_id, 14 labels (1.0 / 0.0 / -1.0 / empty);
 * - images `files/pXX/pNNNNNNNN/sNNNNNNNN/<dicom_id>.jpg`;
 * - reports `files/pXX/pNNNNNNNN/sNNNNNNNN.txt` under the root or under `reportsRoot` (the reports
 *   release unpacks to `mimic-cxr-reports/files/...`);
 * - optionally MIMIC-IV's `patients.csv[.gz]` (subject_id, gender, anchor_age), in the root or its `hosp/`
 *   folder, or at `patientsFile`: each sample's `meta.sex` (F/M) and `meta.age` (anchor_age: the patient's
 *   age in their anchor year, MIMIC-IV's de-identified age; not corrected per study) for subgroup analysis.
 */
import fs from 'node:fs';
import path from 'node:path';
import { CxrError } from '../../errors';
import { firstExisting, readTable } from '../csv';
import type { Table } from '../csv';
import { IssueLog, dedupeById } from '../manifest';
import type { Manifest } from '../manifest';
import { CHEXPERT_LABELS, normalizeSplit, parseLabelCell } from '../sample';
import type { Sample, Split } from '../sample';
import type { BaseAdapterOptions, DatasetAdapter } from './types';

/** Options of the MIMIC-CXR-JPG adapter. */
export interface MimicCxrOptions extends BaseAdapterOptions {
  /** Where the report .txt tree lives when not under `root` (e.g. `<x>/mimic-cxr-reports`). */
  reportsRoot?: string;
  /** Label file: 'chexpert' (default) or 'negbio'. */
  labeler?: 'chexpert' | 'negbio';
  /** Keep only these view positions (e.g. ['PA', 'AP'] for frontal). Default: all. */
  views?: string[];
  /** Keep only these splits. Default: all. */
  splits?: Split[];
  /** Read the report texts. Default true. */
  reports?: boolean;
  /** MIMIC-IV `patients.csv[.gz]` for sex and age. Default: `patients.csv[.gz]` in the root or in `root/hosp`, when present. */
  patientsFile?: string;
}

function need(file: string | undefined, what: string, root: string): string {
  if (!file) throw new CxrError('E_IO', `MIMIC-CXR-JPG: ${what} not found under ${root}`, { root });
  return file;
}

function checkColumns(t: Table, cols: string[]): void {
  const missing = cols.filter((c) => !t.header.includes(c));
  if (missing.length) throw new CxrError('E_PARSE', `${t.file}: missing column(s) ${missing.join(', ')}`, { path: t.file });
}

/** Relative image path of one MIMIC-CXR-JPG image. */
export function mimicImageRel(subjectId: string, studyId: string, dicomId: string): string {
  return `files/p${subjectId.slice(0, 2)}/p${subjectId}/s${studyId}/${dicomId}.jpg`;
}

/** The MIMIC-CXR-JPG adapter. */
export const mimicCxrAdapter: DatasetAdapter<MimicCxrOptions> = {
  name: 'mimic-cxr',
  description: 'MIMIC-CXR-JPG 2.x (split, metadata, CheXpert/NegBio labels) with MIMIC-CXR report .txt files',
  async load(opts: MimicCxrOptions): Promise<Manifest> {
    const root = path.resolve(opts.root);
    const log = new IssueLog(opts.maxExamples ?? 10);
    const pre = (n: string) => [path.join(root, `mimic-cxr-2.0.0-${n}.csv`), path.join(root, `mimic-cxr-2.0.0-${n}.csv.gz`)];
    const splitT = readTable(need(firstExisting(pre('split')), 'mimic-cxr-2.0.0-split.csv[.gz]', root));
    checkColumns(splitT, ['dicom_id', 'study_id', 'subject_id', 'split']);
    const metaFile = firstExisting(pre('metadata'));
    const labeler = opts.labeler ?? 'chexpert';
    const labelT = readTable(need(firstExisting(pre(labeler)), `mimic-cxr-2.0.0-${labeler}.csv[.gz]`, root));
    checkColumns(labelT, ['subject_id', 'study_id']);
    const labelCols = CHEXPERT_LABELS.filter((l) => labelT.header.includes(l));
    if (labelCols.length === 0) throw new CxrError('E_PARSE', `${labelT.file}: none of the 14 CheXpert label columns found`);

    const views = new Map<string, string>();
    if (metaFile) {
      const metaT = readTable(metaFile);
      checkColumns(metaT, ['dicom_id', 'ViewPosition']);
      for (const r of metaT.rows) views.set(r.dicom_id, r.ViewPosition.trim().toUpperCase());
    }

    // Demographics (optional): MIMIC-IV's patients table.
    const demo = new Map<string, { sex?: string; age?: number }>();
    const patientsFile = opts.patientsFile
      ? need(fs.existsSync(opts.patientsFile) ? path.resolve(opts.patientsFile) : undefined, `patients file ${opts.patientsFile}`, root)
      : firstExisting(['patients.csv', 'patients.csv.gz', 'hosp/patients.csv', 'hosp/patients.csv.gz'].map((f) => path.join(root, f)));
    if (patientsFile) {
      const pt = readTable(patientsFile);
      checkColumns(pt, ['subject_id', 'gender', 'anchor_age']);
      for (const r of pt.rows) {
        const age = Number(r.anchor_age);
        demo.set((r.subject_id ?? '').trim(), { sex: (r.gender ?? '').trim() || undefined, age: (r.anchor_age ?? '').trim() !== '' && Number.isFinite(age) ? age : undefined });
      }
    }

    const labelsByStudy = new Map<string, Record<string, number>>();
    labelT.rows.forEach((r, i) => {
      const where = `${path.basename(labelT.file)}:${i + 2}`;
      const labels: Record<string, number> = {};
      for (const l of CHEXPERT_LABELS) {
        if (!labelCols.includes(l)) {
          labels[l] = NaN;
          continue;
        }
        const v = parseLabelCell(r[l]);
        if (v === undefined) {
          log.add('bad-label', where, `label '${l}' is '${r[l]}', not 1/0/-1/empty`);
          labels[l] = NaN;
        } else labels[l] = v;
      }
      if (!/^\d+$/.test(r.study_id ?? '')) {
        log.add('bad-row', where, `study_id '${r.study_id}' is not a number`);
        return;
      }
      labelsByStudy.set(r.study_id, labels);
    });

    const viewSet = opts.views ? new Set(opts.views.map((v) => v.toUpperCase())) : undefined;
    const splitSet = opts.splits ? new Set(opts.splits) : undefined;
    const wantReports = opts.reports ?? true;
    const checkFiles = opts.checkFiles ?? true;
    const reportCache = new Map<string, string | null>();
    const reportRoots = [root, ...(opts.reportsRoot ? [path.resolve(opts.reportsRoot)] : [])];
    const samples: Sample[] = [];
    splitT.rows.forEach((r, i) => {
      const where = `${path.basename(splitT.file)}:${i + 2}`;
      const { dicom_id: dicomId, study_id: studyId, subject_id: subjectId } = r;
      if (!/^[0-9a-f-]+$/i.test(dicomId ?? '') || !/^\d+$/.test(studyId ?? '') || !/^\d+$/.test(subjectId ?? '')) {
        log.add('bad-row', where, `bad ids (dicom_id='${dicomId}', study_id='${studyId}', subject_id='${subjectId}')`);
        return;
      }
      const split = normalizeSplit(r.split);
      if (!split) {
        log.add('bad-row', where, `unknown split '${r.split}'`);
        return;
      }
      if (splitSet && !splitSet.has(split)) return;
      const view = views.get(dicomId) || undefined;
      if (viewSet && !(view && viewSet.has(view))) return;
      const rel = mimicImageRel(subjectId, studyId, dicomId);
      if (checkFiles && !fs.existsSync(path.join(root, rel))) {
        log.add('missing-file', where, `image ${rel} does not exist`);
        return;
      }
      let labels = labelsByStudy.get(studyId);
      if (!labels) {
        log.add('missing-labels', where, `no ${labeler} label row for study ${studyId}`);
        labels = Object.fromEntries(CHEXPERT_LABELS.map((l) => [l, NaN]));
      }
      let report: string | undefined;
      if (wantReports) {
        if (!reportCache.has(studyId)) {
          const relTxt = `files/p${subjectId.slice(0, 2)}/p${subjectId}/s${studyId}.txt`;
          let text: string | null = null;
          for (const rr of reportRoots) {
            try {
              text = fs.readFileSync(path.join(rr, relTxt), 'utf8');
              break;
            } catch {
              /* try the next root */
            }
          }
          if (text === null) log.add('missing-report', where, `report ${relTxt} not found`);
          reportCache.set(studyId, text);
        }
        report = reportCache.get(studyId) ?? undefined;
      }
      const d = demo.get(subjectId);
      samples.push({ id: dicomId, imagePath: rel, report, labels: { ...labels }, patientId: subjectId, studyId, view, split, ...(d ? { meta: { sex: d.sex, age: d.age } } : {}) });
    });
    const deduped = dedupeById(samples, log, path.basename(splitT.file));
    log.throwIfStrict(opts.strict, `MIMIC-CXR-JPG at ${root}`);
    return { dataset: 'mimic-cxr', root, labelNames: [...CHEXPERT_LABELS], samples: deduped, issues: log.summary() };
  },
};
