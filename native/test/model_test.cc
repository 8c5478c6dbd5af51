// C++ tests of the core model and engine (no Node needed; also run on CUDA when available).
#include "cxr/engine.h"
#include "test_models.h"
#include "test_util.h"

using namespace cxr;

using cxr_test::adamw;
using cxr_test::clip_step;
using cxr_test::cpu_engine;
using cxr_test::sgd;
using cxr_test::tiny_vit;
static ModelConfig tiny_resnet() {
  ModelConfig c = tiny_vit();
  c.vision.type = "resnet";
  c.vision.resnet_layers = {1, 1, 1, 1};
  c.vision.resnet_width = 8;
  c.vision.attn_pool_heads = 4;
  c.vision.batchnorm_train = true;  // a tiny tower trained from scratch needs batch statistics
  return c;
}
static ModelConfig tiny_bert() {
  ModelConfig c = tiny_vit();
  c.text.type = "bert";
  c.text.intermediate_size = 64;
  c.text.max_position = 32;
  return c;
}

static torch::Tensor make_ids(int64_t n, int64_t L, int64_t vocab, uint64_t seed) {
  auto g = at::make_generator<at::CPUGeneratorImpl>(seed);
  auto ids = torch::randint(1, vocab - 1, {n, L}, g, torch::kLong);
  for (int64_t i = 0; i < n; ++i) {
    int64_t len = 3 + (i % (L - 4));
    ids[i][len] = vocab - 1;  // end token = highest id
    ids[i].narrow(0, len + 1, L - len - 1).zero_();
  }
  return ids;
}

static std::vector<std::pair<std::string, ModelConfig>> configs() {
  return {{"vit", tiny_vit()}, {"resnet", tiny_resnet()}, {"bert", tiny_bert()}};
}

static std::string device_spec() { return cuda_available() ? "cuda:0" : "cpu"; }

CXR_TEST(shapes_and_determinism) {
  for (auto& [name, cfg] : configs()) {
    EngineOptions o = cpu_engine(7);
    Engine a(cfg, o), b(cfg, o);
    auto g = at::make_generator<at::CPUGeneratorImpl>(1);
    auto imgs = torch::randn({3, 3, 32, 32}, g);
    auto ids = make_ids(3, 16, 100, 2);
    auto u1 = a.encode_images(imgs, false), u2 = b.encode_images(imgs, false);
    auto v1 = a.encode_texts(ids, false), v2 = b.encode_texts(ids, false);
    EXPECT_TRUE(u1.sizes().equals({3, 32}));
    EXPECT_TRUE(v1.sizes().equals({3, 32}));
    EXPECT_TRUE(torch::equal(u1, u2));
    EXPECT_TRUE(torch::equal(v1, v2));
    auto un = a.encode_images(imgs, true);
    EXPECT_NEAR(un.norm(2, -1).max().item<double>(), 1.0, 1e-5);
  }
}

CXR_TEST(train_step_lowers_loss) {
  for (auto& [name, cfg] : configs()) {
    EngineOptions o = cpu_engine(3);
    Engine e(cfg, o);
    e.configure_optimizer(adamw(1e-3, 0.0));
    auto g = at::make_generator<at::CPUGeneratorImpl>(5);
    // Low-frequency images (like radiographs): white noise averages out in pooled towers.
    auto imgs = torch::nn::functional::interpolate(
        torch::randn({8, 3, 4, 4}, g),
        torch::nn::functional::InterpolateFuncOptions().size(std::vector<int64_t>{32, 32}).mode(torch::kNearest));
    auto ids = make_ids(8, 16, 100, 6);
    StepOptions so = clip_step(1e-3);
    double first = 0, last = 0;
    for (int i = 0; i < 20; ++i) {
      auto r = e.train_step(imgs, ids, so);
      if (i == 0) first = r.loss;
      last = r.loss;
      EXPECT_TRUE(std::isfinite(r.grad_norm));
    }
    std::printf("  %s: loss %.4f -> %.4f\n", name.c_str(), first, last);
    EXPECT_TRUE(last < first * 0.75);
  }
}

CXR_TEST(frozen_batchnorm_keeps_running_stats) {
  for (bool bn_train : {false, true}) {
    ModelConfig c = tiny_resnet();
    c.vision.batchnorm_train = bn_train;
    EngineOptions o = cpu_engine();
    Engine e(c, o);
    e.configure_optimizer(adamw(0.0, 0.0));
    auto before = e.state();
    StepOptions so = clip_step(0.0);
    e.train_step(torch::randn({4, 3, 32, 32}), make_ids(4, 16, 100, 3), so);
    auto after = e.state();
    bool changed = false;
    for (size_t i = 0; i < before.size(); ++i)
      if (before[i].name.find("running_mean") != std::string::npos && !torch::equal(before[i].tensor, after[i].tensor))
        changed = true;
    EXPECT_TRUE(changed == bn_train);
  }
}

CXR_TEST(state_round_trip) {
  EngineOptions o = cpu_engine(1);
  Engine a(tiny_vit(), o);
  o.seed = 2;
  Engine b(tiny_vit(), o);
  auto rep = b.load_state(a.state(), true);
  EXPECT_TRUE(rep.missing.empty() && rep.unexpected.empty());
  auto imgs = torch::randn({2, 3, 32, 32});
  EXPECT_TRUE(torch::equal(a.encode_images(imgs, false), b.encode_images(imgs, false)));
  // OpenAI key names
  bool has_conv = false, has_tok = false;
  for (auto& nt : a.state()) {
    has_conv |= nt.name == "visual.conv1.weight";
    has_tok |= nt.name == "token_embedding.weight";
  }
  EXPECT_TRUE(has_conv && has_tok);
}

CXR_TEST(optimizer_state_resume_is_exact) {
  EngineOptions o = cpu_engine(1);
  auto imgs = torch::randn({4, 3, 32, 32});
  auto ids = make_ids(4, 16, 100, 9);
  StepOptions so = clip_step(1e-3);
  Engine a(tiny_vit(), o);
  a.configure_optimizer(adamw(1e-5, 0.2));
  a.train_step(imgs, ids, so);
  auto st = a.state();
  auto os = a.optimizer_state();
  auto r1 = a.train_step(imgs, ids, so);
  Engine b(tiny_vit(), o);
  b.configure_optimizer(adamw(1e-5, 0.2));
  b.load_state(st, true);
  b.load_optimizer_state(os);
  auto r2 = b.train_step(imgs, ids, so);
  EXPECT_NEAR(r1.loss, r2.loss, 0.0);
  auto sa = a.state(), sb = b.state();
  for (size_t i = 0; i < sa.size(); ++i) EXPECT_TRUE(torch::equal(sa[i].tensor, sb[i].tensor));
}

CXR_TEST(accumulation_equals_one_big_batch) {
  // Feature-cached accumulation over 4 micro-batches gives the gradient of the full-batch loss.
  auto g = at::make_generator<at::CPUGeneratorImpl>(11);
  auto imgs = torch::randn({8, 3, 32, 32}, g);
  auto ids = make_ids(8, 16, 100, 12);
  OptimizerConfig oc = sgd(0.1, 0.0, 0.0);
  StepOptions so = clip_step(0.1);
  so.loss.kind = LossKind::Relaxed;
  so.loss.alpha = 0.5;
  EngineOptions o = cpu_engine(5);
  Engine a(tiny_vit(), o), b(tiny_vit(), o);
  a.configure_optimizer(oc);
  b.configure_optimizer(oc);
  auto ra = a.train_step(imgs, ids, so);
  so.micro_batch = 2;
  auto rb = b.train_step(imgs, ids, so);
  EXPECT_NEAR(ra.loss, rb.loss, 1e-5);
  EXPECT_NEAR(ra.grad_norm, rb.grad_norm, 1e-4 * ra.grad_norm);
  auto sa = a.state(), sb = b.state();
  double maxdiff = 0;
  for (size_t i = 0; i < sa.size(); ++i) maxdiff = std::max(maxdiff, (sa[i].tensor - sb[i].tensor).abs().max().item<double>());
  std::printf("  max weight difference after one SGD step: %.3g\n", maxdiff);
  EXPECT_TRUE(maxdiff < 1e-5);
}

CXR_TEST(bad_inputs_throw_codes) {
  EngineOptions o = cpu_engine();
  Engine e(tiny_vit(), o);
  EXPECT_THROWS_CODE(e.encode_images(torch::randn({2, 1, 32, 32}), false), Shape);
  EXPECT_THROWS_CODE(e.encode_images(torch::randn({2, 3, 31, 32}), false), Shape);
  auto nan = torch::randn({2, 3, 32, 32});
  nan[0][0][0][0] = std::nan("");
  EXPECT_THROWS_CODE(e.encode_images(nan, false), Numeric);
  EXPECT_THROWS_CODE(e.encode_texts(torch::full({2, 4}, 100, torch::kLong), false), Shape);
  EXPECT_THROWS_CODE(e.encode_texts(torch::ones({2, 17}, torch::kLong), false), Shape);
  e.configure_optimizer(adamw(1e-3, 0.0));
  StepOptions so = clip_step(1e-3);
  EXPECT_THROWS_CODE(e.train_step(torch::randn({1, 3, 32, 32}), make_ids(1, 16, 100, 1), so), Shape);
  EXPECT_THROWS_CODE(e.train_step(torch::randn({2, 3, 32, 32}), make_ids(3, 16, 100, 1), so), Shape);
  ModelConfig bad = tiny_vit();
  bad.vision.patch_size = 7;
  EXPECT_THROWS_CODE(Engine(bad, o), Config);
  if (!cuda_available()) {
    EngineOptions oc = cpu_engine();
    oc.device = "cuda:0";
    EXPECT_THROWS_CODE(Engine(tiny_vit(), oc), Device);
  }
}

CXR_TEST_MAIN()
