#include "cxr/loss.h"

#include "cxr/errors.h"

namespace cxr {

// Autograd composite; replaced by the fused op (relaxed_contrastive) when it is built in.
torch::Tensor contrastive_loss(const torch::Tensor& u, const torch::Tensor& v, const torch::Tensor& theta,
                               const LossConfig& cfg) {
  CXR_CHECK(u.size(0) >= 2, Shape, "the contrastive loss needs a batch of at least 2");
  auto un = u / u.norm(2, -1, true).clamp_min(1e-12);
  auto vn = v / v.norm(2, -1, true).clamp_min(1e-12);
  auto s = un.matmul(vn.t());
  const int64_t B = s.size(0);
  auto labels = torch::arange(B, torch::TensorOptions().dtype(torch::kLong).device(s.device()));
  auto scale = theta.exp();
  if (cfg.kind == LossKind::Clip || cfg.alpha >= 1.0) {
    auto logits = scale * s;
    auto opt = torch::nn::functional::CrossEntropyFuncOptions().label_smoothing(cfg.label_smoothing);
    return 0.5 * (torch::nn::functional::cross_entropy(logits, labels, opt) +
                  torch::nn::functional::cross_entropy(logits.t(), labels, opt));
  }
  auto diag = s.diagonal();
  auto clamped = torch::clamp_max(diag, cfg.alpha);
  auto eye = torch::eye(B, s.options());
  if (cfg.variant == RelaxVariantCfg::ClampDiag) {
    auto st = s * (1 - eye) + torch::diag_embed(clamped);
    auto logits = scale * st;
    return 0.5 * (torch::nn::functional::cross_entropy(logits, labels) +
                  torch::nn::functional::cross_entropy(logits.t(), labels));
  }
  auto logits = scale * s;
  auto rows = -scale * clamped + torch::logsumexp(logits, 1);
  auto cols = -scale * clamped + torch::logsumexp(logits, 0);
  return 0.5 * (rows.mean() + cols.mean());
}

}  // namespace cxr
