/**
 * The one adapter between a {@link ClipModel} (+ its tokenizer) and zero-shot scoring: the trainer's
 * validation, `cxr-train eval`, `predict` and `serve` all go through it, so they cannot disagree on how
 * texts are tokenised, how prompt labels meet dataset labels, or what "logit-scale temperature" means.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import { CxrError } from '../errors';
import type { ClipModel } from '../models/ClipModel';
import type { TextTokenizer } from '../text/tokenizer';
import { canonicalLabel } from '../text/prompts';
import type { LabelPrompts, PromptSet } from '../text/prompts';
import { detectCheckpoint } from '../checkpoints/detect';
import type { ZeroShotEncoder } from './zeroShot';

/**
 * A {@link ZeroShotEncoder} over a model and its tokenizer.
 *
 * @param model the CLIP model (not disposed here).
 * @param tokenizer the tokenizer its text tower was trained with.
 * @param id identity of the weights: the text-embedding cache key, so it must change whenever the weights
 *   do (a checkpoint hash, or `run@step` during training).
 */
export function modelEncoder(model: ClipModel, tokenizer: TextTokenizer, id: string): ZeroShotEncoder {
  return {
    dim: model.embedDim,
    id,
    encodeTexts: async (texts) => {
      const b = tokenizer.encodeBatch(texts, model.contextLength);
      return model.encodeTokenIds(b.ids, b.batch, b.length);
    },
    encodeImages: (images, n) => model.encodeImages(images, { n }),
  };
}

/**
 * exp(logit_scale) of a model: the multiplier of the `--temperature logit-scale` option (≈ 100 for
 * OpenAI CLIP). `E_CHECKPOINT` when the model has no logit scale.
 */
export function modelLogitScale(model: ClipModel): number {
  const t = model.getState().find((s) => s.name === 'logit_scale');
  if (!t || t.data.length < 1) throw new CxrError('E_CHECKPOINT', 'the model has no logit_scale parameter');
  const v = Math.exp(t.data[0]);
  if (!Number.isFinite(v) || v <= 0) throw new CxrError('E_NUMERIC', `exp(logit_scale) is ${v}`);
  return v;
}

/** The zero-shot temperature option: a positive number, or `logit-scale` (the model's learned scale). */
export type TemperatureOption = number | 'logit-scale';

/** Resolves a {@link TemperatureOption} for one model (undefined → 1, the CheXzero protocol). */
export function resolveTemperature(model: ClipModel, t: TemperatureOption | undefined): number {
  if (t === undefined) return 1;
  if (t === 'logit-scale') return modelLogitScale(model);
  if (typeof t !== 'number' || !Number.isFinite(t) || t <= 0) {
    throw new CxrError('E_CONFIG', `temperature must be a positive number or "logit-scale", got ${JSON.stringify(t)}`);
  }
  return t;
}

/** Parses `--temperature`: `logit-scale` or a positive number. */
export function parseTemperature(s: string | number | undefined): TemperatureOption | undefined {
  if (s === undefined || s === '') return undefined;
  if (s === 'logit-scale') return 'logit-scale';
  const v = Number(s);
  if (!Number.isFinite(v) || v <= 0) throw new CxrError('E_CONFIG', `--temperature must be "logit-scale" or a positive number, got ${JSON.stringify(s)}`);
  return v;
}

/** Prompt labels matched with a dataset's label names. */
export interface AlignedLabels {
  /** The prompt set's labels the dataset has, in prompt-set order. */
  used: LabelPrompts[];
  /** Canonical (prompt) label → the dataset's own label name. */
  datasetName: Map<string, string>;
  /** Dataset labels no prompt covers (not scored). */
  unmatched: string[];
}

/**
 * Matches a prompt set's labels with a dataset's label names through the dataset's label map
 * (ChestX-ray14 "Effusion" ↔ "Pleural Effusion"); datasets without a map (synthetic, csv, shards) compare
 * names as they are. `E_CONFIG` when no label is shared.
 */
export function alignPromptLabels(prompts: PromptSet, dataset: string, labelNames: readonly string[]): AlignedLabels {
  const canon = new Map<string, string>();
  for (const name of labelNames) {
    let cn = name;
    try {
      cn = dataset === 'synthetic' || dataset === 'shards' ? name : canonicalLabel(dataset, name);
    } catch {
      /* no label map for this dataset: names as they are */
    }
    canon.set(cn, name);
  }
  const used = prompts.labels.filter((l) => canon.has(l.label));
  if (used.length === 0) throw new CxrError('E_CONFIG', `prompt set ${prompts.name} shares no label with the dataset (${labelNames.join(', ')})`);
  const usedSet = new Set(used.map((l) => l.label));
  const unmatched = [...canon.entries()].filter(([cn]) => !usedSet.has(cn)).map(([, n]) => n);
  return { used, datasetName: canon, unmatched };
}

/**
 * SHA-256 (hex) of a checkpoint's weights file (for the project's own folders, `model.safetensors`), read
 * in streaming fashion. Identifies the weights on report cards and keys the text-embedding cache.
 */
export async function hashCheckpoint(pathOrDir: string): Promise<string> {
  const file = detectCheckpoint(pathOrDir).file;
  const h = crypto.createHash('sha256');
  try {
    for await (const chunk of fs.createReadStream(file, { highWaterMark: 4 << 20 })) h.update(chunk as Buffer);
  } catch (e) {
    throw new CxrError('E_IO', `cannot read checkpoint ${file}: ${(e as Error).message}`, { path: file }, { cause: e });
  }
  return h.digest('hex');
}
