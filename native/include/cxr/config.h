// Plain configuration structs of the native core. TypeScript validates and resolves every option; the
// binding copies one validated object into these structs; the core re-checks only invariants it relies on.
// The core has no defaults of its own: TypeScript sends every value (the defaults live in lib/train/schema.ts
// and lib/models/defaults.ts), and the binding requires every field. The zero / empty initialisers below only
// keep a default-constructed struct from holding garbage; they are not meaningful settings, and C++ callers
// (the tests, the bench) set every field they use.
#pragma once
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

namespace cxr {

enum class Activation { QuickGelu, Gelu };

struct VisionConfig {
  std::string type;  // "vit" | "resnet"
  int64_t image_size = 0;
  // ViT (OpenAI CLIP layout)
  int64_t patch_size = 0;
  int64_t width = 0;
  int64_t layers = 0;
  int64_t heads = 0;
  double mlp_ratio = 0.0;
  // timm ViTs (open_clip/BiomedCLIP image towers) differ from OpenAI's in three details:
  bool patch_bias = false;        // the patch embedding convolution has a bias
  bool ln_pre = false;            // LayerNorm before the transformer (timm has none)
  double layer_norm_eps = 0.0;   // OpenAI 1e-5, timm 1e-6
  // ModifiedResNet (CLIP RN50 family)
  std::vector<int64_t> resnet_layers;
  int64_t resnet_width = 0;       // stem width; the trunk ends at 32 * resnet_width channels
  int64_t attn_pool_heads = 0;    // heads of the attention pooling
  bool batchnorm_train = false;   // false: BatchNorm stays in eval mode while fine-tuning (frozen stats)
  Activation act = Activation::QuickGelu;
};

struct TextConfig {
  std::string type;  // "causal" (CLIP text transformer) | "bert" (bidirectional, post-LN)
  int64_t vocab_size = 0;
  int64_t context_length = 0;
  int64_t width = 0;
  int64_t layers = 0;
  int64_t heads = 0;
  double mlp_ratio = 0.0;
  Activation act = Activation::QuickGelu;
  // BERT-style tower
  int64_t intermediate_size = 0;
  int64_t max_position = 0;    // number of position embeddings of the BERT tower
  int64_t type_vocab_size = 0;
  int64_t pad_id = 0;
  std::string pooling;  // "cls" | "mean"
  std::string proj;   // "linear" (proj.weight) | "mlp" (open_clip: proj.0, GELU, proj.2; no biases)
  int64_t proj_hidden = 0;       // hidden width of the "mlp" projection; 0: (width + embed_dim) / 2
  double layer_norm_eps = 0.0;
};

struct ModelConfig {
  int64_t embed_dim = 0;
  VisionConfig vision;
  TextConfig text;
  double logit_scale_init = 0.0;  // log of the initial logit scale
};

enum class LossKind { Clip, Relaxed };
enum class RelaxVariantCfg { ClampDiag, ClampNumerator, Margin };

struct LossConfig {
  LossKind kind = LossKind::Clip;
  double alpha = 0.0;
  RelaxVariantCfg variant = RelaxVariantCfg::ClampDiag;
  double label_smoothing = 0.0;
  // Adaptive threshold (clamp forms): q in (0, 1], 0 = the fixed alpha above. alpha_running is the
  // caller's running α of the previous step (NaN: none yet), alpha_momentum the EMA momentum β.
  double alpha_quantile = 0.0;
  double alpha_running = std::nan("");
  double alpha_momentum = 0.0;
  // Margin variant: m in cosine units (> 0; +inf = plain CLIP).
  double margin = 0.0;
};

// Statistics of the contrastive loss of a step (cxr::ContrastiveLossStats): engagement of the
// relaxation and the positive / negative similarities of the batch.
struct LossStats {
  double engaged = 0, alpha = 1, batch_quantile = std::nan("");
  double pos_mean = 0, pos_q10 = 0, pos_q50 = 0, pos_q90 = 0, neg_mean = 0;
};

struct OptimizerConfig {
  std::string kind;  // "adamw" | "sgd"
  double lr = 0.0;
  double weight_decay = 0.0;
  double beta1 = 0.0, beta2 = 0.0, eps = 0.0;
  double momentum = 0.0;
  bool nesterov = false;
};

struct EngineOptions {
  std::string device;     // resolved by TypeScript from "auto" | "cpu" | "cuda:N"
  std::string precision;  // "fp32" | "bf16" (autocast, CUDA only)
  uint64_t seed = 0;
};

struct StepOptions {
  double lr = 0.0;
  double clip_grad_norm = 0.0;  // <= 0: no clipping (the norm is still measured)
  LossConfig loss;
  // > 0 and < batch: gradient accumulation with feature caching (open_clip style). Embeddings of every
  // micro-batch are computed once without gradient; each micro-batch is then recomputed with gradient
  // against that full set, so the loss is over the whole batch while activations are held for one
  // micro-batch at a time. 0: the whole batch in one pass.
  int64_t micro_batch = 0;
};

struct StepResult {
  double loss = 0, grad_norm = 0, logit_scale = 0;
  double ms_forward = 0, ms_backward = 0, ms_optimizer = 0, ms_total = 0;
  // Distributed: time waiting on collectives (embedding all-gather, gradient all-reduce not hidden behind
  // backward); batch is then the global batch of the step.
  double ms_comm = 0;
  int64_t batch = 0;
  int64_t world_size = 1;
  // Distributed: gradient buckets, and how many of them went out from the hooks before backward ended.
  int64_t buckets = 0, buckets_during_backward = 0;
  LossStats relax;
};

}  // namespace cxr
