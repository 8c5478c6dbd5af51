/**
 * Report-card sections of the retrieval protocols and of checkpoint ensembles (HTML only; the numbers
 * come from ./retrievalEval and ./ensemble). Same page conventions as the card: inline, escaped, no script.
 */
import { esc, f3, type ReportSection } from './reportCard';
import { memberNames, type EnsembleReport } from './ensemble';
import type { RetrievalReport, RetrievalScores } from './retrievalEval';
import type { DeltaResult } from './score';

const pct = (x: number | null | undefined): string => (x === null || x === undefined || !Number.isFinite(x) ? '—' : (100 * x).toFixed(1));
const r1 = (x: number): string => (Number.isInteger(x) ? String(x) : x.toFixed(1));

function directionRows(name: string, s: RetrievalScores, ks: number[]): string {
  let h = '';
  for (const [dir, d] of [['image → text', s.imageToText], ['text → image', s.textToImage]] as const) {
    if (!d) continue;
    h += `<tr><td class="l">${esc(name)}</td><td class="l">${dir}</td><td>${d.queries}</td><td>${d.candidates}</td>`;
    h += ks.map((k) => `<td>${pct(d.recall[String(k)])}</td>`).join('') + `<td>${r1(d.meanRank)}</td><td>${r1(d.medianRank)}</td></tr>`;
  }
  return h;
}

/** The "Retrieval" section: Recall@K and ranks both ways, then k×200 with per-label counts. */
export function retrievalSection(r: RetrievalReport): ReportSection {
  const ks = r.ks;
  let h = `<div class="muted">${esc(r.split)} split. Report text: the ${esc(r.text.sections)} sections, whole (sampler mode ${esc(r.text.mode)}), cut to ${r.text.contextLength} tokens by the model's tokenizer. `;
  h += `${r.images.withText} of ${r.images.scored} scored images have a usable text (${r.images.noReport} without a report, ${r.images.noSentence} without a usable sentence); `;
  h += `${r.texts.distinct} distinct texts, ${r.texts.imagesSharingText} images share their text with another. ${esc(r.text.duplicates)}; ${esc(r.text.ties)}. Recall in %.</div>`;
  h += `<div class="table-wrap"><table class="retrieval"><thead><tr><th class="l">Model</th><th class="l">Direction</th><th>Queries</th><th>Candidates</th>`;
  h += ks.map((k) => `<th>R@${k}</th>`).join('') + `<th>Mean rank</th><th>Median rank</th></tr></thead><tbody>`;
  const names = memberNames((r.members ?? []).map((m) => m.checkpoint));
  (r.members ?? []).forEach((m, i) => (h += directionRows(names[i], m.scores, ks)));
  h += directionRows(r.members ? 'ensemble' : 'model', r.scores, ks);
  h += `</tbody></table></div>`;
  const kx = r.scores.kx200;
  if (r.kx200) {
    const k = r.kx200.labels.length;
    h += `<h3>${k}×${r.kx200.perLabel} label-prompt retrieval</h3><div class="muted">Images positive for exactly one of the ${k} labels (uncertain for none of them), up to ${r.kx200.perLabel} per label (seeded subset, seed ${r.kx200.seed}); each is classified by the most similar of the ${k} labels' positive prompts (template ensemble). Accuracy = Recall@1.</div>`;
    if (kx) {
      h += `<div class="table-wrap"><table class="kx200"><thead><tr><th class="l">Label</th><th>Eligible</th><th>Used</th><th>Correct</th><th>Recall %</th></tr></thead><tbody>`;
      for (const p of kx.perLabel) h += `<tr><td class="l">${esc(p.label)}${p.chosen < kx.perLabelTarget ? ' <span class="warn">(fewer than ' + kx.perLabelTarget + ')</span>' : ''}</td><td>${p.eligible}</td><td>${p.chosen}</td><td>${p.correct}</td><td>${pct(p.recall)}</td></tr>`;
      h += `<tr><th class="l">Accuracy${r.members ? ' (ensemble)' : ''}</th><th></th><th>${kx.n}</th><th></th><th>${pct(kx.accuracy)}</th></tr>`;
      (r.members ?? []).forEach((m, i) => {
        if (m.scores.kx200) h += `<tr><td class="l">${esc(names[i])}</td><td></td><td>${m.scores.kx200.n}</td><td></td><td>${pct(m.scores.kx200.accuracy)}</td></tr>`;
      });
      h += `</tbody></table></div>`;
    }
  }
  if (r.warnings.length) h += `<ul class="warn">${r.warnings.map((w) => `<li>${esc(w)}</li>`).join('')}</ul>`;
  return { key: 'retrieval', html: `<h2 id="retrieval">Retrieval</h2>${h}`, data: r };
}

const delta = (d: DeltaResult | undefined): string =>
  !d || d.delta === null ? '—' : `${d.delta >= 0 ? '+' : ''}${d.delta.toFixed(3)}${d.n > 0 ? ` <span class="ci">(${f3(d.lo)}, ${f3(d.hi)}), p ${d.p === null ? '—' : d.p < 0.001 ? '&lt;0.001' : d.p.toFixed(3)}</span>` : ''}`;

/** The "Ensemble members" section: AUROC per label of every member and of the ensemble, and the deltas. */
export function ensembleSection(e: EnsembleReport): ReportSection {
  const cols = [...e.members, e.ensemble];
  const names = [...memberNames(e.members.map((m) => m.name)), 'ensemble'];
  let h = `<div class="muted">${e.members.length} members, ${e.average === 'logits' ? 'logits averaged (sigmoid of the mean logit)' : 'probabilities averaged'}. AUROC with intervals; Δ = ensemble − best member (${esc(names[e.best.index])}, chosen on the ${e.best.chosenOn} split by macro AUROC)`;
  h += e.bootstrap ? `, paired bootstrap (${e.bootstrap.resamples} resamples by ${e.bootstrap.unit}, ${e.bootstrap.nUnits} units, seed ${e.bootstrap.seed}).</div>` : ', no bootstrap.</div>';
  h += `<div class="table-wrap"><table class="ensemble"><thead><tr><th class="l">Label</th>`;
  h += cols.map((_, i) => `<th>${esc(names[i])}${i === e.best.index ? ' (best)' : ''}</th>`).join('') + `<th>Δ AUROC</th></tr></thead><tbody>`;
  const cell = (x: { auroc: number | null; lo: number | null; hi: number | null } | undefined): string =>
    !x ? '—' : `${f3(x.auroc)}${x.lo !== null ? ` <span class="ci">(${f3(x.lo)}, ${f3(x.hi)})</span>` : ''}`;
  for (const l of e.labels) h += `<tr><td class="l">${esc(l)}</td>${cols.map((c) => `<td>${cell(c.labels[l])}</td>`).join('')}<td>${delta(e.deltas?.labels[l])}</td></tr>`;
  h += `<tr><th class="l">Macro</th>${cols.map((c) => `<th>${cell({ auroc: c.macroAuroc, lo: c.macroCi?.lo ?? null, hi: c.macroCi?.hi ?? null })}</th>`).join('')}<th>${delta(e.deltas?.macro)}</th></tr>`;
  if (e.members.some((m) => m.valMacroAuroc !== undefined)) h += `<tr><td class="l">Validation macro</td>${cols.map((c) => `<td>${f3(c.valMacroAuroc)}</td>`).join('')}<td></td></tr>`;
  h += `</tbody></table></div>`;
  return { key: 'ensemble', html: `<h2 id="ensemble">Ensemble members</h2>${h}`, data: e };
}
