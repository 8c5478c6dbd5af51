/**
 * CheXpert (v1.0 and -small): `train.csv`, `valid.csv` and, when present, `test.csv` with columns
 * Path, Sex, Age, Frontal/Lateral, AP/PA and the 14 observations (1.0 / 0.0 / -1.0 / empty). `Path` is
 * relative to the directory *above* the dataset folder (`CheXpert-v1.0-small/train/patient00001/...`);
 * both that and root-relative paths are accepted. Optional CheXpert-Plus reports CSV
 * (`path_to_image`, `section_findings`, `section_impression`, `report`) is joined on the image path.
 */
import fs from 'node:fs';
import path from 'node:path';
import { CxrError } from '../../errors';
import { readTable } from '../csv';
import { IssueLog, dedupeById, resolveInside } from '../manifest';
import type { Manifest } from '../manifest';
import { CHEXPERT_LABELS, parseLabelCell } from '../sample';
import type { Sample, Split } from '../sample';
import type { BaseAdapterOptions, DatasetAdapter } from './types';

/** What to do with uncertain (-1) labels: U-Ones, U-Zeros, ignore (missing), or keep -1. */
export type UncertaintyPolicy = 'ones' | 'zeros' | 'ignore' | 'keep';

/** Options of the CheXpert adapter. */
export interface ChexpertOptions extends BaseAdapterOptions {
  /** Uncertainty policy applied to every label. Default 'keep'. */
  uncertain?: UncertaintyPolicy;
  /** Per-label overrides of the policy (e.g. { Atelectasis: 'ones', Cardiomegaly: 'zeros' }). */
  uncertainPerLabel?: Record<string, UncertaintyPolicy>;
  /** CheXpert-Plus report CSV (absolute or relative to root). */
  reportsCsv?: string;
  /** Keep only these splits. */
  splits?: Split[];
  /** Keep only these views: 'FRONTAL', 'LATERAL', 'AP', 'PA'. */
  views?: string[];
}

/** Applies an uncertainty policy to one value. */
export function applyUncertainty(v: number, policy: UncertaintyPolicy): number {
  if (v !== -1) return v;
  return policy === 'ones' ? 1 : policy === 'zeros' ? 0 : policy === 'ignore' ? NaN : -1;
}

/** The CheXpert adapter. */
export const chexpertAdapter: DatasetAdapter<ChexpertOptions> = {
  name: 'chexpert',
  description: 'CheXpert v1.0 / -small (train/valid/test CSVs, uncertainty policies) with optional CheXpert-Plus reports',
  async load(opts: ChexpertOptions): Promise<Manifest> {
    const root = path.resolve(opts.root);
    const log = new IssueLog(opts.maxExamples ?? 10);
    const files: [string, Split][] = [
      ['train.csv', 'train'],
      ['valid.csv', 'validate'],
      ['test.csv', 'test'],
    ];
    const present = files.filter(([f]) => fs.existsSync(path.join(root, f)));
    if (present.length === 0) throw new CxrError('E_IO', `CheXpert: no train.csv / valid.csv / test.csv under ${root}`);
    const reports = new Map<string, string>();
    if (opts.reportsCsv) {
      const t = readTable(path.resolve(root, opts.reportsCsv));
      for (const r of t.rows) {
        const key = (r.path_to_image ?? '').replace(/^.*?(train|valid|test)\//, '$1/');
        const text = r.report?.trim() ? r.report : [r.section_findings?.trim() ? `FINDINGS: ${r.section_findings.trim()}` : '', r.section_impression?.trim() ? `IMPRESSION: ${r.section_impression.trim()}` : ''].filter(Boolean).join('\n');
        if (key && text) reports.set(key, text);
      }
    }
    const policy = opts.uncertain ?? 'keep';
    const viewSet = opts.views ? new Set(opts.views.map((v) => v.toUpperCase())) : undefined;
    const checkFiles = opts.checkFiles ?? true;
    const samples: Sample[] = [];
    for (const [f, split] of present) {
      if (opts.splits && !opts.splits.includes(split)) continue;
      const t = readTable(path.join(root, f));
      if (!t.header.includes('Path')) throw new CxrError('E_PARSE', `${t.file}: missing column Path`);
      t.rows.forEach((r, i) => {
        const where = `${f}:${i + 2}`;
        const p = (r.Path ?? '').trim();
        const m = /(train|valid|test)\/(patient\d+)\/(study\d+)\/[^/]+$/.exec(p);
        if (!m) {
          log.add('bad-row', where, `Path '${p}' is not <split>/patientN/studyN/<file>`);
          return;
        }
        // Path starts with the dataset folder name; accept it relative to root's parent or to root.
        const rel = p.slice(p.indexOf(m[0]));
        const abs = resolveInside(root, rel);
        if (!abs) {
          log.add('outside-root', where, `Path '${p}' escapes ${root}`);
          return;
        }
        const frontal = (r['Frontal/Lateral'] ?? '').trim().toLowerCase();
        const view = frontal === 'lateral' ? 'LATERAL' : (r['AP/PA'] ?? '').trim().toUpperCase() || (frontal === 'frontal' ? 'FRONTAL' : undefined);
        if (viewSet && !(view && (viewSet.has(view) || (viewSet.has('FRONTAL') && view !== 'LATERAL')))) return;
        if (checkFiles && !fs.existsSync(abs)) {
          log.add('missing-file', where, `image ${rel} does not exist`);
          return;
        }
        const labels: Record<string, number> = {};
        for (const l of CHEXPERT_LABELS) {
          const v = parseLabelCell(r[l]);
          if (v === undefined) {
            log.add('bad-label', where, `label '${l}' is '${r[l]}'`);
            labels[l] = NaN;
          } else labels[l] = applyUncertainty(v, opts.uncertainPerLabel?.[l] ?? policy);
        }
        const age = Number(r.Age);
        samples.push({
          id: rel,
          imagePath: rel,
          report: reports.get(rel),
          labels,
          patientId: m[2],
          studyId: `${m[2]}/${m[3]}`,
          view,
          split,
          meta: { sex: r.Sex || undefined, age: Number.isFinite(age) ? age : undefined },
        });
      });
    }
    const out = dedupeById(samples, log, 'CheXpert CSVs');
    log.throwIfStrict(opts.strict, `CheXpert at ${root}`);
    return { dataset: 'chexpert', root, labelNames: [...CHEXPERT_LABELS], samples: out, issues: log.summary() };
  },
};
