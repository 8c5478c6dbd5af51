#include "cxr/pixels.h"

#include <cmath>
#include <string>

#include "cxr/errors.h"

namespace cxr {

void check_pixel_batch(const PixelBatch& p) {
  CXR_CHECK(p.bytes.defined() && p.bytes.scalar_type() == torch::kUInt8, Dtype, "pixel batch: bytes must be uint8");
  CXR_CHECK(p.bytes.dim() == 4 && p.bytes.size(1) == 1 && p.bytes.size(0) >= 1, Shape,
            "pixel batch: bytes must be N×1×S×S grayscale");
  for (int c = 0; c < 3; ++c)
    CXR_CHECK(std::isfinite(p.scale[c]) && std::isfinite(p.offset[c]), Numeric, "pixel batch: normalisation is not finite");
  const int64_t n = p.bytes.size(0);
  CXR_CHECK(p.gain.defined() == p.bias.defined(), Config, "pixel batch: gain and bias come together");
  if (p.gain.defined()) {
    CXR_CHECK(p.gain.scalar_type() == torch::kFloat32 && p.bias.scalar_type() == torch::kFloat32, Dtype,
              "pixel batch: gain and bias must be float32");
    CXR_CHECK(p.gain.numel() == n && p.bias.numel() == n, Shape,
              "pixel batch: gain and bias need one value per image (" + std::to_string(n) + ")");
    CXR_CHECK(torch::isfinite(p.gain).all().item<bool>() && torch::isfinite(p.bias).all().item<bool>(), Numeric,
              "pixel batch: gain or bias is not finite");
  }
}

torch::Tensor pixels_to_images(const PixelBatch& p, const torch::Device& device) {
  check_pixel_batch(p);
  torch::NoGradGuard no_grad;
  const int64_t n = p.bytes.size(0), h = p.bytes.size(2), w = p.bytes.size(3);
  const bool pin = device.is_cuda();
  torch::Tensor bytes = pin ? p.bytes.contiguous().pin_memory() : p.bytes.contiguous();
  torch::Tensor v = bytes.to(device, /*non_blocking=*/pin).to(torch::kFloat32).div_(255.0f);
  if (p.gain.defined()) {
    auto g = p.gain.to(device).view({n, 1, 1, 1}), b = p.bias.to(device).view({n, 1, 1, 1});
    v.mul_(g).add_(b).clamp_(0.0f, 1.0f);
  }
  auto opts = torch::TensorOptions().dtype(torch::kFloat32);
  auto scale = torch::tensor({static_cast<float>(p.scale[0]), static_cast<float>(p.scale[1]), static_cast<float>(p.scale[2])}, opts)
                   .to(device).view({1, 3, 1, 1});
  auto offset = torch::tensor({static_cast<float>(p.offset[0]), static_cast<float>(p.offset[1]), static_cast<float>(p.offset[2])}, opts)
                    .to(device).view({1, 3, 1, 1});
  // One fused broadcast: N×1×S×S against 1×3×1×1 gives the three channels.
  return torch::addcmul(offset, v, scale).contiguous().view({n, 3, h, w});
}

}  // namespace cxr
