#include "cxr/loss.h"

#include "cxr/relaxed_contrastive.h"

namespace cxr {

torch::Tensor contrastive_loss(const torch::Tensor& u, const torch::Tensor& v, const torch::Tensor& theta,
                               const LossConfig& cfg, const GatherFn& gather, LossStats* stats) {
  ContrastiveLossOptions o;
  const bool clip = cfg.kind == LossKind::Clip;
  o.alpha = clip ? 1.0 : cfg.alpha;  // α = 1 is exactly the CLIP loss
  o.variant = cfg.variant == RelaxVariantCfg::ClampNumerator ? RelaxVariant::ClampNumerator
              : cfg.variant == RelaxVariantCfg::Margin      ? RelaxVariant::Margin
                                                            : RelaxVariant::ClampDiag;
  if (clip) o.variant = RelaxVariant::ClampDiag;
  if (!clip && o.variant == RelaxVariant::Margin) o.margin = cfg.margin;
  if (!clip && o.variant != RelaxVariant::Margin && cfg.alpha_quantile > 0) {
    o.alpha_quantile = cfg.alpha_quantile;
    o.alpha_running = cfg.alpha_running;
    o.alpha_momentum = cfg.alpha_momentum;
  }
  o.label_smoothing = cfg.label_smoothing;
  o.gather = gather;
  ContrastiveLossStats st;
  if (stats) o.stats = &st;
  torch::Tensor loss = relaxed_contrastive_loss(u, v, theta, o);
  if (stats) {
    stats->engaged = st.engaged;
    stats->alpha = st.alpha;
    stats->batch_quantile = st.batch_quantile;
    stats->pos_mean = st.pos_mean;
    stats->pos_q10 = st.pos_q10;
    stats->pos_q50 = st.pos_q50;
    stats->pos_q90 = st.pos_q90;
    stats->neg_mean = st.neg_mean;
  }
  return loss;
}

}  // namespace cxr
