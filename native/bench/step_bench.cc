// step_bench: the whole native train step (cxr::Engine::train_step: forward of both towers, the CLIP loss,
// backward, gradient-norm measurement, AdamW, logit-scale clamp) without Node, on CPU or CUDA.
//
// Usage: step_bench --model native/bench/models/ViT-B-32.cfg [--batch 8] [--precision fp32|bf16]
//                   [--device cpu|cuda:0] [--steps 10] [--warmup 2] [--threads N] [--length L] [--json PATH]
//                   [--profile TRACE.json]
// Threads default to $CXR_THREADS, else 1. --length: token sequence length (default: the model's context
// length, as the tokenizer pads). Prints one header and one table row; writes JSON when --json is given.
// Errors are cxr::Error codes (E_CONFIG for a bad flag or model file); exit status 1 on error, 2 on usage.
//
// The model file is the flat key=value format of native/bench/models/*.cfg, generated from the registry by
// scripts/bench-model-configs.js (every cxr::ModelConfig field, named as the binding names them). Unknown and
// missing keys are refused: the core has no defaults, and a typo must not become one.
//
// Phases are the engine's own StepResult times (medians over --steps, after --warmup):
//   forward   = from the start of train_step: input checks (shape, token range, isfinite over the images),
//               the copy of the CPU batch to the device, both towers AND the loss forward (the engine does not
//               time the loss apart; see "loss" below), synchronised on CUDA;
//   backward  = loss.backward() through the loss and both towers;
//   optimizer = gradient-norm measurement (clip_grad_norm_ with an infinite bound), AdamW step, clamp.
// Measured by the bench beside the steps, not inside them (the engine is not instrumented further):
//   input     = the input part of "forward" alone: isfinite(images).all() + images.to(device) + ids.to(device);
//   loss_fwd / loss_bwd = cxr::contrastive_loss forward / backward alone on (B, embed_dim) float32 embeddings
//               on the device (what the engine runs after both towers), to show how much of forward/backward
//               is the loss.
//
// --profile: libtorch's (legacy) autograd profiler records every op of the timed steps and writes a Chrome
// trace; bench/profileStep.js records the PyTorch reference the same way and compares self times op by op.
// The profiler's own cost is in the phase times of such a run: use them for the profile only.
//
// Peak memory: on CUDA the caching allocator's peak allocated bytes over the timed steps (reset after the
// warm-up; model, AdamW state, activations and gradients). On CPU a counting wrapper around libtorch's CPU
// allocator (as loss_bench) gives the peak bytes of tensor storage live during the timed steps, including
// the model and optimizer state; it excludes BLAS/oneDNN scratch. Both also report the process's RSS peak
// (getrusage; whole lifetime).
//
// FLOPs: an analytic count of the matrix products (convolutions, linear layers, attention's two batched
// products, the logits GEMM), 2 FLOPs per multiply-add; norms, activations, softmax, pooling and the
// optimizer are not counted. One train step = 3 × forward (backward computes gradients with respect to
// both the activations and the weights: ≈ 2 × forward), the usual convention (Kaplan et al. 2020; the PaLM
// MFU appendix). Per sample, forward:
//   ViT (patch p, image S, g = S/p, P = g², N = P + 1 tokens, width w, hidden h = round(w·mlp_ratio)):
//       patch embedding 2·P·3p²·w + layers·(8·N·w² [qkv + out] + 4·N²·w [QKᵀ, AV] + 4·N·w·h [MLP]) + 2·w·E
//   ModifiedResNet: every convolution 2·Hout·Wout·Cin·Cout·k² (3-conv stem at S/2, Bottlenecks with the
//       avg-pool before conv3 and the downsample conv, as resnet.cc), attention pool over T = (S/32)² + 1
//       tokens of width C with one query: 2·C² + 4·T·C² + 4·T·C + 2·C·E
//   causal text (length L, width w, hidden h): layers·(8·L·w² + 4·L²·w + 4·L·w·h) + 2·w·E (full L×L
//       products: the causal mask removes none of the work an unfused attention does);
//   BERT text: the same with h = intermediate_size, plus the "mlp" projection when configured;
//   loss: logits 2·B²·E per step.
// Cross-check: ViT-B/32's image tower at 224² is 8.82 GFLOPs (4.41 GMACs) forward per image; open_clip's
// model profile lists 4.41 "GFLOPs" for it, counted by fvcore, which counts one multiply-add as one.
// RN50's convolutions come to 10.73 GFLOPs per 224² image, equal to a count taken with forward hooks on every
// Conv2d of bench/reference/clip_torch.py's model; with the attention pool the tower is 11.59 GFLOPs. The
// text tower at L = 77 is 5.96 GFLOPs per sequence.
// bench/reference/clip_torch.py documents the same formula; scripts/gpu-check.sh divides this bench's
// flops_per_step by each side's step time, so both TFLOP/s figures use one count.
#include <ATen/Parallel.h>
#include <c10/core/CPUAllocator.h>
#include <sys/resource.h>
#include <torch/csrc/autograd/profiler_legacy.h>
#include <torch/cuda.h>
#include <torch/torch.h>
#include <torch/version.h>

#ifdef CXR_WITH_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#endif

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <unordered_map>
#include <vector>

#include "cxr/cpu_cache.h"
#include "cxr/engine.h"
#include "cxr/errors.h"
#include "cxr/loss.h"
#include "cxr/torch_compat.h"
#include "cxr/threads.h"

namespace {

using Clock = std::chrono::steady_clock;
double ms_since(Clock::time_point t0) { return std::chrono::duration<double, std::milli>(Clock::now() - t0).count(); }

// ---- CPU: counting allocator (peak bytes of live tensor storage) ----
// Unlike loss_bench's wrapper, data and context stay the same pointer (sizes kept in a map): some libtorch
// paths the train step takes (raw_allocate) assert that a CPU DataPtr is a plain pointer.
std::atomic<int64_t> g_cur{0}, g_peak{0};
std::mutex g_mu;
std::unordered_map<void*, size_t>& g_sizes() {
  static auto* m = new std::unordered_map<void*, size_t>();  // never destroyed: frees may come at exit
  return *m;
}
c10::DeleterFnPtr g_base_delete = nullptr;
class CountingAllocator final : public cxr::compat::AllocatorBase {
 public:
  explicit CountingAllocator(c10::Allocator* base) : base_(base) { g_base_delete = base->raw_deleter(); }
  c10::DataPtr allocate_bytes(size_t n) const override {
    void* p = base_->raw_allocate(n);
    {
      std::lock_guard<std::mutex> lk(g_mu);
      g_sizes()[p] = n;
    }
    int64_t now = g_cur.fetch_add(static_cast<int64_t>(n)) + static_cast<int64_t>(n);
    int64_t pk = g_peak.load();
    while (now > pk && !g_peak.compare_exchange_weak(pk, now)) {
    }
    return {p, p, &CountingAllocator::free_counted, c10::Device(c10::DeviceType::CPU)};
  }
  c10::DeleterFnPtr raw_deleter() const override { return &CountingAllocator::free_counted; }

 private:
  static void free_counted(void* p) {
    if (!p) return;
    size_t n = 0;
    {
      std::lock_guard<std::mutex> lk(g_mu);
      auto it = g_sizes().find(p);
      if (it != g_sizes().end()) {
        n = it->second;
        g_sizes().erase(it);
      }
    }
    g_cur.fetch_sub(static_cast<int64_t>(n));
    g_base_delete(p);
  }
  c10::Allocator* base_;
};

// ---- device memory: one place for the CUDA-only calls ----
void reset_peak(const torch::Device& d) {
#ifdef CXR_WITH_CUDA
  if (d.is_cuda()) {
    c10::cuda::CUDACachingAllocator::resetPeakStats(d.index());
    return;
  }
#endif
  g_peak.store(g_cur.load());
}
// Peak allocated bytes since reset_peak: CUDA caching-allocator stats (aggregate pool), else the counter.
int64_t peak_bytes(const torch::Device& d) {
#ifdef CXR_WITH_CUDA
  if (d.is_cuda()) return c10::cuda::CUDACachingAllocator::getDeviceStats(d.index()).allocated_bytes[0].peak;
#endif
  return g_peak.load();
}
int64_t reserved_peak_bytes(const torch::Device& d) {
#ifdef CXR_WITH_CUDA
  if (d.is_cuda()) return c10::cuda::CUDACachingAllocator::getDeviceStats(d.index()).reserved_bytes[0].peak;
#endif
  (void)d;
  return -1;
}
const char* peak_kind(const torch::Device& d) {
  return d.is_cuda() ? "cuda caching allocator, peak allocated" : "cpu tensor storage (counting allocator), peak live";
}
int64_t rss_peak_bytes() {
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<int64_t>(ru.ru_maxrss) * 1024;
}
void sync(const torch::Device& d) {
  if (d.is_cuda()) torch::cuda::synchronize(d.index());
}

// ---- the flat model config ----
struct FlatConfig {
  std::string path;
  std::map<std::string, std::string> kv;
  std::set<std::string> used;

  std::string raw(const std::string& k) {
    auto it = kv.find(k);
    CXR_CHECK(it != kv.end(), Config, path + ": missing key \"" + k + "\" (regenerate with node scripts/bench-model-configs.js)");
    used.insert(k);
    return it->second;
  }
  // The value of `k` through `conv` (std::stoll / std::stod), which must take the whole text.
  template <class T>
  T parsed(const std::string& k, T (*conv)(const std::string&, size_t*), const char* kind) {
    std::string s = raw(k);
    size_t pos = 0;
    T v{};
    try {
      v = conv(s, &pos);
    } catch (...) {
      pos = std::string::npos;
    }
    CXR_CHECK(pos == s.size() && std::isfinite(static_cast<double>(v)), Config,
              path + ": \"" + k + "\" must be " + kind + ", got \"" + s + "\"");
    return v;
  }
  int64_t i64(const std::string& k) {
    return parsed<long long>(k, [](const std::string& s, size_t* p) { return std::stoll(s, p); }, "an integer");
  }
  double num(const std::string& k) {
    return parsed<double>(k, [](const std::string& s, size_t* p) { return std::stod(s, p); }, "a finite number");
  }
  bool boolean(const std::string& k) {
    std::string s = raw(k);
    CXR_CHECK(s == "true" || s == "false", Config, path + ": \"" + k + "\" must be true or false, got \"" + s + "\"");
    return s == "true";
  }
  std::string oneof(const std::string& k, const std::vector<std::string>& allowed) {
    std::string s = raw(k);
    std::string list;
    for (auto& a : allowed) {
      if (s == a) return s;
      list += (list.empty() ? "" : ", ") + a;
    }
    throw cxr::Error(cxr::ErrorCode::Config, path + ": \"" + k + "\" must be one of " + list + ", got \"" + s + "\"");
  }
  std::vector<int64_t> ints(const std::string& k) {
    std::string s = raw(k);
    std::vector<int64_t> out;
    std::stringstream ss(s);
    std::string tok;
    while (std::getline(ss, tok, ',')) {
      size_t pos = 0;
      int64_t v = 0;
      try {
        v = std::stoll(tok, &pos);
      } catch (...) {
        pos = std::string::npos;
      }
      CXR_CHECK(!tok.empty() && pos == tok.size(), Config, path + ": \"" + k + "\" must be comma-separated integers, got \"" + s + "\"");
      out.push_back(v);
    }
    return out;
  }
};

FlatConfig read_flat(const std::string& path) {
  std::ifstream f(path);
  CXR_CHECK(f.good(), Io, "cannot read model config " + path);
  FlatConfig c;
  c.path = path;
  std::string line;
  int n = 0;
  while (std::getline(f, line)) {
    ++n;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || line[0] == '#') continue;
    const auto eq = line.find('=');
    CXR_CHECK(eq != std::string::npos && eq > 0, Config, path + ":" + std::to_string(n) + ": expected key=value, got \"" + line + "\"");
    const std::string k = line.substr(0, eq);
    CXR_CHECK(!c.kv.count(k), Config, path + ":" + std::to_string(n) + ": duplicate key \"" + k + "\"");
    c.kv[k] = line.substr(eq + 1);
  }
  return c;
}

cxr::Activation act_of(FlatConfig& f, const std::string& k) {
  return f.oneof(k, {"quick_gelu", "gelu"}) == "gelu" ? cxr::Activation::Gelu : cxr::Activation::QuickGelu;
}

// Every field, as the binding reads them (native/src/binding/model_wrap.cc); then no key may be left over.
cxr::ModelConfig model_config(const std::string& path) {
  FlatConfig f = read_flat(path);
  cxr::ModelConfig c;
  c.embed_dim = f.i64("embedDim");
  c.logit_scale_init = f.num("logitScaleInit");
  auto& v = c.vision;
  v.type = f.oneof("vision.type", {"vit", "resnet"});
  v.image_size = f.i64("vision.imageSize");
  v.patch_size = f.i64("vision.patchSize");
  v.width = f.i64("vision.width");
  v.layers = f.i64("vision.layers");
  v.heads = f.i64("vision.heads");
  v.mlp_ratio = f.num("vision.mlpRatio");
  v.resnet_layers = f.ints("vision.resnetLayers");
  v.resnet_width = f.i64("vision.resnetWidth");
  v.attn_pool_heads = f.i64("vision.attnPoolHeads");
  v.batchnorm_train = f.boolean("vision.batchnormTrain");
  v.patch_bias = f.boolean("vision.patchBias");
  v.ln_pre = f.boolean("vision.lnPre");
  v.layer_norm_eps = f.num("vision.layerNormEps");
  v.act = act_of(f, "vision.act");
  auto& t = c.text;
  t.type = f.oneof("text.type", {"causal", "bert"});
  t.vocab_size = f.i64("text.vocabSize");
  t.context_length = f.i64("text.contextLength");
  t.width = f.i64("text.width");
  t.layers = f.i64("text.layers");
  t.heads = f.i64("text.heads");
  t.mlp_ratio = f.num("text.mlpRatio");
  t.act = act_of(f, "text.act");
  t.intermediate_size = f.i64("text.intermediateSize");
  t.max_position = f.i64("text.maxPosition");
  t.type_vocab_size = f.i64("text.typeVocabSize");
  t.pad_id = f.i64("text.padId");
  t.pooling = f.oneof("text.pooling", {"cls", "mean"});
  t.layer_norm_eps = f.num("text.layerNormEps");
  t.proj = f.oneof("text.proj", {"linear", "mlp"});
  t.proj_hidden = f.i64("text.projHidden");
  for (auto& kv : f.kv)
    CXR_CHECK(f.used.count(kv.first), Config, path + ": unknown key \"" + kv.first + "\"");
  return c;
}

// ---- analytic FLOPs (see the header comment) ----
double conv_flops(double hout, double cin, double cout, double k) { return 2.0 * hout * hout * cin * cout * k * k; }

double vit_flops(const cxr::VisionConfig& v, int64_t E) {
  const double g = static_cast<double>(v.image_size / v.patch_size), P = g * g, N = P + 1, w = static_cast<double>(v.width);
  const double h = static_cast<double>(std::llround(v.width * v.mlp_ratio)), p = static_cast<double>(v.patch_size);
  const double layer = 8 * N * w * w + 4 * N * N * w + 4 * N * w * h;
  return 2 * P * 3 * p * p * w + static_cast<double>(v.layers) * layer + 2 * w * static_cast<double>(E);
}

double resnet_flops(const cxr::VisionConfig& v, int64_t E) {
  const int64_t w = v.resnet_width;
  double R = static_cast<double>(v.image_size / 2);
  double f = conv_flops(R, 3, w / 2, 3) + conv_flops(R, w / 2, w / 2, 3) + conv_flops(R, w / 2, w, 3);
  int64_t r = v.image_size / 4, inplanes = w;
  for (size_t s = 0; s < v.resnet_layers.size(); ++s) {
    const int64_t planes = w << s;
    for (int64_t b = 0; b < v.resnet_layers[s]; ++b) {
      const int64_t stride = (b == 0 && s > 0) ? 2 : 1;
      f += conv_flops(r, inplanes, planes, 1) + conv_flops(r, planes, planes, 3);
      const int64_t r2 = r / stride;
      f += conv_flops(r2, planes, planes * 4, 1);
      if (stride > 1 || inplanes != planes * 4) f += conv_flops(r2, inplanes, planes * 4, 1);
      r = r2;
      inplanes = planes * 4;
    }
  }
  const double C = static_cast<double>(inplanes), T = static_cast<double>(r * r + 1);
  return f + 2 * C * C + 4 * T * C * C + 4 * T * C + 2 * C * static_cast<double>(E);
}

double text_flops(const cxr::TextConfig& t, int64_t E, int64_t length) {
  const double L = static_cast<double>(length), w = static_cast<double>(t.width), e = static_cast<double>(E);
  const double h = t.type == "bert" ? static_cast<double>(t.intermediate_size) : static_cast<double>(std::llround(t.width * t.mlp_ratio));
  double proj = 2 * w * e;
  if (t.type == "bert" && t.proj == "mlp") {
    const double ph = t.proj_hidden > 0 ? static_cast<double>(t.proj_hidden) : std::floor((w + e) / 2);
    proj = 2 * w * ph + 2 * ph * e;
  }
  return static_cast<double>(t.layers) * (8 * L * w * w + 4 * L * L * w + 4 * L * w * h) + proj;
}

struct FlopCount {
  double image, text, loss, step;  // image, text: forward per sample; loss: forward per step; step: train step
};
FlopCount flop_count(const cxr::ModelConfig& c, int64_t B, int64_t L) {
  FlopCount f{};
  f.image = c.vision.type == "vit" ? vit_flops(c.vision, c.embed_dim) : resnet_flops(c.vision, c.embed_dim);
  f.text = text_flops(c.text, c.embed_dim, L);
  f.loss = 2.0 * static_cast<double>(B) * static_cast<double>(B) * static_cast<double>(c.embed_dim);
  f.step = 3.0 * (static_cast<double>(B) * (f.image + f.text) + f.loss);
  return f;
}

double median(std::vector<double> v) {
  if (v.empty()) return NAN;
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

std::string json_num(double x) {
  if (!std::isfinite(x)) return "null";
  std::ostringstream o;
  o.precision(10);
  o << x;
  return o.str();
}
std::string json_str(const std::string& s) {
  std::string o = "\"";
  for (char ch : s) {
    if (ch == '"' || ch == '\\') o += '\\';
    o += ch;
  }
  return o + "\"";
}
std::string model_label(const std::string& path) {
  auto slash = path.find_last_of('/');
  std::string b = slash == std::string::npos ? path : path.substr(slash + 1);
  auto dot = b.rfind('.');
  return dot == std::string::npos ? b : b.substr(0, dot);
}

struct Args {
  std::string model, precision = "fp32", device = "cpu", json, profile;
  int64_t batch = 8, steps = 10, warmup = 2, length = 0;
  int threads = 1;
};

int run(const Args& a) {
  cxr::set_threads(a.threads);  // libtorch and the BLAS pool, as the addon does
  cxr::install_cpu_cache();  // first, so that the counting wrapper sits on top of the engine's CPU cache
  static CountingAllocator counting(c10::GetCPUAllocator());
  if (a.device == "cpu") c10::SetCPUAllocator(&counting, /*priority=*/100);
  CXR_CHECK(a.batch >= 2, Config, "--batch must be >= 2 (the contrastive loss needs two pairs)");
  CXR_CHECK(a.steps >= 1 && a.warmup >= 0, Config, "--steps must be >= 1 and --warmup >= 0");
  const cxr::ModelConfig cfg = model_config(a.model);
  const int64_t L = a.length > 0 ? a.length : cfg.text.context_length;
  const int64_t B = a.batch, S = cfg.vision.image_size, V = cfg.text.vocab_size;
  CXR_CHECK(L >= 3, Config, "--length must be >= 3 (start, one token, end)");

  cxr::EngineOptions eo;
  eo.device = a.device;
  eo.precision = a.precision;
  eo.seed = 0;
  cxr::Engine engine(cfg, eo);
  const torch::Device dev = engine.device();
  cxr::OptimizerConfig oc;  // the same AdamW as bench/reference/clip_torch.py
  oc.kind = "adamw";
  oc.lr = 1e-5;
  oc.weight_decay = 0.2;
  oc.beta1 = 0.9;
  oc.beta2 = 0.98;
  oc.eps = 1e-6;
  oc.momentum = 0.0;
  oc.nesterov = false;
  engine.configure_optimizer(oc);
  cxr::StepOptions so;  // the plain CLIP loss, one pass, the norm measured but not clipped
  so.lr = 1e-5;
  so.clip_grad_norm = 0.0;
  so.loss.kind = cxr::LossKind::Clip;
  so.loss.alpha = 1.0;
  so.loss.variant = cxr::RelaxVariantCfg::ClampDiag;
  so.loss.label_smoothing = 0.0;
  so.micro_batch = 0;

  // A CPU batch, as the binding hands it over: random pixels; start token, random ids, the end-of-text token
  // (the highest id: the text tower pools there) at a varying position, like clip_torch.py.
  torch::manual_seed(1);
  torch::Tensor images = torch::randn({B, 3, S, S});
  torch::Tensor ids = torch::randint(1, V - 2, {B, L}, torch::kLong);
  ids.select(1, 0).fill_(V - 2);
  for (int64_t i = 0; i < B; ++i) ids[i][i % (L - 2) + 1] = V - 1;

  for (int64_t i = 0; i < a.warmup; ++i) engine.train_step(images, ids, so);
  sync(dev);
  reset_peak(dev);
  std::vector<double> fwd, bwd, optm, tot, input, lfwd, lbwd;
  std::vector<double> losses;
  std::unique_ptr<torch::autograd::profiler::RecordProfile> profile;
  if (!a.profile.empty()) profile = std::make_unique<torch::autograd::profiler::RecordProfile>(a.profile);
  for (int64_t i = 0; i < a.steps; ++i) {
    cxr::StepResult r = engine.train_step(images, ids, so);
    fwd.push_back(r.ms_forward);
    bwd.push_back(r.ms_backward);
    optm.push_back(r.ms_optimizer);
    tot.push_back(r.ms_total);
    losses.push_back(r.loss);
  }
  profile.reset();  // writes the trace
  const int64_t peak = peak_bytes(dev), reserved = reserved_peak_bytes(dev);

  // The input part of "forward" and the loss alone (see the header comment), after the timed steps.
  {
    torch::NoGradGuard ng;
    for (int64_t i = 0; i < a.steps + 1; ++i) {
      sync(dev);
      auto t0 = Clock::now();
      bool finite = torch::isfinite(images).all().item<bool>();
      auto x = images.to(dev, torch::kFloat32);
      auto t = ids.to(dev);
      sync(dev);
      if (i > 0) input.push_back(ms_since(t0));
      CXR_CHECK(finite && x.defined() && t.defined(), Internal, "input check failed");
    }
  }
  {
    torch::manual_seed(2);
    auto opts = torch::TensorOptions().device(dev).dtype(torch::kFloat32);
    torch::Tensor u = torch::randn({B, cfg.embed_dim}, opts).requires_grad_(true);
    torch::Tensor v = (0.5 * u.detach() + torch::randn({B, cfg.embed_dim}, opts)).requires_grad_(true);
    torch::Tensor th = torch::full({}, cfg.logit_scale_init, opts).requires_grad_(true);
    for (int64_t i = 0; i < a.steps + 1; ++i) {
      u.mutable_grad() = torch::Tensor();
      v.mutable_grad() = torch::Tensor();
      th.mutable_grad() = torch::Tensor();
      sync(dev);
      auto t0 = Clock::now();
      torch::Tensor l = cxr::contrastive_loss(u, v, th, so.loss);
      sync(dev);
      const double f = ms_since(t0);
      auto t1 = Clock::now();
      l.backward();
      sync(dev);
      const double b = ms_since(t1);
      if (i > 0) {
        lfwd.push_back(f);
        lbwd.push_back(b);
      }
    }
  }

  const FlopCount fc = flop_count(cfg, B, L);
  const double mt = median(tot), mf = median(fwd), mb = median(bwd), mo = median(optm);
  const double ips = 1000.0 * static_cast<double>(B) / mt;
  const double tflops = fc.step / (mt * 1e-3) / 1e12;
  const std::string torch_version = std::to_string(TORCH_VERSION_MAJOR) + "." + std::to_string(TORCH_VERSION_MINOR) + "." +
                                    std::to_string(TORCH_VERSION_PATCH);
  const double mib = 1024.0 * 1024.0;
  const std::string label = model_label(a.model);
  std::printf("native train step (forward incl. loss, backward, AdamW); libtorch %s; threads %d; %s\n", torch_version.c_str(),
              a.threads, peak_kind(dev));
  std::printf("%-10s %-7s %-5s %5s %4s | %9s %8s | %8s %8s %8s %8s | %7s %7s | %9s %9s | %8s %7s\n", "model", "device",
              "prec", "batch", "len", "total ms", "img/s", "fwd ms", "bwd ms", "opt ms", "input ms", "loss f", "loss b",
              "peak MiB", "RSS MiB", "GFLOP", "TFLOP/s");
  std::printf("%-10s %-7s %-5s %5lld %4lld | %9.2f %8.1f | %8.2f %8.2f %8.2f %8.2f | %7.2f %7.2f | %9.1f %9.1f | %8.1f %7.3f\n",
              label.c_str(), a.device.c_str(), a.precision.c_str(), static_cast<long long>(B), static_cast<long long>(L), mt, ips,
              mf, mb, mo, median(input), median(lfwd), median(lbwd), peak / mib, rss_peak_bytes() / mib, fc.step / 1e9, tflops);
  std::printf("loss first %.5f last %.5f; flops/step %.4g (image fwd %.4g/img, text fwd %.4g/seq, loss fwd %.4g)\n",
              losses.front(), losses.back(), fc.step, fc.image, fc.text, fc.loss);
  std::fflush(stdout);

  if (!a.json.empty()) {
    std::ostringstream js;
    js << "{\n  \"bench\": \"step\", \"impl\": \"native\", \"model\": " << json_str(label) << ", \"model_file\": " << json_str(a.model)
       << ",\n  \"device\": " << json_str(a.device) << ", \"precision\": " << json_str(a.precision) << ", \"batch\": " << B
       << ", \"length\": " << L << ", \"image_size\": " << S << ", \"threads\": " << a.threads << ", \"steps\": " << a.steps
       << ", \"warmup\": " << a.warmup << ", \"torch\": " << json_str(torch_version) << ",\n  \"img_per_s\": " << json_num(ips)
       << ", \"tflops\": " << json_num(tflops) << ",\n  \"ms\": {\"total\": " << json_num(mt) << ", \"forward_incl_loss\": " << json_num(mf)
       << ", \"backward\": " << json_num(mb) << ", \"optimizer\": " << json_num(mo) << ", \"input\": " << json_num(median(input))
       << ", \"loss_forward_alone\": " << json_num(median(lfwd)) << ", \"loss_backward_alone\": " << json_num(median(lbwd))
       << "},\n  \"ms_total_steps\": [";
    for (size_t i = 0; i < tot.size(); ++i) js << (i ? ", " : "") << json_num(tot[i]);
    js << "],\n  \"peak_bytes\": " << peak << ", \"peak_kind\": " << json_str(peak_kind(dev))
       << ", \"reserved_peak_bytes\": " << (reserved >= 0 ? std::to_string(reserved) : "null")
       << ", \"rss_peak_bytes\": " << rss_peak_bytes() << ",\n  \"flops_per_step\": " << json_num(fc.step)
       << ", \"flops_image_forward\": " << json_num(fc.image) << ", \"flops_text_forward\": " << json_num(fc.text)
       << ", \"flops_loss_forward\": " << json_num(fc.loss) << ",\n  \"loss_first\": " << json_num(losses.front())
       << ", \"loss_last\": " << json_num(losses.back()) << "\n}\n";
    std::ofstream f(a.json);
    CXR_CHECK(f.good(), Io, "cannot write " + a.json);
    f << js.str();
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  bool parsing = true;
  if (const char* e = std::getenv("CXR_THREADS")) a.threads = std::max(1, std::atoi(e));
  try {
    for (int i = 1; i < argc; ++i) {
      std::string k = argv[i];
      auto next = [&]() -> std::string {
        CXR_CHECK(i + 1 < argc, Config, k + " needs a value");
        return argv[++i];
      };
      auto integer = [&]() -> int64_t {
        std::string s = next();
        size_t pos = 0;
        int64_t v = 0;
        try {
          v = std::stoll(s, &pos);
        } catch (...) {
          pos = std::string::npos;
        }
        CXR_CHECK(pos == s.size(), Config, k + " must be an integer, got \"" + s + "\"");
        return v;
      };
      if (k == "--model") a.model = next();
      else if (k == "--batch") a.batch = integer();
      else if (k == "--precision") a.precision = next();
      else if (k == "--device") a.device = next();
      else if (k == "--steps") a.steps = integer();
      else if (k == "--warmup") a.warmup = integer();
      else if (k == "--length") a.length = integer();
      else if (k == "--threads") a.threads = static_cast<int>(std::max<int64_t>(1, integer()));
      else if (k == "--json") a.json = next();
      else if (k == "--profile") a.profile = next();
      else throw cxr::Error(cxr::ErrorCode::Config, "unknown argument " + k);
    }
    CXR_CHECK(!a.model.empty(), Config, "--model FILE is required (native/bench/models/*.cfg)");
    parsing = false;
    return run(a);
  } catch (const cxr::Error& e) {
    std::fprintf(stderr, "step_bench: %s: %s\n", e.code_name(), e.what());
    return parsing ? 2 : 1;
  } catch (const c10::Error& e) {
    std::fprintf(stderr, "step_bench: E_TORCH: %s\n", e.what_without_backtrace());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "step_bench: E_INTERNAL: %s\n", e.what());
    return 1;
  }
}
