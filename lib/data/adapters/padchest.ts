/**
 * PadChest: `PADCHEST_chest_x_ray_images_labels_160K_01.02.19.csv[.gz]` (ImageID, ImageDir, StudyID,
 * PatientID, Projection, Report (Spanish, preprocessed), Labels as a Python list string) and 16-bit
 * PNGs in `<ImageDir>/<ImageID>`. Labels are multi-hot over the finding names seen (174 in the full
 * release); PadChest defines no official split.
 */
import path from 'node:path';
import fs from 'node:fs';
import { CxrError } from '../../errors';
import { readTable } from '../csv';
import { IssueLog, dedupeById, resolveInside } from '../manifest';
import type { Manifest } from '../manifest';
import type { Sample } from '../sample';
import type { BaseAdapterOptions, DatasetAdapter } from './types';

/** Options of the PadChest adapter. */
export interface PadchestOptions extends BaseAdapterOptions {
  /** The labels CSV (default: the first `PADCHEST_*.csv[.gz]` in root). */
  csv?: string;
  /** Keep only these projections (PA, AP, L, AP_horizontal, ...). */
  views?: string[];
  /** Restrict the label set to these names (others are dropped); default all names seen. */
  labels?: string[];
}

/** Parses PadChest's "['a', 'b']" label cell; undefined when it is not a list. */
export function parsePadchestLabels(cell: string): string[] | undefined {
  const t = cell.trim();
  if (!t.startsWith('[') || !t.endsWith(']')) return undefined;
  const out: string[] = [];
  for (const m of t.matchAll(/'([^']*)'|"([^"]*)"/g)) {
    const v = (m[1] ?? m[2] ?? '').trim().toLowerCase();
    if (v) out.push(v);
  }
  return out;
}

/** The PadChest adapter. */
export const padchestAdapter: DatasetAdapter<PadchestOptions> = {
  name: 'padchest',
  description: 'PadChest (labels CSV with Spanish reports, label lists per image, <ImageDir>/<ImageID> 16-bit PNGs)',
  async load(opts: PadchestOptions): Promise<Manifest> {
    const root = path.resolve(opts.root);
    const log = new IssueLog(opts.maxExamples ?? 10);
    const csv = opts.csv ? path.resolve(root, opts.csv) : fs.readdirSync(root).filter((f) => /^PADCHEST.*\.csv(\.gz)?$/i.test(f)).map((f) => path.join(root, f))[0];
    if (!csv) throw new CxrError('E_IO', `PadChest: no PADCHEST_*.csv under ${root}`);
    const t = readTable(csv);
    for (const c of ['ImageID', 'ImageDir', 'PatientID', 'Labels']) if (!t.header.includes(c)) throw new CxrError('E_PARSE', `${csv}: missing column ${c}`);
    const viewSet = opts.views ? new Set(opts.views.map((v) => v.toUpperCase())) : undefined;
    const rows: { s: Sample; found: string[] }[] = [];
    const seen = new Set<string>();
    t.rows.forEach((r, i) => {
      const where = `${path.basename(csv)}:${i + 2}`;
      const id = (r.ImageID ?? '').trim();
      const rel = `${(r.ImageDir ?? '').trim()}/${id}`;
      if (!id || !r.PatientID) {
        log.add('bad-row', where, 'empty ImageID or PatientID');
        return;
      }
      if (!resolveInside(root, rel)) {
        log.add('outside-root', where, `image path '${rel}' escapes ${root}`);
        return;
      }
      const view = (r.Projection ?? '').trim().toUpperCase() || undefined;
      if (viewSet && !(view && viewSet.has(view))) return;
      if ((opts.checkFiles ?? true) && !fs.existsSync(path.join(root, rel))) {
        log.add('missing-file', where, `image ${rel} does not exist`);
        return;
      }
      const found = parsePadchestLabels(r.Labels ?? '');
      if (!found) {
        log.add('bad-label', where, `Labels '${r.Labels}' is not a list`);
        return;
      }
      for (const f of found) seen.add(f);
      rows.push({ found, s: { id, imagePath: rel, report: r.Report?.trim() || undefined, labels: {}, patientId: r.PatientID.trim(), studyId: (r.StudyID ?? '').trim() || id, view, meta: { methodLabel: r.MethodLabel || undefined } } });
    });
    const labelNames = opts.labels ? opts.labels.map((l) => l.toLowerCase()) : [...seen].sort();
    for (const { s, found } of rows) for (const l of labelNames) s.labels[l] = found.includes(l) ? 1 : 0;
    const out = dedupeById(
      rows.map((r) => r.s),
      log,
      path.basename(csv),
    );
    log.throwIfStrict(opts.strict, `PadChest at ${root}`);
    return { dataset: 'padchest', root, labelNames, samples: out, issues: log.summary() };
  },
};
