/**
 * uint8 pixel batches at the native boundary: the one place that checks a {@link PixelBatch} and turns
 * it into the arguments of a native image call (principle: TypeScript validates, the binding unpacks).
 */
import { CxrError } from '../errors';
import { asCxrError, loadNative } from '../native';
import type { NativePixelOptions } from '../native/binding';
import { normalizeCoefficients, type PixelBatch } from '../data/images';

function finiteArray(v: unknown, Type: Float32ArrayConstructor | Float64ArrayConstructor, length: number, key: string): void {
  if (!(v instanceof Type)) throw new CxrError('E_DTYPE', `pixel batch: ${key} must be a ${Type.name}`);
  if (v.length !== length) throw new CxrError('E_SHAPE', `pixel batch: ${key} must hold ${length} values, got ${v.length}`);
  for (let i = 0; i < v.length; i++) if (!Number.isFinite(v[i])) throw new CxrError('E_NUMERIC', `pixel batch: ${key}[${i}] is not finite`);
}

/**
 * Checks `images` as a batch of `n` (or as many as the bytes hold) S×S images and returns the native
 * arguments: the bytes, shape [N, 1, S, S] and the pixel options.
 *
 * @throws CxrError E_SHAPE (sizes), E_DTYPE (array types), E_CONFIG (gain without bias, bad normalisation),
 *   E_NUMERIC (a NaN or infinite gain, bias, mean weight or warp coefficient)
 */
export function pixelArgs(images: PixelBatch, S: number, n?: number): { data: Uint8Array; shape: number[]; pixels: NativePixelOptions } {
  const plane = S * S;
  const count = n ?? images.pixels.length / plane;
  if (!Number.isInteger(count) || count < 1 || count * plane !== images.pixels.length)
    throw new CxrError('E_SHAPE', `pixels must hold N×${S}×${S} bytes (${plane} per image); got ${images.pixels.length}` + (n !== undefined ? ` for N=${n}` : ''));
  if ((images.gain === undefined) !== (images.bias === undefined)) throw new CxrError('E_CONFIG', 'pixel batch: gain and bias come together');
  for (const key of ['gain', 'bias', 'meanGain'] as const) if (images[key] !== undefined) finiteArray(images[key], Float32Array, count, key);
  if (images.warp !== undefined) finiteArray(images.warp, Float64Array, 6 * count, 'warp');
  const { scale, offset } = normalizeCoefficients(images.normalize);
  const pixels: NativePixelOptions = { scale, offset };
  if (images.gain) Object.assign(pixels, { gain: images.gain, bias: images.bias });
  if (images.meanGain) pixels.meanGain = images.meanGain;
  if (images.warp) pixels.warp = images.warp;
  return { data: images.pixels, shape: [count, 1, S, S], pixels };
}

/**
 * The normalised N×3×S×S float32 images of a pixel batch, computed by the native conversion the model
 * calls run on their device (here on the CPU, synchronously): warp, intensity affine, normalisation.
 */
export function pixelsToImages(images: PixelBatch, S: number): Float32Array {
  const { data, shape, pixels } = pixelArgs(images, S);
  try {
    return loadNative().pixelsToImages(data, shape, pixels);
  } catch (e) {
    throw asCxrError(e);
  }
}
