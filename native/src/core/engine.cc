#include "cxr/engine.h"

#include <torch/cuda.h>

#include <chrono>
#include <cmath>
#include <set>
#include <sstream>

#include "cxr/cpu_cache.h"
#include "cxr/loss.h"
#include "cxr/torch_compat.h"

namespace cxr {

namespace {
using Clock = std::chrono::steady_clock;
double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}
bool ends_with(const std::string& s, const std::string& suf) {
  return s.size() >= suf.size() && s.compare(s.size() - suf.size(), suf.size(), suf) == 0;
}
// Buffers that are derived constants or bookkeeping rather than model state.
bool skip_state_key(const std::string& k) { return k == "attn_mask" || ends_with(k, "num_batches_tracked"); }

bool no_decay(const std::string& name, const torch::Tensor& p) {
  return p.dim() < 2 || name.find("embedding") != std::string::npos || name.find("logit_scale") != std::string::npos ||
         ends_with(name, ".bias") || name.find("ln_") != std::string::npos || name.find("LayerNorm") != std::string::npos ||
         name.find(".bn") != std::string::npos;
}

// Autocast to bf16 on CUDA for the forward pass only; restores the previous state.
struct AutocastGuard {
  bool on;
  explicit AutocastGuard(bool enable) : on(enable) {
    if (on) compat::set_cuda_autocast(true, at::kBFloat16);
  }
  ~AutocastGuard() {
    if (on) {
      compat::set_cuda_autocast(false, at::kBFloat16);
      at::autocast::clear_cache();
    }
  }
};

void sync(const torch::Device& d) {
  if (d.is_cuda()) torch::cuda::synchronize(d.index());
}
}  // namespace

bool cuda_available() { return torch::cuda::is_available(); }
int64_t cuda_device_count() { return cuda_available() ? static_cast<int64_t>(torch::cuda::device_count()) : 0; }

torch::Device resolve_device(const std::string& spec) {
  if (spec == "cpu") return torch::Device(torch::kCPU);
  if (spec == "auto") return cuda_available() ? torch::Device(torch::kCUDA, 0) : torch::Device(torch::kCPU);
  if (spec.rfind("cuda", 0) == 0) {
    int64_t idx = 0;
    if (spec.size() > 4) {
      CXR_CHECK(spec[4] == ':' && spec.size() > 5, Config, "device must be \"auto\", \"cpu\" or \"cuda:N\", got \"" + spec + "\"");
      try {
        idx = std::stoll(spec.substr(5));
      } catch (...) {
        throw Error(ErrorCode::Config, "device must be \"auto\", \"cpu\" or \"cuda:N\", got \"" + spec + "\"");
      }
    }
    CXR_CHECK(cuda_available(), Device,
              "device \"" + spec + "\" asked for, but " +
                  std::string(torch::cuda::is_available() ? "" : "this libtorch build has no CUDA or no GPU is visible") +
                  "; use device \"cpu\" or link a CUDA libtorch (see README: LIBTORCH / Torch_DIR)");
    CXR_CHECK(idx >= 0 && idx < cuda_device_count(), Device,
              "device \"" + spec + "\" asked for, but only " + std::to_string(cuda_device_count()) + " CUDA device(s) exist");
    return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(idx));
  }
  throw Error(ErrorCode::Config, "device must be \"auto\", \"cpu\" or \"cuda:N\", got \"" + spec + "\"");
}

Engine::Engine(const ModelConfig& cfg, const EngineOptions& opt) : opt_(opt), device_(resolve_device(opt.device)) {
  install_cpu_cache();  // reuse of large CPU blocks across steps (cpu_cache.h: page faults were most of a step)
  CXR_CHECK(opt.precision == "fp32" || opt.precision == "bf16", Config,
            "precision must be \"fp32\" or \"bf16\", got \"" + opt.precision + "\"");
  CXR_CHECK(opt.precision == "fp32" || device_.is_cuda(), Config,
            "precision \"bf16\" (autocast) is only supported on CUDA; use \"fp32\" on CPU");
  model_ = std::make_shared<ClipModel>(cfg, opt.seed);  // built and initialised on CPU: same weights on any device
  model_->to(device_);
  model_->set_training(false);
}

torch::Tensor Engine::encode_images(const torch::Tensor& images, bool normalize) {
  model_->check_images(images);
  torch::NoGradGuard ng;
  model_->set_training(false);
  AutocastGuard ac(opt_.precision == "bf16");
  auto u = model_->encode_image(images.to(device_, torch::kFloat32)).to(torch::kFloat32);
  if (normalize) u = u / u.norm(2, -1, true).clamp_min(1e-12);
  return u.to(torch::kCPU).contiguous();
}

torch::Tensor Engine::encode_texts(const torch::Tensor& ids, bool normalize) {
  model_->check_tokens(ids);
  torch::NoGradGuard ng;
  model_->set_training(false);
  AutocastGuard ac(opt_.precision == "bf16");
  auto v = model_->encode_text(ids.to(device_)).to(torch::kFloat32);
  if (normalize) v = v / v.norm(2, -1, true).clamp_min(1e-12);
  return v.to(torch::kCPU).contiguous();
}

void Engine::configure_optimizer(const OptimizerConfig& c) {
  CXR_CHECK(c.kind == "adamw" || c.kind == "sgd", Config, "optimizer must be \"adamw\" or \"sgd\", got \"" + c.kind + "\"");
  CXR_CHECK(c.lr >= 0 && c.weight_decay >= 0, Config, "lr and weight_decay must be >= 0");
  std::vector<torch::Tensor> decay, plain;
  for (auto& p : model_->named_parameters()) (no_decay(p.key(), p.value()) ? plain : decay).push_back(p.value());
  opt_cfg_ = c;
  if (c.kind == "adamw") {
    CXR_CHECK(c.beta1 >= 0 && c.beta1 < 1 && c.beta2 >= 0 && c.beta2 < 1 && c.eps > 0, Config,
              "adamw needs 0 <= beta1, beta2 < 1 and eps > 0");
    auto base = torch::optim::AdamWOptions(c.lr).betas({c.beta1, c.beta2}).eps(c.eps);
    std::vector<torch::optim::OptimizerParamGroup> groups;
    groups.emplace_back(decay, std::make_unique<torch::optim::AdamWOptions>(
                                   torch::optim::AdamWOptions(base).weight_decay(c.weight_decay)));
    groups.emplace_back(plain, std::make_unique<torch::optim::AdamWOptions>(torch::optim::AdamWOptions(base).weight_decay(0)));
    optimizer_ = std::make_unique<torch::optim::AdamW>(std::move(groups), base);
  } else {
    CXR_CHECK(c.momentum >= 0, Config, "sgd momentum must be >= 0");
    auto base = torch::optim::SGDOptions(c.lr).momentum(c.momentum).nesterov(c.nesterov && c.momentum > 0);
    std::vector<torch::optim::OptimizerParamGroup> groups;
    groups.emplace_back(decay, std::make_unique<torch::optim::SGDOptions>(torch::optim::SGDOptions(base).weight_decay(c.weight_decay)));
    groups.emplace_back(plain, std::make_unique<torch::optim::SGDOptions>(torch::optim::SGDOptions(base).weight_decay(0)));
    optimizer_ = std::make_unique<torch::optim::SGD>(std::move(groups), base);
  }
}

torch::Tensor Engine::compute_loss(const torch::Tensor& u, const torch::Tensor& v, const LossConfig& loss,
                                   const GatherFn& gather, LossStats* stats) {
  return contrastive_loss(u, v, model_->logit_scale, loss, gather, stats);
}

Engine::~Engine() {
  reducer_.reset();  // removes its hooks before the parameters go
  dist_.reset();
}

void Engine::init_distributed(const DistOptions& opt) {
  CXR_CHECK(!dist_, Config, "this model already joined a process group");
  dist_ = std::make_unique<Distributed>(opt, device_);
}

Distributed& Engine::dist() {
  CXR_CHECK(dist_ != nullptr, Config, "this model is not in a process group: call initDistributed first");
  return *dist_;
}

void Engine::broadcast_state() {
  std::vector<torch::Tensor> ts;
  for (auto& p : model_->named_parameters()) ts.push_back(p.value());
  for (auto& b : model_->named_buffers())
    if (!skip_state_key(b.key())) ts.push_back(b.value());
  dist().broadcast_(ts, 0);
}

// The reducer of the current trainable set (rebuilt when freezing changed it).
GradReducer& Engine::reducer() {
  std::vector<torch::Tensor> params;
  std::vector<double> scales;
  for (auto& p : model_->named_parameters()) {
    if (!p.value().requires_grad()) continue;
    params.push_back(p.value());
    // θ's gradient is already the whole dθ on every rank (the loss sees all rows): average it; the
    // encoders' gradients hold only this rank's rows' share: sum them.
    scales.push_back(p.key() == "logit_scale" ? 1.0 / dist_->world_size() : 1.0);
  }
  bool same = reducer_ && reducer_->params().size() == params.size();
  for (size_t i = 0; same && i < params.size(); ++i)
    same = reducer_->params()[i].unsafeGetTensorImpl() == params[i].unsafeGetTensorImpl();
  if (!same) {
    reducer_.reset();
    reducer_ = std::make_unique<GradReducer>(*dist_, params, scales,
                                             static_cast<int64_t>(dist_->options().bucket_mb * 1024 * 1024));
  }
  return *reducer_;
}

StepResult Engine::train_step(const torch::Tensor& images, const torch::Tensor& ids, const StepOptions& so) {
  const auto t0 = Clock::now();
  model_->check_images(images);
  model_->check_tokens(ids);
  CXR_CHECK(images.size(0) == ids.size(0), Shape,
            "batch mismatch: " + std::to_string(images.size(0)) + " images but " + std::to_string(ids.size(0)) + " texts");
  // Distributed, the loss needs 2 pairs over all ranks (checked by the loss op), not on each rank.
  const int64_t min_batch = dist_ ? 1 : 2;
  CXR_CHECK(images.size(0) >= min_batch, Shape, "the contrastive loss needs a batch of at least 2 image-text pairs, got " +
                                                    std::to_string(images.size(0)));
  CXR_CHECK(std::isfinite(so.lr) && so.lr >= 0, Config, "lr must be a finite number >= 0");
  CXR_CHECK(parameter_count(true) > 0, Config, "every parameter is frozen: nothing to train");
  if (!optimizer_) configure_optimizer(opt_cfg_);
  for (auto& g : optimizer_->param_groups()) g.options().set_lr(so.lr);

  model_->set_training(true);
  for (auto& p : model_->parameters()) p.mutable_grad() = torch::Tensor();
  auto x = images.to(device_, torch::kFloat32);
  auto t = ids.to(device_);
  StepResult r;
  r.batch = images.size(0);
  CXR_CHECK(so.micro_batch >= 0, Config, "micro_batch must be >= 0");
  const bool accumulate = so.micro_batch > 0 && so.micro_batch < r.batch;
  GradReducer* red = nullptr;
  if (dist_) {
    dist_->take_comm_ms();
    red = &reducer();
    // One backward pass: buckets go out from the gradient hooks while backward runs. Several passes:
    // after the last one.
    red->begin(!accumulate);
    r.world_size = dist_->world_size();
  }
  GatherFn gather;
  if (dist_) gather = [this](const torch::Tensor& U, const torch::Tensor& V) { return dist_->gather_rows(U, V); };
  if (!accumulate) {
    torch::Tensor loss;
    {
      AutocastGuard ac(opt_.precision == "bf16");
      auto u = model_->encode_image(x);
      auto v = model_->encode_text(t);
      loss = compute_loss(u.to(torch::kFloat32), v.to(torch::kFloat32), so.loss, gather, &r.relax);
    }
    sync(device_);
    r.ms_forward = ms_since(t0);
    r.loss = loss.item<double>();
    CXR_CHECK(std::isfinite(r.loss), Numeric, "the loss is not finite (" + std::to_string(r.loss) +
                                                  "); weights were not updated. Lower the learning rate or check the inputs");
    const auto t1 = Clock::now();
    loss.backward();
    sync(device_);
    r.ms_backward = ms_since(t1);
  } else {
    // 1. Embeddings of every micro-batch, without gradient.
    auto xs = x.split(so.micro_batch);
    auto ts = t.split(so.micro_batch);
    std::vector<torch::Tensor> us, vs;
    {
      torch::NoGradGuard ng;
      AutocastGuard ac(opt_.precision == "bf16");
      for (size_t m = 0; m < xs.size(); ++m) {
        us.push_back(model_->encode_image(xs[m]).to(torch::kFloat32));
        vs.push_back(model_->encode_text(ts[m]).to(torch::kFloat32));
      }
    }
    // Distributed: every rank's cached rows, gathered once; each pass below splices its local rows in.
    GatherFn cached;
    if (dist_) {
      auto g = dist_->gather_rows(torch::cat(us), torch::cat(vs));
      cached = [g](const torch::Tensor&, const torch::Tensor&) { return g; };
    }
    sync(device_);
    r.ms_forward = ms_since(t0);
    // 2. Each micro-batch again with gradient, against the cached rest: the sum of these backward passes
    // is the gradient of the full-batch loss for the encoders. θ sees the whole loss in every pass, so its
    // gradient is counted once (divided by the number of passes below).
    const auto t1 = Clock::now();
    for (size_t m = 0; m < xs.size(); ++m) {
      torch::Tensor loss;
      {
        AutocastGuard ac(opt_.precision == "bf16");
        auto u = model_->encode_image(xs[m]).to(torch::kFloat32);
        auto v = model_->encode_text(ts[m]).to(torch::kFloat32);
        auto U = us, V = vs;
        U[m] = u;
        V[m] = v;
        // Every pass sees the same full-batch embeddings: the statistics of the first one are the step's.
        loss = compute_loss(torch::cat(U), torch::cat(V), so.loss, cached, m == 0 ? &r.relax : nullptr);
      }
      if (m == 0) {
        r.loss = loss.item<double>();
        CXR_CHECK(std::isfinite(r.loss), Numeric, "the loss is not finite (" + std::to_string(r.loss) +
                                                      "); weights were not updated. Lower the learning rate or check the inputs");
      }
      loss.backward();
    }
    if (model_->logit_scale.grad().defined()) {
      torch::NoGradGuard ng;
      model_->logit_scale.mutable_grad().div_(static_cast<double>(xs.size()));
    }
    sync(device_);
    r.ms_backward = ms_since(t1);
  }

  const auto t2 = Clock::now();
  if (red) {
    red->finish();
    r.ms_comm = dist_->take_comm_ms();
    r.batch = dist_->last_gathered_rows();
    r.buckets = static_cast<int64_t>(red->bucket_count());
    r.buckets_during_backward = static_cast<int64_t>(red->launched_during_backward());
  }
  std::vector<torch::Tensor> with_grad;
  for (auto& p : model_->parameters())
    if (p.grad().defined()) with_grad.push_back(p);
  const double max_norm = so.clip_grad_norm > 0 ? so.clip_grad_norm : std::numeric_limits<double>::infinity();
  r.grad_norm = torch::nn::utils::clip_grad_norm_(with_grad, max_norm);
  CXR_CHECK(std::isfinite(r.grad_norm), Numeric, "the gradient norm is not finite; weights were not updated");
  optimizer_->step();
  {
    torch::NoGradGuard ng;
    model_->logit_scale.clamp_(0.0, std::log(100.0));  // scale <= 100, as CLIP
  }
  sync(device_);
  r.ms_optimizer = ms_since(t2);
  r.logit_scale = std::exp(model_->logit_scale.item<double>());
  model_->set_training(false);
  ++steps_;
  r.ms_total = ms_since(t0);
  return r;
}

double Engine::eval_loss(const torch::Tensor& images, const torch::Tensor& ids, const LossConfig& loss) {
  model_->check_images(images);
  model_->check_tokens(ids);
  CXR_CHECK(images.size(0) == ids.size(0) && images.size(0) >= 2, Shape,
            "eval loss needs as many texts as images and at least 2 pairs");
  torch::NoGradGuard ng;
  model_->set_training(false);
  AutocastGuard ac(opt_.precision == "bf16");
  auto u = model_->encode_image(images.to(device_, torch::kFloat32)).to(torch::kFloat32);
  auto v = model_->encode_text(ids.to(device_)).to(torch::kFloat32);
  return compute_loss(u, v, loss).item<double>();
}

std::vector<NamedTensor> Engine::state() const {
  std::vector<NamedTensor> out;
  torch::NoGradGuard ng;
  for (auto& p : model_->named_parameters())
    out.push_back({p.key(), p.value().detach().to(torch::kCPU, torch::kFloat32).contiguous().clone()});
  for (auto& b : model_->named_buffers()) {
    if (skip_state_key(b.key())) continue;
    out.push_back({b.key(), b.value().detach().to(torch::kCPU, torch::kFloat32).contiguous().clone()});
  }
  return out;
}

LoadReport Engine::load_state(const std::vector<NamedTensor>& tensors, bool strict) {
  std::map<std::string, torch::Tensor> targets;
  for (auto& p : model_->named_parameters()) targets[p.key()] = p.value();
  for (auto& b : model_->named_buffers())
    if (!skip_state_key(b.key())) targets[b.key()] = b.value();
  LoadReport rep;
  std::set<std::string> seen;
  for (auto& nt : tensors) {
    if (skip_state_key(nt.name)) continue;
    auto it = targets.find(nt.name);
    if (it == targets.end()) {
      rep.unexpected.push_back(nt.name);
      continue;
    }
    if (!nt.tensor.sizes().equals(it->second.sizes())) {
      std::ostringstream m;
      m << "tensor \"" << nt.name << "\" has shape " << nt.tensor.sizes() << " but the model expects "
        << it->second.sizes();
      throw Error(ErrorCode::Checkpoint, m.str());
    }
    seen.insert(nt.name);
  }
  for (auto& kv : targets)
    if (!seen.count(kv.first)) rep.missing.push_back(kv.first);
  if (strict && (!rep.missing.empty() || !rep.unexpected.empty())) {
    std::string m = "state does not match the model:";
    if (!rep.missing.empty()) m += " missing " + std::to_string(rep.missing.size()) + " (first: " + rep.missing[0] + ")";
    if (!rep.unexpected.empty())
      m += " unexpected " + std::to_string(rep.unexpected.size()) + " (first: " + rep.unexpected[0] + ")";
    throw Error(ErrorCode::Checkpoint, m);
  }
  torch::NoGradGuard ng;
  for (auto& nt : tensors) {
    if (skip_state_key(nt.name) || !seen.count(nt.name)) continue;
    auto& dst = targets[nt.name];
    // float16/bfloat16 checkpoints are upcast: master weights are always float32.
    dst.copy_(nt.tensor.to(dst.device(), dst.scalar_type()));
  }
  return rep;
}

std::string Engine::optimizer_state() const {
  CXR_CHECK(optimizer_ != nullptr, Config, "no optimizer state yet: configure the optimizer or run a step first");
  torch::serialize::OutputArchive ar;
  optimizer_->save(ar);
  std::ostringstream os;
  ar.save_to(os);
  return os.str();
}

void Engine::load_optimizer_state(const std::string& bytes) {
  if (!optimizer_) configure_optimizer(opt_cfg_);
  try {
    torch::serialize::InputArchive ar;
    std::istringstream is(bytes);
    ar.load_from(is, device_);
    optimizer_->load(ar);
  } catch (const c10::Error& e) {
    throw Error(ErrorCode::Checkpoint, std::string("optimizer state could not be restored: ") + e.what_without_backtrace());
  }
}

void Engine::set_trainable(const std::vector<std::string>& frozen_prefixes) {
  for (auto& p : model_->named_parameters()) {
    bool frozen = false;
    for (auto& pre : frozen_prefixes)
      if (p.key().rfind(pre, 0) == 0) frozen = true;
    p.value().set_requires_grad(!frozen);
  }
}

int64_t Engine::parameter_count(bool trainable_only) const {
  int64_t n = 0;
  for (auto& p : model_->parameters())
    if (!trainable_only || p.requires_grad()) n += p.numel();
  return n;
}

int64_t Engine::parameter_bytes() const {
  int64_t n = 0;
  for (auto& p : model_->parameters()) n += p.numel() * static_cast<int64_t>(p.element_size());
  return n;
}

}  // namespace cxr
