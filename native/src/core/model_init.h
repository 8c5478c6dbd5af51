// Parameter initialisers shared by the tower sources (internal to the core).
#pragma once
#include <torch/torch.h>

#include <algorithm>
#include <cmath>

#include "cxr/model.h"

namespace cxr::init {

inline void normal(torch::Tensor& t, double std, at::Generator& gen) {
  torch::NoGradGuard ng;
  t.normal_(0.0, std, gen);
}
inline void uniform_fan_in(torch::Tensor& t, at::Generator& gen) {
  torch::NoGradGuard ng;
  int64_t fan_in = t.dim() > 1 ? t.numel() / t.size(0) : t.numel();
  double b = 1.0 / std::sqrt(static_cast<double>(std::max<int64_t>(fan_in, 1)));
  t.uniform_(-b, b, gen);
}
inline void zero(torch::Tensor& t) {
  torch::NoGradGuard ng;
  t.zero_();
}
inline void ones(torch::Tensor& t) {
  torch::NoGradGuard ng;
  t.fill_(1.0);
}
inline void layer_norm(torch::nn::LayerNorm& ln) {
  ones(ln->weight);
  zero(ln->bias);
}
inline void linear(torch::nn::Linear& l, double std, at::Generator& gen) {
  normal(l->weight, std, gen);
  if (l->bias.defined()) zero(l->bias);
}
// OpenAI CLIP's text-transformer initialisation, used for every transformer here (transformer.cc).
void transformer(TransformerImpl& tr, at::Generator& gen);

}  // namespace cxr::init
