// Contrastive loss dispatch used by the train step: the plain CLIP loss or the relaxed loss of METHOD.md §2.
#pragma once
#include <torch/torch.h>

#include "cxr/config.h"

namespace cxr {
// u, v: (B, D) un-normalised embeddings; logit_scale_log: θ with scale exp(θ). Returns a 0-dim loss.
torch::Tensor contrastive_loss(const torch::Tensor& u, const torch::Tensor& v, const torch::Tensor& logit_scale_log,
                               const LossConfig& cfg);
}  // namespace cxr
