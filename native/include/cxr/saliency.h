// Saliency of a zero-shot score: where, in an image, the model's evidence for one label lies.
//
// The score explained is the logit of the two-way zero-shot softmax of lib/eval/zeroShot.ts,
//   score = t · (û·v⁺ − û·v⁻),  û = u / ‖u‖,  u = encode_image(x),
// for a label's positive/negative text vectors v⁺, v⁻ (unit vectors: prompt ensembles, normalised by the
// caller) and temperature t; sigmoid(score) is the probability `predict` reports.
//
// Two maps come from one forward and one backward pass over the batch (no per-layer crossings):
//   - Grad-CAM (Selvaraju et al., ICCV 2017): A = the activation of the tower's last spatial stage,
//     α_c = mean over positions of ∂score/∂A_c, map = ReLU(Σ_c α_c·A_c), bilinearly upsampled to S×S.
//     ResNet towers: A = output of the last residual stage (before attention pooling), as in the paper.
//     ViT towers: A = the patch tokens entering the last transformer block (Grad-CAM on tokens, the
//     gradient-times-activation baseline of Chefer et al., CVPR 2021). The last block's *output* patch
//     tokens cannot be used: only its class token reaches the embedding, so their gradient is zero.
//     Attention rollout is not used: the fused scaled_dot_product_attention of libtorch 2.x returns no
//     attention weights.
//   - The input gradient ∂score/∂x (Simonyan et al. 2014), per pixel and channel, on request: the raw
//     derivative a finite-difference check can verify.
// Images are independent in eval mode (frozen BatchNorm statistics), so the gradient of Σ_i score_i is
// every image's own gradient.
#pragma once
#include <torch/torch.h>

#include "cxr/model.h"

namespace cxr {

struct SaliencyRequest {
  torch::Tensor positive;   // (D) unit vector of the label's positive prompts
  torch::Tensor negative;   // (D) unit vector of its negative prompts
  double temperature = 1;   // t > 0
  bool input_gradient = false;
};

struct SaliencyResult {
  torch::Tensor score;       // (N) the logit explained
  torch::Tensor cam;         // (N, S, S) Grad-CAM, >= 0, not normalised (all zero: no positive evidence)
  torch::Tensor cam_grid;    // (N, h, w) the same before upsampling
  torch::Tensor input_grad;  // (N, 3, S, S) ∂score/∂x, when asked for; else undefined
  std::string layer;         // the activation Grad-CAM used, in the checkpoint's key names
};

// Checks a request against a model (E_SHAPE, E_CONFIG, E_NUMERIC).
void check_saliency_request(const ClipModel& model, const SaliencyRequest& req);

// Saliency maps of `images` (N, 3, S, S) on the model's device, in the dtype of its parameters (float64
// models give float64 results: the finite-difference tests use that). Leaves the model's mode as it was
// and its parameters' .grad untouched.
SaliencyResult saliency(ClipModel& model, const torch::Tensor& images, const SaliencyRequest& req);

}  // namespace cxr
