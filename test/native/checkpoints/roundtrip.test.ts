/**
 * Round trips: every supported layout, written from a model's weights with that layout's key names and
 * tensor layouts (or by PyTorch, for the committed .pt fixtures), loads back to identical embeddings with
 * the architecture inferred from shapes.
 */
import * as fs from 'fs';
import * as path from 'path';
import { ClipModel } from '../../../lib/models/ClipModel';
import type { ModelConfig } from '../../../lib/models/config';
import { loadPretrained, readCheckpointTensors } from '../../../lib/checkpoints/pretrained';
import { convertCheckpoint } from '../../../lib/jobs/embed';
import { detectCheckpoint } from '../../../lib/checkpoints/detect';
import { fromInternal, hfClipConfigJson } from '../../../lib/checkpoints/layouts';
import { main } from '../../../lib/cli/index';
import { FIXTURES, maxAbsDiff, perturb, randomIds, randomImages, tmpDir, writeState, writeVocab } from './helpers';

async function embeddings(model: ClipModel, ids: Int32Array, n: number, len: number): Promise<{ img: Float32Array; txt: Float32Array }> {
  const img = await model.encodeImages(randomImages(3, model.imageSize));
  const txt = await model.encodeTokenIds(ids, n, len);
  return { img, txt };
}

const TIMM_BERT: ModelConfig = {
  name: 'tiny-biomedclip-like',
  embedDim: 32,
  vision: { type: 'vit', imageSize: 32, patchSize: 8, width: 64, layers: 2, heads: 1, act: 'gelu', patchBias: true, lnPre: false, layerNormEps: 1e-6 },
  text: {
    type: 'bert', vocabSize: 1000, contextLength: 24, width: 64, layers: 2, heads: 1, act: 'gelu', intermediateSize: 128,
    maxPosition: 64, typeVocabSize: 2, padId: 0, pooling: 'cls', layerNormEps: 1e-12, proj: 'mlp', projHidden: 48,
  },
  tokenizer: 'wordpiece',
};

describe('PyTorch fixtures (written by make_fixtures.py)', () => {
  const ref = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'reference.json'), 'utf8'));
  const files = ['openai-state-dict.pt', 'openai-wrapped.pt', 'openai-jit.pt'];

  test('detection by content', () => {
    expect(detectCheckpoint(path.join(FIXTURES, 'openai-state-dict.pt')).format).toBe('torch-save');
    expect(detectCheckpoint(path.join(FIXTURES, 'openai-jit.pt')).format).toBe('torchscript');
    expect(detectCheckpoint(path.join(FIXTURES, 'legacy.pt')).format).toBe('torch-legacy');
  });

  test('tensor values equal what PyTorch wrote', async () => {
    const { tensors, dtypes } = await readCheckpointTensors(path.join(FIXTURES, 'openai-state-dict.pt'));
    const names = Object.keys(ref.tensors);
    expect(tensors.map((t) => t.name).sort()).toEqual(names.sort());
    for (const t of tensors) {
      const r = ref.tensors[t.name];
      expect(t.shape).toEqual(r.shape);
      expect(dtypes.get(t.name)).toBe('F16');
      const sum = t.data.reduce((s, x) => s + x, 0);
      expect(Math.abs(sum - r.sum)).toBeLessThan(1e-3 * Math.max(1, Math.abs(r.sum)));
      expect(Array.from(t.data.slice(0, 4))).toEqual(r.first);
    }
  });

  test('state dict, wrapped (module./state_dict), TorchScript: same inferred config, identical embeddings', async () => {
    const ids = randomIds(4, 8, 128);
    let first: { img: Float32Array; txt: Float32Array } | undefined;
    for (const f of files) {
      const { model, report, tokenizer } = await loadPretrained(path.join(FIXTURES, f), { device: 'cpu', tokenizer: null });
      try {
        expect(tokenizer).toBeNull();
        expect(report.layout).toBe('openai');
        expect(report.config.embedDim).toBe(ref.config.embedDim);
        expect(report.config.vision).toMatchObject(ref.config.vision);
        expect(report.config.text).toMatchObject(ref.config.text);
        if (f === 'openai-wrapped.pt') {
          expect(report.prefix).toBe('state_dict.module.');
          expect(report.dropped).toContain('optimizer.state.0.exp_avg');
        }
        if (f === 'openai-jit.pt') {
          expect(report.format).toBe('torchscript');
          expect(report.ignored).toEqual(expect.arrayContaining(['input_resolution', 'context_length', 'vocab_size']));
        }
        const e = await embeddings(model, ids, 4, 8);
        if (!first) first = e;
        else {
          expect(maxAbsDiff(e.img, first.img)).toBe(0);
          expect(maxAbsDiff(e.txt, first.txt)).toBe(0);
        }
      } finally {
        model.dispose();
      }
    }
  });

  test('convert → own format → identical embeddings (API and command)', async () => {
    const ids = randomIds(4, 8, 128);
    const src = await loadPretrained(path.join(FIXTURES, 'openai-jit.pt'), { device: 'cpu', tokenizer: null });
    const want = await embeddings(src.model, ids, 4, 8);
    src.model.dispose();
    const dir = tmpDir('convert');
    const rep = await convertCheckpoint(path.join(FIXTURES, 'openai-jit.pt'), path.join(dir, 'a'), { tokenizer: null });
    expect(rep.format).toBe('torchscript');
    const out = path.join(dir, 'b');
    const log = jest.spyOn(process.stdout, 'write').mockImplementation(() => true);
    const err = jest.spyOn(process.stderr, 'write').mockImplementation(() => true);
    let code: number;
    try {
      // The shipped CLIP vocabulary (49408 ids) does not fit this 128-id model: the command must say so.
      expect(await main(['convert', '--checkpoint', path.join(FIXTURES, 'openai-state-dict.pt'), '--out', out])).toBe(1);
      expect(err.mock.calls.map((c) => String(c[0])).join('')).toMatch(/E_TOKENIZER/);
      code = await main(['convert', '--checkpoint', path.join(FIXTURES, 'openai-wrapped.pt'), '--out', out, '--tokenizer', 'none']);
    } finally {
      log.mockRestore();
      err.mockRestore();
    }
    expect(code).toBe(0);
    for (const d of [path.join(dir, 'a'), out]) {
      expect(detectCheckpoint(d).format).toBe('own');
      const back = await loadPretrained(d, { device: 'cpu', tokenizer: null });
      try {
        expect(back.report.format).toBe('own');
        expect(back.report.inferred).toBe(false);
        const got = await embeddings(back.model, ids, 4, 8);
        expect(maxAbsDiff(got.img, want.img)).toBe(0);
        expect(maxAbsDiff(got.txt, want.txt)).toBe(0);
      } finally {
        back.model.dispose();
      }
    }
    const meta = JSON.parse(fs.readFileSync(path.join(dir, 'a', 'cxr-model.json'), 'utf8'));
    expect(meta.provenance).toMatchObject({ format: 'torchscript', layout: 'openai', inferred: true });
  });
});

describe('layouts written from our own weights', () => {
  test('Hugging Face CLIPModel (safetensors + config.json, separate q/k/v, transposed projections)', async () => {
    const model = ClipModel.create('test-vit', { device: 'cpu', seed: 11 });
    perturb(model, 2);
    const ids = randomIds(3, 32, 49408);
    const want = await embeddings(model, ids, 3, 32);
    const dir = tmpDir('hf');
    const hf = fromInternal('hf-clip', model.getState());
    expect(hf.map((t) => t.name)).toEqual(expect.arrayContaining([
      'vision_model.encoder.layers.0.self_attn.q_proj.weight', 'text_model.encoder.layers.1.mlp.fc2.bias',
      'vision_model.pre_layrnorm.weight', 'visual_projection.weight', 'text_projection.weight',
    ]));
    writeState(path.join(dir, 'model.safetensors'), hf);
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(hfClipConfigJson(model.config)));
    const cfg = model.config;
    model.dispose();
    const { model: back, report, tokenizer } = await loadPretrained(dir, { device: 'cpu' });
    try {
      expect(report.layout).toBe('hf-clip');
      expect(report.format).toBe('safetensors');
      expect(tokenizer?.kind).toBe('clip-bpe');
      expect(report.config.vision).toMatchObject({ ...cfg.vision });
      expect(report.config.text).toMatchObject({ ...cfg.text });
      const got = await embeddings(back, ids, 3, 32);
      expect(maxAbsDiff(got.img, want.img)).toBeLessThanOrEqual(1e-6);
      expect(maxAbsDiff(got.txt, want.txt)).toBeLessThanOrEqual(1e-6);
    } finally {
      back.dispose();
    }
  });

  test('Hugging Face config.json hidden_act decides the activation', async () => {
    const model = ClipModel.create({ ...ClipModel.create('test-vit').config, name: 'gelu-vit' } as ModelConfig, { device: 'cpu' });
    const dir = tmpDir('hfact');
    writeState(path.join(dir, 'model.safetensors'), fromInternal('hf-clip', model.getState()));
    const j = hfClipConfigJson(model.config) as { vision_config: { hidden_act: string }; text_config: { hidden_act: string } };
    j.vision_config.hidden_act = 'gelu';
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(j));
    model.dispose();
    const { model: back, report } = await loadPretrained(dir, { device: 'cpu' });
    back.dispose();
    expect(report.config.vision.act).toBe('gelu');
    expect(report.config.text.act).toBe('quick_gelu');
  });

  test('open_clip timm ViT + HF BERT (BiomedCLIP layout): MLP projection, patch bias, no ln_pre', async () => {
    const model = ClipModel.create(TIMM_BERT, { device: 'cpu', seed: 5 });
    perturb(model, 3);
    const ids = randomIds(3, 24, 1000);
    const want = await embeddings(model, ids, 3, 24);
    const state = model.getState();
    expect(state.map((t) => t.name)).toEqual(expect.arrayContaining(['visual.conv1.bias', 'text.proj.0.weight', 'text.proj.2.weight']));
    expect(state.some((t) => t.name.startsWith('visual.ln_pre'))).toBe(false);
    model.dispose();
    const oc = fromInternal('open-clip-hf', state);
    expect(oc.map((t) => t.name)).toEqual(expect.arrayContaining([
      'visual.trunk.cls_token', 'visual.trunk.pos_embed', 'visual.trunk.patch_embed.proj.bias', 'visual.trunk.blocks.1.attn.qkv.weight',
      'visual.trunk.norm.weight', 'visual.head.proj.weight', 'text.transformer.encoder.layer.0.attention.self.query.weight', 'text.proj.2.weight',
    ]));
    // What open_clip's HF text encoder also saves: an unused pooler and int64 position ids.
    oc.push({ name: 'text.transformer.pooler.dense.weight', shape: [64, 64], data: new Float32Array(64 * 64) });
    const dir = tmpDir('biomed');
    const file = path.join(dir, 'open_clip_model.safetensors');
    writeState(file, oc);
    fs.writeFileSync(path.join(dir, 'open_clip_config.json'), JSON.stringify({ model_cfg: { embed_dim: 32, text_cfg: { context_length: 24, proj: 'mlp', pooler_type: 'cls_last_hidden_state_pooler' } } }));
    writeVocab(path.join(dir, 'vocab.txt'), 1000);
    const { model: back, report, tokenizer } = await loadPretrained(dir, { device: 'cpu' });
    try {
      expect(report.layout).toBe('open-clip-hf');
      expect(report.ignored).toContain('text.transformer.pooler.dense.weight');
      expect(tokenizer?.kind).toBe('wordpiece');
      const { name: _n, ...arch } = TIMM_BERT;
      expect(report.config).toMatchObject(arch);
      const got = await embeddings(back, ids, 3, 24);
      expect(maxAbsDiff(got.img, want.img)).toBeLessThanOrEqual(1e-6);
      expect(maxAbsDiff(got.txt, want.txt)).toBeLessThanOrEqual(1e-6);
    } finally {
      back.dispose();
    }
  });

  test('OpenAI ModifiedResNet layout with a module. prefix: ResNet inferred from layer counts', async () => {
    // Heads cannot be read from shapes: OpenAI's rule is width / 64, so the text tower follows it here.
    const base = ClipModel.create('test-resnet', { device: 'cpu' });
    const rnConfig = { ...base.config, text: { ...base.config.text, heads: 1 } };
    base.dispose();
    const model = ClipModel.create(rnConfig, { device: 'cpu', seed: 9 });
    perturb(model, 4, 0.02);
    const ids = randomIds(2, 32, 49408);
    const want = await embeddings(model, ids, 2, 32);
    const dir = tmpDir('rn');
    const file = path.join(dir, 'rn.safetensors');
    writeState(file, fromInternal('openai', model.getState()).map((t) => ({ ...t, name: 'module.' + t.name })));
    const cfg = model.config;
    model.dispose();
    const { model: back, report } = await loadPretrained(file, { device: 'cpu' });
    try {
      expect(report.prefix).toBe('module.');
      expect(report.config.vision).toMatchObject({ type: 'resnet', imageSize: cfg.vision.imageSize, resnetLayers: cfg.vision.resnetLayers, resnetWidth: cfg.vision.resnetWidth, attnPoolHeads: cfg.vision.attnPoolHeads });
      const got = await embeddings(back, ids, 2, 32);
      expect(maxAbsDiff(got.img, want.img)).toBeLessThanOrEqual(1e-6);
      expect(maxAbsDiff(got.txt, want.txt)).toBeLessThanOrEqual(1e-6);
    } finally {
      back.dispose();
    }
  });

  test('OpenAI ViT + open_clip HF text encoder (text.transformer.*) maps onto the BERT tower', async () => {
    const model = ClipModel.create('test-bert', { device: 'cpu', seed: 2 });
    perturb(model, 6);
    const ids = randomIds(2, 32, 1000);
    const want = await embeddings(model, ids, 2, 32);
    const state = model
      .getState()
      .map((t) => (t.name.startsWith('text.') && !t.name.startsWith('text.proj') ? { ...t, name: 'text.transformer.' + t.name.slice(5) } : t));
    model.dispose();
    const dir = tmpDir('vitbert');
    writeState(path.join(dir, 'open_clip_model.safetensors'), state);
    writeVocab(path.join(dir, 'vocab.txt'), 1000);
    const { model: back, report } = await loadPretrained(dir, { device: 'cpu', config: 'test-bert' });
    try {
      expect(report.layout).toBe('openai');
      const got = await embeddings(back, ids, 2, 32);
      expect(maxAbsDiff(got.img, want.img)).toBeLessThanOrEqual(1e-6);
      expect(maxAbsDiff(got.txt, want.txt)).toBeLessThanOrEqual(1e-6);
    } finally {
      back.dispose();
    }
  });

  test('strict: a missing or unexpected key is named; strict false lists what was skipped', async () => {
    const model = ClipModel.create('test-vit', { device: 'cpu' });
    const state = model.getState().filter((t) => t.name !== 'ln_final.bias');
    state.push({ name: 'visual.extra_head.weight', shape: [2], data: new Float32Array(2) });
    model.dispose();
    const dir = tmpDir('strict');
    const file = path.join(dir, 'm.safetensors');
    writeState(file, state);
    await expect(loadPretrained(file, { device: 'cpu' })).rejects.toMatchObject({ code: 'E_CHECKPOINT', message: expect.stringMatching(/ln_final\.bias/) });
    const { model: m2, report } = await loadPretrained(file, { device: 'cpu', strict: false });
    m2.dispose();
    expect(report.missing).toEqual(['ln_final.bias']);
    expect(report.unexpected).toEqual(['visual.extra_head.weight']);
  });

  test('a shape that does not fit the given config is an error naming the tensor', async () => {
    const dir = tmpDir('shape');
    const file = path.join(dir, 'm.safetensors');
    const m = ClipModel.create('test-vit', { device: 'cpu' });
    writeState(file, m.getState());
    m.dispose();
    await expect(loadPretrained(file, { device: 'cpu', config: { ...m.config, embedDim: 16 } })).rejects.toMatchObject({
      code: 'E_CHECKPOINT',
      message: expect.stringMatching(/"(visual\.proj|text_projection)" has shape/),
    });
  });
});
