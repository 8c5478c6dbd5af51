#include "cxr/attention.h"

#include <cmath>
#include <limits>

#include "cxr/torch_compat.h"

namespace cxr {

bool fused_attention_compiled() { return compat::kHasFusedAttention; }

AttentionPath default_attention_path() {
  return compat::kHasFusedAttention ? AttentionPath::Fused : AttentionPath::Explicit;
}

torch::Tensor multi_head_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                   int64_t heads, const torch::Tensor& mask, bool causal, AttentionPath path) {
  const int64_t N = q.size(0), Lq = q.size(1), Lk = k.size(1), W = q.size(2), hd = W / heads;
  auto kh = k.view({N, Lk, heads, hd}).transpose(1, 2);
  auto vh = v.view({N, Lk, heads, hd}).transpose(1, 2);
  if (path == AttentionPath::Fused) {
    auto qh = q.view({N, Lq, heads, hd}).transpose(1, 2);
    return compat::fused_attention(qh, kh, vh, mask, causal).transpose(1, 2).reshape({N, Lq, W});
  }
  auto qh = q.view({N, Lq, heads, hd}).transpose(1, 2) * std::pow(static_cast<double>(hd), -0.5);
  auto att = torch::matmul(qh, kh.transpose(-2, -1));
  if (causal && !mask.defined()) {
    att = att + torch::full({Lq, Lk}, -std::numeric_limits<float>::infinity(), att.options()).triu(1);
  } else if (mask.defined()) {
    att = att + mask;
  }
  att = torch::softmax(att, -1);
  return torch::matmul(att, vh).transpose(1, 2).reshape({N, Lq, W});
}

}  // namespace cxr
