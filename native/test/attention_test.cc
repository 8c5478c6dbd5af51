// The two attention paths (attention.h) give the same outputs and gradients for every mask the towers use:
// none (ViT), causal (CLIP text), additive padding (BERT), one query against many keys (ResNet pooling).
#include <cstdio>
#include <limits>

#include "cxr/attention.h"
#include "cxr/engine.h"
#include "test_util.h"

using namespace cxr;

namespace {
struct Case {
  const char* name;
  int64_t n, lq, lk, width, heads;
  enum { None, Causal, Padding } mask;
};

const Case kCases[] = {
    {"vit (no mask)", 3, 17, 17, 64, 4, Case::None},
    {"clip text (causal)", 4, 12, 12, 32, 2, Case::Causal},
    {"bert (padding, one row all padding)", 3, 9, 9, 32, 4, Case::Padding},
    {"resnet attnpool (Lq 1)", 2, 1, 17, 64, 8, Case::None},
};

torch::Tensor padding_mask(int64_t n, int64_t l, const torch::TensorOptions& o) {
  auto keep = torch::ones({n, l}, o);
  for (int64_t i = 0; i < n; ++i) keep[i].narrow(0, l - 1 - i * 2 > 0 ? l - 1 - i * 2 : 0, i * 2 + 1).zero_();
  keep[n - 1].zero_();  // all padding: the mask is finite (-1e4), so the row stays finite too
  return (1.0 - keep).mul(-1e4).view({n, 1, 1, l});
}

struct Run {
  torch::Tensor out, gq, gk, gv;
};

Run run(const Case& c, AttentionPath path, const torch::Tensor& q0, const torch::Tensor& k0, const torch::Tensor& v0,
        const torch::Tensor& mask, const torch::Tensor& upstream) {
  auto q = q0.clone().requires_grad_(true), k = k0.clone().requires_grad_(true), v = v0.clone().requires_grad_(true);
  auto out = multi_head_attention(q, k, v, c.heads, mask, c.mask == Case::Causal, path);
  (out * upstream).sum().backward();
  return {out.detach(), q.grad(), k.grad(), v.grad()};
}

std::vector<std::string> devices() { return cxr_test::test_devices(); }
}  // namespace

CXR_TEST(fused_and_explicit_attention_agree) {
  if (!fused_attention_compiled()) {
    std::printf("  fused attention not compiled (libtorch < 2.0): explicit path only\n");
    return;
  }
  for (const auto& dev : devices()) {
    std::printf("  device %s\n", dev.c_str());
    auto o = torch::TensorOptions().dtype(torch::kFloat32).device(torch::Device(dev));
    for (const auto& c : kCases) {
      auto g = at::make_generator<at::CPUGeneratorImpl>(11);
      auto q = torch::randn({c.n, c.lq, c.width}, g).to(o);
      auto k = torch::randn({c.n, c.lk, c.width}, g).to(o);
      auto v = torch::randn({c.n, c.lk, c.width}, g).to(o);
      auto up = torch::randn({c.n, c.lq, c.width}, g).to(o);
      torch::Tensor mask;
      if (c.mask == Case::Padding) mask = padding_mask(c.n, c.lk, o);
      auto a = run(c, AttentionPath::Explicit, q, k, v, mask, up);
      auto b = run(c, AttentionPath::Fused, q, k, v, mask, up);
      // An all-padding row (last batch item of the padding case) adds -1e4 to every logit, where float32 keeps
      // only ~1e-3 of the scores: both paths are then equally approximate, so it is checked for finiteness and
      // compared at that resolution; every other row at 1e-5.
      const int64_t exact = c.mask == Case::Padding ? c.n - 1 : c.n;
      auto maxdiff = [&](const torch::Tensor& x, const torch::Tensor& y, int64_t from, int64_t len) {
        return (x.narrow(0, from, len) - y.narrow(0, from, len)).abs().max().item<double>();
      };
      auto grads = [&](int64_t from, int64_t len) {
        return std::max({maxdiff(a.gq, b.gq, from, len), maxdiff(a.gk, b.gk, from, len), maxdiff(a.gv, b.gv, from, len)});
      };
      const double d_out = maxdiff(a.out, b.out, 0, c.n), d_g = grads(0, exact);
      std::printf("    %-38s max |out diff| %.2e, max |grad diff| %.2e\n", c.name, d_out, d_g);
      for (const auto* t : {&b.out, &b.gq, &b.gk, &b.gv}) EXPECT_TRUE(torch::isfinite(*t).all().item<bool>());
      EXPECT_NEAR(d_out, 0.0, 1e-5);
      EXPECT_NEAR(d_g, 0.0, 1e-5);
      if (exact < c.n) {
        const double d_pad = grads(exact, c.n - exact);
        std::printf("    %-38s max |grad diff| %.2e (all-padding row)\n", "", d_pad);
        EXPECT_NEAR(d_pad, 0.0, 1e-2);
      }
    }
  }
}

CXR_TEST(explicit_causal_mask_built_or_given_is_the_same) {
  // The CLIP text tower passes its registered causal mask; without one the explicit path builds it.
  auto g = at::make_generator<at::CPUGeneratorImpl>(3);
  auto q = torch::randn({2, 7, 16}, g), k = torch::randn({2, 7, 16}, g), v = torch::randn({2, 7, 16}, g);
  auto mask = torch::full({7, 7}, -std::numeric_limits<float>::infinity()).triu(1);
  auto given = multi_head_attention(q, k, v, 2, mask, true, AttentionPath::Explicit);
  auto built = multi_head_attention(q, k, v, 2, {}, true, AttentionPath::Explicit);
  EXPECT_TRUE(torch::equal(given, built));
  // Position 0 sees only itself: its output is its own value vector, projected through one head each.
  auto first = multi_head_attention(q, k, v, 2, {}, true, AttentionPath::Explicit).select(1, 0);
  EXPECT_NEAR((first - v.select(1, 0)).abs().max().item<double>(), 0.0, 1e-6);
}

CXR_TEST_MAIN()
