/**
 * Retrieval metrics against scikit-learn (`top_k_accuracy_score`) and an independent NumPy rank computation
 * on a committed fixture (test/fixtures/eval/retrieval/reference.json, made by scripts/retrieval-reference.py),
 * plus the rules sklearn does not cover: ties, duplicate texts, k×200 selection, report texts, ensembles.
 */
import fs from 'node:fs';
import path from 'node:path';
import {
  classifyKx200,
  cosineSimilarities,
  groupTexts,
  imageTextRetrieval,
  retrievalRanks,
  selectKx200,
  summarizeRanks,
  transpose,
  type Kx200Selection,
} from '../../../lib/eval/retrieval';
import { checkRetrievalInputs, RetrievalEvaluation, retrievalTexts } from '../../../lib/eval/retrievalEval';
import { averageLogits, compareEnsemble, memberNames } from '../../../lib/eval/ensemble';
import { pairedBootstrap } from '../../../lib/eval/bootstrap';
import { encodeTextBatches, sigmoid, ZeroShotClassifier, type ZeroShotEncoder } from '../../../lib/eval/zeroShot';
import { retrievalSection, ensembleSection } from '../../../lib/eval/retrievalCard';
import { formatEnsembleText, formatRetrievalText } from '../../../lib/cli/retrievalText';
import { scoreTables } from '../../../lib/eval/score';
import { formatPredictionsCsv } from '../../../lib/eval/score';
import { formatCsv, parseCsvTable } from '../../../lib/util/csv';
import type { Sample } from '../../../lib/data/sample';
import { expectCode, rejectsWith } from '../../helpers/errors';
import { lcg } from './helpers';

interface Dir {
  recall: Record<string, number>;
  meanRank: number;
  medianRank: number;
  ranks: number[];
  sklearn?: Record<string, number>;
}
interface Case {
  dim: number;
  imageEmbeddings: number[];
  textEmbeddings: number[];
  nImages: number;
  nTexts: number;
  textOf: number[];
  imageToText: Dir;
  textToImage: Dir;
}
const ref = JSON.parse(fs.readFileSync(path.join(__dirname, '../../fixtures/eval/retrieval/reference.json'), 'utf8')) as {
  ks: number[];
  shared: Case;
  oneToOne: Case;
  kx: { dim: number; imageEmbeddings: number[]; labelEmbeddings: number[]; classOf: number[]; accuracy: number; correctPerClass: number[] };
};

const TOL = 1e-9;

describe('Recall@K and ranks equal scikit-learn and an independent rank computation', () => {
  for (const name of ['shared', 'oneToOne'] as const) {
    test(`${name} fixture`, () => {
      const c = ref[name];
      const sim = cosineSimilarities(Float32Array.from(c.imageEmbeddings), c.nImages, Float32Array.from(c.textEmbeddings), c.nTexts, c.dim);
      const r = imageTextRetrieval(sim, c.nImages, c.nTexts, c.textOf, ref.ks);
      const i2t = retrievalRanks(sim, c.nImages, c.nTexts, c.textOf.map((t) => [t]));
      expect(Array.from(i2t)).toEqual(c.imageToText.ranks);
      for (const k of ref.ks) {
        expect(Math.abs(r.imageToText.recall[k] - c.imageToText.sklearn![k])).toBeLessThanOrEqual(TOL);
        expect(Math.abs(r.textToImage.recall[k] - c.textToImage.recall[k])).toBeLessThanOrEqual(TOL);
        if (c.textToImage.sklearn) expect(Math.abs(r.textToImage.recall[k] - c.textToImage.sklearn[k])).toBeLessThanOrEqual(TOL);
      }
      for (const [mine, theirs] of [[r.imageToText, c.imageToText], [r.textToImage, c.textToImage]] as const) {
        expect(Math.abs(mine.meanRank - theirs.meanRank)).toBeLessThanOrEqual(TOL);
        expect(Math.abs(mine.medianRank - theirs.medianRank)).toBeLessThanOrEqual(TOL);
      }
      expect(r.imageToText).toMatchObject({ queries: c.nImages, candidates: c.nTexts });
      expect(r.textToImage).toMatchObject({ queries: c.nTexts, candidates: c.nImages });
      // Not a trivial case: some queries miss at 1 and hit later.
      expect(r.imageToText.recall['1']).toBeLessThan(r.imageToText.recall['10']);
    });
  }

  test('k-label classification accuracy equals top_k_accuracy_score(k=1)', () => {
    const c = ref.kx;
    const k = c.correctPerClass.length;
    const n = c.classOf.length;
    const sim = cosineSimilarities(Float32Array.from(c.imageEmbeddings), n, Float32Array.from(c.labelEmbeddings), k, c.dim);
    const labels = Array.from({ length: k }, (_, i) => `L${i}`);
    const sel: Kx200Selection = {
      labels,
      rows: c.classOf.map((_, i) => i),
      classOf: c.classOf,
      perLabel: labels.map((label, j) => ({ label, eligible: c.classOf.filter((x) => x === j).length, chosen: c.classOf.filter((x) => x === j).length })),
    };
    const r = classifyKx200(sim, sel, 200);
    expect(Math.abs(r.accuracy - c.accuracy)).toBeLessThanOrEqual(TOL);
    expect(r.perLabel.map((p) => p.correct)).toEqual(c.correctPerClass);
    expect(r.short).toEqual(labels); // far fewer than 200 per label
    expect(r.confusion.flat().reduce((a, b) => a + b, 0)).toBe(n);
  });
});

describe('rules', () => {
  test('ties count against the query; several relevant candidates take the best one', () => {
    // Query 0: relevant 1 ties with 0 → rank 2. Query 1: relevant {0, 2}, best 0.9 beaten by nothing → 1.
    const s = [0.5, 0.5, 0.1, 0.9, 0.95, 0.8];
    expect(Array.from(retrievalRanks(s, 2, 3, [[1], [0, 2]]))).toEqual([2, 2]);
    expect(Array.from(retrievalRanks([0.2, 0.9, 0.9], 1, 3, [[1, 2]]))).toEqual([1]);
    expect(summarizeRanks([1, 2, 3, 10], 10)).toMatchObject({ recall: { '1': 0.25, '5': 0.75, '10': 1 }, meanRank: 4, medianRank: 2.5 });
    expectCode(() => retrievalRanks([NaN, 1], 1, 2, [[0]]), 'E_NUMERIC');
    expectCode(() => retrievalRanks([1, 1], 1, 2, [[]]), 'E_DATA');
    expectCode(() => summarizeRanks([], 3), 'E_DATA');
    expectCode(() => summarizeRanks([1], 3, [0]), 'E_CONFIG');
    expect(Array.from(transpose(Float64Array.from([1, 2, 3, 4, 5, 6]), 2, 3))).toEqual([1, 4, 2, 5, 3, 6]);
  });

  test('identical texts are one gallery item; text→image finds any image of the text', () => {
    const g = groupTexts(['a', 'b', 'a', 'c', 'b']);
    expect(g.unique).toEqual(['a', 'b', 'c']);
    expect(Array.from(g.groupOf)).toEqual([0, 1, 0, 2, 1]);
    // 4 images, 2 texts; images 0, 1 have text 0 (image 1 is far from it), images 2, 3 text 1.
    const sim = Float64Array.from([0.9, 0.1, 0.2, 0.3, 0.1, 0.8, 0.4, 0.5]);
    const r = imageTextRetrieval(sim, 4, 2, [0, 0, 1, 1], [1]);
    expect(r.imageToText.recall['1']).toBe(0.75); // image 1 ranks text 1 first (0.3 > 0.2)
    expect(Array.from(retrievalRanks(transpose(sim, 4, 2), 2, 4, [[0, 1], [2, 3]]))).toEqual([1, 1]);
    expect(r.textToImage.recall['1']).toBe(1); // text 0 finds image 0 first (image 1 far away does not matter)
    expectCode(() => imageTextRetrieval(sim, 4, 2, [0, 0, 0, 0]), 'E_DATA'); // text 1 without an image
  });

  test('k×200 selection: exactly one positive of the k, no uncertain; seeded cap; short labels named', () => {
    // Columns: A, B, C(not in k). Rows: A only; B only; A and B; A with B uncertain; A with C positive; nothing.
    const rows = [
      [1, 0, 0],
      [0, 1, NaN],
      [1, 1, 0],
      [1, -1, 0],
      [1, NaN, 1],
      [0, 0, 0],
    ];
    const truth = Float64Array.from(rows.flat());
    const sel = selectKx200(truth, rows.length, 3, ['A', 'B'], [0, 1], 200, 0);
    expect(sel.rows).toEqual([0, 4, 1]);
    expect(sel.classOf).toEqual([0, 0, 1]);
    expect(sel.perLabel).toEqual([
      { label: 'A', eligible: 2, chosen: 2 },
      { label: 'B', eligible: 1, chosen: 1 },
    ]);
    // Cap: 50 eligible A rows, 10 kept, the same for the same seed, another subset for another seed.
    const big = Float64Array.from(Array.from({ length: 60 }, (_, i) => (i < 50 ? [1, 0] : [0, 1])).flat());
    const a = selectKx200(big, 60, 2, ['A', 'B'], [0, 1], 10, 1);
    expect(a.perLabel).toEqual([
      { label: 'A', eligible: 50, chosen: 10 },
      { label: 'B', eligible: 10, chosen: 10 },
    ]);
    expect(selectKx200(big, 60, 2, ['A', 'B'], [0, 1], 10, 1).rows).toEqual(a.rows);
    expect(selectKx200(big, 60, 2, ['A', 'B'], [0, 1], 10, 2).rows).not.toEqual(a.rows);
    expect(a.rows.slice(0, 10).every((r) => r < 50)).toBe(true);
    expectCode(() => selectKx200(big, 60, 2, ['A'], [0], 10, 1), 'E_CONFIG');
    expectCode(() => classifyKx200([], { labels: ['A', 'B'], rows: [], classOf: [], perLabel: [] }, 200), 'E_DATA');
  });

  test('report text: the chosen sections, whole, deterministic; no report or no sentence → left out', () => {
    const rep = 'FINDINGS: Heart size is normal. Small left pleural effusion.\nIMPRESSION: Effusion. No pneumothorax.';
    const count = (t: string) => t.split(' ').length + 2;
    const r = retrievalTexts([rep, rep, undefined, '  ', 'IMPRESSION: ___.'], { contextLength: 77, countTokens: count });
    expect(r.texts[0]).toBe('Heart size is normal. Small left pleural effusion. Effusion. No pneumothorax.');
    expect(r.texts[1]).toBe(r.texts[0]);
    expect(r.texts.slice(2)).toEqual([null, null, null]);
    expect(r).toMatchObject({ noReport: 2, noSentence: 1 });
    expect(retrievalTexts([rep], { sections: 'impression', contextLength: 77, countTokens: count }).texts[0]).toBe('Effusion. No pneumothorax.');
    // Cut to the context length by the given token count.
    expect(retrievalTexts([rep], { contextLength: 9, countTokens: count }).texts[0]).toBe('Heart size is normal. Small left pleural');
  });

  test('bad inputs: a split without reports is E_DATA; k×200 labels beyond those available are E_CONFIG', () => {
    const s = (report?: string): Sample => ({ id: 'x', imagePath: '', labels: {}, patientId: 'p', studyId: 's', ...(report !== undefined ? { report } : {}) });
    expectCode(() => checkRetrievalInputs('test', [s(), s('')], ['Edema'], {}), 'E_DATA');
    const e = expectCode(() => checkRetrievalInputs('test', [s('x')], ['Edema', 'Atelectasis'], {}), 'E_CONFIG');
    expect(e.message).toMatch(/k = 5.*Cardiomegaly/);
    expectCode(() => checkRetrievalInputs('test', [s('x')], ['A', 'B'], { kx200Labels: ['A', 'B', 'C'] }), 'E_CONFIG');
    expectCode(() => checkRetrievalInputs('test', [s('x')], ['A', 'B'], { kx200Labels: ['A'] }), 'E_CONFIG');
    expectCode(() => checkRetrievalInputs('test', [s('x')], ['A', 'B'], { kx200PerLabel: 0 }), 'E_CONFIG');
    expectCode(() => checkRetrievalInputs('test', [s('x')], ['A', 'B'], { ks: [0] }), 'E_CONFIG');
    expect(checkRetrievalInputs('test', [s('x')], ['A'], { kx200Labels: null })).toBeNull();
    expect(checkRetrievalInputs('test', [s('x')], ['A', 'B'], { kx200Labels: ['B', 'A'] })).toEqual(['B', 'A']);
  });
});

const DIM = 6;
/** Texts map to fixed pseudo-random vectors; an "image" is the float vector it is given. */
class Fake implements ZeroShotEncoder {
  readonly dim = DIM;
  calls: number[] = [];
  constructor(readonly id: string, private readonly salt: number) {}
  vec(t: string): Float32Array {
    let seed = 7 + this.salt;
    for (const c of t) seed = (Math.imul(seed, 31) + c.charCodeAt(0)) >>> 0;
    const r = lcg(seed);
    return Float32Array.from({ length: DIM }, () => r() * 2 - 1);
  }
  async encodeTexts(texts: string[]): Promise<Float32Array> {
    this.calls.push(texts.length);
    const out = new Float32Array(texts.length * DIM);
    texts.forEach((t, i) => out.set(this.vec(t), i * DIM));
    return out;
  }
  async encodeImages(images: Float32Array, n: number): Promise<Float32Array> {
    return images.slice(0, n * DIM);
  }
}

const PROMPTS = {
  name: 't',
  labels: ['Atelectasis', 'Cardiomegaly', 'Consolidation', 'Edema', 'Pleural Effusion'].map((l) => ({ label: l, positive: [l.toLowerCase()], negative: ['no ' + l.toLowerCase()] })),
};
const LABELS = PROMPTS.labels.map((l) => l.label);

function samplesFor(n: number): Sample[] {
  const reports = ['FINDINGS: Small effusion.', 'IMPRESSION: Cardiomegaly.', 'FINDINGS: Normal chest.', 'IMPRESSION: Edema.', 'IMPRESSION: Small effusion.'];
  return Array.from({ length: n }, (_, i) => ({
    id: `i${i}`,
    imagePath: '',
    report: i === n - 1 ? undefined : reports[i % reports.length],
    labels: Object.fromEntries(LABELS.map((l, j) => [l, j === i % 5 ? 1 : 0])),
    patientId: `p${i >> 1}`,
    studyId: `s${i}`,
  }));
}

describe('RetrievalEvaluation', () => {
  test('texts batched through the encoder; an image equal to its text ranks it first; ensembles average similarities', async () => {
    const samples = samplesFor(12);
    const a = new Fake('a', 0);
    const b = new Fake('b', 1);
    const ev = new RetrievalEvaluation('test', samples, LABELS, new Map(LABELS.map((l) => [l, l])), { textBatchSize: 2, kx200PerLabel: 2 });
    const texts = retrievalTexts(samples.map((s) => s.report), { contextLength: 77, countTokens: () => 3 }).texts;
    const member = async (enc: Fake) => {
      // Each image is its text's vector under encoder a (so a retrieves perfectly; b does not).
      const emb = new Float32Array(samples.length * DIM);
      samples.forEach((_, i) => emb.set(texts[i] ? a.vec(texts[i]!) : a.vec('none'), i * DIM));
      await ev.addMember({ checkpoint: enc.id, samples, embeddings: emb, classifier: new ZeroShotClassifier(enc, PROMPTS, { cache: new Map() }), countTokens: () => 3, contextLength: 77 });
    };
    await member(a);
    expect(a.calls).toEqual([2, 2, 10]); // 4 distinct texts in calls of 2, then the 10 prompts (k×200's label vectors)
    const one = ev.finish();
    expect(one.images).toEqual({ scored: 12, withText: 11, noReport: 1, noSentence: 0 });
    expect(one.texts.distinct).toBe(4); // "Small effusion." from two sections is one text
    expect(one.scores.imageToText!.recall['1']).toBe(1);
    expect(one.scores.textToImage!.recall['1']).toBe(1);
    expect(one.scores.kx200!.perLabel.map((p) => p.chosen)).toEqual([2, 2, 2, 2, 2]);
    expect(one.scores.kx200!.short).toEqual([]);
    expect(one.members).toBeUndefined();
    await member(b);
    const two = ev.finish();
    expect(two.members!.map((m) => m.checkpoint)).toEqual(['a', 'b']);
    expect(two.members![0].scores).toEqual(one.scores);
    // The ensemble's similarity is the members' mean: recompute image→text from the two matrices.
    const ids = samples.map((_, i) => i).filter((i) => texts[i] !== null);
    const g = groupTexts(ids.map((i) => texts[i]!));
    const img = new Float32Array(ids.length * DIM);
    ids.forEach((i, r) => img.set(a.vec(texts[i]!), r * DIM));
    const sims = [a, b].map((enc) => {
      const t = new Float32Array(g.unique.length * DIM);
      g.unique.forEach((x, j) => t.set(enc.vec(x), j * DIM));
      return cosineSimilarities(img, ids.length, t, g.unique.length, DIM);
    });
    const mean = sims[0].map((v, i) => (v + sims[1][i]) / 2);
    expect(two.scores.imageToText).toEqual(imageTextRetrieval(mean, ids.length, g.unique.length, g.groupOf).imageToText);
    // Sections render; the CLI text names both directions and k×200.
    const sec = retrievalSection(two);
    expect(sec.html).toContain('<table class="retrieval">');
    expect(sec.html).toContain('5×2 label-prompt retrieval');
    expect(formatRetrievalText(two)).toMatch(/image→text[\s\S]*text→image[\s\S]*5×2 label-prompt retrieval: accuracy/);
  });

  test('a member that scored other images is E_DATA; nothing added is E_CONFIG', async () => {
    const samples = samplesFor(6);
    const ev = new RetrievalEvaluation('test', samples, LABELS, new Map(), { kx200Labels: null });
    expectCode(() => ev.finish(), 'E_CONFIG');
    const enc = new Fake('a', 0);
    const clf = new ZeroShotClassifier(enc, PROMPTS, { cache: new Map() });
    const emb = Float32Array.from({ length: 6 * DIM }, (_, i) => 1 + (i % 5));
    await ev.addMember({ checkpoint: 'a', samples, embeddings: emb, classifier: clf, countTokens: () => 3, contextLength: 77 });
    expect(ev.finish().kx200).toBeNull();
    await rejectsWith(ev.addMember({ checkpoint: 'b', samples: samples.slice(1), embeddings: emb.slice(DIM), classifier: clf, countTokens: () => 3, contextLength: 77 }), 'E_DATA');
  });

  test('encodeTextBatches splits calls and checks what the encoder returns', async () => {
    const enc = new Fake('a', 0);
    const out = await encodeTextBatches(enc, ['a', 'b', 'c', 'd', 'e'], 2);
    expect(enc.calls).toEqual([2, 2, 1]);
    expect(Array.from(out.subarray(4 * DIM))).toEqual(Array.from(enc.vec('e')));
    await rejectsWith(encodeTextBatches({ ...enc, dim: DIM, id: 'x', encodeTexts: async () => new Float32Array(1), encodeImages: enc.encodeImages }, ['a'], 2), 'E_SHAPE');
    await rejectsWith(encodeTextBatches(enc, ['a'], 0), 'E_CONFIG');
  });
});

describe('ensembles', () => {
  test('member names: the folder name, with parents only where two would read the same', () => {
    expect(memberNames(['/r/a/model', '/r/b/model', '/x/other'])).toEqual(['a/model', 'b/model', 'other']);
    expect(memberNames(['/r/a/run/model', '/r/b/run/model'])).toEqual(['a/run/model', 'b/run/model']);
    expect(memberNames(['m1', 'm2'])).toEqual(['m1', 'm2']);
  });

  test('logits: sigmoid of the mean logit; the classifier logits give its probabilities', async () => {
    expect(Array.from(averageLogits([[0, 2], [2, -4]]))).toEqual([Math.fround(sigmoid(1)), Math.fround(sigmoid(-1))]);
    expectCode(() => averageLogits([[0], [1, 2]]), 'E_SHAPE');
    const clf = new ZeroShotClassifier(new Fake('a', 0), PROMPTS, { cache: new Map(), temperature: 3 });
    const emb = Float32Array.from({ length: 4 * DIM }, (_, i) => Math.sin(i + 1));
    const p = await clf.scoreEmbeddings(emb, 4);
    const z = await clf.logitsOfEmbeddings(emb, 4);
    z.forEach((v, i) => expect(Math.fround(sigmoid(v))).toBe(p[i]));
  });

  test('members beside the ensemble; best member chosen on validation; deltas are the paired patient bootstrap', () => {
    const labels = ['A', 'B'];
    const n = 80;
    const r = lcg(11);
    const truth = new Float64Array(n * 2);
    const m1 = new Float32Array(n * 2);
    const m2 = new Float32Array(n * 2);
    for (let i = 0; i < n * 2; i++) {
      truth[i] = r() < 0.4 ? 1 : 0;
      m1[i] = Math.fround(0.3 * truth[i] + 0.7 * r());
      m2[i] = Math.fround(0.2 * truth[i] + 0.8 * r());
    }
    const ens = Float32Array.from(m1, (v, i) => (v + m2[i]) / 2);
    const ids = Array.from({ length: n }, (_, i) => `r${i}`);
    const patients = ids.map((_, i) => `p${i >> 1}`);
    const truthCsv = parseCsvTable(formatCsv([['id', 'patient_id', ...labels], ...ids.map((id, i) => [id, patients[i], truth[i * 2], truth[i * 2 + 1]])]));
    const score = (p: Float32Array) => scoreTables({ truth: truthCsv, pred: parseCsvTable(formatPredictionsCsv(ids, labels, p)) }, { labels, idCol: 'id', patientCol: 'patient_id', bootstrap: 50, seed: 4 });
    const rep = compareEnsemble({
      average: 'probabilities',
      labels,
      checkpoints: ['m1', 'm2'],
      hashes: ['h1', 'h2'],
      memberResults: [score(m1), score(m2)],
      ensembleResult: score(ens),
      truth,
      memberProbs: [m1, m2],
      ensembleProbs: ens,
      patients,
      // On "validation" member 2 is better (its scores are the truth itself there).
      val: { truth, memberProbs: [m1, Float32Array.from(truth)] },
      bootstrap: 50,
      seed: 4,
    });
    expect(rep.best).toMatchObject({ index: 1, name: 'm2', chosenOn: 'validation' });
    expect(rep.members.map((m) => m.macroAuroc)).toEqual([score(m1).macro.auroc, score(m2).macro.auroc]);
    expect(rep.ensemble.macroAuroc).toBe(score(ens).macro.auroc);
    const col = (x: ArrayLike<number>, j: number) => Float64Array.from({ length: n }, (_, i) => x[i * 2 + j]);
    const d = pairedBootstrap(col(truth, 0), col(ens, 0), col(m2, 0), 'auroc', { resamples: 50, seed: 4, clusters: patients });
    expect(rep.deltas!.labels.A).toEqual({ delta: d.delta, lo: d.lo, hi: d.hi, n: d.n, p: d.p });
    const dB = pairedBootstrap(col(truth, 1), col(ens, 1), col(m2, 1), 'auroc', { resamples: 50, seed: 4, clusters: patients });
    expect(rep.deltas!.macro.delta).toBeCloseTo((d.delta + dB.delta) / 2, 12);
    expect(rep.bootstrap).toEqual({ resamples: 50, seed: 4, unit: 'patient', nUnits: 40 });
    expect(ensembleSection(rep).html).toContain('m2 (best)');
    expect(formatEnsembleText(rep)).toMatch(/m2\*[\s\S]*macro/);
    // Without validation the best member is chosen on the scored split; no bootstrap: no deltas.
    const noVal = compareEnsemble({ labels, average: 'logits', checkpoints: ['m1', 'm2'], hashes: [], memberResults: [score(m1), score(m2)], ensembleResult: score(ens), truth, memberProbs: [m1, m2], ensembleProbs: ens, patients, bootstrap: 0 });
    expect(noVal.best.chosenOn).toBe('test');
    expect(noVal.deltas).toBeNull();
    expectCode(() => compareEnsemble({ labels, average: 'probabilities', checkpoints: ['m1'], hashes: [], memberResults: [], ensembleResult: score(ens), truth, memberProbs: [], ensembleProbs: ens, patients: null }), 'E_CONFIG');
  });
});
