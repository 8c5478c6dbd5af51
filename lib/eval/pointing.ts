/**
 * The pointing game (Zhang et al., "Top-down neural attention by excitation backprop", ECCV 2016): a
 * saliency map "hits" when its maximum falls inside the annotated region of the finding. Here the regions
 * are the boxes the synthetic generator recorded where it drew each finding. Two baselines that need no
 * model: a uniformly random point (its expected hit rate is the fraction of the image the region covers,
 * computed exactly on the pixel grid) and the image centre.
 */
import { CxrError } from '../errors';

/** [x0, y0, x1, y1] in normalised image units (0..1), x right, y down. */
export type Box = readonly [number, number, number, number];

/** Whether the centre of pixel `index` of a size×size grid lies in any of `boxes`. */
export function pixelInBoxes(index: number, size: number, boxes: readonly Box[]): boolean {
  const x = ((index % size) + 0.5) / size;
  const y = (Math.floor(index / size) + 0.5) / size;
  return pointInBoxes(x, y, boxes);
}

/** Whether the point (x, y) (normalised) lies in any of `boxes` (edges included). */
export function pointInBoxes(x: number, y: number, boxes: readonly Box[]): boolean {
  return boxes.some((b) => x >= b[0] && x <= b[2] && y >= b[1] && y <= b[3]);
}

/** Fraction of the pixel centres of a size×size grid inside the union of `boxes`: a random point's hit chance. */
export function areaFraction(size: number, boxes: readonly Box[]): number {
  if (!Number.isInteger(size) || size < 1) throw new CxrError('E_CONFIG', `grid size must be a positive integer, got ${size}`);
  let inside = 0;
  for (let i = 0; i < size * size; i++) if (pixelInBoxes(i, size, boxes)) inside++;
  return inside / (size * size);
}

/** The index of the largest value (the first on ties). */
export function argmaxIndex(a: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < a.length; i++) if (a[i] > a[best]) best = i;
  return best;
}

/** Per pixel Σ_c |g_c| of a 3×S×S gradient (the usual input-gradient saliency, Simonyan et al. 2014). */
export function gradientMagnitude(grad: Float32Array, size: number): Float32Array {
  const plane = size * size;
  if (grad.length !== 3 * plane) throw new CxrError('E_SHAPE', `a 3×${size}×${size} gradient has ${3 * plane} values, got ${grad.length}`);
  const out = new Float32Array(plane);
  for (let i = 0; i < plane; i++) out[i] = Math.abs(grad[i]) + Math.abs(grad[plane + i]) + Math.abs(grad[2 * plane + i]);
  return out;
}

/** Wilson score interval (95%) of k hits in n trials. */
export function wilson(k: number, n: number, z = 1.959964): [number, number] {
  if (n === 0) return [NaN, NaN];
  const p = k / n;
  const d = 1 + (z * z) / n;
  const c = (p + (z * z) / (2 * n)) / d;
  const h = (z * Math.sqrt((p * (1 - p)) / n + (z * z) / (4 * n * n))) / d;
  return [Math.max(0, c - h), Math.min(1, c + h)];
}

/** One label's pointing-game tally. */
export interface PointingTally {
  label: string;
  /** Images where the finding was drawn. */
  n: number;
  /** Hits of the Grad-CAM maximum. */
  gradcamHits: number;
  /** Hits of the input-gradient maximum. */
  gradientHits: number;
  /** Sum over images of the random point's hit chance. */
  randomSum: number;
  /** Hits of the image centre. */
  centreHits: number;
}

/** The rates of a tally, with the Wilson 95% interval of the Grad-CAM rate. */
export interface PointingRow {
  label: string;
  n: number;
  gradcam: number;
  gradcamCi: [number, number];
  gradient: number;
  random: number;
  centre: number;
}

/** Rates of a tally (NaN where n is 0). */
export function pointingRow(t: PointingTally): PointingRow {
  const r = (k: number) => (t.n > 0 ? k / t.n : NaN);
  return { label: t.label, n: t.n, gradcam: r(t.gradcamHits), gradcamCi: wilson(t.gradcamHits, t.n), gradient: r(t.gradientHits), random: r(t.randomSum), centre: r(t.centreHits) };
}

/** Adds one image's outcome for one label to a tally. */
export function scorePointing(t: PointingTally, size: number, boxes: readonly Box[], gradcamMap: ArrayLike<number>, gradientMap: ArrayLike<number>): void {
  t.n++;
  if (pixelInBoxes(argmaxIndex(gradcamMap), size, boxes)) t.gradcamHits++;
  if (pixelInBoxes(argmaxIndex(gradientMap), size, boxes)) t.gradientHits++;
  t.randomSum += areaFraction(size, boxes);
  if (pointInBoxes(0.5, 0.5, boxes)) t.centreHits++;
}
