/**
 * Generic table adapter for a hospital export or a hand-made index: a CSV (optionally .gz) or JSONL file
 * with named columns for the image path, report text, labels, patient, study, view and split.
 */
import fs from 'node:fs';
import path from 'node:path';
import { CxrError } from '../../errors';
import { logBadEncoding, readTable, readTextChecked } from '../csv';
import { IssueLog, dedupeById, resolveInside } from '../manifest';
import type { Manifest } from '../manifest';
import { normalizeSplit, parseLabelCell } from '../sample';
import type { Sample } from '../sample';
import type { BaseAdapterOptions, DatasetAdapter } from './types';

/** Options of the generic CSV/JSONL adapter. */
export interface CsvAdapterOptions extends BaseAdapterOptions {
  /**
   * The index file (.csv, .csv.gz, .jsonl, .ndjson). A relative path resolves against `root`; with an
   * empty `root`, against the working directory, and the index file's folder is the root.
   */
  file: string;
  /** Column with the image path (relative to root: without one, to the index file's folder). Required. */
  imageCol: string;
  /** Column with the report text. */
  textCol?: string;
  /** Label columns (values 1/0/-1/empty; also true/false). */
  labelCols?: string[];
  /** Patient id column; without it every row is its own patient (a warning for patient-level splits). */
  patientCol?: string;
  /** Study id column; default: the patient id + row number. */
  studyCol?: string;
  /** Sample id column; default: the image path. */
  idCol?: string;
  /** View column. */
  viewCol?: string;
  /** Split column (train/valid/validate/val/test). */
  splitCol?: string;
}

function cellToString(v: unknown): string {
  if (v === null || v === undefined) return '';
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  return JSON.stringify(v);
}

/** The generic CSV/JSONL adapter. */
export const csvAdapter: DatasetAdapter<CsvAdapterOptions> = {
  name: 'csv',
  description: 'Generic CSV/JSONL index with named columns (--image-col --text-col --label-cols --patient-col ...)',
  async load(opts: CsvAdapterOptions): Promise<Manifest> {
    if (!opts.imageCol) throw new CxrError('E_CONFIG', 'csv adapter: --image-col is required');
    if (typeof opts.file !== 'string' || opts.file === '') throw new CxrError('E_CONFIG', 'csv adapter: the index file (--csv) is required');
    // Without a root, the image paths are relative to the index file, wherever it is.
    const file = opts.root ? path.resolve(opts.root, opts.file) : path.resolve(opts.file);
    const root = opts.root ? path.resolve(opts.root) : path.dirname(file);
    const log = new IssueLog(opts.maxExamples ?? 10);
    let rows: Record<string, string>[];
    let header: string[];
    if (/\.(jsonl|ndjson)(\.gz)?$/i.test(file)) {
      const { text, invalidUtf8 } = readTextChecked(file);
      const lines = text.split('\n');
      rows = [];
      const keys = new Set<string>();
      lines.forEach((l, i) => {
        if (l.trim() === '') return;
        try {
          const o = JSON.parse(l) as Record<string, unknown>;
          if (o === null || typeof o !== 'object' || Array.isArray(o)) throw new Error('not an object');
          const r: Record<string, string> = {};
          for (const [k, v] of Object.entries(o)) {
            r[k] = typeof v === 'boolean' ? (v ? '1' : '0') : cellToString(v);
            keys.add(k);
          }
          (r as Record<string, string>)['\u0000line'] = String(i + 1);
          logBadEncoding(log, invalidUtf8, `${path.basename(file)}:${i + 1}`, [l]);
          rows.push(r);
        } catch (e) {
          log.add('bad-row', `${path.basename(file)}:${i + 1}`, `not a JSON object: ${(e as Error).message}`);
        }
      });
      header = [...keys];
    } else {
      const t = readTable(file, { log, where: path.basename(file) });
      header = t.header;
      rows = t.rows.map((r, i) => ({ ...r, '\u0000line': String(t.lines[i]) }));
    }
    if (rows.length === 0 && log.total === 0) throw new CxrError('E_DATA', `${file}: no rows (the index holds no samples)`, { path: file });
    const cols = [opts.imageCol, opts.textCol, opts.patientCol, opts.studyCol, opts.idCol, opts.viewCol, opts.splitCol, ...(opts.labelCols ?? [])].filter((c): c is string => !!c);
    const missing = cols.filter((c) => !header.includes(c));
    if (missing.length && rows.length > 0) throw new CxrError('E_CONFIG', `${file}: column(s) not found: ${missing.join(', ')} (have: ${header.join(', ')})`);
    const labelNames = opts.labelCols ?? [];
    const checkFiles = opts.checkFiles ?? true;
    const samples: Sample[] = [];
    for (const r of rows) {
      const where = `${path.basename(file)}:${r['\u0000line']}`;
      const img = (r[opts.imageCol] ?? '').trim();
      if (!img) {
        log.add('bad-row', where, `empty ${opts.imageCol}`);
        continue;
      }
      const abs = resolveInside(root, img);
      if (!abs) {
        log.add('outside-root', where, `image path '${img}' is outside the dataset root ${root}`);
        continue;
      }
      if (checkFiles && !fs.existsSync(abs)) {
        log.add('missing-file', where, `image ${img} does not exist`);
        continue;
      }
      const labels: Record<string, number> = {};
      let bad = false;
      for (const l of labelNames) {
        let c = r[l];
        if (c !== undefined && /^(true|false)$/i.test(c.trim())) c = /^true$/i.test(c.trim()) ? '1' : '0';
        const v = parseLabelCell(c);
        if (v === undefined) {
          log.add('bad-label', where, `label '${l}' is '${r[l]}', not 1/0/-1/empty`);
          bad = true;
          labels[l] = NaN;
        } else labels[l] = v;
      }
      if (bad && opts.strict) continue;
      const patientId = opts.patientCol ? (r[opts.patientCol] ?? '').trim() : '';
      if (opts.patientCol && !patientId) {
        log.add('bad-row', where, `empty ${opts.patientCol}`);
        continue;
      }
      const rel = path.relative(root, abs);
      const pid = patientId || rel;
      const splitRaw = opts.splitCol ? r[opts.splitCol] : undefined;
      const split = normalizeSplit(splitRaw);
      if (opts.splitCol && !split) {
        log.add('bad-row', where, `unknown split '${splitRaw}'`);
        continue;
      }
      const report = opts.textCol ? r[opts.textCol] : undefined;
      samples.push({
        id: opts.idCol ? r[opts.idCol] : rel,
        imagePath: rel,
        report: report === '' ? undefined : report,
        labels,
        patientId: pid,
        studyId: opts.studyCol ? r[opts.studyCol] : `${pid}#${r['\u0000line']}`,
        view: opts.viewCol ? r[opts.viewCol].trim().toUpperCase() || undefined : undefined,
        split,
      });
    }
    const deduped = dedupeById(samples, log, path.basename(file));
    log.throwIfStrict(opts.strict, `csv ${file}`);
    return { dataset: 'csv', root, labelNames: [...labelNames], samples: deduped, issues: log.summary() };
  },
};
