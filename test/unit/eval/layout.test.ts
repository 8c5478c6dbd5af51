import { MODEL_STATS, StatLayout } from '../../../lib/eval/scoring/layout';
import { auroc, perLabelAuroc } from '../../../lib/eval/metrics';
import { isCxrError } from '../../../lib/errors';

describe('StatLayout', () => {
  it.each([
    [3, 0],
    [2, 2],
    [1, 3],
  ])('%i labels, %i readers: every statistic has its own slot inside the vector', (L, R) => {
    const at = new StatLayout(L, R);
    const slots: number[] = [];
    for (let li = 0; li < L; li++) MODEL_STATS.forEach((_, k) => slots.push(at.model(li, k)));
    MODEL_STATS.forEach((_, k) => slots.push(at.macro(k)));
    for (const k of ['f1', 'mcc'] as const) {
      for (let ri = 0; ri < R; ri++) {
        for (let li = 0; li < L; li++) slots.push(at.reader(ri, li, k));
        slots.push(at.readerMacro(ri, k));
      }
      if (R > 0) {
        for (let li = 0; li < L; li++) slots.push(at.mean(li, k), at.delta(li, k));
        slots.push(at.meanMacro(k), at.deltaMacro(k));
      }
    }
    expect(new Set(slots).size).toBe(slots.length);
    expect(slots.length).toBe(at.size);
    expect(Math.min(...slots)).toBe(0);
    expect(Math.max(...slots)).toBe(at.size - 1);
  });
});

describe('perLabelAuroc', () => {
  it('is the AUROC of each column of row-major matrices, null with one class', () => {
    // 4 rows × 2 labels: A separates perfectly, B has one class only.
    const truth = [1, 0, 0, 0, 1, 0, 0, 0];
    const scores = [0.9, 0.1, 0.2, 0.5, 0.8, 0.3, 0.1, 0.7];
    const r = perLabelAuroc(['A', 'B'], truth, scores);
    expect(r.A).toBe(auroc([1, 0, 1, 0], [0.9, 0.2, 0.8, 0.1]));
    expect(r.A).toBe(1);
    expect(r.B).toBeNull();
  });

  it('mismatched shapes are E_SHAPE', () => {
    let err: unknown;
    try {
      perLabelAuroc(['A', 'B'], [1, 0, 1], [0.1, 0.2, 0.3]);
    } catch (e) {
      err = e;
    }
    expect(isCxrError(err) && err.code).toBe('E_SHAPE');
  });
});
