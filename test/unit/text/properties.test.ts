/**
 * Property tests over generated reports: the generator knows the sentences it wrote, so the parser and
 * splitter must recover them exactly, whatever the header style, wrapping, numbering and line ends.
 */
import { parseReport } from '../../../lib/text/reportParser';
import { normalizeWhitespace, splitSentences } from '../../../lib/text/sentenceSplitter';
import { rngFor, SentenceSampler } from '../../../lib/text/sentenceSampler';

const SUBJECTS = ['The heart', 'The lungs', 'Mediastinal contour', 'The left hemidiaphragm', 'Right pleural space', 'The ETT tip', 'A nodule', 'Osseous structures'];
const PREDICATES = [
  'is normal in size',
  'are clear',
  'measures 2.5 cm',
  'is 4.5 cm above the carina',
  'appears stable vs. prior',
  'measures approx. 3.0 x 1.2 cm',
  'was discussed with Dr. Smith',
  'shows mild atelectasis; no effusion',
  'is seen on image No. 2',
  'is unremarkable',
  'shows e.g. scarring',
];
const ENDS = ['.', '.', '.', '!', '?', '...'];

type Rng = () => number;
const pick = <T,>(r: Rng, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)];

function sentence(r: Rng, last: boolean): string {
  const s = `${pick(r, SUBJECTS)} ${pick(r, PREDICATES)}`;
  // The last sentence of a section may lack its full stop.
  return last && r() < 0.3 ? s : s + pick(r, ENDS);
}

/** Wraps text at about `width` columns, as MIMIC does, only at spaces. */
function wrap(text: string, width: number): string {
  const out: string[] = [];
  let line = '';
  for (const w of text.split(' ')) {
    if (line.length > 0 && line.length + 1 + w.length > width) {
      out.push(line);
      line = w;
    } else line = line.length ? `${line} ${w}` : w;
  }
  out.push(line);
  return out.join('\n ');
}

interface Gen {
  text: string;
  findings: string[];
  impression: string[];
}

function generate(seed: number): Gen {
  const r = rngFor(seed, 0, 0);
  const nf = 1 + Math.floor(r() * 6);
  const ni = 1 + Math.floor(r() * 3);
  const findings = Array.from({ length: nf }, (_, i) => sentence(r, i === nf - 1));
  const impression = Array.from({ length: ni }, (_, i) => sentence(r, i === ni - 1));
  const header = (h: string) => pick(r, [`${h.toUpperCase()}:`, `${h.toUpperCase()}:\n`, `${h[0].toUpperCase()}${h.slice(1)}:`, ` ${h.toUpperCase()}: \n \n`]);
  const numbered = r() < 0.5;
  const width = 40 + Math.floor(r() * 40);
  const parts: string[] = [];
  if (r() < 0.5) parts.push('                                 FINAL REPORT');
  if (r() < 0.7) parts.push(`${header('indication')} ___F with cough // eval for pneumonia`);
  if (r() < 0.5) parts.push(`${header('comparison')} ___.`);
  parts.push(`${header('findings')} ${wrap(findings.join(pick(r, [' ', '  '])), width)}`);
  const imp = numbered ? impression.map((s, i) => `${i + 1}. ${s}`).join('\n') : wrap(impression.join(' '), width);
  parts.push(`${header('impression')} ${imp}`);
  let text = parts.join(pick(r, ['\n', '\n\n', '\n \n']));
  if (r() < 0.3) text = text.replace(/\n/g, '\r\n');
  return { text, findings, impression };
}

const N = 300;

describe('generated reports', () => {
  it('recover exactly the findings and impression sentences that were written', () => {
    for (let seed = 0; seed < N; seed++) {
      const g = generate(seed);
      const parsed = parseReport(g.text);
      const f = parsed.sections.filter((s) => s.name === 'findings');
      const i = parsed.sections.filter((s) => s.name === 'impression');
      expect([seed, f.length, i.length]).toEqual([seed, 1, 1]);
      expect([seed, splitSentences(f[0].text)]).toEqual([seed, g.findings]);
      expect([seed, splitSentences(i[0].text)]).toEqual([seed, g.impression]);
    }
  });

  it('split into non-empty sentences that are normalised substrings of the report', () => {
    for (let seed = 0; seed < N; seed++) {
      const g = generate(seed);
      const norm = normalizeWhitespace(g.text);
      for (const semicolons of [false, true]) {
        for (const s of splitSentences(g.text, { semicolons })) {
          expect(s.length).toBeGreaterThan(0);
          expect(s).toBe(normalizeWhitespace(s));
          expect(norm.includes(s)).toBe(true);
        }
      }
    }
  });

  it('sample deterministically, in report order, within k, and never empty', () => {
    const modes = [
      { mode: 'uniform' as const },
      { mode: 'one' as const },
      { mode: 'k' as const, k: 2 },
      { mode: 'full' as const },
    ];
    for (let seed = 0; seed < 100; seed++) {
      const g = generate(seed);
      for (const m of modes) {
        const s1 = new SentenceSampler({ ...m, seed });
        const s2 = new SentenceSampler({ ...m, seed });
        const p = s1.prepare(g.text);
        const n = p.sentences.length;
        expect(n).toBe(g.findings.length + g.impression.length);
        for (let e = 0; e < 3; e++) {
          const at = { epoch: e, index: seed * 10 + e };
          const idx = s1.pick(p, at);
          const expectedK = m.mode === 'one' ? 1 : m.mode === 'k' ? Math.min(2, n) : m.mode === 'full' ? n : -1;
          if (expectedK > 0) expect(idx.length).toBe(expectedK);
          else expect(idx.length >= 1 && idx.length <= n).toBe(true);
          for (let j = 1; j < idx.length; j++) expect(idx[j]).toBeGreaterThan(idx[j - 1]);
          const text = s1.sample(p, at);
          expect(text.length).toBeGreaterThan(0);
          expect(s2.sample(g.text, at)).toBe(text);
          for (const sent of p.sentences) expect(sent.length).toBeGreaterThan(0);
        }
      }
    }
  });

  it('survive random junk: no throw, no empty sentence, the same result twice', () => {
    for (let seed = 0; seed < 100; seed++) {
      const r = rngFor(seed, 1, 1);
      const alphabet = 'AB :.\n\r\t_1x-()"\u0000\ufffdFINDINGS:IMPRESSION:';
      const text = Array.from({ length: 200 + Math.floor(r() * 800) }, () => alphabet[Math.floor(r() * alphabet.length)]).join('');
      const parsed = parseReport(text);
      expect(parseReport(text)).toEqual(parsed);
      const s = new SentenceSampler({ seed, sections: 'all' });
      const p = s.prepare(parsed);
      for (const sent of p.sentences) expect(sent.trim().length).toBeGreaterThan(0);
      expect(s.sample(p, { epoch: 0, index: seed }).length).toBeGreaterThan(0);
    }
  });
});
