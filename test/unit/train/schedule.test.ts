import { lrAt, stepLoss } from '../../../lib/train/schedule';

describe('lrAt (warm-up + cosine to min lr)', () => {
  const p = { lr: 1e-3, warmupSteps: 10, totalSteps: 110, minLrRatio: 0.1 };

  test('linear warm-up, never 0 at the first step', () => {
    expect(lrAt(0, p)).toBeCloseTo(1e-4, 12);
    expect(lrAt(4, p)).toBeCloseTo(5e-4, 12);
    expect(lrAt(9, p)).toBeCloseTo(1e-3, 12);
  });

  test('cosine from the peak to the floor at the last step', () => {
    expect(lrAt(10, p)).toBeCloseTo(1e-3, 12);
    expect(lrAt(109, p)).toBeCloseTo(1e-4, 12);
    const mid = { lr: 1, warmupSteps: 0, totalSteps: 101, minLrRatio: 0 };
    expect(lrAt(50, mid)).toBeCloseTo(0.5, 12);
    expect(lrAt(25, mid)).toBeCloseTo(0.5 * (1 + Math.cos(Math.PI / 4)), 12);
  });

  test('monotone non-increasing after warm-up, floor kept past the end', () => {
    let prev = Infinity;
    for (let s = 10; s < 140; s++) {
      const v = lrAt(s, p);
      expect(v).toBeLessThanOrEqual(prev + 1e-18);
      expect(v).toBeGreaterThanOrEqual(1e-4 - 1e-15);
      prev = v;
    }
    expect(lrAt(500, p)).toBeCloseTo(1e-4, 12);
  });

  test('pure: the same step gives the same rate whatever was asked before', () => {
    const a = Array.from({ length: 110 }, (_, s) => lrAt(s, p));
    const b = Array.from({ length: 110 }, (_, s) => lrAt(109 - s, p)).reverse();
    expect(b).toEqual(a);
  });

  test('edge cases: no warm-up, one step, warm-up longer than the run', () => {
    expect(lrAt(0, { lr: 2, warmupSteps: 0, totalSteps: 1, minLrRatio: 0 })).toBe(2);
    expect(lrAt(0, { lr: 2, warmupSteps: 0, totalSteps: 10, minLrRatio: 0.5 })).toBe(2);
    expect(lrAt(9, { lr: 2, warmupSteps: 0, totalSteps: 10, minLrRatio: 0.5 })).toBeCloseTo(1, 12);
    expect(lrAt(4, { lr: 2, warmupSteps: 20, totalSteps: 5, minLrRatio: 0 })).toBeCloseTo(0.5, 12);
  });

  test('invalid inputs are E_CONFIG', () => {
    expect(() => lrAt(-1, p)).toThrow(expect.objectContaining({ code: 'E_CONFIG' }));
    expect(() => lrAt(1.5, p)).toThrow(expect.objectContaining({ code: 'E_CONFIG' }));
    expect(() => lrAt(0, { ...p, lr: 0 })).toThrow(expect.objectContaining({ code: 'E_CONFIG' }));
    expect(() => lrAt(0, { ...p, minLrRatio: 2 })).toThrow(expect.objectContaining({ code: 'E_CONFIG' }));
    expect(() => lrAt(0, { ...p, totalSteps: 0 })).toThrow(expect.objectContaining({ code: 'E_CONFIG' }));
  });
});

describe('stepLoss (the loss options of each step)', () => {
  const base = { kind: 'relaxed' as const, variant: 'clamp-diag' as const, margin: Infinity, labelSmoothing: 0 };

  it('a fixed α passes through with the running value', () => {
    expect(stepLoss({ ...base, alpha: 0.8 }, null, 5)).toEqual({ ...base, alpha: 0.8, alphaRunning: null });
  });

  it('{quantile, freezeAfter: K}: the running quantile for K steps, then α held (momentum 1) at the running value', () => {
    const loss = { ...base, alpha: { quantile: 0.5, momentum: 0.9, freezeAfter: 30 } };
    expect(stepLoss(loss, null, 0).alpha).toEqual({ quantile: 0.5, momentum: 0.9 });
    expect(stepLoss(loss, 0.41, 29)).toEqual({ ...base, alpha: { quantile: 0.5, momentum: 0.9 }, alphaRunning: 0.41 });
    expect(stepLoss(loss, 0.43, 30)).toEqual({ ...base, alpha: { quantile: 0.5, momentum: 1 }, alphaRunning: 0.43 });
    expect(stepLoss(loss, 0.43, 300).alpha).toEqual({ quantile: 0.5, momentum: 1 });
    // Nothing to hold yet (no step has run): the batch's own quantile.
    expect(stepLoss(loss, null, 30).alpha).toEqual({ quantile: 0.5, momentum: 0.9 });
    // Without freezeAfter the quantile keeps running.
    expect(stepLoss({ ...base, alpha: { quantile: 0.5 } }, 0.4, 1000).alpha).toEqual({ quantile: 0.5 });
  });
});
