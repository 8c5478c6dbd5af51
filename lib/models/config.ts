import { CxrError } from '../errors';
import type { NativeModelConfig } from '../native/binding';
import { LOGIT_SCALE_INIT, TEXT_DEFAULTS, VISION_DEFAULTS } from './defaults';

/** A model architecture: the native config plus its name and the tokenizer it was trained with. */
export interface ModelConfig extends NativeModelConfig {
  /** Registry name ("ViT-B/32", "test-vit", ...) or a user label. */
  name?: string;
  /** Tokenizer family: CLIP byte-level BPE (causal towers) or WordPiece (BERT towers). */
  tokenizer?: 'clip-bpe' | 'wordpiece';
}

const VISION_KEYS = new Set([
  'type', 'imageSize', 'patchSize', 'width', 'layers', 'heads', 'mlpRatio', 'act', 'resnetLayers', 'resnetWidth',
  'attnPoolHeads', 'batchnormTrain', 'patchBias', 'lnPre', 'layerNormEps',
]);
const TEXT_KEYS = new Set([
  'type', 'vocabSize', 'contextLength', 'width', 'layers', 'heads', 'mlpRatio', 'act', 'intermediateSize',
  'maxPosition', 'typeVocabSize', 'padId', 'pooling', 'layerNormEps', 'proj', 'projHidden',
]);
const TOP_KEYS = new Set(['name', 'embedDim', 'logitScaleInit', 'vision', 'text', 'tokenizer']);

function fail(msg: string): never {
  throw new CxrError('E_CONFIG', `model config: ${msg}`);
}
function unknownKeys(obj: Record<string, unknown>, allowed: Set<string>, where: string): void {
  for (const k of Object.keys(obj)) if (!allowed.has(k)) fail(`unknown key "${where}${k}" (allowed: ${[...allowed].join(', ')})`);
}
function posInt(v: unknown, field: string, min = 1): void {
  if (!Number.isInteger(v) || (v as number) < min) fail(`"${field}" must be an integer >= ${min}, got ${JSON.stringify(v)}`);
}
function optPosInt(o: Record<string, unknown>, k: string, where: string, min = 1): void {
  if (o[k] !== undefined) posInt(o[k], where + k, min);
}

/**
 * A copy of `c` with every field the native core reads: omitted ones take {@link VISION_DEFAULTS},
 * {@link TEXT_DEFAULTS} and {@link LOGIT_SCALE_INIT} (the core has no defaults of its own).
 */
export function completeModelConfig(c: ModelConfig): ModelConfig {
  const defined = <T extends object>(o: T): T => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
  return {
    ...c,
    logitScaleInit: c.logitScaleInit ?? LOGIT_SCALE_INIT,
    vision: { ...VISION_DEFAULTS, resnetLayers: [...VISION_DEFAULTS.resnetLayers], ...defined(c.vision) },
    text: { ...TEXT_DEFAULTS, ...defined(c.text) },
  };
}

/**
 * Validates a model configuration and returns a complete copy (see {@link completeModelConfig}). Errors are E_CONFIG and name the offending field;
 * unknown keys are rejected so that a typo never silently falls back to a default.
 */
export function validateModelConfig(input: unknown): ModelConfig {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) fail('must be an object');
  const c = JSON.parse(JSON.stringify(input)) as Record<string, unknown>;
  unknownKeys(c, TOP_KEYS, '');
  posInt(c.embedDim, 'embedDim');
  if (c.logitScaleInit !== undefined && (typeof c.logitScaleInit !== 'number' || !Number.isFinite(c.logitScaleInit)))
    fail('"logitScaleInit" must be a finite number (the log of the initial scale)');
  if (c.tokenizer !== undefined && c.tokenizer !== 'clip-bpe' && c.tokenizer !== 'wordpiece')
    fail(`"tokenizer" must be "clip-bpe" or "wordpiece", got ${JSON.stringify(c.tokenizer)}`);
  const v = c.vision as Record<string, unknown>;
  if (typeof v !== 'object' || v === null) fail('"vision" must be an object');
  unknownKeys(v, VISION_KEYS, 'vision.');
  posInt(v.imageSize, 'vision.imageSize');
  if (v.act !== undefined && v.act !== 'quick_gelu' && v.act !== 'gelu') fail('"vision.act" must be "quick_gelu" or "gelu"');
  for (const k of ['patchBias', 'lnPre', 'batchnormTrain'])
    if (v[k] !== undefined && typeof v[k] !== 'boolean') fail(`"vision.${k}" must be a boolean`);
  if (v.layerNormEps !== undefined && !(typeof v.layerNormEps === 'number' && v.layerNormEps > 0 && v.layerNormEps < 1))
    fail('"vision.layerNormEps" must be a number in (0, 1)');
  if (v.type === 'vit') {
    for (const k of ['patchSize', 'width', 'heads']) posInt(v[k], `vision.${k}`);
    posInt(v.layers, 'vision.layers', 0);
    if ((v.imageSize as number) % (v.patchSize as number) !== 0)
      fail(`"vision.imageSize" (${v.imageSize}) must be a multiple of "vision.patchSize" (${v.patchSize})`);
    if ((v.width as number) % (v.heads as number) !== 0)
      fail(`"vision.width" (${v.width}) must be a multiple of "vision.heads" (${v.heads})`);
  } else if (v.type === 'resnet') {
    if (!Array.isArray(v.resnetLayers) || v.resnetLayers.length === 0) fail('"vision.resnetLayers" must be a non-empty array');
    (v.resnetLayers as unknown[]).forEach((n, i) => posInt(n, `vision.resnetLayers[${i}]`));
    posInt(v.resnetWidth, 'vision.resnetWidth', 2);
    if ((v.resnetWidth as number) % 2 !== 0) fail('"vision.resnetWidth" must be even');
    posInt(v.attnPoolHeads, 'vision.attnPoolHeads');
    const downs = 2 ** ((v.resnetLayers as number[]).length + 1);
    if ((v.imageSize as number) % downs !== 0) fail(`"vision.imageSize" must be a multiple of ${downs} for this ResNet`);
    const trunk = (v.resnetWidth as number) * downs * 2;
    if (trunk % (v.attnPoolHeads as number) !== 0)
      fail(`"vision.attnPoolHeads" (${v.attnPoolHeads}) must divide the trunk width ${trunk}`);
  } else {
    fail(`"vision.type" must be "vit" or "resnet", got ${JSON.stringify(v.type)}`);
  }
  const t = c.text as Record<string, unknown>;
  if (typeof t !== 'object' || t === null) fail('"text" must be an object');
  unknownKeys(t, TEXT_KEYS, 'text.');
  if (t.type !== 'causal' && t.type !== 'bert') fail(`"text.type" must be "causal" or "bert", got ${JSON.stringify(t.type)}`);
  for (const k of ['vocabSize', 'contextLength', 'width', 'heads']) posInt(t[k], `text.${k}`);
  posInt(t.layers, 'text.layers', 0);
  if ((t.width as number) % (t.heads as number) !== 0)
    fail(`"text.width" (${t.width}) must be a multiple of "text.heads" (${t.heads})`);
  if (t.act !== undefined && t.act !== 'quick_gelu' && t.act !== 'gelu') fail('"text.act" must be "quick_gelu" or "gelu"');
  optPosInt(t, 'intermediateSize', 'text.');
  optPosInt(t, 'maxPosition', 'text.');
  optPosInt(t, 'typeVocabSize', 'text.');
  optPosInt(t, 'padId', 'text.', 0);
  if (t.pooling !== undefined && t.pooling !== 'cls' && t.pooling !== 'mean') fail('"text.pooling" must be "cls" or "mean"');
  if (t.proj !== undefined && t.proj !== 'linear' && t.proj !== 'mlp') fail('"text.proj" must be "linear" or "mlp"');
  optPosInt(t, 'projHidden', 'text.', 0);
  if (t.type === 'bert' && t.maxPosition !== undefined && (t.maxPosition as number) < (t.contextLength as number))
    fail('"text.maxPosition" must be >= "text.contextLength"');
  return completeModelConfig(c as unknown as ModelConfig);
}
