import { isCxrError } from '../../../lib/errors';
import {
  approxTokenCount,
  isComparisonOnly,
  isPlaceholderOnly,
  removePlaceholders,
  rngFor,
  SentenceSampler,
} from '../../../lib/text/sentenceSampler';

const REPORT = [
  'INDICATION: Fever.',
  'FINDINGS: The heart is mildly enlarged. There is a small left effusion. No pneumothorax.',
  'Compared to the prior study from ___, there is no interval change.',
  'IMPRESSION:',
  '1. Mild cardiomegaly.',
  '2. Small left effusion.',
].join('\n');

const isSubsequence = (picked: string[], all: readonly string[]) => {
  let j = 0;
  for (const p of picked) {
    while (j < all.length && all[j] !== p) j++;
    if (j === all.length) return false;
    j++;
  }
  return true;
};

describe('SentenceSampler', () => {
  it('prepares findings+impression sentences in report order, without numbering or placeholders', () => {
    const s = new SentenceSampler({ seed: 0 });
    const p = s.prepare(REPORT);
    expect(p.sentences).toEqual([
      'The heart is mildly enlarged.',
      'There is a small left effusion.',
      'No pneumothorax.',
      'Compared to the prior study, there is no interval change.',
      'Mild cardiomegaly.',
      'Small left effusion.',
    ]);
    expect(p.sentenceSections).toEqual(['findings', 'findings', 'findings', 'findings', 'impression', 'impression']);
  });

  it('honours the section choice', () => {
    expect(new SentenceSampler({ sections: 'impression' }).prepare(REPORT).sentences).toEqual(['Mild cardiomegaly.', 'Small left effusion.']);
    expect(new SentenceSampler({ sections: 'findings' }).prepare(REPORT).sentences).toHaveLength(4);
    expect(new SentenceSampler({ sections: 'all' }).prepare(REPORT).sentences[0]).toBe('Fever.');
  });

  it('is deterministic in (seed, epoch, index) and independent of call order', () => {
    const a = new SentenceSampler({ seed: 7 });
    const b = new SentenceSampler({ seed: 7 });
    const p = a.prepare(REPORT);
    const forward = Array.from({ length: 20 }, (_, i) => a.sample(p, { epoch: 2, index: i }));
    const backward = Array.from({ length: 20 }, (_, i) => b.sample(REPORT, { epoch: 2, index: 19 - i })).reverse();
    expect(backward).toEqual(forward);
    const other = Array.from({ length: 20 }, (_, i) => new SentenceSampler({ seed: 8 }).sample(p, { epoch: 2, index: i }));
    expect(other).not.toEqual(forward);
  });

  it('respects the modes: one, k, full, uniform', () => {
    const p = new SentenceSampler().prepare(REPORT);
    const n = p.sentences.length;
    for (let i = 0; i < 50; i++) {
      const at = { epoch: 0, index: i };
      expect(new SentenceSampler({ mode: 'one', seed: 1 }).pick(p, at)).toHaveLength(1);
      expect(new SentenceSampler({ mode: 'k', k: 3, seed: 1 }).pick(p, at)).toHaveLength(3);
      expect(new SentenceSampler({ mode: 'k', k: 50, seed: 1 }).pick(p, at)).toHaveLength(n);
      const u = new SentenceSampler({ mode: 'uniform', seed: 1 }).pick(p, at);
      expect(u.length).toBeGreaterThanOrEqual(1);
      expect(u.length).toBeLessThanOrEqual(n);
      expect([...u].sort((x, y) => x - y)).toEqual(u);
    }
    expect(new SentenceSampler({ mode: 'full' }).sample(p, { epoch: 0, index: 0 })).toBe(p.sentences.join(' '));
  });

  it('draws k ~ Uniform{1..n} in uniform mode', () => {
    const s = new SentenceSampler({ seed: 3 });
    const p = s.prepare(REPORT);
    const n = p.sentences.length;
    const counts = new Array(n + 1).fill(0);
    const draws = 6000;
    for (let i = 0; i < draws; i++) counts[s.pick(p, { epoch: 0, index: i }).length]++;
    for (let k = 1; k <= n; k++) expect(Math.abs(counts[k] - draws / n)).toBeLessThan(0.15 * (draws / n));
    expect(counts[0]).toBe(0);
  });

  it('samples every sentence about equally often in mode one', () => {
    const s = new SentenceSampler({ mode: 'one', seed: 11 });
    const p = s.prepare(REPORT);
    const counts = new Map<string, number>();
    for (let i = 0; i < 6000; i++) {
      const t = s.sample(p, { epoch: i % 3, index: i });
      counts.set(t, (counts.get(t) ?? 0) + 1);
    }
    expect(counts.size).toBe(p.sentences.length);
    for (const c of counts.values()) expect(Math.abs(c - 1000)).toBeLessThan(150);
  });

  it('samples are ordered subsequences of the prepared sentences', () => {
    const s = new SentenceSampler({ mode: 'k', k: 2, seed: 5 });
    const p = s.prepare(REPORT);
    for (let i = 0; i < 30; i++) {
      const picked = s.pick(p, { epoch: 1, index: i }).map((j) => p.sentences[j]);
      expect(isSubsequence(picked, p.sentences)).toBe(true);
      expect(s.sample(p, { epoch: 1, index: i })).toBe(picked.join(' '));
    }
  });

  it('filters comparison-only sentences and duplicates when asked, and counts them', () => {
    const t = 'FINDINGS: No interval change. Stable cardiomegaly. Small effusion.\nIMPRESSION: Small effusion. Unchanged from ___.';
    const s = new SentenceSampler({ dropComparisonOnly: true, dropDuplicates: true });
    expect(s.prepare(t).sentences).toEqual(['Stable cardiomegaly.', 'Small effusion.']);
    expect(s.stats()).toMatchObject({ droppedComparison: 2, droppedDuplicate: 1 });
    expect(new SentenceSampler().prepare(t).sentences).toHaveLength(5);
  });

  it('uses the fallback text for empty reports and counts it', () => {
    const s = new SentenceSampler({ fallbackText: 'no report' });
    expect(s.sample('', { epoch: 0, index: 0 })).toBe('no report');
    expect(s.sample('FINDINGS:\nIMPRESSION:', { epoch: 0, index: 1 })).toBe('no report');
    expect(s.sample('FINDINGS: XXXX.', { epoch: 0, index: 2 })).toBe('no report');
    expect(s.stats()).toMatchObject({ samples: 3, fallbacks: 3, emptyReports: 3, droppedPlaceholder: 1 });
    s.resetStats();
    expect(s.stats().samples).toBe(0);
  });

  it('falls back to the report body when the chosen sections are empty', () => {
    const s = new SentenceSampler({ sections: 'impression' });
    const p = s.prepare('FINDINGS: Clear lungs.');
    expect(p.sentences).toEqual(['Clear lungs.']);
    expect(p.usedSectionFallback).toBe(true);
    expect(s.stats().sectionFallbacks).toBe(1);
    expect(new SentenceSampler({ sections: 'impression', sectionFallback: false }).prepare('FINDINGS: Clear lungs.').sentences).toEqual([]);
  });

  it('fits the context length by dropping trailing sentences, cutting only a single long sentence', () => {
    const words = (t: string) => t.split(' ').length;
    const s = new SentenceSampler({ mode: 'full', contextLength: 8, countTokens: words });
    const full = s.sample(REPORT, { epoch: 0, index: 0 });
    expect(words(full)).toBeLessThanOrEqual(8);
    expect(s.stats().truncated).toBe(1);
    const k = new SentenceSampler({ mode: 'k', k: 6, contextLength: 12, countTokens: words });
    const t = k.sample(REPORT, { epoch: 0, index: 0 });
    expect(t).toBe('The heart is mildly enlarged. There is a small left effusion.');
    expect(k.stats()).toMatchObject({ droppedForContext: 4, truncated: 0 });
    const one = new SentenceSampler({ mode: 'one', contextLength: 3, countTokens: words });
    const cut = one.sample('FINDINGS: A very long single sentence about the heart.', { epoch: 0, index: 0 });
    expect(cut).toBe('A very long');
    expect(one.stats().truncated).toBe(1);
  });

  it('validates options and sample positions with E_CONFIG', () => {
    const bad: Array<Record<string, unknown>> = [{ mode: 'some' }, { sections: 'body' }, { mode: 'k' }, { mode: 'k', k: 0 }, { seed: -1 }, { seed: 1.5 }, { contextLength: 1 }];
    for (const o of bad) {
      let err: unknown;
      try {
        new SentenceSampler(o as never);
      } catch (e) {
        err = e;
      }
      expect(isCxrError(err, 'E_CONFIG')).toBe(true);
    }
    expect(() => new SentenceSampler().sample('x', { epoch: -1, index: 0 })).toThrow(/epoch/);
    expect(() => new SentenceSampler().sample('x', { epoch: 0, index: 0.5 })).toThrow(/index/);
  });
});

describe('helpers', () => {
  it('rngFor gives a reproducible stream in [0, 1) that changes with each key', () => {
    const a = rngFor(1, 2, 3);
    const xs = Array.from({ length: 1000 }, () => a());
    expect(Array.from({ length: 1000 }, rngFor(1, 2, 3))).toEqual(xs);
    for (const x of xs) expect(x >= 0 && x < 1).toBe(true);
    const mean = xs.reduce((s, x) => s + x, 0) / xs.length;
    expect(Math.abs(mean - 0.5)).toBeLessThan(0.05);
    const firsts = new Set([rngFor(1, 2, 3)(), rngFor(1, 2, 4)(), rngFor(1, 3, 3)(), rngFor(2, 2, 3)(), rngFor(1, 2, 2 ** 40)()]);
    expect(firsts.size).toBe(5);
  });

  it('removes placeholders with the words that introduce them', () => {
    expect(removePlaceholders('Compared to the prior study from ___, there is no change.')).toBe('Compared to the prior study, there is no change.');
    expect(removePlaceholders('Discussed with Dr. ___ by Dr. ___ at 10:15 a.m. on ___.')).toBe('Discussed at 10:15 a.m.');
    expect(removePlaceholders('Heart XXXX normal.')).toBe('Heart normal.');
    expect(isPlaceholderOnly('___.')).toBe(true);
    expect(isPlaceholderOnly('There are XXXX XXXX.')).toBe(true);
    expect(isPlaceholderOnly('Unchanged from ___.')).toBe(false);
  });

  it('recognises comparison-only sentences but keeps findings', () => {
    for (const t of ['No interval change.', 'Unchanged from prior.', 'Comparison is made to the prior study from ___.', 'No significant change since ___ at 10:00.'])
      expect(isComparisonOnly(t)).toBe(true);
    for (const t of ['Stable cardiomegaly.', 'Interval increase in right effusion.', 'No pneumothorax.', 'The lungs are clear.'])
      expect(isComparisonOnly(t)).toBe(false);
  });

  it('approxTokenCount grows with the text and counts start and end tokens', () => {
    expect(approxTokenCount('')).toBe(2);
    // start + end, "no", "effusion" (8 letters: two pieces), "."
    expect(approxTokenCount('no effusion.')).toBe(6);
    expect(approxTokenCount('pneumomediastinum')).toBeGreaterThan(approxTokenCount('lung'));
  });
});
