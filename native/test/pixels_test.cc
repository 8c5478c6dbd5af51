// uint8 grayscale batches turned into normalised three-channel float images on the device: against the
// same arithmetic done by hand in float64 on the CPU (pixel loops, the host sampler's rules), with and
// without the per-image geometric warp and intensity affine, and the error contract.
#include <torch/torch.h>

#include "cxr/errors.h"
#include "cxr/pixels.h"
#include "test_util.h"

using namespace cxr;

namespace {
PixelBatch make_batch(int64_t n, int64_t s, bool affine) {
  auto g = at::make_generator<at::CPUGeneratorImpl>(3);
  PixelBatch p;
  p.bytes = torch::randint(0, 256, {n, 1, s, s}, g, torch::kLong).to(torch::kUInt8);
  p.bytes[0].fill_(0);
  p.bytes[n - 1][0][0][0] = 255;
  // OpenAI CLIP's statistics: scale = 1/std, offset = -mean/std.
  const double mean[3] = {0.48145466, 0.4578275, 0.40821073}, stdv[3] = {0.26862954, 0.26130258, 0.27577711};
  for (int c = 0; c < 3; ++c) {
    p.scale[c] = 1.0 / stdv[c];
    p.offset[c] = -mean[c] / stdv[c];
  }
  if (affine) {
    p.gain = torch::linspace(0.6, 1.5, n, torch::kFloat32);
    p.bias = torch::linspace(-0.2, 0.3, n, torch::kFloat32);
  }
  return p;
}

// The sampler of lib/data/images.ts (warpInto), one pixel at a time in float64.
double sample(const double* src, int64_t h, int64_t w, double sx, double sy) {
  if (sx < -0.5 || sy < -0.5 || sx > w - 0.5 || sy > h - 0.5) return 0.0;
  const double xc = sx < 0 ? 0 : sx > w - 1 ? w - 1 : sx, yc = sy < 0 ? 0 : sy > h - 1 ? h - 1 : sy;
  const int64_t x0 = static_cast<int64_t>(xc), y0 = static_cast<int64_t>(yc);
  const int64_t x1 = x0 + 1 < w ? x0 + 1 : x0, y1 = y0 + 1 < h ? y0 + 1 : y0;
  const double fx = xc - x0, fy = yc - y0;
  const double a = src[y0 * w + x0], b = src[y0 * w + x1], c = src[y1 * w + x0], e = src[y1 * w + x1];
  return a + (b - a) * fx + (c - a) * fy + (a - b - c + e) * fx * fy;
}

torch::Tensor by_hand(const PixelBatch& p) {
  auto v = (p.bytes.to(torch::kDouble) / 255.0).contiguous();
  const int64_t n = v.size(0), h = v.size(2), w = v.size(3);
  if (p.warp.defined()) {
    auto out = torch::zeros_like(v);
    auto a = p.warp.contiguous();
    const double* A = a.data_ptr<double>();
    for (int64_t k = 0; k < n; ++k) {
      const double* src = v.data_ptr<double>() + k * h * w;
      double* dst = out.data_ptr<double>() + k * h * w;
      const double* c = A + 6 * k;
      for (int64_t y = 0; y < h; ++y)
        for (int64_t x = 0; x < w; ++x) dst[y * w + x] = sample(src, h, w, c[0] + c[1] * x + c[2] * y, c[3] + c[4] * x + c[5] * y);
    }
    v = out;
  }
  if (p.gain.defined() || p.mean_gain.defined()) {
    auto m = v.mean({1, 2, 3}, /*keepdim=*/true);
    auto g = p.gain.defined() ? p.gain.to(torch::kDouble).view({n, 1, 1, 1}) : torch::ones({n, 1, 1, 1}, torch::kDouble);
    auto b = p.bias.defined() ? p.bias.to(torch::kDouble).view({n, 1, 1, 1}) : torch::zeros({n, 1, 1, 1}, torch::kDouble);
    auto mg = p.mean_gain.defined() ? p.mean_gain.to(torch::kDouble).view({n, 1, 1, 1}) : torch::zeros({n, 1, 1, 1}, torch::kDouble);
    v = (v * g + b + mg * m).clamp(0.0, 1.0);
  }
  std::vector<torch::Tensor> ch;
  for (int c = 0; c < 3; ++c) ch.push_back(v * p.scale[c] + p.offset[c]);
  return torch::cat(ch, 1);
}
}  // namespace

CXR_DEVICE_TEST(pixels_match_float64_by_hand) {
  for (bool affine : {false, true}) {
    auto p = make_batch(5, 16, affine);
    auto x = pixels_to_images(p, torch::Device(device));
    EXPECT_TRUE(x.device().type() == torch::Device(device).type());
    EXPECT_TRUE(x.scalar_type() == torch::kFloat32 && x.is_contiguous());
    EXPECT_TRUE(x.sizes().equals({5, 3, 16, 16}));
    const double d = (x.cpu().to(torch::kDouble) - by_hand(p)).abs().max().item<double>();
    std::printf("  affine %d on %s: max |difference| from float64 %.3g\n", affine ? 1 : 0, device.c_str(), d);
    EXPECT_TRUE(d < 2e-6);
  }
}

namespace {
// Affine maps as the loader draws them: crop box, rotation about the centre, translation, flip.
torch::Tensor warps(int64_t n, int64_t s) {
  auto out = torch::empty({n, 6}, torch::kDouble);
  for (int64_t k = 0; k < n; ++k) {
    const double cw = 0.6 + 0.08 * k, ch = 0.95 - 0.07 * k, cx = 0.03 * k, cy = 0.02 * (n - k);
    const double ang = (k % 2 ? -1.0 : 1.0) * 0.05 * (k + 1), tx = 0.02 * (k - 2), ty = -0.03 * k;
    const double fu = k % 3 == 1 ? -1.0 : 1.0, co = std::cos(ang), si = std::sin(ang);
    // u(x) = fu·(cx + (x + 0.5)/s·cw − 0.5), v(y) = cy + (y + 0.5)/s·ch − 0.5;
    // sx = (cos·u − sin·v + 0.5 − tx)·s − 0.5, sy = (sin·u + cos·v + 0.5 − ty)·s − 0.5.
    const double u0 = fu * (cx + 0.5 / s * cw - 0.5), du = fu * cw / s;
    const double v0 = cy + 0.5 / s * ch - 0.5, dv = ch / s;
    auto a = out[k];
    a[0] = (co * u0 - si * v0 + 0.5 - tx) * s - 0.5;
    a[1] = co * du * s;
    a[2] = -si * dv * s;
    a[3] = (si * u0 + co * v0 + 0.5 - ty) * s - 0.5;
    a[4] = si * du * s;
    a[5] = co * dv * s;
  }
  return out;
}
}  // namespace

CXR_DEVICE_TEST(warped_pixels_match_float64_sampler) {
  const int64_t n = 6, s = 40;
  auto p = make_batch(n, s, false);
  p.warp = warps(n, s);
  // A map that reaches past every edge (zoom out about the centre, translated): the zero fill, the
  // clamped last row/column and the -0.5 / S-0.5 borders all occur.
  p.warp[2] = torch::tensor({-12.3, 1.7, 0.0, -9.9, 0.0, 1.55}, torch::kDouble);
  p.warp[3] = torch::tensor({0.0, 1.0, 0.0, 0.0, 0.0, 1.0}, torch::kDouble);  // identity
  for (int variant = 0; variant < 3; ++variant) {
    PixelBatch q = p;
    if (variant >= 1) {  // brightness and contrast as the loader sends them: gain b·c, mean_gain b·(1 − c)
      auto b = torch::linspace(0.8, 1.2, n, torch::kFloat32), c = torch::linspace(1.3, 0.7, n, torch::kFloat32);
      q.gain = b * c;
      q.bias = torch::zeros({n}, torch::kFloat32);
      q.mean_gain = b * (1 - c);
    }
    if (variant == 2) {  // a mean term alone (gain and bias default to 1 and 0)
      q.gain = torch::Tensor();
      q.bias = torch::Tensor();
    }
    auto x = pixels_to_images(q, torch::Device(device));
    EXPECT_TRUE(x.sizes().equals({n, 3, s, s}) && x.scalar_type() == torch::kFloat32);
    auto ref = by_hand(q);
    const double d = (x.cpu().to(torch::kDouble) - ref).abs().max().item<double>();
    std::printf("  warp, variant %d on %s: max |difference| from float64 %.3g\n", variant, device.c_str(), d);
    EXPECT_TRUE(d < 2e-6);
    // The warp did something: far from the unwarped images, except the identity one (exactly equal).
    PixelBatch plain = q;
    plain.warp = torch::Tensor();
    auto u = pixels_to_images(plain, torch::Device(device)).cpu();
    EXPECT_TRUE((x.cpu()[1] - u[1]).abs().max().item<double>() > 0.5);  // (image 0 is all zeros)
    EXPECT_TRUE(torch::equal(x.cpu()[3], u[3]));
    // Zero fill outside: the zoomed-out image has a border of normalised zeros (before the intensity affine).
    if (variant == 0) EXPECT_TRUE(std::abs(x.cpu()[2][0][0][0].item<double>() - p.offset[0]) < 1e-6);
  }
}

CXR_DEVICE_TEST(pixel_batch_errors) {
  auto p = make_batch(2, 8, false);
  const torch::Device dev(device);
  PixelBatch bad = p;
  bad.bytes = p.bytes.to(torch::kFloat32);
  EXPECT_THROWS_CODE(pixels_to_images(bad, dev), Dtype);
  bad = p;
  bad.bytes = p.bytes.repeat({1, 3, 1, 1});
  EXPECT_THROWS_CODE(pixels_to_images(bad, dev), Shape);
  bad = p;
  bad.bytes = p.bytes.view({2, 8, 8});
  EXPECT_THROWS_CODE(pixels_to_images(bad, dev), Shape);
  bad = p;
  bad.gain = torch::ones({2});
  EXPECT_THROWS_CODE(pixels_to_images(bad, dev), Config);
  bad.bias = torch::zeros({3});
  EXPECT_THROWS_CODE(pixels_to_images(bad, dev), Shape);
  bad.bias = torch::zeros({2});
  bad.gain[1] = std::nan("");
  EXPECT_THROWS_CODE(pixels_to_images(bad, dev), Numeric);
  bad = p;
  bad.mean_gain = torch::zeros({3});
  EXPECT_THROWS_CODE(pixels_to_images(bad, dev), Shape);
  bad.mean_gain = torch::zeros({2}, torch::kDouble);
  EXPECT_THROWS_CODE(pixels_to_images(bad, dev), Dtype);
  bad = p;
  bad.warp = torch::zeros({2, 6});
  EXPECT_THROWS_CODE(pixels_to_images(bad, dev), Dtype);
  bad.warp = torch::zeros({2, 4}, torch::kDouble);
  EXPECT_THROWS_CODE(pixels_to_images(bad, dev), Shape);
  bad.warp = torch::zeros({3, 6}, torch::kDouble);
  EXPECT_THROWS_CODE(pixels_to_images(bad, dev), Shape);
  bad.warp = torch::zeros({2, 6}, torch::kDouble);
  bad.warp[1][4] = INFINITY;
  EXPECT_THROWS_CODE(pixels_to_images(bad, dev), Numeric);
  bad = p;
  bad.scale[1] = INFINITY;
  EXPECT_THROWS_CODE(pixels_to_images(bad, dev), Numeric);
}

CXR_TEST_MAIN()
