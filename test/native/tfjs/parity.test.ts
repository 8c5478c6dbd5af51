import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ClipModel, createModel, type LossOptions } from '../../../lib/models/ClipModel';
import type { ModelConfig } from '../../../lib/models/config';
import { noWeightDecay, TfClipModel } from '../../../lib/tfjs/model';
import { images, maxAbs, maxAbsDiff, tokens } from './helpers';

/**
 * The architecture of test/fixtures/openai-clip-tiny-vit (OpenAI layout, fp16 model.pt). The fixture
 * file itself needs the pickle reader; until it lands the same architecture is checked with random
 * native weights.
 */
const TINY_OPENAI: ModelConfig = {
  name: 'openai-clip-tiny-vit',
  embedDim: 64,
  vision: { type: 'vit', imageSize: 64, patchSize: 16, width: 128, layers: 2, heads: 2, act: 'quick_gelu' },
  text: { type: 'causal', vocabSize: 49408, contextLength: 77, width: 64, layers: 2, heads: 1, act: 'quick_gelu' },
  tokenizer: 'clip-bpe',
};

const models: Array<[string, string | ModelConfig, number]> = [
  ['test-vit', 'test-vit', 16],
  ['openai-clip-tiny-vit architecture', TINY_OPENAI, 77],
];

describe.each(models)('tfjs (wasm) forward equals native forward: %s', (_name, cfg, L) => {
  let native: ClipModel;
  let tfm: TfClipModel;
  beforeAll(async () => {
    native = createModel(cfg, { device: 'cpu', seed: 7 });
    tfm = await TfClipModel.fromState(native.config, native.getState(), { backend: 'wasm' });
  });
  afterAll(() => {
    native.dispose();
    tfm.dispose();
  });

  it('image embeddings to 1e-4', async () => {
    const x = images(3, native.imageSize, 1);
    const a = await native.encodeImages(x);
    const b = await tfm.encodeImages(x);
    expect(b.length).toBe(3 * native.embedDim);
    expect(maxAbsDiff(a, b)).toBeLessThan(1e-4);
    // Not vacuous: the embeddings are O(0.1-1) and differ across images.
    expect(maxAbs(a)).toBeGreaterThan(0.05);
  });

  it('text embeddings to 1e-4 (causal mask, EOT pooling)', async () => {
    const ids = tokens(4, L, 2);
    const a = await native.encodeTokenIds(ids, 4, L);
    const b = await tfm.encodeTokenIds(ids, 4, L);
    expect(maxAbsDiff(a, b)).toBeLessThan(1e-4);
    // Tokens after the EOT must not change the embedding (causal mask): change the padding.
    const ids2 = ids.slice();
    ids2[L - 1] = 123;
    const c = await tfm.encodeTokenIds(ids2, 4, L);
    expect(maxAbsDiff(b, c)).toBeLessThan(1e-6);
  });

  it('getState round-trips the loaded weights exactly', () => {
    const s = native.getState();
    const t = new Map(tfm.getState().map((x) => [x.name, x]));
    expect(t.size).toBe(s.length);
    for (const x of s) expect(maxAbsDiff(x.data, t.get(x.name)!.data)).toBe(0);
  });
});

describe.each<[string, LossOptions, 'js' | 'tensor']>([
  ['clip, moments in JS', { kind: 'clip' }, 'js'],
  ['relaxed clamp-diag α=0.5, moments as tensors', { kind: 'relaxed', alpha: 0.5, variant: 'clamp-diag' }, 'tensor'],
  ['relaxed clamp-numerator α=0.5, moments in JS', { kind: 'relaxed', alpha: 0.5, variant: 'clamp-numerator' }, 'js'],
])('one tfjs train step equals the native step (test-vit, %s)', (_name, loss, moments) => {
  it('same loss, gradient norm and updated weights to 1e-4; two steps stay together', async () => {
    const native = createModel('test-vit', { device: 'cpu', seed: 3 });
    const tfm = await TfClipModel.fromState(native.config, native.getState(), { backend: 'wasm' });
    try {
      const before = new Map(native.getState().map((x) => [x.name, x.data]));
      const opt = { weightDecay: 0.2, betas: [0.9, 0.98] as [number, number], eps: 1e-6 };
      native.configureOptimizer({ kind: 'adamw', ...opt });
      tfm.configureOptimizer({ ...opt, moments });
      const n = 4;
      const L = 16;
      for (let step = 0; step < 2; step++) {
        const batch = { images: images(n, 32, 10 + step), tokenIds: tokens(n, L, 20 + step), n, length: L };
        const so = { lr: 1e-3, loss, clipGradNorm: step === 1 ? 0.5 : 0 };
        const a = await native.trainStep(batch, so);
        const b = await tfm.trainStep(batch, so);
        expect(Math.abs(a.loss - b.loss)).toBeLessThan(1e-4);
        expect(Math.abs(a.gradNorm - b.gradNorm) / a.gradNorm).toBeLessThan(1e-3);
        expect(Math.abs(a.logitScale - b.logitScale)).toBeLessThan(1e-3);
        const sa = native.getState();
        const sb = new Map(tfm.getState().map((x) => [x.name, x.data]));
        let worst = 0;
        let worstName = '';
        let moved = 0;
        for (const x of sa) {
          const d = maxAbsDiff(x.data, sb.get(x.name)!);
          if (d > worst) [worst, worstName] = [d, x.name];
          moved = Math.max(moved, maxAbsDiff(x.data, before.get(x.name)!));
        }
        expect({ worst, worstName, step }).toEqual({ worst: expect.any(Number), worstName, step });
        expect(worst).toBeLessThan(1e-4);
        // The step really moved the weights (lr 1e-3 with Adam moves each weight by up to ~1e-3).
        expect(moved).toBeGreaterThan(5e-4);
      }
    } finally {
      native.dispose();
      tfm.dispose();
    }
  });
});

describe('AdamW parameter groups match the native optimizer', () => {
  it('decoupled decay hits exactly the native decay group (lr 1e-2, weight decay 10: decayed weights shrink 10%)', async () => {
    const native = createModel('test-vit', { device: 'cpu', seed: 4 });
    const tfm = await TfClipModel.fromState(native.config, native.getState(), { backend: 'wasm' });
    try {
      // eps = 1 makes the Adam update small and smooth in the gradient, so the decay term dominates and a
      // parameter placed in the wrong group differs by ~10% of its value.
      const opt = { weightDecay: 10, betas: [0.9, 0.98] as [number, number], eps: 1 };
      native.configureOptimizer({ kind: 'adamw', ...opt });
      tfm.configureOptimizer(opt);
      const batch = { images: images(4, 32, 30), tokenIds: tokens(4, 16, 31), n: 4, length: 16 };
      await native.trainStep(batch, { lr: 1e-2 });
      await tfm.trainStep(batch, { lr: 1e-2 });
      const sb = new Map(tfm.getState().map((x) => [x.name, x.data]));
      for (const x of native.getState()) {
        const d = maxAbsDiff(x.data, sb.get(x.name)!);
        expect({ name: x.name, ok: d < 1e-4 }).toEqual({ name: x.name, ok: true });
      }
    } finally {
      native.dispose();
      tfm.dispose();
    }
  });

  it('the no-decay rule is the native one', () => {
    expect(noWeightDecay('visual.transformer.resblocks.0.attn.in_proj_weight', [192, 64])).toBe(false);
    expect(noWeightDecay('visual.proj', [64, 32])).toBe(false);
    expect(noWeightDecay('text_projection', [64, 32])).toBe(false);
    expect(noWeightDecay('visual.conv1.weight', [64, 3, 8, 8])).toBe(false);
    for (const [n, s] of [
      ['token_embedding.weight', [10, 4]],
      ['visual.positional_embedding', [5, 4]],
      ['positional_embedding', [5, 4]],
      ['logit_scale', []],
      ['visual.class_embedding', [4]],
      ['transformer.resblocks.0.mlp.c_fc.bias', [4]],
      ['ln_final.weight', [4]],
      ['text.encoder.layer.0.output.LayerNorm.weight', [4]],
      ['visual.layer1.0.bn1.weight', [4]],
    ] as Array<[string, number[]]>)
      expect({ n, decay: !noWeightDecay(n, s) }).toEqual({ n, decay: false });
  });
});

describe('tfjs model loading', () => {
  it('loads the own format written by ClipModel.save', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cxr-tfjs-'));
    const native = createModel('test-vit', { device: 'cpu', seed: 5 });
    try {
      native.save(dir);
      const tfm = await TfClipModel.load(dir, { backend: 'wasm' });
      const x = images(2, 32, 3);
      expect(maxAbsDiff(await native.encodeImages(x, { normalize: true }), await tfm.encodeImages(x, { normalize: true }))).toBeLessThan(1e-4);
      tfm.dispose();
    } finally {
      native.dispose();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('accepts an OpenAI-layout state with metadata keys, and reports mismatches as E_CHECKPOINT', async () => {
    const native = createModel('test-vit', { device: 'cpu', seed: 5 });
    const state = native.getState();
    native.dispose();
    const withMeta = [
      ...state,
      { name: 'input_resolution', shape: [], data: new Float32Array([32]) },
      { name: 'context_length', shape: [], data: new Float32Array([32]) },
      { name: 'vocab_size', shape: [], data: new Float32Array([49408]) },
    ];
    const tfm = await TfClipModel.fromState('test-vit', withMeta, { backend: 'wasm' });
    expect(tfm.parameterCount()).toBe(state.reduce((a, t) => a + t.data.length, 0));
    expect(() => tfm.loadState(state.slice(1))).toThrow(expect.objectContaining({ code: 'E_CHECKPOINT' }));
    expect(() => tfm.loadState([{ name: 'visual.proj', shape: [3, 3], data: new Float32Array(9) }], false)).toThrow(
      expect.objectContaining({ code: 'E_CHECKPOINT' }),
    );
    const rep = tfm.loadState([...state, { name: 'extra.weight', shape: [1], data: new Float32Array(1) }], false);
    expect(rep.unexpected).toEqual(['extra.weight']);
    tfm.dispose();
  });

  it('rejects the towers it does not implement with E_UNSUPPORTED', async () => {
    await expect(TfClipModel.create('test-resnet', { backend: 'wasm' })).rejects.toMatchObject({ code: 'E_UNSUPPORTED' });
    await expect(TfClipModel.create('test-bert', { backend: 'wasm' })).rejects.toMatchObject({ code: 'E_UNSUPPORTED' });
  });
});
