import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { generateSynthetic, readSyntheticRegions, styleFor, synthesizeSamples, SYNTHETIC_REGIONS_FILE } from '../../../lib/data/synthetic';
import type { CaseSpec, FindingRegion } from '../../../lib/data/synthetic';
import { sampleCase } from '../../../lib/data/synthetic/findings';
import { renderCase } from '../../../lib/data/synthetic/phantom';
import { Rng, hashSeed } from '../../../lib/util/rng';

const LOCALISED = ['Cardiomegaly', 'Pleural Effusion', 'Consolidation', 'Atelectasis', 'Pneumothorax', 'Lung Lesion', 'Enlarged Cardiomediastinum', 'Pleural Other', 'Fracture'] as const;

/** Renders one spec the way the generator does (seed → render stream), optionally recording regions. */
function render(spec: CaseSpec, seed: number, size: number, regions?: FindingRegion[]): Float32Array {
  const rng = new Rng(hashSeed(seed, 2, 0));
  return renderCase(spec, size, rng, styleFor(rng, 'none', size), regions);
}

function inside(boxes: FindingRegion['boxes'], px: number, py: number, size: number, pad = 0): boolean {
  const x = (px + 0.5) / size;
  const y = (py + 0.5) / size;
  return boxes.some((b) => x >= b[0] - pad && x <= b[2] + pad && y >= b[1] - pad && y <= b[3] + pad);
}

describe('synthetic finding regions', () => {
  const ds = synthesizeSamples({ n: 300, seed: 7, size: 64 });

  test('recording regions draws nothing from the random stream: the pictures are identical', () => {
    for (let k = 0; k < 40; k++) {
      const spec = sampleCase(new Rng(hashSeed(3, 1, k)));
      const regions: FindingRegion[] = [];
      const a = render(spec, k, 64);
      const b = render(spec, k, 64, regions);
      expect(Buffer.from(b.buffer).equals(Buffer.from(a.buffer))).toBe(true);
    }
  });

  test('every drawn localised finding has a region, every region a drawn finding, boxes inside the image', () => {
    let counted = 0;
    for (const s of ds.samples) {
      expect(Array.isArray(s.regions)).toBe(true);
      const present = (l: string) => s.spec.states[l as keyof CaseSpec['states']] === 'positive' || s.spec.states[l as keyof CaseSpec['states']] === 'uncertain';
      for (const l of LOCALISED) {
        const has = s.regions!.some((r) => r.label === l);
        expect(has).toBe(present(l));
        if (has) counted++;
      }
      for (const r of s.regions!) {
        expect(r.boxes.length).toBeGreaterThan(0);
        for (const b of r.boxes) {
          expect(b[0]).toBeGreaterThanOrEqual(0);
          expect(b[1]).toBeGreaterThanOrEqual(0);
          expect(b[2]).toBeLessThanOrEqual(1);
          expect(b[3]).toBeLessThanOrEqual(1);
          expect(b[2]).toBeGreaterThan(b[0]);
          expect(b[3]).toBeGreaterThan(b[1]);
        }
      }
    }
    expect(counted).toBeGreaterThan(100);
    // Not rendered: no regions claimed.
    expect(synthesizeSamples({ n: 5, seed: 7, size: 64, render: false }).samples.every((s) => s.regions === undefined)).toBe(true);
  });

  // Findings whose drawing takes nothing from the random stream: removing one from the spec changes the
  // picture only where it was drawn, so the changed pixels must lie in the recorded region.
  test.each([
    ['Pleural Effusion', (s: CaseSpec) => ({ ...s, effusion: null })],
    ['Cardiomegaly', (s: CaseSpec) => ({ ...s, ctr: 0.42 })],
    ['Fracture', (s: CaseSpec) => ({ ...s, fracture: null })],
    ['Pleural Other', (s: CaseSpec) => ({ ...s, pleuralOther: null })],
    ['Pneumothorax', (s: CaseSpec) => ({ ...s, pneumothorax: null })],
  ] as const)('the pixels %s changes lie in its region', (label, remove) => {
    const size = 96;
    let tried = 0;
    for (let k = 0; k < 400 && tried < 6; k++) {
      const spec = sampleCase(new Rng(hashSeed(5, 1, k)));
      if (spec.states[label] !== 'positive') continue;
      // A pacemaker's lead ends on the heart: it moves with the heart, outside the heart's box.
      if (label === 'Cardiomegaly' && spec.devices.includes('pacemaker')) continue;
      tried++;
      const regions: FindingRegion[] = [];
      const a = render(spec, k, size, regions);
      const b = render(remove(spec) as CaseSpec, k, size);
      const boxes = regions.filter((r) => r.label === label).flatMap((r) => r.boxes);
      expect(boxes.length).toBeGreaterThan(0);
      let total = 0;
      let within = 0;
      for (let i = 0; i < a.length; i++) {
        const d = Math.abs(a[i] - b[i]);
        total += d;
        if (inside(boxes, i % size, Math.floor(i / size), size, 1.5 / size)) within += d;
      }
      expect(total).toBeGreaterThan(0);
      // The pneumothorax also darkens the thin rim below the collapsed lung, outside the line's box.
      expect(within / total).toBeGreaterThan(label === 'Pneumothorax' ? 0.7 : 0.97);
    }
    expect(tried).toBeGreaterThan(0);
  });

  test('a written dataset carries its regions file; images, reports and labels are those of the in-memory generator', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cxr-regions-'));
    try {
      const written = await generateSynthetic({ n: 30, seed: 7, size: 64, outDir: dir });
      const mem = synthesizeSamples({ n: 30, seed: 7, size: 64 });
      const regions = readSyntheticRegions(dir);
      expect(regions.size).toBe(30);
      written.samples.forEach((s, i) => {
        expect(regions.get(s.id)).toEqual(mem.samples[i].regions);
        expect(s.report).toBe(mem.samples[i].report);
      });
      fs.writeFileSync(path.join(dir, SYNTHETIC_REGIONS_FILE), '{"nope": 1}');
      expect(() => readSyntheticRegions(dir)).toThrow(expect.objectContaining({ code: 'E_PARSE' }));
      expect(() => readSyntheticRegions(path.join(dir, 'missing'))).toThrow(expect.objectContaining({ code: 'E_IO' }));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
