/** Plain-text tables of `eval --retrieval` and of ensemble members, as the eval command prints them. */
import type { RetrievalReport, RetrievalScores } from '../eval/retrievalEval';
import { memberNames, type EnsembleReport } from '../eval/ensemble';

const pct = (x: number | null | undefined): string => (x === null || x === undefined || !Number.isFinite(x) ? '—' : (100 * x).toFixed(1));
const num = (x: number): string => (Number.isInteger(x) ? String(x) : x.toFixed(1));
const f3 = (x: number | null | undefined): string => (x === null || x === undefined || !Number.isFinite(x) ? '—' : x.toFixed(3));

function table(rows: string[][]): string {
  const w = rows[0].map((_, j) => Math.max(...rows.map((r) => (r[j] ?? '').length)));
  return rows.map((r) => r.map((c, j) => (j === 0 ? c.padEnd(w[j]) : c.padStart(w[j]))).join('  ').trimEnd()).join('\n') + '\n';
}

function directionRows(name: string, s: RetrievalScores, ks: number[]): string[][] {
  const out: string[][] = [];
  for (const [dir, d] of [['image→text', s.imageToText], ['text→image', s.textToImage]] as const) {
    if (d) out.push([name, dir, String(d.queries), String(d.candidates), ...ks.map((k) => pct(d.recall[String(k)])), num(d.meanRank), num(d.medianRank)]);
  }
  return out;
}

/** The retrieval summary: both directions (every member, then the ensemble) and k×200 per label. */
export function formatRetrievalText(r: RetrievalReport): string {
  let s = `\nretrieval on ${r.split}: ${r.images.withText}/${r.images.scored} images with a report text (${r.text.sections}, whole, ≤ ${r.text.contextLength} tokens), ${r.texts.distinct} distinct texts; recall in %\n`;
  const rows: string[][] = [['model', 'direction', 'queries', 'candidates', ...r.ks.map((k) => `R@${k}`), 'mean rank', 'median rank']];
  const names = memberNames((r.members ?? []).map((m) => m.checkpoint));
  (r.members ?? []).forEach((m, i) => rows.push(...directionRows(names[i], m.scores, r.ks)));
  rows.push(...directionRows(r.members ? 'ensemble' : 'model', r.scores, r.ks));
  s += table(rows);
  const kx = r.scores.kx200;
  if (r.kx200 && kx) {
    s += `\n${r.kx200.labels.length}×${r.kx200.perLabel} label-prompt retrieval: accuracy ${pct(kx.accuracy)}% on ${kx.n} images\n`;
    const kr: string[][] = [['label', 'eligible', 'used', 'correct', 'recall %']];
    for (const p of kx.perLabel) kr.push([p.label + (p.chosen < kx.perLabelTarget ? ' (short)' : ''), String(p.eligible), String(p.chosen), String(p.correct), pct(p.recall)]);
    s += table(kr);
  }
  for (const w of r.warnings) s += `warning: ${w}\n`;
  return s;
}

/** The member table: macro and per-label AUROC of each member and of the ensemble, and the deltas. */
export function formatEnsembleText(e: EnsembleReport): string {
  const cols = [...memberNames(e.members.map((m) => m.name)).map((n, i) => n + (i === e.best.index ? '*' : '')), 'ensemble'];
  const rows: string[][] = [['AUROC', ...cols, 'Δ ens−best (95% CI), p']];
  const d = (x: { delta: number | null; lo: number | null; hi: number | null; p: number | null } | undefined): string =>
    !x || x.delta === null ? '—' : `${x.delta >= 0 ? '+' : ''}${x.delta.toFixed(3)} (${f3(x.lo)}, ${f3(x.hi)}), p ${x.p === null ? '—' : x.p.toFixed(3)}`;
  for (const l of e.labels) rows.push([l, ...[...e.members, e.ensemble].map((m) => f3(m.labels[l]?.auroc)), d(e.deltas?.labels[l])]);
  rows.push(['macro', ...[...e.members, e.ensemble].map((m) => f3(m.macroAuroc)), d(e.deltas?.macro)]);
  return `\nensemble of ${e.members.length} (${e.average} averaged); * best member, chosen on the ${e.best.chosenOn} split\n` + table(rows);
}
