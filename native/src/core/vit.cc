// OpenAI CLIP VisionTransformer (also the timm layout of open_clip / BiomedCLIP towers).
#include "cxr/attention.h"
#include "cxr/conv.h"
#include "cxr/model.h"
#include "model_init.h"

namespace F = torch::nn::functional;

namespace cxr {

VisionTransformer::VisionTransformer(const VisionConfig& c, int64_t embed_dim) : cfg(c) {
  const int64_t grid = cfg.image_size / cfg.patch_size;
  conv1 = register_module("conv1", torch::nn::Conv2d(torch::nn::Conv2dOptions(3, cfg.width, cfg.patch_size)
                                                         .stride(cfg.patch_size)
                                                         .bias(cfg.patch_bias)));
  class_embedding = register_parameter("class_embedding", torch::empty({cfg.width}));
  positional_embedding = register_parameter("positional_embedding", torch::empty({grid * grid + 1, cfg.width}));
  const auto lnopt = torch::nn::LayerNormOptions({cfg.width}).eps(cfg.layer_norm_eps);
  if (cfg.ln_pre) ln_pre = register_module("ln_pre", torch::nn::LayerNorm(lnopt));
  transformer = register_module(
      "transformer", Transformer(cfg.width, cfg.layers, cfg.heads, cfg.mlp_ratio, cfg.act, cfg.layer_norm_eps));
  // timm's final `norm` runs on every token before class-token pooling; per-token, so ln_post on the class
  // token alone is the same computation.
  ln_post = register_module("ln_post", torch::nn::LayerNorm(lnopt));
  proj = register_parameter("proj", torch::empty({cfg.width, embed_dim}));
}

void VisionTransformer::init_parameters(at::Generator& gen) {
  double scale = std::pow(static_cast<double>(cfg.width), -0.5);
  init::uniform_fan_in(conv1->weight, gen);
  if (conv1->bias.defined()) init::zero(conv1->bias);
  init::normal(class_embedding, scale, gen);
  init::normal(positional_embedding, scale, gen);
  init::normal(proj, scale, gen);
  if (ln_pre) init::layer_norm(ln_pre);
  init::layer_norm(ln_post);
  init::transformer(*transformer, gen);
}

torch::Tensor VisionTransformer::encode(const torch::Tensor& images) { return cam_head(cam_features(images)); }

// The tokens entering the last block: (N, 1 + g*g, W). The last block's output patch tokens never reach the
// class token, so they carry no gradient; its input tokens are the last ones that do.
torch::Tensor VisionTransformer::cam_features(const torch::Tensor& images) {
  auto x = conv2d_forward(conv1, images);                   // (N, W, g, g)
  x = x.flatten(2).transpose(1, 2);         // (N, g*g, W)
  const int64_t N = x.size(0);
  auto cls = class_embedding.to(x.dtype()).view({1, 1, -1}).expand({N, 1, cfg.width});
  x = torch::cat({cls, x}, 1) + positional_embedding.to(x.dtype());
  if (ln_pre) x = ln_pre(x);
  auto& blocks = transformer->blocks;
  for (size_t i = 0; i + 1 < blocks.size(); ++i) x = blocks[i]->forward(x);
  return x;
}

torch::Tensor VisionTransformer::cam_head(const torch::Tensor& features) {
  auto x = transformer->blocks.empty() ? features : transformer->blocks.back()->forward(features);
  return ln_post(x.select(1, 0)).matmul(proj);
}

torch::Tensor VisionTransformer::cam_spatial(const torch::Tensor& features) const {
  const int64_t g = cfg.image_size / cfg.patch_size;
  return features.narrow(1, 1, g * g).transpose(1, 2).reshape({features.size(0), features.size(2), g, g});
}

std::string VisionTransformer::cam_layer() const {
  const auto L = static_cast<int64_t>(transformer->blocks.size());
  return L > 1 ? "transformer.resblocks." + std::to_string(L - 2) + " (output patch tokens)"
               : std::string(ln_pre ? "ln_pre" : "conv1") + " (patch tokens)";
}

}  // namespace cxr
