// uint8 grayscale batches turned into normalised three-channel float images on the device: against the
// same arithmetic done by hand in float64 on the CPU, with and without the per-image intensity affine,
// and the error contract.
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

torch::Tensor by_hand(const PixelBatch& p) {
  auto v = p.bytes.to(torch::kDouble) / 255.0;
  const int64_t n = v.size(0);
  if (p.gain.defined())
    v = (v * p.gain.to(torch::kDouble).view({n, 1, 1, 1}) + p.bias.to(torch::kDouble).view({n, 1, 1, 1})).clamp(0.0, 1.0);
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
  bad.scale[1] = INFINITY;
  EXPECT_THROWS_CODE(pixels_to_images(bad, dev), Numeric);
}

CXR_TEST_MAIN()
