import { loadNative } from '../../../lib/native';
import { resolveLoss, type LossOptions } from '../../../lib/models/ClipModel';
import { tfContrastiveLoss } from '../../../lib/tfjs/loss';
import { maxAbs, maxAbsDiff, randn } from './helpers';

// B=8, D=16: the positives are made similar (v = u + noise) so that some s_ii exceed α=0.5 and the clamp
// is exercised; rows 0-2 are near-duplicates so that others stay below it.
const B = 8;
const D = 16;
const u = randn(B * D, 1);
const v = new Float32Array(u.length);
{
  const noise = randn(B * D, 2);
  for (let i = 0; i < B; i++)
    for (let d = 0; d < D; d++) v[i * D + d] = u[i * D + d] + (i < 3 ? 2.5 : 0.4) * noise[i * D + d];
}
const theta = Math.log(1 / 0.07);

const cases: Array<[string, LossOptions]> = [
  ['clip', { kind: 'clip' }],
  ['clip + label smoothing', { kind: 'clip', labelSmoothing: 0.1 }],
  ['relaxed clamp-diag α=1', { kind: 'relaxed', alpha: 1, variant: 'clamp-diag' }],
  ['relaxed clamp-numerator α=1', { kind: 'relaxed', alpha: 1, variant: 'clamp-numerator' }],
  ['relaxed clamp-diag α=0.5', { kind: 'relaxed', alpha: 0.5, variant: 'clamp-diag' }],
  ['relaxed clamp-numerator α=0.5', { kind: 'relaxed', alpha: 0.5, variant: 'clamp-numerator' }],
  ['relaxed clamp-numerator α=0.5 + smoothing', { kind: 'relaxed', alpha: 0.5, variant: 'clamp-numerator', labelSmoothing: 0.1 }],
  ['relaxed clamp-diag α=0.5 + smoothing', { kind: 'relaxed', alpha: 0.5, variant: 'clamp-diag', labelSmoothing: 0.1 }],
];

describe('tfjs contrastive loss (wasm) equals the native fused op', () => {
  it('exercises the clamp: some positive similarities lie above α=0.5, some below', () => {
    const sims: number[] = [];
    for (let i = 0; i < B; i++) {
      let uv = 0;
      let uu = 0;
      let vv = 0;
      for (let d = 0; d < D; d++) {
        uv += u[i * D + d] * v[i * D + d];
        uu += u[i * D + d] ** 2;
        vv += v[i * D + d] ** 2;
      }
      sims.push(uv / Math.sqrt(uu * vv));
    }
    expect(sims.some((s) => s > 0.5)).toBe(true);
    expect(sims.some((s) => s < 0.5)).toBe(true);
  });

  it.each(cases)('%s: loss and gradients to 1e-5', async (_name, opts) => {
    const native = loadNative().contrastiveLoss(u, v, [B, D], theta, resolveLoss(opts));
    const tf = await tfContrastiveLoss(u, v, [B, D], theta, opts, 'wasm');
    expect(Math.abs(tf.loss - native.loss)).toBeLessThan(1e-5);
    expect(maxAbsDiff(tf.gradU, native.gradU)).toBeLessThan(1e-5);
    expect(maxAbsDiff(tf.gradV, native.gradV)).toBeLessThan(1e-5);
    expect(Math.abs(tf.gradTheta - native.gradTheta)).toBeLessThan(1e-5);
    // The gradients are not trivially zero.
    expect(maxAbs(native.gradU)).toBeGreaterThan(1e-3);
  });

  it('α=0.5 differs from CLIP (the relaxation is active) and the variants differ from each other', async () => {
    const clip = await tfContrastiveLoss(u, v, [B, D], theta, { kind: 'clip' });
    const diag = await tfContrastiveLoss(u, v, [B, D], theta, { kind: 'relaxed', alpha: 0.5, variant: 'clamp-diag' });
    const num = await tfContrastiveLoss(u, v, [B, D], theta, { kind: 'relaxed', alpha: 0.5, variant: 'clamp-numerator' });
    expect(Math.abs(diag.loss - clip.loss)).toBeGreaterThan(1e-3);
    expect(Math.abs(num.loss - diag.loss)).toBeGreaterThan(1e-3);
  });

  it('rejects bad shapes with E_SHAPE', async () => {
    await expect(tfContrastiveLoss(u, v, [B, D + 1], theta)).rejects.toMatchObject({ code: 'E_SHAPE' });
  });
});
