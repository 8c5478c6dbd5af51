import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import crypto from 'node:crypto';
import zlib from 'node:zlib';
import sharp from 'sharp';
import { generateSynthetic, synthesizeSamples, syntheticDemographics } from '../../../lib/data/synthetic';
import { mimicCxrAdapter } from '../../../lib/data/adapters/mimicCxr';
import type { SyntheticSample } from '../../../lib/data/synthetic';
import { CHEXPERT_LABELS, MIMIC_CHEXPERT_COLUMNS } from '../../../lib/data/sample';
import yargs from 'yargs';
import { command as synthCommand } from '../../../lib/cli/commands/synth';

function tmpdir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'cxr-synth-'));
}

function hashTree(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else out.set(path.relative(dir, p), crypto.createHash('sha256').update(fs.readFileSync(p)).digest('hex'));
    }
  };
  walk(dir);
  return out;
}

/** Mean of the image inside a normalised box. */
function boxMean(s: SyntheticSample, x0: number, y0: number, x1: number, y1: number): number {
  const W = s.width;
  let sum = 0;
  let n = 0;
  for (let y = Math.floor(y0 * W); y < Math.floor(y1 * W); y++)
    for (let x = Math.floor(x0 * W); x < Math.floor(x1 * W); x++) {
      sum += s.image![y * W + x];
      n++;
    }
  return sum / n;
}

function mean(a: number[]): number {
  return a.reduce((x, y) => x + y, 0) / a.length;
}

describe('synthetic generator (in memory)', () => {
  const ds = synthesizeSamples({ n: 400, seed: 11, size: 64 });

  test('shapes, value range and determinism by seed', () => {
    expect(ds.samples).toHaveLength(400);
    for (const s of ds.samples.slice(0, 20)) {
      expect(s.image).toBeInstanceOf(Float32Array);
      expect(s.image!.length).toBe(64 * 64);
      let lo = Infinity;
      let hi = -Infinity;
      for (const v of s.image!) {
        lo = Math.min(lo, v);
        hi = Math.max(hi, v);
      }
      expect(lo).toBeGreaterThanOrEqual(0);
      expect(hi).toBeLessThanOrEqual(1);
      expect(hi - lo).toBeGreaterThan(0.5);
    }
    const again = synthesizeSamples({ n: 30, seed: 11, size: 64 });
    for (let i = 0; i < 30; i++) {
      expect(Buffer.from(again.samples[i].image!.buffer).equals(Buffer.from(ds.samples[i].image!.buffer))).toBe(true);
      expect(again.samples[i].report).toBe(ds.samples[i].report);
      expect(again.samples[i].id).toBe(ds.samples[i].id);
    }
    const other = synthesizeSamples({ n: 5, seed: 12, size: 64 });
    expect(other.samples[0].report === ds.samples[0].report && other.samples[0].id === ds.samples[0].id).toBe(false);
  });

  test('patients are disjoint across splits and every split is used', () => {
    const splitOf = new Map<string, string>();
    for (const s of ds.samples) {
      const prev = splitOf.get(s.patientId);
      if (prev !== undefined) expect(s.split).toBe(prev);
      splitOf.set(s.patientId, s.split!);
    }
    const counts = { train: 0, validate: 0, test: 0 } as Record<string, number>;
    for (const s of ds.samples) counts[s.split!]++;
    expect(counts.train).toBeGreaterThan(280);
    expect(counts.validate).toBeGreaterThan(20);
    expect(counts.test).toBeGreaterThan(20);
    expect(new Set(ds.samples.map((s) => s.studyId)).size).toBe(400);
    expect(new Set(ds.samples.map((s) => s.id)).size).toBe(400);
  });

  test('labels: 14 CheXpert names, values in {1,0,-1,NaN}, co-occurrence and plausible prevalence', () => {
    const big = synthesizeSamples({ n: 3000, seed: 5, size: 16, render: false });
    const pos = (l: string) => big.samples.filter((s) => s.labels[l] === 1).length / big.samples.length;
    for (const s of big.samples) {
      expect(Object.keys(s.labels).sort()).toEqual([...CHEXPERT_LABELS].sort());
      for (const v of Object.values(s.labels)) expect(Number.isNaN(v) || v === 1 || v === 0 || v === -1).toBe(true);
      // No Finding is never positive together with a positive pathology.
      if (s.labels['No Finding'] === 1) for (const l of CHEXPERT_LABELS) if (l !== 'No Finding' && l !== 'Support Devices') expect(s.labels[l] === 1).toBe(false);
    }
    expect(pos('No Finding')).toBeGreaterThan(0.15);
    expect(pos('No Finding')).toBeLessThan(0.6);
    expect(pos('Pleural Effusion')).toBeGreaterThan(0.1);
    expect(pos('Pneumothorax')).toBeLessThan(0.15);
    // Edema is much more frequent with cardiomegaly than without (the heart-failure pattern).
    const withCardio = big.samples.filter((s) => s.labels['Cardiomegaly'] === 1);
    const without = big.samples.filter((s) => s.labels['Cardiomegaly'] !== 1);
    const edemaRate = (a: SyntheticSample[]) => a.filter((s) => s.labels['Edema'] === 1).length / a.length;
    expect(edemaRate(withCardio)).toBeGreaterThan(2 * edemaRate(without));
  });

  test('reports: FINDINGS and IMPRESSION, one sentence per mentioned finding with the right polarity', () => {
    const findingWords: Record<string, RegExp> = {
      Pneumothorax: /pneumothorax/i,
      'Pleural Effusion': /effusion|costophrenic/i,
      Edema: /edema/i,
      Consolidation: /consolidation/i,
      Cardiomegaly: /cardiomegaly|heart|cardiac/i,
      Atelectasis: /atelectasis/i,
    };
    let hedged = 0;
    let negated = 0;
    for (const s of ds.samples) {
      const r = s.report!;
      expect(r).toMatch(/^ ?FINDINGS:/m);
      expect(r).toMatch(/^ ?IMPRESSION:/m);
      expect(r.indexOf('FINDINGS:')).toBeLessThan(r.indexOf('IMPRESSION:'));
      const sentences = s.meta!.findingsSentences as string[];
      for (const [label, re] of Object.entries(findingWords)) {
        const v = s.labels[label];
        const hits = sentences.filter((x) => re.test(x));
        if (Number.isNaN(v)) continue;
        expect(hits.length).toBeGreaterThanOrEqual(1);
        const h = hits.join(' ');
        if (v === 0) {
          expect(h).toMatch(/\bno\b|not|normal|within normal|without|clear/i);
          negated++;
        }
        if (v === -1) {
          expect(h).toMatch(/possible|may|could|cannot be excluded|cannot exclude|questionable|top normal/i);
          hedged++;
        }
        if (v === 1) expect(h).not.toMatch(/^no |cannot|possible|questionable/i);
      }
    }
    expect(hedged).toBeGreaterThan(5);
    expect(negated).toBeGreaterThan(50);
    // Varied phrasing and order.
    const firstSentences = new Set(ds.samples.map((s) => (s.meta!.findingsSentences as string[])[0]));
    expect(firstSentences.size).toBeGreaterThan(30);
  });

  test('findings change the picture the way they should', () => {
    const big = synthesizeSamples({ n: 500, seed: 3, size: 48 });
    const S = big.samples;
    // Cardiomegaly: more of the lower chest lateral to the normal heart border is bright.
    const cardio = S.filter((s) => s.labels['Cardiomegaly'] === 1).map((s) => boxMean(s, 0.3, 0.55, 0.38, 0.68) + boxMean(s, 0.66, 0.55, 0.74, 0.68));
    const normal = S.filter((s) => s.labels['No Finding'] === 1).map((s) => boxMean(s, 0.3, 0.55, 0.38, 0.68) + boxMean(s, 0.66, 0.55, 0.74, 0.68));
    expect(mean(cardio)).toBeGreaterThan(mean(normal) + 0.05);
    // Effusion: the lateral lung base (costophrenic region) becomes dense.
    const base = (s: SyntheticSample, side: 'right' | 'left') => (side === 'right' ? boxMean(s, 0.15, 0.7, 0.27, 0.78) : boxMean(s, 0.73, 0.7, 0.85, 0.78));
    const effR = S.filter((s) => s.labels['Pleural Effusion'] === 1 && s.spec.effusion!.sides.includes('right')).map((s) => base(s, 'right'));
    const noEffR = S.filter((s) => s.labels['Pleural Effusion'] !== 1 && s.labels['Pleural Effusion'] !== -1 && !s.spec.atelectasis).map((s) => base(s, 'right'));
    expect(mean(effR)).toBeGreaterThan(mean(noEffR) + 0.04);
    // Edema: perihilar haze brightens the central lungs.
    const hil = (s: SyntheticSample) => boxMean(s, 0.33, 0.38, 0.42, 0.52) + boxMean(s, 0.58, 0.38, 0.67, 0.52);
    const edema = S.filter((s) => s.labels['Edema'] === 1).map(hil);
    const noEdema = S.filter((s) => s.labels['No Finding'] === 1).map(hil);
    expect(mean(edema)).toBeGreaterThan(mean(noEdema) + 0.04);
  });

  test('shift preset changes contrast, noise and heart size of the shifted split only', () => {
    const a = synthesizeSamples({ n: 200, seed: 9, size: 48 });
    const b = synthesizeSamples({ n: 200, seed: 9, size: 48, shift: 'strong' });
    const noise = (s: SyntheticSample) => {
      // Mean absolute horizontal gradient in the flat upper abdomen: grows with noise.
      let acc = 0;
      let n = 0;
      const W = s.width;
      for (let y = Math.floor(0.88 * W); y < Math.floor(0.96 * W); y++)
        for (let x = Math.floor(0.25 * W); x < Math.floor(0.45 * W); x++) {
          acc += Math.abs(s.image![y * W + x + 1] - s.image![y * W + x]);
          n++;
        }
      return acc / n;
    };
    const test = (d: typeof a) => d.samples.filter((s) => s.split === 'test');
    const train = (d: typeof a) => d.samples.filter((s) => s.split === 'train');
    expect(test(b).every((s) => s.shifted)).toBe(true);
    expect(train(b).every((s) => !s.shifted)).toBe(true);
    expect(mean(test(b).map(noise))).toBeGreaterThan(1.2 * mean(test(a).map(noise)));
    const contrast = (s: SyntheticSample) => boxMean(s, 0.45, 0.88, 0.55, 0.96) - boxMean(s, 0.2, 0.3, 0.3, 0.5);
    expect(mean(test(b).map(contrast))).toBeLessThan(0.92 * mean(test(a).map(contrast)));
    expect(mean(test(b).map((s) => s.spec.ctr))).toBeGreaterThan(mean(test(a).map((s) => s.spec.ctr)) + 0.03);
    // Train split untouched: bit-identical.
    for (let i = 0; i < a.samples.length; i++) if (a.samples[i].split === 'train') expect(Buffer.from(a.samples[i].image!.buffer).equals(Buffer.from(b.samples[i].image!.buffer))).toBe(true);
  });

  test('findingStrength makes findings subtler without changing labels or reports', () => {
    const a = synthesizeSamples({ n: 300, seed: 13, size: 16, render: false });
    const b = synthesizeSamples({ n: 300, seed: 13, size: 16, render: false, findingStrength: 0.5 });
    expect(b.samples.map((s) => s.report)).toEqual(a.samples.map((s) => s.report));
    const ctr = (d: typeof a) => mean(d.samples.filter((s) => s.labels['Cardiomegaly'] === 1).map((s) => s.spec.ctr));
    expect(ctr(b)).toBeLessThan(ctr(a) - 0.04);
    expect(() => synthesizeSamples({ n: 3, findingStrength: 0 })).toThrow(expect.objectContaining({ code: 'E_CONFIG' }));
  });

  test('bad options are E_CONFIG', () => {
    expect(() => synthesizeSamples({ n: 0 })).toThrow(expect.objectContaining({ code: 'E_CONFIG' }));
    expect(() => synthesizeSamples({ n: 3, size: 8 })).toThrow(expect.objectContaining({ code: 'E_CONFIG' }));
    expect(() => synthesizeSamples({ n: 3, shift: 'huge' as never })).toThrow(expect.objectContaining({ code: 'E_CONFIG' }));
  });
});

describe('synthetic generator (files)', () => {
  test('writes the MIMIC-CXR-JPG layout, bit-identical for the same seed', async () => {
    const d1 = tmpdir();
    const d2 = tmpdir();
    const ds = await generateSynthetic({ n: 40, seed: 4, size: 96, outDir: d1 });
    await generateSynthetic({ n: 40, seed: 4, size: 96, outDir: d2 });
    const h1 = hashTree(d1);
    const h2 = hashTree(d2);
    expect([...h1.keys()].sort()).toEqual([...h2.keys()].sort());
    for (const [k, v] of h1) expect(h2.get(k)).toBe(v);
    for (const name of ['split', 'metadata', 'chexpert', 'negbio']) expect(h1.has(`mimic-cxr-2.0.0-${name}.csv`)).toBe(true);
    const jpgs = [...h1.keys()].filter((k) => k.endsWith('.jpg'));
    const txts = [...h1.keys()].filter((k) => k.endsWith('.txt'));
    expect(jpgs).toHaveLength(40);
    expect(txts).toHaveLength(40);
    for (const j of jpgs) expect(j).toMatch(/^files\/p1\d\/p1\d{7}\/s5\d{7}\/[0-9a-f]{8}(-[0-9a-f]{8}){4}\.jpg$/);
    for (const t of txts) expect(t).toMatch(/^files\/p1\d\/p1\d{7}\/s5\d{7}\.txt$/);
    const meta = await sharp(path.join(d1, jpgs[0])).metadata();
    expect(meta.format).toBe('jpeg');
    expect(meta.width).toBe(96);
    const chex = fs.readFileSync(path.join(d1, 'mimic-cxr-2.0.0-chexpert.csv'), 'utf8').split('\n');
    expect(chex[0]).toBe('subject_id,study_id,' + MIMIC_CHEXPERT_COLUMNS.join(','));
    const s0 = ds.samples[0];
    const row = chex.find((l) => l.startsWith(`${s0.patientId},${s0.studyId},`))!.split(',');
    MIMIC_CHEXPERT_COLUMNS.forEach((l, i) => {
      const v = s0.labels[l];
      expect(row[i + 2]).toBe(Number.isNaN(v) ? '' : v.toFixed(1));
    });
    const rep = fs.readFileSync(path.join(d1, `files/p${s0.patientId.slice(0, 2)}/p${s0.patientId}/s${s0.studyId}.txt`), 'utf8');
    expect(rep).toBe(s0.report);
    const d3 = tmpdir();
    await generateSynthetic({ n: 40, seed: 5, size: 96, outDir: d3 });
    expect(hashTree(d3).get('mimic-cxr-2.0.0-split.csv')).not.toBe(h1.get('mimic-cxr-2.0.0-split.csv'));
    for (const d of [d1, d2, d3]) fs.rmSync(d, { recursive: true, force: true });
  });

  test('cxr-train synth CLI writes gzip CSVs and reports counts', async () => {
    const d = tmpdir();
    const out: string[] = [];
    const spy = jest.spyOn(process.stdout, 'write').mockImplementation((c: string | Uint8Array) => {
      out.push(String(c));
      return true;
    });
    let code: number;
    try {
      // The command module is driven directly (the CLI root also loads commands owned by others).
      await yargs(['synth', '--out', d, '--n', '12', '--seed', '2', '--image-size', '64', '--gzip', '--quiet']).command(synthCommand).strict().parseAsync();
      code = 0;
    } finally {
      spy.mockRestore();
    }
    expect(code).toBe(0);
    expect(out.join('')).toMatch(/wrote 12 images/);
    const split = zlib.gunzipSync(fs.readFileSync(path.join(d, 'mimic-cxr-2.0.0-split.csv.gz'))).toString('utf8');
    expect(split.split('\n')[0]).toBe('dicom_id,study_id,subject_id,split');
    expect(split.trim().split('\n')).toHaveLength(13);
    fs.rmSync(d, { recursive: true, force: true });
  });

  test('demographics come from their own stream: every earlier file, picture and report is unchanged', async () => {
    // Hashes made with the generator before sex and age were added (commit 78b6d1e): the CSVs, reports and
    // synthetic.json of generateSynthetic({ n: 300, seed: 0, size: 64 }), and the in-memory samples
    // (pixels, ids, reports, labels, views, splits, specs, report sentences).
    const d = tmpdir();
    await generateSynthetic({ n: 300, seed: 0, size: 64, outDir: d });
    const tree = hashTree(d);
    const keys = [...tree.keys()].filter((k) => !k.endsWith('.jpg') && k !== 'patients.csv' && k !== 'synthetic-regions.json').sort();
    expect(keys).toHaveLength(305);
    const h = crypto.createHash('sha256');
    for (const k of keys) h.update(`${k} ${tree.get(k)}\n`);
    expect(h.digest('hex')).toBe('7a96ff03d66f52d7dbeb157a349a3e9ce9ca504a866a8ed746e3ef77bd62ce6b');
    const ds = synthesizeSamples({ n: 300, seed: 0, size: 64 });
    const m = crypto.createHash('sha256');
    for (const s of ds.samples) {
      m.update(Buffer.from(s.image!.buffer));
      m.update(JSON.stringify([s.id, s.imagePath, s.report, s.labels, s.patientId, s.studyId, s.view, s.split, s.spec, s.meta!.findingsSentences, s.meta!.impressionSentences]));
    }
    expect(m.digest('hex')).toBe('bf54532a73e3a987e87406c182ed9f5aea1f7e07c7c670b7c1e0ae2c10a64ad5');

    // Sex and age: per patient, plausible, in patients.csv (MIMIC-IV's columns), read back by the adapter.
    const byPatient = new Map<string, string>();
    for (const s of ds.samples) {
      const key = `${s.meta!.sex},${s.meta!.age}`;
      expect(byPatient.get(s.patientId) ?? key).toBe(key);
      byPatient.set(s.patientId, key);
      expect(['F', 'M']).toContain(s.meta!.sex);
      expect(s.meta!.age).toBeGreaterThanOrEqual(18);
      expect(s.meta!.age).toBeLessThanOrEqual(95);
      expect(syntheticDemographics(0, Number(s.patientId))).toEqual({ sex: s.meta!.sex, age: s.meta!.age });
    }
    const males = [...byPatient.values()].filter((v) => v.startsWith('M')).length / byPatient.size;
    expect(males).toBeGreaterThan(0.35);
    expect(males).toBeLessThan(0.7);
    const pts = fs.readFileSync(path.join(d, 'patients.csv'), 'utf8').trim().split('\n');
    expect(pts[0]).toBe('subject_id,gender,anchor_age');
    expect(pts).toHaveLength(byPatient.size + 1);
    const man = await mimicCxrAdapter.load({ root: d, reports: false });
    const mem = new Map(ds.samples.map((s) => [s.id, s]));
    for (const s of man.samples) expect(s.meta).toEqual({ sex: mem.get(s.id)!.meta!.sex, age: mem.get(s.id)!.meta!.age });
    fs.rmSync(d, { recursive: true, force: true });
  });
});
