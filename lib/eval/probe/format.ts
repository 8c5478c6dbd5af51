/** The probe's results as a text table (what `cxr-train probe` prints). */
import { pct, type ProbeFit, type ProbeResult } from './protocol';
import type { CiBounds } from '../scoring/types';

const f3 = (x: number | null | undefined): string => (x === null || x === undefined || !Number.isFinite(x) ? '—' : x.toFixed(3));
const cell = (x: number | null | undefined, ci?: CiBounds): string => (ci ? `${f3(x)} (${f3(ci.lo)}, ${f3(ci.hi)})` : f3(x));
const fmtC = (c: number): string => (c >= 1e-2 && c < 1e4 ? String(+c.toPrecision(3)) : c.toExponential(0));

function table(rows: string[][]): string {
  const w = rows[0].map((_, k) => Math.max(...rows.map((r) => r[k].length)));
  return rows.map((r) => r.map((c, k) => c.padEnd(w[k])).join('  ').trimEnd()).join('\n') + '\n';
}

/**
 * Test AUROC per label: zero-shot, then one column per label fraction (95 % patient-bootstrap intervals
 * when the bootstrap ran), a macro row, the C kept per fraction, the paired difference to zero-shot at the
 * largest fraction, the subset sizes, skipped labels and warnings.
 */
export function formatProbeText(r: ProbeResult): string {
  const fr = r.settings.fractions;
  const hasZs = r.labels.some((l) => l.zeroShot);
  const head = ['label', ...(hasZs ? ['zero-shot'] : []), ...fr.map((f) => `probe ${pct(f)}`)];
  const rows = [head];
  for (const l of r.labels) {
    rows.push([
      l.label,
      ...(hasZs ? [l.zeroShot ? cell(l.zeroShot.auroc, l.zeroShot.ci) : 'no prompt'] : []),
      ...l.fractions.map((f) => ('skipped' in f ? 'one class' : cell(f.auroc, f.ci))),
    ]);
  }
  rows.push([`macro (${r.macro.labels.length} label(s))`, ...(hasZs ? [f3(r.macro.zeroShot)] : []), ...r.macro.fractions.map((m) => f3(m.auroc))]);
  const ci = r.settings.bootstrap ? `, 95% CI over ${r.settings.bootstrap.resamples} patient bootstrap resamples` : '';
  let s = `Test AUROC${ci}: zero-shot vs linear probes on frozen image embeddings (C chosen on validation log-loss)\n`;
  s += table(rows);
  const cRows = [['C kept', ...fr.map((f) => pct(f))]];
  for (const l of r.labels) cRows.push([l.label, ...l.fractions.map((f) => ('skipped' in f ? '—' : fmtC(f.C)))]);
  s += '\n' + table(cRows);
  const last = fr.length - 1;
  const deltas = r.labels
    .map((l) => ({ l, f: l.fractions[last] }))
    .filter((x): x is { l: typeof x.l; f: ProbeFit } => !('skipped' in x.f) && x.f.deltaZeroShot !== undefined);
  if (deltas.length) {
    s += `\nprobe ${pct(fr[last])} − zero-shot (paired bootstrap):\n`;
    s += table(
      deltas.map(({ l, f }) => {
        const d = f.deltaZeroShot!;
        return [l.label, `${d.delta !== null && d.delta >= 0 ? '+' : ''}${f3(d.delta)}`, `(${f3(d.lo)}, ${f3(d.hi)})`, `p ${d.p === null ? '—' : d.p < 0.001 ? '<0.001' : d.p.toFixed(3)}`];
      }),
    );
  }
  const sub = r.labels[0]?.fractions.map((f) => `${pct(f.fraction)}: ${f.patients} patient(s), ${f.images} image(s)`).join('; ');
  if (sub) s += `\ntraining subsets (by patient, seed ${r.settings.subsetSeed}): ${sub}\n`;
  s += `images: train ${r.settings.images.train}, validate ${r.settings.images.validate}, test ${r.settings.images.test}; embedding dim ${r.settings.dim}\n`;
  for (const k of r.skipped) s += `skipped ${k.label}: ${k.reason}\n`;
  return s;
}
