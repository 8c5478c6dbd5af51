/**
 * One uploaded image (PNG, JPEG or DICOM bytes) to what `serve` answers with: the model's input tensor, the
 * full size, and for DICOM a small PNG preview (browsers cannot show DICOM). Runs in a decode worker
 * ({@link DecodePool}) or in process; every failure is a CxrError (E_DATA, E_UNSUPPORTED_DICOM).
 */
import sharp from 'sharp';
import { CxrError, isCxrError } from '../errors';
import { decodeImage, loadImage, preprocessGray } from './images';
import type { DecodeOptions, PreprocessOptions } from './images';

/** What kind of image the bytes are (sniffed from the bytes by the caller). */
export type UploadKind = 'png' | 'jpeg' | 'dicom';

/** A decoded upload. */
export interface DecodedUpload {
  /** The normalised CHW input of the model. */
  x: Float32Array;
  width: number;
  height: number;
  /** DICOM only: a PNG of the decoded pixels, at most 512 px a side. */
  previewPng?: Uint8Array;
}

/** Decodes an upload; see the module comment. */
export async function decodeUpload(bytes: Uint8Array, kind: UploadKind, image: PreprocessOptions, decode: DecodeOptions = {}): Promise<DecodedUpload> {
  if (kind === 'dicom') {
    const g = await decodeImage(bytes, decode);
    const u8 = new Uint8Array(g.data.length);
    for (let i = 0; i < u8.length; i++) u8[i] = Math.max(0, Math.min(255, Math.round(g.data[i] * 255)));
    const png = await sharp(Buffer.from(u8.buffer), { raw: { width: g.width, height: g.height, channels: 1 } })
      .resize({ width: 512, height: 512, fit: 'inside', withoutEnlargement: true })
      .png()
      .toBuffer();
    return { x: preprocessGray(g, image), width: g.width, height: g.height, previewPng: new Uint8Array(png) };
  }
  let width: number;
  let height: number;
  try {
    const m = await sharp(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)).metadata();
    width = m.width ?? 0;
    height = m.height ?? 0;
  } catch (e) {
    throw new CxrError('E_DATA', `cannot decode the ${kind.toUpperCase()} image: ${(e as Error).message}`, undefined, { cause: e });
  }
  if (decode.maxPixels !== undefined && width * height > decode.maxPixels)
    throw new CxrError('E_DATA', `cannot decode the ${kind.toUpperCase()} image: ${width}x${height} exceeds the pixel limit (${decode.maxPixels} pixels)`);
  return { x: await loadImage(bytes, image, 0, decode), width, height };
}

/** A failure as it crosses a thread boundary. */
export interface DecodeFailure {
  code: string;
  message: string;
}

/** The failure of `e`, coded (an uncoded one is E_DATA: the bytes could not be decoded). */
export function toFailure(e: unknown): DecodeFailure {
  if (isCxrError(e)) return { code: e.code, message: e.message };
  return { code: 'E_DATA', message: `cannot decode the image: ${(e as Error)?.message ?? String(e)}` };
}
