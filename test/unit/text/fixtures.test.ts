import fs from 'node:fs';
import path from 'node:path';
import { parseOpenIXml, parseReport, type ParsedReport } from '../../../lib/text/reportParser';
import { normalizeWhitespace, splitSentences } from '../../../lib/text/sentenceSplitter';
import { SentenceSampler } from '../../../lib/text/sentenceSampler';

const dir = path.resolve(__dirname, '../../fixtures/reports');
interface Expect {
  sections: string[];
  sentences?: number;
  contains?: string[];
  absent?: string[];
}
const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'expected.json'), 'utf8')) as Record<string, Expect>;

function load(name: string): ParsedReport {
  const text = fs.readFileSync(path.join(dir, name), 'utf8');
  return name.endsWith('.xml') ? parseOpenIXml(text) : parseReport(text);
}

describe('report fixtures', () => {
  it('has at least 40 fixture reports, each listed in the manifest', () => {
    const files = fs.readdirSync(dir).filter((f) => f !== 'expected.json');
    expect(files.length).toBeGreaterThanOrEqual(40);
    expect(files.sort()).toEqual(Object.keys(manifest).sort());
  });

  describe.each(Object.entries(manifest))('%s', (name, exp) => {
    const parsed = load(name);
    const sampler = new SentenceSampler({ seed: 1 });
    const prepared = sampler.prepare(parsed);

    it('parses into the expected sections', () => {
      expect(parsed.sections.map((s) => s.name)).toEqual(exp.sections);
    });

    it('yields the expected findings+impression sentences', () => {
      if (exp.sentences !== undefined) expect(prepared.sentences.length).toBe(exp.sentences);
      for (const c of exp.contains ?? []) expect(prepared.sentences).toContain(c);
      for (const a of exp.absent ?? []) for (const s of prepared.sentences) expect(s).not.toContain(a);
    });

    it('splits every section into non-empty normalised substrings', () => {
      for (const sec of parsed.sections) {
        const norm = normalizeWhitespace(sec.text);
        for (const s of splitSentences(sec.text)) {
          expect(s.trim()).toBe(s);
          expect(s.length).toBeGreaterThan(0);
          expect(norm).toContain(s);
        }
      }
    });

    it('samples deterministically and never returns empty text', () => {
      for (let e = 0; e < 4; e++) {
        const a = sampler.sample(prepared, { epoch: e, index: 3 });
        expect(a.length).toBeGreaterThan(0);
        expect(new SentenceSampler({ seed: 1 }).sample(prepared, { epoch: e, index: 3 })).toBe(a);
      }
    });
  });
});
