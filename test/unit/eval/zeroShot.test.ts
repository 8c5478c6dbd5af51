import {
  ensembleProbabilities,
  normalizeRows,
  promptSetHash,
  sigmoid,
  templateEnsemble,
  validatePromptSet,
  ZeroShotClassifier,
  zeroShotProbabilities,
} from '../../../lib/eval/zeroShot';
import type { TextEmbeddingSet, ZeroShotEncoder, ZeroShotPromptSet } from '../../../lib/eval/zeroShot';
import { isCxrError } from '../../../lib/errors';
import { lcg } from './helpers';

const DIM = 8;

/** Deterministic fake: a text's embedding is a pseudo-random vector seeded by its characters; images are their own embeddings scaled by 3. */
class FakeEncoder implements ZeroShotEncoder {
  readonly dim = DIM;
  textCalls: string[][] = [];
  imageCalls: number[] = [];
  failTexts = false;
  constructor(readonly id: string) {}
  static textVec(t: string): Float32Array {
    let seed = 17;
    for (const c of t) seed = (Math.imul(seed, 31) + c.charCodeAt(0)) >>> 0;
    const r = lcg(seed);
    return Float32Array.from({ length: DIM }, () => r() * 2 - 1);
  }
  async encodeTexts(texts: string[]): Promise<Float32Array> {
    this.textCalls.push(texts);
    if (this.failTexts) throw new Error('encoder failed');
    const out = new Float32Array(texts.length * DIM);
    texts.forEach((t, i) => out.set(FakeEncoder.textVec(t), i * DIM));
    return out;
  }
  async encodeImages(images: Float32Array, n: number): Promise<Float32Array> {
    this.imageCalls.push(n);
    return Float32Array.from(images.subarray(0, n * DIM), (v) => v * 3);
  }
}

const prompts: ZeroShotPromptSet = {
  name: 'test',
  labels: [
    { label: 'Edema', positive: ['edema', 'pulmonary edema'], negative: ['no edema'] },
    { label: 'Cardiomegaly', positive: ['cardiomegaly'], negative: ['no cardiomegaly', 'normal heart size'] },
    { label: 'No Finding', positive: ['no acute findings'], negative: ['acute findings'] },
  ],
};

function unit(v: Float32Array): number[] {
  const n = Math.hypot(...v);
  return Array.from(v, (x) => x / n);
}

/** Independent reference: explicit exp(a) / (exp(a) + exp(b)) in double precision. */
function reference(img: Float32Array, n: number, ps: ZeroShotPromptSet, t = 1): number[] {
  const ens = (texts: string[]): number[] => {
    const vs = texts.map((x) => unit(FakeEncoder.textVec(x)));
    return unit(Float32Array.from(vs[0].map((_, k) => vs.reduce((a, v) => a + v[k], 0) / vs.length)));
  };
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const u = unit(img.subarray(i * DIM, (i + 1) * DIM));
    for (const l of ps.labels) {
      const a = t * ens(l.positive).reduce((s, x, k) => s + x * u[k], 0);
      const b = t * ens(l.negative).reduce((s, x, k) => s + x * u[k], 0);
      out.push(Math.exp(a) / (Math.exp(a) + Math.exp(b)));
    }
  }
  return out;
}

function randomImages(n: number, seed = 3): Float32Array {
  const r = lcg(seed);
  return Float32Array.from({ length: n * DIM }, () => r() * 2 - 1);
}

describe('pure functions', () => {
  test('hand-worked two-dimensional case; no temperature by default', () => {
    const p = zeroShotProbabilities(Float32Array.of(5, 0, 0, 2), 2, [Float32Array.of(1, 0)], [Float32Array.of(0, 3)], 2);
    expect(p[0]).toBeCloseTo(Math.E / (Math.E + 1), 6); // cos+ = 1, cos- = 0
    expect(p[1]).toBeCloseTo(1 / (1 + Math.E), 6);
    const hot = zeroShotProbabilities(Float32Array.of(5, 0), 1, [Float32Array.of(1, 0)], [Float32Array.of(0, 3)], 2, { temperature: 100 });
    expect(hot[0]).toBeCloseTo(1, 6);
  });

  test('templates are averaged after normalisation, then re-normalised', () => {
    const e = templateEnsemble(Float32Array.of(2, 0, 0, 30), 2);
    expect(e[0]).toBeCloseTo(Math.SQRT1_2, 6);
    expect(e[1]).toBeCloseTo(Math.SQRT1_2, 6);
  });

  test('stable for large temperature x similarity and scale-invariant', () => {
    expect(sigmoid(1000)).toBe(1);
    expect(sigmoid(-1000)).toBe(0);
    expect(sigmoid(-745.2)).toBeGreaterThanOrEqual(0);
    const p = zeroShotProbabilities(Float32Array.of(1, 0), 1, [Float32Array.of(-1, 0)], [Float32Array.of(1, 0)], 2, { temperature: 1e6 });
    expect(p[0]).toBe(0);
    const img = randomImages(4);
    const pos = [FakeEncoder.textVec('a')];
    const neg = [FakeEncoder.textVec('no a')];
    const a = zeroShotProbabilities(img, 4, pos, neg, DIM);
    const b = zeroShotProbabilities(img.map((x) => x * 7), 4, pos.map((v) => v.map((x) => x * 0.1)), neg, DIM);
    for (let i = 0; i < 4; i++) expect(b[i]).toBeCloseTo(a[i], 6);
  });

  test('errors: shapes, zero vectors, NaN, temperature', () => {
    const code = (f: () => unknown): string | undefined => {
      try {
        f();
      } catch (e) {
        return isCxrError(e) ? e.code : 'other';
      }
      return undefined;
    };
    expect(code(() => normalizeRows(new Float32Array(5), 2, 2))).toBe('E_SHAPE');
    expect(code(() => normalizeRows(Float32Array.of(0, 0), 1, 2))).toBe('E_NUMERIC');
    expect(code(() => normalizeRows(Float32Array.of(NaN, 1), 1, 2))).toBe('E_NUMERIC');
    expect(code(() => zeroShotProbabilities(Float32Array.of(1, 0), 1, [Float32Array.of(1, 0)], [], 2))).toBe('E_SHAPE');
    expect(code(() => zeroShotProbabilities(Float32Array.of(1, 0), 1, [Float32Array.of(1, 0)], [Float32Array.of(0, 1)], 2, { temperature: 0 }))).toBe('E_CONFIG');
    expect(code(() => ensembleProbabilities([new Float32Array(2), new Float32Array(3)]))).toBe('E_SHAPE');
    expect(code(() => ensembleProbabilities([]))).toBe('E_CONFIG');
    expect(code(() => validatePromptSet({ name: 'x', labels: [{ label: 'A', positive: ['a'], negative: [] }] }))).toBe('E_CONFIG');
    expect(code(() => validatePromptSet({ name: 'x', labels: [{ label: 'A', positive: ['a'], negative: ['b'] }, { label: 'A', positive: ['a'], negative: ['b'] }] }))).toBe('E_CONFIG');
  });

  test('checkpoint ensembles average probabilities', () => {
    const e = ensembleProbabilities([Float32Array.of(0.2, 0.9), Float32Array.of(0.4, 0.5), Float32Array.of(0.9, 0.1)]);
    expect(e[0]).toBeCloseTo(0.5, 6);
    expect(e[1]).toBeCloseTo(0.5, 6);
  });

  test('prompt-set hash depends on content and order', () => {
    const h = promptSetHash(prompts);
    expect(h).toMatch(/^[0-9a-f]{64}$/);
    expect(promptSetHash(JSON.parse(JSON.stringify(prompts)))).toBe(h);
    const swapped = { ...prompts, labels: [prompts.labels[1], prompts.labels[0], prompts.labels[2]] };
    expect(promptSetHash(swapped)).not.toBe(h);
  });
});

describe('ZeroShotClassifier with a fake encoder', () => {
  test('matches an independent reference computation, batched', async () => {
    const enc = new FakeEncoder('ckpt-a');
    const clf = new ZeroShotClassifier(enc, prompts, { cache: new Map(), imageBatchSize: 3, textBatchSize: 2 });
    const img = randomImages(7);
    const p = await clf.predict(img, 7);
    expect(enc.imageCalls).toEqual([3, 3, 1]);
    // 8 distinct texts in batches of 2
    expect(enc.textCalls.map((c) => c.length)).toEqual([2, 2, 2, 2]);
    const ref = reference(img, 7, prompts);
    expect(p.length).toBe(21);
    for (let i = 0; i < ref.length; i++) expect(p[i]).toBeCloseTo(ref[i], 5);
    const hot = await new ZeroShotClassifier(enc, prompts, { cache: new Map(), temperature: 20 }).predict(img, 7);
    const refHot = reference(img, 7, prompts, 20);
    for (let i = 0; i < refHot.length; i++) expect(hot[i]).toBeCloseTo(refHot[i], 4);
  });

  test('text embeddings are computed once per (encoder id, prompt set)', async () => {
    const cache = new Map<string, Promise<TextEmbeddingSet>>();
    const enc = new FakeEncoder('ckpt-a');
    const a = new ZeroShotClassifier(enc, prompts, { cache });
    const b = new ZeroShotClassifier(enc, JSON.parse(JSON.stringify(prompts)), { cache });
    await Promise.all([a.predict(randomImages(2), 2), b.predict(randomImages(2), 2), a.textEmbeddings()]);
    expect(enc.textCalls.length).toBe(1);
    const other = new FakeEncoder('ckpt-b');
    await new ZeroShotClassifier(other, prompts, { cache }).textEmbeddings();
    expect(other.textCalls.length).toBe(1);
    const fewer = { name: 'one', labels: [prompts.labels[0]] };
    await new ZeroShotClassifier(enc, fewer, { cache }).textEmbeddings();
    expect(enc.textCalls.length).toBe(2);
    expect(cache.size).toBe(3);
    expect(a.cacheKey).toBe(`ckpt-a:${promptSetHash(prompts)}`);
  });

  test('a failed text encoding is not cached; predictBatches streams', async () => {
    const cache = new Map<string, Promise<TextEmbeddingSet>>();
    const enc = new FakeEncoder('ckpt-c');
    enc.failTexts = true;
    const clf = new ZeroShotClassifier(enc, prompts, { cache });
    await expect(clf.textEmbeddings()).rejects.toThrow('encoder failed');
    expect(cache.size).toBe(0);
    enc.failTexts = false;
    const imgs = randomImages(5, 9);
    const outs: Float32Array[] = [];
    for await (const p of clf.predictBatches([{ images: imgs.subarray(0, 2 * DIM), n: 2 }, { images: imgs.subarray(2 * DIM), n: 3 }])) outs.push(p);
    const all = await clf.predict(imgs, 5);
    expect(Array.from(outs[0]).concat(Array.from(outs[1]))).toEqual(Array.from(all));
  });

  test('bad encoder output shapes are E_SHAPE', async () => {
    const enc = new FakeEncoder('ckpt-d');
    enc.encodeImages = async () => new Float32Array(3);
    const clf = new ZeroShotClassifier(enc, prompts, { cache: new Map() });
    await expect(clf.predict(randomImages(2), 2)).rejects.toMatchObject({ code: 'E_SHAPE' });
    await expect(clf.predict(new Float32Array(5), 2)).rejects.toMatchObject({ code: 'E_SHAPE' });
  });
});
