/**
 * Saliency maps as pictures: a perceptual colour map (viridis), the map over the grey radiograph, the score
 * in the corner and the caveat under it. Pure pixel work plus sharp for PNG encoding and the text layer.
 * The map is an explanation aid, not a localisation claim: every picture says so.
 */
import sharp from 'sharp';
import { CxrError } from '../errors';

/** The caveat every heatmap carries (PNG overlays, the serve page, heatmaps.json). */
export const HEATMAP_CAVEAT = 'explanation aid, not a localisation claim';

/**
 * matplotlib's viridis at 9 evenly spaced stops (0, 1/8, ..., 1), sRGB 0..255. Viridis is perceptually
 * uniform and readable in greyscale and by colour-blind viewers; between stops it is interpolated linearly
 * (within 2 levels of the 256-entry table).
 */
const VIRIDIS_STOPS: ReadonlyArray<readonly [number, number, number]> = [
  [68, 1, 84],
  [72, 40, 120],
  [62, 73, 137],
  [49, 104, 142],
  [38, 130, 142],
  [31, 158, 137],
  [53, 183, 121],
  [110, 206, 88],
  [253, 231, 37],
];

/** The viridis colour of t in [0, 1] (clamped; NaN is 0) as [r, g, b] in 0..255. */
export function viridis(t: number): [number, number, number] {
  const x = !(t > 0) ? 0 : t >= 1 ? 1 : t;
  const f = x * (VIRIDIS_STOPS.length - 1);
  const i = Math.min(VIRIDIS_STOPS.length - 2, Math.floor(f));
  const u = f - i;
  const a = VIRIDIS_STOPS[i];
  const b = VIRIDIS_STOPS[i + 1];
  return [a[0] + (b[0] - a[0]) * u, a[1] + (b[1] - a[1]) * u, a[2] + (b[2] - a[2]) * u];
}

/**
 * A map scaled to [0, 1] by its maximum (Grad-CAM maps are ≥ 0). A map that is zero everywhere (no
 * positive evidence for the label) stays zero. Non-finite values are `E_NUMERIC`.
 */
export function normalizeMap(map: Float32Array): Float32Array {
  let hi = 0;
  for (let i = 0; i < map.length; i++) {
    const v = map[i];
    if (!Number.isFinite(v)) throw new CxrError('E_NUMERIC', `saliency map: non-finite value at index ${i}`);
    if (v > hi) hi = v;
  }
  const out = new Float32Array(map.length);
  if (hi > 0) for (let i = 0; i < map.length; i++) out[i] = map[i] > 0 ? map[i] / hi : 0;
  return out;
}

/** Options of {@link renderOverlayPng}. */
export interface OverlayOptions {
  /** The image the model saw: size×size grey values in [0, 1]. */
  grey: Float32Array;
  /** The saliency map on the same grid (any non-negative scale; normalised by its maximum here). */
  map: Float32Array;
  /** Side of `grey` and `map`. */
  size: number;
  /** Label named in the corner. */
  label: string;
  /** The label's probability, written in the corner. */
  probability: number;
  /** Opacity of the colour map over the image, 0..1. Default 0.5. */
  opacity?: number;
  /** Side of the PNG in pixels (the picture is resampled). Default max(size, 384). */
  outSize?: number;
}

function escapeXml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function checkGrid(what: string, a: Float32Array, size: number): void {
  if (!Number.isInteger(size) || size < 1) throw new CxrError('E_CONFIG', `heatmap size must be a positive integer, got ${size}`);
  // A length check, not instanceof: arrays made by the addon or in another realm (a worker, a vm context) are Float32Arrays too.
  if (!ArrayBuffer.isView(a) || a.length !== size * size) throw new CxrError('E_SHAPE', `${what} must hold ${size}×${size} values, got ${a?.length}`);
}

/** RGB bytes of the colour-mapped `map` blended over `grey` with `opacity`. */
export function blendOverlay(grey: Float32Array, map: Float32Array, size: number, opacity = 0.5): Uint8Array {
  checkGrid('the grey image', grey, size);
  checkGrid('the saliency map', map, size);
  if (!(opacity >= 0 && opacity <= 1)) throw new CxrError('E_CONFIG', `heatmap opacity must be in [0, 1], got ${opacity}`);
  const m = normalizeMap(map);
  const out = new Uint8Array(size * size * 3);
  for (let i = 0; i < m.length; i++) {
    const g = 255 * (grey[i] < 0 ? 0 : grey[i] > 1 ? 1 : grey[i]);
    const c = viridis(m[i]);
    for (let k = 0; k < 3; k++) out[3 * i + k] = Math.round((1 - opacity) * g + opacity * c[k]);
  }
  return out;
}

/** RGBA bytes of the colour-mapped map alone (opaque), for pages that blend it themselves. */
export function colorMapRgba(map: Float32Array, size: number): Uint8Array {
  checkGrid('the saliency map', map, size);
  const m = normalizeMap(map);
  const out = new Uint8Array(size * size * 4);
  for (let i = 0; i < m.length; i++) {
    const c = viridis(m[i]);
    out[4 * i] = Math.round(c[0]);
    out[4 * i + 1] = Math.round(c[1]);
    out[4 * i + 2] = Math.round(c[2]);
    out[4 * i + 3] = 255;
  }
  return out;
}

/** PNG of a size×size RGBA or RGB buffer, resampled to `outSize`. */
export async function rasterPng(data: Uint8Array, size: number, channels: 3 | 4, outSize = size): Promise<Buffer> {
  return sharp(Buffer.from(data.buffer, data.byteOffset, data.byteLength), { raw: { width: size, height: size, channels } })
    .resize(outSize, outSize, { kernel: 'cubic' })
    .png()
    .toBuffer();
}

/**
 * The overlay PNG: the image in grey, the map in viridis over it, "label  p = 0.812" in the top-left corner
 * and the caveat ({@link HEATMAP_CAVEAT}) along the bottom, with a colour bar (low → high).
 */
export async function renderOverlayPng(o: OverlayOptions): Promise<Buffer> {
  const out = o.outSize ?? Math.max(o.size, 384);
  if (!Number.isInteger(out) || out < 16 || out > 8192) throw new CxrError('E_CONFIG', `heatmap outSize must be an integer in [16, 8192], got ${out}`);
  if (!Number.isFinite(o.probability)) throw new CxrError('E_NUMERIC', `heatmap probability is ${o.probability}`);
  const rgb = blendOverlay(o.grey, o.map, o.size, o.opacity ?? 0.5);
  const fs = Math.max(11, Math.round(out / 26));
  const small = Math.max(9, Math.round(fs * 0.72));
  const title = `${o.label}  p = ${o.probability.toFixed(3)}`;
  const barW = Math.round(out * 0.22);
  const stops = VIRIDIS_STOPS.map((c, i) => `<stop offset="${(i / (VIRIDIS_STOPS.length - 1)).toFixed(3)}" stop-color="rgb(${c[0]},${c[1]},${c[2]})"/>`).join('');
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${out}" height="${out}">
<defs><linearGradient id="g" x1="0" x2="1" y1="0" y2="0">${stops}</linearGradient></defs>
<rect x="0" y="0" width="${Math.min(out, Math.round(title.length * fs * 0.62) + 16)}" height="${fs + 12}" fill="black" fill-opacity="0.6"/>
<text x="8" y="${fs + 4}" font-family="DejaVu Sans, sans-serif" font-size="${fs}" fill="white">${escapeXml(title)}</text>
<rect x="0" y="${out - small - 10}" width="${out}" height="${small + 10}" fill="black" fill-opacity="0.6"/>
<text x="6" y="${out - 7}" font-family="DejaVu Sans, sans-serif" font-size="${small}" fill="white">Grad-CAM: ${escapeXml(HEATMAP_CAVEAT)}</text>
<rect x="${out - barW - 8}" y="${out - small - 4}" width="${barW}" height="${small - 2}" fill="url(#g)"/>
</svg>`;
  return sharp(Buffer.from(rgb.buffer, rgb.byteOffset, rgb.byteLength), { raw: { width: o.size, height: o.size, channels: 3 } })
    .resize(out, out, { kernel: 'cubic' })
    .composite([{ input: Buffer.from(svg), top: 0, left: 0 }])
    .png()
    .toBuffer();
}
