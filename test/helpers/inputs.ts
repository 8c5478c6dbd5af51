/** Deterministic test inputs shared by the native and tfjs tests (no Math.random). */

/** Linear congruential generator: uniform [0, 1). */
export function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
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

/** A W×W grey PNG: a horizontal gradient with a bright blob (any image the pipeline decodes will do for an untrained model). */
export async function blobPng(W = 96): Promise<Buffer> {
  const { default: sharp } = await import('sharp');
  const px = Buffer.alloc(W * W);
  for (let y = 0; y < W; y++) for (let x = 0; x < W; x++) px[y * W + x] = Math.min(255, x * 2 + ((x - 60) ** 2 + (y - 40) ** 2 < 200 ? 120 : 0));
  return sharp(px, { raw: { width: W, height: W, channels: 1 } }).png().toBuffer();
}
