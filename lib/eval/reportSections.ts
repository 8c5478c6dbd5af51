/**
 * The report card's calibration and subgroup sections (HTML with inline SVG, and the data for report.json),
 * drawn with the card's plot helpers and palette.
 */
import { axes, esc, f3, PLOT_SIZE, polyline, px, py, withCi } from './reportCard';
import type { ReportSection } from './reportCard';
import type { ReliabilityBins } from './calibration';
import type { CalibrationReport } from './calibrationReport';
import type { LabelMap } from './calibrationMap';
import type { SubgroupReport } from './subgroups';
import type { CiBounds } from './scoring/types';

/** SVG reliability diagram: bin means before (and after) calibration, the diagonal, bin counts as bars. */
export function reliabilitySvg(label: string, before: ReliabilityBins, after?: ReliabilityBins): string {
  const { width: W, height: H } = PLOT_SIZE;
  let s = `<svg class="plot reliability" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" role="img" aria-label="Reliability diagram of ${esc(label)}">`;
  s += `<title>Reliability ${esc(label)}: ECE ${f3(before.ece)}${after ? ` → ${f3(after.ece)} calibrated` : ''}</title>`;
  s += axes('mean predicted probability', 'fraction positive');
  const maxCount = Math.max(1, ...before.count);
  before.bin.forEach((b, k) => {
    const x0 = before.edges[b];
    const x1 = before.edges[b + 1];
    const h = (0.25 * before.count[k]) / maxCount;
    s += `<rect x="${px(x0)}" y="${py(h)}" width="${(+px(x1) - +px(x0)).toFixed(2)}" height="${(+py(0) - +py(h)).toFixed(2)}" class="bar"><title>${before.count[k]} image(s) with p in (${+x0.toFixed(3)}, ${+x1.toFixed(3)}]</title></rect>`;
  });
  s += `<line x1="${px(0)}" y1="${py(0)}" x2="${px(1)}" y2="${py(1)}" class="chance"/>`;
  const curve = (r: ReliabilityBins, line: string, dot: string): string =>
    polyline(r.meanPredicted, r.fractionPositive, line) +
    r.meanPredicted.map((x, k) => `<circle cx="${px(x)}" cy="${py(r.fractionPositive[k])}" r="3" class="${dot}"><title>${r.count[k]} image(s): predicted ${f3(x)}, observed ${f3(r.fractionPositive[k])}</title></circle>`).join('');
  s += curve(before, 'curve', 'dot');
  if (after) s += curve(after, 'curve2', 'dot2');
  s += `<text x="${px(0.03)}" y="${py(0.93)}" class="auc">ECE ${f3(before.ece)}${after ? ` → ${f3(after.ece)}` : ''}</text>`;
  return s + '</svg>';
}

function mapText(m: LabelMap | undefined): string {
  if (!m) return '—';
  return m.method === 'temperature' ? `T = ${m.temperature.toPrecision(4)}` : `a = ${m.a.toPrecision(4)}, b = ${m.b.toPrecision(4)}`;
}

/** The calibration section: metrics table (before/after), maps, reliability diagrams per label. */
export function calibrationSection(c: CalibrationReport): ReportSection {
  const before = c.test.before;
  const after = c.test.after;
  const fit = c.fit;
  const labels = Object.keys(before.labels);
  let h = `<h2 id="calibration">Calibration (${esc(c.test.split)} split)</h2>`;
  h += `<p class="muted">Reliability with ${c.nBins} bins: ECE is the image-weighted mean gap between predicted probability and observed frequency per bin, equal-width bins (as drawn) and equal-mass bins; Brier is the mean squared error of the probability. `;
  h += fit
    ? `${fit.method === 'temperature' ? 'Temperature scaling σ(z/T)' : 'Platt scaling σ(a·z + b)'} fitted per label on the ${esc(fit.split)} split by maximum likelihood, applied to the ${esc(c.test.split)} split; z is the logit of the zero-shot probability (${esc(fit.logit)}). The maps are increasing, so AUROC and the calls at the thresholds do not change.</p>`
    : `No calibration map was fitted (<code>--calibrate temperature|platt</code> with <code>--val-split</code> fits one).</p>`;
  const two = (a: number | null | undefined, b: number | null | undefined): string => (after ? `<td>${f3(a)}</td><td>${f3(b)}</td>` : `<td>${f3(a)}</td>`);
  const sub = after ? '<th>before</th><th>after</th>' : '';
  const span = after ? ' colspan="2"' : '';
  h += `<div class="table-wrap"><table><thead><tr><th class="l" rowspan="${after ? 2 : 1}">Label</th><th rowspan="${after ? 2 : 1}">n (+)</th><th${span}>Brier</th><th${span}>ECE equal-width</th><th${span}>ECE equal-mass</th>${fit ? `<th rowspan="2">Map</th>` : ''}</tr>`;
  if (after) h += `<tr>${sub}${sub}${sub}</tr>`;
  h += `</thead><tbody>`;
  for (const l of labels) {
    const b = before.labels[l];
    const a = after?.labels[l];
    h += `<tr><td class="l">${esc(l)}</td><td>${b.n} (${b.nPos})</td>${two(b.brier, a?.brier)}${two(b.eceUniform, a?.eceUniform)}${two(b.eceQuantile, a?.eceQuantile)}${fit ? `<td class="l">${fit.maps[l] ? mapText(fit.maps[l]) : `<span class="muted">${esc(fit.skipped.find((x) => x.label === l)?.reason ?? 'none')}</span>`}</td>` : ''}</tr>`;
  }
  h += `<tr><th class="l">Macro mean</th><th></th>${two(before.macro.brier, after?.macro.brier).replace(/td>/g, 'th>')}${two(before.macro.eceUniform, after?.macro.eceUniform).replace(/td>/g, 'th>')}${two(before.macro.eceQuantile, after?.macro.eceQuantile).replace(/td>/g, 'th>')}${fit ? '<th></th>' : ''}</tr></tbody></table></div>`;
  if (before.skipped.length) h += `<p class="muted">No 0/1 truth in the ${esc(c.test.split)} split: ${before.skipped.map(esc).join(', ')}.</p>`;
  h += `<div class="legend muted"><span><i class="sw curve"></i>model${after ? ' (uncalibrated)' : ''}</span>${after ? `<span><i class="sw curve2"></i>calibrated</span>` : ''}<span><i class="sw chance"></i>perfect calibration</span><span>bars: images per bin</span></div><div class="grid-cards">`;
  for (const l of labels) {
    const b = before.labels[l];
    // A label without a map keeps its probabilities: one curve, not two on top of each other.
    const mapped = fit?.maps[l] ? after?.labels[l]?.bins.uniform : undefined;
    h += `<div class="card"><h3>${esc(l)} <span class="muted">(${b.nPos}+ / ${b.n - b.nPos}−)${fit && !fit.maps[l] ? ' · no map' : ''}</span></h3>${reliabilitySvg(l, b.bins.uniform, mapped)}</div>`;
  }
  h += `</div>`;
  return { key: 'calibration', html: h, data: c };
}

const gapCell = (g: number | null, ci?: CiBounds): string =>
  g === null ? '—' : `<span class="${ci && ci.hi !== null && ci.hi < 0 ? 'gap-neg' : ''}">${g >= 0 ? '+' : ''}${g.toFixed(3)}</span>${ci ? ` <span class="ci">(${f3(ci.lo)}, ${f3(ci.hi)})</span>` : ''}`;

/** Forest plot of each group's macro AUROC with its interval, against the overall macro AUROC. */
export function subgroupForestSvg(r: SubgroupReport, overallMacro: number | null): string {
  const rows = r.groups.filter((g) => g.macro.auroc !== null);
  const left = 150;
  const right = 20;
  const top = 10;
  const rowH = 20;
  const W = 560;
  const H = top + rowH * Math.max(1, rows.length) + 36;
  const vals = rows.flatMap((g) => [g.macro.auroc!, g.macro.ci?.lo ?? g.macro.auroc!, g.macro.ci?.hi ?? g.macro.auroc!]).concat(overallMacro !== null ? [overallMacro] : []);
  const lo = Math.max(0, Math.floor((Math.min(...vals, 1) - 0.02) * 20) / 20);
  const hi = Math.min(1, Math.ceil((Math.max(...vals, 0) + 0.02) * 20) / 20);
  const X = (v: number): string => (left + ((v - lo) / Math.max(1e-9, hi - lo)) * (W - left - right)).toFixed(2);
  const bottom = top + rowH * Math.max(1, rows.length);
  let s = `<svg class="plot forest" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" role="img" aria-label="Macro AUROC by subgroup">`;
  s += `<title>Macro AUROC by subgroup with ${r.bootstrap ? `${Math.round(r.bootstrap.level * 100)}% intervals` : 'no intervals'}; dashed: overall</title>`;
  s += `<rect x="${left}" y="${top}" width="${W - left - right}" height="${bottom - top}" class="frame"/>`;
  for (let k = 0; k <= 4; k++) {
    const v = lo + ((hi - lo) * k) / 4;
    s += `<line x1="${X(v)}" y1="${top}" x2="${X(v)}" y2="${bottom}" class="grid"/><text x="${X(v)}" y="${bottom + 13}" class="tick" text-anchor="middle">${v.toFixed(2)}</text>`;
  }
  s += `<text x="${X((lo + hi) / 2)}" y="${H - 6}" class="axis" text-anchor="middle">macro AUROC</text>`;
  if (overallMacro !== null) s += `<line x1="${X(overallMacro)}" y1="${top}" x2="${X(overallMacro)}" y2="${bottom}" class="ref"><title>overall ${f3(overallMacro)}</title></line>`;
  rows.forEach((g, i) => {
    const y = (top + rowH * i + rowH / 2).toFixed(2);
    s += `<text x="${left - 6}" y="${(+y + 3).toFixed(2)}" class="lab" text-anchor="end">${esc(g.attribute)}: ${esc(g.group)} (${g.n})</text>`;
    if (g.macro.ci && g.macro.ci.lo !== null && g.macro.ci.hi !== null) s += `<line x1="${X(g.macro.ci.lo)}" y1="${y}" x2="${X(g.macro.ci.hi)}" y2="${y}" class="whisker"/>`;
    s += `<circle cx="${X(g.macro.auroc!)}" cy="${y}" r="4" class="dot"><title>${esc(g.attribute)} ${esc(g.group)}: ${f3(g.macro.auroc)}${g.macro.ci ? ` (${f3(g.macro.ci.lo)}, ${f3(g.macro.ci.hi)})` : ''}</title></circle>`;
  });
  return s + '</svg>';
}

/** The subgroup section: forest plot, per-group table of AUROC (CI) and gap to overall, groups left out. */
export function subgroupSection(r: SubgroupReport, overallMacro: { auroc: number | null; ci?: CiBounds }): ReportSection {
  const labels = Object.keys(r.overall);
  let h = `<h2 id="subgroups">Subgroups: ${r.attributes.map(esc).join(', ')}</h2>`;
  h += `<p class="muted">AUROC within each group (labels with both classes in it), gap = group − overall, ${r.bootstrap ? `${Math.round(r.bootstrap.level * 100)}% intervals from ${r.bootstrap.resamples} patient bootstrap resamples of the whole split (seed ${r.bootstrap.seed}; group, overall and gap on the same draws)` : 'no bootstrap'}. Groups under ${r.minSize} images are left out${r.attributes.includes('age') ? `; age bands at ${r.ageBands.join(', ')} years` : ''}. Macro: mean over the group's labels, its gap against the overall macro over the same labels.</p>`;
  h += subgroupForestSvg(r, overallMacro.auroc);
  h += `<div class="table-wrap"><table><thead><tr><th class="l">Group</th><th>Images (patients)</th><th>Macro AUROC</th><th>Gap</th>${labels.map((l) => `<th>${esc(l)}</th>`).join('')}</tr></thead><tbody>`;
  h += `<tr><td class="l"><b>overall</b></td><td></td><td>${withCi(overallMacro.auroc, overallMacro.ci)}</td><td></td>${labels.map((l) => `<td>${withCi(r.overall[l].auroc, r.overall[l].ci)}</td>`).join('')}</tr>`;
  for (const g of r.groups) {
    h += `<tr><td class="l">${esc(g.attribute)}: ${esc(g.group)}</td><td>${g.n} (${g.nPatients})</td><td>${withCi(g.macro.auroc, g.macro.ci)}</td><td>${gapCell(g.macro.gap, g.macro.gapCi)}</td>`;
    h += labels.map((l) => {
      const x = g.labels[l];
      return x.auroc === null ? `<td class="muted" title="${x.nPos} positive, ${x.nNeg} negative">—</td>` : `<td>${withCi(x.auroc, x.ci)}<span class="ci">gap ${gapCell(x.gap, x.gapCi)}</span></td>`;
    }).join('');
    h += `</tr>`;
  }
  h += `</tbody></table></div>`;
  if (r.leftOut.length) h += `<p class="warn">Left out (under ${r.minSize} images): ${r.leftOut.map((g) => `${esc(g.attribute)} ${esc(g.group)} (${g.n})`).join(', ')}.</p>`;
  const miss = Object.entries(r.missing).filter(([, n]) => n);
  if (miss.length) h += `<p class="muted">Images without a value: ${miss.map(([a, n]) => `${esc(a)} ${n}`).join(', ')}.</p>`;
  return { key: 'subgroups', html: h, data: r };
}
