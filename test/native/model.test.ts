import { createModel, ClipModel } from '../../lib/models/ClipModel';
import { CxrError } from '../../lib/errors';
import { capabilities, nativeSelfTest, nativeStats } from '../../lib/native';
import { images, tokens } from '../helpers/inputs';

async function expectCode(p: Promise<unknown> | (() => unknown), code: string): Promise<void> {
  let err: unknown;
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(CxrError);
  expect((err as CxrError).code).toBe(code);
}

describe('native addon', () => {
  it('reports its capabilities', () => {
    const caps = capabilities();
    expect(caps.torchVersion).toMatch(/^\d+\.\d+/);
    expect(typeof caps.cuda.built).toBe('boolean');
    expect(caps.threads).toBeGreaterThanOrEqual(1);
    expect(caps.blas.length).toBeGreaterThan(0);
    expect(typeof caps.cuda.cudnn).toBe('boolean');
    // The fused attention path is compiled in exactly on libtorch >= 2.0.
    expect(caps.fusedAttention).toBe(Number(caps.torchVersion.split('.')[0]) >= 2);
  });
});

describe.each(['test-vit', 'test-resnet', 'test-bert'])('%s', (name) => {
  const vocab = name === 'test-bert' ? 1000 : 49408;
  it('encodes with the right shapes, deterministically from the seed', async () => {
    const a = createModel(name, { device: 'cpu', seed: 11 });
    const b = createModel(name, { device: 'cpu', seed: 11 });
    const c = createModel(name, { device: 'cpu', seed: 12 });
    try {
      const S = a.imageSize;
      const x = images(3, S, 1);
      const ids = tokens(3, 16, 2, vocab);
      const [ua, ub, uc] = [await a.encodeImages(x), await b.encodeImages(x), await c.encodeImages(x)];
      expect(ua.length).toBe(3 * a.embedDim);
      expect(Array.from(ua)).toEqual(Array.from(ub));
      expect(Array.from(ua)).not.toEqual(Array.from(uc));
      const va = await a.encodeTokenIds(ids, 3, 16);
      const vb = await b.encodeTokenIds(ids, 3, 16);
      expect(va.length).toBe(3 * a.embedDim);
      expect(Array.from(va)).toEqual(Array.from(vb));
      const un = await a.encodeImages(x, { normalize: true });
      for (let i = 0; i < 3; i++) {
        let s = 0;
        for (let d = 0; d < a.embedDim; d++) s += un[i * a.embedDim + d] ** 2;
        expect(Math.sqrt(s)).toBeCloseTo(1, 5);
      }
    } finally {
      a.dispose();
      b.dispose();
      c.dispose();
    }
  });

  it('lowers the loss on a fixed batch over 20 steps', async () => {
    const m = createModel(name, { device: 'cpu', seed: 3 });
    try {
      m.configureOptimizer({ kind: 'adamw', weightDecay: 0 });
      const n = 8;
      const batch = { images: images(n, m.imageSize, 5), tokenIds: tokens(n, 16, 6, vocab), n, length: 16 };
      const losses: number[] = [];
      for (let i = 0; i < 20; i++) {
        const r = await m.trainStep(batch, { lr: 1e-3 });
        expect(Number.isFinite(r.gradNorm)).toBe(true);
        expect(r.logitScale).toBeGreaterThan(0);
        expect(r.logitScale).toBeLessThanOrEqual(100);
        losses.push(r.loss);
      }
      expect(losses[19]).toBeLessThan(losses[0] * 0.75);
    } finally {
      m.dispose();
    }
  });
});

describe('errors and lifecycle', () => {
  let m: ClipModel;
  beforeEach(() => {
    m = createModel('test-vit', { device: 'cpu', seed: 1 });
  });
  afterEach(() => m.dispose());

  it('E_SHAPE: wrong image size or channel count', async () => {
    await expectCode(m.encodeImages(new Float32Array(2 * 1 * 32 * 32), { n: 2 }), 'E_SHAPE');
    await expectCode(m.encodeImages(new Float32Array(3 * 31 * 31)), 'E_SHAPE');
  });
  it('E_SHAPE: token ids out of the vocabulary, sequence longer than the context', async () => {
    const ids = tokens(2, 8, 1);
    ids[3] = 49408;
    await expectCode(m.encodeTokenIds(ids, 2, 8), 'E_SHAPE');
    await expectCode(m.encodeTokenIds(new Int32Array(2 * 40).fill(1), 2, 40), 'E_SHAPE');
  });
  it('E_SHAPE: a batch of size 0 or 1 in a train step, mismatched batch', async () => {
    await expectCode(m.trainStep({ images: images(1, 32, 1), tokenIds: tokens(1, 8, 1), n: 1, length: 8 }, { lr: 1e-4 }), 'E_SHAPE');
    await expectCode(m.trainStep({ images: new Float32Array(0), tokenIds: new Int32Array(0), n: 0, length: 8 }, { lr: 1e-4 }), 'E_SHAPE');
    await expectCode(m.trainStep({ images: images(2, 32, 1), tokenIds: tokens(3, 8, 1), n: 2, length: 8 }, { lr: 1e-4 }), 'E_SHAPE');
  });
  it('E_DTYPE: wrong array types', async () => {
    await expectCode(m.encodeImages(new Float64Array(3 * 32 * 32) as unknown as Float32Array), 'E_DTYPE');
    await expectCode(m.encodeTokenIds(new Float32Array(8) as unknown as Int32Array, 1, 8), 'E_DTYPE');
  });
  it('E_NUMERIC: NaN or Inf inputs', async () => {
    const x = images(2, 32, 1);
    x[5] = NaN;
    await expectCode(m.encodeImages(x), 'E_NUMERIC');
    x[5] = Infinity;
    await expectCode(m.trainStep({ images: x, tokenIds: tokens(2, 8, 1), n: 2, length: 8 }, { lr: 1e-4 }), 'E_NUMERIC');
  });
  it('E_CONFIG: unknown model, bad options, bad loss', async () => {
    await expectCode(() => createModel('ViT-X/99'), 'E_CONFIG');
    await expectCode(() => createModel({ ...m.config, vision: { ...m.config.vision, patchSize: 7 } }), 'E_CONFIG');
    await expectCode(() => createModel('test-vit', { device: 'tpu' }), 'E_CONFIG');
    await expectCode(m.trainStep({ images: images(2, 32, 1), tokenIds: tokens(2, 8, 1), n: 2, length: 8 }, { lr: 1e-4, loss: { kind: 'relaxed', alpha: 1.5 } }), 'E_CONFIG');
    await expectCode(() => createModel('test-vit', { device: 'cpu', precision: 'bf16' }), 'E_CONFIG');
  });
  it('E_DEVICE: a CUDA device the build or machine does not have', async () => {
    const cuda = capabilities().cuda;
    // Without CUDA any index is refused; with it, the first index past the last device.
    await expectCode(() => createModel('test-vit', { device: `cuda:${cuda.available ? cuda.devices : 0}` }), 'E_DEVICE');
  });
  it('E_BUSY: overlapping calls on one model', async () => {
    const batch = { images: images(8, 32, 1), tokenIds: tokens(8, 16, 1), n: 8, length: 16 };
    const first = m.trainStep(batch, { lr: 1e-4 });
    await expectCode(m.encodeImages(images(1, 32, 2)), 'E_BUSY');
    await first;
    expect((await m.encodeImages(images(1, 32, 2))).length).toBe(32);
  });
  it('E_OOM: an allocation that cannot succeed', async () => {
    await expectCode(
      () => createModel({ ...m.config, name: 'huge', text: { ...m.config.text, vocabSize: 2 ** 40 } }, { device: 'cpu' }),
      'E_OOM',
    );
  });
  it('E_TORCH: a libtorch error inside a worker maps to E_TORCH, not a crash', async () => {
    await expectCode(nativeSelfTest('torch'), 'E_TORCH');
    await expectCode(nativeSelfTest('std'), 'E_TORCH');
  });
  it('E_CONFIG: a train step with every parameter frozen', async () => {
    m.freeze(['image', 'text', 'logit_scale']);
    expect(m.parameterCount(true)).toBe(0);
    await expectCode(m.trainStep({ images: images(2, 32, 1), tokenIds: tokens(2, 8, 1), n: 2, length: 8 }, { lr: 1e-4 }), 'E_CONFIG');
    m.freeze([]);
    expect(m.parameterCount(true)).toBe(m.parameterCount());
  });
  it('dispose twice is harmless; use after dispose throws E_DISPOSED', async () => {
    m.dispose();
    m.dispose();
    expect(m.disposed).toBe(true);
    await expectCode(m.encodeImages(images(1, 32, 1)), 'E_DISPOSED');
    await expectCode(() => m.parameterCount(), 'E_DISPOSED');
  });
  it('dispose during a running call is deferred until it finishes', async () => {
    const p = m.trainStep({ images: images(4, 32, 1), tokenIds: tokens(4, 8, 1), n: 4, length: 8 }, { lr: 1e-4 });
    m.dispose();
    const r = await p;
    expect(Number.isFinite(r.loss)).toBe(true);
    expect(m.disposed).toBe(true);
  });
  it('leak counters return to zero', () => {
    const before = nativeStats().liveModels;
    const ms = [createModel('test-vit', { device: 'cpu' }), createModel('test-resnet', { device: 'cpu' })];
    expect(nativeStats().liveModels).toBe(before + 2);
    ms.forEach((x) => x.dispose());
    expect(nativeStats().liveModels).toBe(before);
  });
  it('state round trip gives identical outputs; shape mismatch is E_CHECKPOINT', async () => {
    const other = createModel('test-vit', { device: 'cpu', seed: 99 });
    try {
      const st = m.getState();
      expect(st.map((t) => t.name)).toContain('visual.conv1.weight');
      other.loadState(st);
      const x = images(2, 32, 4);
      expect(Array.from(await other.encodeImages(x))).toEqual(Array.from(await m.encodeImages(x)));
      const bad = st.map((t) => (t.name === 'visual.proj' ? { ...t, shape: [t.shape[1], t.shape[0]] } : t));
      await expectCode(() => other.loadState(bad), 'E_CHECKPOINT');
      await expectCode(() => other.loadState(st.slice(1)), 'E_CHECKPOINT');
      expect(other.loadState(st.slice(1), false).missing).toEqual([st[0].name]);
    } finally {
      other.dispose();
    }
  });
});

describe('own format', () => {
  it('save then load gives identical embeddings; a tampered shape is E_CHECKPOINT', async () => {
    const fs = await import('node:fs');
    const os = await import('node:os');
    const path = await import('node:path');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cxr-own-'));
    const a = createModel('test-resnet', { device: 'cpu', seed: 4 });
    try {
      a.save(dir, { note: 'test' });
      const b = ClipModel.load(dir, { device: 'cpu' });
      const x = images(2, 32, 9);
      expect(Array.from(await b.encodeImages(x))).toEqual(Array.from(await a.encodeImages(x)));
      const ids = tokens(2, 10, 3);
      expect(Array.from(await b.encodeTokenIds(ids, 2, 10))).toEqual(Array.from(await a.encodeTokenIds(ids, 2, 10)));
      b.dispose();
      const metaPath = path.join(dir, 'cxr-model.json');
      const meta = JSON.parse(fs.readFileSync(metaPath, 'utf8'));
      meta.config.embedDim = 48;
      fs.writeFileSync(metaPath, JSON.stringify(meta));
      await expectCode(() => ClipModel.load(dir, { device: 'cpu' }), 'E_CHECKPOINT');
    } finally {
      a.dispose();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
