import { CxrError } from '../errors';
import { asCxrError, loadNative, setThreads } from '../native';
import type { NativeModel, NativeOptimizerConfig, NativePixelOptions, NativeSaliencyResult } from '../native/binding';
import { isPixelBatch, type ImageBatch } from '../data/images';
import { pixelArgs } from './pixels';
import type { DistOptions, NamedTensor, ResolvedLoss, StepResult } from '../types';
import { assertFiniteTensors, readModelFolder, writeModelFolder } from './modelFolder';
import type { ModelConfig } from './config';
import { resolveModelConfig } from './registry';
import { LOSS_DEFAULTS, OPTIMIZER_DEFAULTS } from './defaults';

/** Options of `createModel`. */
export interface ModelOptions {
  /** "auto" (CUDA when available, else CPU), "cpu", or "cuda:N". Default "auto". */
  device?: string;
  /** "fp32" (default) or "bf16" autocast (CUDA only). Master weights are always float32. */
  precision?: 'fp32' | 'bf16';
  /** Seed of the weight initialisation: the same seed gives the same weights on any device. Default 0. */
  seed?: number;
  /** libtorch intra-op threads for the process (default: physical cores, or CXR_THREADS). */
  threads?: number;
}

/** Loss of a train step: the CLIP loss, or the relaxed loss of METHOD.md §2. */
export interface LossOptions {
  kind: 'clip' | 'relaxed';
  /**
   * Positive-pair similarity threshold α in (0, 1]; 1 is plain CLIP. Default 1. Or `{ quantile: q }`:
   * α is the running q-quantile of the positive similarities (an EMA with momentum `momentum` of each
   * batch's q-quantile, taken over the batch itself on the first step); q = 1 is plain CLIP.
   */
  alpha?: number | { quantile: number; momentum?: number };
  /** "clamp-diag" (default), "clamp-numerator" or "margin". */
  variant?: 'clamp-diag' | 'clamp-numerator' | 'margin';
  /** Margin variant: a positive stops being pulled once s_ii exceeds its row's (column's) largest negative by m (> 0; Infinity = CLIP). */
  margin?: number;
  /** The running α of `alpha: {quantile}` from the previous step (trainer state; null or absent: none yet). */
  alphaRunning?: number | null;
  /** Label smoothing of the cross-entropies. Default 0. */
  labelSmoothing?: number;
}

/** A batch as it crosses into native code: images N×3×S×S float32 and token ids N×L int32. */
export interface TrainBatch {
  /** Normalised N×3×S×S floats, or N×S×S grayscale bytes normalised on the device ({@link PixelBatch}). */
  images: ImageBatch;
  tokenIds: Int32Array;
  /** Number of pairs N. */
  n: number;
  /** Token sequence length L. */
  length: number;
}

export interface StepOptions {
  /** Learning rate of this step (the schedule lives in TypeScript). */
  lr: number;
  /** Clip the global gradient norm to this value; 0 or absent: no clipping (the norm is still reported). */
  clipGradNorm?: number;
  loss?: LossOptions;
  /**
   * Gradient accumulation with feature caching (open_clip style): the batch is processed in micro-batches
   * of this size; their embeddings are computed once without gradient, then each micro-batch is recomputed
   * with gradient against the full set. The loss and gradient are those of the whole batch, while
   * activations are held for one micro-batch at a time. 0 or absent: one pass.
   */
  microBatch?: number;
}


export interface OptimizerOptions {
  kind: 'adamw' | 'sgd';
  lr?: number;
  /** Decoupled weight decay (AdamW) or L2 (SGD); never applied to biases, norms, embeddings, logit scale. */
  weightDecay?: number;
  betas?: [number, number];
  eps?: number;
  momentum?: number;
  nesterov?: boolean;
}

/** Resolves loss options with {@link LOSS_DEFAULTS} and validates them (E_CONFIG). */
export function resolveLoss(l: LossOptions | undefined): ResolvedLoss {
  const kind = l?.kind ?? LOSS_DEFAULTS.kind;
  if (kind !== 'clip' && kind !== 'relaxed') throw new CxrError('E_CONFIG', `loss.kind must be "clip" or "relaxed", got "${kind}"`);
  const a = l?.alpha ?? LOSS_DEFAULTS.alpha;
  let alpha = 1;
  let alphaQuantile = 0;
  let alphaMomentum: number = LOSS_DEFAULTS.alphaMomentum;
  if (typeof a === 'number') {
    if (!(a > 0 && a <= 1)) throw new CxrError('E_CONFIG', `loss.alpha must be in (0, 1], got ${a}`);
    alpha = a;
  } else if (typeof a === 'object' && a !== null && !Array.isArray(a)) {
    const extra = Object.keys(a).filter((k) => k !== 'quantile' && k !== 'momentum');
    if (extra.length) throw new CxrError('E_CONFIG', `loss.alpha: unknown key(s) ${extra.join(', ')} (expected quantile, momentum)`);
    if (typeof a.quantile !== 'number' || !(a.quantile > 0 && a.quantile <= 1))
      throw new CxrError('E_CONFIG', `loss.alpha.quantile must be in (0, 1], got ${JSON.stringify(a.quantile)}`);
    alphaQuantile = a.quantile;
    alphaMomentum = a.momentum ?? alphaMomentum;
    if (typeof alphaMomentum !== 'number' || !(alphaMomentum >= 0 && alphaMomentum <= 1))
      throw new CxrError('E_CONFIG', `loss.alpha.momentum must be in [0, 1] (1: α held at the running value), got ${JSON.stringify(a.momentum)}`);
  } else {
    throw new CxrError('E_CONFIG', `loss.alpha must be a number in (0, 1] or { quantile: q }, got ${JSON.stringify(a)}`);
  }
  const variant = l?.variant ?? LOSS_DEFAULTS.variant;
  if (variant !== 'clamp-diag' && variant !== 'clamp-numerator' && variant !== 'margin')
    throw new CxrError('E_CONFIG', `loss.variant must be "clamp-diag", "clamp-numerator" or "margin", got "${variant}"`);
  const margin = l?.margin ?? LOSS_DEFAULTS.margin;
  if (typeof margin !== 'number' || !(margin > 0)) throw new CxrError('E_CONFIG', `loss.margin must be a number > 0 (Infinity: plain CLIP), got ${margin}`);
  if (variant === 'margin' && alphaQuantile > 0) throw new CxrError('E_CONFIG', 'loss.alpha: { quantile } is a threshold of the clamp variants; the margin variant takes loss.margin');
  const labelSmoothing = l?.labelSmoothing ?? LOSS_DEFAULTS.labelSmoothing;
  if (!(labelSmoothing >= 0 && labelSmoothing < 1)) throw new CxrError('E_CONFIG', 'loss.labelSmoothing must be in [0, 1)');
  const run = l?.alphaRunning ?? null;
  if (run !== null && !(Number.isFinite(run) && run <= 1)) throw new CxrError('E_CONFIG', `loss.alphaRunning must be null or a finite number <= 1, got ${run}`);
  const clip = kind === 'clip';
  return {
    kind,
    alpha: clip ? 1 : alpha,
    variant: clip ? 'clamp-diag' : variant,
    labelSmoothing,
    alphaQuantile: clip ? 0 : alphaQuantile,
    alphaMomentum,
    alphaRunning: clip || alphaQuantile === 0 ? null : run,
    margin,
  };
}

/**
 * A CLIP model (image tower + text tower + logit scale) living in native memory. One owner: call
 * `dispose()` when done (a finalizer also releases it). Calls on one model must not overlap (E_BUSY).
 */
export class ClipModel {
  readonly config: ModelConfig;
  #handle: NativeModel | null;

  private constructor(config: ModelConfig, handle: NativeModel) {
    this.config = config;
    this.#handle = handle;
  }

  /** Builds a model from a registry name ("ViT-B/32", "test-vit", ...) or a config, with fresh weights. */
  static create(nameOrConfig: string | ModelConfig, options: ModelOptions = {}): ClipModel {
    const config = resolveModelConfig(nameOrConfig);
    const addon = loadNative();
    if (options.threads !== undefined) setThreads(options.threads);
    const device = options.device ?? 'auto';
    if (!/^(auto|cpu|cuda(:\d+)?)$/.test(device))
      throw new CxrError('E_CONFIG', `device must be "auto", "cpu" or "cuda:N", got "${device}"`);
    const precision = options.precision ?? 'fp32';
    if (precision !== 'fp32' && precision !== 'bf16')
      throw new CxrError('E_CONFIG', `precision must be "fp32" or "bf16", got "${precision}"`);
    const seed = options.seed ?? 0;
    if (!Number.isInteger(seed) || seed < 0) throw new CxrError('E_CONFIG', `seed must be an integer >= 0, got ${seed}`);
    try {
      return new ClipModel(config, new addon.NativeModel(config, { device, precision, seed }));
    } catch (e) {
      throw asCxrError(e);
    }
  }

  /** Side length S of the square input images. */
  get imageSize(): number {
    return this.config.vision.imageSize;
  }
  /** Text context length (maximum tokens per text). */
  get contextLength(): number {
    return this.config.text.contextLength;
  }
  /** Embedding dimension D. */
  get embedDim(): number {
    return this.config.embedDim;
  }
  /** Device the weights live on ("cpu", "cuda:0"). */
  get device(): string {
    return this.handle().device ?? 'disposed';
  }
  get disposed(): boolean {
    return this.#handle === null || this.#handle.disposed;
  }

  private handle(): NativeModel {
    if (!this.#handle || this.#handle.disposed) throw new CxrError('E_DISPOSED', 'this model was disposed');
    return this.#handle;
  }

  /** The arguments of a native image call: data, shape and (for bytes) the pixel normalisation. */
  private imageArgs(images: ImageBatch, n?: number): { data: Float32Array | Uint8Array; shape: number[]; pixels?: NativePixelOptions } {
    const S = this.imageSize;
    if (isPixelBatch(images)) {
      return pixelArgs(images, S, n);
    }
    if (!(images instanceof Float32Array)) throw new CxrError('E_DTYPE', 'images must be a Float32Array (N×3×S×S) or a pixel batch ({ pixels: Uint8Array })');
    const per = 3 * S * S;
    const count = n ?? images.length / per;
    if (!Number.isInteger(count) || count < 1 || count * per !== images.length) {
      throw new CxrError(
        'E_SHAPE',
        `images must hold N×3×${S}×${S} float32 values (${per} per image); got ${images.length} values` +
          (n !== undefined ? ` for N=${n}` : ''),
      );
    }
    return { data: images, shape: [count, 3, S, S] };
  }

  private idShape(ids: Int32Array, n: number, length: number): number[] {
    if (!(ids instanceof Int32Array)) throw new CxrError('E_DTYPE', 'token ids must be an Int32Array (N×L)');
    if (!Number.isInteger(n) || !Number.isInteger(length) || n < 1 || length < 1 || ids.length !== n * length)
      throw new CxrError('E_SHAPE', `token ids must hold N×L = ${n}×${length} values, got ${ids.length}`);
    return [n, length];
  }

  /**
   * Loads a model saved with `save` (the project's own format: `model.safetensors` + `cxr-model.json`).
   * The weights are loaded strictly: a missing or unexpected tensor is E_CHECKPOINT.
   */
  static load(dir: string, options: ModelOptions = {}): ClipModel {
    const { meta, state } = readModelFolder(dir);
    const model = ClipModel.create(meta.config, options);
    try {
      model.loadState(state, true);
    } catch (e) {
      model.dispose();
      throw e;
    }
    return model;
  }

  /** Saves weights (float32) and config to `dir` atomically; `provenance` is stored in the JSON. */
  save(dir: string, provenance: Record<string, unknown> = {}): void {
    writeModelFolder(dir, this.config, this.getState(), provenance);
  }

  /** Image embeddings (N×D, row-major), projected; un-normalised unless `normalize`. */
  async encodeImages(images: ImageBatch, opts: { n?: number; normalize?: boolean } = {}): Promise<Float32Array> {
    const h = this.handle();
    const a = this.imageArgs(images, opts.n);
    try {
      return await h.encodeImages(a.data, a.shape, opts.normalize ?? false, a.pixels);
    } catch (e) {
      throw asCxrError(e);
    }
  }

  /**
   * Saliency of one label's zero-shot score t·(û·v⁺ − û·v⁻) for a batch of images, in one native call:
   * Grad-CAM maps at the input resolution (ResNet: last residual stage; ViT: patch tokens entering the last
   * block), and on request the input gradient ∂score/∂image. `positive` and `negative` are the label's unit
   * text vectors (D each, e.g. from `ZeroShotClassifier.textEmbeddings()`).
   * @throws CxrError E_SHAPE (vectors or images of the wrong size), E_DTYPE, E_CONFIG (temperature), E_DISPOSED, E_BUSY.
   */
  async saliency(
    images: ImageBatch,
    direction: { positive: Float32Array; negative: Float32Array; temperature?: number },
    opts: { n?: number; inputGradient?: boolean } = {},
  ): Promise<NativeSaliencyResult> {
    const h = this.handle();
    const a = this.imageArgs(images, opts.n);
    const D = this.embedDim;
    for (const side of ['positive', 'negative'] as const) {
      const v = direction[side];
      if (!(v instanceof Float32Array)) throw new CxrError('E_DTYPE', `saliency: the ${side} text vector must be a Float32Array`);
      if (v.length !== D) throw new CxrError('E_SHAPE', `saliency: the ${side} text vector has ${v.length} values, the model's embedding has ${D}`);
    }
    const temperature = direction.temperature ?? 1;
    if (!(typeof temperature === 'number' && Number.isFinite(temperature) && temperature > 0))
      throw new CxrError('E_CONFIG', `saliency: temperature must be a positive finite number, got ${direction.temperature}`);
    try {
      return await h.saliency(a.data, a.shape, { positive: direction.positive, negative: direction.negative, temperature, inputGradient: opts.inputGradient ?? false }, a.pixels);
    } catch (e) {
      throw asCxrError(e);
    }
  }

  /** Text embeddings (N×D) of token ids (N×L, padded), projected; un-normalised unless `normalize`. */
  async encodeTokenIds(ids: Int32Array, n: number, length: number, opts: { normalize?: boolean } = {}): Promise<Float32Array> {
    const h = this.handle();
    const shape = this.idShape(ids, n, length);
    try {
      return await h.encodeTexts(ids, shape, opts.normalize ?? false);
    } catch (e) {
      throw asCxrError(e);
    }
  }

  /** Whether an optimizer was set: a step or an optimizer-state load without one sets AdamW with the defaults. */
  #optimizerSet = false;

  /**
   * Sets the optimizer (AdamW or SGD); its state restarts. The learning rate is set per step; omitted fields
   * take {@link OPTIMIZER_DEFAULTS}.
   */
  configureOptimizer(o: OptimizerOptions): void {
    const kind = o.kind;
    if (kind !== 'adamw' && kind !== 'sgd') throw new CxrError('E_CONFIG', `optimizer must be "adamw" or "sgd", got "${kind}"`);
    const cfg: NativeOptimizerConfig = {
      kind,
      lr: o.lr ?? OPTIMIZER_DEFAULTS.lr,
      weightDecay: o.weightDecay ?? OPTIMIZER_DEFAULTS.weightDecay,
      beta1: o.betas?.[0] ?? OPTIMIZER_DEFAULTS.betas[0],
      beta2: o.betas?.[1] ?? OPTIMIZER_DEFAULTS.betas[1],
      eps: o.eps ?? OPTIMIZER_DEFAULTS.eps,
      momentum: o.momentum ?? OPTIMIZER_DEFAULTS.momentum,
      nesterov: o.nesterov ?? OPTIMIZER_DEFAULTS.nesterov,
    };
    try {
      this.handle().configureOptimizer(cfg);
      this.#optimizerSet = true;
    } catch (e) {
      throw asCxrError(e);
    }
  }

  /** One whole training step in native code (forward, loss, backward, clipping, optimizer step). */
  async trainStep(batch: TrainBatch, opts: StepOptions): Promise<StepResult> {
    const h = this.handle();
    const img = this.imageArgs(batch.images, batch.n);
    const idShape = this.idShape(batch.tokenIds, batch.n, batch.length);
    if (batch.n < (this.#distributed ? 1 : 2)) throw new CxrError('E_SHAPE', `the contrastive loss needs a batch of at least 2 pairs, got ${batch.n}`);
    if (!(typeof opts.lr === 'number' && Number.isFinite(opts.lr) && opts.lr >= 0))
      throw new CxrError('E_CONFIG', `lr must be a finite number >= 0, got ${opts.lr}`);
    const loss = resolveLoss(opts.loss);
    if (!this.#optimizerSet) this.configureOptimizer({ kind: 'adamw' });
    const microBatch = opts.microBatch ?? 0;
    if (!Number.isInteger(microBatch) || microBatch < 0)
      throw new CxrError('E_CONFIG', `microBatch must be an integer >= 0, got ${microBatch}`);
    try {
      return await h.trainStep(
        img.data,
        img.shape,
        batch.tokenIds,
        idShape,
        { lr: opts.lr, clipGradNorm: opts.clipGradNorm ?? 0, loss, microBatch },
        img.pixels,
      );
    } catch (e) {
      throw asCxrError(e);
    }
  }

  /** Contrastive loss of a batch without updating the model (validation loss). */
  async evalLoss(batch: TrainBatch, loss?: LossOptions): Promise<number> {
    const h = this.handle();
    const img = this.imageArgs(batch.images, batch.n);
    const idShape = this.idShape(batch.tokenIds, batch.n, batch.length);
    try {
      return await h.evalLoss(img.data, img.shape, batch.tokenIds, idShape, resolveLoss(loss), img.pixels);
    } catch (e) {
      throw asCxrError(e);
    }
  }

  /** Parameters and buffers as float32 copies with OpenAI CLIP key names. */
  getState(): NamedTensor[] {
    return this.handle().getState();
  }

  /**
   * Loads tensors by name (shapes must match: E_CHECKPOINT). strict: missing or unexpected names throw.
   * Every weight loaded from a file passes here (own folders, pre-trained checkpoints, resumes), so this
   * is where non-finite values are refused: a NaN or Inf is E_CHECKPOINT naming the tensor.
   */
  loadState(tensors: NamedTensor[], strict = true): { missing: string[]; unexpected: string[] } {
    assertFiniteTensors(tensors);
    try {
      return this.handle().loadState(tensors, strict);
    } catch (e) {
      throw asCxrError(e);
    }
  }

  /** Optimizer state (moments, step counts) as bytes, for exact resume. */
  getOptimizerState(): Buffer {
    try {
      return this.handle().getOptimizerState();
    } catch (e) {
      throw asCxrError(e);
    }
  }

  loadOptimizerState(state: Buffer): void {
    if (!this.#optimizerSet) this.configureOptimizer({ kind: 'adamw' });
    try {
      this.handle().loadOptimizerState(state);
    } catch (e) {
      throw asCxrError(e);
    }
  }

  /**
   * Freezes towers: "image" freezes `visual.*`, "text" freezes the text tower; an empty list unfreezes all.
   * Raw name prefixes are accepted too.
   */
  freeze(parts: Array<'image' | 'text' | string>): void {
    const textPrefixes =
      this.config.text.type === 'bert' ? ['text.'] : ['token_embedding.', 'positional_embedding', 'transformer.', 'ln_final.', 'text_projection'];
    const prefixes = parts.flatMap((p) => (p === 'image' ? ['visual.'] : p === 'text' ? textPrefixes : [p]));
    this.handle().setTrainable(prefixes);
  }

  /** Number of parameters (all, or only the trainable ones). */
  parameterCount(trainableOnly = false): number {
    return this.handle().parameterCount(trainableOnly);
  }

  #distributed = false;

  /**
   * Joins a process group for data-parallel training (see lib/train/distributed for the torchrun-style
   * environment): from then on `trainStep` takes the loss over every rank's rows and sums the gradients
   * over ranks. Blocks (asynchronously) until every rank has joined. Resolves to the backend used.
   */
  async initDistributed(opts: DistOptions): Promise<string> {
    try {
      const backend = await this.handle().initDistributed(opts);
      this.#distributed = true;
      return backend;
    } catch (e) {
      throw asCxrError(e);
    }
  }

  /** Whether this model is in a process group. */
  get distributed(): boolean {
    return this.#distributed;
  }

  /** Copies rank 0's weights to every rank (identical starting points). */
  async broadcastState(): Promise<void> {
    try {
      await this.handle().broadcastState();
    } catch (e) {
      throw asCxrError(e);
    }
  }

  /** True on every rank when `flag` is true on any rank (agreeing to stop at the same step). */
  async distAny(flag: boolean): Promise<boolean> {
    try {
      return await this.handle().distAny(flag);
    } catch (e) {
      throw asCxrError(e);
    }
  }

  /** Waits for every rank. */
  async distBarrier(): Promise<void> {
    try {
      await this.handle().distBarrier();
    } catch (e) {
      throw asCxrError(e);
    }
  }

  /** Releases the native memory now. Idempotent; a running call finishes first. */
  dispose(): void {
    if (this.#handle) {
      this.#handle.dispose();
      this.#handle = null;
    }
  }
}

/** Builds a model from a registry name or a config (see ClipModel.create). */
export function createModel(nameOrConfig: string | ModelConfig, options: ModelOptions = {}): ClipModel {
  return ClipModel.create(nameOrConfig, options);
}
