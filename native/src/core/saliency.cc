// Grad-CAM and input-gradient saliency of a zero-shot score (see saliency.h for the method and references).
#include "cxr/saliency.h"

#include <cmath>

namespace F = torch::nn::functional;

namespace cxr {

void check_saliency_request(const ClipModel& model, const SaliencyRequest& req) {
  const int64_t D = model.config().embed_dim;
  for (const auto* t : {&req.positive, &req.negative}) {
    const char* side = t == &req.positive ? "positive" : "negative";
    CXR_CHECK(t->defined() && t->dim() == 1 && t->size(0) == D, Shape,
              std::string("the ") + side + " text vector must have the embedding size " + std::to_string(D));
    CXR_CHECK(t->is_floating_point(), Dtype, std::string("the ") + side + " text vector must be floating point");
    CXR_CHECK(torch::isfinite(*t).all().item<bool>(), Numeric, std::string("the ") + side + " text vector has NaN or Inf");
  }
  CXR_CHECK(std::isfinite(req.temperature) && req.temperature > 0, Config,
            "temperature must be a positive finite number, got " + std::to_string(req.temperature));
}

SaliencyResult saliency(ClipModel& model, const torch::Tensor& images, const SaliencyRequest& req) {
  model.check_images(images);
  check_saliency_request(model, req);
  auto p0 = model.parameters();
  CXR_CHECK(!p0.empty(), Internal, "the model has no parameters");
  const auto opts = p0.front().options();  // the model's device and dtype
  const bool was_training = model.is_training();
  model.set_training(false);
  struct Restore {
    ClipModel& m;
    bool on;
    ~Restore() { m.set_training(on); }
  } restore{model, was_training};

  torch::AutoGradMode grad_on(true);
  auto& tower = model.visual();
  auto x = images.to(opts).detach().requires_grad_(true);
  auto feat = tower.cam_features(x);
  auto u = tower.cam_head(feat);
  auto un = u / u.norm(2, -1, true).clamp_min(1e-12);
  auto dir = (req.positive.to(opts) - req.negative.to(opts)) * req.temperature;
  auto score = un.matmul(dir);  // (N)
  std::vector<torch::Tensor> inputs{feat};
  if (req.input_gradient) inputs.push_back(x);
  // Only the requested inputs get gradients: parameters' .grad stay as they were.
  auto grads = torch::autograd::grad({score.sum()}, inputs, {}, /*retain_graph=*/false, /*create_graph=*/false,
                                     /*allow_unused=*/true);

  SaliencyResult r;
  r.layer = tower.cam_layer();
  torch::NoGradGuard ng;
  r.score = score.detach();
  auto A = tower.cam_spatial(feat.detach());                                  // (N, C, h, w)
  auto G = grads[0].defined() ? tower.cam_spatial(grads[0]) : torch::zeros_like(A);
  auto alpha = G.mean({2, 3}, /*keepdim=*/true);                             // (N, C, 1, 1)
  r.cam_grid = torch::relu((alpha * A).sum(1));                               // (N, h, w)
  const int64_t S = images.size(2);
  r.cam = F::interpolate(r.cam_grid.unsqueeze(1), F::InterpolateFuncOptions()
                                                      .size(std::vector<int64_t>{S, S})
                                                      .mode(torch::kBilinear)
                                                      .align_corners(false))
              .squeeze(1);
  if (req.input_gradient) r.input_grad = grads[1].defined() ? grads[1] : torch::zeros_like(x);
  return r;
}

}  // namespace cxr
