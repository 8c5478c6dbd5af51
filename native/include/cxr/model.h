// The CLIP model of the native core: image towers (ViT, ModifiedResNet), text towers (causal CLIP
// transformer, BERT-style encoder) and the learnable logit scale. Parameter names follow the OpenAI CLIP
// state_dict layout (visual.*, transformer.*, token_embedding.*, ...) so that OpenAI-layout checkpoints map
// one to one; the BERT tower uses Hugging Face names under `text.`.
#pragma once
#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "cxr/config.h"
#include "cxr/errors.h"

namespace cxr {

torch::Tensor activation(const torch::Tensor& x, Activation act);

// Fused in-projection multi-head attention (nn.MultiheadAttention parameter layout).
struct AttentionImpl : torch::nn::Module {
  AttentionImpl(int64_t width, int64_t heads);
  // x: (N, L, W); mask: additive (L, L) or empty; causal: attend to earlier positions only (see attention.h).
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& mask = {}, bool causal = false);
  int64_t width, heads;
  torch::Tensor in_proj_weight, in_proj_bias;
  torch::nn::Linear out_proj{nullptr};
};
TORCH_MODULE(Attention);

struct MlpImpl : torch::nn::Module {
  MlpImpl(int64_t width, int64_t hidden, Activation act);
  torch::Tensor forward(const torch::Tensor& x);
  torch::nn::Linear c_fc{nullptr}, c_proj{nullptr};
  Activation act;
};
TORCH_MODULE(Mlp);

struct ResidualBlockImpl : torch::nn::Module {
  ResidualBlockImpl(int64_t width, int64_t heads, double mlp_ratio, Activation act, double eps = 1e-5);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& mask = {}, bool causal = false);
  torch::nn::LayerNorm ln_1{nullptr}, ln_2{nullptr};
  Attention attn{nullptr};
  Mlp mlp{nullptr};
};
TORCH_MODULE(ResidualBlock);

struct TransformerImpl : torch::nn::Module {
  TransformerImpl(int64_t width, int64_t layers, int64_t heads, double mlp_ratio, Activation act, double eps = 1e-5);
  torch::Tensor forward(torch::Tensor x, const torch::Tensor& mask = {}, bool causal = false);
  std::vector<ResidualBlock> blocks;
  torch::nn::ModuleList resblocks;
  int64_t width, layers;
};
TORCH_MODULE(Transformer);

// Common interface of the image towers.
struct ImageTower : torch::nn::Module {
  virtual torch::Tensor encode(const torch::Tensor& images) = 0;
  // The split Grad-CAM uses (saliency.h): encode(x) == cam_head(cam_features(x)). cam_features is the
  // activation the map is taken on, cam_spatial views it (or its gradient) as (N, C, h, w), cam_layer
  // names it.
  virtual torch::Tensor cam_features(const torch::Tensor& images) = 0;
  virtual torch::Tensor cam_head(const torch::Tensor& features) = 0;
  virtual torch::Tensor cam_spatial(const torch::Tensor& features) const { return features; }
  virtual std::string cam_layer() const = 0;
  virtual void init_parameters(at::Generator& gen) = 0;
  // Called when the model switches to train mode (ResNet keeps BatchNorm frozen unless configured).
  virtual void after_train_mode(bool on) {}
};

struct VisionTransformer : ImageTower {
  VisionTransformer(const VisionConfig& cfg, int64_t embed_dim);
  torch::Tensor encode(const torch::Tensor& images) override;
  torch::Tensor cam_features(const torch::Tensor& images) override;
  torch::Tensor cam_head(const torch::Tensor& features) override;
  torch::Tensor cam_spatial(const torch::Tensor& features) const override;
  std::string cam_layer() const override;
  void init_parameters(at::Generator& gen) override;
  VisionConfig cfg;
  torch::nn::Conv2d conv1{nullptr};
  torch::Tensor class_embedding, positional_embedding, proj;
  torch::nn::LayerNorm ln_pre{nullptr}, ln_post{nullptr};
  Transformer transformer{nullptr};
};

struct Bottleneck;
struct AttentionPool2d;
struct ModifiedResNet : ImageTower {
  ModifiedResNet(const VisionConfig& cfg, int64_t embed_dim);
  torch::Tensor encode(const torch::Tensor& images) override;
  torch::Tensor cam_features(const torch::Tensor& images) override;
  torch::Tensor cam_head(const torch::Tensor& features) override;
  std::string cam_layer() const override;
  void init_parameters(at::Generator& gen) override;
  void after_train_mode(bool on) override;
  VisionConfig cfg;
  torch::nn::Conv2d conv1{nullptr}, conv2{nullptr}, conv3{nullptr};
  torch::nn::BatchNorm2d bn1{nullptr}, bn2{nullptr}, bn3{nullptr};
  std::vector<std::vector<std::shared_ptr<Bottleneck>>> stages;
  std::shared_ptr<AttentionPool2d> attnpool;
};

struct BertLayer;
// Bidirectional post-LN encoder (BERT layout, Hugging Face parameter names) + pooling + linear projection.
struct BertTextTower : torch::nn::Module {
  BertTextTower(const TextConfig& cfg, int64_t embed_dim);
  torch::Tensor encode(const torch::Tensor& ids);
  void init_parameters(at::Generator& gen);
  TextConfig cfg;
  torch::nn::Embedding word_embeddings{nullptr}, position_embeddings{nullptr}, token_type_embeddings{nullptr};
  torch::nn::LayerNorm emb_ln{nullptr};
  std::vector<std::shared_ptr<BertLayer>> layers;
  torch::nn::Linear proj{nullptr};
  torch::nn::Sequential proj_mlp{nullptr};  // cfg.proj == "mlp"
};

class ClipModel : public torch::nn::Module {
 public:
  explicit ClipModel(const ModelConfig& cfg, uint64_t seed = 0);
  // images: (N, 3, S, S) float; returns (N, embed_dim), projected, un-normalised.
  torch::Tensor encode_image(const torch::Tensor& images);
  // ids: (N, L) int64 with L <= context_length; returns (N, embed_dim), projected, un-normalised.
  torch::Tensor encode_text(const torch::Tensor& ids);
  // Switches train/eval mode, keeping towers' special rules (frozen BatchNorm).
  void set_training(bool on);
  const ModelConfig& config() const { return cfg_; }
  ImageTower& visual() { return *visual_; }
  void init_parameters(uint64_t seed);
  // Checks inputs and throws cxr::Error (E_SHAPE, E_DTYPE, E_NUMERIC) with a clear message.
  void check_images(const torch::Tensor& images) const;
  void check_tokens(const torch::Tensor& ids) const;

  torch::Tensor logit_scale;

 private:
  ModelConfig cfg_;
  std::shared_ptr<ImageTower> visual_;
  // causal text tower (OpenAI layout, registered at top level)
  torch::nn::Embedding token_embedding_{nullptr};
  torch::Tensor positional_embedding_, text_projection_;
  Transformer transformer_{nullptr};
  torch::nn::LayerNorm ln_final_{nullptr};
  torch::Tensor causal_mask_;
  // BERT-style tower
  std::shared_ptr<BertTextTower> bert_;
};

// Validates a model configuration (E_CONFIG with the offending field named).
void validate_config(const ModelConfig& cfg);

}  // namespace cxr
