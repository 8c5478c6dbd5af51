// Tiny model configs and complete option structs shared by the C++ core tests (fast on one CPU thread).
// The core's structs carry no defaults (TypeScript sends every value), so every field is set here.
#pragma once
#include <cmath>
#include <string>

#include "cxr/config.h"

namespace cxr_test {
inline cxr::ModelConfig tiny_vit() {
  cxr::ModelConfig c;
  c.embed_dim = 32;
  c.logit_scale_init = std::log(1.0 / 0.07);
  auto& v = c.vision;
  v.type = "vit";
  v.image_size = 32;
  v.patch_size = 8;
  v.width = 64;
  v.layers = 2;
  v.heads = 2;
  v.mlp_ratio = 4.0;
  v.patch_bias = false;
  v.ln_pre = true;
  v.layer_norm_eps = 1e-5;
  v.resnet_layers = {3, 4, 6, 3};
  v.resnet_width = 64;
  v.attn_pool_heads = 32;
  v.batchnorm_train = false;
  v.act = cxr::Activation::QuickGelu;
  auto& t = c.text;
  t.type = "causal";
  t.vocab_size = 100;
  t.context_length = 16;
  t.width = 32;
  t.layers = 2;
  t.heads = 2;
  t.mlp_ratio = 4.0;
  t.act = cxr::Activation::QuickGelu;
  t.intermediate_size = 128;
  t.max_position = 32;
  t.type_vocab_size = 2;
  t.pad_id = 0;
  t.pooling = "cls";
  t.proj = "linear";
  t.proj_hidden = 0;
  t.layer_norm_eps = 1e-12;
  return c;
}
// The RN50 layout shrunk: one Bottleneck per stage, width 8 (so output-channel counts of 4 and 8, which
// exercise cxr/conv.h's routing). batchnorm_train: a tiny tower trained from scratch needs batch statistics.
inline cxr::ModelConfig tiny_resnet(bool batchnorm_train = false) {
  cxr::ModelConfig c = tiny_vit();
  c.vision.type = "resnet";
  c.vision.resnet_layers = {1, 1, 1, 1};
  c.vision.resnet_width = 8;
  c.vision.attn_pool_heads = 4;
  c.vision.batchnorm_train = batchnorm_train;
  return c;
}

inline cxr::EngineOptions engine_on(const std::string& device, uint64_t seed = 0, const std::string& precision = "fp32") {
  cxr::EngineOptions o;
  o.device = device;
  o.precision = precision;
  o.seed = seed;
  return o;
}

inline cxr::EngineOptions cpu_engine(uint64_t seed = 0) { return engine_on("cpu", seed); }

inline cxr::OptimizerConfig adamw(double lr, double weight_decay) {
  cxr::OptimizerConfig c;
  c.kind = "adamw";
  c.lr = lr;
  c.weight_decay = weight_decay;
  c.beta1 = 0.9;
  c.beta2 = 0.98;
  c.eps = 1e-6;
  c.momentum = 0.0;
  c.nesterov = false;
  return c;
}

inline cxr::OptimizerConfig sgd(double lr, double momentum, double weight_decay) {
  cxr::OptimizerConfig c = adamw(lr, weight_decay);
  c.kind = "sgd";
  c.momentum = momentum;
  return c;
}

// The CLIP loss (alpha 1, no smoothing), no clipping, one pass.
inline cxr::StepOptions clip_step(double lr) {
  cxr::StepOptions s;
  s.lr = lr;
  s.clip_grad_norm = 0.0;
  s.loss.kind = cxr::LossKind::Clip;
  s.loss.alpha = 1.0;
  s.loss.variant = cxr::RelaxVariantCfg::ClampDiag;
  s.loss.label_smoothing = 0.0;
  s.micro_batch = 0;
  return s;
}
}  // namespace cxr_test
