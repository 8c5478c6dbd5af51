import { lcg as uniform } from '../../helpers/inputs';

/** Deterministic test data: the shared test LCG (independent of the library's generator), seed 0 read as 1. */
export function lcg(seed: number): () => number {
  return uniform(seed >>> 0 || 1);
}

/** Random labels (about `prev` positive) and scores rounded to `decimals` places so that ties occur. */
export function randomCase(seed: number, n: number, prev = 0.3, decimals = 1): { y: number[]; s: number[] } {
  const r = lcg(seed);
  const y: number[] = [];
  const s: number[] = [];
  const f = 10 ** decimals;
  for (let i = 0; i < n; i++) {
    const pos = r() < prev ? 1 : 0;
    y.push(pos);
    s.push(Math.round((r() * 0.7 + pos * 0.3) * f) / f);
  }
  return { y, s };
}
