/**
 * The ablation's statistics: per-run scores against the truth, mean ± sd over seeds, paired bootstrap
 * differences against the baseline, and a report card per setting.
 */
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import type { Sample } from '../../data/sample';
import { macroMean, perLabelAuroc, sortLabel, summarizeSorted } from '../../eval/metrics';
import type { SortedLabel } from '../../eval/metrics';
import { bootstrapMatrix, column, pairedPValue, percentileInterval } from '../../eval/bootstrap';
import { scoreTables } from '../../eval/score';
import type { ScoreResult } from '../../eval/score';
import { writeReportCard } from '../../eval/reportCard';
import type { CsvTable } from '../../util/csv';
import { planRuns, relaxTitle, SETTING_TITLE, type AblationConfig, type AblationSetting, type Relaxation, type RunResult, type SplitScores } from './config';
import type { AblationData } from './data';

// ------------------------------------------------------------------------------------------------
// Aggregation

/** Truth matrix of a split aligned with `scores` (1, 0, -1, NaN). */
function truthOf(scores: SplitScores, samples: Sample[]): number[][] {
  const byId = new Map(samples.map((s) => [s.id, s]));
  return scores.ids.map((id) => scores.labels.map((l) => byId.get(id)?.labels[l] ?? NaN));
}

/** AUROC per label of a run's scores against the split's truth (rows aligned with `scores.ids`). */
function labelAurocs(scores: SplitScores, truth: number[][]): Record<string, number | null> {
  return perLabelAuroc(scores.labels, truth.flat(), scores.probs.flat());
}

export function macroAurocOf(scores: SplitScores, samples: Sample[]): number | null {
  const m = macroMean(labelAurocs(scores, truthOf(scores, samples))).mean;
  return Number.isNaN(m) ? null : m;
}

function table(header: string[], rows: Array<Array<string | number>>, source: string): CsvTable {
  return { header, rows: rows.map((r) => r.map((v) => (typeof v === 'number' ? (Number.isNaN(v) ? '' : String(v)) : v))), source };
}

/** Scores one run's split through the `cxr-train score` pipeline (thresholds fitted on validation). */
function scoreRun(r: RunResult, split: 'test' | 'shifted', data: AblationData, bootstrap: number, seed: number, curves: boolean): ScoreResult {
  const s = r.scores[split]!;
  const samples = (split === 'test' ? data.test : data.shifted!).samples;
  const byId = new Map(samples.map((x) => [x.id, x]));
  const valById = new Map(data.run.val.samples.map((x) => [x.id, x]));
  const header = ['id', 'patient_id', ...s.labels];
  const truthRows = s.ids.map((id) => [id, byId.get(id)!.patientId, ...s.labels.map((l) => byId.get(id)!.labels[l] ?? NaN)]);
  const v = r.scores.validate;
  return scoreTables(
    {
      truth: table(header, truthRows, `${split} truth`),
      pred: table(['id', ...s.labels], s.ids.map((id, i) => [id, ...s.probs[i]]), `${r.id} ${split}`),
      valTruth: table(['id', ...v.labels], v.ids.map((id) => [id, ...v.labels.map((l) => valById.get(id)!.labels[l] ?? NaN)]), 'validate truth'),
      valPred: table(['id', ...v.labels], v.ids.map((id, i) => [id, ...v.probs[i]]), `${r.id} validate`),
    },
    { bootstrap, seed, curves, patientCol: 'patient_id' },
  );
}

/** Mean and sample standard deviation (sd null for one value). */
function meanSd(xs: Array<number | null>): { mean: number | null; sd: number | null; n: number } {
  const v = xs.filter((x): x is number => x !== null && Number.isFinite(x));
  if (v.length === 0) return { mean: null, sd: null, n: 0 };
  const m = v.reduce((p, x) => p + x, 0) / v.length;
  const sd = v.length > 1 ? Math.sqrt(v.reduce((p, x) => p + (x - m) ** 2, 0) / (v.length - 1)) : null;
  return { mean: m, sd, n: v.length };
}

/** One setting's numbers on one split. */
export interface SettingSplitResult {
  macroAuroc: { mean: number | null; sd: number | null; n: number; perSeed: Array<number | null> };
  macroF1: { mean: number | null; sd: number | null; n: number };
  macroMcc: { mean: number | null; sd: number | null; n: number };
  /** Per-label AUROC, mean over seeds. */
  perLabelAuroc: Record<string, number | null>;
  /** Setting minus baseline, macro AUROC averaged over seeds, paired bootstrap over test patients. */
  deltaVsBaseline: PairedDelta | null;
  /** Setting minus sentence sampling alone (for the settings that add a relaxation to sampling), likewise. */
  deltaVsSampling?: PairedDelta | null;
}

/** A paired bootstrap difference of macro AUROC. */
export interface PairedDelta {
  delta: number | null;
  lo: number | null;
  hi: number | null;
  p: number | null;
  resamples: number;
}

/** How much a setting's relaxation engaged, and the similarities it saw: means over seeds of each run's statistics. */
export interface SettingEngagement {
  /** Mean over steps and seeds of the fraction of positive pairs the relaxation changed. */
  engaged: number | null;
  /** Mean threshold used (α; the running α of the adaptive form; the mean n + m of the margin form). */
  alpha: number | null;
  /** Positive similarities (10 / 50 / 90 % quantiles) and mean negative at the first step and at the last. */
  first: { q10: number | null; q50: number | null; q90: number | null; neg: number | null };
  last: { q10: number | null; q50: number | null; q90: number | null; neg: number | null };
}

/** The experiment's results (results.json). */
export interface AblationResults {
  createdAt: string;
  commandLine: string;
  commit: string | null;
  machine: string;
  elapsedMs: number;
  config: AblationConfig;
  data: Record<string, string>;
  pretrain: unknown;
  baseline: string;
  /** Labels in the macro means of each split (both classes present). */
  macroLabels: Record<string, string[]>;
  settings: Array<{
    setting: string;
    title: string;
    alpha: number | null;
    relax?: Relaxation | null;
    seeds: number[];
    splits: Record<string, SettingSplitResult>;
    engagement?: SettingEngagement | null;
  }>;
  /** The setting the relaxed settings with sampling are also compared against (null when not run). */
  samplingSetting?: string | null;
}

function settingTitle(setting: string, relax: Relaxation | null | undefined): string {
  if (setting === 'pretrained') return 'pre-trained, no fine-tuning';
  const [kind] = setting.split('@');
  return SETTING_TITLE[kind as AblationSetting] + (relax ? ` (${relaxTitle(relax)})` : '');
}

function engagementOf(runs: RunResult[]): SettingEngagement | null {
  const st = runs.map((r) => r.lossStats).filter((x): x is NonNullable<typeof x> => !!x && x.steps > 0);
  if (st.length === 0) return null;
  const mean = (xs: Array<number | null | undefined>) => meanSd(xs.map((x) => (x === undefined ? null : x))).mean;
  const at = (k: 'first' | 'last') => ({
    q10: mean(st.map((x) => x[k]?.posQ10)),
    q50: mean(st.map((x) => x[k]?.posQ50)),
    q90: mean(st.map((x) => x[k]?.posQ90)),
    neg: mean(st.map((x) => x[k]?.negMean)),
  });
  return { engaged: mean(st.map((x) => x.engagedMean)), alpha: mean(st.map((x) => x.alphaMean)), first: at('first'), last: at('last') };
}

/** Runs of `setting` and `other` paired by seed. */
function pairBySeed(runs: RunResult[], other: RunResult[]): [RunResult[], RunResult[]] {
  const A: RunResult[] = [];
  const B: RunResult[] = [];
  for (const r of runs) {
    const b = other.find((x) => x.seed === r.seed);
    if (b) {
      A.push(r);
      B.push(b);
    }
  }
  return [A, B];
}

/**
 * Paired bootstrap over test rows (resampled by patient) of mean over seeds of
 * macroAUROC(setting, seed) − macroAUROC(baseline, seed), on a fixed label set.
 */
function pairedMacroDelta(runsA: RunResult[], runsB: RunResult[], split: 'test' | 'shifted', truth: number[][], labels: string[], clusters: string[], resamples: number, seed: number) {
  const sorted = (runs: RunResult[]) =>
    runs.map((r) => {
      const s = r.scores[split]!;
      return labels.map((l) => {
        const j = s.labels.indexOf(l);
        return sortLabel(truth.map((row) => row[j]), s.probs.map((row) => row[j]));
      });
    });
  const A = sorted(runsA);
  const B = sorted(runsB);
  const macro = (sl: SortedLabel[], w?: Float64Array): number => {
    let sum = 0;
    for (const x of sl) sum += summarizeSorted(x, w).auroc;
    return sum / sl.length;
  };
  const stat = (w?: Float64Array): number => {
    let d = 0;
    for (let k = 0; k < A.length; k++) d += macro(A[k], w) - macro(B[k], w);
    return d / A.length;
  };
  const delta = stat();
  if (resamples === 0) return { delta: Number.isFinite(delta) ? delta : null, lo: null, hi: null, p: null, resamples: 0 };
  const m = bootstrapMatrix(truth.length, 1, (w, out) => {
    out[0] = stat(w);
  }, { resamples, seed, clusters });
  const d = column(m, 0);
  const iv = percentileInterval(d);
  const fin = (x: number) => (Number.isFinite(x) ? x : null);
  return { delta: fin(delta), lo: fin(iv.lo), hi: fin(iv.hi), p: fin(pairedPValue(d)), resamples: iv.n };
}

function gitCommit(): string | null {
  try {
    return execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: path.resolve(__dirname, '..', '..'), stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim() || null;
  } catch {
    return null;
  }
}

export function aggregate(a: AblationConfig, results: RunResult[], data: AblationData, extra: { pretrain: unknown; elapsedMs: number; commandLine: string }): AblationResults {
  const bySetting = new Map<string, RunResult[]>();
  for (const r of results) {
    if (!bySetting.has(r.setting)) bySetting.set(r.setting, []);
    bySetting.get(r.setting)!.push(r);
  }
  const baseline = planRuns(a).find((r) => r.kind !== 'pretrained')!.setting;
  const samplingSetting = bySetting.has('sampling') ? 'sampling' : null;
  const splits: Array<'test' | 'shifted'> = data.shifted ? ['test', 'shifted'] : ['test'];
  const macroLabels: Record<string, string[]> = {};
  const out: AblationResults['settings'] = [];
  const truths: Record<string, number[][]> = {};
  const clusters: Record<string, string[]> = {};
  for (const split of splits) {
    const ref = results[0].scores[split]!;
    const samples = (split === 'test' ? data.test : data.shifted!).samples;
    truths[split] = truthOf(ref, samples);
    const byId = new Map(samples.map((x) => [x.id, x.patientId]));
    clusters[split] = ref.ids.map((id) => byId.get(id)!);
    // Labels with both classes in this split, the same for every setting.
    macroLabels[split] = ref.labels.filter((_, j) => {
      const col = truths[split].map((r) => r[j]);
      return col.includes(1) && col.includes(0);
    });
  }
  for (const [setting, runs] of bySetting) {
    runs.sort((x, y) => x.seed - y.seed);
    const entry = {
      setting,
      title: settingTitle(setting, runs[0].relax),
      alpha: runs[0].alpha,
      relax: runs[0].relax ?? null,
      seeds: runs.map((r) => r.seed),
      splits: {} as Record<string, SettingSplitResult>,
      engagement: setting === 'pretrained' ? null : engagementOf(runs),
    };
    for (const split of splits) {
      const labels = macroLabels[split];
      const per = runs.map((r) => labelAurocs(r.scores[split]!, truths[split]));
      const macroPerSeed = per.map((p) => {
        const m = macroMean(p, labels).mean;
        return Number.isNaN(m) ? null : m;
      });
      const scored = runs.map((r) => scoreRun(r, split, data, 0, a.eval.bootstrapSeed, false));
      const perLabelMean: Record<string, number | null> = {};
      for (const l of runs[0].scores[split]!.labels) perLabelMean[l] = meanSd(per.map((p) => p[l])).mean;
      let delta: SettingSplitResult['deltaVsBaseline'] = null;
      if (setting !== baseline && setting !== 'pretrained' && bySetting.has(baseline)) {
        const [pairsA, pairsB] = pairBySeed(runs, bySetting.get(baseline)!);
        if (pairsA.length) delta = pairedMacroDelta(pairsA, pairsB, split, truths[split], labels, clusters[split], a.eval.bootstrap, a.eval.bootstrapSeed);
      }
      // + sampling + relaxation against sampling alone: what the relaxation adds on top of sampling.
      let deltaS: PairedDelta | null = null;
      if (runs[0].kind === 'both' && samplingSetting && samplingSetting !== baseline) {
        const [pairsA, pairsB] = pairBySeed(runs, bySetting.get(samplingSetting)!);
        if (pairsA.length) deltaS = pairedMacroDelta(pairsA, pairsB, split, truths[split], labels, clusters[split], a.eval.bootstrap, a.eval.bootstrapSeed);
      }
      entry.splits[split] = {
        macroAuroc: { ...meanSd(macroPerSeed), perSeed: macroPerSeed },
        macroF1: meanSd(scored.map((s) => s.macro.f1)),
        macroMcc: meanSd(scored.map((s) => s.macro.mcc)),
        perLabelAuroc: perLabelMean,
        deltaVsBaseline: delta,
        deltaVsSampling: deltaS,
      };
    }
    out.push(entry);
  }
  return {
    createdAt: new Date().toISOString(),
    commandLine: extra.commandLine,
    commit: gitCommit(),
    machine: `${os.cpus()[0]?.model ?? 'unknown CPU'}, ${os.cpus().length} logical cores, ${os.platform()} ${os.arch()}, node ${process.version}`,
    elapsedMs: extra.elapsedMs,
    config: a,
    data: data.description,
    pretrain: extra.pretrain,
    baseline,
    samplingSetting,
    macroLabels,
    settings: out,
  };
}

/** Report card per setting, of its first seed, on the test split (and the shifted one), with bootstrap CIs. */
export function writeReportCards(a: AblationConfig, results: RunResult[], data: AblationData, outDir: string): void {
  const first = new Map<string, RunResult>();
  for (const r of [...results].sort((x, y) => x.seed - y.seed)) if (!first.has(r.setting)) first.set(r.setting, r);
  for (const [setting, r] of first) {
    for (const split of data.shifted ? (['test', 'shifted'] as const) : (['test'] as const)) {
      const res = scoreRun(r, split, data, a.eval.bootstrap, a.eval.bootstrapSeed, true);
      const dir = path.join(outDir, 'report-cards', setting.replace(/[^\w.@-]/g, '_'), split);
      writeReportCard(dir, res, { title: `Ablation: ${settingTitle(setting, r.relax)}, seed ${r.seed}, ${split}`, dataset: data.run.dataset, ...(data.description[split] ? { dataSource: data.description[split] } : {}), testSplit: split, thresholdSplit: 'validate', config: { setting, seed: r.seed, alpha: r.alpha, relax: r.relax ?? null } });
    }
  }
}
