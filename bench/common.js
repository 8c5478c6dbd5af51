'use strict';
// Helpers shared by the bench/ scripts.

/** Value of `--name VALUE` on the command line (a string), or `def`. */
function arg(name, def) {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 && i + 1 < process.argv.length ? process.argv[i + 1] : def;
}

/** Median of a list of numbers (NaN for an empty list). */
function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? (s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2) : NaN;
}

/**
 * A deterministic train batch: B images of S×S px (LCG noise in [-1, 1)) and B token sequences of length
 * L (CLIP start/end tokens, varied lengths), identical for every implementation that is compared.
 */
function batchFor(S, B, L = 32) {
  const images = new Float32Array(B * 3 * S * S);
  let s = 12345;
  for (let i = 0; i < images.length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    images[i] = s / 2 ** 31 - 1;
  }
  const tokenIds = new Int32Array(B * L);
  for (let i = 0; i < B; i++) {
    tokenIds[i * L] = 49406;
    const end = (i % (L - 2)) + 1;
    for (let j = 1; j < end; j++) tokenIds[i * L + j] = 1 + ((i * 7919 + j * 104729) % 49000);
    tokenIds[i * L + end] = 49407;
  }
  return { images, tokenIds, n: B, length: L };
}

module.exports = { arg, median, batchFor };
