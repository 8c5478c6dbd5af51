// uint8 image batches: grayscale N×1×S×S bytes as they come out of packed shards, moved to the device
// and turned there into the normalised N×3×S×S float32 input the image towers take. The host does no
// float work per pixel and sends 1 byte per pixel instead of 12 (3 float32 channels).
#pragma once
#include <torch/torch.h>

#include <array>

namespace cxr {

struct PixelBatch {
  torch::Tensor bytes;              // uint8, N×1×S×S (CPU)
  std::array<double, 3> scale{};    // per channel: image = v·scale + offset, v = byte / 255 in [0, 1]
  std::array<double, 3> offset{};
  // Optional per-image intensity affine applied first, v ← clamp(gain·v + bias, 0, 1) (brightness and
  // contrast augmentation); float32 of length N, or undefined for none.
  torch::Tensor gain, bias;
};

// Checks the batch (E_DTYPE, E_SHAPE, E_NUMERIC) without touching the device.
void check_pixel_batch(const PixelBatch& p);

// The normalised N×3×S×S float32 images on `device`: the bytes are copied there first, then widened,
// scaled, and repeated to three channels on the device.
torch::Tensor pixels_to_images(const PixelBatch& p, const torch::Device& device);

}  // namespace cxr
