/**
 * Binding contract of `saliency` (one native call per batch and label): the input gradient against central
 * finite differences of the score through `encodeImages` (float32: the tolerance is stated below), Grad-CAM
 * maps deterministic and non-negative, the score equal to the zero-shot logit, and the error codes
 * (E_SHAPE, E_DTYPE, E_CONFIG, E_BUSY, E_DISPOSED). The float64 finite-difference check of the same
 * arithmetic is native/test/saliency_test.cc.
 */
import { createModel, type ClipModel } from '../../lib/models/ClipModel';
import { rejectsWith } from '../helpers/errors';
import { images, lcg } from '../helpers/inputs';

function unit(d: number, seed: number): Float32Array {
  const r = lcg(seed);
  const v = new Float32Array(d).map(() => r() * 2 - 1);
  const n = Math.hypot(...v);
  return v.map((x) => x / n);
}

async function score(m: ClipModel, x: Float32Array, pos: Float32Array, neg: Float32Array, t: number): Promise<Float64Array> {
  const u = await m.encodeImages(x, { normalize: true });
  const D = m.embedDim;
  const n = u.length / D;
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let k = 0; k < D; k++) s += u[i * D + k] * (pos[k] - neg[k]);
    out[i] = t * s;
  }
  return out;
}

describe.each(['test-vit', 'test-resnet'])('saliency on %s', (name) => {
  let m: ClipModel;
  beforeAll(() => {
    m = createModel(name, { device: 'cpu', seed: 5 });
  });
  afterAll(() => m.dispose());

  it('input gradient = central finite differences of the zero-shot score (float32 tolerance)', async () => {
    const S = m.imageSize;
    const plane = 3 * S * S;
    const x = images(2, S, 3);
    const pos = unit(m.embedDim, 1);
    const neg = unit(m.embedDim, 2);
    const t = 4;
    const r = await m.saliency(x, { positive: pos, negative: neg, temperature: t }, { inputGradient: true });
    const s0 = await score(m, x, pos, neg, t);
    for (let i = 0; i < 2; i++) expect(r.scores[i]).toBeCloseTo(s0[i], 4);
    const g = r.inputGradient!;
    expect(g.length).toBe(2 * plane);
    // The pixels with the largest gradient of each image (small ones would test float32 rounding only).
    const h = 1e-2;
    let checked = 0;
    for (let i = 0; i < 2; i++) {
      const idx = Array.from({ length: plane }, (_, k) => i * plane + k).sort((a, b) => Math.abs(g[b]) - Math.abs(g[a])).slice(0, 3);
      const gmax = Math.abs(g[idx[0]]);
      for (const k of idx) {
        const xp = x.slice();
        const xm = x.slice();
        xp[k] += h;
        xm[k] -= h;
        const fd = ((await score(m, xp, pos, neg, t))[i] - (await score(m, xm, pos, neg, t))[i]) / (2 * h);
        // float32 forward passes: rounding of the score (~1e-6) over 2h, plus O(h²) curvature.
        expect(Math.abs(g[k] - fd)).toBeLessThanOrEqual(1e-4 + 0.03 * gmax);
        checked++;
      }
    }
    expect(checked).toBe(6);
  });

  it('Grad-CAM maps: input resolution, non-negative, deterministic, independent of the input-gradient flag', async () => {
    const S = m.imageSize;
    const x = images(3, S, 9);
    const dir = { positive: unit(m.embedDim, 3), negative: unit(m.embedDim, 4), temperature: 1 };
    const a = await m.saliency(x, dir);
    const b = await m.saliency(x, dir);
    const c = await m.saliency(x, dir, { inputGradient: true });
    expect(a.maps.length).toBe(3 * S * S);
    expect(a.inputGradient).toBeUndefined();
    expect(Buffer.from(a.maps.buffer).equals(Buffer.from(b.maps.buffer))).toBe(true);
    expect(Buffer.from(a.scores.buffer).equals(Buffer.from(b.scores.buffer))).toBe(true);
    expect(Array.from(c.maps).every((v, i) => Math.abs(v - a.maps[i]) <= 1e-5 * (1 + Math.abs(v)))).toBe(true);
    expect(a.maps.every((v) => v >= 0)).toBe(true);
    expect(a.gridShape).toEqual(name === 'test-vit' ? [4, 4] : [1, 1]);
    expect(a.layer).toMatch(name === 'test-vit' ? /transformer\.resblocks\.0/ : /layer4/);
    // Swapping the prompts flips the score.
    const f = await m.saliency(x, { ...dir, positive: dir.negative, negative: dir.positive });
    for (let i = 0; i < 3; i++) expect(f.scores[i]).toBeCloseTo(-a.scores[i], 5);
  });

  it('bad inputs get codes; the model stays usable', async () => {
    const S = m.imageSize;
    const x = images(1, S, 1);
    const pos = unit(m.embedDim, 1);
    await rejectsWith(m.saliency(x, { positive: pos.subarray(1), negative: pos }), 'E_SHAPE');
    await rejectsWith(m.saliency(x, { positive: Array.from(pos) as never, negative: pos }), 'E_DTYPE');
    await rejectsWith(m.saliency(x, { positive: pos, negative: pos, temperature: 0 }), 'E_CONFIG');
    await rejectsWith(m.saliency(x.subarray(1), { positive: pos, negative: pos }), 'E_SHAPE');
    const nan = pos.slice();
    nan[0] = NaN;
    await rejectsWith(m.saliency(x, { positive: nan, negative: pos }), 'E_NUMERIC');
    expect((await m.saliency(x, { positive: pos, negative: unit(m.embedDim, 2) })).maps.length).toBe(S * S);
  });
});

describe('saliency: busy and disposed', () => {
  it('E_BUSY while another call runs, E_DISPOSED after dispose', async () => {
    const m = createModel('test-vit', { device: 'cpu', seed: 1 });
    const dir = { positive: unit(32, 1), negative: unit(32, 2) };
    const first = m.saliency(images(8, 32, 1), dir, { inputGradient: true });
    await rejectsWith(m.saliency(images(1, 32, 2), dir), 'E_BUSY');
    await first;
    m.dispose();
    await rejectsWith(m.saliency(images(1, 32, 2), dir), 'E_DISPOSED');
  });
});
