/**
 * Text summaries `cxr-train eval` prints for calibration and subgroups (the full numbers are in --json and
 * report.json).
 */
import type { CalibrationReport } from '../eval/calibrationReport';
import type { SubgroupReport } from '../eval/subgroups';

const f3 = (x: number | null | undefined): string => (x === null || x === undefined || !Number.isFinite(x) ? '—' : x.toFixed(3));
const signed = (x: number | null): string => (x === null ? '—' : `${x >= 0 ? '+' : ''}${x.toFixed(3)}`);

/** Macro Brier and ECE of the scored split, before → after the maps when fitted. */
export function formatCalibrationText(c: CalibrationReport): string {
  const b = c.test.before.macro;
  const a = c.test.after?.macro;
  const arrow = (x: number | null, y: number | null | undefined): string => (a ? `${f3(x)} -> ${f3(y)}` : f3(x));
  let s = `calibration (${c.test.split}, macro over ${Object.keys(c.test.before.labels).length} labels, ${c.nBins} bins): Brier ${arrow(b.brier, a?.brier)}, ECE equal-width ${arrow(b.eceUniform, a?.eceUniform)}, ECE equal-mass ${arrow(b.eceQuantile, a?.eceQuantile)}`;
  if (c.fit) s += ` (${c.fit.method} scaling fitted on ${c.fit.split}: ${Object.keys(c.fit.maps).length} label(s)${c.fit.skipped.length ? `; no map for ${c.fit.skipped.map((x) => x.label).join(', ')}` : ''})`;
  return s + '\n';
}

/** One line per group: macro AUROC with its interval and the gap to overall; groups left out. */
export function formatSubgroupText(r: SubgroupReport): string {
  let s = `subgroups (macro AUROC, gap to overall${r.bootstrap ? `, ${Math.round(r.bootstrap.level * 100)}% CI` : ''}):\n`;
  const w = Math.max(...r.groups.map((g) => `${g.attribute}: ${g.group}`.length), 10);
  for (const g of r.groups) {
    const ci = g.macro.ci ? ` (${f3(g.macro.ci.lo)}, ${f3(g.macro.ci.hi)})` : '';
    const gci = g.macro.gapCi ? ` (${f3(g.macro.gapCi.lo)}, ${f3(g.macro.gapCi.hi)})` : '';
    s += `  ${`${g.attribute}: ${g.group}`.padEnd(w)}  n=${String(g.n).padStart(5)}  AUROC ${f3(g.macro.auroc)}${ci}  gap ${signed(g.macro.gap)}${gci}\n`;
  }
  if (r.leftOut.length) s += `  left out (under ${r.minSize} images): ${r.leftOut.map((g) => `${g.attribute} ${g.group} (${g.n})`).join(', ')}\n`;
  return s;
}
