/**
 * The binding's config contract: an unknown enum string is never mapped to a default; it is E_CONFIG
 * naming the field and the allowed values. The engine, optimizer, loss, step and process-group options
 * are required field by field (TypeScript sends every value). These go straight to the raw addon
 * (TypeScript would reject them first), so they test the binding itself.
 */
import { loadNative } from '../../lib/native';
import { resolveModelConfig } from '../../lib/models/registry';
import type { NativeModelConfig } from '../../lib/native/binding';

const addon = loadNative();
const engine = { device: 'cpu', precision: 'fp32', seed: 0 } as const;

function rawError(fn: () => unknown): { code?: string; message: string } {
  try {
    fn();
  } catch (e) {
    return e as { code?: string; message: string };
  }
  throw new Error('expected the addon to throw');
}

function expectConfigError(fn: () => unknown, field: string, allowed: string[]): void {
  const e = rawError(fn);
  expect(e.code).toBe('E_CONFIG');
  expect(e.message).toContain(field);
  for (const a of allowed) expect(e.message).toContain(`"${a}"`);
}

describe('binding: unknown enum strings are E_CONFIG', () => {
  const vit = resolveModelConfig('test-vit') as unknown as NativeModelConfig & { vision: Record<string, unknown>; text: Record<string, unknown> };
  const withVision = (k: string, v: unknown) => ({ ...vit, vision: { ...vit.vision, [k]: v } }) as unknown as NativeModelConfig;
  const withText = (k: string, v: unknown) => ({ ...vit, text: { ...vit.text, [k]: v } }) as unknown as NativeModelConfig;

  it.each([
    ['vision.act', () => withVision('act', 'relu'), ['quick_gelu', 'gelu']],
    ['vision.type', () => withVision('type', 'convnext'), ['vit', 'resnet']],
    ['text.act', () => withText('act', 'swish'), ['quick_gelu', 'gelu']],
    ['text.type', () => withText('type', 'gpt'), ['causal', 'bert']],
    ['text.pooling', () => withText('pooling', 'max'), ['cls', 'mean']],
    ['text.proj', () => withText('proj', 'none'), ['linear', 'mlp']],
  ] as Array<[string, () => NativeModelConfig, string[]]>)('model config %s', (field, cfg, allowed) => {
    expectConfigError(() => new addon.NativeModel(cfg(), engine), field, allowed);
  });

  it('engine precision', () => {
    expectConfigError(() => new addon.NativeModel(vit, { ...engine, precision: 'fp16' as 'fp32' }), 'precision', ['fp32', 'bf16']);
  });

  it('optimizer kind, loss kind and relaxation variant', () => {
    const m = new addon.NativeModel(vit, engine);
    try {
      expectConfigError(() => m.configureOptimizer({ kind: 'adam' } as never), 'optimizer.kind', ['adamw', 'sgd']);
    } finally {
      m.dispose();
    }
    const u = new Float32Array(8).fill(0.5);
    const loss = (l: Record<string, unknown>) => () => addon.contrastiveLoss(u, u, [2, 4], 0, l as never);
    expectConfigError(loss({ kind: 'siglip', alpha: 1, variant: 'clamp-diag' }), 'loss.kind', ['clip', 'relaxed']);
    expectConfigError(loss({ kind: 'relaxed', alpha: 0.8, variant: 'clamp-all' }), 'loss.variant', ['clamp-diag', 'clamp-numerator', 'margin']);
  });

  it('a known value still builds a model', () => {
    const m = new addon.NativeModel(withVision('act', 'gelu'), engine);
    expect(m.parameterCount(false)).toBeGreaterThan(0);
    m.dispose();
  });
});

describe('binding: engine, optimizer, loss and step options are required field by field', () => {
  const vit = resolveModelConfig('test-vit') as unknown as NativeModelConfig;
  const adamw = { kind: 'adamw', lr: 1e-3, weightDecay: 0.1, beta1: 0.9, beta2: 0.98, eps: 1e-6, momentum: 0.9, nesterov: false } as const;
  const loss = { kind: 'relaxed', alpha: 0.8, variant: 'clamp-diag', labelSmoothing: 0, alphaQuantile: 0, alphaMomentum: 0.9, alphaRunning: null, margin: 0.1 } as const;

  function missingField(fn: () => unknown, field: string): void {
    const e = rawError(fn);
    expect(e.code).toBe('E_CONFIG');
    expect(e.message).toContain(field);
    expect(e.message).toMatch(/required/);
  }

  it('model config fields (TypeScript sends a complete config)', () => {
    const full = vit as unknown as { vision: Record<string, unknown>; text: Record<string, unknown> };
    const { width: _w, ...noWidth } = full.vision;
    missingField(() => new addon.NativeModel({ ...vit, vision: noWidth } as never, engine), 'vision.width');
    const { layerNormEps: _eps, ...noEps } = full.text;
    missingField(() => new addon.NativeModel({ ...vit, text: noEps } as never, engine), 'text.layerNormEps');
    const { logitScaleInit: _ls, ...noScale } = vit;
    missingField(() => new addon.NativeModel(noScale as never, engine), 'logitScaleInit');
  });

  it('engine options', () => {
    const { seed: _seed, ...noSeed } = engine;
    missingField(() => new addon.NativeModel(vit, noSeed as never), 'seed');
    missingField(() => new addon.NativeModel(vit, undefined as never), 'engine options');
  });

  it('optimizer fields and loss fields', () => {
    const m = new addon.NativeModel(vit, engine);
    try {
      const { weightDecay: _wd, ...noWd } = adamw;
      missingField(() => m.configureOptimizer(noWd as never), 'optimizer.weightDecay');
      missingField(() => m.configureOptimizer(undefined as never), 'optimizer config');
      expect(() => m.configureOptimizer(adamw)).not.toThrow();
    } finally {
      m.dispose();
    }
    const u = new Float32Array(8).fill(0.5);
    const { labelSmoothing: _ls, ...noSmoothing } = loss;
    missingField(() => addon.contrastiveLoss(u, u, [2, 4], 0, noSmoothing as never), 'loss.labelSmoothing');
    const { margin: _m, ...noMargin } = loss;
    missingField(() => addon.contrastiveLoss(u, u, [2, 4], 0, noMargin as never), 'loss.margin');
    expect(addon.contrastiveLoss(u, u, [2, 4], 0, loss).loss).toBeGreaterThan(0);
  });

  it('train step options', () => {
    const m = new addon.NativeModel(vit, engine);
    try {
      m.configureOptimizer(adamw);
      const n = 2;
      const images = new Float32Array(n * 3 * 32 * 32);
      const ids = new Int32Array(n * 8).fill(1);
      missingField(() => m.trainStep(images, [n, 3, 32, 32], ids, [n, 8], { lr: 1e-3, clipGradNorm: 0, loss } as never), 'step.microBatch');
    } finally {
      m.dispose();
    }
  });
});
