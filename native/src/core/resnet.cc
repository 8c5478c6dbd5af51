// CLIP ModifiedResNet (RN50 family): 3-conv stem, anti-aliased Bottlenecks, attention pooling.
#include "cxr/attention.h"
#include "cxr/conv.h"
#include "cxr/model.h"
#include "model_init.h"

namespace F = torch::nn::functional;

namespace cxr {

struct Bottleneck : torch::nn::Module {
  Bottleneck(int64_t inplanes, int64_t planes, int64_t stride) : stride(stride) {
    using namespace torch::nn;
    conv1 = register_module("conv1", Conv2d(Conv2dOptions(inplanes, planes, 1).bias(false)));
    bn1 = register_module("bn1", BatchNorm2d(planes));
    conv2 = register_module("conv2", Conv2d(Conv2dOptions(planes, planes, 3).padding(1).bias(false)));
    bn2 = register_module("bn2", BatchNorm2d(planes));
    conv3 = register_module("conv3", Conv2d(Conv2dOptions(planes, planes * 4, 1).bias(false)));
    bn3 = register_module("bn3", BatchNorm2d(planes * 4));
    if (stride > 1 || inplanes != planes * 4) {
      // OpenAI's Sequential("-1": AvgPool2d, "0": conv, "1": bn): only "0" and "1" hold parameters.
      downsample = register_module("downsample", torch::nn::ModuleList());
      ds_conv = Conv2d(Conv2dOptions(inplanes, planes * 4, 1).bias(false));
      ds_bn = BatchNorm2d(planes * 4);
      downsample->push_back(ds_conv);
      downsample->push_back(ds_bn);
    }
  }
  torch::Tensor forward(const torch::Tensor& x) {
    auto out = torch::relu(bn1(conv2d_forward(conv1, x)));
    out = torch::relu(bn2(conv2d_forward(conv2, out)));
    if (stride > 1) out = F::avg_pool2d(out, F::AvgPool2dFuncOptions(stride));
    out = bn3(conv2d_forward(conv3, out));
    torch::Tensor identity = x;
    if (ds_conv) {
      identity = stride > 1 ? F::avg_pool2d(x, F::AvgPool2dFuncOptions(stride)) : x;
      identity = ds_bn(conv2d_forward(ds_conv, identity));
    }
    return torch::relu(out + identity);
  }
  int64_t stride;
  torch::nn::Conv2d conv1{nullptr}, conv2{nullptr}, conv3{nullptr}, ds_conv{nullptr};
  torch::nn::BatchNorm2d bn1{nullptr}, bn2{nullptr}, bn3{nullptr}, ds_bn{nullptr};
  torch::nn::ModuleList downsample{nullptr};
};

struct AttentionPool2d : torch::nn::Module {
  AttentionPool2d(int64_t spatial, int64_t embed, int64_t heads, int64_t out_dim) : heads(heads) {
    positional_embedding = register_parameter("positional_embedding", torch::empty({spatial * spatial + 1, embed}));
    k_proj = register_module("k_proj", torch::nn::Linear(embed, embed));
    q_proj = register_module("q_proj", torch::nn::Linear(embed, embed));
    v_proj = register_module("v_proj", torch::nn::Linear(embed, embed));
    c_proj = register_module("c_proj", torch::nn::Linear(embed, out_dim));
  }
  torch::Tensor forward(const torch::Tensor& feat) {
    auto x = feat.flatten(2).transpose(1, 2);                 // (N, HW, C)
    x = torch::cat({x.mean(1, true), x}, 1) + positional_embedding.to(x.dtype());
    auto q = q_proj(x.narrow(1, 0, 1));
    auto out = multi_head_attention(q, k_proj(x), v_proj(x), heads, {}, false);       // (N, 1, C)
    return c_proj(out.squeeze(1));
  }
  int64_t heads;
  torch::Tensor positional_embedding;
  torch::nn::Linear k_proj{nullptr}, q_proj{nullptr}, v_proj{nullptr}, c_proj{nullptr};
};

ModifiedResNet::ModifiedResNet(const VisionConfig& c, int64_t embed_dim) : cfg(c) {
  using namespace torch::nn;
  const int64_t w = cfg.resnet_width;
  conv1 = register_module("conv1", Conv2d(Conv2dOptions(3, w / 2, 3).stride(2).padding(1).bias(false)));
  bn1 = register_module("bn1", BatchNorm2d(w / 2));
  conv2 = register_module("conv2", Conv2d(Conv2dOptions(w / 2, w / 2, 3).padding(1).bias(false)));
  bn2 = register_module("bn2", BatchNorm2d(w / 2));
  conv3 = register_module("conv3", Conv2d(Conv2dOptions(w / 2, w, 3).padding(1).bias(false)));
  bn3 = register_module("bn3", BatchNorm2d(w));
  int64_t inplanes = w;
  for (size_t s = 0; s < cfg.resnet_layers.size(); ++s) {
    const int64_t planes = w << s;
    auto list = register_module("layer" + std::to_string(s + 1), ModuleList());
    std::vector<std::shared_ptr<Bottleneck>> blocks;
    for (int64_t b = 0; b < cfg.resnet_layers[s]; ++b) {
      auto blk = std::make_shared<Bottleneck>(inplanes, planes, (b == 0 && s > 0) ? 2 : 1);
      inplanes = planes * 4;
      list->push_back(blk);
      blocks.push_back(blk);
    }
    stages.push_back(std::move(blocks));
  }
  const int64_t downs = int64_t{1} << (cfg.resnet_layers.size() + 1);  // stem /4, then /2 per later stage
  attnpool = register_module("attnpool", std::make_shared<AttentionPool2d>(cfg.image_size / downs, inplanes,
                                                                            cfg.attn_pool_heads, embed_dim));
}

void ModifiedResNet::init_parameters(at::Generator& gen) {
  for (auto& p : named_parameters()) {
    const auto& key = p.key();
    auto t = p.value();
    if (key.find("bn") != std::string::npos || key.find("downsample.1") != std::string::npos) {
      if (key.size() >= 6 && key.compare(key.size() - 6, 6, "weight") == 0) {
        // OpenAI zero-initialises the last BatchNorm of each residual branch.
        bool last_bn = key.find(".bn3.") != std::string::npos && key.rfind("layer", 0) == 0;
        if (last_bn) init::zero(t); else init::ones(t);
      } else {
        init::zero(t);
      }
    } else if (key.rfind("attnpool.", 0) == 0) {
      if (key == "attnpool.positional_embedding") {
        init::normal(t, std::pow(static_cast<double>(t.size(1)), -0.5), gen);
      } else if (key.size() >= 4 && key.compare(key.size() - 4, 4, "bias") == 0) {
        init::zero(t);
      } else {
        init::normal(t, std::pow(static_cast<double>(attnpool->c_proj->weight.size(1)), -0.5), gen);
      }
    } else if (t.dim() == 4) {
      // Kaiming normal (fan_out, ReLU) as torchvision: keeps activations at unit scale through the
      // frozen-statistics BatchNorms, so a freshly built tower is trainable.
      const double fan_out = static_cast<double>(t.size(0) * t.size(2) * t.size(3));
      init::normal(t, std::sqrt(2.0 / fan_out), gen);
    } else {
      init::uniform_fan_in(t, gen);
    }
  }
  torch::NoGradGuard ng;
  for (auto& b : named_buffers()) {
    const auto& key = b.key();
    if (key.find("running_mean") != std::string::npos) b.value().zero_();
    else if (key.find("running_var") != std::string::npos) b.value().fill_(1.0);
  }
}

void ModifiedResNet::after_train_mode(bool on) {
  if (!on || cfg.batchnorm_train) return;
  for (auto& m : modules(/*include_self=*/false)) {
    if (dynamic_cast<torch::nn::BatchNorm2dImpl*>(m.get())) m->eval();
  }
}

torch::Tensor ModifiedResNet::encode(const torch::Tensor& images) { return cam_head(cam_features(images)); }

// The output of the last residual stage, (N, C, S/32, S/32) for the RN50 layout.
torch::Tensor ModifiedResNet::cam_features(const torch::Tensor& images) {
  auto x = torch::relu(bn1(conv2d_forward(conv1, images)));
  x = torch::relu(bn2(conv2d_forward(conv2, x)));
  x = torch::relu(bn3(conv2d_forward(conv3, x)));
  x = F::avg_pool2d(x, F::AvgPool2dFuncOptions(2));
  for (auto& stage : stages)
    for (auto& b : stage) x = b->forward(x);
  return x;
}

torch::Tensor ModifiedResNet::cam_head(const torch::Tensor& features) { return attnpool->forward(features); }

std::string ModifiedResNet::cam_layer() const { return "layer" + std::to_string(stages.size()) + " (output)"; }

}  // namespace cxr
