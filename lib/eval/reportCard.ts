import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import { CxrError } from '../errors';
import { writeFileAtomic } from '../util/atomic';
import type { CiBounds, DeltaResult, LabelCurves, ScoreResult } from './score';

/**
 * The evaluation report card: `report.json` (everything, machine-readable) and `report.html` (one
 * self-contained page: inline CSS and SVG, no script, no external asset or URL) with per-label ROC and PR
 * curves, the metrics table with intervals, thresholds and the split they were fitted on, the prompts, the
 * checkpoint and dataset manifest hashes, and the configuration.
 */

/** A prompt set as shown on the card (structurally the same as lib/text/prompts' PromptSet). */
export interface ReportPromptSet {
  name: string;
  labels: Array<{ label: string; positive: string[]; negative: string[] }>;
}

/** Provenance shown on the report card. Every field is optional; absent ones are shown as "—". */
export interface ReportMeta {
  /** Page title. Default "cxr-train evaluation". */
  title?: string;
  /** Hash of the checkpoint evaluated (zero-shot runs). */
  checkpointHash?: string;
  /** Hash of the dataset manifest the predictions were made on. */
  datasetManifestHash?: string;
  /** Dataset adapter or name (`mimic-cxr`, `synthetic`, `shards`, ...): how the data were read. */
  dataset?: string;
  /**
   * What the data are, in words, for the title and the provenance: e.g. `synthetic data (cxr-train demo
   * generator, 6000 images, seed 0)` or `mimic-cxr at /data/mimic-cxr-jpg`. Default: `dataset`.
   */
  dataSource?: string;
  /** The dataset's root folder (or shard folder). */
  dataRoot?: string;
  /** Split scored (e.g. `test`). */
  testSplit?: string;
  /** Split the thresholds were fitted on (e.g. `valid`), when thresholds came from validation. */
  thresholdSplit?: string;
  /** Prompts used for zero-shot scoring. */
  prompts?: ReportPromptSet;
  /** Configuration of the run (options, model, temperature...), shown as JSON. */
  config?: unknown;
  /** ISO time stamp. Default: now. */
  createdAt?: string;
  /** Tool and version. Default "cxr-train". */
  tool?: string;
}

/** What `report.json` holds. */
export interface ReportJson {
  /** Format version of this file. */
  version: 1;
  meta: ReportMeta;
  result: ScoreResult;
  /** Data of the extra sections ({@link ReportSection}), under their keys (e.g. `calibration`, `subgroups`). */
  [section: string]: unknown;
}

/**
 * An extra section of the card, rendered by the module that computes it (e.g. lib/eval/reportSections.ts):
 * its HTML (shown after the curves) and its data (in `report.json` under `key`).
 */
export interface ReportSection {
  key: string;
  html: string;
  data: unknown;
}

/** HTML-escapes any value's string form. */
export const esc = (s: unknown): string =>
  String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;');

/** Three decimals, or — for null/non-finite. */
export const f3 = (x: number | null | undefined): string => (x === null || x === undefined || !Number.isFinite(x) ? '—' : x.toFixed(3));

/** A value with its interval in a smaller muted span. */
export const withCi = (x: number | null | undefined, ci?: CiBounds): string =>
  ci ? `${f3(x)} <span class="ci">(${f3(ci.lo)}, ${f3(ci.hi)})</span>` : f3(x);

const fmtP = (p: number | null): string => (p === null ? '—' : p < 0.001 ? '&lt;0.001' : p.toFixed(3));

const deltaCell = (d: DeltaResult): string =>
  `${d.delta === null ? '—' : (d.delta >= 0 ? '+' : '') + d.delta.toFixed(3)}${d.n > 0 ? ` <span class="ci">(${f3(d.lo)}, ${f3(d.hi)}), p ${fmtP(d.p)}</span>` : ''}`;

function fmtThreshold(t: number): string {
  if (!Number.isFinite(t)) return String(t);
  return Math.abs(t) >= 1e-3 || t === 0 ? String(+t.toPrecision(4)) : t.toExponential(3);
}

// Plot geometry (pixels) shared by every unit-square plot of the card.
const W = 240;
const H = 240;
const M = { l: 38, r: 10, t: 10, b: 34 };
/** Plot size of the card's unit-square plots. */
export const PLOT_SIZE = { width: W, height: H } as const;
/** x in [0, 1] → SVG x of a unit-square plot. */
export const px = (x: number): string => (M.l + x * (W - M.l - M.r)).toFixed(2);
/** y in [0, 1] → SVG y of a unit-square plot. */
export const py = (y: number): string => (H - M.b - y * (H - M.t - M.b)).toFixed(2);

/** Frame, grid, ticks and axis titles of a unit-square plot. */
export function axes(xLabel: string, yLabel: string): string {
  let s = `<rect x="${M.l}" y="${M.t}" width="${W - M.l - M.r}" height="${H - M.t - M.b}" class="frame"/>`;
  for (const v of [0, 0.25, 0.5, 0.75, 1]) {
    s += `<line x1="${px(v)}" y1="${py(0)}" x2="${px(v)}" y2="${py(1)}" class="grid"/>`;
    s += `<line x1="${px(0)}" y1="${py(v)}" x2="${px(1)}" y2="${py(v)}" class="grid"/>`;
    s += `<text x="${px(v)}" y="${H - M.b + 13}" class="tick" text-anchor="middle">${v}</text>`;
    s += `<text x="${M.l - 4}" y="${(+py(v) + 3).toFixed(2)}" class="tick" text-anchor="end">${v}</text>`;
  }
  s += `<text x="${px(0.5)}" y="${H - 4}" class="axis" text-anchor="middle">${esc(xLabel)}</text>`;
  s += `<text x="11" y="${py(0.5)}" class="axis" text-anchor="middle" transform="rotate(-90 11 ${py(0.5)})">${esc(yLabel)}</text>`;
  return s;
}

/** A polyline through the finite (x, y) points of a unit-square plot. */
export function polyline(xs: number[], ys: number[], cls: string): string {
  const pts: string[] = [];
  for (let i = 0; i < xs.length; i++) if (Number.isFinite(xs[i]) && Number.isFinite(ys[i])) pts.push(`${px(xs[i])},${py(ys[i])}`);
  return `<polyline points="${pts.join(' ')}" class="${cls}"/>`;
}

/** SVG of a ROC curve with the chance diagonal, the model's operating point and readers' points. */
export function rocSvg(label: string, curve: LabelCurves, auroc: number | null, point?: { fpr: number; tpr: number }, readers: Array<{ name: string; fpr: number; tpr: number }> = []): string {
  let s = `<svg class="plot roc" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" role="img" aria-label="ROC curve of ${esc(label)}">`;
  s += `<title>ROC ${esc(label)}: AUROC ${f3(auroc)}</title>`;
  s += axes('1 − specificity (FPR)', 'sensitivity (TPR)');
  s += `<line x1="${px(0)}" y1="${py(0)}" x2="${px(1)}" y2="${py(1)}" class="chance"/>`;
  s += polyline(curve.roc.fpr, curve.roc.tpr, 'curve');
  for (const r of readers) {
    if (Number.isFinite(r.fpr) && Number.isFinite(r.tpr)) s += `<rect x="${(+px(r.fpr) - 3.5).toFixed(2)}" y="${(+py(r.tpr) - 3.5).toFixed(2)}" width="7" height="7" class="reader"><title>${esc(r.name)}</title></rect>`;
  }
  if (point && Number.isFinite(point.fpr) && Number.isFinite(point.tpr)) s += `<circle cx="${px(point.fpr)}" cy="${py(point.tpr)}" r="4" class="op"><title>model at threshold</title></circle>`;
  s += `<text x="${px(0.97)}" y="${py(0.04)}" class="auc" text-anchor="end">AUROC ${f3(auroc)}</text>`;
  return s + '</svg>';
}

/** SVG of a precision-recall curve (step-wise) with the prevalence baseline. */
export function prSvg(label: string, curve: LabelCurves, auprc: number | null): string {
  let s = `<svg class="plot pr" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" role="img" aria-label="Precision-recall curve of ${esc(label)}">`;
  s += `<title>PR ${esc(label)}: AUPRC ${f3(auprc)}</title>`;
  s += axes('recall', 'precision');
  s += `<line x1="${px(0)}" y1="${py(curve.prevalence)}" x2="${px(1)}" y2="${py(curve.prevalence)}" class="chance"/>`;
  // Average precision is the area under this step function: precision is held until recall moves.
  const { recall, precision } = curve.pr;
  const xs: number[] = [0];
  const ys: number[] = [precision.length ? precision[0] : 1];
  for (let i = 0; i < recall.length; i++) {
    xs.push(recall[i], recall[i]);
    ys.push(ys[ys.length - 1], precision[i]);
  }
  s += polyline(xs, ys, 'curve');
  s += `<text x="${px(0.97)}" y="${py(0.04)}" class="auc" text-anchor="end">AUPRC ${f3(auprc)}</text>`;
  return s + '</svg>';
}

/**
 * The palette is CSS custom properties with dark variants (prefers-color-scheme), and the plots take their
 * colours from them, so curves, points and text stay readable on both backgrounds. The metrics table fits
 * a 1280 px window (headers wrap, intervals sit under their value) and scrolls in its own box when it
 * cannot (many readers, narrow windows), never cutting a column off.
 */
const CSS = `
:root{color-scheme:light dark;--fg:#1d2330;--bg:#fff;--muted:#5d6679;--rule:#d8dce4;--row:#e6e8ee;--head:#f3f5f9;--code:#f6f8fa;
--plot:#fff;--frame:#9aa3b5;--grid:#eceef3;--axis:#3c4458;--curve:#1f5fa8;--op:#d9480f;--reader:#2b8a3e;--chance:#a4abbb;--warn:#a4510b}
@media (prefers-color-scheme: dark){:root{--fg:#e4e8f0;--bg:#14171c;--muted:#a0a9bb;--rule:#3a414e;--row:#2b313b;--head:#1f242c;--code:#1b1f26;
--plot:#181c22;--frame:#6a7487;--grid:#2a303a;--axis:#c9d0dc;--curve:#6cb2ff;--op:#ff8f57;--reader:#63d17f;--chance:#717a8d;--warn:#f2a65e}}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);margin:24px;background:var(--bg)}
h1{font-size:22px;margin:0 0 4px;overflow-wrap:anywhere}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid var(--rule);padding-bottom:4px}
table{border-collapse:collapse;margin:6px 0}th,td{padding:4px 7px;border-bottom:1px solid var(--row);text-align:right;white-space:nowrap}
th{background:var(--head);font-weight:600;white-space:normal;vertical-align:bottom}td.l,th.l{text-align:left}.ci{color:var(--muted);font-size:12px}
.table-wrap{overflow-x:auto;max-width:100%}.table-wrap .ci{display:block}.table-wrap td.l{white-space:normal;min-width:7em}
.kv td{text-align:left;white-space:normal;overflow-wrap:anywhere}.kv td:first-child{color:var(--muted);padding-right:18px;white-space:nowrap}
code,pre{font:12px/1.4 ui-monospace,Menlo,Consolas,monospace}pre{background:var(--code);padding:10px;border-radius:4px;overflow:auto;max-height:420px}
.grid-cards{display:flex;flex-wrap:wrap;gap:14px}.card{border:1px solid var(--rule);border-radius:6px;padding:8px 10px}
.card h3{font-size:14px;margin:0 0 4px}.plot .frame{fill:var(--plot);stroke:var(--frame)}.plot .grid{stroke:var(--grid)}
.plot .tick{font-size:9px;fill:var(--muted)}.plot .axis{font-size:10px;fill:var(--axis)}.plot .auc{font-size:11px;fill:var(--curve);font-weight:600}
.plot .chance{stroke:var(--chance);stroke-dasharray:4 3}.plot .curve{fill:none;stroke:var(--curve);stroke-width:2}
.plot .op{fill:var(--op);stroke:var(--plot)}.plot .reader{fill:var(--reader);stroke:var(--plot)}.warn{color:var(--warn)}.muted{color:var(--muted)}
.legend span{margin-right:16px}.sw{display:inline-block;width:10px;height:10px;margin-right:4px;vertical-align:middle}
.sw.curve{background:var(--curve)}.sw.op{background:var(--op);border-radius:5px}.sw.reader{background:var(--reader)}.sw.chance{background:var(--chance)}
.plot .curve2{fill:none;stroke:var(--op);stroke-width:2}.plot .dot{fill:var(--curve);stroke:var(--plot)}.plot .dot2{fill:var(--op);stroke:var(--plot)}
.plot .bar{fill:var(--chance);opacity:.35}.plot .whisker{stroke:var(--curve);stroke-width:2}.plot .ref{stroke:var(--op);stroke-dasharray:4 3}.plot .lab{font-size:10px;fill:var(--axis)}
.sw.curve2{background:var(--op)}.gap-neg{color:var(--warn)}
`;

/** Renders the self-contained HTML page of a report card. */
export function renderReportHtml(result: ScoreResult, meta: ReportMeta = {}, sections: readonly ReportSection[] = []): string {
  const title = meta.title ?? 'cxr-train evaluation';
  const labels = Object.keys(result.labels);
  const binary = result.settings.binary;
  const bs = result.bootstrap;
  const ciNote = bs ? `${Math.round(bs.level * 100)}% CI, ${bs.resamples} bootstrap resamples by ${bs.unit} (${bs.nUnits} units), seed ${bs.seed}` : 'no bootstrap';
  const thrSources = Array.from(new Set(labels.map((l) => result.labels[l].thresholdSource)));
  const thrText = thrSources
    .map((s) => (s === 'validation' ? `fitted on ${meta.thresholdSplit ?? 'the validation split'} (max ${result.settings.thresholdCriterion.toUpperCase()}), frozen` : s === 'fixed' ? `fixed at ${result.settings.fixedThreshold}` : 'binary reads'))
    .join('; ');

  const kv: Array<[string, string]> = [
    ['Created', esc(meta.createdAt ?? new Date().toISOString())],
    ['Tool', esc(meta.tool ?? 'cxr-train')],
    ['Checkpoint hash', meta.checkpointHash ? `<code>${esc(meta.checkpointHash)}</code>` : '—'],
    ['Data source', esc(meta.dataSource ?? meta.dataset ?? '—')],
    ['Dataset adapter', esc(meta.dataset ?? '—')],
    ['Data root', meta.dataRoot ? `<code>${esc(meta.dataRoot)}</code>` : '—'],
    ['Dataset manifest hash', meta.datasetManifestHash ? `<code>${esc(meta.datasetManifestHash)}</code>` : '—'],
    ['Scored split', esc(meta.testSplit ?? '—')],
    ['Thresholds', esc(thrText || '—')],
    ['Intervals', esc(ciNote)],
    ['Rows', String(result.settings.nRows)],
  ];
  if (result.inputs) {
    kv.push(['Truth', `<code>${esc(result.inputs.truth)}</code>`], ['Predictions', `<code>${esc(result.inputs.pred)}</code>`]);
    if (result.inputs.valTruth) kv.push(['Validation', `<code>${esc(result.inputs.valTruth)}</code>, <code>${esc(result.inputs.valPred ?? '')}</code>`]);
  }

  let h = `<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">`;
  h += `<title>${esc(title)}</title><style>${CSS}</style></head><body>`;
  h += `<h1>${esc(title)}</h1><div class="muted">${binary ? 'binary reads' : 'scores'} · ${labels.length} label(s) scored${result.skipped.length ? `, ${result.skipped.length} skipped` : ''}</div>`;
  h += `<h2>Provenance</h2><table class="kv">${kv.map(([k, v]) => `<tr><td>${esc(k)}</td><td>${v}</td></tr>`).join('')}</table>`;

  // Metrics table.
  const mac = result.macro;
  h += `<h2>Metrics</h2><div class="muted">Values with ${esc(ciNote)}. F1 and MCC at the listed threshold (score ≥ threshold is positive).</div>`;
  h += `<div class="table-wrap"><table class="metrics"><thead><tr><th class="l">Label</th><th>n</th><th>pos</th><th>neg</th><th>masked</th>`;
  if (!binary) h += `<th>AUROC</th><th>AUPRC</th>`;
  h += `<th>F1</th><th>MCC</th><th>Sens.</th><th>Spec.</th><th>Threshold</th><th class="l">Source</th></tr></thead><tbody>`;
  for (const l of labels) {
    const r = result.labels[l];
    h += `<tr><td class="l">${esc(l)}</td><td>${r.n}</td><td>${r.nPos}</td><td>${r.nNeg}</td><td>${r.nMasked}</td>`;
    if (!binary) h += `<td>${withCi(r.auroc, r.ci?.auroc)}</td><td>${withCi(r.auprc, r.ci?.auprc)}</td>`;
    h += `<td>${withCi(r.f1, r.ci?.f1)}</td><td>${withCi(r.mcc, r.ci?.mcc)}</td><td>${f3(r.sensitivity)}</td><td>${f3(r.specificity)}</td>`;
    h += `<td>${esc(fmtThreshold(r.threshold))}</td><td class="l">${esc(r.thresholdSource)}</td></tr>`;
  }
  h += `<tr><th class="l">Macro (${mac.labels.length})</th><th></th><th></th><th></th><th></th>`;
  if (!binary) h += `<th>${withCi(mac.auroc, mac.ci?.auroc)}</th><th>${withCi(mac.auprc, mac.ci?.auprc)}</th>`;
  h += `<th>${withCi(mac.f1, mac.ci?.f1)}</th><th>${withCi(mac.mcc, mac.ci?.mcc)}</th><th></th><th></th><th></th><th></th></tr></tbody></table></div>`;
  if (result.skipped.length) {
    h += `<p class="warn">Skipped (not in macro means): ${result.skipped.map((s) => `<b>${esc(s.label)}</b> — ${esc(s.reason)}`).join('; ')}</p>`;
  }
  if (result.warnings.length) h += `<ul class="warn">${result.warnings.map((w) => `<li>${esc(w)}</li>`).join('')}</ul>`;

  // Readers.
  const rd = result.readers;
  if (rd) {
    h += `<h2>Model vs radiologists</h2><div class="muted">Model minus reader mean, paired bootstrap over the same resamples.</div>`;
    h += `<div class="table-wrap"><table class="readers"><thead><tr><th class="l">Label</th><th>Model F1</th>${rd.readers.map((r) => `<th>${esc(r.name)} F1</th>`).join('')}<th>Reader mean F1</th><th>Δ F1</th>`;
    h += `<th>Model MCC</th>${rd.readers.map((r) => `<th>${esc(r.name)} MCC</th>`).join('')}<th>Reader mean MCC</th><th>Δ MCC</th></tr></thead><tbody>`;
    for (const l of labels) {
      const m = result.labels[l];
      const mean = rd.mean.labels[l];
      const c = rd.comparison.labels[l];
      h += `<tr><td class="l">${esc(l)}</td><td>${f3(m.f1)}</td>${rd.readers.map((r) => `<td>${f3(r.labels[l]?.f1)}</td>`).join('')}<td>${withCi(mean?.f1, mean?.ci?.f1)}</td><td>${c ? deltaCell(c.f1) : '—'}</td>`;
      h += `<td>${f3(m.mcc)}</td>${rd.readers.map((r) => `<td>${f3(r.labels[l]?.mcc)}</td>`).join('')}<td>${withCi(mean?.mcc, mean?.ci?.mcc)}</td><td>${c ? deltaCell(c.mcc) : '—'}</td></tr>`;
    }
    h += `<tr><th class="l">Macro</th><th>${f3(mac.f1)}</th>${rd.readers.map((r) => `<th>${f3(r.macro.f1)}</th>`).join('')}<th>${withCi(rd.mean.macro.f1, rd.mean.macro.ci?.f1)}</th><th>${deltaCell(rd.comparison.macro.f1)}</th>`;
    h += `<th>${f3(mac.mcc)}</th>${rd.readers.map((r) => `<th>${f3(r.macro.mcc)}</th>`).join('')}<th>${withCi(rd.mean.macro.mcc, rd.mean.macro.ci?.mcc)}</th><th>${deltaCell(rd.comparison.macro.mcc)}</th></tr></tbody></table></div>`;
  }

  // Curves.
  const curves = result.curves ?? {};
  const withCurves = labels.filter((l) => curves[l]);
  if (withCurves.length) {
    h += `<h2>ROC and precision-recall curves</h2><div class="legend muted"><span><i class="sw curve"></i>model</span>`;
    h += `<span><i class="sw op"></i>operating point at the threshold</span>`;
    if (rd) h += `<span><i class="sw reader"></i>radiologists</span>`;
    h += `<span><i class="sw chance"></i>chance / prevalence</span></div><div class="grid-cards">`;
    for (const l of withCurves) {
      const r = result.labels[l];
      const point = r.sensitivity !== null && r.specificity !== null ? { fpr: 1 - r.specificity, tpr: r.sensitivity } : undefined;
      const readers = rd
        ? rd.readers.flatMap((x) => {
            const q = x.labels[l];
            return q && q.sensitivity !== null && q.specificity !== null ? [{ name: x.name, fpr: 1 - q.specificity, tpr: q.sensitivity }] : [];
          })
        : [];
      h += `<div class="card"><h3>${esc(l)} <span class="muted">(${r.nPos}+ / ${r.nNeg}−)</span></h3>${rocSvg(l, curves[l], r.auroc, point, readers)}${prSvg(l, curves[l], r.auprc)}</div>`;
    }
    h += `</div>`;
  }
  for (const sec of sections) h += sec.html;

  // Prompts.
  if (meta.prompts) {
    h += `<h2>Prompts: ${esc(meta.prompts.name)}</h2><table><thead><tr><th class="l">Label</th><th class="l">Positive</th><th class="l">Negative</th></tr></thead><tbody>`;
    for (const p of meta.prompts.labels) {
      const list = (a: string[]): string => a.map((t) => `<code>${esc(t)}</code>`).join('<br>');
      h += `<tr><td class="l">${esc(p.label)}</td><td class="l">${list(p.positive)}</td><td class="l">${list(p.negative)}</td></tr>`;
    }
    h += `</tbody></table>`;
  }
  if (meta.config !== undefined) h += `<h2>Configuration</h2><pre>${esc(JSON.stringify(meta.config, null, 2))}</pre>`;
  h += `<h2>Settings</h2><pre>${esc(JSON.stringify({ settings: result.settings, bootstrap: result.bootstrap }, null, 2))}</pre>`;
  return h + `</body></html>\n`;
}

/**
 * Writes `report.json` and `report.html` into `dir` (created if needed), each atomically. Returns their
 * paths. Non-finite numbers become null in the JSON.
 */
export function writeReportCard(dir: string, result: ScoreResult, meta: ReportMeta = {}, sections: readonly ReportSection[] = []): { json: string; html: string } {
  try {
    fs.mkdirSync(dir, { recursive: true });
  } catch (e) {
    throw new CxrError('E_IO', `cannot create ${dir}: ${(e as Error).message}`, { dir }, { cause: e });
  }
  const m: ReportMeta = { ...meta, createdAt: meta.createdAt ?? new Date().toISOString() };
  const json: ReportJson = { version: 1, meta: m, result, ...Object.fromEntries(sections.map((x) => [x.key, x.data])) };
  const jsonPath = path.join(dir, 'report.json');
  const htmlPath = path.join(dir, 'report.html');
  writeFileAtomic(jsonPath, JSON.stringify(json, (_k, v) => (typeof v === 'number' && !Number.isFinite(v) ? null : v), 2) + '\n');
  writeFileAtomic(htmlPath, renderReportHtml(result, m, sections));
  return { json: jsonPath, html: htmlPath };
}

/** The report card's stylesheet, for pages in the same style (the probe's: lib/eval/probe/html.ts). */
export const REPORT_CARD_CSS = CSS;
