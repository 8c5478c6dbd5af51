import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import sharp from 'sharp';
import { browserTest, chromiumOrFail } from '../../helpers/chromium';
import { renderReportHtml, writeReportCard } from '../../../lib/eval/reportCard';
import { writeFileAtomic } from '../../../lib/util/atomic';
import { scoreCsv } from '../../../lib/eval/score';

const FIX = path.resolve(__dirname, '../../fixtures/eval');
const fx = (f: string): string => path.join(FIX, f);

const meta = {
  title: 'Test <card>',
  checkpointHash: 'sha256:abc123',
  datasetManifestHash: 'sha256:def456',
  dataset: 'synthetic',
  testSplit: 'test',
  thresholdSplit: 'valid',
  prompts: { name: 'chexzero', labels: [{ label: 'A', positive: ['a & b'], negative: ['no <a>'] }] },
  config: { temperature: 1, model: 'test-vit' },
};

describe('report card', () => {
  const result = scoreCsv(
    { truth: fx('truth.csv'), pred: fx('pred.csv'), valTruth: fx('val_truth.csv'), valPred: fx('val_pred.csv'), readers: [fx('reader_a.csv'), fx('reader_b.csv')] },
    { bootstrap: 100, seed: 1 },
  );
  let dir: string;
  beforeEach(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cxr-card-'))));
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  test('writes report.json and report.html atomically (no temp files left)', () => {
    const out = writeReportCard(path.join(dir, 'nested', 'card'), result, meta);
    expect(fs.readdirSync(path.dirname(out.json)).sort()).toEqual(['report.html', 'report.json']);
    const j = JSON.parse(fs.readFileSync(out.json, 'utf8'));
    expect(j.version).toBe(1);
    expect(j.meta).toMatchObject({ checkpointHash: 'sha256:abc123', datasetManifestHash: 'sha256:def456', thresholdSplit: 'valid' });
    expect(typeof j.meta.createdAt).toBe('string');
    expect(j.result.labels.A.auroc).toBe(result.labels.A.auroc);
    expect(j.result.curves.B.pr.recall.length).toBeGreaterThan(0);
    // rewriting replaces the files in place
    writeReportCard(path.dirname(out.json), result, { ...meta, title: 'second' });
    expect(fs.readFileSync(out.html, 'utf8')).toMatch(/<title>second<\/title>/);
    expect(fs.readdirSync(path.dirname(out.json)).sort()).toEqual(['report.html', 'report.json']);
  });

  test('the page is self-contained and holds curves, table, thresholds, prompts, hashes, config', () => {
    const html = renderReportHtml(result, meta);
    // no external assets, no script, no URL of any kind
    expect(html).not.toMatch(/https?:|<script|<link|<img|\bsrc=|url\(|@import/i);
    // two plots per scored label (ROC + PR), each with a curve
    expect(html.match(/<svg class="plot roc"/g)).toHaveLength(2);
    expect(html.match(/<svg class="plot pr"/g)).toHaveLength(2);
    expect(html.match(/<polyline points="[0-9., ]{20,}" class="curve"\/>/g)).toHaveLength(4);
    // readers drawn as points on the ROC plots
    expect(html.match(/class="reader"/g)!.length).toBe(4);
    expect(html).toContain('sha256:abc123');
    expect(html).toContain('sha256:def456');
    expect(html).toMatch(/fitted on valid \(max MCC\), frozen/);
    expect(html).toContain(`${result.labels.A.auroc!.toFixed(3)} <span class="ci">(${result.labels.A.ci!.auroc!.lo!.toFixed(3)}`);
    expect(html).toMatch(/Skipped.*<b>C<\/b>/);
    // user text is escaped
    expect(html).toContain('Test &lt;card&gt;');
    expect(html).toContain('<code>a &amp; b</code>');
    expect(html).toContain('<code>no &lt;a&gt;</code>');
    expect(html).toContain('&quot;model&quot;: &quot;test-vit&quot;');
  });

  test('title and provenance name the data source, adapter and root', () => {
    const html = renderReportHtml(result, { ...meta, title: 'model on synthetic data, test split', dataSource: 'synthetic data (cxr-train demo generator, seed 0)', dataset: 'mimic-cxr', dataRoot: '/runs/demo/data' });
    expect(html).toContain('<title>model on synthetic data, test split</title>');
    expect(html).toContain('<tr><td>Data source</td><td>synthetic data (cxr-train demo generator, seed 0)</td></tr>');
    expect(html).toContain('<tr><td>Dataset adapter</td><td>mimic-cxr</td></tr>');
    expect(html).toContain('<tr><td>Data root</td><td><code>/runs/demo/data</code></td></tr>');
    // Without a description the source is the dataset name.
    expect(renderReportHtml(result, { dataset: 'chexpert' })).toContain('<tr><td>Data source</td><td>chexpert</td></tr>');
  });

  test('wide tables scroll in their own box; headers wrap; the palette has dark variants the plots use', () => {
    const html = renderReportHtml(result, meta);
    // Both wide tables sit in an overflow-x:auto wrapper, never cut off by the page.
    expect(html).toContain('<div class="table-wrap"><table class="metrics">');
    expect(html).toContain('<div class="table-wrap"><table class="readers">');
    expect(html).toMatch(/\.table-wrap\{overflow-x:auto;max-width:100%\}/);
    expect(html).toMatch(/th\{[^}]*white-space:normal/);
    // Colours are custom properties with a prefers-color-scheme: dark block; plots and legend use them.
    const dark = /@media \(prefers-color-scheme: dark\)\{:root\{([^}]*)\}\}/.exec(html);
    expect(dark).not.toBeNull();
    for (const v of ['--fg', '--bg', '--curve', '--op', '--reader', '--chance', '--plot']) expect(dark![1]).toContain(`${v}:`);
    expect(html).toMatch(/\.plot \.curve\{fill:none;stroke:var\(--curve\)/);
    expect(html).not.toMatch(/style="background:#/);
    const css = /<style>([\s\S]*)<\/style>/.exec(html)![1];
    // Outside the two palette blocks no literal colour is left.
    expect(css.replace(/:root\{[^}]*\}/g, '').match(/#[0-9a-f]{3,6}\b/gi)).toBeNull();
  });

  test('writeFileAtomic reports E_IO and cleans up', () => {
    expect(() => writeFileAtomic(path.join(dir, 'missing', 'x.txt'), 'data')).toThrow(expect.objectContaining({ code: 'E_IO' }));
    writeFileAtomic(path.join(dir, 'x.txt'), 'data');
    expect(fs.readdirSync(dir)).toEqual(['x.txt']);
  });

  browserTest()('renders in headless Chromium (screenshot, curves drawn)', async () => {
    const chrome = chromiumOrFail();
    const out = writeReportCard(dir, result, meta);
    const png = path.join(dir, 'shot.png');
    const script = path.resolve(__dirname, '../../../scripts/screenshot-report-card.sh');
    execFileSync('bash', [script, out.html, png, '1200x1800'], { stdio: 'pipe', timeout: 120000, env: { ...process.env, CHROMIUM: chrome } });
    const buf = fs.readFileSync(png);
    expect(buf.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]))).toBe(true);
    expect(buf.readUInt32BE(16)).toBe(1200); // IHDR width
    // The curves and bars are the page's only saturated colours (text and grid are grey): a page whose
    // inline SVG failed to render has next to none of them, whatever the palette.
    const { data, info } = await sharp(buf).removeAlpha().raw().toBuffer({ resolveWithObject: true });
    let coloured = 0;
    for (let i = 0; i < data.length; i += info.channels) {
      const r = data[i], g = data[i + 1], b = data[i + 2];
      if (Math.max(r, g, b) - Math.min(r, g, b) > 60) coloured++;
    }
    expect(coloured).toBeGreaterThan(3000);
  });
});
