// Engine: one model on one device with its optimizer. The unit the binding wraps: every method is a
// coarse operation (encode a batch, one whole train step), safe to run on a worker thread.
#pragma once
#include <torch/torch.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "cxr/config.h"
#include "cxr/distributed.h"
#include "cxr/loss.h"
#include "cxr/model.h"
#include "cxr/saliency.h"

namespace cxr {

struct LoadReport {
  std::vector<std::string> missing;     // model tensors absent from the input
  std::vector<std::string> unexpected;  // input tensors the model does not have
};

struct NamedTensor {
  std::string name;
  torch::Tensor tensor;  // CPU, contiguous
};

// Parses "auto" | "cpu" | "cuda" | "cuda:N" into a device, checking availability (E_DEVICE).
torch::Device resolve_device(const std::string& spec);
bool cuda_available();
int64_t cuda_device_count();

class Engine {
 public:
  Engine(const ModelConfig& cfg, const EngineOptions& opt);

  // images: (N, 3, S, S) float32 on CPU. Returns (N, embed_dim) float32 on CPU.
  torch::Tensor encode_images(const torch::Tensor& images, bool normalize);
  // ids: (N, L) int64 on CPU.
  torch::Tensor encode_texts(const torch::Tensor& ids, bool normalize);
  // Saliency maps of a zero-shot score for images (N, 3, S, S) float32 on CPU (saliency.h): one forward and
  // one backward pass, float32 even under bf16 (gradients need the precision); results float32 on CPU.
  SaliencyResult saliency(const torch::Tensor& images, const SaliencyRequest& req);
  // Both towers and the scaled logits in one pass (eval mode, no grad).
  void configure_optimizer(const OptimizerConfig& cfg);
  // One step: forward both towers, loss, backward, optional clipping, optimizer step, logit-scale clamp.
  StepResult train_step(const torch::Tensor& images, const torch::Tensor& ids, const StepOptions& opt);
  // Loss of a batch without updating anything (validation).
  double eval_loss(const torch::Tensor& images, const torch::Tensor& ids, const LossConfig& loss);

  // Parameters and buffers, float32 on CPU, in registration order.
  std::vector<NamedTensor> state() const;
  // Copies matching tensors in (shape-checked, E_CHECKPOINT on mismatch); strict: missing/unexpected throw.
  LoadReport load_state(const std::vector<NamedTensor>& tensors, bool strict);
  // Optimizer state as bytes (torch serialization) and back, for exact resume.
  std::string optimizer_state() const;
  void load_optimizer_state(const std::string& bytes);

  // Freezes parameters whose name starts with any prefix (e.g. "visual.") and unfreezes the rest.
  void set_trainable(const std::vector<std::string>& frozen_prefixes);
  int64_t parameter_count(bool trainable_only) const;
  int64_t parameter_bytes() const;
  const ModelConfig& config() const { return model_->config(); }
  torch::Device device() const { return device_; }
  int64_t steps() const { return steps_; }

  // Data parallelism. init_distributed joins the process group (blocking rendezvous); from then on every
  // train_step takes the contrastive loss over the global batch (all ranks' rows) and sums the gradients
  // over ranks. broadcast_state copies rank 0's parameters and buffers to every rank.
  void init_distributed(const DistOptions& opt);
  bool distributed() const { return dist_ != nullptr; }
  Distributed& dist();
  void broadcast_state();
  ~Engine();

 private:
  torch::Tensor compute_loss(const torch::Tensor& u, const torch::Tensor& v, const LossConfig& loss,
                             const GatherFn& gather = {},
                             LossStats* stats = nullptr);
  GradReducer& reducer();
  std::shared_ptr<ClipModel> model_;
  EngineOptions opt_;
  torch::Device device_;
  OptimizerConfig opt_cfg_;
  std::unique_ptr<torch::optim::Optimizer> optimizer_;
  int64_t steps_ = 0;
  // Declared last: destroyed first (the reducer's hooks live on the model's parameters).
  std::unique_ptr<Distributed> dist_;
  std::unique_ptr<GradReducer> reducer_;
};

}  // namespace cxr
