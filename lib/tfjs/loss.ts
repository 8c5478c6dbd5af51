/**
 * The CLIP and relaxed contrastive losses (METHOD.md §1-2) in TensorFlow.js, written as plain
 * differentiable ops: the same math as the native fused op `relaxed_contrastive_loss` and its autograd
 * reference (native/src/core/relaxed_contrastive.cc), so tfjs autodiff gives the same gradients.
 */
import type { Scalar, Tensor } from '@tensorflow/tfjs';
import { CxrError } from '../errors';
import { resolveLoss, type LossOptions } from '../models/ClipModel';
import type { ResolvedLoss } from '../types';
import { useBackend, type TfBackendName, type Tf } from './backend';
import { tfOps } from './ops';

/** Same as torch.nn.functional.normalize and the native op. */
const NORM_EPS = 1e-12;

/**
 * Loss of raw (un-normalised) embeddings U, V (B×D tensors) and the log logit scale θ (scalar):
 * L = ½ [CE_rows(l·S̃) + CE_cols(l·S̃)] with l = exp(θ) and S = û·v̂ᵀ. `clamp-diag` replaces s_ii by
 * min(s_ii, α) everywhere; `clamp-numerator` keeps the raw logits in the log-sum-exp and clamps only the
 * target term. α = 1 (or kind "clip") is plain CLIP. Label smoothing ε follows PyTorch's cross_entropy.
 */

/** {@link resolveLoss} for the tfjs variant, which implements the fixed-α forms only (E_UNSUPPORTED otherwise). */
export function resolveTfLoss(loss: LossOptions | undefined): ResolvedLoss {
  const cfg = resolveLoss(loss);
  if (cfg.variant === 'margin' || cfg.alphaQuantile > 0)
    throw new CxrError('E_UNSUPPORTED', 'the tfjs variant implements the fixed-α relaxation only (clamp-diag, clamp-numerator), not the margin form or alpha: {quantile} (use the native model)');
  return cfg;
}
export function tfContrastiveLossTensor(tf: Tf, U: Tensor, V: Tensor, theta: Tensor, loss: ResolvedLoss): Scalar {
  const { mm } = tfOps(tf);
  const B = U.shape[0];
  const normalize = (x: Tensor) => tf.div(x, tf.maximum(tf.sqrt(tf.sum(tf.square(x), 1, true)), NORM_EPS));
  const u = normalize(U);
  const v = normalize(V);
  const S = mm(u, tf.transpose(v));
  const l = tf.exp(tf.reshape(theta, []));
  const eye = tf.eye(B);
  const alpha = loss.kind === 'clip' ? 1 : loss.alpha;
  const clamp = alpha < 1;
  // S̃ = S with s_ii -> min(s_ii, α), as S - diag(relu(s_ii - α)): the clamped entry's gradient is 0 above α
  // and passes through at or below α (torch.clamp_max's convention).
  const St = clamp ? tf.sub(S, tf.mul(eye, tf.reshape(tf.relu(tf.sub(tf.sum(tf.mul(S, eye), 1), alpha)), [B, 1]))) : S;
  const target = tf.mul(St, l);
  const lseSource = clamp && loss.variant === 'clamp-numerator' ? tf.mul(S, l) : target;
  const eps = loss.labelSmoothing;
  const tdiag = tf.sum(tf.mul(target, eye), 1);
  const side = (axis: 0 | 1) => {
    let t: Tensor = tf.mul(tdiag, 1 - eps);
    if (eps > 0) t = tf.add(t, tf.mul(tf.sum(target, axis), eps / B));
    return tf.mean(tf.sub(tf.logSumExp(lseSource, axis), t));
  };
  return tf.div(tf.add(side(1), side(0)), 2) as Scalar;
}

/** Result of `tfContrastiveLoss`, shaped like the native `contrastiveLoss`. */
export interface TfLossResult {
  loss: number;
  gradU: Float32Array;
  gradV: Float32Array;
  gradTheta: number;
}

/**
 * The contrastive loss and its gradients on flat arrays, mirroring the native
 * `loadNative().contrastiveLoss(u, v, [B, D], theta, loss)` for side-by-side checks.
 */
export async function tfContrastiveLoss(
  u: Float32Array,
  v: Float32Array,
  shape: [number, number],
  logitScaleLog: number,
  loss: LossOptions = { kind: 'clip' },
  backend: TfBackendName = 'wasm',
): Promise<TfLossResult> {
  const [B, D] = shape;
  if (!(Number.isInteger(B) && Number.isInteger(D) && B >= 2 && D >= 1) || u.length !== B * D || v.length !== B * D)
    throw new CxrError('E_SHAPE', `u and v must both hold B×D = ${B}×${D} values with B >= 2`);
  if (!Number.isFinite(logitScaleLog)) throw new CxrError('E_NUMERIC', 'the log logit scale must be finite');
  const cfg = resolveTfLoss(loss);
  const { tf } = await useBackend(backend);
  const out = tf.tidy(() => {
    const U = tf.tensor2d(u, [B, D]);
    const V = tf.tensor2d(v, [B, D]);
    const th = tf.scalar(logitScaleLog);
    const { value, grads } = tf.valueAndGrads((a: Tensor, b: Tensor, t: Tensor) => tfContrastiveLossTensor(tf, a, b, t, cfg))([U, V, th]);
    return [value, ...grads];
  });
  const [lv, gu, gv, gt] = await Promise.all(out.map((t) => t.data() as Promise<Float32Array>));
  out.forEach((t) => t.dispose());
  return { loss: lv[0], gradU: gu, gradV: gv, gradTheta: gt[0] };
}
