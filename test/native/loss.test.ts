import { contrastiveLoss } from '../../lib/models/loss';
import { CxrError } from '../../lib/errors';
import { lcg as uniform } from '../helpers/inputs';

/** The shared test LCG, centred: uniform [-0.5, 0.5). */
function lcg(seed: number): () => number {
  const u = uniform(seed);
  return () => u() - 0.5;
}

/**
 * Independent float64 reference, written from METHOD.md §1-2 directly (no shared code with the op):
 * normalise rows, S = U·Vᵀ, then the symmetric cross-entropy of exp(θ)·S̃ (clamp-diag) or the
 * numerator-clamped form (clamp-numerator).
 */
function reference(u: Float64Array, v: Float64Array, B: number, D: number, theta: number, alpha: number, variant: string): number {
  const norm = (x: Float64Array) => {
    const y = new Float64Array(x.length);
    for (let i = 0; i < B; i++) {
      let s = 0;
      for (let d = 0; d < D; d++) s += x[i * D + d] ** 2;
      const n = Math.sqrt(s);
      for (let d = 0; d < D; d++) y[i * D + d] = x[i * D + d] / n;
    }
    return y;
  };
  const un = norm(u);
  const vn = norm(v);
  const l = Math.exp(theta);
  const S: number[][] = [];
  for (let i = 0; i < B; i++) {
    S.push([]);
    for (let j = 0; j < B; j++) {
      let s = 0;
      for (let d = 0; d < D; d++) s += un[i * D + d] * vn[j * D + d];
      S[i].push(s);
    }
  }
  const pos = (i: number) => Math.min(S[i][i], alpha);
  const entry = (i: number, j: number) => (variant === 'clamp-diag' && i === j ? pos(i) : S[i][j]);
  const lse = (xs: number[]) => {
    const m = Math.max(...xs);
    return m + Math.log(xs.reduce((a, x) => a + Math.exp(x - m), 0));
  };
  let rows = 0;
  let cols = 0;
  for (let i = 0; i < B; i++) {
    rows += -l * pos(i) + lse(Array.from({ length: B }, (_, j) => l * entry(i, j)));
    cols += -l * pos(i) + lse(Array.from({ length: B }, (_, j) => l * entry(j, i)));
  }
  return (rows / B + cols / B) / 2;
}

/**
 * The op's float32 gradients at the given coordinates of U and V against central differences of a float64
 * loss `f` (which reads u64 / v64, perturbed in place and restored).
 */
function expectCentralDifferences(
  out: { gradU: Float32Array; gradV: Float32Array },
  u64: Float64Array,
  v64: Float64Array,
  coords: number[],
  f: () => number,
  h: number,
  tol: number,
): void {
  for (const c of coords) {
    for (const [x, g] of [
      [u64, out.gradU],
      [v64, out.gradV],
    ] as Array<[Float64Array, Float32Array]>) {
      const keep = x[c];
      x[c] = keep + h;
      const up = f();
      x[c] = keep - h;
      const down = f();
      x[c] = keep;
      expect(Math.abs(g[c] - (up - down) / (2 * h))).toBeLessThan(tol);
    }
  }
}

function randomEmbeddings(B: number, D: number, seed: number): Float32Array {
  const r = lcg(seed);
  return Float32Array.from({ length: B * D }, () => r() * 2);
}

describe('fused contrastive loss through the binding', () => {
  const cases: Array<[number, number]> = [
    [2, 3],
    [7, 16],
    [32, 8],
  ];
  for (const variant of ['clamp-diag', 'clamp-numerator'] as const)
    for (const alpha of [0.3, 0.7, 1.0])
      for (const [B, D] of cases) {
        it(`${variant} α=${alpha} B=${B} D=${D}: loss and gradients match a float64 reference`, () => {
          const u = randomEmbeddings(B, D, B * 31 + D);
          const v = randomEmbeddings(B, D, B * 17 + D + 5);
          // Correlate positives so that some s_ii exceed α and the clamp is exercised.
          for (let i = 0; i < B * D; i += 2) v[i] = u[i] + 0.1 * v[i];
          const theta = Math.log(10);
          const out = contrastiveLoss(u, v, B, D, theta, { kind: 'relaxed', alpha, variant });
          const u64 = Float64Array.from(u);
          const v64 = Float64Array.from(v);
          const ref = reference(u64, v64, B, D, theta, alpha, variant);
          expect(Math.abs(out.loss - ref)).toBeLessThan(1e-5 * Math.max(1, Math.abs(ref)));
          // Central differences of the float64 reference on a sample of coordinates.
          const h = 1e-6;
          const coords = Array.from({ length: Math.min(B * D, 24) }, (_, k) => Math.floor((k * 7919) % (B * D)));
          expectCentralDifferences(out, u64, v64, coords, () => reference(u64, v64, B, D, theta, alpha, variant), h, 2e-4);
          const dt =
            (reference(u64, v64, B, D, theta + h, alpha, variant) - reference(u64, v64, B, D, theta - h, alpha, variant)) / (2 * h);
          expect(Math.abs(out.gradTheta - dt)).toBeLessThan(2e-4);
        });
      }

  it('α = 1 equals the CLIP loss', () => {
    const u = randomEmbeddings(16, 8, 1);
    const v = randomEmbeddings(16, 8, 2);
    const clip = contrastiveLoss(u, v, 16, 8, 2.3, { kind: 'clip' });
    for (const variant of ['clamp-diag', 'clamp-numerator'] as const) {
      const relaxed = contrastiveLoss(u, v, 16, 8, 2.3, { kind: 'relaxed', alpha: 1, variant });
      expect(Math.abs(relaxed.loss - clip.loss)).toBeLessThan(1e-6);
      for (let i = 0; i < u.length; i++) expect(Math.abs(relaxed.gradU[i] - clip.gradU[i])).toBeLessThan(1e-6);
    }
  });

  it('positives above α get no pull: moving s_ii above α leaves the clamp-diag loss unchanged', () => {
    // u_i = e_i and v_i = a·e_i + b·e_B: every off-diagonal similarity is 0 and s_ii = a/√(a²+b²).
    const B = 5;
    const D = B + 1;
    const make = (a: number, b: number) => {
      const u = new Float32Array(B * D);
      const v = new Float32Array(B * D);
      for (let i = 0; i < B; i++) {
        u[i * D + i] = 1;
        v[i * D + i] = a;
        v[i * D + B] = b;
      }
      return { u, v };
    };
    const lo = make(0.8, 0.6); // s_ii = 0.8
    const hi = make(0.95, Math.sqrt(1 - 0.95 ** 2)); // s_ii = 0.95
    const opts = { kind: 'relaxed' as const, alpha: 0.5, variant: 'clamp-diag' as const };
    const a = contrastiveLoss(lo.u, lo.v, B, D, Math.log(2), opts);
    const b = contrastiveLoss(hi.u, hi.v, B, D, Math.log(2), opts);
    expect(Math.abs(a.loss - b.loss)).toBeLessThan(1e-6);
    // With CLIP (α = 1) the same change lowers the loss: positives are still pulled.
    const c1 = contrastiveLoss(lo.u, lo.v, B, D, Math.log(2), { kind: 'clip' });
    const c2 = contrastiveLoss(hi.u, hi.v, B, D, Math.log(2), { kind: 'clip' });
    expect(c1.loss - c2.loss).toBeGreaterThan(1e-3);
  });

  it('NaN or Inf embeddings → E_NUMERIC; batch of 1 → E_SHAPE; bad α → E_CONFIG', () => {
    const u = randomEmbeddings(4, 4, 3);
    const v = randomEmbeddings(4, 4, 4);
    u[2] = NaN;
    expect(() => contrastiveLoss(u, v, 4, 4, 1)).toThrow(expect.objectContaining({ code: 'E_NUMERIC' }));
    u[2] = Infinity;
    expect(() => contrastiveLoss(u, v, 4, 4, 1)).toThrow(expect.objectContaining({ code: 'E_NUMERIC' }));
    expect(() => contrastiveLoss(randomEmbeddings(1, 4, 1), randomEmbeddings(1, 4, 2), 1, 4, 1)).toThrow(CxrError);
    expect(() => contrastiveLoss(randomEmbeddings(1, 4, 1), randomEmbeddings(1, 4, 2), 1, 4, 1)).toThrow(
      expect.objectContaining({ code: 'E_SHAPE' }),
    );
    expect(() => contrastiveLoss(v, v, 4, 4, 1, { kind: 'relaxed', alpha: 0 })).toThrow(expect.objectContaining({ code: 'E_CONFIG' }));
  });
});

/** Plain float64 similarities S = Û·V̂ᵀ of row-major B×D embeddings. */
function sims(u: Float64Array, v: Float64Array, B: number, D: number): number[][] {
  const n = (x: Float64Array, i: number) => Math.sqrt(Array.from({ length: D }, (_, d) => x[i * D + d] ** 2).reduce((a, b) => a + b, 0));
  return Array.from({ length: B }, (_, i) =>
    Array.from({ length: B }, (_, j) => {
      let s = 0;
      for (let d = 0; d < D; d++) s += u[i * D + d] * v[j * D + d];
      return s / (n(u, i) * n(v, j));
    }),
  );
}

/** Linear-interpolation quantile (numpy / torch default). */
function quantile(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  const h = (s.length - 1) * q;
  const lo = Math.floor(h);
  const hi = Math.min(lo + 1, s.length - 1);
  return s[lo] + (h - lo) * (s[hi] - s[lo]);
}

/**
 * The symmetric loss with the diagonal of the row loss clamped at thrRow[i] and that of the column loss at
 * thrCol[i] (frozen thresholds: constants of the step), both in the log-sum-exp and the target.
 */
function frozenClampLoss(u: Float64Array, v: Float64Array, B: number, D: number, theta: number, thrRow: number[], thrCol: number[]): number {
  const S = sims(u, v, B, D);
  const l = Math.exp(theta);
  const lse = (xs: number[]) => {
    const m = Math.max(...xs);
    return m + Math.log(xs.reduce((a, x) => a + Math.exp(x - m), 0));
  };
  let total = 0;
  for (let i = 0; i < B; i++) {
    const pr = Math.min(S[i][i], thrRow[i]);
    const pc = Math.min(S[i][i], thrCol[i]);
    total += -l * pr + lse(Array.from({ length: B }, (_, j) => l * (j === i ? pr : S[i][j])));
    total += -l * pc + lse(Array.from({ length: B }, (_, j) => l * (j === i ? pc : S[j][i])));
  }
  return total / (2 * B);
}

describe('relaxation forms: adaptive threshold and margin; the statistics', () => {
  const B = 12;
  const D = 8;
  const u = randomEmbeddings(B, D, 91);
  const v = randomEmbeddings(B, D, 92);
  for (let i = 0; i < B * D; i += 2) v[i] = u[i] + 0.3 * v[i];
  const u64 = Float64Array.from(u);
  const v64 = Float64Array.from(v);
  const theta = Math.log(12);
  const S = sims(u64, v64, B, D);
  const diag = S.map((r, i) => r[i]);
  const offMax = (i: number, byRow: boolean) => Math.max(...S.map((_, j) => (j === i ? -Infinity : byRow ? S[i][j] : S[j][i])));

  function checkAgainstFrozen(out: ReturnType<typeof contrastiveLoss>, thrRow: number[], thrCol: number[]): void {
    const ref = frozenClampLoss(u64, v64, B, D, theta, thrRow, thrCol);
    expect(Math.abs(out.loss - ref)).toBeLessThan(1e-5 * Math.max(1, Math.abs(ref)));
    const h = 1e-6;
    const coords = Array.from({ length: Math.ceil((B * D) / 5) }, (_, k) => 5 * k);
    expectCentralDifferences(out, u64, v64, coords, () => frozenClampLoss(u64, v64, B, D, theta, thrRow, thrCol), h, 1e-4);
    const dt = (frozenClampLoss(u64, v64, B, D, theta + h, thrRow, thrCol) - frozenClampLoss(u64, v64, B, D, theta - h, thrRow, thrCol)) / (2 * h);
    expect(Math.abs(out.gradTheta - dt)).toBeLessThan(1e-4);
  }

  it('margin: the row (column) loss clamps s_ii at its hardest negative + m; gradients are those of the frozen thresholds', () => {
    const m = 0.1;
    const out = contrastiveLoss(u, v, B, D, theta, { kind: 'relaxed', variant: 'margin', margin: m });
    const thrRow = diag.map((_, i) => offMax(i, true) + m);
    const thrCol = diag.map((_, i) => offMax(i, false) + m);
    const changed = diag.filter((s, i) => s > thrRow[i] || s > thrCol[i]).length / B;
    expect(changed).toBeGreaterThan(0);
    expect(changed).toBeLessThan(1);
    expect(out.stats.relaxEngaged).toBeCloseTo(changed, 12);
    checkAgainstFrozen(out, thrRow, thrCol);
  });

  it('alpha {quantile}: α is the running q-quantile of the positives, constant within the step', () => {
    const q = 0.5;
    const first = contrastiveLoss(u, v, B, D, theta, { kind: 'relaxed', alpha: { quantile: q } });
    const bq = quantile(diag, q);
    expect(first.stats.relaxBatchQuantile).toBeCloseTo(bq, 6);
    expect(first.stats.relaxAlpha).toBeCloseTo(bq, 6);
    const thr = diag.map(() => first.stats.relaxAlpha);
    checkAgainstFrozen(first, thr, thr);
    // Later steps blend the batch quantile into the running value: α = β·previous + (1-β)·quantile.
    const next = contrastiveLoss(u, v, B, D, theta, { kind: 'relaxed', alpha: { quantile: q, momentum: 0.8 }, alphaRunning: 0.3 });
    expect(next.stats.relaxAlpha).toBeCloseTo(0.8 * 0.3 + 0.2 * bq, 6);
    expect(next.stats.relaxEngaged).toBeCloseTo(diag.filter((s) => s > next.stats.relaxAlpha).length / B, 12);
    // β = 1 holds α at the running value (the frozen threshold of `freezeAfter`), and at the batch's own
    // quantile when there is none yet.
    const held = contrastiveLoss(u, v, B, D, theta, { kind: 'relaxed', alpha: { quantile: q, momentum: 1 }, alphaRunning: 0.3 });
    expect(held.stats.relaxAlpha).toBe(0.3);
    checkAgainstFrozen(held, diag.map(() => 0.3), diag.map(() => 0.3));
    const heldFirst = contrastiveLoss(u, v, B, D, theta, { kind: 'relaxed', alpha: { quantile: q, momentum: 1 } });
    expect(heldFirst.stats.relaxAlpha).toBeCloseTo(bq, 6);
  });

  it('q = 1 and m = ∞ give the CLIP loss bit for bit', () => {
    const clip = contrastiveLoss(u, v, B, D, theta, { kind: 'clip' });
    for (const o of [
      { kind: 'relaxed' as const, alpha: { quantile: 1 } },
      { kind: 'relaxed' as const, variant: 'margin' as const, margin: Infinity },
      { kind: 'relaxed' as const, alpha: 1 },
    ]) {
      const r = contrastiveLoss(u, v, B, D, theta, o);
      expect(r.loss).toBe(clip.loss);
      expect(r.gradTheta).toBe(clip.gradTheta);
      expect(Buffer.compare(Buffer.from(r.gradU.buffer), Buffer.from(clip.gradU.buffer))).toBe(0);
      expect(Buffer.compare(Buffer.from(r.gradV.buffer), Buffer.from(clip.gradV.buffer))).toBe(0);
      expect(r.stats.relaxEngaged).toBe(0);
    }
  });

  it('the statistics equal a plain computation of them', () => {
    const out = contrastiveLoss(u, v, B, D, theta, { kind: 'relaxed', alpha: 0.6 });
    let neg = 0;
    for (let i = 0; i < B; i++) for (let j = 0; j < B; j++) if (i !== j) neg += S[i][j];
    expect(out.stats.negSimMean).toBeCloseTo(neg / (B * (B - 1)), 6);
    expect(out.stats.posSimMean).toBeCloseTo(diag.reduce((a, b) => a + b, 0) / B, 6);
    expect(out.stats.posSimQ10).toBeCloseTo(quantile(diag, 0.1), 6);
    expect(out.stats.posSimQ50).toBeCloseTo(quantile(diag, 0.5), 6);
    expect(out.stats.posSimQ90).toBeCloseTo(quantile(diag, 0.9), 6);
    expect(out.stats.relaxAlpha).toBe(0.6);
    expect(out.stats.relaxEngaged).toBeCloseTo(diag.filter((s) => s > 0.6).length / B, 12);
    expect(out.stats.relaxBatchQuantile).toBeNull();
  });

  it('bad forms → E_CONFIG', () => {
    for (const o of [
      { kind: 'relaxed' as const, alpha: { quantile: 0 } },
      { kind: 'relaxed' as const, alpha: { quantile: 1.2 } },
      { kind: 'relaxed' as const, alpha: { quantile: 0.5, momentum: 1.5 } },
      { kind: 'relaxed' as const, variant: 'margin' as const, margin: 0 },
      { kind: 'relaxed' as const, variant: 'margin' as const, alpha: { quantile: 0.5 } },
    ])
      expect(() => contrastiveLoss(u, v, B, D, theta, o)).toThrow(expect.objectContaining({ code: 'E_CONFIG' }));
  });
});
