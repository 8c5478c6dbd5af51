/**
 * A checkpoint loaded for zero-shot inference: model + tokenizer + prompt set + classifier + image
 * preprocessing, in one object shared by `eval`, `predict` and `serve`. Native calls on one model must not
 * overlap (E_BUSY), so every model call goes through {@link ZeroShotModel.exclusive}, a FIFO queue: the
 * server's concurrent requests wait their turn instead of failing.
 */
import { CxrError } from '../errors';
import { loadPretrained } from '../checkpoints/pretrained';
import type { ClipModel } from '../models/ClipModel';
import type { TextTokenizer } from '../text/tokenizer';
import { loadPromptSet, DEFAULT_PROMPT_SET } from '../text/prompts';
import type { LabelPrompts, PromptSet } from '../text/prompts';
import type { Geometry, PreprocessOptions } from '../data/images';
import { ZeroShotClassifier } from '../eval/zeroShot';
import { hashCheckpoint, modelEncoder, resolveTemperature } from '../eval/modelEncoder';
import type { TemperatureOption } from '../eval/modelEncoder';

/** Options of {@link ZeroShotModel.load}. */
export interface ZeroShotModelOptions {
  /** Prompt set: a built-in name or a JSON/YAML file, or a resolved set. Default `chexzero`. */
  prompts?: string | PromptSet;
  /** Temperature of the pos/neg softmax: a number, or `logit-scale`. Default 1 (CheXzero protocol). */
  temperature?: TemperatureOption;
  /** "auto", "cpu" or "cuda:N". Default "auto". */
  device?: string;
  /** libtorch intra-op threads. Default: the library's default. */
  threads?: number;
  /** Tokenizer file or folder, when not beside the checkpoint. */
  tokenizer?: string;
  /** Image geometry. Default 'pad' (the training default). */
  geometry?: Geometry;
  /** Pixel normalisation. Default 'clip' (the training default). */
  normalize?: 'clip' | 'chexzero' | 'none';
  /** Images per native encode call. Default 32. */
  batchSize?: number;
  /** Called with each load warning (e.g. the pickle note). */
  onWarning?: (w: string) => void;
}

/** A checkpoint ready for zero-shot classification. Dispose it when done. */
export class ZeroShotModel {
  /** The model (owned: disposed by {@link dispose}). */
  readonly model: ClipModel;
  readonly tokenizer: TextTokenizer;
  /** The full prompt set. */
  readonly prompts: PromptSet;
  /** Classifier over every label of {@link prompts}. */
  readonly classifier: ZeroShotClassifier;
  /** SHA-256 of the checkpoint's weights file. */
  readonly checkpointHash: string;
  /** The checkpoint path as given. */
  readonly checkpoint: string;
  /** The temperature in use (1 unless `logit-scale` or a number was asked for). */
  readonly temperature: number;
  /** Preprocessing of input images (size = the model's input size). */
  readonly image: PreprocessOptions;
  /** Images per native encode call. */
  readonly batchSize: number;
  private queue: Promise<unknown> = Promise.resolve();

  private constructor(f: {
    model: ClipModel;
    tokenizer: TextTokenizer;
    prompts: PromptSet;
    classifier: ZeroShotClassifier;
    checkpointHash: string;
    checkpoint: string;
    temperature: number;
    image: PreprocessOptions;
    batchSize: number;
  }) {
    this.model = f.model;
    this.tokenizer = f.tokenizer;
    this.prompts = f.prompts;
    this.classifier = f.classifier;
    this.checkpointHash = f.checkpointHash;
    this.checkpoint = f.checkpoint;
    this.temperature = f.temperature;
    this.image = f.image;
    this.batchSize = f.batchSize;
  }

  /**
   * Loads any checkpoint `loadPretrained` reads (own folder, OpenAI, Hugging Face, open_clip) with its
   * tokenizer, and prepares the classifier.
   * @throws CxrError as loadPretrained, E_CONFIG for a bad prompt set, temperature or batch size.
   */
  static async load(checkpoint: string, opts: ZeroShotModelOptions = {}): Promise<ZeroShotModel> {
    const prompts = typeof opts.prompts === 'object' ? opts.prompts : loadPromptSet(opts.prompts ?? DEFAULT_PROMPT_SET);
    const batchSize = opts.batchSize ?? 32;
    if (!Number.isInteger(batchSize) || batchSize < 1) throw new CxrError('E_CONFIG', `batch size must be a positive integer, got ${batchSize}`);
    const checkpointHash = await hashCheckpoint(checkpoint);
    const { model, tokenizer, report } = await loadPretrained(checkpoint, {
      ...(opts.device !== undefined ? { device: opts.device } : {}),
      ...(opts.threads !== undefined ? { threads: opts.threads } : {}),
      ...(opts.tokenizer !== undefined ? { tokenizer: opts.tokenizer } : {}),
    });
    try {
      for (const w of report.warnings) opts.onWarning?.(w);
      if (!tokenizer) throw new CxrError('E_TOKENIZER', `no tokenizer for ${checkpoint}`);
      const temperature = resolveTemperature(model, opts.temperature);
      const encoder = modelEncoder(model, tokenizer, checkpointHash);
      const classifier = new ZeroShotClassifier(encoder, prompts, { temperature, imageBatchSize: batchSize });
      return new ZeroShotModel({
        model,
        tokenizer,
        prompts,
        classifier,
        checkpointHash,
        checkpoint,
        temperature,
        image: { size: model.imageSize, geometry: opts.geometry ?? 'pad', normalize: opts.normalize ?? 'clip' },
        batchSize,
      });
    } catch (e) {
      model.dispose();
      throw e;
    }
  }

  /** Label names of the full prompt set, in column order. */
  get labels(): string[] {
    return this.classifier.labels;
  }

  /**
   * A classifier over a subset of the labels (e.g. the ones a dataset has), sharing this model's encoder
   * and text-embedding cache.
   */
  classifierFor(labels: LabelPrompts[]): ZeroShotClassifier {
    return new ZeroShotClassifier(this.classifier.encoder, { name: this.prompts.name, labels }, { temperature: this.temperature, imageBatchSize: this.batchSize });
  }

  /** Runs `fn` after every earlier exclusive call has finished (FIFO), so native calls never overlap. */
  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** Releases the native model. Idempotent. */
  dispose(): void {
    this.model.dispose();
  }
}
