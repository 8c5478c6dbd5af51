import { calibrationReport } from '../../../lib/eval/calibrationReport';
import { calibrationSection, reliabilitySvg, subgroupSection } from '../../../lib/eval/reportSections';
import { reliabilityBins } from '../../../lib/eval/calibration';
import { subgroupAuroc } from '../../../lib/eval/subgroups';
import { renderReportHtml } from '../../../lib/eval/reportCard';
import { scoreTables } from '../../../lib/eval/score';
import { formatCsv, parseCsvTable } from '../../../lib/util/csv';
import { lcg } from './helpers';

/** 200 rows, labels A (informative, over-confident) and <B> (a name to escape; one class in validation). */
function data(seed: number): { truth: Float64Array; probs: Float32Array } {
  const r = lcg(seed);
  const truth = new Float64Array(400);
  const probs = new Float32Array(400);
  for (let i = 0; i < 200; i++) {
    const y = r() < 0.4 ? 1 : 0;
    truth[2 * i] = y;
    probs[2 * i] = 1 / (1 + Math.exp(-(6 * (y - 0.5) + 8 * (r() - 0.5))));
    truth[2 * i + 1] = seed === 1 ? 0 : r() < 0.5 ? 1 : 0;
    probs[2 * i + 1] = r();
  }
  return { truth, probs };
}

describe('report card sections', () => {
  const labels = ['A', '<B>'];
  const val = data(1);
  const tst = data(2);

  test('calibration: before/after table, the maps, a reliability diagram per label, one curve for a label without a map', () => {
    const { report } = calibrationReport({ labels, testSplit: 'test', testTruth: tst.truth, testProbs: tst.probs, valSplit: 'validate', valTruth: val.truth, valProbs: val.probs, method: 'platt' });
    expect(Object.keys(report.fit!.maps)).toEqual(['A']);
    expect(report.fit!.skipped[0].label).toBe('<B>');
    // Over-confident scores: Platt flattens them and the test ECE drops.
    expect(report.test.after!.labels.A.eceUniform).toBeLessThan(report.test.before.labels.A.eceUniform);
    const sec = calibrationSection(report);
    expect(sec.key).toBe('calibration');
    expect(sec.data).toBe(report);
    expect(sec.html).toContain('<h2 id="calibration">Calibration (test split)</h2>');
    expect(sec.html).toContain('&lt;B&gt;');
    expect(sec.html).not.toContain('<B>');
    expect(sec.html).toMatch(/a = [\d.]+, b = -?[\d.]+/);
    expect(sec.html).toContain('one class in the validation split');
    expect((sec.html.match(/class="plot reliability"/g) ?? []).length).toBe(2);
    const cards = sec.html.split('<div class="card">').slice(1);
    expect(cards[0]).toContain('class="curve2"');
    expect(cards[1]).toContain('no map');
    expect(cards[1]).not.toContain('class="curve2"');
    // Without a method: metrics of the scored split only.
    const only = calibrationSection(calibrationReport({ labels, testSplit: 'test', testTruth: tst.truth, testProbs: tst.probs }).report);
    expect(only.html).toContain('No calibration map was fitted');
    expect(only.html).not.toContain('curve2');
  });

  test('a reliability diagram draws one dot per non-empty bin and bars for the counts', () => {
    const b = reliabilityBins([1, 0, 1, 0, 1], [0.05, 0.1, 0.55, 0.6, 0.95], 10, 'uniform');
    const svg = reliabilitySvg('x', b);
    expect((svg.match(/<circle/g) ?? []).length).toBe(b.bin.length);
    expect((svg.match(/class="bar"/g) ?? []).length).toBe(b.bin.length);
    expect(svg).toContain(`ECE ${b.ece.toFixed(3)}`);
  });

  test('subgroups: forest plot, table and left-out groups; sections land in the page before the prompts', () => {
    const rows = Array.from({ length: 200 }, (_, i) => ({ patientId: `p${i % 70}`, view: i % 9 === 0 ? 'LL' : i % 3 ? 'PA' : 'AP', meta: { sex: i % 2 ? 'F' : 'M' } }));
    const sg = subgroupAuroc(labels, tst.truth, tst.probs, rows, { attributes: ['sex', 'view'], minSize: 30, bootstrap: 50 });
    const sec = subgroupSection(sg, { auroc: 0.8 });
    expect(sec.key).toBe('subgroups');
    expect(sec.html).toContain('class="plot forest"');
    expect((sec.html.match(/class="dot"/g) ?? []).length).toBe(sg.groups.filter((g) => g.macro.auroc !== null).length);
    expect(sec.html).toMatch(/Left out \(under 30 images\): view LL \(\d+\)/);
    expect(sec.html).toContain('sex: female');
    const header = ['id', 'patient_id', ...labels];
    const truthCsv = formatCsv([header, ...rows.map((r, i) => [`r${i}`, r.patientId, tst.truth[2 * i], tst.truth[2 * i + 1]])]);
    const predCsv = formatCsv([['id', ...labels], ...rows.map((_, i) => [`r${i}`, tst.probs[2 * i], tst.probs[2 * i + 1]])]);
    const result = scoreTables({ truth: parseCsvTable(truthCsv), pred: parseCsvTable(predCsv) }, { labels, bootstrap: 0 });
    const html = renderReportHtml(result, { prompts: { name: 'p', labels: [] } }, [sec]);
    expect(html.indexOf('id="subgroups"')).toBeGreaterThan(0);
    expect(html.indexOf('id="subgroups"')).toBeLessThan(html.indexOf('<h2>Prompts'));
  });
});
