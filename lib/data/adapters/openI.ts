/**
 * Open-I / Indiana University chest X-ray collection: XML reports in `ecgen-radiology/*.xml`
 * (AbstractText sections COMPARISON / INDICATION / FINDINGS / IMPRESSION, MeSH `major` terms, one
 * `parentImage id` per image) and PNGs in `NLMCXR_png/<id>.png`. Labels are multi-hot over the first
 * term of each MeSH major heading ("Cardiomegaly/mild" → "Cardiomegaly"; "normal" → "normal").
 */
import fs from 'node:fs';
import path from 'node:path';
import { CxrError } from '../../errors';
import { IssueLog, dedupeById } from '../manifest';
import type { Manifest } from '../manifest';
import type { Sample } from '../sample';
import type { BaseAdapterOptions, DatasetAdapter } from './types';

/** Options of the Open-I adapter. */
export interface OpenIOptions extends BaseAdapterOptions {
  /** Report folder (default `ecgen-radiology`). */
  reportsDir?: string;
  /** Image folder (default `NLMCXR_png`). */
  imagesDir?: string;
}

function unescapeXml(s: string): string {
  return s
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&apos;/g, "'")
    .replace(/&#(\d+);/g, (_, d: string) => String.fromCharCode(Number(d)))
    .replace(/&amp;/g, '&');
}

/** Extracts what the adapter needs from one Open-I report XML. */
export function parseOpenIXml(xml: string): { uid?: string; sections: Record<string, string>; mesh: string[]; images: string[] } {
  const sections: Record<string, string> = {};
  for (const m of xml.matchAll(/<AbstractText\s+Label="([^"]+)"\s*>([\s\S]*?)<\/AbstractText>/g)) sections[m[1].toUpperCase()] = unescapeXml(m[2].trim());
  for (const m of xml.matchAll(/<AbstractText\s+Label="([^"]+)"\s*\/>/g)) sections[m[1].toUpperCase()] ??= '';
  const mesh = [...xml.matchAll(/<major>([\s\S]*?)<\/major>/g)].map((m) => unescapeXml(m[1]).split('/')[0].trim()).filter(Boolean);
  const images = [...xml.matchAll(/<parentImage\s+id="([^"]+)"/g)].map((m) => m[1]);
  const uid = /<uId\s+id="([^"]+)"/.exec(xml)?.[1];
  return { uid, sections, mesh, images };
}

/** The Open-I / IU X-ray adapter. */
export const openIAdapter: DatasetAdapter<OpenIOptions> = {
  name: 'openi',
  description: 'Open-I / IU X-ray (ecgen-radiology XML reports + NLMCXR_png images, MeSH major terms as labels)',
  async load(opts: OpenIOptions): Promise<Manifest> {
    const root = path.resolve(opts.root);
    const log = new IssueLog(opts.maxExamples ?? 10);
    const repDir = path.join(root, opts.reportsDir ?? 'ecgen-radiology');
    const imgDir = opts.imagesDir ?? 'NLMCXR_png';
    if (!fs.existsSync(repDir)) throw new CxrError('E_IO', `Open-I: report folder ${repDir} not found`);
    const files = fs
      .readdirSync(repDir)
      .filter((f) => f.toLowerCase().endsWith('.xml'))
      .sort((a, b) => a.localeCompare(b, 'en', { numeric: true }));
    const rows: { s: Sample; mesh: string[] }[] = [];
    const seen = new Set<string>();
    for (const f of files) {
      let x: ReturnType<typeof parseOpenIXml>;
      try {
        x = parseOpenIXml(fs.readFileSync(path.join(repDir, f), 'utf8'));
      } catch (e) {
        log.add('bad-row', f, (e as Error).message);
        continue;
      }
      if (x.images.length === 0) {
        log.add('bad-row', f, 'no parentImage');
        continue;
      }
      const text = ['FINDINGS', 'IMPRESSION']
        .filter((k) => x.sections[k])
        .map((k) => `${k}: ${x.sections[k]}`)
        .join('\n');
      const uid = x.uid ?? path.basename(f, '.xml');
      for (const m of x.mesh) seen.add(m);
      for (const img of x.images) {
        const rel = `${imgDir}/${img}.png`;
        if ((opts.checkFiles ?? true) && !fs.existsSync(path.join(root, rel))) {
          log.add('missing-file', f, `image ${rel} does not exist`);
          continue;
        }
        rows.push({ mesh: x.mesh, s: { id: img, imagePath: rel, report: text || undefined, labels: {}, patientId: uid, studyId: uid } });
      }
    }
    const labelNames = [...seen].sort();
    for (const { s, mesh } of rows) for (const l of labelNames) s.labels[l] = mesh.includes(l) ? 1 : 0;
    const out = dedupeById(
      rows.map((r) => r.s),
      log,
      'ecgen-radiology',
    );
    log.throwIfStrict(opts.strict, `Open-I at ${root}`);
    return { dataset: 'openi', root, labelNames, samples: out, issues: log.summary() };
  },
};
