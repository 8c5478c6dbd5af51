import { areaFraction, argmaxIndex, gradientMagnitude, pixelInBoxes, pointingRow, scorePointing, wilson, type PointingTally } from '../../../lib/eval/pointing';

describe('pointing game', () => {
  test('pixel centres against boxes', () => {
    // 4×4 grid: pixel 5 is (1, 1), centre (0.375, 0.375).
    expect(pixelInBoxes(5, 4, [[0.25, 0.25, 0.5, 0.5]])).toBe(true);
    expect(pixelInBoxes(5, 4, [[0.4, 0.25, 0.5, 0.5]])).toBe(false);
    expect(pixelInBoxes(15, 4, [[0, 0, 0.1, 0.1], [0.8, 0.8, 1, 1]])).toBe(true);
  });

  test('a random point hits with the share of pixel centres the union of boxes covers', () => {
    expect(areaFraction(10, [[0, 0, 0.5, 1]])).toBeCloseTo(0.5, 12);
    // Overlapping boxes count once.
    expect(areaFraction(10, [[0, 0, 0.5, 1], [0, 0, 0.5, 0.5]])).toBeCloseTo(0.5, 12);
    expect(areaFraction(4, [[0, 0, 1, 1]])).toBe(1);
    expect(() => areaFraction(0, [])).toThrow(expect.objectContaining({ code: 'E_CONFIG' }));
  });

  test('tally: map maximum, gradient maximum, random and centre baselines', () => {
    const t: PointingTally = { label: 'x', n: 0, gradcamHits: 0, gradientHits: 0, randomSum: 0, centreHits: 0 };
    const S = 4;
    const box = [[0, 0, 0.5, 0.5]] as const; // top-left quarter, not the centre pixel (0.5 is on its edge: included)
    const cam = new Float32Array(16);
    cam[0] = 1; // top-left: hit
    const grad = new Float32Array(16);
    grad[15] = 2; // bottom-right: miss
    scorePointing(t, S, box, cam, grad);
    cam[0] = 0;
    cam[10] = 3; // (2, 2): miss
    scorePointing(t, S, box, cam, grad);
    const r = pointingRow(t);
    expect(r.n).toBe(2);
    expect(r.gradcam).toBe(0.5);
    expect(r.gradient).toBe(0);
    expect(r.random).toBeCloseTo(0.25, 12);
    expect(r.centre).toBe(1);
    expect(r.gradcamCi[0]).toBeLessThan(0.5);
    expect(r.gradcamCi[1]).toBeGreaterThan(0.5);
  });

  test('Wilson interval matches the closed form at a known point', () => {
    // k = 8 of n = 10: the standard 95% Wilson interval is [0.4902, 0.9433].
    const [lo, hi] = wilson(8, 10);
    expect(lo).toBeCloseTo(0.4902, 4);
    expect(hi).toBeCloseTo(0.9433, 4);
    expect(wilson(0, 0).every(Number.isNaN)).toBe(true);
  });

  test('gradient magnitude sums absolute channel values; argmax takes the first maximum', () => {
    const g = new Float32Array(12);
    g[1] = -2;
    g[4 + 1] = 1;
    g[8 + 3] = 2.5;
    expect(Array.from(gradientMagnitude(g, 2))).toEqual([0, 3, 0, 2.5]);
    expect(argmaxIndex([1, 3, 3, 2])).toBe(1);
    expect(() => gradientMagnitude(new Float32Array(5), 2)).toThrow(expect.objectContaining({ code: 'E_SHAPE' }));
  });
});
