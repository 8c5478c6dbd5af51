// loss_bench: fused relaxed contrastive loss vs the unfused libtorch autograd composite (and the plain
// open_clip-style CLIP composite as a lower bound for any composite), forward + backward, float32, CPU.
//
// Usage: loss_bench [--threads N] [--sizes 64,256,1024,4096] [--dim 512] [--alpha 0.8] [--json PATH]
// Threads default to $CXR_THREADS, else 1. Prints a table; writes JSON when --json is given.
//
// "Peak extra memory" counts bytes of tensor storage allocated through libtorch's CPU allocator
// (replaced by a counting wrapper) during one forward + backward, above what was live before the step
// (the inputs). It includes the gradients (2·B·D floats) and excludes BLAS-internal scratch.
// "3 GEMM ms" times the three B×B×D GEMMs alone (S = U·Vᵀ, S·V, Sᵀ·U), which every implementation
// must do; "ceiling" = unfused / 3 GEMM is the best speed-up any fusion of the rest could reach.
#include <ATen/Parallel.h>
#include <c10/core/CPUAllocator.h>
#include <torch/torch.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "cxr/relaxed_contrastive.h"
#include "cxr/torch_compat.h"
#include "cxr/threads.h"

namespace {

std::atomic<int64_t> g_cur{0}, g_peak{0};

struct CountCtx {
  c10::DataPtr orig;
  size_t n;
};

class CountingAllocator final : public cxr::compat::AllocatorBase {
 public:
  explicit CountingAllocator(c10::Allocator* base) : base_(base) {}
  c10::DataPtr allocate_bytes(size_t n) const override {
    c10::DataPtr d = base_->allocate(n);
    void* data = d.get();
    auto* ctx = new CountCtx{std::move(d), n};
    int64_t now = g_cur.fetch_add(static_cast<int64_t>(n)) + static_cast<int64_t>(n);
    int64_t pk = g_peak.load();
    while (now > pk && !g_peak.compare_exchange_weak(pk, now)) {
    }
    return {data, ctx, &CountingAllocator::free_ctx, c10::Device(c10::DeviceType::CPU)};
  }
  c10::DeleterFnPtr raw_deleter() const override { return nullptr; }

 private:
  static void free_ctx(void* p) {
    auto* c = static_cast<CountCtx*>(p);
    g_cur.fetch_sub(static_cast<int64_t>(c->n));
    delete c;
  }
  c10::Allocator* base_;
};

struct Sample {
  double ms;
  int64_t peak_bytes;
  double loss;
};

template <class F>
Sample step(F&& f, torch::Tensor& U, torch::Tensor& V, torch::Tensor& T) {
  U.mutable_grad() = torch::Tensor();
  V.mutable_grad() = torch::Tensor();
  T.mutable_grad() = torch::Tensor();
  const int64_t base = g_cur.load();
  g_peak.store(base);
  auto t0 = std::chrono::steady_clock::now();
  torch::Tensor L = f(U, V, T);
  L.backward();
  auto t1 = std::chrono::steady_clock::now();
  Sample s{std::chrono::duration<double, std::milli>(t1 - t0).count(), g_peak.load() - base, L.item<double>()};
  return s;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

std::vector<int64_t> parse_sizes(const std::string& s) {
  std::vector<int64_t> out;
  std::stringstream ss(s);
  std::string tok;
  while (std::getline(ss, tok, ',')) out.push_back(std::stoll(tok));
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  int threads = 1;
  if (const char* e = std::getenv("CXR_THREADS")) threads = std::max(1, std::atoi(e));
  std::vector<int64_t> sizes = {64, 256, 1024, 4096};
  int64_t D = 512;
  double alpha = 0.8;
  std::string json;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "loss_bench: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--threads") threads = std::max(1, std::stoi(next()));
    else if (a == "--sizes") sizes = parse_sizes(next());
    else if (a == "--dim") D = std::stoll(next());
    else if (a == "--alpha") alpha = std::stod(next());
    else if (a == "--json") json = next();
    else {
      std::fprintf(stderr, "loss_bench: unknown argument %s\n", a.c_str());
      return 2;
    }
  }
  cxr::set_threads(threads);  // libtorch and the BLAS pool, as the addon does
  static CountingAllocator counting(c10::GetCPUAllocator());
  c10::SetCPUAllocator(&counting, /*priority=*/100);

  cxr::ContrastiveLossOptions opt;
  opt.alpha = alpha;
  auto fused = [&](auto& U, auto& V, auto& T) { return cxr::relaxed_contrastive_loss(U, V, T, opt); };
  auto unfused = [&](auto& U, auto& V, auto& T) { return cxr::relaxed_contrastive_loss_reference(U, V, T, opt); };
  auto clip = [&](auto& U, auto& V, auto& T) { return cxr::clip_loss_reference(U, V, T); };
  // The floor every implementation shares: S = Û·V̂ᵀ and the two gradient GEMMs (timed alone).
  auto gemms = [&](auto& U, auto& V, auto& T) {
    torch::NoGradGuard ng;
    torch::Tensor S = at::mm(U, V.t());
    torch::Tensor a = at::mm(S, V), b = at::mm(S.t(), U);
    return (a.sum() + b.sum()).detach().requires_grad_(true);
  };

  std::printf("relaxed contrastive loss, forward+backward, float32 CPU, D=%lld, clamp-diag alpha=%.2f, threads=%d\n",
              static_cast<long long>(D), alpha, threads);
  std::printf("%6s | %10s %10s %10s %10s | %7s %7s %7s | %11s %11s %11s | %s\n", "B", "fused ms", "unfused ms",
              "clip ms", "3 GEMM ms", "speedup", "vs clip", "ceiling", "fused MiB", "unfused MiB", "clip MiB",
              "fused extra / (B*B*4)");
  std::ostringstream js;
  js << "{\n  \"bench\": \"loss\", \"dtype\": \"float32\", \"device\": \"cpu\", \"D\": " << D << ", \"alpha\": " << alpha
     << ", \"variant\": \"clamp-diag\", \"threads\": " << threads << ",\n  \"rows\": [";
  bool first = true;
  for (int64_t B : sizes) {
    torch::manual_seed(B);
    torch::Tensor U = torch::randn({B, D}).requires_grad_(true);
    torch::Tensor V = (0.5 * U.detach() + torch::randn({B, D})).requires_grad_(true);
    torch::Tensor T = torch::full({}, std::log(50.0)).requires_grad_(true);
    const int reps = B <= 256 ? 41 : B <= 1024 ? 11 : 5;
    for (int w = 0; w < 2; ++w) {
      step(fused, U, V, T);
      step(unfused, U, V, T);
      step(clip, U, V, T);
    }
    std::vector<double> tf, tu, tc, tg;
    int64_t pf = 0, pu = 0, pc = 0;
    double lf = 0, lu = 0;
    for (int r = 0; r < reps; ++r) {  // interleaved: the machine's speed drifts over time
      Sample a = step(fused, U, V, T);
      Sample b = step(unfused, U, V, T);
      Sample c = step(clip, U, V, T);
      tg.push_back(step(gemms, U, V, T).ms);
      tf.push_back(a.ms);
      tu.push_back(b.ms);
      tc.push_back(c.ms);
      pf = std::max(pf, a.peak_bytes);
      pu = std::max(pu, b.peak_bytes);
      pc = std::max(pc, c.peak_bytes);
      lf = a.loss;
      lu = b.loss;
    }
    const double mf = median(tf), mu = median(tu), mc = median(tc), mg = median(tg);
    const double bb = static_cast<double>(B) * B * 4;
    const double mib = 1024.0 * 1024.0;
    std::printf("%6lld | %10.3f %10.3f %10.3f %10.3f | %6.2fx %6.2fx %6.2fx | %11.2f %11.2f %11.2f | %.2f\n",
                static_cast<long long>(B), mf, mu, mc, mg, mu / mf, mc / mf, mu / mg, pf / mib, pu / mib, pc / mib,
                pf / bb);
    if (std::fabs(lf - lu) > 1e-4 * std::max(1.0, std::fabs(lu)))
      std::printf("       WARNING: fused loss %.7f vs unfused %.7f\n", lf, lu);
    js << (first ? "" : ",") << "\n    {\"B\": " << B << ", \"reps\": " << reps << ", \"fused_ms\": " << mf
       << ", \"unfused_ms\": " << mu << ", \"clip_composite_ms\": " << mc << ", \"three_gemm_ms\": " << mg
       << ", \"speedup_ceiling\": " << mu / mg << ", \"speedup\": " << mu / mf
       << ", \"speedup_vs_clip\": " << mc / mf << ", \"fused_peak_extra_bytes\": " << pf
       << ", \"unfused_peak_extra_bytes\": " << pu << ", \"clip_peak_extra_bytes\": " << pc
       << ", \"bxb_float_bytes\": " << static_cast<int64_t>(bb) << ", \"fused_loss\": " << lf
       << ", \"unfused_loss\": " << lu << "}";
    first = false;
    std::fflush(stdout);
  }
  js << "\n  ]\n}\n";
  if (!json.empty()) {
    std::ofstream f(json);
    if (!f) {
      std::fprintf(stderr, "loss_bench: cannot write %s\n", json.c_str());
      return 1;
    }
    f << js.str();
    std::printf("wrote %s\n", json.c_str());
  }
  return 0;
}
