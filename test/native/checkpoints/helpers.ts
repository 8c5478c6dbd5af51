import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import type { ClipModel } from '../../../lib/models/ClipModel';
import type { StateTensor } from '../../../lib/checkpoints/layouts';
import { mulberry32 } from '../../../lib/util/rng';
import { writeSafetensors, type SafetensorsInput } from '../../../lib/util/safetensors';

export const FIXTURES = path.resolve(__dirname, '../../fixtures/checkpoints');
/** The tiny OpenAI-layout CLIP with reference outputs (copied from the shared fixtures; see its README). */
export const PARITY = path.resolve(__dirname, '../../fixtures/openai-clip-tiny-vit');

export function tmpDir(tag: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `cxr-ckpt-${tag}-`));
}

/** Deterministic uniform [-1, 1) numbers (the library's mulberry32). */
export function rng(seed: number): () => number {
  const u = mulberry32(seed);
  return () => u() * 2 - 1;
}

/** Adds noise to every weight (so zero-initialised biases and unit LayerNorms carry information too). */
export function perturb(model: ClipModel, seed = 1, scale = 0.05): void {
  const r = rng(seed);
  const state = model.getState().map((t) => {
    const d = new Float32Array(t.data);
    const s = t.name === 'logit_scale' ? 0.1 : scale;
    for (let i = 0; i < d.length; i++) d[i] += s * r();
    return { ...t, data: d };
  });
  model.loadState(state, true);
}

export function randomImages(n: number, size: number, seed = 3): Float32Array {
  const r = rng(seed);
  return Float32Array.from({ length: n * 3 * size * size }, () => r());
}

export function randomIds(n: number, length: number, vocab: number, seed = 5): Int32Array {
  const r = rng(seed);
  const ids = new Int32Array(n * length);
  for (let i = 0; i < n; i++) {
    const len = 2 + (i % (length - 2));
    for (let j = 0; j < len; j++) ids[i * length + j] = 1 + Math.floor(((r() + 1) / 2) * (vocab - 2));
    ids[i * length + len - 1] = vocab - 1; // the end token has the highest id (causal pooling)
  }
  return ids;
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

export function writeState(file: string, tensors: StateTensor[], dtype: 'F32' | 'F16' = 'F32'): void {
  const out: Record<string, SafetensorsInput> = {};
  for (const t of tensors) out[t.name] = { dtype: 'F32', shape: t.shape, data: t.data };
  if (dtype !== 'F32') throw new Error('only F32 here');
  writeSafetensors(file, out);
}

/** A WordPiece vocab.txt with exactly n entries. */
export function writeVocab(file: string, n: number): void {
  const words = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]', 'no', 'pleural', 'effusion', 'heart', 'size', 'normal', '.', ','];
  for (let i = 0; words.length < n; i++) words.push(i % 2 ? `##w${i}` : `w${i}`);
  fs.writeFileSync(file, words.slice(0, n).join('\n') + '\n');
}
