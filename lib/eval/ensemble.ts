/**
 * Checkpoint ensembles as CheXzero reports them (docs/evaluation.md, "Ensembles"): every member's scores
 * beside the ensemble's, and the paired patient-level bootstrap of the ensemble over its best member.
 *
 * The ensemble averages the members' probabilities (CheXzero), or their logits (t·u·(v⁺ − v⁻), then the
 * sigmoid) with `average: 'logits'`. The best member is the one with the highest macro AUROC on the
 * validation split when there is one (chosen before the test split is looked at), else on the scored split
 * (which favours the member, so the ensemble's gain is if anything understated).
 */
import path from 'node:path';
import { CxrError } from '../errors';
import { bootstrapMatrix, column, DEFAULT_RESAMPLES, pairedBootstrap, pairedPValue, percentileInterval } from './bootstrap';
import { macroMean, perLabelAuroc, sortLabel, summarizeSorted, type SortedLabel } from './metrics';
import type { DeltaResult, ScoreResult } from './score';
import { sigmoid } from './zeroShot';

/**
 * Short names of checkpoints for tables: the folder or file name, with as many parent folders as needed to
 * tell them apart (`a/model`, `b/model`).
 */
export function memberNames(paths: readonly string[]): string[] {
  const parts = paths.map((p) => path.resolve(p).split(path.sep).filter(Boolean));
  const name = (i: number, depth: number) => parts[i].slice(-depth).join('/');
  return paths.map((_, i) => {
    let d = 1;
    while (d < parts[i].length && paths.some((_, j) => j !== i && name(j, d) === name(i, d))) d++;
    return name(i, d) || paths[i];
  });
}

/** How members are combined. */
export type EnsembleAverage = 'probabilities' | 'logits';

/** The sigmoid of the mean of several logit matrices (same length; `E_SHAPE` otherwise), in double precision. */
export function averageLogits(list: ReadonlyArray<ArrayLike<number>>): Float32Array {
  if (list.length === 0) throw new CxrError('E_CONFIG', 'ensemble of zero logit sets');
  const n = list[0].length;
  const out = new Float32Array(n);
  for (const [k, x] of list.entries()) if (x.length !== n) throw new CxrError('E_SHAPE', `logit set ${k} has ${x.length} values, set 0 has ${n}`);
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (const x of list) s += x[i];
    out[i] = sigmoid(s / list.length);
  }
  return out;
}

/** One member (or the ensemble) in the table. */
export interface EnsembleRow {
  /** Checkpoint path, or `ensemble`. */
  name: string;
  checkpointHash?: string;
  /** Per-label AUROC with its interval (null when the label was skipped). */
  labels: Record<string, { auroc: number | null; lo: number | null; hi: number | null }>;
  macroAuroc: number | null;
  macroCi: { lo: number | null; hi: number | null } | null;
  /** Macro AUROC on the validation split (the best-member choice), when there is one. */
  valMacroAuroc?: number | null;
}

/** The ensemble section of the report. */
export interface EnsembleReport {
  average: EnsembleAverage;
  /** Labels, in column order. */
  labels: string[];
  members: EnsembleRow[];
  ensemble: EnsembleRow;
  /** The member the ensemble is compared with, and on which split it was chosen. */
  best: { index: number; name: string; chosenOn: 'validation' | 'test'; macroAuroc: number | null };
  /** Ensemble − best member AUROC: per label and macro, paired bootstrap over the same resamples (null: off). */
  deltas: { labels: Record<string, DeltaResult>; macro: DeltaResult } | null;
  /** Resamples, seed and unit of the deltas. */
  bootstrap: { resamples: number; seed: number; unit: 'patient' | 'row'; nUnits: number } | null;
}

/** Inputs of {@link compareEnsemble}. */
export interface EnsembleInputs {
  average: EnsembleAverage;
  labels: string[];
  checkpoints: string[];
  hashes: string[];
  /** Scores of each member and of the ensemble on the scored split (as `scoreTables` gives them). */
  memberResults: ScoreResult[];
  ensembleResult: ScoreResult;
  /** `n × L` truth and probabilities of the scored split (members, ensemble), row-major, same rows. */
  truth: Float64Array;
  memberProbs: Float32Array[];
  ensembleProbs: Float32Array;
  /** Patient of each row (the bootstrap unit); null: rows. */
  patients: string[] | null;
  /** Validation truth and member probabilities, when a validation split was scored. */
  val?: { truth: Float64Array; memberProbs: Float32Array[] };
  /** Resamples (0: no deltas) and seed. Default 1000 and 0. */
  bootstrap?: number;
  seed?: number;
}

function rowOf(name: string, r: ScoreResult, labels: string[], hash?: string): EnsembleRow {
  const out: EnsembleRow['labels'] = {};
  for (const l of labels) {
    const s = r.labels[l];
    out[l] = { auroc: s?.auroc ?? null, lo: s?.ci?.auroc?.lo ?? null, hi: s?.ci?.auroc?.hi ?? null };
  }
  const ci = r.macro.ci?.auroc;
  return { name, ...(hash ? { checkpointHash: hash } : {}), labels: out, macroAuroc: r.macro.auroc, macroCi: ci ? { lo: ci.lo, hi: ci.hi } : null };
}

const fin = (x: number): number | null => (Number.isFinite(x) ? x : null);

/** The member table, the best member and the paired deltas. `E_CONFIG` for fewer than two members. */
export function compareEnsemble(x: EnsembleInputs): EnsembleReport {
  const M = x.checkpoints.length;
  if (M < 2) throw new CxrError('E_CONFIG', 'an ensemble comparison needs at least two members');
  if (x.memberResults.length !== M || x.memberProbs.length !== M) throw new CxrError('E_SHAPE', `${M} members but ${x.memberResults.length} results and ${x.memberProbs.length} prediction sets`);
  const L = x.labels.length;
  const n = x.truth.length / L;
  const members = x.checkpoints.map((c, i) => rowOf(c, x.memberResults[i], x.labels, x.hashes[i]));
  let chosenOn: 'validation' | 'test' = 'test';
  let key = members.map((m) => m.macroAuroc);
  if (x.val) {
    const vals = x.val.memberProbs.map((p) => macroMean(perLabelAuroc(x.labels, x.val!.truth, p)).mean);
    vals.forEach((v, i) => (members[i].valMacroAuroc = fin(v)));
    if (vals.some((v) => Number.isFinite(v))) {
      chosenOn = 'validation';
      key = vals.map(fin);
    }
  }
  let best = 0;
  key.forEach((v, i) => {
    if (v !== null && (key[best] === null || v > key[best]!)) best = i;
  });
  const report: EnsembleReport = {
    average: x.average,
    labels: x.labels.slice(),
    members,
    ensemble: rowOf('ensemble', x.ensembleResult, x.labels),
    best: { index: best, name: x.checkpoints[best], chosenOn, macroAuroc: members[best].macroAuroc },
    deltas: null,
    bootstrap: null,
  };
  const resamples = x.bootstrap ?? DEFAULT_RESAMPLES;
  if (resamples === 0) return report;
  const seed = x.seed ?? 0;
  const clusters = x.patients ?? undefined;
  const col = (a: ArrayLike<number>, j: number): Float64Array => {
    const c = new Float64Array(n);
    for (let i = 0; i < n; i++) c[i] = a[i * L + j];
    return c;
  };
  // Labels the scoring kept (both classes present); the same set as its macro mean.
  const kept = x.labels.filter((l) => x.ensembleResult.labels[l] !== undefined && x.ensembleResult.labels[l].auroc !== null);
  const labels: Record<string, DeltaResult> = {};
  const sortedE: SortedLabel[] = [];
  const sortedB: SortedLabel[] = [];
  for (const l of kept) {
    const j = x.labels.indexOf(l);
    const y = col(x.truth, j);
    const e = col(x.ensembleProbs, j);
    const b = col(x.memberProbs[best], j);
    const d = pairedBootstrap(y, e, b, 'auroc', { resamples, seed, ...(clusters ? { clusters } : {}) });
    labels[l] = { delta: fin(d.delta), lo: fin(d.lo), hi: fin(d.hi), n: d.n, p: fin(d.p) };
    sortedE.push(sortLabel(y, e));
    sortedB.push(sortLabel(y, b));
  }
  // Macro: the mean over the kept labels of each resample's AUROC difference (labels undefined in a resample left out).
  const m = bootstrapMatrix(
    n,
    1,
    (w, out) => {
      let s = 0;
      let c = 0;
      for (let k = 0; k < sortedE.length; k++) {
        const d = summarizeSorted(sortedE[k], w).auroc - summarizeSorted(sortedB[k], w).auroc;
        if (Number.isFinite(d)) {
          s += d;
          c++;
        }
      }
      out[0] = c > 0 ? s / c : NaN;
    },
    { resamples, seed, ...(clusters ? { clusters } : {}) },
  );
  let point = 0;
  for (let k = 0; k < sortedE.length; k++) point += summarizeSorted(sortedE[k]).auroc - summarizeSorted(sortedB[k]).auroc;
  const dm = column(m, 0);
  const iv = percentileInterval(dm);
  report.deltas = { labels, macro: { delta: sortedE.length ? fin(point / sortedE.length) : null, lo: fin(iv.lo), hi: fin(iv.hi), n: iv.n, p: fin(pairedPValue(dm)) } };
  report.bootstrap = { resamples, seed, unit: clusters ? 'patient' : 'row', nUnits: clusters ? new Set(clusters).size : n };
  return report;
}
