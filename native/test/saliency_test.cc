// C++ tests of saliency.h: the input gradient equals central finite differences of the zero-shot score
// (float64 model), Grad-CAM's channel weights equal finite differences of the score with respect to the
// activation, maps are deterministic, and bad requests get their codes.
#include "cxr/engine.h"
#include "cxr/saliency.h"
#include "test_models.h"
#include "test_util.h"

using namespace cxr;
using cxr_test::cpu_engine;
using cxr_test::tiny_vit;
using cxr_test::tiny_resnet;

static std::vector<std::pair<std::string, ModelConfig>> towers() {
  ModelConfig vit1 = tiny_vit();
  vit1.vision.layers = 1;  // Grad-CAM then sits on the embedded patches
  return {{"vit", tiny_vit()}, {"vit-1-layer", vit1}, {"resnet", tiny_resnet()}};
}

// A float64 model with every parameter nudged off its initialisation (zero-initialised BatchNorm scales
// would otherwise switch whole residual branches off).
static std::shared_ptr<ClipModel> double_model(const ModelConfig& cfg) {
  auto m = std::make_shared<ClipModel>(cfg, 3);
  m->to(torch::kDouble);
  auto g = at::make_generator<at::CPUGeneratorImpl>(11);
  torch::NoGradGuard ng;
  for (auto& p : m->parameters()) p.add_(torch::randn(p.sizes(), g, torch::kDouble) * 0.05);
  return m;
}

static SaliencyRequest request(int64_t D, torch::ScalarType dt, bool input_gradient) {
  auto g = at::make_generator<at::CPUGeneratorImpl>(5);
  SaliencyRequest r;
  r.positive = torch::randn({D}, g, dt);
  r.negative = torch::randn({D}, g, dt);
  r.positive /= r.positive.norm();
  r.negative /= r.negative.norm();
  r.temperature = 3.0;
  r.input_gradient = input_gradient;
  return r;
}

// The score as saliency.h defines it, computed through encode_image (independent of the Grad-CAM split).
static torch::Tensor score_of(ClipModel& m, const torch::Tensor& x, const SaliencyRequest& r) {
  torch::NoGradGuard ng;
  auto u = m.encode_image(x);
  u = u / u.norm(2, -1, true);
  return u.matmul(r.positive - r.negative) * r.temperature;
}

CXR_TEST(input_gradient_matches_finite_differences_float64) {
  for (auto& [name, cfg] : towers()) {
    auto m = double_model(cfg);
    auto g = at::make_generator<at::CPUGeneratorImpl>(9);
    auto x = torch::randn({2, 3, 32, 32}, g, torch::kDouble);
    auto req = request(cfg.embed_dim, torch::kDouble, true);
    auto r = saliency(*m, x, req);
    EXPECT_TRUE(r.input_grad.scalar_type() == torch::kDouble);
    EXPECT_TRUE(torch::allclose(r.score, score_of(*m, x, req), 1e-12, 1e-12));
    const double h = 1e-6;
    // A few pixels of both images, in several channels and corners of the image.
    const int64_t px[][4] = {{0, 0, 0, 0}, {0, 1, 13, 7}, {0, 2, 31, 31}, {1, 0, 16, 16}, {1, 2, 3, 28}, {1, 1, 25, 2}};
    for (const auto& p : px) {
      auto xp = x.clone(), xm = x.clone();
      xp[p[0]][p[1]][p[2]][p[3]] += h;
      xm[p[0]][p[1]][p[2]][p[3]] -= h;
      const double fd = (score_of(*m, xp, req)[p[0]].item<double>() - score_of(*m, xm, req)[p[0]].item<double>()) / (2 * h);
      const double an = r.input_grad[p[0]][p[1]][p[2]][p[3]].item<double>();
      EXPECT_NEAR(an, fd, 1e-7 + 1e-5 * std::fabs(fd));
    }
    // The other image's pixels do not move this image's score: the gradient is per image.
    EXPECT_TRUE(r.input_grad.abs().sum().item<double>() > 0);
  }
}

CXR_TEST(gradcam_weights_match_finite_differences_of_the_activation) {
  for (auto& [name, cfg] : towers()) {
    auto m = double_model(cfg);
    m->set_training(false);
    auto g = at::make_generator<at::CPUGeneratorImpl>(21);
    auto x = torch::randn({1, 3, 32, 32}, g, torch::kDouble);
    auto req = request(cfg.embed_dim, torch::kDouble, false);
    auto r = saliency(*m, x, req);
    auto& tower = m->visual();
    torch::NoGradGuard ng;
    auto A = tower.cam_features(x);
    auto head_score = [&](const torch::Tensor& a) {
      auto u = tower.cam_head(a);
      return (u / u.norm(2, -1, true)).matmul(req.positive - req.negative).item<double>() * req.temperature;
    };
    // α_c = mean over positions of ∂score/∂A_c = (d/dε score(A + ε·1_c)) / (h·w), with 1_c the indicator of
    // channel c at every spatial position, in the tower's own layout: (N, C, h, w) for ResNet, the patch
    // tokens (N, 1 + h·w, C) without the class token for ViT.
    auto As = tower.cam_spatial(A);
    const int64_t C = As.size(1), hh = As.size(2), ww = As.size(3);
    EXPECT_TRUE(r.cam_grid.sizes().equals({1, hh, ww}));
    auto alpha = torch::zeros({C}, torch::kDouble);
    const double eps = 1e-6;
    for (int64_t c = 0; c < C; ++c) {
      auto ind = torch::zeros_like(A);
      if (A.dim() == 3) ind.narrow(1, 1, hh * ww).select(2, c).fill_(1.0);
      else ind.select(1, c).fill_(1.0);
      EXPECT_TRUE(tower.cam_spatial(ind).select(1, c).sum().item<double>() == static_cast<double>(hh * ww));
      alpha[c] = (head_score(A + eps * ind) - head_score(A - eps * ind)) / (2 * eps) / static_cast<double>(hh * ww);
    }
    auto expect = torch::relu((alpha.view({1, C, 1, 1}) * As).sum(1));
    EXPECT_TRUE(torch::allclose(r.cam_grid, expect, 1e-5, 1e-9));
    EXPECT_TRUE(r.cam_grid.max().item<double>() > 0);  // a map that is all zero would test nothing
    EXPECT_TRUE(r.cam.sizes().equals({1, 32, 32}));
    EXPECT_TRUE(r.cam.min().item<double>() >= 0);
    EXPECT_TRUE(!r.layer.empty());
  }
}

CXR_TEST(encode_is_head_of_features) {
  for (auto& [name, cfg] : towers()) {
    ClipModel m(cfg, 4);
    m.set_training(false);
    torch::NoGradGuard ng;
    auto g = at::make_generator<at::CPUGeneratorImpl>(2);
    auto x = torch::randn({2, 3, 32, 32}, g);
    EXPECT_TRUE(torch::equal(m.encode_image(x), m.visual().cam_head(m.visual().cam_features(x))));
  }
}

CXR_DEVICE_TEST(engine_saliency_deterministic_and_side_effect_free) {
  for (auto& [name, cfg] : towers()) {
    Engine e(cfg, cxr_test::engine_on(device, 7));
    auto g = at::make_generator<at::CPUGeneratorImpl>(1);
    auto x = torch::randn({3, 3, 32, 32}, g);
    auto req = request(cfg.embed_dim, torch::kFloat, true);
    auto before = e.state();
    auto a = e.saliency(x, req);
    auto b = e.saliency(x, req);
    EXPECT_TRUE(torch::equal(a.cam, b.cam));
    EXPECT_TRUE(torch::equal(a.input_grad, b.input_grad));
    EXPECT_TRUE(torch::equal(a.score, b.score));
    EXPECT_TRUE(a.cam.device().is_cpu() && a.cam.scalar_type() == torch::kFloat);
    EXPECT_TRUE(a.cam.sizes().equals({3, 32, 32}) && a.input_grad.sizes().equals({3, 3, 32, 32}));
    // The score is the zero-shot logit of the normalised embedding.
    auto u = e.encode_images(x, true);
    EXPECT_TRUE(torch::allclose(a.score, u.matmul(req.positive - req.negative) * req.temperature, 1e-4, 1e-5));
    // No parameter or buffer changed.
    auto after = e.state();
    for (size_t i = 0; i < before.size(); ++i) EXPECT_TRUE(torch::equal(before[i].tensor, after[i].tensor));
    // Without the input gradient, the same map.
    req.input_gradient = false;
    auto c = e.saliency(x, req);
    EXPECT_TRUE(!c.input_grad.defined());
    EXPECT_TRUE(torch::allclose(a.cam, c.cam, 1e-6, 1e-7));
  }
}

CXR_TEST(bad_requests_get_codes) {
  Engine e(tiny_vit(), cpu_engine());
  auto x = torch::randn({1, 3, 32, 32});
  auto req = request(32, torch::kFloat, false);
  auto bad = req;
  bad.positive = torch::randn({31});
  EXPECT_THROWS_CODE(e.saliency(x, bad), Shape);
  bad = req;
  bad.negative = torch::full({32}, std::numeric_limits<float>::quiet_NaN());
  EXPECT_THROWS_CODE(e.saliency(x, bad), Numeric);
  bad = req;
  bad.temperature = 0;
  EXPECT_THROWS_CODE(e.saliency(x, bad), Config);
  EXPECT_THROWS_CODE(e.saliency(torch::randn({1, 3, 16, 16}), req), Shape);
  EXPECT_THROWS_CODE(e.saliency(torch::randn({0, 3, 32, 32}), req), Shape);
}

CXR_TEST_MAIN()
