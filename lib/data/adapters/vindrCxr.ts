/**
 * VinDr-CXR (PhysioNet 1.0.0): DICOM images `train/<image_id>.dicom` and `test/<image_id>.dicom`,
 * image-level labels in `annotations/image_labels_train.csv` (one row per reader: image_id, rad_id,
 * 28 finding/diagnosis columns incl. 'No finding') and `annotations/image_labels_test.csv` (consensus).
 * Several readers per image are aggregated (majority by default).
 */
import fs from 'node:fs';
import path from 'node:path';
import { CxrError } from '../../errors';
import { firstExisting, readTable } from '../csv';
import type { Table } from '../csv';
import { IssueLog } from '../manifest';
import type { Manifest } from '../manifest';
import type { Sample, Split } from '../sample';
import type { BaseAdapterOptions, DatasetAdapter } from './types';

/** How several readers' labels are combined. */
export type ReaderAggregation = 'majority' | 'any' | 'all';

/** Options of the VinDr-CXR adapter. */
export interface VindrCxrOptions extends BaseAdapterOptions {
  /** Reader aggregation. Default 'majority' (strictly more than half of the readers). */
  aggregation?: ReaderAggregation;
  /** Keep only these splits. */
  splits?: Split[];
}

/** The VinDr-CXR adapter. */
export const vindrCxrAdapter: DatasetAdapter<VindrCxrOptions> = {
  name: 'vindr-cxr',
  description: 'VinDr-CXR (DICOM, image-level labels per reader, aggregated: majority/any/all)',
  async load(opts: VindrCxrOptions): Promise<Manifest> {
    const root = path.resolve(opts.root);
    const log = new IssueLog(opts.maxExamples ?? 10);
    const agg = opts.aggregation ?? 'majority';
    const parts: [Split, string | undefined][] = [
      ['train', firstExisting([path.join(root, 'annotations', 'image_labels_train.csv'), path.join(root, 'image_labels_train.csv')])],
      ['test', firstExisting([path.join(root, 'annotations', 'image_labels_test.csv'), path.join(root, 'image_labels_test.csv')])],
    ];
    if (!parts.some(([, f]) => f)) throw new CxrError('E_IO', `VinDr-CXR: annotations/image_labels_{train,test}.csv not found under ${root}`);
    let labelNames: string[] | undefined;
    const samples: Sample[] = [];
    for (const [split, file] of parts) {
      if (!file || (opts.splits && !opts.splits.includes(split))) continue;
      const t: Table = readTable(file);
      if (!t.header.includes('image_id')) throw new CxrError('E_PARSE', `${file}: missing column image_id`);
      const cols = t.header.filter((h) => h !== 'image_id' && h !== 'rad_id');
      labelNames ??= cols;
      const votes = new Map<string, { n: number; pos: number[]; readers: string[] }>();
      const order: string[] = [];
      t.rows.forEach((r, i) => {
        const where = `${path.basename(file)}:${i + 2}`;
        const id = (r.image_id ?? '').trim();
        if (!/^[0-9a-zA-Z_.-]+$/.test(id)) {
          log.add('bad-row', where, `bad image_id '${id}'`);
          return;
        }
        let v = votes.get(id);
        if (!v) {
          votes.set(id, (v = { n: 0, pos: new Array(labelNames!.length).fill(0), readers: [] }));
          order.push(id);
        }
        const vals: number[] = [];
        for (const l of labelNames!) {
          const c = (r[l] ?? '').trim();
          const x = c === '' ? 0 : Number(c);
          if (x !== 0 && x !== 1) {
            log.add('bad-label', where, `label '${l}' is '${c}'`);
            return;
          }
          vals.push(x);
        }
        v.n++;
        vals.forEach((x, k) => (v!.pos[k] += x));
        if (r.rad_id) v.readers.push(r.rad_id);
      });
      for (const id of order) {
        const v = votes.get(id)!;
        const rel = `${split}/${id}.dicom`;
        const alt = `${split}/${id}.dcm`;
        let imagePath = rel;
        if (opts.checkFiles ?? true) {
          if (fs.existsSync(path.join(root, rel))) imagePath = rel;
          else if (fs.existsSync(path.join(root, alt))) imagePath = alt;
          else {
            log.add('missing-file', path.basename(file), `image ${rel} does not exist`);
            continue;
          }
        }
        const labels: Record<string, number> = {};
        labelNames!.forEach((l, k) => {
          const p = v.pos[k];
          labels[l] = agg === 'any' ? (p > 0 ? 1 : 0) : agg === 'all' ? (p === v.n ? 1 : 0) : p * 2 > v.n ? 1 : 0;
        });
        // VinDr-CXR is de-identified per image: the image is the patient and the study.
        samples.push({ id, imagePath, labels, patientId: id, studyId: id, split, meta: { readers: v.readers.length ? v.readers : undefined, nReaders: v.n } });
      }
    }
    log.throwIfStrict(opts.strict, `VinDr-CXR at ${root}`);
    return { dataset: 'vindr-cxr', root, labelNames: labelNames ?? [], samples, issues: log.summary() };
  },
};
