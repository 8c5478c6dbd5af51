import { loadTf } from '../../../lib/tfjs/backend';
import { lcg } from '../../helpers/inputs';

/** Shared inputs of the tfjs parity tests (deterministic, no Math.random). */
export { images, lcg, tokens } from '../../helpers/inputs';

/** Gaussian-ish values (sum of uniforms) with the given scale. */
export function randn(n: number, seed: number, scale = 1): Float32Array {
  const r = lcg(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (r() + r() + r() - 1.5) * 2 * scale;
  return out;
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
