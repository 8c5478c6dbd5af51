/**
 * NIH ChestX-ray14: `Data_Entry_2017.csv` (or `Data_Entry_2017_v2020.csv`) with Image Index, Finding
 * Labels ("A|B" or "No Finding"), Follow-up #, Patient ID, View Position; the official
 * `train_val_list.txt` / `test_list.txt`; PNGs in `images/` or the release's `images_001/images/` ...
 * `images_012/images/` folders.
 */
import fs from 'node:fs';
import path from 'node:path';
import { CxrError } from '../../errors';
import { firstExisting, readTable } from '../csv';
import { IssueLog, dedupeById } from '../manifest';
import type { Manifest } from '../manifest';
import type { Sample, Split } from '../sample';
import type { BaseAdapterOptions, DatasetAdapter } from './types';

/** The 14 ChestX-ray14 labels in the paper's order (plus 'No Finding' as its own column). */
export const CXR14_LABELS = ['Atelectasis', 'Cardiomegaly', 'Effusion', 'Infiltration', 'Mass', 'Nodule', 'Pneumonia', 'Pneumothorax', 'Consolidation', 'Edema', 'Emphysema', 'Fibrosis', 'Pleural_Thickening', 'Hernia'];

/** Options of the ChestX-ray14 adapter. */
export interface ChestXray14Options extends BaseAdapterOptions {
  /** Keep only these splits ('train' = train_val_list, 'test' = test_list). */
  splits?: Split[];
  /** Keep only these view positions (PA, AP). */
  views?: string[];
}

/** Maps image file name → path relative to root by listing the image folders once. */
function indexImages(root: string): Map<string, string> {
  const m = new Map<string, string>();
  const dirs: string[] = [];
  for (const e of fs.readdirSync(root, { withFileTypes: true })) {
    if (!e.isDirectory() || !/^images(_\d+)?$/.test(e.name)) continue;
    const inner = path.join(root, e.name, 'images');
    dirs.push(fs.existsSync(inner) && fs.statSync(inner).isDirectory() ? path.join(e.name, 'images') : e.name);
  }
  for (const d of dirs.sort()) for (const f of fs.readdirSync(path.join(root, d))) if (!m.has(f)) m.set(f, path.join(d, f));
  return m;
}

function readList(file: string | undefined): Set<string> | undefined {
  if (!file) return undefined;
  return new Set(
    fs
      .readFileSync(file, 'utf8')
      .split(/\r?\n/)
      .map((s) => s.trim())
      .filter(Boolean),
  );
}

/** The ChestX-ray14 adapter. */
export const chestXray14Adapter: DatasetAdapter<ChestXray14Options> = {
  name: 'chestx-ray14',
  description: 'NIH ChestX-ray14 (Data_Entry_2017 CSV, official train_val/test lists, images_0XX folders)',
  async load(opts: ChestXray14Options): Promise<Manifest> {
    const root = path.resolve(opts.root);
    const log = new IssueLog(opts.maxExamples ?? 10);
    const entry = firstExisting(['Data_Entry_2017_v2020.csv', 'Data_Entry_2017.csv', 'Data_Entry_2017.csv.gz'].map((f) => path.join(root, f)));
    if (!entry) throw new CxrError('E_IO', `ChestX-ray14: Data_Entry_2017[_v2020].csv not found under ${root}`);
    const t = readTable(entry);
    for (const c of ['Image Index', 'Finding Labels', 'Patient ID']) if (!t.header.includes(c)) throw new CxrError('E_PARSE', `${entry}: missing column ${c}`);
    const trainList = readList(firstExisting([path.join(root, 'train_val_list.txt')]));
    const testList = readList(firstExisting([path.join(root, 'test_list.txt')]));
    const images = indexImages(root);
    const viewSet = opts.views ? new Set(opts.views.map((v) => v.toUpperCase())) : undefined;
    const labelNames = [...CXR14_LABELS, 'No Finding'];
    const samples: Sample[] = [];
    t.rows.forEach((r, i) => {
      const where = `${path.basename(entry)}:${i + 2}`;
      const name = (r['Image Index'] ?? '').trim();
      const pid = (r['Patient ID'] ?? '').trim();
      if (!name || !/^\d+$/.test(pid)) {
        log.add('bad-row', where, `bad Image Index '${name}' or Patient ID '${pid}'`);
        return;
      }
      const split: Split | undefined = testList?.has(name) ? 'test' : trainList?.has(name) ? 'train' : undefined;
      if (opts.splits && !(split && opts.splits.includes(split))) return;
      const view = (r['View Position'] ?? '').trim().toUpperCase() || undefined;
      if (viewSet && !(view && viewSet.has(view))) return;
      const rel = images.get(name);
      if (!rel) {
        if (opts.checkFiles ?? true) {
          log.add('missing-file', where, `image ${name} not found in images*/ folders`);
          return;
        }
      }
      const found = (r['Finding Labels'] ?? '').split('|').map((s) => s.trim()).filter(Boolean);
      const unknown = found.filter((f) => !labelNames.includes(f));
      if (unknown.length) log.add('bad-label', where, `unknown finding(s) ${unknown.join(', ')}`);
      const labels: Record<string, number> = {};
      for (const l of labelNames) labels[l] = found.includes(l) ? 1 : 0;
      const follow = (r['Follow-up #'] ?? '').trim();
      samples.push({ id: name, imagePath: rel ?? path.join('images', name), labels, patientId: pid, studyId: `${pid}_${follow || name}`, view, split, meta: { age: Number(r['Patient Age']) || undefined, sex: r['Patient Gender'] || undefined } });
    });
    const out = dedupeById(samples, log, path.basename(entry));
    log.throwIfStrict(opts.strict, `ChestX-ray14 at ${root}`);
    return { dataset: 'chestx-ray14', root, labelNames, samples: out, issues: log.summary() };
  },
};
