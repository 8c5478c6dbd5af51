/**
 * Saliency maps of a loaded checkpoint's zero-shot scores, per label: which label names exist, and one
 * native call per (batch, label) through the model's queue. The score explained is the logit of the
 * label's pos/neg softmax, t·(û·v⁺ − û·v⁻), so sigmoid(score) is the probability `predict` reports.
 * Method and references: native/include/cxr/saliency.h and docs/inference.md.
 */
import { CxrError } from '../errors';
import type { ImageBatch } from '../data/images';
import { sigmoid } from '../eval/zeroShot';
import type { ZeroShotModel } from './zeroShotModel';

/**
 * The labels to explain: all of the prompt set's when `requested` is absent or empty, else the requested
 * ones in the prompt set's order. An unknown name is `E_CONFIG` listing the known ones.
 */
export function resolveSaliencyLabels(known: readonly string[], requested?: readonly string[]): string[] {
  if (!requested || requested.length === 0) return known.slice();
  const want = new Set<string>();
  for (const r of requested) {
    const name = typeof r === 'string' ? r.trim() : r;
    if (typeof name !== 'string' || !known.includes(name)) {
      throw new CxrError('E_CONFIG', `unknown label ${JSON.stringify(r)} for heatmaps; the prompt set has: ${known.join(', ')}`, { label: r });
    }
    want.add(name);
  }
  return known.filter((l) => want.has(l));
}

/** The maps of one label for a batch of images. */
export interface LabelSaliency {
  label: string;
  /** Per image: the logit explained. */
  scores: Float32Array;
  /** Per image: sigmoid(score), the zero-shot probability. */
  probabilities: Float32Array;
  /** Grad-CAM, N×S×S (≥ 0, not normalised). */
  maps: Float32Array;
  /** ∂score/∂image, N×3×S×S, when asked for. */
  inputGradient?: Float32Array;
  /** The activation Grad-CAM used. */
  layer: string;
}

/**
 * Saliency of `labels` for `n` preprocessed images (the layout `ZeroShotModel.image` produces), one native
 * call per label, queued on the model.
 * @throws CxrError E_CONFIG (unknown label), and the model's errors (E_SHAPE, E_DISPOSED, ...).
 */
export async function labelSaliency(zm: ZeroShotModel, images: ImageBatch, n: number, labels: readonly string[], opts: { inputGradient?: boolean } = {}): Promise<LabelSaliency[]> {
  const names = resolveSaliencyLabels(zm.labels, labels);
  const te = await zm.exclusive(() => zm.classifier.textEmbeddings());
  const out: LabelSaliency[] = [];
  for (const label of names) {
    const j = te.labels.indexOf(label);
    const r = await zm.exclusive(() => zm.model.saliency(images, { positive: te.positive[j], negative: te.negative[j], temperature: zm.temperature }, { n, inputGradient: opts.inputGradient ?? false }));
    const probabilities = new Float32Array(r.scores.length);
    for (let i = 0; i < r.scores.length; i++) probabilities[i] = sigmoid(r.scores[i]);
    out.push({ label, scores: r.scores, probabilities, maps: r.maps, layer: r.layer, ...(r.inputGradient ? { inputGradient: r.inputGradient } : {}) });
  }
  return out;
}
