/**
 * Subgroup analysis of zero-shot scores: AUROC per label within groups of sex, age band and view, with
 * patient-level bootstrap intervals and the gap to the overall AUROC.
 *
 * Protocol (docs/evaluation.md, "Subgroups"):
 * - Attributes: `sex` (the adapters' `meta.sex`, normalised to `female` / `male`; other spellings kept in
 *   lower case, `unknown` and empty count as missing), `age` (`meta.age` in years, cut into bands at
 *   {@link DEFAULT_AGE_BANDS}: `<18`, `18-39`, `40-59`, `60-79`, `80+`), `view` (the sample's view
 *   position: PA, AP, LATERAL, ...). A row without a value is in no group of that attribute (counted as
 *   `missing`). An attribute no row of the split has is an E_DATA error naming what the split has.
 * - A group with fewer than `minSize` images ({@link DEFAULT_SUBGROUP_MIN_SIZE}) is named and left out.
 * - AUROC of a group is the overall routine on the group's rows (uncertain/missing truth masked per label);
 *   a label with one class in the group has none. The gap is group AUROC − overall AUROC.
 * - Intervals: the patients of the whole scored split are resampled (the seeded cluster bootstrap of
 *   lib/eval/bootstrap.ts, so with the same seed the overall intervals are those of the scores); in each
 *   resample the group AUROC, the overall AUROC and their gap are computed on the same draw, and the
 *   percentile interval of each is taken (resamples where a value is undefined are left out and counted).
 * - Macro: the mean over the labels with both classes in the group; its gap compares with the overall
 *   macro over the same labels.
 */
import { CxrError } from '../errors';
import { bootstrapMatrix, column, percentileInterval, DEFAULT_CI_LEVEL, DEFAULT_RESAMPLES } from './bootstrap';
import { forEachLabelColumn, sortLabel, summarizeSorted } from './metrics';
import type { NumArray, SortedLabel } from './metrics';
import type { CiBounds } from './scoring/types';

/** Attributes `--subgroups` understands. */
export const SUBGROUP_ATTRIBUTES = ['sex', 'age', 'view'] as const;
/** One subgroup attribute. */
export type SubgroupAttribute = (typeof SUBGROUP_ATTRIBUTES)[number];

/** Smallest group (images) that is scored: smaller AUROCs are too noisy to compare. */
export const DEFAULT_SUBGROUP_MIN_SIZE = 50;
/** Lower edges (years) of the age bands after the first: <18, 18-39, 40-59, 60-79, 80+. */
export const DEFAULT_AGE_BANDS: readonly number[] = [18, 40, 60, 80];

/** What a row needs for subgroups (a `Sample` has it). */
export interface SubgroupRow {
  patientId: string;
  view?: string;
  meta?: Record<string, unknown>;
}

/** Options of {@link subgroupAuroc}. */
export interface SubgroupOptions {
  /** Attributes to group by, in order. */
  attributes: SubgroupAttribute[];
  /** Smallest group scored (images). Default {@link DEFAULT_SUBGROUP_MIN_SIZE}. */
  minSize?: number;
  /** Age band edges in years, ascending. Default {@link DEFAULT_AGE_BANDS}. */
  ageBands?: readonly number[];
  /** Bootstrap resamples (0: no intervals). Default 1000. */
  bootstrap?: number;
  /** Bootstrap seed. Default 0. */
  seed?: number;
  /** Confidence level. Default 0.95. */
  level?: number;
  /** Split name, for messages. Default `test`. */
  splitName?: string;
}

/** AUROC of one label in one group. */
export interface SubgroupLabel {
  n: number;
  nPos: number;
  nNeg: number;
  /** Null with one class in the group. */
  auroc: number | null;
  ci?: CiBounds;
  /** Group AUROC − overall AUROC. */
  gap: number | null;
  gapCi?: CiBounds;
}

/** One scored group. */
export interface SubgroupResult {
  attribute: SubgroupAttribute;
  group: string;
  /** Images and patients in the group. */
  n: number;
  nPatients: number;
  labels: Record<string, SubgroupLabel>;
  macro: { auroc: number | null; ci?: CiBounds; gap: number | null; gapCi?: CiBounds; labels: string[] };
}

/** Result of {@link subgroupAuroc}. */
export interface SubgroupReport {
  attributes: SubgroupAttribute[];
  minSize: number;
  ageBands: number[];
  /** Overall AUROC per label (the same numbers as the scores). */
  overall: Record<string, { auroc: number | null; ci?: CiBounds }>;
  groups: SubgroupResult[];
  /** Groups below `minSize`, named and left out. */
  leftOut: Array<{ attribute: SubgroupAttribute; group: string; n: number; reason: string }>;
  /** Rows without a value, per attribute. */
  missing: Partial<Record<SubgroupAttribute, number>>;
  bootstrap: { resamples: number; seed: number; level: number; unit: 'patient'; nUnits: number } | null;
}

/** Parses `sex,age,view` (E_CONFIG on an unknown or repeated name). */
export function parseSubgroupAttributes(v: string | readonly string[]): SubgroupAttribute[] {
  const names = (typeof v === 'string' ? v.split(',') : v).map((s) => s.trim().toLowerCase()).filter(Boolean);
  if (names.length === 0) throw new CxrError('E_CONFIG', `--subgroups needs at least one of ${SUBGROUP_ATTRIBUTES.join(', ')}`);
  const out: SubgroupAttribute[] = [];
  for (const n of names) {
    if (!(SUBGROUP_ATTRIBUTES as readonly string[]).includes(n)) throw new CxrError('E_CONFIG', `unknown subgroup attribute ${JSON.stringify(n)} (known: ${SUBGROUP_ATTRIBUTES.join(', ')})`);
    if (out.includes(n as SubgroupAttribute)) throw new CxrError('E_CONFIG', `subgroup attribute ${n} is given twice`);
    out.push(n as SubgroupAttribute);
  }
  return out;
}

/** Checks age band edges: finite, ascending, at least one. */
export function checkAgeBands(edges: readonly number[]): number[] {
  if (!Array.isArray(edges) || edges.length === 0 || edges.some((e) => !Number.isFinite(e) || e < 0) || edges.some((e, i) => i > 0 && e <= edges[i - 1])) {
    throw new CxrError('E_CONFIG', `age bands must be ascending non-negative years, e.g. 18,40,60,80; got ${JSON.stringify(edges)}`);
  }
  return edges.slice();
}

/** The band of an age: `<e0`, `e0-(e1-1)`, ..., `eLast+` (integer edges print as such). */
export function ageBand(age: number, edges: readonly number[]): string {
  if (age < edges[0]) return `<${edges[0]}`;
  for (let k = 1; k < edges.length; k++) if (age < edges[k]) return Number.isInteger(edges[k]) ? `${edges[k - 1]}-${edges[k] - 1}` : `${edges[k - 1]}-<${edges[k]}`;
  return `${edges[edges.length - 1]}+`;
}

/** The group of a row for an attribute, or undefined when the row has no value. */
export function groupOf(row: SubgroupRow, attribute: SubgroupAttribute, ageBands: readonly number[] = DEFAULT_AGE_BANDS): string | undefined {
  if (attribute === 'view') {
    const v = row.view?.trim().toUpperCase();
    return v ? v : undefined;
  }
  const raw = row.meta?.[attribute];
  if (attribute === 'age') {
    const a = typeof raw === 'number' ? raw : typeof raw === 'string' && raw.trim() !== '' ? Number(raw) : NaN;
    return Number.isFinite(a) && a >= 0 ? ageBand(a, ageBands) : undefined;
  }
  if (typeof raw !== 'string') return undefined;
  const s = raw.trim().toLowerCase();
  if (s === 'f' || s === 'female') return 'female';
  if (s === 'm' || s === 'male') return 'male';
  return s === '' || s === 'unknown' || s === 'u' ? undefined : s;
}

/** Group order: age bands by age, others alphabetically. */
function groupOrder(attribute: SubgroupAttribute, ageBands: readonly number[]): (a: string, b: string) => number {
  if (attribute !== 'age') return (a, b) => (a < b ? -1 : a > b ? 1 : 0);
  const bands = [ageBand(-Infinity, ageBands), ...ageBands.map((e) => ageBand(e, ageBands))];
  return (a, b) => bands.indexOf(a) - bands.indexOf(b);
}

/**
 * Checks that some row of the split has each attribute (before any model runs).
 * @throws CxrError E_DATA naming the attributes the split lacks and those it has.
 */
export function checkSubgroupColumns(rows: readonly SubgroupRow[], attributes: readonly SubgroupAttribute[], split = 'test'): void {
  const present = SUBGROUP_ATTRIBUTES.filter((a) => rows.some((r) => groupOf(r, a) !== undefined));
  const lacking = attributes.filter((a) => !present.includes(a));
  if (lacking.length) {
    throw new CxrError('E_DATA', `the ${split} split has no ${lacking.join(' or ')} for any image (it has: ${present.length ? present.join(', ') : 'none of sex, age, view'})`, { lacking, present });
  }
}

const fin = (x: number): number | null => (Number.isFinite(x) ? x : null);

/**
 * Per-group AUROC with intervals and gaps (see the module comment). `truth` and `probs` are row-major
 * `rows.length × labels` (truth 1/0/−1/NaN).
 * @throws CxrError E_CONFIG (options), E_SHAPE, E_DATA (an attribute the split does not have).
 */
export function subgroupAuroc(labels: readonly string[], truth: NumArray, probs: NumArray, rows: readonly SubgroupRow[], opts: SubgroupOptions): SubgroupReport {
  const L = labels.length;
  const n = rows.length;
  if (truth.length !== n * L || probs.length !== n * L) throw new CxrError('E_SHAPE', `subgroups: ${n} rows × ${L} labels, but ${truth.length} truth values and ${probs.length} scores`);
  const minSize = opts.minSize ?? DEFAULT_SUBGROUP_MIN_SIZE;
  if (!Number.isInteger(minSize) || minSize < 1) throw new CxrError('E_CONFIG', `subgroup minimum size must be a positive integer, got ${minSize}`);
  const ageBands = checkAgeBands(opts.ageBands ?? DEFAULT_AGE_BANDS);
  const resamples = opts.bootstrap ?? DEFAULT_RESAMPLES;
  if (!Number.isInteger(resamples) || resamples < 0) throw new CxrError('E_CONFIG', `bootstrap resamples must be an integer >= 0, got ${resamples}`);
  const seed = opts.seed ?? 0;
  const level = opts.level ?? DEFAULT_CI_LEVEL;
  const split = opts.splitName ?? 'test';
  const attributes = parseSubgroupAttributes(opts.attributes);

  checkSubgroupColumns(rows, attributes, split);

  // Columns of every label, sorted once for the whole split.
  const ys: Float64Array[] = [];
  const ss: Float64Array[] = [];
  forEachLabelColumn(labels, truth, probs, 'subgroups: truth and scores', (_l, y, s) => {
    ys.push(y);
    ss.push(s);
  });
  const overallSorted = ys.map((y, j) => sortLabel(y, ss[j]));

  // Groups.
  const missing: SubgroupReport['missing'] = {};
  const leftOut: SubgroupReport['leftOut'] = [];
  const kept: Array<{ attribute: SubgroupAttribute; group: string; rows: number[] }> = [];
  for (const a of attributes) {
    const by = new Map<string, number[]>();
    let miss = 0;
    rows.forEach((r, i) => {
      const g = groupOf(r, a, ageBands);
      if (g === undefined) miss++;
      else {
        if (!by.has(g)) by.set(g, []);
        by.get(g)!.push(i);
      }
    });
    missing[a] = miss;
    for (const g of [...by.keys()].sort(groupOrder(a, ageBands))) {
      const idx = by.get(g)!;
      if (idx.length < minSize) leftOut.push({ attribute: a, group: g, n: idx.length, reason: `${idx.length} image(s), fewer than the minimum ${minSize}` });
      else kept.push({ attribute: a, group: g, rows: idx });
    }
  }

  // Each group's label columns with the other rows masked (NaN), so that weights stay indexed by split row.
  const groupSorted: SortedLabel[][] = kept.map((g) => {
    const inGroup = new Uint8Array(n);
    for (const i of g.rows) inGroup[i] = 1;
    return ys.map((y, j) => {
      const yg = new Float64Array(n);
      for (let i = 0; i < n; i++) yg[i] = inGroup[i] ? y[i] : NaN;
      return sortLabel(yg, ss[j]);
    });
  });

  const overallAuc = overallSorted.map((sl) => summarizeSorted(sl).auroc);
  const groups: SubgroupResult[] = kept.map((g, gi) => {
    const lab: Record<string, SubgroupLabel> = {};
    const macroLabels: string[] = [];
    labels.forEach((l, j) => {
      const sl = groupSorted[gi][j];
      const auc = fin(summarizeSorted(sl).auroc);
      if (auc !== null) macroLabels.push(l);
      lab[l] = { n: sl.nPos + sl.nNeg, nPos: sl.nPos, nNeg: sl.nNeg, auroc: auc, gap: auc !== null && Number.isFinite(overallAuc[j]) ? auc - overallAuc[j] : null };
    });
    const mean = (f: (j: number) => number): number => macroLabels.reduce((acc, l) => acc + f(labels.indexOf(l)), 0) / macroLabels.length;
    const macroAuc = macroLabels.length ? mean((j) => lab[labels[j]].auroc!) : NaN;
    const macroOverall = macroLabels.length ? mean((j) => overallAuc[j]) : NaN;
    return {
      attribute: g.attribute,
      group: g.group,
      n: g.rows.length,
      nPatients: new Set(g.rows.map((i) => rows[i].patientId)).size,
      labels: lab,
      macro: { auroc: fin(macroAuc), gap: fin(macroAuc - macroOverall), labels: macroLabels },
    };
  });
  const overall: SubgroupReport['overall'] = {};
  labels.forEach((l, j) => (overall[l] = { auroc: fin(overallAuc[j]) }));

  let bootstrap: SubgroupReport['bootstrap'] = null;
  if (resamples > 0 && n > 0) {
    const clusters = rows.map((r) => r.patientId);
    // Layout per resample: overall per label, then per group: L AUROCs, L gaps, macro, macro gap.
    const G = kept.length;
    const K = L + G * (2 * L + 2);
    const macroIdx = groups.map((g) => g.macro.labels.map((l) => labels.indexOf(l)));
    const m = bootstrapMatrix(
      n,
      K,
      (w, out) => {
        for (let j = 0; j < L; j++) out[j] = summarizeSorted(overallSorted[j], w).auroc;
        for (let gi = 0; gi < G; gi++) {
          const base = L + gi * (2 * L + 2);
          for (let j = 0; j < L; j++) {
            const a = summarizeSorted(groupSorted[gi][j], w).auroc;
            out[base + j] = a;
            out[base + L + j] = a - out[j];
          }
          const idx = macroIdx[gi];
          if (idx.length) {
            let sg = 0;
            let so = 0;
            for (const j of idx) {
              sg += out[base + j]; // NaN propagates: a resample where a label is undefined is left out
              so += out[j];
            }
            out[base + 2 * L] = sg / idx.length;
            out[base + 2 * L + 1] = sg / idx.length - so / idx.length;
          }
        }
      },
      { resamples, seed, clusters, level },
    );
    const ci = (k: number): CiBounds => {
      const iv = percentileInterval(column(m, k), level);
      return { lo: fin(iv.lo), hi: fin(iv.hi), n: iv.n };
    };
    labels.forEach((l, j) => {
      if (overall[l].auroc !== null) overall[l].ci = ci(j);
    });
    groups.forEach((g, gi) => {
      const base = L + gi * (2 * L + 2);
      labels.forEach((l, j) => {
        const r = g.labels[l];
        if (r.auroc !== null) r.ci = ci(base + j);
        if (r.gap !== null) r.gapCi = ci(base + L + j);
      });
      if (g.macro.auroc !== null) {
        g.macro.ci = ci(base + 2 * L);
        g.macro.gapCi = ci(base + 2 * L + 1);
      }
    });
    bootstrap = { resamples, seed, level, unit: 'patient', nUnits: new Set(clusters).size };
  }
  return { attributes, minSize, ageBands, overall, groups, leftOut, missing, bootstrap };
}
