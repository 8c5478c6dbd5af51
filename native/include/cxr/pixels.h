// uint8 image batches: grayscale N×1×S×S bytes as they come out of packed shards, moved to the device
// and turned there into the normalised N×3×S×S float32 input the image towers take. The host does no
// float work per pixel and sends 1 byte per pixel instead of 12 (3 float32 channels).
//
// Augmentation happens here too, so that nothing is rounded after resampling: the bytes are the
// unwarped images, and each image may carry the affine map of its geometric augmentation (crop,
// rotation, translation, flip) and its intensity affine (brightness, contrast). The sampler follows the
// loader's float32 sampler (warpInto in lib/data/images.ts) rule for rule.
#pragma once
#include <torch/torch.h>

#include <array>

namespace cxr {

struct PixelBatch {
  torch::Tensor bytes;              // uint8, N×1×H×W (CPU)
  std::array<double, 3> scale{};    // per channel: image = v·scale + offset, v in [0, 1]
  std::array<double, 3> offset{};
  // Optional per-image geometric warp, float64 N×6 (a0..a5): output pixel (x, y) (integer indices)
  // samples the source at sx = a0 + a1·x + a2·y, sy = a3 + a4·x + a5·y (pixel centres at integers).
  // Outside [-0.5, W-0.5]×[-0.5, H-0.5] the sample is 0; inside, the coordinates are clamped to
  // [0, W-1]×[0, H-1] and interpolated bilinearly (the neighbour past the last row/column is the last).
  // Undefined: no warp (w = byte / 255).
  torch::Tensor warp;
  // Optional per-image intensity affine on the (warped) values w in [0, 1], float32 of length N:
  // v = clamp(gain·w + bias + mean_gain·mean(w), 0, 1), mean over the image. gain and bias come
  // together (defaults 1 and 0); mean_gain (default 0) carries contrast around the image's own mean:
  // brightness b and contrast c are gain = b·c, bias = 0, mean_gain = b·(1 − c).
  torch::Tensor gain, bias, mean_gain;
};

// Checks the batch (E_DTYPE, E_SHAPE, E_CONFIG, E_NUMERIC) without touching the device.
void check_pixel_batch(const PixelBatch& p);

// The normalised N×3×H×W float32 images on `device`: the bytes are copied there first, then widened,
// warped, scaled, and repeated to three channels on the device.
torch::Tensor pixels_to_images(const PixelBatch& p, const torch::Device& device);

}  // namespace cxr
