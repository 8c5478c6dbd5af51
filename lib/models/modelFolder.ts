import fs from 'node:fs';
import path from 'node:path';
import { CxrError } from '../errors';
import { validateModelConfig, type ModelConfig } from './config';
import type { NamedTensor } from '../types';
import { writeFileAtomic } from '../util/atomic';
import { readSafetensors, toFloat32, writeSafetensors, type SafetensorsInput } from '../util/safetensors';
import { ensureOutDir } from '../util/paths';

/**
 * E_CHECKPOINT naming the first tensor that holds a NaN or ±Inf (with the count and first index).
 * One pass over the floats: x - x is 0 for finite x and NaN otherwise.
 */
export function assertFiniteTensors(tensors: readonly NamedTensor[]): void {
  for (const t of tensors) {
    const d = t.data;
    let bad = -1;
    for (let i = 0; i < d.length; i++) {
      if (d[i] - d[i] !== 0) {
        bad = i;
        break;
      }
    }
    if (bad < 0) continue;
    let count = 0;
    for (let i = bad; i < d.length; i++) if (!Number.isFinite(d[i])) count++;
    throw new CxrError('E_CHECKPOINT', `tensor "${t.name}" holds ${count} non-finite value(s) (first: ${d[bad]} at index ${bad}); the weights are damaged`, {
      tensor: t.name,
      count,
      index: bad,
    });
  }
}

/** File names of the project's own model format: a folder with weights and a JSON description. */
export const MODEL_WEIGHTS_FILE = 'model.safetensors';
export const MODEL_META_FILE = 'cxr-model.json';
export const MODEL_FORMAT = 'cxr-train-model';
export const MODEL_FORMAT_VERSION = 1;

/** The JSON beside the weights: the architecture, the tokenizer it expects and where the weights came from. */
export interface ModelMeta {
  format: typeof MODEL_FORMAT;
  version: number;
  config: ModelConfig;
  /** Tokenizer reference: kind plus an optional file (relative to the folder) or a note. */
  tokenizer: { kind: 'clip-bpe' | 'wordpiece'; file?: string };
  /** Free-form provenance: source checkpoint, training run, step, hashes. */
  provenance: Record<string, unknown>;
  createdAt: string;
}

/**
 * Writes weights (float32, OpenAI key names) and metadata into `dir`. Each file is written atomically;
 * the JSON goes last, so a folder with a JSON always has complete weights.
 */
export function writeModelFolder(dir: string, config: ModelConfig, state: NamedTensor[], provenance: Record<string, unknown> = {}): void {
  ensureOutDir(dir, 'model folder', { create: true });
  const tensors: Record<string, SafetensorsInput> = {};
  for (const t of state) tensors[t.name] = { dtype: 'F32', shape: t.shape, data: t.data };
  writeSafetensors(path.join(dir, MODEL_WEIGHTS_FILE), tensors, { format: MODEL_FORMAT });
  const meta: ModelMeta = {
    format: MODEL_FORMAT,
    version: MODEL_FORMAT_VERSION,
    config,
    tokenizer: { kind: config.tokenizer ?? (config.text.type === 'bert' ? 'wordpiece' : 'clip-bpe') },
    provenance,
    createdAt: new Date().toISOString(),
  };
  writeFileAtomic(path.join(dir, MODEL_META_FILE), JSON.stringify(meta, null, 2) + '\n');
}

/** True when `dir` holds a model in the project's own format. */
export function isModelFolder(dir: string): boolean {
  return fs.existsSync(path.join(dir, MODEL_META_FILE)) && fs.existsSync(path.join(dir, MODEL_WEIGHTS_FILE));
}

/** Reads the metadata and the weights (upcast to float32) of a model folder. E_IO / E_CHECKPOINT on problems. */
export function readModelFolder(dir: string): { meta: ModelMeta; state: NamedTensor[] } {
  const metaPath = path.join(dir, MODEL_META_FILE);
  let raw: string;
  try {
    raw = fs.readFileSync(metaPath, 'utf8');
  } catch (e) {
    throw new CxrError('E_IO', `cannot read ${metaPath}: ${(e as Error).message}`);
  }
  let meta: ModelMeta;
  try {
    meta = JSON.parse(raw) as ModelMeta;
  } catch (e) {
    throw new CxrError('E_CHECKPOINT', `${metaPath} is not valid JSON: ${(e as Error).message}`);
  }
  if (meta.format !== MODEL_FORMAT) throw new CxrError('E_CHECKPOINT', `${metaPath}: format is not "${MODEL_FORMAT}"`);
  if (!(meta.version >= 1 && meta.version <= MODEL_FORMAT_VERSION))
    throw new CxrError('E_CHECKPOINT', `${metaPath}: unsupported format version ${meta.version} (this build reads ${MODEL_FORMAT_VERSION})`);
  meta.config = validateModelConfig(meta.config);
  const file = readSafetensors(path.join(dir, MODEL_WEIGHTS_FILE));
  const state: NamedTensor[] = [];
  for (const [name, entry] of file.tensors) state.push({ name, shape: entry.shape, data: toFloat32(entry) });
  return { meta, state };
}
