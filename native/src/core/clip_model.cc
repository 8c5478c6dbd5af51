// ClipModel: config validation, the tower choice, the causal CLIP text tower, input checks.
#include <limits>

#include "cxr/attention.h"
#include "cxr/model.h"
#include "model_init.h"

namespace F = torch::nn::functional;

namespace cxr {

void validate_config(const ModelConfig& c) {
  auto fail = [](const std::string& m) { throw Error(ErrorCode::Config, m); };
  if (c.embed_dim <= 0) fail("embed_dim must be positive");
  const auto& v = c.vision;
  if (v.image_size <= 0) fail("vision.image_size must be positive");
  if (v.type == "vit") {
    if (v.patch_size <= 0 || v.image_size % v.patch_size != 0)
      fail("vision.image_size (" + std::to_string(v.image_size) + ") must be a multiple of vision.patch_size (" +
           std::to_string(v.patch_size) + ")");
    if (v.width <= 0 || v.layers < 0 || v.heads <= 0 || v.width % v.heads != 0)
      fail("vision.width (" + std::to_string(v.width) + ") must be a positive multiple of vision.heads (" +
           std::to_string(v.heads) + ")");
  } else if (v.type == "resnet") {
    if (v.resnet_layers.empty()) fail("vision.resnet_layers must not be empty");
    if (v.resnet_width < 2 || v.resnet_width % 2 != 0) fail("vision.resnet_width must be an even number >= 2");
    const int64_t downs = int64_t{1} << (v.resnet_layers.size() + 1);
    if (v.image_size % downs != 0)
      fail("vision.image_size must be a multiple of " + std::to_string(downs) + " for this ResNet");
    const int64_t ch = v.resnet_width << (v.resnet_layers.size() + 1);
    if (v.attn_pool_heads <= 0 || ch % v.attn_pool_heads != 0)
      fail("vision.attn_pool_heads must divide the trunk width " + std::to_string(ch));
  } else {
    fail("vision.type must be \"vit\" or \"resnet\", got \"" + v.type + "\"");
  }
  const auto& t = c.text;
  if (t.type != "causal" && t.type != "bert") fail("text.type must be \"causal\" or \"bert\", got \"" + t.type + "\"");
  if (t.vocab_size <= 0 || t.context_length <= 0 || t.width <= 0 || t.layers < 0 || t.heads <= 0 ||
      t.width % t.heads != 0)
    fail("text.width must be a positive multiple of text.heads, and vocab_size/context_length positive");
  if (t.type == "bert" && (t.max_position < t.context_length || t.intermediate_size <= 0))
    fail("text.max_position must be >= text.context_length and intermediate_size positive");
  if (t.type == "bert" && t.pooling != "cls" && t.pooling != "mean") fail("text.pooling must be \"cls\" or \"mean\"");
  if (t.proj != "linear" && t.proj != "mlp") fail("text.proj must be \"linear\" or \"mlp\"");
  if (!(v.layer_norm_eps > 0)) fail("vision.layer_norm_eps must be positive");
}

ClipModel::ClipModel(const ModelConfig& cfg, uint64_t seed) : cfg_(cfg) {
  validate_config(cfg_);
  if (cfg_.vision.type == "vit") visual_ = std::make_shared<VisionTransformer>(cfg_.vision, cfg_.embed_dim);
  else visual_ = std::make_shared<ModifiedResNet>(cfg_.vision, cfg_.embed_dim);
  register_module("visual", visual_);
  const auto& t = cfg_.text;
  if (t.type == "causal") {
    token_embedding_ = register_module("token_embedding", torch::nn::Embedding(t.vocab_size, t.width));
    positional_embedding_ = register_parameter("positional_embedding", torch::empty({t.context_length, t.width}));
    transformer_ = register_module("transformer", Transformer(t.width, t.layers, t.heads, t.mlp_ratio, t.act));
    ln_final_ = register_module("ln_final", torch::nn::LayerNorm(torch::nn::LayerNormOptions({t.width}).eps(1e-5)));
    text_projection_ = register_parameter("text_projection", torch::empty({t.width, cfg_.embed_dim}));
    causal_mask_ = register_buffer(
        "attn_mask", torch::full({t.context_length, t.context_length}, -std::numeric_limits<float>::infinity())
                         .triu(1));
  } else {
    bert_ = register_module("text", std::make_shared<BertTextTower>(t, cfg_.embed_dim));
  }
  logit_scale = register_parameter("logit_scale", torch::empty({}));
  init_parameters(seed);
}

void ClipModel::init_parameters(uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  visual_->init_parameters(gen);
  if (bert_) {
    bert_->init_parameters(gen);
  } else {
    init::normal(token_embedding_->weight, 0.02, gen);
    init::normal(positional_embedding_, 0.01, gen);
    init::transformer(*transformer_, gen);
    init::layer_norm(ln_final_);
    init::normal(text_projection_, std::pow(static_cast<double>(cfg_.text.width), -0.5), gen);
  }
  torch::NoGradGuard ng;
  logit_scale.fill_(cfg_.logit_scale_init);
}

void ClipModel::set_training(bool on) {
  train(on);
  visual_->after_train_mode(on);
}

void ClipModel::check_images(const torch::Tensor& images) const {
  const int64_t S = cfg_.vision.image_size;
  auto expected = "(N, 3, " + std::to_string(S) + ", " + std::to_string(S) + ")";
  CXR_CHECK(images.dim() == 4, Shape, "images must be " + expected + ", got " + std::to_string(images.dim()) + " dims");
  CXR_CHECK(images.size(1) == 3, Shape,
            "images must have 3 channels (grayscale is repeated to 3), got " + std::to_string(images.size(1)));
  CXR_CHECK(images.size(2) == S && images.size(3) == S, Shape,
            "images must be " + expected + ", got (" + std::to_string(images.size(0)) + ", 3, " +
                std::to_string(images.size(2)) + ", " + std::to_string(images.size(3)) + ")");
  CXR_CHECK(images.size(0) > 0, Shape, "empty image batch");
  CXR_CHECK(images.is_floating_point(), Dtype, "images must be floating point");
  CXR_CHECK(torch::isfinite(images).all().item<bool>(), Numeric, "images contain NaN or Inf");
}

void ClipModel::check_tokens(const torch::Tensor& ids) const {
  const auto& t = cfg_.text;
  const int64_t maxL = t.type == "causal" ? t.context_length : t.max_position;
  CXR_CHECK(ids.dim() == 2, Shape, "token ids must be (N, L), got " + std::to_string(ids.dim()) + " dims");
  CXR_CHECK(ids.size(0) > 0, Shape, "empty text batch");
  CXR_CHECK(ids.size(1) >= 1 && ids.size(1) <= maxL, Shape,
            "token sequence length " + std::to_string(ids.size(1)) + " must be in 1.." + std::to_string(maxL));
  CXR_CHECK(ids.scalar_type() == torch::kLong, Dtype, "token ids must be int64");
  auto mn = ids.min().item<int64_t>(), mx = ids.max().item<int64_t>();
  CXR_CHECK(mn >= 0 && mx < t.vocab_size, Shape,
            "token id out of the vocabulary: ids must be in [0, " + std::to_string(t.vocab_size) + "), got [" +
                std::to_string(mn) + ", " + std::to_string(mx) + "]");
}

torch::Tensor ClipModel::encode_image(const torch::Tensor& images) { return visual_->encode(images); }

torch::Tensor ClipModel::encode_text(const torch::Tensor& ids) {
  if (bert_) return bert_->encode(ids);
  const int64_t L = ids.size(1);
  auto x = token_embedding_(ids) + positional_embedding_.narrow(0, 0, L);
  // The causal mask is what the explicit attention path adds; the fused path masks by itself.
  x = transformer_->forward(x, causal_mask_.narrow(0, 0, L).narrow(1, 0, L).to(x.dtype()), /*causal=*/true);
  x = ln_final_(x);
  auto eot = ids.argmax(-1);  // the end-of-text token has the highest id
  auto pooled = x.index({torch::arange(x.size(0), ids.options()), eot});
  return pooled.matmul(text_projection_);
}

}  // namespace cxr
