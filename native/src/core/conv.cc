#include "cxr/conv.h"

#include <ATen/Context.h>

#include <type_traits>
#include <vector>

namespace cxr {
namespace {

// Whether a variant option holds the alternative Alt. The options hold c10::variant on libtorch 1.13 and
// std::variant on 2.x: visit() is found by argument-dependent lookup on either.
template <class Alt, class V>
bool holds(const V& v) {
  return visit([](const auto& a) { return std::is_same_v<std::decay_t<decltype(a)>, Alt>; }, v);
}

// The padding as numbers, or empty for "valid"/"same".
std::vector<int64_t> explicit_padding(const torch::nn::detail::ConvNdOptions<2>& o) {
  return visit(
      [](const auto& p) -> std::vector<int64_t> {
        if constexpr (std::is_same_v<std::decay_t<decltype(p)>, torch::ExpandingArray<2>>) return torch::IntArrayRef(p).vec();
        return {};
      },
      o.padding());
}

}  // namespace

bool conv_avoids_onednn(torch::nn::Conv2d conv, const torch::Tensor& x) {
  const auto& o = conv->options;
  if (!x.device().is_cpu() || x.scalar_type() != torch::kFloat32) return false;
  if (!torch::GradMode::is_enabled() || !x.requires_grad()) return false;
  if (!at::hasMKLDNN() || !at::globalContext().userEnabledMkldnn()) return false;
  if (o.out_channels() % 16 == 0 || o.groups() != 1) return false;
  if (!holds<torch::enumtype::kZeros>(o.padding_mode())) return false;
  for (auto d : torch::IntArrayRef(o.dilation()).vec())
    if (d != 1) return false;
  return explicit_padding(o).size() == 2;
}

torch::Tensor conv2d_forward(torch::nn::Conv2d conv, const torch::Tensor& x) {
  if (!conv_avoids_onednn(conv, x)) return conv->forward(x);
  const auto& o = conv->options;
  c10::optional<torch::Tensor> bias;
  if (conv->bias.defined()) bias = conv->bias;
  return at::thnn_conv2d(x, conv->weight, torch::IntArrayRef(o.kernel_size()), bias, torch::IntArrayRef(o.stride()), explicit_padding(o));
}

}  // namespace cxr
