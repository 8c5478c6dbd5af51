/**
 * Manifests (a dataset as a list of {@link Sample}s plus its label names) and the issue log adapters use
 * to count and name bad input instead of dropping it silently.
 */
import fs from 'node:fs';
import path from 'node:path';
import { CxrError } from '../errors';
import { writeFileAtomic } from '../util/atomic';
import type { Sample } from './sample';
import { normalizeSplit } from './sample';

/** Kinds of data problems an adapter reports. */
export type IssueKind =
  | 'missing-file' // an image (or report) named by the index does not exist
  | 'outside-root' // an image path escapes the dataset root
  | 'bad-row' // a row lacks required fields or cannot be parsed
  | 'bad-label' // a label cell is not 1 / 0 / -1 / empty
  | 'duplicate-id' // a sample id appears twice
  | 'missing-labels' // no label row for a study
  | 'missing-report' // no report text for a study that should have one
  | 'bad-image' // an image could not be decoded (loader, prepare)
  | 'bad-encoding' // text that is not valid UTF-8 (decoded with U+FFFD replacement characters)
  | 'extra-cells' // a CSV row with more cells than the header (the extra cells are ignored)
  | 'corrupt-shard'; // an existing shard failed its checksum on a resumed prepare and was rewritten

/** One recorded problem. */
export interface DataIssue {
  kind: IssueKind;
  /** Where: file and row, or a path. */
  where: string;
  message: string;
}

/** Summary of an {@link IssueLog}, serialisable. */
export interface IssueSummary {
  total: number;
  byKind: Partial<Record<IssueKind, number>>;
  /** The first few issues, by name. */
  examples: DataIssue[];
}

/** Counts issues by kind and keeps the first `maxExamples` for reporting. */
export class IssueLog {
  total = 0;
  readonly byKind: Partial<Record<IssueKind, number>> = {};
  readonly examples: DataIssue[] = [];
  /** @param maxExamples how many issues are kept verbatim (default 10). */
  constructor(readonly maxExamples = 10) {}
  /** Records one issue. */
  add(kind: IssueKind, where: string, message: string): void {
    this.total++;
    this.byKind[kind] = (this.byKind[kind] ?? 0) + 1;
    if (this.examples.length < this.maxExamples) this.examples.push({ kind, where, message });
  }
  /** Plain summary object. */
  summary(): IssueSummary {
    return { total: this.total, byKind: { ...this.byKind }, examples: [...this.examples] };
  }
  /** Multi-line human summary (empty string when there were none). */
  format(): string {
    return formatIssues(this.summary());
  }
  /**
   * With `strict`, throws E_DATA when any issue was recorded (the message lists counts and the first few).
   */
  throwIfStrict(strict: boolean | undefined, what: string): void {
    if (strict && this.total > 0) throw new CxrError('E_DATA', `${what}: ${this.total} data issue(s) (strict mode)\n${this.format()}`, { issues: this.summary() });
  }
}

/** Formats an issue summary for people. */
export function formatIssues(s: IssueSummary): string {
  if (s.total === 0) return '';
  const kinds = Object.entries(s.byKind)
    .map(([k, v]) => `${k}: ${v}`)
    .join(', ');
  const lines = [`${s.total} issue(s) (${kinds}); first ${s.examples.length}:`];
  for (const e of s.examples) lines.push(`  [${e.kind}] ${e.where}: ${e.message}`);
  return lines.join('\n');
}

/** A dataset read by an adapter. */
export interface Manifest {
  /** Adapter name (mimic-cxr, chexpert, csv, synthetic, ...). */
  dataset: string;
  /** Directory image paths are relative to. */
  root: string;
  /** Label names in the dataset's order; every sample's labels has exactly these keys. */
  labelNames: string[];
  samples: Sample[];
  /** What was wrong with the input. */
  issues: IssueSummary;
}

/**
 * Resolves `rel` against `root` and returns the absolute path, or undefined when it escapes the root
 * (`..`, an absolute path elsewhere, or a symbolic link whose real path is outside the root's real
 * path), so a CSV cannot make the loader read arbitrary files.
 */
export function resolveInside(root: string, rel: string): string | undefined {
  const absRoot = path.resolve(root);
  const p = path.resolve(absRoot, rel);
  if (!inside(absRoot, p)) return undefined;
  // Symbolic links: the file read is the link's target, so the target must be inside the root too.
  let real: string;
  try {
    real = fs.realpathSync.native(p);
  } catch {
    return p; // missing: the adapter reports it as such
  }
  if (!inside(realRoot(absRoot), real)) return undefined;
  return p;
}

function inside(root: string, p: string): boolean {
  const r = path.relative(root, p);
  return !(r === '' || r === '..' || r.startsWith('..' + path.sep) || path.isAbsolute(r));
}

const realRoots = new Map<string, string>();

/** The root with its links resolved (memoised: adapters call resolveInside once per image). */
function realRoot(absRoot: string): string {
  let r = realRoots.get(absRoot);
  if (r === undefined) {
    try {
      r = fs.realpathSync.native(absRoot);
    } catch {
      r = absRoot;
    }
    if (realRoots.size > 64) realRoots.clear();
    realRoots.set(absRoot, r);
  }
  return r;
}

/** Drops samples whose id repeats (keeping the first) and records each duplicate. */
export function dedupeById(samples: Sample[], log: IssueLog, where: string): Sample[] {
  const seen = new Set<string>();
  const out: Sample[] = [];
  for (const s of samples) {
    if (seen.has(s.id)) {
      log.add('duplicate-id', where, `duplicate sample id '${s.id}'`);
      continue;
    }
    seen.add(s.id);
    out.push(s);
  }
  return out;
}

/** Samples of one split. */
export function filterSplit(m: Manifest, split: string): Sample[] {
  const s = normalizeSplit(split);
  if (!s) throw new CxrError('E_CONFIG', `unknown split '${split}' (train, validate, test)`);
  return m.samples.filter((x) => x.split === s);
}

function labelsToJson(l: Record<string, number>): Record<string, number | null> {
  const o: Record<string, number | null> = {};
  for (const [k, v] of Object.entries(l)) o[k] = Number.isNaN(v) ? null : v;
  return o;
}

/**
 * Writes a manifest as JSONL: a header line `{"manifest":1,dataset,root,labelNames,issues}` then one
 * sample per line (missing labels as null). Atomic.
 */
export function writeManifest(file: string, m: Manifest): void {
  const lines = [JSON.stringify({ manifest: 1, dataset: m.dataset, root: m.root, labelNames: m.labelNames, issues: m.issues })];
  for (const s of m.samples) lines.push(JSON.stringify({ ...s, labels: labelsToJson(s.labels) }));
  writeFileAtomic(file, lines.join('\n') + '\n');
}

/** Reads a manifest written by {@link writeManifest}. */
export function readManifest(file: string): Manifest {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new CxrError('E_IO', `cannot read ${file}: ${(e as Error).message}`);
  }
  const lines = text.split('\n').filter((l) => l.trim() !== '');
  if (lines.length === 0) throw new CxrError('E_PARSE', `${file}: empty manifest`);
  let head: { manifest?: number; dataset: string; root: string; labelNames: string[]; issues: IssueSummary };
  try {
    head = JSON.parse(lines[0]);
  } catch {
    throw new CxrError('E_PARSE', `${file}:1: not JSON`);
  }
  if (head.manifest !== 1) throw new CxrError('E_PARSE', `${file}: not a cxr-train manifest (missing "manifest": 1 header)`);
  const samples: Sample[] = lines.slice(1).map((l, i) => {
    let o: Sample & { labels: Record<string, number | null> };
    try {
      o = JSON.parse(l);
    } catch {
      throw new CxrError('E_PARSE', `${file}:${i + 2}: not JSON`);
    }
    const labels: Record<string, number> = {};
    for (const k of head.labelNames) {
      const v = o.labels?.[k];
      labels[k] = v === null || v === undefined ? NaN : v;
    }
    return { ...o, labels };
  });
  return { dataset: head.dataset, root: head.root, labelNames: head.labelNames, samples, issues: head.issues };
}
