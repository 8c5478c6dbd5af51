/** Small numeric helpers of the scoring pipeline. */
import { percentileInterval } from '../bootstrap';
import type { CiBounds } from './types';

/** The number, or null when it is NaN or infinite (JSON has neither). */
export const fin = (x: number): number | null => (Number.isFinite(x) ? x : null);

/** A percentile interval of bootstrap values, with null bounds when undefined. */
export function ciOf(values: Float64Array, level: number): CiBounds {
  const iv = percentileInterval(values, level);
  return { lo: fin(iv.lo), hi: fin(iv.hi), n: iv.n };
}

/** At most `max` points of a curve, evenly spaced by index (first and last kept). */
export function downsample(xs: Float64Array, ys: Float64Array, max: number): { x: number[]; y: number[] } {
  const n = xs.length;
  if (n <= max) return { x: Array.from(xs), y: Array.from(ys) };
  const x: number[] = [];
  const y: number[] = [];
  const step = (n - 1) / (max - 1);
  for (let k = 0; k < max; k++) {
    const i = Math.round(k * step);
    x.push(xs[i]);
    y.push(ys[i]);
  }
  return { x, y };
}
