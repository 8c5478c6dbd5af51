/**
 * `probe.html`: the probe's results as one self-contained page in the report card's style (its stylesheet,
 * no script, no external asset): provenance, the AUROC table (zero-shot, then one column per label
 * fraction, with intervals), the C kept with its validation log-loss, the paired difference to zero-shot
 * and the settings.
 */
import { REPORT_CARD_CSS, esc } from '../reportCard';
import type { CiBounds } from '../scoring/types';
import { pct, type ProbeFit, type ProbeResult } from './protocol';

/** Provenance shown on the page. */
export interface ProbePageMeta {
  checkpoint: string;
  checkpointHash: string;
  dataset: string;
  splits: Record<string, { name: string; images: number; skipped: unknown[]; cache: string }>;
  zeroShot: { prompts: string; promptHash: string; temperature: number } | null;
  createdAt?: string;
}

const f3 = (x: number | null | undefined): string => (x === null || x === undefined || !Number.isFinite(x) ? '—' : x.toFixed(3));
const withCi = (x: number | null | undefined, ci?: CiBounds): string => (ci ? `${f3(x)} <span class="ci">(${f3(ci.lo)}, ${f3(ci.hi)})</span>` : f3(x));

/** Renders the page. */
export function renderProbeHtml(r: ProbeResult, meta: ProbePageMeta): string {
  const fr = r.settings.fractions;
  const hasZs = r.labels.some((l) => l.zeroShot);
  const title = `cxr-train probe: linear probes vs zero-shot, ${meta.dataset}`;
  const kv: Array<[string, string]> = [
    ['Created', esc(meta.createdAt ?? new Date().toISOString())],
    ['Checkpoint', `<code>${esc(meta.checkpoint)}</code>`],
    ['Checkpoint hash', `<code>${esc(meta.checkpointHash)}</code>`],
    ['Dataset', esc(meta.dataset)],
    ...Object.entries(meta.splits).map(([k, s]): [string, string] => [`${k} split`, esc(`${s.name}: ${s.images} image(s), ${s.skipped.length} skipped, cache ${s.cache}`)]),
    ['Zero-shot', meta.zeroShot ? esc(`prompt set ${meta.zeroShot.prompts}, temperature ${meta.zeroShot.temperature}`) : '—'],
    ['Intervals', esc(r.settings.bootstrap ? `95% CI, ${r.settings.bootstrap.resamples} bootstrap resamples by patient, seed ${r.settings.bootstrap.seed}` : 'no bootstrap')],
  ];
  let h = `<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">`;
  h += `<title>${esc(title)}</title><style>${REPORT_CARD_CSS}</style></head><body>`;
  h += `<h1>${esc(title)}</h1><div class="muted">${r.labels.length} label(s) probed${r.skipped.length ? `, ${r.skipped.length} skipped` : ''} · features: ${esc(r.settings.features)} · C by ${esc(r.settings.selection)}</div>`;
  h += `<h2>Provenance</h2><table class="kv">${kv.map(([k, v]) => `<tr><td>${esc(k)}</td><td>${v}</td></tr>`).join('')}</table>`;

  h += `<h2>Test AUROC</h2><div class="table-wrap"><table><thead><tr><th class="l">Label</th>${hasZs ? '<th>Zero-shot</th>' : ''}${fr.map((f) => `<th>Probe ${esc(pct(f))}</th>`).join('')}</tr></thead><tbody>`;
  for (const l of r.labels) {
    h += `<tr><td class="l">${esc(l.label)}</td>${hasZs ? `<td>${l.zeroShot ? withCi(l.zeroShot.auroc, l.zeroShot.ci) : 'no prompt'}</td>` : ''}`;
    h += l.fractions.map((f) => `<td>${'skipped' in f ? `<span class="warn" title="${esc(f.skipped)}">one class</span>` : withCi(f.auroc, f.ci)}</td>`).join('') + '</tr>';
  }
  h += `<tr><td class="l"><b>Macro</b> <span class="ci">(${r.macro.labels.length} label(s))</span></td>${hasZs ? `<td>${f3(r.macro.zeroShot)}</td>` : ''}${r.macro.fractions.map((m) => `<td>${f3(m.auroc)}</td>`).join('')}</tr>`;
  h += `</tbody></table></div>`;

  h += `<h2>Training subsets and C</h2><div class="muted">Subsets by patient (seed ${r.settings.subsetSeed}), nested; C from ${esc(r.settings.cGrid.join(', '))} with the lowest validation log-loss.</div>`;
  h += `<div class="table-wrap"><table><thead><tr><th class="l">Label</th>${fr.map((f) => `<th>${esc(pct(f))}: images (pos/neg), C, val log-loss</th>`).join('')}</tr></thead><tbody>`;
  for (const l of r.labels) {
    h += `<tr><td class="l">${esc(l.label)}</td>`;
    h += l.fractions
      .map((f) => {
        if ('skipped' in f) return `<td class="warn">${esc(f.skipped)}</td>`;
        const g = f.grid.find((x) => x.C === f.C);
        return `<td>${f.n} (${f.nPos}/${f.nNeg}), C ${esc(String(f.C))}, ${g ? g.valLogLoss.toFixed(4) : '—'}</td>`;
      })
      .join('');
    h += '</tr>';
  }
  h += `</tbody></table></div>`;

  const last = fr.length - 1;
  const deltas = r.labels.filter((l) => !('skipped' in l.fractions[last]) && (l.fractions[last] as ProbeFit).deltaZeroShot);
  if (deltas.length) {
    h += `<h2>Probe ${esc(pct(fr[last]))} − zero-shot</h2><div class="muted">Paired bootstrap over the same resamples.</div><table><thead><tr><th class="l">Label</th><th>Δ AUROC</th><th>95% CI</th><th>p</th></tr></thead><tbody>`;
    for (const l of deltas) {
      const d = (l.fractions[last] as ProbeFit).deltaZeroShot!;
      h += `<tr><td class="l">${esc(l.label)}</td><td>${d.delta !== null && d.delta >= 0 ? '+' : ''}${f3(d.delta)}</td><td>(${f3(d.lo)}, ${f3(d.hi)})</td><td>${d.p === null ? '—' : d.p < 0.001 ? '&lt;0.001' : d.p.toFixed(3)}</td></tr>`;
    }
    h += `</tbody></table>`;
  }
  if (r.skipped.length || r.warnings.length) {
    h += `<h2>Warnings</h2><ul>${[...r.warnings].map((w) => `<li class="warn">${esc(w)}</li>`).join('')}</ul>`;
  }
  h += `<h2>Settings</h2><pre>${esc(JSON.stringify(r.settings, null, 2))}</pre>`;
  return h + `</body></html>\n`;
}
