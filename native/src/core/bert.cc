// Bidirectional post-LN BERT text tower (Hugging Face parameter names), pooling and projection.
#include "cxr/attention.h"
#include "cxr/model.h"
#include "model_init.h"

namespace F = torch::nn::functional;

namespace cxr {

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
    auto h = attn_ln(x + attn_dense(multi_head_attention(query(x), key(x), value(x), heads, mask, false)));
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
    if (key.find("LayerNorm.weight") != std::string::npos) init::ones(t);
    else if (key.size() >= 4 && key.compare(key.size() - 4, 4, "bias") == 0) init::zero(t);
    else init::normal(t, 0.02, gen);
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

}  // namespace cxr
