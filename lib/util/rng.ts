/**
 * Small seeded, counter-based pseudo-random numbers. Everything random in cxr-train (synthetic data,
 * augmentation, shuffling, sentence sampling) derives its stream from `hashSeed(seed, ...counters)`, so a
 * value depends only on (seed, epoch, index, ...) and never on the order in which work was scheduled
 * (worker pools, prefetching).
 */

/** Mixes 32-bit integers into one 32-bit seed (murmur3-style finaliser per input). Order matters. */
export function hashSeed(...ints: number[]): number {
  let h = 0x9e3779b9 ^ ints.length;
  for (const v of ints) {
    // Non-integers and values beyond 32 bits are folded so that e.g. large indices still differ.
    let k = Math.floor(v) | 0;
    const hi = Math.floor(v / 4294967296) | 0;
    k = Math.imul(k ^ hi, 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, 0x1b873593);
    h ^= k;
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Hashes a string to a 32-bit integer (FNV-1a), e.g. to seed by a patient id. */
export function hashString(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** The mulberry32 generator: returns a function yielding uniform floats in [0, 1). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A seeded random stream with the distributions the data pipeline needs. */
export class Rng {
  private readonly u: () => number;
  private spare = NaN;
  /** @param seed 32-bit seed, typically from {@link hashSeed}. */
  constructor(seed: number) {
    this.u = mulberry32(seed);
  }
  /** Uniform float in [0, 1). */
  next(): number {
    return this.u();
  }
  /** Uniform float in [lo, hi). */
  uniform(lo: number, hi: number): number {
    return lo + (hi - lo) * this.u();
  }
  /** Uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.u() * n);
  }
  /** True with probability p. */
  bernoulli(p: number): boolean {
    return this.u() < p;
  }
  /** Standard normal (Box-Muller, the second value is cached). */
  normal(mean = 0, std = 1): number {
    if (!Number.isNaN(this.spare)) {
      const v = this.spare;
      this.spare = NaN;
      return mean + std * v;
    }
    let u1 = this.u();
    if (u1 < 1e-12) u1 = 1e-12;
    const r = Math.sqrt(-2 * Math.log(u1));
    const th = 2 * Math.PI * this.u();
    this.spare = r * Math.sin(th);
    return mean + std * r * Math.cos(th);
  }
  /** One element of a non-empty array. */
  pick<T>(arr: readonly T[]): T {
    return arr[this.int(arr.length)];
  }
  /** Index drawn with probability proportional to `weights`. */
  weighted(weights: readonly number[]): number {
    let total = 0;
    for (const w of weights) total += w;
    let r = this.u() * total;
    for (let i = 0; i < weights.length; i++) {
      r -= weights[i];
      if (r < 0) return i;
    }
    return weights.length - 1;
  }
  /** Fisher-Yates shuffle in place; returns the array. */
  shuffle<T>(arr: T[]): T[] {
    for (let i = arr.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const t = arr[i];
      arr[i] = arr[j];
      arr[j] = t;
    }
    return arr;
  }
}

/** A seeded permutation of 0..n-1. */
export function permutation(n: number, seed: number): number[] {
  const a = Array.from({ length: n }, (_, i) => i);
  return new Rng(seed).shuffle(a);
}
