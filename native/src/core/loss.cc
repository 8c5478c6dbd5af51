#include "cxr/loss.h"

#include "cxr/relaxed_contrastive.h"

namespace cxr {

torch::Tensor contrastive_loss(const torch::Tensor& u, const torch::Tensor& v, const torch::Tensor& theta,
                               const LossConfig& cfg, const GatherFn& gather) {
  ContrastiveLossOptions o;
  o.alpha = cfg.kind == LossKind::Clip ? 1.0 : cfg.alpha;  // α = 1 is exactly the CLIP loss
  o.variant = cfg.variant == RelaxVariantCfg::ClampNumerator ? RelaxVariant::ClampNumerator : RelaxVariant::ClampDiag;
  o.label_smoothing = cfg.label_smoothing;
  o.gather = gather;
  return relaxed_contrastive_loss(u, v, theta, o);
}

}  // namespace cxr
