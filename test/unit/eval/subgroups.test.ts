import { subgroupAuroc, ageBand, groupOf, parseSubgroupAttributes, DEFAULT_AGE_BANDS } from '../../../lib/eval/subgroups';
import type { SubgroupRow } from '../../../lib/eval/subgroups';
import { auroc } from '../../../lib/eval/metrics';
import { scoreTables } from '../../../lib/eval/score';
import { formatCsv, parseCsvTable } from '../../../lib/util/csv';
import { expectCode } from '../../helpers/errors';
import { lcg } from './helpers';

/** 240 rows of 90 patients, two labels (B with uncertain and missing truth), sex per patient, view and age per row. */
function makeCase(): { labels: string[]; truth: Float64Array; probs: Float64Array; rows: SubgroupRow[] } {
  const r = lcg(7);
  const labels = ['A', 'B'];
  const n = 240;
  const truth = new Float64Array(n * 2);
  const probs = new Float64Array(n * 2);
  const rows: SubgroupRow[] = [];
  for (let i = 0; i < n; i++) {
    const pid = `p${i % 90}`;
    const female = (i % 90) % 3 !== 0;
    const view = r() < 0.3 ? 'AP' : r() < 0.05 ? 'LATERAL' : 'PA';
    rows.push({ patientId: pid, view, meta: { sex: female ? 'F' : 'Male', age: 20 + ((i * 37) % 75) } });
    for (let j = 0; j < 2; j++) {
      const y = r() < 0.35 ? 1 : 0;
      truth[2 * i + j] = j === 1 && i % 17 === 0 ? -1 : j === 1 && i % 23 === 0 ? NaN : y;
      // Weaker separation on AP images: a subgroup gap to find.
      probs[2 * i + j] = Math.round((r() * 0.6 + y * (view === 'AP' ? 0.1 : 0.35)) * 100) / 100;
    }
  }
  return { labels, truth, probs, rows };
}

describe('subgroup AUROC', () => {
  const c = makeCase();
  const rep = subgroupAuroc(c.labels, c.truth, c.probs, c.rows, { attributes: ['sex', 'view', 'age'], minSize: 20, bootstrap: 200, seed: 3 });

  test('each group AUROC is the overall routine on the filtered rows, the gap is group − overall', () => {
    const col = (m: Float64Array, j: number, keep: (i: number) => boolean): number[] => c.rows.flatMap((_, i) => (keep(i) ? [m[2 * i + j]] : []));
    const mask = (y: number[]): { y: number[]; idx: boolean[] } => ({ y, idx: y.map((v) => v === 0 || v === 1) });
    expect(rep.groups.length).toBeGreaterThan(4);
    for (const g of rep.groups) {
      const inG = (i: number): boolean => groupOf(c.rows[i], g.attribute) === g.group;
      expect(g.n).toBe(c.rows.filter((_, i) => inG(i)).length);
      c.labels.forEach((l, j) => {
        const m = mask(col(c.truth, j, inG));
        const y = m.y.filter((_, k) => m.idx[k]);
        const s = col(c.probs, j, inG).filter((_, k) => m.idx[k]);
        expect(g.labels[l].auroc).toBe(auroc(y, s));
        const all = mask(col(c.truth, j, () => true));
        const overall = auroc(all.y.filter((_, k) => all.idx[k]), col(c.probs, j, () => true).filter((_, k) => all.idx[k]));
        expect(rep.overall[l].auroc).toBe(overall);
        expect(g.labels[l].gap).toBe(g.labels[l].auroc! - overall);
        const ci = g.labels[l].ci!;
        expect(ci.lo!).toBeLessThanOrEqual(g.labels[l].auroc!);
        expect(ci.hi!).toBeGreaterThanOrEqual(g.labels[l].auroc!);
        expect(g.labels[l].gapCi!.lo!).toBeLessThanOrEqual(g.labels[l].gapCi!.hi!);
      });
      expect(g.macro.auroc).toBeCloseTo((g.labels.A.auroc! + g.labels.B.auroc!) / 2, 14);
    }
    const ap = rep.groups.find((g) => g.attribute === 'view' && g.group === 'AP')!;
    expect(ap.macro.gap!).toBeLessThan(-0.05);
    expect(ap.macro.gapCi!.hi!).toBeLessThan(0);
  });

  test('overall intervals equal the scores\' patient bootstrap with the same seed', () => {
    const header = ['id', 'patient_id', ...c.labels];
    const truthRows = c.rows.map((r, i) => [`r${i}`, r.patientId, ...c.labels.map((_, j) => (Number.isNaN(c.truth[2 * i + j]) ? '' : c.truth[2 * i + j]))]);
    const predRows = c.rows.map((_, i) => [`r${i}`, ...c.labels.map((_, j) => c.probs[2 * i + j])]);
    const s = scoreTables(
      { truth: parseCsvTable(formatCsv([header, ...truthRows])), pred: parseCsvTable(formatCsv([['id', ...c.labels], ...predRows])) },
      { labels: c.labels, patientCol: 'patient_id', bootstrap: 200, seed: 3 },
    );
    for (const l of c.labels) {
      expect(rep.overall[l].auroc).toBe(s.labels[l].auroc);
      expect(rep.overall[l].ci).toEqual(s.labels[l].ci!.auroc);
    }
    expect(rep.bootstrap).toEqual({ resamples: 200, seed: 3, level: 0.95, unit: 'patient', nUnits: 90 });
  });

  test('small groups are named and left out; rows without a value are counted', () => {
    const lat = rep.leftOut.find((g) => g.group === 'LATERAL');
    expect(lat).toBeDefined();
    expect(lat!.reason).toMatch(/fewer than the minimum 20/);
    expect(rep.groups.some((g) => g.group === 'LATERAL')).toBe(false);
    expect(rep.groups.filter((g) => g.attribute === 'sex').map((g) => g.group)).toEqual(['female', 'male']);
    const rows = c.rows.map((r, i) => (i < 10 ? { ...r, meta: {} } : r));
    const r2 = subgroupAuroc(c.labels, c.truth, c.probs, rows, { attributes: ['sex'], minSize: 20, bootstrap: 0 });
    expect(r2.missing.sex).toBe(10);
    expect(r2.bootstrap).toBeNull();
    expect(r2.groups[0].labels.A.ci).toBeUndefined();
  });

  test('age bands and attribute parsing', () => {
    expect(DEFAULT_AGE_BANDS.map((e) => ageBand(e, DEFAULT_AGE_BANDS))).toEqual(['18-39', '40-59', '60-79', '80+']);
    expect(ageBand(17.9, DEFAULT_AGE_BANDS)).toBe('<18');
    expect(ageBand(39.5, DEFAULT_AGE_BANDS)).toBe('18-39');
    expect(rep.groups.filter((g) => g.attribute === 'age').map((g) => g.group)).toEqual(['18-39', '40-59', '60-79', '80+']);
    expect(parseSubgroupAttributes(' Sex ,view')).toEqual(['sex', 'view']);
    expectCode(() => parseSubgroupAttributes('sex,site'), 'E_CONFIG');
    expectCode(() => parseSubgroupAttributes('sex,sex'), 'E_CONFIG');
    expect(groupOf({ patientId: 'x', meta: { sex: 'Unknown' } }, 'sex')).toBeUndefined();
  });

  test('an attribute the split lacks is E_DATA naming what it has', () => {
    const rows = c.rows.map((r) => ({ patientId: r.patientId, view: r.view }));
    const e = expectCode(() => subgroupAuroc(c.labels, c.truth, c.probs, rows, { attributes: ['sex', 'view'] }), 'E_DATA');
    expect(e.message).toMatch(/has no sex .*it has: view/);
    expectCode(() => subgroupAuroc(c.labels, c.truth, c.probs, c.rows, { attributes: ['view'], minSize: 0 }), 'E_CONFIG');
    expectCode(() => subgroupAuroc(c.labels, c.truth, c.probs, c.rows, { attributes: ['age'], ageBands: [40, 20] }), 'E_CONFIG');
  });
});
