// The pre-LN transformer blocks shared by the ViT image tower and the causal CLIP text tower
// (nn.MultiheadAttention parameter layout), and their initialisation.
#include "cxr/attention.h"
#include "cxr/model.h"
#include "model_init.h"

namespace F = torch::nn::functional;

namespace cxr {

torch::Tensor activation(const torch::Tensor& x, Activation act) {
  if (act == Activation::QuickGelu) return x * torch::sigmoid(1.702 * x);
  return F::gelu(x);
}

AttentionImpl::AttentionImpl(int64_t width, int64_t heads) : width(width), heads(heads) {
  in_proj_weight = register_parameter("in_proj_weight", torch::empty({3 * width, width}));
  in_proj_bias = register_parameter("in_proj_bias", torch::zeros({3 * width}));
  out_proj = register_module("out_proj", torch::nn::Linear(width, width));
}

torch::Tensor AttentionImpl::forward(const torch::Tensor& x, const torch::Tensor& mask, bool causal) {
  auto qkv = F::linear(x, in_proj_weight, in_proj_bias).chunk(3, -1);
  return out_proj(multi_head_attention(qkv[0], qkv[1], qkv[2], heads, mask, causal));
}

MlpImpl::MlpImpl(int64_t width, int64_t hidden, Activation act) : act(act) {
  c_fc = register_module("c_fc", torch::nn::Linear(width, hidden));
  c_proj = register_module("c_proj", torch::nn::Linear(hidden, width));
}
torch::Tensor MlpImpl::forward(const torch::Tensor& x) { return c_proj(activation(c_fc(x), act)); }

ResidualBlockImpl::ResidualBlockImpl(int64_t width, int64_t heads, double mlp_ratio, Activation act, double eps) {
  ln_1 = register_module("ln_1", torch::nn::LayerNorm(torch::nn::LayerNormOptions({width}).eps(eps)));
  attn = register_module("attn", Attention(width, heads));
  ln_2 = register_module("ln_2", torch::nn::LayerNorm(torch::nn::LayerNormOptions({width}).eps(eps)));
  mlp = register_module("mlp", Mlp(width, static_cast<int64_t>(std::llround(width * mlp_ratio)), act));
}
torch::Tensor ResidualBlockImpl::forward(const torch::Tensor& x, const torch::Tensor& mask, bool causal) {
  auto h = x + attn->forward(ln_1(x), mask, causal);
  return h + mlp(ln_2(h));
}

TransformerImpl::TransformerImpl(int64_t width, int64_t layers, int64_t heads, double mlp_ratio, Activation act,
                                 double eps)
    : width(width), layers(layers) {
  resblocks = register_module("resblocks", torch::nn::ModuleList());
  for (int64_t i = 0; i < layers; ++i) {
    blocks.emplace_back(width, heads, mlp_ratio, act, eps);
    resblocks->push_back(blocks.back());
  }
}
torch::Tensor TransformerImpl::forward(torch::Tensor x, const torch::Tensor& mask, bool causal) {
  for (auto& b : blocks) x = b->forward(x, mask, causal);
  return x;
}

void init::transformer(TransformerImpl& tr, at::Generator& gen) {
  double w = static_cast<double>(tr.width);
  double attn_std = std::pow(w, -0.5);
  double proj_std = attn_std * std::pow(2.0 * tr.layers, -0.5);
  double fc_std = std::pow(2.0 * w, -0.5);
  for (auto& b : tr.blocks) {
    layer_norm(b->ln_1);
    layer_norm(b->ln_2);
    normal(b->attn->in_proj_weight, attn_std, gen);
    zero(b->attn->in_proj_bias);
    linear(b->attn->out_proj, proj_std, gen);
    linear(b->mlp->c_fc, fc_std, gen);
    linear(b->mlp->c_proj, proj_std, gen);
  }
}

}  // namespace cxr
