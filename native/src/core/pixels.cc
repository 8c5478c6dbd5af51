#include "cxr/pixels.h"

#include <cmath>
#include <string>

#include "cxr/errors.h"

namespace cxr {

namespace {
void check_per_image(const torch::Tensor& t, int64_t n, const char* name) {
  if (!t.defined()) return;
  CXR_CHECK(t.scalar_type() == torch::kFloat32, Dtype, std::string("pixel batch: ") + name + " must be float32");
  CXR_CHECK(t.dim() == 1 && t.numel() == n, Shape,
            std::string("pixel batch: ") + name + " needs one value per image (" + std::to_string(n) + ")");
  CXR_CHECK(torch::isfinite(t).all().item<bool>(), Numeric, std::string("pixel batch: ") + name + " is not finite");
}

// Bilinear samples of `base` (N×H·W float32, on the device) at the warp's coordinates, 0 outside; N×H·W.
// Temporaries are dropped as soon as they are used: about 45 bytes a pixel at the peak (0.55 GB for a
// batch of 256 at 224 px), freed before the model runs.
torch::Tensor warp_bilinear(const torch::Tensor& base, const torch::Tensor& warp, int64_t h, int64_t w) {
  const int64_t n = base.size(0);
  const auto dev = base.device();
  torch::Tensor inside, fx, fy, i00, dx, dy;
  {
    // Coordinates in float64, as the host sampler computes them: a float32 coordinate near 224 is off by
    // up to 1.5e-5 pixel, which moves an interpolated value by as much.
    auto a = warp.to(dev, torch::kDouble).view({n, 6, 1, 1});
    auto dopt = torch::TensorOptions().dtype(torch::kDouble).device(dev);
    auto xs = torch::arange(w, dopt).view({1, 1, w});
    auto ys = torch::arange(h, dopt).view({1, h, 1});
    auto sx = (a.select(1, 0) + a.select(1, 1) * xs + a.select(1, 2) * ys).view({n, h * w});
    auto sy = (a.select(1, 3) + a.select(1, 4) * xs + a.select(1, 5) * ys).view({n, h * w});
    inside = sx.ge(-0.5).logical_and_(sy.ge(-0.5)).logical_and_(sx.le(static_cast<double>(w) - 0.5))
                 .logical_and_(sy.le(static_cast<double>(h) - 0.5));
    sx.clamp_(0.0, static_cast<double>(w - 1));
    sy.clamp_(0.0, static_cast<double>(h - 1));
    auto x0d = sx.floor();
    fx = (sx - x0d).to(torch::kFloat32);
    sx = torch::Tensor();
    auto x0 = x0d.to(torch::kLong);
    x0d = torch::Tensor();
    auto y0d = sy.floor();
    fy = (sy - y0d).to(torch::kFloat32);
    sy = torch::Tensor();
    i00 = y0d.to(torch::kLong).mul_(w).add_(x0);
    y0d = torch::Tensor();
    dx = x0.lt(w - 1);                                    // true: the right neighbour exists (else the last column)
    dy = i00.lt((h - 1) * w);                             // true: the row below exists (else the last row)
  }
  auto va = base.gather(1, i00);
  auto vb = base.gather(1, i00 + dx);
  auto vc = base.gather(1, i00 + dy.to(torch::kLong).mul_(w));
  auto ve = base.gather(1, i00.add_(dx).add_(dy.to(torch::kLong).mul_(w)));
  i00 = dx = dy = torch::Tensor();
  // a + (b − a)·fx + (c − a)·fy + (a − b − c + e)·fx·fy, the host sampler's expression.
  auto v = va + (vb - va) * fx + (vc - va) * fy + (va - vb - vc + ve) * fx * fy;
  return v.masked_fill_(inside.logical_not(), 0.0f);
}
}  // namespace

void check_pixel_batch(const PixelBatch& p) {
  CXR_CHECK(p.bytes.defined() && p.bytes.scalar_type() == torch::kUInt8, Dtype, "pixel batch: bytes must be uint8");
  CXR_CHECK(p.bytes.dim() == 4 && p.bytes.size(1) == 1 && p.bytes.size(0) >= 1, Shape,
            "pixel batch: bytes must be N×1×S×S grayscale");
  for (int c = 0; c < 3; ++c)
    CXR_CHECK(std::isfinite(p.scale[c]) && std::isfinite(p.offset[c]), Numeric, "pixel batch: normalisation is not finite");
  const int64_t n = p.bytes.size(0);
  CXR_CHECK(p.gain.defined() == p.bias.defined(), Config, "pixel batch: gain and bias come together");
  check_per_image(p.gain, n, "gain");
  check_per_image(p.bias, n, "bias");
  check_per_image(p.mean_gain, n, "mean_gain");
  if (p.warp.defined()) {
    CXR_CHECK(p.warp.scalar_type() == torch::kDouble, Dtype, "pixel batch: warp must be float64");
    CXR_CHECK(p.warp.dim() == 2 && p.warp.size(0) == n && p.warp.size(1) == 6, Shape,
              "pixel batch: warp needs 6 coefficients per image (" + std::to_string(n) + "×6)");
    CXR_CHECK(torch::isfinite(p.warp).all().item<bool>(), Numeric, "pixel batch: warp is not finite");
  }
}

torch::Tensor pixels_to_images(const PixelBatch& p, const torch::Device& device) {
  check_pixel_batch(p);
  torch::NoGradGuard no_grad;
  const int64_t n = p.bytes.size(0), h = p.bytes.size(2), w = p.bytes.size(3);
  const bool pin = device.is_cuda();
  torch::Tensor bytes = pin ? p.bytes.contiguous().pin_memory() : p.bytes.contiguous();
  torch::Tensor v = bytes.to(device, /*non_blocking=*/pin).to(torch::kFloat32).div_(255.0f).view({n, h * w});
  if (p.warp.defined()) v = warp_bilinear(v, p.warp, h, w);
  if (p.gain.defined() || p.mean_gain.defined()) {
    // The mean is taken before gain and bias change v (contrast around the warped image's own mean).
    torch::Tensor shift = p.bias.defined() ? p.bias.to(device).view({n, 1}) : torch::zeros({n, 1}, v.options());
    if (p.mean_gain.defined()) shift = shift + p.mean_gain.to(device).view({n, 1}) * v.mean(1, /*keepdim=*/true);
    if (p.gain.defined()) v.mul_(p.gain.to(device).view({n, 1}));
    v.add_(shift).clamp_(0.0f, 1.0f);
  }
  v = v.view({n, 1, h, w});
  auto opts = torch::TensorOptions().dtype(torch::kFloat32);
  auto scale = torch::tensor({static_cast<float>(p.scale[0]), static_cast<float>(p.scale[1]), static_cast<float>(p.scale[2])}, opts)
                   .to(device).view({1, 3, 1, 1});
  auto offset = torch::tensor({static_cast<float>(p.offset[0]), static_cast<float>(p.offset[1]), static_cast<float>(p.offset[2])}, opts)
                    .to(device).view({1, 3, 1, 1});
  // One fused broadcast: N×1×S×S against 1×3×1×1 gives the three channels.
  return torch::addcmul(offset, v, scale).contiguous().view({n, 3, h, w});
}

}  // namespace cxr
