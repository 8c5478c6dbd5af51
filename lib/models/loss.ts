import { CxrError } from '../errors';
import { asCxrError, loadNative } from '../native';
import { resolveLoss, type LossOptions } from './ClipModel';
import type { LossStepStats } from '../native/binding';

/** Loss value and exact gradients of the contrastive loss for given embeddings. */
export interface LossAndGrads {
  loss: number;
  /** dL/dU, B×D row-major. */
  gradU: Float32Array;
  /** dL/dV, B×D row-major. */
  gradV: Float32Array;
  /** dL/dθ where the logit scale is exp(θ). */
  gradTheta: number;
  /** The op's statistics: share of positives the relaxation changed, threshold used, positive / negative similarities. */
  stats: LossStepStats;
}

/**
 * Runs the native fused contrastive loss (CLIP or relaxed) on image embeddings `u` and text embeddings `v`
 * (B×D, un-normalised) with logit scale exp(`logitScaleLog`), returning the loss and its gradients.
 * Used for checks and for comparing other implementations (tfjs) against the native op.
 */
export function contrastiveLoss(
  u: Float32Array,
  v: Float32Array,
  batch: number,
  dim: number,
  logitScaleLog: number,
  loss?: LossOptions,
): LossAndGrads {
  if (!(u instanceof Float32Array) || !(v instanceof Float32Array)) throw new CxrError('E_DTYPE', 'u and v must be Float32Arrays');
  if (!Number.isInteger(batch) || !Number.isInteger(dim) || dim < 1 || u.length !== batch * dim || v.length !== batch * dim)
    throw new CxrError('E_SHAPE', `u and v must both hold B×D = ${batch}×${dim} values (got ${u.length} and ${v.length})`);
  if (batch < 2) throw new CxrError('E_SHAPE', `the contrastive loss needs a batch of at least 2, got ${batch}`);
  if (!Number.isFinite(logitScaleLog)) throw new CxrError('E_NUMERIC', 'the logit scale is not finite');
  const cfg = resolveLoss(loss);
  try {
    return loadNative().contrastiveLoss(u, v, [batch, dim], logitScaleLog, cfg);
  } catch (e) {
    throw asCxrError(e);
  }
}
