/**
 * The native surface, typed once (principle 2). Nothing here is exported from the package: public classes
 * (ClipModel, Trainer) wrap these handles. Every native function throws (or rejects with) an Error whose
 * `code` is one of the stable codes in errors.ts; callers convert it with `asCxrError`.
 */
import type { DistOptions, NamedTensor, ResolvedLoss, StepResult } from '../types';

/** Model architecture as the native core receives it (validated by lib/models/config.ts first). */
export interface NativeModelConfig {
  embedDim: number;
  logitScaleInit?: number;
  vision: {
    type: 'vit' | 'resnet';
    imageSize: number;
    patchSize?: number;
    width?: number;
    layers?: number;
    heads?: number;
    mlpRatio?: number;
    act?: 'quick_gelu' | 'gelu';
    resnetLayers?: number[];
    resnetWidth?: number;
    attnPoolHeads?: number;
    batchnormTrain?: boolean;
    /** Patch-embedding convolution with a bias (timm ViTs). Default false. */
    patchBias?: boolean;
    /** LayerNorm before the transformer (OpenAI: true; timm: false). Default true. */
    lnPre?: boolean;
    /** Epsilon of the ViT's LayerNorms (OpenAI 1e-5, timm 1e-6). Default 1e-5. */
    layerNormEps?: number;
  };
  text: {
    type: 'causal' | 'bert';
    vocabSize: number;
    contextLength: number;
    width: number;
    layers: number;
    heads: number;
    mlpRatio?: number;
    act?: 'quick_gelu' | 'gelu';
    intermediateSize?: number;
    maxPosition?: number;
    typeVocabSize?: number;
    padId?: number;
    pooling?: 'cls' | 'mean';
    layerNormEps?: number;
    /** BERT tower projection: "linear" (proj.weight) or "mlp" (open_clip: proj.0, GELU, proj.2). Default "linear". */
    proj?: 'linear' | 'mlp';
    /** Hidden width of the "mlp" projection; 0 or absent: (width + embedDim) / 2. */
    projHidden?: number;
  };
}

export interface NativeEngineOptions {
  /** Resolved device: "cpu" | "cuda:N" (or "auto"). */
  device: string;
  precision: 'fp32' | 'bf16';
  seed: number;
}

/** The loss as the native step receives it: the public {@link ResolvedLoss} (every field resolved). */
export type NativeLossConfig = ResolvedLoss;

export interface NativeStepOptions {
  lr: number;
  clipGradNorm: number;
  /** > 0: feature-cached gradient accumulation in micro-batches of this size; 0: one pass. */
  microBatch?: number;
  loss: NativeLossConfig;
}

/** The loss statistics of a step (the relax and similarity fields of {@link StepResult}). */
export type LossStepStats = Pick<StepResult, 'relaxEngaged' | 'relaxAlpha' | 'relaxBatchQuantile' | 'posSimMean' | 'posSimQ10' | 'posSimQ50' | 'posSimQ90' | 'negSimMean'>;

/** What one native train step returns: the public {@link StepResult}. */
export type NativeStepResult = StepResult;

/** Process-group options (torchrun's environment resolved by lib/train/distributed). */
/** Process-group options: the public {@link DistOptions}. */
export type NativeDistOptions = DistOptions;

export interface NativeOptimizerConfig {
  kind: 'adamw' | 'sgd';
  lr: number;
  weightDecay: number;
  beta1: number;
  beta2: number;
  eps: number;
  momentum: number;
  nesterov: boolean;
}

/** One named float32 tensor crossing the boundary: the public {@link NamedTensor}. */
export type NativeTensor = NamedTensor;

/**
 * The augmentation and normalisation of a uint8 image batch, applied on the device: w = the bytes / 255
 * sampled through `warp` (N×6 affine maps, bilinear, 0 outside; absent: no warp), then image =
 * clamp(gain·w + bias + meanGain·mean(w), 0, 1)·scale + offset per channel; gain and bias (one per image)
 * are optional, together; meanGain optional (the PixelBatch of lib/data/images).
 */
export interface NativePixelOptions {
  scale: number[];
  offset: number[];
  gain?: Float32Array;
  bias?: Float32Array;
  meanGain?: Float32Array;
  warp?: Float64Array;
}

/**
 * One label's zero-shot direction for {@link NativeModel.saliency}: the unit text vectors of its positive
 * and negative prompts (D each) and the temperature t of the score t·(û·v⁺ − û·v⁻).
 */
export interface NativeSaliencyRequest {
  positive: Float32Array;
  negative: Float32Array;
  temperature: number;
  /** Also return ∂score/∂image (N×3×S×S). */
  inputGradient: boolean;
}

/** What {@link NativeModel.saliency} resolves to. */
export interface NativeSaliencyResult {
  /** The score explained, per image (N): the logit of the label's pos/neg softmax. */
  scores: Float32Array;
  /** Grad-CAM at the input resolution (N×S×S, ≥ 0, not normalised). */
  maps: Float32Array;
  /** Grad-CAM before upsampling (N×h×w). */
  grid: Float32Array;
  /** [h, w] of `grid`. */
  gridShape: number[];
  /** The activation the maps were taken on (checkpoint key names). */
  layer: string;
  /** ∂score/∂image (N×3×S×S), when asked for. */
  inputGradient?: Float32Array;
}

/** One model on one device with its optimizer (native cxr::Engine). */
export interface NativeModel {
  /**
   * images → N×D embeddings: a Float32Array (N*3*S*S) with shape [N,3,S,S], or a Uint8Array of grayscale
   * bytes (N*S*S) with shape [N,1,S,S] and `pixels`.
   */
  encodeImages(images: Float32Array | Uint8Array, shape: number[], normalize: boolean, pixels?: NativePixelOptions): Promise<Float32Array>;
  /** ids (N*L) with shape [N,L] → N×D embeddings. */
  encodeTexts(ids: Int32Array, shape: number[], normalize: boolean): Promise<Float32Array>;
  /**
   * Grad-CAM and input-gradient saliency of one label's zero-shot score for an image batch: one forward and
   * one backward pass (native/include/cxr/saliency.h). Images as {@link encodeImages}.
   */
  saliency(images: Float32Array | Uint8Array, shape: number[], request: NativeSaliencyRequest, pixels?: NativePixelOptions): Promise<NativeSaliencyResult>;
  /** Forward, loss, backward, clipping, optimizer step: one call per step. */
  trainStep(images: Float32Array | Uint8Array, imageShape: number[], ids: Int32Array, idShape: number[], opts: NativeStepOptions, pixels?: NativePixelOptions): Promise<NativeStepResult>;
  /** Loss of a batch without updating anything. */
  evalLoss(images: Float32Array | Uint8Array, imageShape: number[], ids: Int32Array, idShape: number[], loss: NativeLossConfig, pixels?: NativePixelOptions): Promise<number>;
  configureOptimizer(cfg: NativeOptimizerConfig): void;
  /** Parameters and buffers as float32 copies, in registration order (OpenAI key names). */
  getState(): NativeTensor[];
  /** Copies tensors in; float16 sources must be upcast by the caller. Throws E_CHECKPOINT on a shape mismatch. */
  loadState(tensors: NativeTensor[], strict: boolean): { missing: string[]; unexpected: string[] };
  getOptimizerState(): Buffer;
  loadOptimizerState(state: Buffer): void;
  /** Freezes parameters whose names start with one of the prefixes; unfreezes the rest. */
  setTrainable(frozenPrefixes: string[]): void;
  parameterCount(trainableOnly: boolean): number;
  /** Joins the process group (blocks until every rank joined); resolves to the backend used. */
  initDistributed(opts: NativeDistOptions): Promise<string>;
  /** Copies rank 0's parameters and buffers to every rank. */
  broadcastState(): Promise<void>;
  /** True on every rank when `flag` is true on any. */
  distAny(flag: boolean): Promise<boolean>;
  distBarrier(): Promise<void>;
  /** Idempotent; deferred until a running call finishes. */
  dispose(): void;
  readonly disposed: boolean;
  readonly busy: boolean;
  readonly device: string | null;
}

/** One tensor of a PyTorch checkpoint file, upcast to float32; `dtype` is the stored element type. */
export interface NativeFileTensor extends NativeTensor {
  dtype: 'F32' | 'F16' | 'BF16' | 'F64' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL' | 'OTHER';
}

export interface NativeCapabilities {
  torchVersion: string;
  /** `cudnn`: libtorch was built with cuDNN and it loads. */
  cuda: { built: boolean; kernels: boolean; available: boolean; devices: number; cudnn: boolean };
  /** The towers run libtorch's fused `scaled_dot_product_attention` (libtorch >= 2.0), not the explicit one. */
  fusedAttention: boolean;
  /** Process-group backends compiled in. */
  distributed: { gloo: boolean; nccl: boolean };
  threads: number;
  interopThreads: number;
  blas: string;
  /** Threads of OpenBLAS's own pool (set with `threads` by setThreads); -1 when the BLAS does not say. */
  blasThreads: number;
  parallelInfo: string;
}

/**
 * The CPU block cache of the native core (native/include/cxr/cpu_cache.h): freed CPU tensor blocks of 64 KiB
 * and more are kept for the next allocation of the same size (bounded by `limitBytes`: CXR_CPU_CACHE_MB, else
 * a quarter of physical memory; 0 = off). Installed by the first model built.
 */
export interface CpuCacheStats {
  installed: boolean;
  limitBytes: number;
  cachedBytes: number;
  inUseBytes: number;
  hits: number;
  misses: number;
  released: number;
}

export interface NativeAddon {
  NativeModel: new (config: NativeModelConfig, options: NativeEngineOptions) => NativeModel;
  capabilities(): NativeCapabilities;
  setNumThreads(n: number): void;
  stats(): { liveModels: number; externalBytes: number; cpuCache: CpuCacheStats };
  releaseCpuCache(): void;
  /** Throws a libtorch ('torch') or std ('std') exception inside a worker: tests the error mapping. */
  selfTest(kind: 'torch' | 'std'): Promise<void>;
  /**
   * Reads a `torch.save` zip archive (data only: dicts, lists, tuples, numbers, strings, tensors; nested
   * containers flattened to dotted names) or a TorchScript archive (its parameters and buffers), on a
   * worker thread. Rejects with E_IO or E_CHECKPOINT.
   */
  readTorchFile(path: string): Promise<{ kind: 'torch-save' | 'torchscript'; tensors: NativeFileTensor[] }>;
  /** The normalised N×3×S×S images of a uint8 batch (shape [N,1,S,S]) as the model calls build them, on the CPU. */
  pixelsToImages(bytes: Uint8Array, shape: number[], pixels: NativePixelOptions): Float32Array;
  contrastiveLoss(
    u: Float32Array,
    v: Float32Array,
    shape: [number, number],
    logitScaleLog: number,
    loss: NativeLossConfig,
  ): { loss: number; gradU: Float32Array; gradV: Float32Array; gradTheta: number; stats: LossStepStats };
}
