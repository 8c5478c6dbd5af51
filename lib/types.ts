/**
 * Public value types, declared once here: what a train step returns, a named weight tensor, a fully
 * resolved loss and the process-group options. The native surface (lib/native/binding.ts, internal) uses
 * these same shapes, so nothing public refers to a `Native*` type.
 */

/** Numbers of one optimizer step (`ClipModel.trainStep`). Times are milliseconds of wall clock. */
export interface StepResult {
  /** Contrastive loss of the step's batch. */
  loss: number;
  /** Global gradient norm before clipping. */
  gradNorm: number;
  /** exp(logit_scale) after the step. */
  logitScale: number;
  msForward: number;
  msBackward: number;
  msOptimizer: number;
  msTotal: number;
  /** Distributed: waiting on collectives not hidden behind backward (embedding gather, gradient all-reduce). */
  msComm: number;
  /** Pairs in the loss: the global batch when distributed. */
  batch: number;
  /** Processes in the group (1 without one). */
  worldSize: number;
  /** Distributed: gradient buckets, and how many were all-reduced while backward was still running. */
  buckets: number;
  bucketsDuringBackward: number;
  /**
   * Statistics of the step's contrastive loss, from the fused op's forward pass (no extra pass over the
   * B×B similarities; over the global batch when distributed). relaxEngaged: fraction of positive pairs
   * whose loss term the relaxation changed (0 for plain CLIP).
   */
  relaxEngaged: number;
  /** Threshold α used this step (1: no clamp; the running α of `alpha: {quantile}`; margin: mean threshold n + m). */
  relaxAlpha: number;
  /** `alpha: {quantile: q}`: the q-quantile of this batch's positive similarities; null otherwise. */
  relaxBatchQuantile: number | null;
  /** Positive-pair cosine similarities s_ii: mean and 10/50/90 % quantiles (linear interpolation). */
  posSimMean: number;
  posSimQ10: number;
  posSimQ50: number;
  posSimQ90: number;
  /** Mean off-diagonal (negative) cosine similarity. */
  negSimMean: number;
}

/** One parameter or buffer: OpenAI key name, shape and float32 values (row-major). */
export interface NamedTensor {
  name: string;
  shape: number[];
  data: Float32Array;
}

/** A loss with every field resolved (`resolveLoss`): what the native step and the tfjs loss receive. */
export interface ResolvedLoss {
  kind: 'clip' | 'relaxed';
  /** Positive-pair threshold α in (0, 1]; 1 for the plain CLIP loss (unused by margin and adaptive α). */
  alpha: number;
  variant: 'clamp-diag' | 'clamp-numerator' | 'margin';
  /** Label smoothing of the cross-entropy in [0, 1). */
  labelSmoothing: number;
  /** Adaptive threshold: α is the running q-quantile of the positive similarities; 0 = the fixed alpha. */
  alphaQuantile: number;
  /** EMA momentum β of the running quantile. */
  alphaMomentum: number;
  /** Running α of the previous step (trainer state; null: none yet, the first step uses the batch quantile). */
  alphaRunning: number | null;
  /** Margin variant: m in cosine units (Infinity: plain CLIP). */
  margin: number;
}

/** Process-group options of `ClipModel.initDistributed` (torchrun's environment resolved by lib/train/distributed). */
export interface DistOptions {
  rank: number;
  worldSize: number;
  masterAddr: string;
  masterPort: number;
  /** `auto` (NCCL on CUDA when built with it, else Gloo), `gloo` or `nccl`. */
  backend: 'auto' | 'gloo' | 'nccl';
  /** Rendezvous and collective timeout. */
  timeoutMs: number;
  /** Gradient all-reduce bucket size in MiB. */
  bucketMb: number;
  /** Network interface for Gloo ("" = from MASTER_ADDR / hostname). */
  ifname: string;
}
