#include "cxr/model.h"

#include <cmath>

namespace F = torch::nn::functional;

namespace cxr {

torch::Tensor activation(const torch::Tensor& x, Activation act) {
  if (act == Activation::QuickGelu) return x * torch::sigmoid(1.702 * x);
  return F::gelu(x);
}

namespace {
void normal_init(torch::Tensor& t, double std, at::Generator& gen) {
  torch::NoGradGuard ng;
  t.normal_(0.0, std, gen);
}
void uniform_fan_in(torch::Tensor& t, at::Generator& gen) {
  torch::NoGradGuard ng;
  int64_t fan_in = t.dim() > 1 ? t.numel() / t.size(0) : t.numel();
  double b = 1.0 / std::sqrt(static_cast<double>(std::max<int64_t>(fan_in, 1)));
  t.uniform_(-b, b, gen);
}
void zero(torch::Tensor& t) {
  torch::NoGradGuard ng;
  t.zero_();
}
void ones(torch::Tensor& t) {
  torch::NoGradGuard ng;
  t.fill_(1.0);
}
void init_layer_norm(torch::nn::LayerNorm& ln) {
  ones(ln->weight);
  zero(ln->bias);
}
void init_linear(torch::nn::Linear& l, double std, at::Generator& gen) {
  normal_init(l->weight, std, gen);
  if (l->bias.defined()) zero(l->bias);
}
void init_transformer(TransformerImpl& tr, at::Generator& gen) {
  // OpenAI CLIP's text-transformer initialisation, used for every transformer here.
  double w = static_cast<double>(tr.width);
  double attn_std = std::pow(w, -0.5);
  double proj_std = attn_std * std::pow(2.0 * tr.layers, -0.5);
  double fc_std = std::pow(2.0 * w, -0.5);
  for (auto& b : tr.blocks) {
    init_layer_norm(b->ln_1);
    init_layer_norm(b->ln_2);
    normal_init(b->attn->in_proj_weight, attn_std, gen);
    zero(b->attn->in_proj_bias);
    init_linear(b->attn->out_proj, proj_std, gen);
    init_linear(b->mlp->c_fc, fc_std, gen);
    init_linear(b->mlp->c_proj, proj_std, gen);
  }
}
// Heads split, scaled dot product attention, heads merge. q: (N, Lq, W), k/v: (N, Lk, W).
torch::Tensor mha(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, int64_t heads,
                  const torch::Tensor& mask) {
  const int64_t N = q.size(0), Lq = q.size(1), Lk = k.size(1), W = q.size(2), hd = W / heads;
  auto qh = q.view({N, Lq, heads, hd}).transpose(1, 2) * std::pow(static_cast<double>(hd), -0.5);
  auto kh = k.view({N, Lk, heads, hd}).transpose(1, 2);
  auto vh = v.view({N, Lk, heads, hd}).transpose(1, 2);
  auto att = torch::matmul(qh, kh.transpose(-2, -1));
  if (mask.defined()) att = att + mask;
  att = torch::softmax(att, -1);
  return torch::matmul(att, vh).transpose(1, 2).reshape({N, Lq, W});
}
}  // namespace

// ---------------------------------------------------------------------------------------------------
AttentionImpl::AttentionImpl(int64_t width, int64_t heads) : width(width), heads(heads) {
  in_proj_weight = register_parameter("in_proj_weight", torch::empty({3 * width, width}));
  in_proj_bias = register_parameter("in_proj_bias", torch::zeros({3 * width}));
  out_proj = register_module("out_proj", torch::nn::Linear(width, width));
}

torch::Tensor AttentionImpl::forward(const torch::Tensor& x, const torch::Tensor& mask) {
  auto qkv = F::linear(x, in_proj_weight, in_proj_bias).chunk(3, -1);
  return out_proj(mha(qkv[0], qkv[1], qkv[2], heads, mask));
}

MlpImpl::MlpImpl(int64_t width, int64_t hidden, Activation act) : act(act) {
  c_fc = register_module("c_fc", torch::nn::Linear(width, hidden));
  c_proj = register_module("c_proj", torch::nn::Linear(hidden, width));
}
torch::Tensor MlpImpl::forward(const torch::Tensor& x) { return c_proj(activation(c_fc(x), act)); }

ResidualBlockImpl::ResidualBlockImpl(int64_t width, int64_t heads, double mlp_ratio, Activation act, double eps) {
  ln_1 = register_module("ln_1", torch::nn::LayerNorm(torch::nn::LayerNormOptions({width}).eps(eps)));
  attn = register_module("attn", Attention(width, heads));
  ln_2 = register_module("ln_2", torch::nn::LayerNorm(torch::nn::LayerNormOptions({width}).eps(eps)));
  mlp = register_module("mlp", Mlp(width, static_cast<int64_t>(std::llround(width * mlp_ratio)), act));
}
torch::Tensor ResidualBlockImpl::forward(const torch::Tensor& x, const torch::Tensor& mask) {
  auto h = x + attn(ln_1(x), mask);
  return h + mlp(ln_2(h));
}

TransformerImpl::TransformerImpl(int64_t width, int64_t layers, int64_t heads, double mlp_ratio, Activation act,
                                 double eps)
    : width(width), layers(layers) {
  resblocks = register_module("resblocks", torch::nn::ModuleList());
  for (int64_t i = 0; i < layers; ++i) {
    blocks.emplace_back(width, heads, mlp_ratio, act, eps);
    resblocks->push_back(blocks.back());
  }
}
torch::Tensor TransformerImpl::forward(torch::Tensor x, const torch::Tensor& mask) {
  for (auto& b : blocks) x = b->forward(x, mask);
  return x;
}

// ---------------------------------------------------------------------------------------------------
VisionTransformer::VisionTransformer(const VisionConfig& c, int64_t embed_dim) : cfg(c) {
  const int64_t grid = cfg.image_size / cfg.patch_size;
  conv1 = register_module("conv1", torch::nn::Conv2d(torch::nn::Conv2dOptions(3, cfg.width, cfg.patch_size)
                                                         .stride(cfg.patch_size)
                                                         .bias(cfg.patch_bias)));
  class_embedding = register_parameter("class_embedding", torch::empty({cfg.width}));
  positional_embedding = register_parameter("positional_embedding", torch::empty({grid * grid + 1, cfg.width}));
  const auto lnopt = torch::nn::LayerNormOptions({cfg.width}).eps(cfg.layer_norm_eps);
  if (cfg.ln_pre) ln_pre = register_module("ln_pre", torch::nn::LayerNorm(lnopt));
  transformer = register_module(
      "transformer", Transformer(cfg.width, cfg.layers, cfg.heads, cfg.mlp_ratio, cfg.act, cfg.layer_norm_eps));
  // timm's final `norm` runs on every token before class-token pooling; per-token, so ln_post on the class
  // token alone is the same computation.
  ln_post = register_module("ln_post", torch::nn::LayerNorm(lnopt));
  proj = register_parameter("proj", torch::empty({cfg.width, embed_dim}));
}

void VisionTransformer::init_parameters(at::Generator& gen) {
  double scale = std::pow(static_cast<double>(cfg.width), -0.5);
  uniform_fan_in(conv1->weight, gen);
  if (conv1->bias.defined()) zero(conv1->bias);
  normal_init(class_embedding, scale, gen);
  normal_init(positional_embedding, scale, gen);
  normal_init(proj, scale, gen);
  if (ln_pre) init_layer_norm(ln_pre);
  init_layer_norm(ln_post);
  init_transformer(*transformer, gen);
}

torch::Tensor VisionTransformer::encode(const torch::Tensor& images) {
  auto x = conv1(images);                   // (N, W, g, g)
  x = x.flatten(2).transpose(1, 2);         // (N, g*g, W)
  const int64_t N = x.size(0);
  auto cls = class_embedding.to(x.dtype()).view({1, 1, -1}).expand({N, 1, cfg.width});
  x = torch::cat({cls, x}, 1) + positional_embedding.to(x.dtype());
  x = transformer(ln_pre ? ln_pre(x) : x);
  return ln_post(x.select(1, 0)).matmul(proj);
}

// ---------------------------------------------------------------------------------------------------
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
    auto out = torch::relu(bn1(conv1(x)));
    out = torch::relu(bn2(conv2(out)));
    if (stride > 1) out = F::avg_pool2d(out, F::AvgPool2dFuncOptions(stride));
    out = bn3(conv3(out));
    torch::Tensor identity = x;
    if (ds_conv) {
      identity = stride > 1 ? F::avg_pool2d(x, F::AvgPool2dFuncOptions(stride)) : x;
      identity = ds_bn(ds_conv(identity));
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
    auto out = mha(q, k_proj(x), v_proj(x), heads, {});       // (N, 1, C)
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
        if (last_bn) zero(t); else ones(t);
      } else {
        zero(t);
      }
    } else if (key.rfind("attnpool.", 0) == 0) {
      if (key == "attnpool.positional_embedding") {
        normal_init(t, std::pow(static_cast<double>(t.size(1)), -0.5), gen);
      } else if (key.size() >= 4 && key.compare(key.size() - 4, 4, "bias") == 0) {
        zero(t);
      } else {
        normal_init(t, std::pow(static_cast<double>(attnpool->c_proj->weight.size(1)), -0.5), gen);
      }
    } else if (t.dim() == 4) {
      // Kaiming normal (fan_out, ReLU) as torchvision: keeps activations at unit scale through the
      // frozen-statistics BatchNorms, so a freshly built tower is trainable.
      const double fan_out = static_cast<double>(t.size(0) * t.size(2) * t.size(3));
      normal_init(t, std::sqrt(2.0 / fan_out), gen);
    } else {
      uniform_fan_in(t, gen);
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

torch::Tensor ModifiedResNet::encode(const torch::Tensor& images) {
  auto x = torch::relu(bn1(conv1(images)));
  x = torch::relu(bn2(conv2(x)));
  x = torch::relu(bn3(conv3(x)));
  x = F::avg_pool2d(x, F::AvgPool2dFuncOptions(2));
  for (auto& stage : stages)
    for (auto& b : stage) x = b->forward(x);
  return attnpool->forward(x);
}

// ---------------------------------------------------------------------------------------------------
struct BertLayer : torch::nn::Module {
  BertLayer(const TextConfig& c) : heads(c.heads) {
    using namespace torch::nn;
    auto lnopt = LayerNormOptions({c.width}).eps(c.layer_norm_eps);
    auto attention = register_module("attention", std::make_shared<torch::nn::Module>());
    auto self = attention->register_module("self", std::make_shared<torch::nn::Module>());
    query = self->register_module("query", Linear(c.width, c.width));
    key = self->register_module("key", Linear(c.width, c.width));
    value = self->register_module("value", Linear(c.width, c.width));
    auto aout = attention->register_module("output", std::make_shared<torch::nn::Module>());
    attn_dense = aout->register_module("dense", Linear(c.width, c.width));
    attn_ln = aout->register_module("LayerNorm", LayerNorm(lnopt));
    auto inter = register_module("intermediate", std::make_shared<torch::nn::Module>());
    inter_dense = inter->register_module("dense", Linear(c.width, c.intermediate_size));
    auto out = register_module("output", std::make_shared<torch::nn::Module>());
    out_dense = out->register_module("dense", Linear(c.intermediate_size, c.width));
    out_ln = out->register_module("LayerNorm", LayerNorm(lnopt));
  }
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& mask) {
    auto h = attn_ln(x + attn_dense(mha(query(x), key(x), value(x), heads, mask)));
    return out_ln(h + out_dense(F::gelu(inter_dense(h))));
  }
  int64_t heads;
  torch::nn::Linear query{nullptr}, key{nullptr}, value{nullptr}, attn_dense{nullptr}, inter_dense{nullptr},
      out_dense{nullptr};
  torch::nn::LayerNorm attn_ln{nullptr}, out_ln{nullptr};
};

BertTextTower::BertTextTower(const TextConfig& c, int64_t embed_dim) : cfg(c) {
  using namespace torch::nn;
  auto emb = register_module("embeddings", std::make_shared<torch::nn::Module>());
  word_embeddings = emb->register_module("word_embeddings", Embedding(cfg.vocab_size, cfg.width));
  position_embeddings = emb->register_module("position_embeddings", Embedding(cfg.max_position, cfg.width));
  token_type_embeddings = emb->register_module("token_type_embeddings", Embedding(cfg.type_vocab_size, cfg.width));
  emb_ln = emb->register_module("LayerNorm", LayerNorm(LayerNormOptions({cfg.width}).eps(cfg.layer_norm_eps)));
  auto enc = register_module("encoder", std::make_shared<torch::nn::Module>());
  auto list = enc->register_module("layer", ModuleList());
  for (int64_t i = 0; i < cfg.layers; ++i) {
    layers.push_back(std::make_shared<BertLayer>(cfg));
    list->push_back(layers.back());
  }
  if (cfg.proj == "mlp") {
    const int64_t hidden = cfg.proj_hidden > 0 ? cfg.proj_hidden : (cfg.width + embed_dim) / 2;
    proj_mlp = register_module("proj", Sequential(Linear(LinearOptions(cfg.width, hidden).bias(false)), GELU(),
                                                  Linear(LinearOptions(hidden, embed_dim).bias(false))));
  } else {
    proj = register_module("proj", Linear(LinearOptions(cfg.width, embed_dim).bias(false)));
  }
}

void BertTextTower::init_parameters(at::Generator& gen) {
  // BERT's initialisation: N(0, 0.02) weights, zero biases, unit LayerNorm.
  for (auto& p : named_parameters()) {
    const auto& key = p.key();
    auto t = p.value();
    if (key.find("LayerNorm.weight") != std::string::npos) ones(t);
    else if (key.size() >= 4 && key.compare(key.size() - 4, 4, "bias") == 0) zero(t);
    else normal_init(t, 0.02, gen);
  }
}

torch::Tensor BertTextTower::encode(const torch::Tensor& ids) {
  const int64_t L = ids.size(1);
  auto pos = torch::arange(L, ids.options());
  auto x = word_embeddings(ids) + position_embeddings(pos).unsqueeze(0) +
           token_type_embeddings(torch::zeros_like(ids));
  x = emb_ln(x);
  auto keep = ids.ne(cfg.pad_id);                                  // (N, L)
  // Large negative rather than -inf so that an all-padding row stays finite.
  auto mask = (1.0 - keep.to(x.dtype())).mul(-1e4).view({ids.size(0), 1, 1, L});
  for (auto& l : layers) x = l->forward(x, mask);
  torch::Tensor pooled;
  if (cfg.pooling == "mean") {
    auto k = keep.to(x.dtype()).unsqueeze(-1);
    pooled = (x * k).sum(1) / k.sum(1).clamp_min(1.0);
  } else {
    pooled = x.select(1, 0);
  }
  return proj_mlp ? proj_mlp->forward(pooled) : proj(pooled);
}

// ---------------------------------------------------------------------------------------------------
void validate_config(const ModelConfig& c) {
  auto fail = [](const std::string& m) { throw Error(ErrorCode::Config, m); };
  if (c.embed_dim <= 0) fail("embed_dim must be positive");
  const auto& v = c.vision;
  if (v.image_size <= 0) fail("vision.image_size must be positive");
  if (v.type == "vit") {
    if (v.patch_size <= 0 || v.image_size % v.patch_size != 0)
      fail("vision.image_size (" + std::to_string(v.image_size) + ") must be a multiple of vision.patch_size (" +
           std::to_string(v.patch_size) + ")");
    if (v.width <= 0 || v.layers < 0 || v.heads <= 0 || v.width % v.heads != 0)
      fail("vision.width (" + std::to_string(v.width) + ") must be a positive multiple of vision.heads (" +
           std::to_string(v.heads) + ")");
  } else if (v.type == "resnet") {
    if (v.resnet_layers.empty()) fail("vision.resnet_layers must not be empty");
    if (v.resnet_width < 2 || v.resnet_width % 2 != 0) fail("vision.resnet_width must be an even number >= 2");
    const int64_t downs = int64_t{1} << (v.resnet_layers.size() + 1);
    if (v.image_size % downs != 0)
      fail("vision.image_size must be a multiple of " + std::to_string(downs) + " for this ResNet");
    const int64_t ch = v.resnet_width << (v.resnet_layers.size() + 1);
    if (v.attn_pool_heads <= 0 || ch % v.attn_pool_heads != 0)
      fail("vision.attn_pool_heads must divide the trunk width " + std::to_string(ch));
  } else {
    fail("vision.type must be \"vit\" or \"resnet\", got \"" + v.type + "\"");
  }
  const auto& t = c.text;
  if (t.type != "causal" && t.type != "bert") fail("text.type must be \"causal\" or \"bert\", got \"" + t.type + "\"");
  if (t.vocab_size <= 0 || t.context_length <= 0 || t.width <= 0 || t.layers < 0 || t.heads <= 0 ||
      t.width % t.heads != 0)
    fail("text.width must be a positive multiple of text.heads, and vocab_size/context_length positive");
  if (t.type == "bert" && (t.max_position < t.context_length || t.intermediate_size <= 0))
    fail("text.max_position must be >= text.context_length and intermediate_size positive");
  if (t.type == "bert" && t.pooling != "cls" && t.pooling != "mean") fail("text.pooling must be \"cls\" or \"mean\"");
  if (t.proj != "linear" && t.proj != "mlp") fail("text.proj must be \"linear\" or \"mlp\"");
  if (!(v.layer_norm_eps > 0)) fail("vision.layer_norm_eps must be positive");
}

ClipModel::ClipModel(const ModelConfig& cfg, uint64_t seed) : cfg_(cfg) {
  validate_config(cfg_);
  if (cfg_.vision.type == "vit") visual_ = std::make_shared<VisionTransformer>(cfg_.vision, cfg_.embed_dim);
  else visual_ = std::make_shared<ModifiedResNet>(cfg_.vision, cfg_.embed_dim);
  register_module("visual", visual_);
  const auto& t = cfg_.text;
  if (t.type == "causal") {
    token_embedding_ = register_module("token_embedding", torch::nn::Embedding(t.vocab_size, t.width));
    positional_embedding_ = register_parameter("positional_embedding", torch::empty({t.context_length, t.width}));
    transformer_ = register_module("transformer", Transformer(t.width, t.layers, t.heads, t.mlp_ratio, t.act));
    ln_final_ = register_module("ln_final", torch::nn::LayerNorm(torch::nn::LayerNormOptions({t.width}).eps(1e-5)));
    text_projection_ = register_parameter("text_projection", torch::empty({t.width, cfg_.embed_dim}));
    causal_mask_ = register_buffer(
        "attn_mask", torch::full({t.context_length, t.context_length}, -std::numeric_limits<float>::infinity())
                         .triu(1));
  } else {
    bert_ = register_module("text", std::make_shared<BertTextTower>(t, cfg_.embed_dim));
  }
  logit_scale = register_parameter("logit_scale", torch::empty({}));
  init_parameters(seed);
}

void ClipModel::init_parameters(uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  visual_->init_parameters(gen);
  if (bert_) {
    bert_->init_parameters(gen);
  } else {
    normal_init(token_embedding_->weight, 0.02, gen);
    normal_init(positional_embedding_, 0.01, gen);
    init_transformer(*transformer_, gen);
    init_layer_norm(ln_final_);
    normal_init(text_projection_, std::pow(static_cast<double>(cfg_.text.width), -0.5), gen);
  }
  torch::NoGradGuard ng;
  logit_scale.fill_(cfg_.logit_scale_init);
}

void ClipModel::set_training(bool on) {
  train(on);
  visual_->after_train_mode(on);
}

void ClipModel::check_images(const torch::Tensor& images) const {
  const int64_t S = cfg_.vision.image_size;
  auto expected = "(N, 3, " + std::to_string(S) + ", " + std::to_string(S) + ")";
  CXR_CHECK(images.dim() == 4, Shape, "images must be " + expected + ", got " + std::to_string(images.dim()) + " dims");
  CXR_CHECK(images.size(1) == 3, Shape,
            "images must have 3 channels (grayscale is repeated to 3), got " + std::to_string(images.size(1)));
  CXR_CHECK(images.size(2) == S && images.size(3) == S, Shape,
            "images must be " + expected + ", got (" + std::to_string(images.size(0)) + ", 3, " +
                std::to_string(images.size(2)) + ", " + std::to_string(images.size(3)) + ")");
  CXR_CHECK(images.size(0) > 0, Shape, "empty image batch");
  CXR_CHECK(images.is_floating_point(), Dtype, "images must be floating point");
  CXR_CHECK(torch::isfinite(images).all().item<bool>(), Numeric, "images contain NaN or Inf");
}

void ClipModel::check_tokens(const torch::Tensor& ids) const {
  const auto& t = cfg_.text;
  const int64_t maxL = t.type == "causal" ? t.context_length : t.max_position;
  CXR_CHECK(ids.dim() == 2, Shape, "token ids must be (N, L), got " + std::to_string(ids.dim()) + " dims");
  CXR_CHECK(ids.size(0) > 0, Shape, "empty text batch");
  CXR_CHECK(ids.size(1) >= 1 && ids.size(1) <= maxL, Shape,
            "token sequence length " + std::to_string(ids.size(1)) + " must be in 1.." + std::to_string(maxL));
  CXR_CHECK(ids.scalar_type() == torch::kLong, Dtype, "token ids must be int64");
  auto mn = ids.min().item<int64_t>(), mx = ids.max().item<int64_t>();
  CXR_CHECK(mn >= 0 && mx < t.vocab_size, Shape,
            "token id out of the vocabulary: ids must be in [0, " + std::to_string(t.vocab_size) + "), got [" +
                std::to_string(mn) + ", " + std::to_string(mx) + "]");
}

torch::Tensor ClipModel::encode_image(const torch::Tensor& images) { return visual_->encode(images); }

torch::Tensor ClipModel::encode_text(const torch::Tensor& ids) {
  if (bert_) return bert_->encode(ids);
  const int64_t L = ids.size(1);
  auto x = token_embedding_(ids) + positional_embedding_.narrow(0, 0, L);
  x = transformer_(x, causal_mask_.narrow(0, 0, L).narrow(1, 0, L).to(x.dtype()));
  x = ln_final_(x);
  auto eot = ids.argmax(-1);  // the end-of-text token has the highest id
  auto pooled = x.index({torch::arange(x.size(0), ids.options()), eot});
  return pooled.matmul(text_projection_);
}

}  // namespace cxr
