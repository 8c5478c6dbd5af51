// The 2-D convolution every vision tower calls: torch::nn::Conv2d's forward, except where libtorch's oneDNN
// (mkldnn) kernel is known to return a wrong input gradient.
//
// Measured against float64 with Debian's python3-torch 2.6 (same libtorch): Debian's libtorch 2.6 (oneDNN 3.7.2, AVX-512)
// returns a wrong and run-to-run varying input gradient, often NaN, from the CPU convolution backward when
// the layer's output-channel count is not a multiple of 16 and the batch holds 2 or more images (3x3 and 5x5
// stride 1, 7x7 stride 2; 540 shapes with multiples of 16 all exact). The forward and the weight gradient are
// right. Such layers run through ATen's own im2col convolution (at::thnn_conv2d, exact on every version)
// when the input gradient is needed; every other convolution keeps oneDNN, so the CLIP ResNets (all
// channel counts multiples of 16) and every ViT train at full speed.
#pragma once
#include <torch/torch.h>

namespace cxr {

// True when conv2d_forward(conv, x) takes at::thnn_conv2d instead of the module's own forward: a CPU float32
// input that needs its gradient, oneDNN present and enabled, groups 1, dilation 1, zero padding given as
// numbers, and an output-channel count that is not a multiple of 16.
bool conv_avoids_onednn(torch::nn::Conv2d conv, const torch::Tensor& x);

// conv(x), with the routing above. Same parameters, same result (within float32 rounding) either way.
torch::Tensor conv2d_forward(torch::nn::Conv2d conv, const torch::Tensor& x);

}  // namespace cxr
