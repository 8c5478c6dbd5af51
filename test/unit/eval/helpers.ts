/** Deterministic test data (a tiny LCG, independent of the library's generator). */
export function lcg(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    return x / 4294967296;
  };
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
