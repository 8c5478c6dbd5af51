/**
 * The ablation's pieces without training: config resolution and validation, the run plan, the shapes
 * pre-training domain, and the data splits (test patients and generator seed disjoint from training).
 */
import { ABLATION_SETTINGS, planRuns, resolveAblationConfig, runTrainConfig } from '../../../lib/experiments/ablation/config';
import { buildAblationData } from '../../../lib/experiments/ablation/data';
import { SHAPE_LABELS, generateShapes, shapesPromptSet } from '../../../lib/experiments/pretrainDomain';
import { promptSetFromObject } from '../../../lib/text/prompts';
import { CxrError } from '../../../lib/errors';

function code(f: () => unknown): string | undefined {
  try {
    f();
  } catch (e) {
    return e instanceof CxrError ? e.code : 'not-cxr';
  }
  return undefined;
}

describe('resolveAblationConfig', () => {
  it('gives the default four settings, three seeds, and applies the quick preset and layers in order', () => {
    const d = resolveAblationConfig([]);
    expect(d.settings).toEqual([...ABLATION_SETTINGS]);
    expect(d.seeds.length).toBeGreaterThanOrEqual(3);
    const q = resolveAblationConfig([{ config: { seeds: [4, 5], synthetic: { prevalenceScale: 2 } } }], { quick: true });
    expect(q.seeds).toEqual([4, 5]);
    expect(q.synthetic.prevalenceScale).toBe(2);
    expect(q.synthetic.n).toBeLessThan(d.synthetic.n);
    // The finetune section merges key by key over the defaults.
    const f = resolveAblationConfig([{ config: { finetune: { optimizer: { weightDecay: 0.05 } } } }]);
    expect((f.finetune.optimizer as { lr: number; weightDecay: number }).weightDecay).toBe(0.05);
    expect((f.finetune.optimizer as { lr: number }).lr).toBe((d.finetune.optimizer as { lr: number }).lr);
  });

  it('rejects unknown keys, bad values, a test seed equal to the training seed, and bad finetune keys', () => {
    expect(code(() => resolveAblationConfig([{ config: { sedes: [1] } }]))).toBe('E_CONFIG');
    expect(code(() => resolveAblationConfig([{ config: { settings: ['clip', 'magic'] } }]))).toBe('E_CONFIG');
    expect(code(() => resolveAblationConfig([{ config: { alphas: [0] } }]))).toBe('E_CONFIG');
    expect(code(() => resolveAblationConfig([{ config: { seeds: [1, 1] } }]))).toBe('E_CONFIG');
    expect(code(() => resolveAblationConfig([{ config: { synthetic: { seed: 3, testSeed: 3 } } }]))).toBe('E_CONFIG');
    expect(code(() => resolveAblationConfig([{ config: { finetune: { optimiser: { lr: 1 } } } }]))).toBe('E_CONFIG');
  });
});

describe('planRuns / runTrainConfig', () => {
  it('plans the pre-trained reference, then every setting per seed, with an α sweep on the relaxed settings only', () => {
    const a = resolveAblationConfig([{ config: { seeds: [0, 1], alphas: [0.8, 0.5] } }]);
    const runs = planRuns(a);
    expect(runs[0].kind).toBe('pretrained');
    // Per seed: clip, sampling, relaxed × 2 α, both × 2 α.
    expect(runs.length).toBe(1 + 2 * 6);
    expect(new Set(runs.map((r) => r.id)).size).toBe(runs.length);
    expect(runs.filter((r) => r.setting === 'relaxed@0.5').map((r) => r.seed)).toEqual([0, 1]);
    expect(runs.filter((r) => r.kind === 'clip').every((r) => r.alpha === null)).toBe(true);
  });

  it('changes only text mode and loss between settings (same steps, batch, lr, seed)', () => {
    const a = resolveAblationConfig([]);
    const runs = planRuns(a).filter((r) => r.seed === 0 && r.kind !== 'pretrained');
    const cfgs = runs.map((r) => runTrainConfig(a, r, '/m', '/o'));
    const strip = (c: ReturnType<typeof runTrainConfig>) => JSON.stringify({ ...c, text: undefined, loss: undefined });
    for (const c of cfgs) expect(strip(c)).toBe(strip(cfgs[0]));
    const by = Object.fromEntries(runs.map((r, i) => [r.kind, cfgs[i]]));
    expect(by.clip.text.mode).toBe('full');
    expect(by.clip.loss.kind).toBe('clip');
    expect(by.sampling.text.mode).toBe(a.samplingMode);
    expect(by.sampling.loss.kind).toBe('clip');
    expect(by.relaxed.text.mode).toBe('full');
    expect(by.relaxed.loss).toMatchObject({ kind: 'relaxed', alpha: a.alphas[0] });
    expect(by.both.text.mode).toBe(a.samplingMode);
    expect(by.both.loss.kind).toBe('relaxed');
    expect(by.clip.model.checkpoint).toBe('/m');
  });

  it('sweeps fixed α, running quantiles and margins as one axis, each with its own loss config', () => {
    const a = resolveAblationConfig([{ config: { seeds: [0, 1, 2, 3, 4], settings: ['clip', 'sampling', 'both'], alphas: [0.3, 0.8], quantiles: [0.5], margins: [0.1] } }]);
    const runs = planRuns(a);
    // Per seed: clip, sampling, both × (2 α + 1 q + 1 m).
    expect(runs.length).toBe(1 + 5 * 6);
    expect(new Set(runs.map((r) => r.id)).size).toBe(runs.length);
    const s0 = runs.filter((r) => r.seed === 0 && r.kind === 'both');
    // The quantile form holds α after the fine-tuning warm-up (30 steps) by default.
    expect(s0.map((r) => r.setting)).toEqual(['both@0.3', 'both@0.8', 'both@q0.5h30', 'both@m0.1']);
    expect(s0.map((r) => r.id)).toEqual(['both-a0.3-s0', 'both-a0.8-s0', 'both-q0.5h30-s0', 'both-m0.1-s0']);
    const loss = s0.map((r) => runTrainConfig(a, r, '/m', '/o').loss);
    expect(loss[0]).toMatchObject({ kind: 'relaxed', alpha: 0.3, variant: 'clamp-diag' });
    expect(loss[2]).toEqual(expect.objectContaining({ kind: 'relaxed', alpha: { quantile: 0.5, freezeAfter: 30 }, variant: 'clamp-diag' }));
    // quantileFreezeAfter null: the running quantile to the end, under its old key.
    const running = resolveAblationConfig([{ config: { settings: ['clip', 'both'], alphas: [0.8], quantiles: [0.5], quantileFreezeAfter: null } }]);
    const r0 = planRuns(running).find((r) => r.kind === 'both' && r.relax?.form === 'quantile')!;
    expect(r0.setting).toBe('both@q0.5');
    expect(runTrainConfig(running, r0, '/m', '/o').loss).toEqual(expect.objectContaining({ alpha: { quantile: 0.5 } }));
    expect(code(() => resolveAblationConfig([{ config: { quantileFreezeAfter: 0 } }]))).toBe('E_CONFIG');
    expect(loss[3]).toMatchObject({ kind: 'relaxed', variant: 'margin', margin: 0.1 });
    expect(code(() => resolveAblationConfig([{ config: { quantiles: [1.5] } }]))).toBe('E_CONFIG');
    expect(code(() => resolveAblationConfig([{ config: { margins: [0] } }]))).toBe('E_CONFIG');
    expect(code(() => resolveAblationConfig([{ config: { alphas: [], settings: ['clip', 'both'] } }]))).toBe('E_CONFIG');
  });
});

describe('shapes pre-training domain', () => {
  it('is deterministic by seed, has captions that name exactly the shapes labelled present, and no radiology words', () => {
    const a = generateShapes({ n: 60, size: 32, seed: 3 });
    const b = generateShapes({ n: 60, size: 32, seed: 3 });
    const c = generateShapes({ n: 60, size: 32, seed: 4 });
    expect(Buffer.from(a.train.pixels.buffer).equals(Buffer.from(b.train.pixels.buffer))).toBe(true);
    expect(Buffer.from(a.train.pixels.buffer).equals(Buffer.from(c.train.pixels.buffer))).toBe(false);
    expect(a.train.samples.length + a.val.samples.length).toBe(60);
    expect(a.train.pixels.length).toBe(a.train.samples.length * 32 * 32);
    for (const s of [...a.train.samples, ...a.val.samples]) {
      for (const l of SHAPE_LABELS) expect(new RegExp(`\\b${l}\\b`).test(s.report!)).toBe(s.labels[l] === 1);
      expect(s.report).not.toMatch(/effusion|cardio|lung|pneumo|edema|heart/i);
    }
    let lo = 1;
    let hi = 0;
    for (const v of a.train.pixels) {
      lo = Math.min(lo, v);
      hi = Math.max(hi, v);
    }
    expect(lo).toBeGreaterThanOrEqual(0);
    expect(hi).toBeLessThanOrEqual(1);
    expect(promptSetFromObject(shapesPromptSet(), 'shapes').labels.map((l) => l.label)).toEqual([...SHAPE_LABELS]);
  });
});

describe('buildAblationData (synthetic)', () => {
  it('keeps test patients disjoint from training and validation, and the shifted split pairs the same studies', async () => {
    const a = resolveAblationConfig([{ config: { synthetic: { n: 200, testN: 60 } } }], { quick: true });
    const tc = runTrainConfig(a, planRuns(a)[1], '/m', '/o');
    const d = await buildAblationData(a, tc);
    const trainP = new Set(d.run.train.samples.map((s) => s.patientId));
    const valP = new Set(d.run.val.samples.map((s) => s.patientId));
    expect(d.run.train.samples.length).toBeGreaterThan(0);
    expect(d.run.val.samples.length).toBeGreaterThan(0);
    for (const p of valP) expect(trainP.has(p)).toBe(false);
    for (const s of d.test.samples) {
      expect(trainP.has(s.patientId)).toBe(false);
      expect(valP.has(s.patientId)).toBe(false);
    }
    expect(d.shifted).not.toBeNull();
    expect(d.shifted!.samples.map((s) => s.id)).toEqual(d.test.samples.map((s) => s.id));
    expect(d.shifted!.samples.map((s) => s.labels)).toEqual(d.test.samples.map((s) => s.labels));
    // Same studies, other acquisition: the pixels differ.
    expect(Buffer.from((d.shifted as { pixels: Float32Array }).pixels.buffer).equals(Buffer.from((d.test as { pixels: Float32Array }).pixels.buffer))).toBe(false);
  });
});
