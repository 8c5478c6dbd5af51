/**
 * `cxr-train probe` end to end on a small synthetic MIMIC-CXR-JPG layout with an untrained test-vit (the
 * numbers are not the point; the plumbing, the cache and the zero-shot column are): the 1/10/100 % table
 * next to zero-shot, zero-shot equal to `cxr-train eval` on the same split, a second run from the cache.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { generateSynthetic } from '../../lib/data/synthetic';
import { ClipModel } from '../../lib/models/ClipModel';
import { evaluateCheckpoint } from '../../lib/jobs/evaluate';
import { probeCheckpoint, type ProbeJobResult } from '../../lib/jobs/probe';
import { runCli as cli } from '../helpers/cli';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cxr-probe-e2e-'));
const ds = path.join(tmp, 'ds');
const model = path.join(tmp, 'model');
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

beforeAll(async () => {
  await generateSynthetic({ n: 160, size: 32, seed: 5, outDir: ds, splitFractions: [0.6, 0.2, 0.2] });
  const m = ClipModel.create('test-vit', { device: 'cpu', seed: 1 });
  m.save(model);
  m.dispose();
});

const common = ['--checkpoint', model, '--dataset', 'mimic-cxr', '--root', ds, '--workers', '0', '--device', 'cpu', '--bootstrap', '30'];

describe('cxr-train probe', () => {
  let first: ProbeJobResult;

  test('prints the 1/10/100 % table next to zero-shot and writes probe.json', async () => {
    const out = path.join(tmp, 'p1');
    const r = await cli(['probe', ...common, '--out', out]);
    expect(r.code).toBe(0);
    const header = r.out.split('\n').find((l) => l.startsWith('label'))!;
    expect(header).toMatch(/^label\s+zero-shot\s+probe 1%\s+probe 10%\s+probe 100%$/);
    expect(r.out).toMatch(/^macro \(\d+ label\(s\)\)/m);
    expect(r.out).toMatch(/C kept/);
    expect(r.out).toMatch(/training subsets \(by patient, seed 0\): 1%: 1 patient\(s\)/);
    expect(r.out).toMatch(/train \(train\): \d+ image\(s\) embedded, cache miss/);
    first = JSON.parse(fs.readFileSync(path.join(out, 'probe.json'), 'utf8'));
    // The page: self-contained, one row per label with its zero-shot value.
    const html = fs.readFileSync(path.join(out, 'probe.html'), 'utf8');
    expect(html).not.toMatch(/<script|https?:\/\//);
    expect(html).toMatch(/<h2>Test AUROC<\/h2>/);
    for (const l of first.labels) expect(html).toContain(`<td class="l">${l.label}</td><td>${l.zeroShot!.auroc.toFixed(3)} `);
    expect(first.labels.length).toBeGreaterThan(0);
    for (const l of first.labels) {
      expect(l.zeroShot).toBeDefined();
      expect(l.fractions.map((f) => f.fraction)).toEqual([0.01, 0.1, 1]);
      // Each label row of the table shows its zero-shot AUROC.
      expect(r.out).toMatch(new RegExp(`^${l.label}\\s+${l.zeroShot!.auroc.toFixed(3)} `, 'm'));
      const full = l.fractions[2];
      if (!('skipped' in full)) {
        expect(full.auroc).toBeGreaterThanOrEqual(0);
        expect(full.auroc).toBeLessThanOrEqual(1);
        expect(full.grid).toHaveLength(7);
        expect(full.deltaZeroShot!.delta).toBeCloseTo(full.auroc - l.zeroShot!.auroc, 12);
      }
    }
    // Labels with one class in a split are named and left out.
    for (const s of first.skipped) expect(r.err).toContain(`probe: ${s.label} skipped:`);
    // The subsets are by patient and nested.
    const sizes = first.labels[0].fractions.map((f) => f.patients);
    expect(sizes[0]).toBe(1);
    expect(sizes[0]).toBeLessThanOrEqual(sizes[1]);
    expect(sizes[1]).toBeLessThan(sizes[2]);
  });

  test('the zero-shot column equals `cxr-train eval` on the same test split', async () => {
    const ev = await evaluateCheckpoint({ checkpoint: model, dataset: 'mimic-cxr', adapterOptions: { root: ds }, split: 'test', bootstrap: 0, outDir: path.join(tmp, 'eval'), workers: 0, device: 'cpu' });
    for (const l of first.labels) {
      const e = ev.result.labels[l.label];
      expect(e).toBeDefined();
      expect(Math.abs(l.zeroShot!.auroc - e.auroc!)).toBeLessThan(1e-6);
    }
  });

  test('a second run reads every split from the shared cache and gives the same numbers; --json', async () => {
    const cache = path.join(tmp, 'p1', 'embeddings');
    const r = await cli(['probe', ...common, '--out', path.join(tmp, 'p2'), '--cache', cache, '--json']);
    expect(r.code).toBe(0);
    const j = JSON.parse(r.out) as ProbeJobResult;
    expect(Object.values(j.splits).map((s) => s.cache)).toEqual(['hit', 'hit', 'hit']);
    expect(j.labels.map((l) => l.fractions.map((f) => ('skipped' in f ? null : f.auroc)))).toEqual(first.labels.map((l) => l.fractions.map((f) => ('skipped' in f ? null : f.auroc))));
    // The weights stay in probe.json, not on stdout.
    expect(r.out).not.toMatch(/"weights"/);
  });

  test('a damaged cache entry is noted and recomputed', async () => {
    const cache = path.join(tmp, 'p1', 'embeddings');
    const f = fs.readdirSync(cache).find((x) => x.includes('-test-'))!;
    const buf = fs.readFileSync(path.join(cache, f));
    buf[buf.length - 1] ^= 0xff;
    fs.writeFileSync(path.join(cache, f), buf);
    const notes: string[] = [];
    const r = await probeCheckpoint({ checkpoint: model, dataset: 'mimic-cxr', adapterOptions: { root: ds }, workers: 0, device: 'cpu', bootstrap: 0, fractions: [1], labels: [first.labels[0].label], outDir: path.join(tmp, 'p3'), cacheDir: cache, onWarning: (w) => notes.push(w) });
    expect(r.splits.test.cache).toBe('damaged');
    expect(r.splits.train.cache).toBe('hit');
    expect(notes.some((n) => /is damaged \(the data do not match their checksum\)/.test(n))).toBe(true);
    expect((r.labels[0].fractions[0] as { auroc: number }).auroc).toBeCloseTo((first.labels[0].fractions[2] as { auroc: number }).auroc, 6);
  });

  test('unknown labels and bad fractions are E_CONFIG before any work', async () => {
    const a = await cli(['probe', ...common, '--out', path.join(tmp, 'bad1'), '--labels', 'Edema,Nonsense']);
    expect(a.code).not.toBe(0);
    expect(a.err).toMatch(/E_CONFIG/);
    expect(a.err).toMatch(/unknown label "Nonsense"/);
    for (const f of ['0,10', '1,150', 'x', '10,10']) {
      const b = await cli(['probe', ...common, '--out', path.join(tmp, 'bad2'), '--fractions', f]);
      expect(b.code).not.toBe(0);
      expect(b.err).toMatch(/E_CONFIG/);
    }
    expect(fs.existsSync(path.join(tmp, 'bad2'))).toBe(false);
  });
});
