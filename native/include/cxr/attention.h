// Multi-head scaled dot-product attention of every tower. Two paths with the same result: libtorch's fused
// at::scaled_dot_product_attention (libtorch >= 2.0: a fused kernel on CPU, flash / memory-efficient kernels
// on CUDA) and the explicit matmul-softmax-matmul (all versions; the reference the fused path is tested
// against).
#pragma once
#include <torch/torch.h>

namespace cxr {

enum class AttentionPath { Explicit, Fused };

// True when this build can run AttentionPath::Fused (libtorch >= 2.0).
bool fused_attention_compiled();
// The path the towers use: Fused where compiled, else Explicit.
AttentionPath default_attention_path();

// q: (N, Lq, W), k/v: (N, Lk, W), W divisible by heads. mask: additive, broadcastable to (N, heads, Lq, Lk)
// (e.g. (N, 1, 1, Lk) padding), or undefined. causal: position i attends to j <= i (Lq == Lk); the mask is
// then ignored. Returns (N, Lq, W), heads merged.
torch::Tensor multi_head_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                   int64_t heads, const torch::Tensor& mask, bool causal,
                                   AttentionPath path = default_attention_path());

}  // namespace cxr
