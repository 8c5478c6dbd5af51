/**
 * Image pipeline: decode (JPEG/PNG 8/16-bit via sharp, DICOM via dicom-parser), geometry (CheXzero pad
 * or CLIP crop), seeded training augmentations, normalisation, and output as CHW float32 with the
 * grayscale value repeated on 3 channels.
 *
 * Files go through libvips for decode + resize in one pass (JPEG shrink-on-load makes this much faster
 * than decoding at full size); augmentation then works on the small `size`×`size` base image in JS, so
 * its cost does not depend on the original resolution.
 */
import fs from 'node:fs';
import sharp from 'sharp';
import * as dicomParser from 'dicom-parser';
import { CxrError } from '../errors';
import { Rng } from '../util/rng';

/** A single-channel image with values in [0, 1]. */
export interface GrayImage {
  data: Float32Array;
  width: number;
  height: number;
}

/** 'pad': aspect-preserving resize + zero pad (CheXzero); 'crop': resize shorter side + centre crop (CLIP); 'stretch': resize to square ignoring aspect. */
export type Geometry = 'pad' | 'crop' | 'stretch';

/** Normalisation: a preset name or per-channel mean/std (in [0,1] units, or 0..255 units with `scale: 255`). */
export type Normalize = 'clip' | 'chexzero' | 'none' | { mean: number[]; std: number[]; scale?: 1 | 255 };

/** OpenAI CLIP's RGB mean/std on [0,1] pixels. */
export const CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073];
/** OpenAI CLIP's RGB std on [0,1] pixels. */
export const CLIP_STD = [0.26862954, 0.26130258, 0.27577711];
/** CheXzero's grayscale mean/std on 0..255 pixels. */
export const CHEXZERO_MEAN = 101.48761;
/** CheXzero's grayscale std on 0..255 pixels. */
export const CHEXZERO_STD = 83.43944;

/** Seeded training augmentations. All default to off; set what you want. */
export interface AugmentOptions {
  /** Random resized crop: area fraction range of the crop, e.g. [0.7, 1]. */
  scale?: [number, number];
  /** Random resized crop: aspect ratio range (w/h) of the crop. Default [3/4, 4/3] when `scale` is set. */
  ratio?: [number, number];
  /** Maximum absolute rotation in degrees (uniform in ±deg). */
  rotateDeg?: number;
  /** Maximum translation as a fraction of the side (uniform in ±t on each axis). */
  translate?: number;
  /** Brightness jitter: multiply by a factor uniform in [1-b, 1+b]. */
  brightness?: number;
  /** Contrast jitter: scale around the image mean by a factor uniform in [1-c, 1+c]. */
  contrast?: number;
  /** Horizontal flip with probability 0.5. Default false: it swaps anatomy (heart on the wrong side). */
  hflip?: boolean;
}

/** Options of the image → tensor transform. */
export interface PreprocessOptions {
  /** Output side in pixels (square). */
  size: number;
  /** Geometry mode. Default 'pad'. */
  geometry?: Geometry;
  /** Normalisation. Default 'clip'. */
  normalize?: Normalize;
  /** Augmentations (training only); undefined or null for none. */
  augment?: AugmentOptions | null;
}

/** Options of decoding. */
export interface DecodeOptions {
  /** Refuse images with more pixels than this (a 20000×20000 file is an error, not a hang). Default 100e6. */
  maxPixels?: number;
  /** DICOM: 'file' uses the file's window centre/width when present (default), 'full' the full range. */
  dicomWindow?: 'file' | 'full';
}

const DEFAULT_MAX_PIXELS = 100_000_000;

/**
 * Peak bytes per pixel of decoding a DICOM here (float64 values, float32 output, the stored 16-bit plane):
 * a memory budget divided by this is a pixel budget ({@link DecodeOptions.maxPixels}).
 */
export const DECODE_BYTES_PER_PIXEL = 14;

function dataError(what: string, msg: string, cause?: unknown): CxrError {
  return new CxrError('E_DATA', `cannot decode ${what}: ${msg}`, { path: what }, { cause });
}

async function readInput(input: string | Uint8Array): Promise<{ buf: Buffer; what: string }> {
  if (typeof input !== 'string') return { buf: Buffer.from(input.buffer, input.byteOffset, input.byteLength), what: '<buffer>' };
  try {
    return { buf: await fs.promises.readFile(input), what: input };
  } catch (e) {
    throw new CxrError('E_IO', `cannot read ${input}: ${(e as Error).message}`, { path: input }, { cause: e });
  }
}

/** True when the bytes look like DICOM Part 10 ('DICM' at 128) or a bare DICOM dataset. */
export function isDicom(buf: Uint8Array): boolean {
  if (buf.length >= 132 && buf[128] === 0x44 && buf[129] === 0x49 && buf[130] === 0x43 && buf[131] === 0x4d) return true;
  // Bare dataset starting with group 0x0008 (little endian), as some exports write.
  return buf.length > 8 && buf[0] === 0x08 && buf[1] === 0x00 && buf[3] === 0x00;
}

function pngBitDepth(buf: Uint8Array): number | undefined {
  if (buf.length > 25 && buf[0] === 0x89 && buf[1] === 0x50 && buf[2] === 0x4e && buf[3] === 0x47) return buf[24];
  return undefined;
}

/**
 * Decodes an image file or buffer at full resolution to [0, 1] grayscale. JPEG/PNG/TIFF/WebP via sharp
 * (16-bit PNG keeps its precision), DICOM via {@link decodeDicom}.
 *
 * @throws CxrError E_IO (unreadable file), E_DATA (corrupt, empty or too large), E_UNSUPPORTED_DICOM
 */
export async function decodeImage(input: string | Uint8Array, opts: DecodeOptions = {}): Promise<GrayImage> {
  const { buf, what } = await readInput(input);
  if (buf.length === 0) throw dataError(what, 'empty file');
  if (isDicom(buf)) return decodeDicom(buf, { ...opts, what });
  const sixteen = (pngBitDepth(buf) ?? 8) === 16;
  try {
    const img = sharp(buf, { limitInputPixels: opts.maxPixels ?? DEFAULT_MAX_PIXELS, failOn: 'error' }).removeAlpha();
    if (sixteen) {
      const { data, info } = await img.toColourspace('grey16').raw({ depth: 'ushort' }).toBuffer({ resolveWithObject: true });
      const u16 = new Uint16Array(data.buffer, data.byteOffset, data.byteLength / 2);
      const out = new Float32Array(info.width * info.height);
      const ch = info.channels;
      for (let i = 0; i < out.length; i++) out[i] = u16[i * ch] / 65535;
      return { data: out, width: info.width, height: info.height };
    }
    const { data, info } = await img.grayscale().raw().toBuffer({ resolveWithObject: true });
    const out = new Float32Array(info.width * info.height);
    const ch = info.channels;
    for (let i = 0; i < out.length; i++) out[i] = data[i * ch] / 255;
    return { data: out, width: info.width, height: info.height };
  } catch (e) {
    throw dataError(what, (e as Error).message, e);
  }
}

const TS_NAMES: Record<string, string> = {
  '1.2.840.10008.1.2': 'Implicit VR Little Endian',
  '1.2.840.10008.1.2.1': 'Explicit VR Little Endian',
  '1.2.840.10008.1.2.2': 'Explicit VR Big Endian',
  '1.2.840.10008.1.2.1.99': 'Deflated Explicit VR Little Endian',
  '1.2.840.10008.1.2.4.50': 'JPEG Baseline (8-bit)',
  '1.2.840.10008.1.2.4.51': 'JPEG Extended (12-bit)',
  '1.2.840.10008.1.2.4.57': 'JPEG Lossless',
  '1.2.840.10008.1.2.4.70': 'JPEG Lossless SV1',
  '1.2.840.10008.1.2.4.80': 'JPEG-LS Lossless',
  '1.2.840.10008.1.2.4.81': 'JPEG-LS Near-lossless',
  '1.2.840.10008.1.2.4.90': 'JPEG 2000 Lossless',
  '1.2.840.10008.1.2.4.91': 'JPEG 2000',
  '1.2.840.10008.1.2.5': 'RLE Lossless',
};

/** Transfer syntaxes {@link decodeDicom} decodes. */
export const SUPPORTED_DICOM_TRANSFER_SYNTAXES = ['1.2.840.10008.1.2', '1.2.840.10008.1.2.1', '1.2.840.10008.1.2.2', '1.2.840.10008.1.2.4.50', '1.2.840.10008.1.2.5'];

/**
 * Decodes a DICOM image (first frame): uncompressed little/big endian, JPEG baseline (through sharp)
 * and RLE lossless. Applies the rescale slope/intercept, then the file's VOI window (or the full range
 * with `dicomWindow: 'full'` or when the file has none), and inverts MONOCHROME1 so that bone is bright.
 *
 * @throws CxrError E_UNSUPPORTED_DICOM for other transfer syntaxes or pixel layouts, E_DATA when corrupt
 */
export async function decodeDicom(buf: Uint8Array, opts: DecodeOptions & { what?: string } = {}): Promise<GrayImage> {
  const what = opts.what ?? '<dicom>';
  let ds: dicomParser.DataSet;
  try {
    ds = dicomParser.parseDicom(buf);
  } catch (e) {
    const msg = typeof e === 'string' ? e : (e as Error)?.message ?? (e as { exception?: string })?.exception ?? String(e);
    throw dataError(what, `not a readable DICOM file (${msg})`, e);
  }
  const ts = (ds.string('x00020010') ?? '1.2.840.10008.1.2').replace(/\0/g, '').trim();
  if (!SUPPORTED_DICOM_TRANSFER_SYNTAXES.includes(ts)) {
    throw new CxrError('E_UNSUPPORTED_DICOM', `${what}: transfer syntax ${ts} (${TS_NAMES[ts] ?? 'unknown'}) is not supported; convert it to uncompressed or JPEG baseline (e.g. gdcmconv --raw)`, { path: what, transferSyntax: ts });
  }
  const rows = ds.uint16('x00280010') ?? 0;
  const cols = ds.uint16('x00280011') ?? 0;
  const bitsAllocated = ds.uint16('x00280100') ?? 16;
  const bitsStored = ds.uint16('x00280101') ?? bitsAllocated;
  const signed = (ds.uint16('x00280103') ?? 0) === 1;
  const spp = ds.uint16('x00280002') ?? 1;
  const photometric = (ds.string('x00280004') ?? 'MONOCHROME2').trim().toUpperCase();
  const pixel = ds.elements.x7fe00010;
  if (!rows || !cols || !pixel) throw dataError(what, 'missing Rows/Columns/PixelData');
  // The budget is checked on the declared size before any buffer is allocated (~14 bytes per pixel here).
  const limit = opts.maxPixels ?? DEFAULT_MAX_PIXELS;
  if (rows * cols * Math.max(1, spp) > limit) throw dataError(what, `${cols}x${rows}${spp > 1 ? `x${spp}` : ''} exceeds the pixel limit (${limit} pixels)`);
  if (spp !== 1 && !(spp === 3 && ts === '1.2.840.10008.1.2.4.50')) throw new CxrError('E_UNSUPPORTED_DICOM', `${what}: ${spp} samples per pixel (${photometric}) is not supported`, { path: what });
  if (bitsAllocated !== 8 && bitsAllocated !== 16) throw new CxrError('E_UNSUPPORTED_DICOM', `${what}: BitsAllocated ${bitsAllocated} is not supported`, { path: what });
  const n = rows * cols;
  // Allocated once the pixel data is known to hold the declared image (a crafted header costs nothing).
  let raw: Float64Array;
  if (ts === '1.2.840.10008.1.2.4.50') {
    const frame = readFrame(ds, pixel, what);
    try {
      const { data, info } = await sharp(Buffer.from(frame), { failOn: 'error' }).grayscale().raw().toBuffer({ resolveWithObject: true });
      if (info.width !== cols || info.height !== rows) throw new Error(`JPEG frame is ${info.width}x${info.height}, header says ${cols}x${rows}`);
      raw = new Float64Array(n);
      for (let i = 0; i < n; i++) raw[i] = data[i * info.channels];
    } catch (e) {
      throw dataError(what, `JPEG frame: ${(e as Error).message}`, e);
    }
  } else {
    let bytes: Uint8Array;
    if (ts === '1.2.840.10008.1.2.5') bytes = decodeRle(readFrame(ds, pixel, what), rows, cols, bitsAllocated, what);
    else {
      const need = n * (bitsAllocated / 8);
      if (pixel.length < need || pixel.dataOffset + need > buf.length) throw dataError(what, `pixel data truncated (${Math.min(pixel.length, buf.length - pixel.dataOffset)} of ${need} bytes)`);
      bytes = buf.subarray(pixel.dataOffset, pixel.dataOffset + need);
    }
    raw = new Float64Array(n);
    const bigEndian = ts === '1.2.840.10008.1.2.2';
    const mask = bitsStored >= 32 ? 0xffffffff : (1 << bitsStored) - 1;
    const signBit = 1 << (bitsStored - 1);
    for (let i = 0; i < n; i++) {
      let v: number;
      if (bitsAllocated === 8) v = bytes[i];
      else v = bigEndian ? (bytes[2 * i] << 8) | bytes[2 * i + 1] : bytes[2 * i] | (bytes[2 * i + 1] << 8);
      v &= mask;
      if (signed && v & signBit) v -= 1 << bitsStored;
      raw[i] = v;
    }
  }
  const slope = ds.floatString('x00281053') ?? 1;
  const intercept = ds.floatString('x00281052') ?? 0;
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < n; i++) {
    const v = raw[i] * slope + intercept;
    raw[i] = v;
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  const out = new Float32Array(n);
  const wc = ds.floatString('x00281050', 0);
  const ww = ds.floatString('x00281051', 0);
  if ((opts.dicomWindow ?? 'file') === 'file' && wc !== undefined && ww !== undefined && ww >= 1) {
    // DICOM PS3.3 C.11.2.1.2 linear VOI function.
    const c = wc - 0.5;
    const w = ww - 1;
    for (let i = 0; i < n; i++) {
      const x = raw[i];
      out[i] = x <= c - w / 2 ? 0 : x > c + w / 2 ? 1 : (x - c) / Math.max(w, 1e-9) + 0.5;
    }
  } else {
    const span = hi - lo || 1;
    for (let i = 0; i < n; i++) out[i] = (raw[i] - lo) / span;
  }
  if (photometric === 'MONOCHROME1') for (let i = 0; i < n; i++) out[i] = 1 - out[i];
  return { data: out, width: cols, height: rows };
}

function readFrame(ds: dicomParser.DataSet, pixel: dicomParser.Element, what: string): Uint8Array {
  try {
    if (!pixel.encapsulatedPixelData) throw new Error('pixel data is not encapsulated');
    const frags = pixel.fragments ?? [];
    if (frags.length === 0) throw new Error('no fragments');
    const bot = pixel.basicOffsetTable && pixel.basicOffsetTable.length ? pixel.basicOffsetTable : dicomParser.createJPEGBasicOffsetTable(ds, pixel);
    return dicomParser.readEncapsulatedImageFrame(ds, pixel, 0, bot) as Uint8Array;
  } catch (e) {
    throw dataError(what, `encapsulated pixel data: ${(e as Error)?.message ?? String(e)}`, e);
  }
}

/**
 * RLE Lossless (DICOM PS3.5 Annex G): one segment per byte plane, PackBits each. Every segment's range is
 * checked against the frame before any pixel is written (a crafted offset must not send the decoder
 * billions of bytes past the data), and against the pixels it must hold: PackBits turns 2 bytes into at most
 * 128, so a segment shorter than 1/64 of the plane cannot be valid (a small file declaring a huge image is
 * refused before its output is allocated).
 */
function decodeRle(frame: Uint8Array, rows: number, cols: number, bitsAllocated: number, what: string): Uint8Array {
  const n = rows * cols;
  const planes = bitsAllocated / 8;
  if (frame.length < 64) throw dataError(what, 'RLE header truncated');
  const dv = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  const nSeg = dv.getUint32(0, true);
  if (nSeg !== planes) throw new CxrError('E_UNSUPPORTED_DICOM', `${what}: RLE with ${nSeg} segments for ${bitsAllocated}-bit data`, { path: what });
  const starts: number[] = [];
  const ends: number[] = [];
  for (let s = 0; s < nSeg; s++) {
    const start = dv.getUint32(4 + 4 * s, true);
    const end = s + 1 < nSeg ? dv.getUint32(8 + 4 * s, true) : frame.length;
    if (start < 64 || start > end || end > frame.length)
      throw dataError(what, `RLE segment ${s} spans bytes ${start}..${end}, outside the ${frame.length}-byte frame (or out of order)`);
    if ((end - start) * 64 < n)
      throw dataError(what, `RLE segment ${s} has ${end - start} bytes, too few for ${cols}x${rows} pixels (PackBits expands at most 64 times)`);
    starts.push(start);
    ends.push(end);
  }
  const out = new Uint8Array(n * planes);
  for (let s = 0; s < nSeg; s++) {
    const end = ends[s];
    // Segment 0 holds the most significant bytes; output is little endian.
    const byteIndex = planes - 1 - s;
    let p = starts[s];
    let o = 0;
    while (p < end && o < n) {
      const h = frame[p++];
      if (h < 128) {
        if (p + h + 1 > end) throw dataError(what, `RLE segment ${s}: a literal run passes the end of the segment`);
        for (let k = 0; k <= h && o < n; k++) out[planes * o++ + byteIndex] = frame[p++];
      } else if (h > 128) {
        if (p >= end) throw dataError(what, `RLE segment ${s}: a repeat run passes the end of the segment`);
        const v = frame[p++];
        for (let k = 0; k < 257 - h && o < n; k++) out[planes * o++ + byteIndex] = v;
      }
    }
    if (o < n) throw dataError(what, `RLE segment ${s} ends early (${o} of ${n} pixels)`);
  }
  return out;
}

/**
 * Resamples a full image to the `size`×`size` base image of a geometry mode (area-averaging when
 * shrinking, bilinear when enlarging). Pad fills with 0 (black), as CheXzero does.
 */
export function toBase(img: GrayImage, size: number, geometry: Geometry = 'pad'): Float32Array {
  const { width: W, height: H } = img;
  let sx: number; // source pixels per output pixel
  let sy: number;
  let ox = 0; // output offset of the image content (pad) in output pixels
  let oy = 0;
  let cx0 = 0; // source offset (crop) in source pixels
  let cy0 = 0;
  let outW = size;
  let outH = size;
  if (geometry === 'stretch') {
    sx = W / size;
    sy = H / size;
  } else if (geometry === 'pad') {
    const s = Math.max(W, H) / size;
    sx = sy = s;
    outW = Math.max(1, Math.round(W / s));
    outH = Math.max(1, Math.round(H / s));
    ox = Math.floor((size - outW) / 2);
    oy = Math.floor((size - outH) / 2);
  } else {
    const s = Math.min(W, H) / size;
    sx = sy = s;
    cx0 = (W - size * s) / 2;
    cy0 = (H - size * s) / 2;
  }
  const out = new Float32Array(size * size);
  const src = img.data;
  for (let y = 0; y < outH; y++) {
    const fy0 = cy0 + y * sy;
    const fy1 = fy0 + sy;
    for (let x = 0; x < outW; x++) {
      const fx0 = cx0 + x * sx;
      const fx1 = fx0 + sx;
      let v: number;
      if (sx > 1 || sy > 1) {
        // Area average over the source footprint (box filter), weights for partial pixels.
        let acc = 0;
        let wsum = 0;
        const ya = Math.max(0, Math.floor(fy0));
        const yb = Math.min(H, Math.ceil(fy1));
        const xa = Math.max(0, Math.floor(fx0));
        const xb = Math.min(W, Math.ceil(fx1));
        for (let yy = ya; yy < yb; yy++) {
          const wy = Math.min(yy + 1, fy1) - Math.max(yy, fy0);
          if (wy <= 0) continue;
          for (let xx = xa; xx < xb; xx++) {
            const wx = Math.min(xx + 1, fx1) - Math.max(xx, fx0);
            if (wx <= 0) continue;
            acc += src[yy * W + xx] * wx * wy;
            wsum += wx * wy;
          }
        }
        v = wsum > 0 ? acc / wsum : 0;
      } else v = bilinear(src, W, H, (fx0 + fx1) / 2 - 0.5, (fy0 + fy1) / 2 - 0.5);
      out[(y + oy) * size + (x + ox)] = v;
    }
  }
  return out;
}

function bilinear(src: Float32Array, W: number, H: number, x: number, y: number): number {
  if (x < -0.5 || y < -0.5 || x > W - 0.5 || y > H - 0.5) return 0;
  const xc = x < 0 ? 0 : x > W - 1 ? W - 1 : x;
  const yc = y < 0 ? 0 : y > H - 1 ? H - 1 : y;
  const x0 = Math.floor(xc);
  const y0 = Math.floor(yc);
  const x1 = x0 + 1 < W ? x0 + 1 : x0;
  const y1 = y0 + 1 < H ? y0 + 1 : y0;
  const fx = xc - x0;
  const fy = yc - y0;
  const a = src[y0 * W + x0];
  const b = src[y0 * W + x1];
  const c = src[y1 * W + x0];
  const d = src[y1 * W + x1];
  return a + (b - a) * fx + (c - a) * fy + (a - b - c + d) * fx * fy;
}

/**
 * Decodes a file or buffer straight to the `size`×`size` base image of a geometry mode, letting libvips
 * resize during decode. DICOM is decoded in JS and resampled with {@link toBase}.
 */
export async function decodeToBase(input: string | Uint8Array, size: number, geometry: Geometry = 'pad', opts: DecodeOptions = {}): Promise<Float32Array> {
  const { buf, what } = await readInput(input);
  if (buf.length === 0) throw dataError(what, 'empty file');
  if (isDicom(buf)) return toBase(await decodeDicom(buf, { ...opts, what }), size, geometry);
  const sixteen = (pngBitDepth(buf) ?? 8) === 16;
  try {
    let img = sharp(buf, { limitInputPixels: opts.maxPixels ?? DEFAULT_MAX_PIXELS, failOn: 'error' }).removeAlpha();
    img = sixteen ? img.toColourspace('grey16') : img.grayscale();
    img = img.resize(size, size, {
      fit: geometry === 'pad' ? 'contain' : geometry === 'crop' ? 'cover' : 'fill',
      position: 'centre',
      background: { r: 0, g: 0, b: 0, alpha: 1 },
      kernel: 'lanczos3',
    });
    const out = new Float32Array(size * size);
    if (sixteen) {
      const { data, info } = await img.raw({ depth: 'ushort' }).toBuffer({ resolveWithObject: true });
      const u16 = new Uint16Array(data.buffer, data.byteOffset, data.byteLength / 2);
      for (let i = 0; i < out.length; i++) out[i] = u16[i * info.channels] / 65535;
    } else {
      const { data, info } = await img.raw().toBuffer({ resolveWithObject: true });
      for (let i = 0; i < out.length; i++) out[i] = data[i * info.channels] / 255;
    }
    return out;
  } catch (e) {
    throw dataError(what, (e as Error).message, e);
  }
}

/** The per-channel affine (scale, offset) so that normalised = v·scale + offset for v in [0, 1]. */
export function normalizeCoefficients(n: Normalize = 'clip'): { scale: number[]; offset: number[] } {
  if (n === 'none') return { scale: [1, 1, 1], offset: [0, 0, 0] };
  if (n === 'clip') return { scale: CLIP_STD.map((s) => 1 / s), offset: CLIP_MEAN.map((m, i) => -m / CLIP_STD[i]) };
  if (n === 'chexzero') {
    const s = 255 / CHEXZERO_STD;
    const o = -CHEXZERO_MEAN / CHEXZERO_STD;
    return { scale: [s, s, s], offset: [o, o, o] };
  }
  const k = n.scale ?? 1;
  const pick = (a: number[], i: number) => (a.length === 1 ? a[0] : a[i]);
  if (![1, 3].includes(n.mean.length) || ![1, 3].includes(n.std.length) || n.std.some((s) => !(s > 0))) throw new CxrError('E_CONFIG', 'custom normalisation needs 1 or 3 means and 1 or 3 positive stds');
  return { scale: [0, 1, 2].map((i) => k / pick(n.std, i)), offset: [0, 1, 2].map((i) => -pick(n.mean, i) / pick(n.std, i)) };
}

/** The augmentation parameters drawn for one sample (exposed for tests and debugging). */
export interface AugmentDraw {
  cropX: number;
  cropY: number;
  cropW: number;
  cropH: number;
  angle: number;
  tx: number;
  ty: number;
  brightness: number;
  contrast: number;
  flip: boolean;
}

/** Draws augmentation parameters for one sample from `seed`. */
export function drawAugment(a: AugmentOptions, seed: number): AugmentDraw {
  const rng = new Rng(seed);
  let cropW = 1;
  let cropH = 1;
  let cropX = 0;
  let cropY = 0;
  if (a.scale) {
    const [s0, s1] = a.scale;
    const [r0, r1] = a.ratio ?? [3 / 4, 4 / 3];
    const area = rng.uniform(s0, s1);
    const logr = rng.uniform(Math.log(r0), Math.log(r1));
    const r = Math.exp(logr);
    cropW = Math.min(1, Math.sqrt(area * r));
    cropH = Math.min(1, Math.sqrt(area / r));
    cropX = rng.uniform(0, 1 - cropW);
    cropY = rng.uniform(0, 1 - cropH);
  }
  const angle = a.rotateDeg ? (rng.uniform(-a.rotateDeg, a.rotateDeg) * Math.PI) / 180 : 0;
  const tx = a.translate ? rng.uniform(-a.translate, a.translate) : 0;
  const ty = a.translate ? rng.uniform(-a.translate, a.translate) : 0;
  const brightness = a.brightness ? rng.uniform(1 - a.brightness, 1 + a.brightness) : 1;
  const contrast = a.contrast ? rng.uniform(1 - a.contrast, 1 + a.contrast) : 1;
  const flip = a.hflip ? rng.bernoulli(0.5) : false;
  return { cropX, cropY, cropW, cropH, angle, tx, ty, brightness, contrast, flip };
}

/**
 * Resamples `base` (S×S) through the crop/rotation/translation/flip of `d` into `dst` (S×S), bilinear,
 * zero outside. `k` scales values on the way (255 to write bytes from [0, 1] floats); a
 * Uint8ClampedArray destination rounds and clamps.
 */
function warpInto(base: Float32Array | Uint8Array, S: number, d: AugmentDraw, dst: Float32Array | Uint8ClampedArray, k: number): void {
  // Output pixel → crop box → rotation about the image centre → translation → source pixel
  // coordinates; the map is affine, so coordinates advance by constant steps along a row.
  const cos = Math.cos(d.angle);
  const sin = Math.sin(d.angle);
  const fu = d.flip ? -1 : 1;
  const du = (fu * d.cropW) / S; // u step per output pixel
  const dxRow = cos * du * S;
  const dyRow = sin * du * S;
  for (let y = 0; y < S; y++) {
    const v = d.cropY + ((y + 0.5) / S) * d.cropH - 0.5;
    const u0 = fu * (d.cropX + (0.5 / S) * d.cropW - 0.5);
    let sx = (cos * u0 - sin * v + 0.5 - d.tx) * S - 0.5;
    let sy = (sin * u0 + cos * v + 0.5 - d.ty) * S - 0.5;
    const row = y * S;
    for (let x = 0; x < S; x++, sx += dxRow, sy += dyRow) {
      if (sx < -0.5 || sy < -0.5 || sx > S - 0.5 || sy > S - 0.5) {
        dst[row + x] = 0;
        continue;
      }
      const xc = sx < 0 ? 0 : sx > S - 1 ? S - 1 : sx;
      const yc = sy < 0 ? 0 : sy > S - 1 ? S - 1 : sy;
      const x0 = xc | 0;
      const y0 = yc | 0;
      const x1 = x0 + 1 < S ? x0 + 1 : x0;
      const y1 = y0 + 1 < S ? y0 + 1 : y0;
      const fx = xc - x0;
      const fy = yc - y0;
      const a = base[y0 * S + x0];
      const b = base[y0 * S + x1];
      const c = base[y1 * S + x0];
      const e = base[y1 * S + x1];
      dst[row + x] = k * (a + (b - a) * fx + (c - a) * fy + (a - b - c + e) * fx * fy);
    }
  }
}

function isIdentity(d: AugmentDraw): boolean {
  return d.cropW === 1 && d.cropH === 1 && d.angle === 0 && d.tx === 0 && d.ty === 0 && !d.flip;
}

/**
 * Turns a `size`×`size` base image into the normalised CHW float32 tensor (3 identical channels),
 * applying augmentations drawn from `seed` when `opts.augment` is set. Writes into `out` at `offset`
 * (allocates when omitted) and returns it.
 */
export function finishImage(base: Float32Array, opts: PreprocessOptions, seed = 0, out?: Float32Array, offset = 0): Float32Array {
  const S = opts.size;
  if (base.length !== S * S) throw new CxrError('E_SHAPE', `base image has ${base.length} pixels, expected ${S}x${S}`);
  const plane = S * S;
  const dst = out ?? new Float32Array(3 * plane);
  if (dst.length < offset + 3 * plane) throw new CxrError('E_SHAPE', `output buffer too small for a 3x${S}x${S} image at offset ${offset}`);
  const { scale, offset: off } = normalizeCoefficients(opts.normalize ?? 'clip');
  const a = opts.augment;
  let src = base;
  let bright = 1;
  let contr = 1;
  if (a) {
    const d = drawAugment(a, seed);
    bright = d.brightness;
    contr = d.contrast;
    if (!isIdentity(d)) {
      src = new Float32Array(plane);
      warpInto(base, S, d, src, 1);
    }
  }
  let mean = 0;
  if (contr !== 1) {
    for (let i = 0; i < plane; i++) mean += src[i];
    mean = (mean / plane) * bright;
  }
  const s0 = scale[0];
  const s1 = scale[1];
  const s2 = scale[2];
  const o0 = off[0];
  const o1 = off[1];
  const o2 = off[2];
  for (let i = 0; i < plane; i++) {
    let v = src[i] * bright;
    if (contr !== 1) v = (v - mean) * contr + mean;
    v = v < 0 ? 0 : v > 1 ? 1 : v;
    dst[offset + i] = v * s0 + o0;
    dst[offset + plane + i] = v * s1 + o1;
    dst[offset + 2 * plane + i] = v * s2 + o2;
  }
  return dst;
}

/**
 * The affine map of a draw's geometric augmentation, as {@link warpInto} applies it: output pixel (x, y)
 * (integer indices) samples the base image at sx = a0 + a1·x + a2·y, sy = a3 + a4·x + a5·y. The identity
 * draw gives exactly [0, 1, 0, 0, 0, 1].
 */
export function warpAffine(d: AugmentDraw, S: number): number[] {
  if (isIdentity(d)) return [0, 1, 0, 0, 0, 1];
  const cos = Math.cos(d.angle);
  const sin = Math.sin(d.angle);
  const fu = d.flip ? -1 : 1;
  const du = (fu * d.cropW) / S;
  const u0 = fu * (d.cropX + (0.5 / S) * d.cropW - 0.5);
  const v0 = d.cropY + (0.5 / S) * d.cropH - 0.5;
  return [(cos * u0 - sin * v0 + 0.5 - d.tx) * S - 0.5, cos * du * S, -sin * d.cropH, (sin * u0 + cos * v0 + 0.5 - d.ty) * S - 0.5, sin * du * S, cos * d.cropH];
}

/**
 * A batch of grayscale bytes that the native side turns into model input on the device (`trainStep`,
 * `encodeImages`): 1 byte a pixel crosses instead of 12, and the host does no per-pixel float work.
 * Image k is sampled through `warp` (its geometric augmentation; none when absent), giving w in [0, 1],
 * then `v = clamp(gain[k]·w + bias[k] + meanGain[k]·mean(w), 0, 1)`, normalised by `normalize` and
 * repeated on 3 channels: the same arithmetic as {@link finishImage} (brightness b and contrast c are
 * gain b·c, bias 0, meanGain b·(1 − c)), so nothing is rounded after resampling.
 */
export interface PixelBatch {
  /** N·S·S bytes, row-major, images contiguous (the layout of packed shards): the images before any warp. */
  pixels: Uint8Array;
  /** Normalisation, as {@link PreprocessOptions.normalize}. */
  normalize?: Normalize;
  /** Per-image intensity affine (brightness and contrast augmentation); both or neither. */
  gain?: Float32Array;
  bias?: Float32Array;
  /** Per-image weight of the image's own mean (after the warp) in the intensity affine: contrast. */
  meanGain?: Float32Array;
  /**
   * Per-image geometric warp, N×6 (see {@link warpAffine}): sx = a0 + a1·x + a2·y, sy = a3 + a4·x + a5·y;
   * bilinear, 0 outside [-0.5, S-0.5]², coordinates clamped to [0, S-1] inside ({@link warpInto}'s rules).
   */
  warp?: Float64Array;
}

/** What the model's image calls take: normalised N×3×S×S floats, or grayscale bytes. */
export type ImageBatch = Float32Array | PixelBatch;

export function isPixelBatch(x: ImageBatch): x is PixelBatch {
  return !(x instanceof Float32Array) && typeof x === 'object' && x !== null && (x as PixelBatch).pixels instanceof Uint8Array;
}

/** What {@link finishPixels} returns for one image: its intensity affine and its warp (null: none). */
export interface PixelAugment {
  gain: number;
  meanGain: number;
  warp: number[] | null;
}

/**
 * The uint8 counterpart of {@link finishImage}: writes the S×S bytes of one image, unwarped, into `out` at
 * `offset`, and returns the augmentation the native side applies to them (warp, then intensity affine,
 * then normalisation). `base` holds bytes (0..255) or floats in [0, 1] (rounded to bytes: exact for
 * 8-bit sources, whose floats are byte / 255).
 */
export function finishPixels(base: Float32Array | Uint8Array, opts: PreprocessOptions, seed: number, out: Uint8Array, offset: number): PixelAugment {
  const S = opts.size;
  const plane = S * S;
  if (base.length !== plane) throw new CxrError('E_SHAPE', `base image has ${base.length} pixels, expected ${S}x${S}`);
  if (out.length < offset + plane) throw new CxrError('E_SHAPE', `output buffer too small for a ${S}x${S} image at offset ${offset}`);
  if (base instanceof Uint8Array) out.set(base, offset);
  else {
    const dst = new Uint8ClampedArray(out.buffer, out.byteOffset + offset, plane);
    for (let i = 0; i < plane; i++) dst[i] = base[i] * 255;
  }
  const a = opts.augment;
  if (!a) return { gain: 1, meanGain: 0, warp: null };
  const d = drawAugment(a, seed);
  // (w·b − m·b)·c + m·b with m = mean(w): gain b·c, mean weight b·(1 − c).
  return { gain: d.brightness * d.contrast, meanGain: d.brightness * (1 - d.contrast), warp: isIdentity(d) ? null : warpAffine(d, S) };
}

/** Doubles per image of a packed {@link PixelAugment} record: gain, meanGain, has warp, a0..a5. */
export const PIXEL_AUGMENT_STRIDE = 9;

/** Packs `r` into `rec` at image `slot` (the loader's per-batch records, moved between threads). */
export function packPixelAugment(rec: Float64Array, slot: number, r: PixelAugment): void {
  const o = slot * PIXEL_AUGMENT_STRIDE;
  rec[o] = r.gain;
  rec[o + 1] = r.meanGain;
  rec[o + 2] = r.warp ? 1 : 0;
  const w = r.warp ?? [0, 1, 0, 0, 0, 1];
  for (let j = 0; j < 6; j++) rec[o + 3 + j] = w[j];
}

/**
 * The {@link PixelBatch} of `n` images' bytes and their packed augment records: only the parts some image
 * needs (no warp when none is warped, no intensity affine when every gain is 1 and mean weight 0).
 */
export function pixelBatchFromRecords(pixels: Uint8Array, rec: Float64Array | undefined, n: number, normalize?: Normalize): PixelBatch {
  const pb: PixelBatch = { pixels, normalize };
  if (!rec) return pb;
  const at = (k: number, j: number) => rec[k * PIXEL_AUGMENT_STRIDE + j];
  let gains = false;
  let means = false;
  let warps = false;
  for (let k = 0; k < n; k++) {
    gains ||= at(k, 0) !== 1;
    means ||= at(k, 1) !== 0;
    warps ||= at(k, 2) !== 0;
  }
  if (gains || means) {
    pb.gain = Float32Array.from({ length: n }, (_, k) => at(k, 0));
    pb.bias = new Float32Array(n);
  }
  if (means) pb.meanGain = Float32Array.from({ length: n }, (_, k) => at(k, 1));
  if (warps) pb.warp = Float64Array.from({ length: 6 * n }, (_, i) => at(Math.floor(i / 6), 3 + (i % 6)));
  return pb;
}

/**
 * One batch of the images of several (micro-)batches, in order; all of one kind. Pixel batches that lack
 * a part another has get its neutral value (gain 1, bias 0, mean weight 0, identity warp).
 */
export function concatImageBatches(parts: ImageBatch[]): ImageBatch {
  if (parts.length === 1) return parts[0];
  if (parts.every((p): p is Float32Array => p instanceof Float32Array)) {
    const out = new Float32Array(parts.reduce((a, p) => a + p.length, 0));
    let off = 0;
    for (const p of parts) {
      out.set(p, off);
      off += p.length;
    }
    return out;
  }
  if (!parts.every(isPixelBatch)) throw new CxrError('E_DTYPE', 'cannot join float and pixel batches');
  const pbs = parts as PixelBatch[];
  const pixels = new Uint8Array(pbs.reduce((a, p) => a + p.pixels.length, 0));
  let off = 0;
  for (const p of pbs) {
    pixels.set(p.pixels, off);
    off += p.pixels.length;
  }
  const out: PixelBatch = { pixels, normalize: pbs[0].normalize };
  // Bytes per image, from a part that has a per-image array (the parts share one image size).
  const perImage = (p: PixelBatch) => p.gain?.length ?? p.bias?.length ?? p.meanGain?.length ?? (p.warp ? p.warp.length / 6 : undefined);
  const withCount = pbs.find((p) => perImage(p) !== undefined);
  const plane = withCount ? withCount.pixels.length / perImage(withCount)! : 0;
  const join = <T extends Float32Array | Float64Array>(key: 'gain' | 'bias' | 'meanGain' | 'warp', make: (n: number) => T, fill: number[]): T | undefined => {
    if (!pbs.some((p) => p[key])) return undefined;
    const res = make((pixels.length / plane) * fill.length);
    let k = 0;
    for (const p of pbs) {
      const n = p.pixels.length / plane;
      const src = p[key];
      if (src) {
        if (src.length !== n * fill.length) throw new CxrError('E_SHAPE', `pixel batch: ${key} has ${src.length} values for ${n} images`);
        res.set(src, k);
      } else for (let i = 0; i < n; i++) res.set(fill, k + i * fill.length);
      k += n * fill.length;
    }
    return res;
  };
  const gain = join('gain', (n) => new Float32Array(n), [1]);
  const bias = join('bias', (n) => new Float32Array(n), [0]);
  const meanGain = join('meanGain', (n) => new Float32Array(n), [0]);
  const warp = join('warp', (n) => new Float64Array(n), [0, 1, 0, 0, 0, 1]);
  if (gain) out.gain = gain;
  if (bias) out.bias = bias;
  if (meanGain) out.meanGain = meanGain;
  if (warp) out.warp = warp;
  return out;
}

/**
 * Normalised N×3×S×S floats of a {@link PixelBatch}, on the host (for consumers without a native path),
 * with the arithmetic of the native conversion (warp by {@link warpInto}'s rules, then the intensity affine).
 */
export function pixelBatchToFloat(b: PixelBatch, size: number): Float32Array {
  const plane = size * size;
  const n = b.pixels.length / plane;
  if (!Number.isInteger(n) || n < 1) throw new CxrError('E_SHAPE', `a pixel batch of ${b.pixels.length} bytes is not N×${size}×${size}`);
  const { scale, offset } = normalizeCoefficients(b.normalize ?? 'clip');
  const out = new Float32Array(3 * plane * n);
  const w = new Float32Array(plane);
  for (let k = 0; k < n; k++) {
    const bytes = b.pixels.subarray(k * plane, (k + 1) * plane);
    if (b.warp) {
      const src = Float32Array.from(bytes, (v) => v / 255);
      const a = b.warp.subarray(6 * k, 6 * k + 6);
      for (let y = 0; y < size; y++) for (let x = 0; x < size; x++) w[y * size + x] = bilinear(src, size, size, a[0] + a[1] * x + a[2] * y, a[3] + a[4] * x + a[5] * y);
    } else for (let i = 0; i < plane; i++) w[i] = bytes[i] / 255;
    const g = b.gain ? b.gain[k] : 1;
    let c = b.bias ? b.bias[k] : 0;
    if (b.meanGain && b.meanGain[k] !== 0) {
      let sum = 0;
      for (let i = 0; i < plane; i++) sum += w[i];
      c += b.meanGain[k] * (sum / plane);
    }
    for (let i = 0; i < plane; i++) {
      let v = g * w[i] + c;
      v = v < 0 ? 0 : v > 1 ? 1 : v;
      for (let ch = 0; ch < 3; ch++) out[(3 * k + ch) * plane + i] = v * scale[ch] + offset[ch];
    }
  }
  return out;
}

/**
 * Loads one image file or buffer to a normalised CHW float32 tensor: decode + geometry (libvips) then
 * seeded augmentation and normalisation. `seed` only matters with augmentations.
 */
export async function loadImage(input: string | Uint8Array, opts: PreprocessOptions, seed = 0, decode: DecodeOptions = {}): Promise<Float32Array> {
  const base = await decodeToBase(input, opts.size, opts.geometry ?? 'pad', decode);
  return finishImage(base, opts, seed);
}

/** Same as {@link loadImage} for an already-decoded grayscale image (any size). */
export function preprocessGray(img: GrayImage, opts: PreprocessOptions, seed = 0, out?: Float32Array, offset = 0): Float32Array {
  const base = img.width === opts.size && img.height === opts.size ? img.data : toBase(img, opts.size, opts.geometry ?? 'pad');
  return finishImage(base, opts, seed, out, offset);
}
