// Engine::saliency: the engine's side of saliency.h (device placement, CPU float32 results).
#include "cxr/engine.h"

namespace cxr {

SaliencyResult Engine::saliency(const torch::Tensor& images, const SaliencyRequest& req) {
  auto r = cxr::saliency(*model_, images.to(device_, torch::kFloat32), req);
  auto host = [](const torch::Tensor& t) { return t.defined() ? t.to(torch::kCPU, torch::kFloat32).contiguous() : t; };
  r.score = host(r.score);
  r.cam = host(r.cam);
  r.cam_grid = host(r.cam_grid);
  r.input_grad = host(r.input_grad);
  return r;
}

}  // namespace cxr
