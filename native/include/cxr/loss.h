// Contrastive loss dispatch used by the train step: the plain CLIP loss or the relaxed loss of METHOD.md §2.
#pragma once
#include <torch/torch.h>

#include <functional>
#include <tuple>

#include "cxr/config.h"

namespace cxr {
using GatherFn = std::function<std::tuple<torch::Tensor, torch::Tensor, int64_t>(const torch::Tensor&, const torch::Tensor&)>;
// u, v: (B, D) un-normalised embeddings; logit_scale_log: θ with scale exp(θ). Returns a 0-dim loss.
// stats: when set, receives the step's loss statistics. gather (distributed): the loss is taken over the rows of every rank (see ContrastiveLossOptions::gather).
torch::Tensor contrastive_loss(const torch::Tensor& u, const torch::Tensor& v, const torch::Tensor& logit_scale_log,
                               const LossConfig& cfg, const GatherFn& gather = {}, LossStats* stats = nullptr);
}  // namespace cxr
