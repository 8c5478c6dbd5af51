/**
 * The training job (`cxr-train train`) as library functions. `planTraining` is `--dry-run`: it resolves
 * the model, tokenizer, prompts and data of a run without allocating the model or training.
 */
import fs from 'node:fs';
import path from 'node:path';
import { CxrError } from '../errors';
import { resolveModelConfig } from '../models/registry';
import { isModelFolder } from '../models/modelFolder';
import type { ModelConfig } from '../models/config';
import { loadPromptSet } from '../text/prompts';
import { loadTokenizer } from '../text/tokenizer';
import type { TrainConfig } from '../train/config';
import { buildRunData } from '../train/data';

/** What a run would use, as {@link planTraining} resolved it. */
export interface TrainingPlan {
  model: { description: string; imageSize: number; contextLength: number; tokenizer: string };
  data: { dataset: string; root: string | null; trainSplit: string; valSplit: string; trainPairs: number; withReport: number; valImages: number };
  /** Optimizer steps per epoch (after gradient accumulation). */
  stepsPerEpoch: number;
  maxSteps: number | null;
  epochs: number | null;
  /** Steps the run takes: `maxSteps`, else `epochs × stepsPerEpoch`. */
  totalSteps: number;
  prompts: { name: string; labels: number };
}

/**
 * Checks a resolved config against its model, tokenizer, prompt set and data, reading the data but not
 * allocating the model.
 *
 * @throws CxrError E_CHECKPOINT (no model folder at `model.checkpoint`), E_CONFIG (tokenizer and model
 *   vocabulary disagree, unknown prompt set), and the data errors of the run's dataset.
 */
export async function planTraining(config: TrainConfig): Promise<TrainingPlan> {
  let description: string;
  let mcfg: ModelConfig;
  if (config.model.checkpoint) {
    const dir = fs.existsSync(path.join(config.model.checkpoint, 'model')) ? path.join(config.model.checkpoint, 'model') : config.model.checkpoint;
    if (!isModelFolder(dir)) throw new CxrError('E_CHECKPOINT', `model.checkpoint ${config.model.checkpoint}: no model folder there (model.safetensors + cxr-model.json)`);
    mcfg = JSON.parse(fs.readFileSync(path.join(dir, 'cxr-model.json'), 'utf8')).config;
    description = `${dir} (${mcfg.name ?? 'unnamed'})`;
  } else {
    mcfg = resolveModelConfig(config.model.name);
    description = config.model.name;
  }
  const tok = loadTokenizer({ kind: mcfg.tokenizer ?? (mcfg.text.type === 'bert' ? 'wordpiece' : 'clip-bpe'), path: config.model.tokenizer ?? undefined });
  tok.assertVocabSize(mcfg.text.vocabSize);
  const prompts = loadPromptSet(config.eval.promptSet);
  const data = await buildRunData(config);
  const stepsPerEpoch = Math.floor(Math.floor(data.train.samples.length / config.batchSize) / config.accumSteps);
  return {
    model: { description, imageSize: mcfg.vision.imageSize, contextLength: mcfg.text.contextLength, tokenizer: tok.kind },
    data: {
      dataset: config.data.dataset,
      root: config.data.root ?? null,
      trainSplit: config.data.trainSplit,
      valSplit: config.data.valSplit,
      trainPairs: data.train.samples.length,
      withReport: data.train.samples.filter((s) => s.report && s.report.trim()).length,
      valImages: data.val.samples.length,
    },
    stepsPerEpoch,
    maxSteps: config.maxSteps ?? null,
    epochs: config.epochs ?? null,
    totalSteps: config.maxSteps ?? (config.epochs ?? 0) * stepsPerEpoch,
    prompts: { name: prompts.name, labels: prompts.labels.length },
  };
}
