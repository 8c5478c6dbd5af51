import { loadTf } from '../../lib/tfjs/backend';

/** Shared inputs of the tfjs parity tests (deterministic, no Math.random). */
export function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

/** Gaussian-ish values (sum of uniforms) with the given scale. */
export function randn(n: number, seed: number, scale = 1): Float32Array {
  const r = lcg(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (r() + r() + r() - 1.5) * 2 * scale;
  return out;
}

/** Low-frequency images (blocks of 8x8 pixels), like radiographs rather than white noise. */
export function images(n: number, size: number, seed: number): Float32Array {
  const r = lcg(seed);
  const out = new Float32Array(n * 3 * size * size);
  const cells = size / 8;
  for (let i = 0; i < n; i++)
    for (let c = 0; c < 3; c++) {
      const vals = Array.from({ length: cells * cells }, () => r() * 2 - 1);
      for (let y = 0; y < size; y++)
        for (let x = 0; x < size; x++) out[((i * 3 + c) * size + y) * size + x] = vals[Math.floor(y / 8) * cells + Math.floor(x / 8)];
    }
  return out;
}

/** Token ids N×L: start 49406, random BPE ids, end 49407 (the highest id), zero padding. */
export function tokens(n: number, L: number, seed: number, vocab = 49408): Int32Array {
  const r = lcg(seed);
  const ids = new Int32Array(n * L);
  for (let i = 0; i < n; i++) {
    const len = 3 + (i % (L - 4));
    ids[i * L] = vocab - 2;
    for (let j = 1; j < len; j++) ids[i * L + j] = 1 + Math.floor(r() * (vocab - 3));
    ids[i * L + len] = vocab - 1;
  }
  return ids;
}

/**
 * Largest absolute difference of two arrays of the same length, computed with tfjs ops: plain JS loops
 * over millions of values run ~20x slower inside jest's sandbox than in node.
 */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} != ${b.length}`);
  const tf = loadTf();
  const d = tf.tidy(() => tf.max(tf.abs(tf.sub(tf.tensor1d(new Float32Array(a)), tf.tensor1d(new Float32Array(b))))));
  const v = d.dataSync()[0];
  d.dispose();
  return v;
}

/** Largest absolute value. */
export function maxAbs(a: ArrayLike<number>): number {
  return maxAbsDiff(a, new Float32Array(a.length));
}
