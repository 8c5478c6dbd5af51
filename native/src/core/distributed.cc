#include "cxr/distributed.h"

#include <algorithm>
#include <mutex>
#include <sstream>
#include <thread>

#include "cxr/errors.h"
#include "cxr/torch_compat.h"

// Gloo needs its own headers (Debian: libgloo-dev) besides libtorch's; NCCL needs a CUDA libtorch built
// with it and nccl.h (CMake option CXR_WITH_NCCL). Without either, the process group reports E_CONFIG.
#if __has_include(<gloo/context.h>) && __has_include(<torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>)
#define CXR_HAVE_GLOO 1
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif
#ifdef CXR_WITH_NCCL
#include <c10/cuda/CUDAFunctions.h>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif
#if defined(CXR_HAVE_GLOO) || defined(CXR_WITH_NCCL)
#define CXR_HAVE_DIST 1
#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#endif

namespace cxr {

bool dist_backend_built(const std::string& backend) {
#ifdef CXR_HAVE_GLOO
  if (backend == "gloo") return true;
#endif
#ifdef CXR_WITH_NCCL
  if (backend == "nccl") return true;
#endif
  (void)backend;
  return false;
}

namespace {
using Clock = std::chrono::steady_clock;

// First line of the current exception's message.
std::string current_message() {
  std::string m;
  try {
    throw;
  } catch (const c10::Error& e) {
    m = e.what_without_backtrace();
  } catch (const std::exception& e) {
    m = e.what();
  } catch (...) {
    m = "unknown error";
  }
  auto nl = m.find('\n');
  return nl == std::string::npos ? m : m.substr(0, nl);
}

bool is_loopback(const std::string& a) { return a == "localhost" || a.rfind("127.", 0) == 0 || a == "::1"; }
}  // namespace

struct DistImpl {
  DistOptions opt;
  torch::Device device{torch::kCPU};
  std::string backend;
  double comm_ms = 0;
  int failures = 0;
  int64_t last_rows = 0;
#ifdef CXR_HAVE_DIST
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroup> pg;
#endif
};

Distributed::Distributed(const DistOptions& opt, const torch::Device& device) : impl_(std::make_unique<DistImpl>()) {
  auto& d = *impl_;
  d.opt = opt;
  d.device = device;
  CXR_CHECK(opt.world_size >= 1 && opt.rank >= 0 && opt.rank < opt.world_size, Config,
            "distributed: rank " + std::to_string(opt.rank) + " is outside world size " + std::to_string(opt.world_size));
  CXR_CHECK(opt.master_port > 0 && opt.master_port < 65536, Config,
            "distributed: MASTER_PORT must be in 1..65535, got " + std::to_string(opt.master_port));
  CXR_CHECK(opt.timeout_ms > 0 && opt.bucket_mb > 0, Config, "distributed: timeout and bucket size must be > 0");
  std::string backend = opt.backend;
  if (backend == "auto") backend = device.is_cuda() && dist_backend_built("nccl") ? "nccl" : "gloo";
  CXR_CHECK(backend == "gloo" || backend == "nccl", Config,
            "distributed backend must be \"auto\", \"gloo\" or \"nccl\", got \"" + opt.backend + "\"");
  CXR_CHECK(dist_backend_built(backend), Config,
            "this build of the addon has no " + backend + " backend" +
                (backend == "gloo" ? std::string(" (build it with Gloo's headers: apt-get install libgloo-dev, then npm run build:native)")
                                   : std::string(" (needs a CUDA libtorch built with NCCL and CXR_WITH_NCCL=ON)")));
  CXR_CHECK(backend != "nccl" || device.is_cuda(), Config, "the nccl backend needs a CUDA device; use gloo on CPU");
  d.backend = backend;
#ifdef CXR_HAVE_DIST
  const auto timeout = std::chrono::milliseconds(opt.timeout_ms);
  try {
    c10d::TCPStoreOptions so;
    so.port = static_cast<std::uint16_t>(opt.master_port);
    so.isServer = opt.rank == 0;
    so.numWorkers = static_cast<std::size_t>(opt.world_size);
    so.waitWorkers = true;
    so.timeout = timeout;
    try {
      d.store = c10::make_intrusive<c10d::TCPStore>(opt.master_addr, so);
    } catch (const c10::Error& e) {
      // A libtorch built without libuv (Debian's) refuses the libuv store that 2.4+ asks for by default.
      const bool libuv = std::string(e.what_without_backtrace()).find("libuv") != std::string::npos;
      if (!libuv || !compat::store_without_libuv(so)) throw;
      d.store = c10::make_intrusive<c10d::TCPStore>(opt.master_addr, so);
    }
  } catch (...) {
    throw Error(ErrorCode::Dist, "rank " + std::to_string(opt.rank) + ": rendezvous at " + opt.master_addr + ":" +
                                     std::to_string(opt.master_port) + " failed (" + current_message() +
                                     "); check MASTER_ADDR / MASTER_PORT and that all " + std::to_string(opt.world_size) +
                                     " ranks started");
  }
  try {
#ifdef CXR_HAVE_GLOO
    if (backend == "gloo") {
      auto o = c10d::ProcessGroupGloo::Options::create(timeout);
      if (!opt.ifname.empty())
        o->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(opt.ifname));
      else if (is_loopback(opt.master_addr))
        o->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
      else
        o->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
      o->threads = 2;
      auto gloo = c10::make_intrusive<c10d::ProcessGroupGloo>(d.store, opt.rank, opt.world_size, o);
      d.pg = compat::process_group_of<c10d::ProcessGroup>(d.store, opt.rank, opt.world_size, gloo, "gloo",
                                                          c10::DeviceType::CPU, timeout);
    }
#endif
#ifdef CXR_WITH_NCCL
    if (backend == "nccl") {
      c10::cuda::set_device(device.index());
      auto o = c10d::ProcessGroupNCCL::Options::create();
      o->timeout = timeout;
      auto nccl = c10::make_intrusive<c10d::ProcessGroupNCCL>(d.store, opt.rank, opt.world_size, o);
      d.pg = compat::process_group_of<c10d::ProcessGroup>(d.store, opt.rank, opt.world_size, nccl, "nccl",
                                                          c10::DeviceType::CUDA, timeout);
    }
#endif
  } catch (const Error&) {
    throw;
  } catch (...) {
    throw Error(ErrorCode::Dist, "rank " + std::to_string(opt.rank) + ": creating the " + backend +
                                     " process group failed (" + current_message() + ")" +
                                     (backend == "gloo" ? "; on several machines set GLOO_SOCKET_IFNAME to the interface that reaches the others" : ""));
  }
#else
  throw Error(ErrorCode::Config, "this build of the addon has no distributed support");
#endif
}

Distributed::~Distributed() = default;

int Distributed::rank() const { return impl_->opt.rank; }
int Distributed::world_size() const { return impl_->opt.world_size; }
const std::string& Distributed::backend() const { return impl_->backend; }
const DistOptions& Distributed::options() const { return impl_->opt; }

int64_t Distributed::last_gathered_rows() const { return impl_->last_rows; }

double Distributed::take_comm_ms() {
  double v = impl_->comm_ms;
  impl_->comm_ms = 0;
  return v;
}

void Distributed::fail(const std::string& what) {
  const std::string cause = current_message();
  auto& d = *impl_;
  const int me = d.opt.rank;
  std::ostringstream m;
  m << "rank " << me << " of " << d.opt.world_size << ": " << what << " failed (" << cause << "). ";
#ifdef CXR_HAVE_DIST
  // Liveness round over the store: each surviving rank posts a key; ranks whose key does not appear
  // within the grace period have exited or hang.
  const std::string gen = "cxr/alive/" + std::to_string(++d.failures) + "/";
  bool store_ok = true;
  try {
    d.store->setTimeout(std::chrono::milliseconds(5000));
    d.store->set(gen + std::to_string(me), std::vector<uint8_t>{1});
  } catch (...) {
    store_ok = false;
  }
  std::vector<int> missing;
  if (store_ok) {
    const auto deadline = Clock::now() + std::chrono::seconds(5);
    for (;;) {
      missing.clear();
      try {
        for (int r = 0; r < d.opt.world_size; ++r)
          if (r != me && !d.store->check({gen + std::to_string(r)})) missing.push_back(r);
      } catch (...) {
        store_ok = false;  // the store lives in rank 0's process
        break;
      }
      if (missing.empty() || Clock::now() > deadline) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
  if (!store_ok) {
    m << "Rank 0 (the rendezvous host " << d.opt.master_addr << ":" << d.opt.master_port << ") is gone.";
  } else {
    if (missing.empty()) {
      m << "Every rank still answers: a collective timed out (raise distributed.timeoutSec) or the ranks ran different steps.";
    } else {
      m << (missing.size() == 1 ? "Rank " : "Ranks ");
      for (size_t i = 0; i < missing.size(); ++i) m << (i ? ", " : "") << missing[i];
      m << " stopped answering (exited, was killed or hangs).";
    }
  }
#endif
  throw Error(ErrorCode::Dist, m.str());
}

#ifdef CXR_HAVE_DIST
namespace {
void wait_work(Distributed& dist, const c10::intrusive_ptr<c10d::Work>& w, const char* what) {
  const auto t0 = Clock::now();
  try {
    w->wait();
  } catch (...) {
    dist.fail(what);
  }
  dist.impl().comm_ms += std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

// Starts a collective and waits for it; any failure becomes Error(Dist) with the diagnosis.
template <class Start>
void collective(Distributed& dist, const char* what, Start&& start) {
  c10::intrusive_ptr<c10d::Work> w;
  try {
    w = start();
  } catch (...) {
    dist.fail(what);
  }
  wait_work(dist, w, what);
}
}  // namespace
#endif

void Distributed::broadcast_(const std::vector<torch::Tensor>& tensors, int root) {
#ifdef CXR_HAVE_DIST
  torch::NoGradGuard ng;
  const int64_t cap = std::max<int64_t>(1, static_cast<int64_t>(impl_->opt.bucket_mb * 4 * 1024 * 1024));
  // Coalesced in chunks of ~4 buckets of one dtype: a few large messages instead of one per tensor.
  std::vector<std::vector<torch::Tensor>> groups;
  int64_t bytes = 0;
  for (auto& t : tensors) {
    if (!t.defined() || t.numel() == 0) continue;
    const int64_t tb = t.numel() * static_cast<int64_t>(t.element_size());
    if (groups.empty() || groups.back()[0].scalar_type() != t.scalar_type() || bytes + tb > cap) {
      groups.emplace_back();
      bytes = 0;
    }
    groups.back().push_back(t);
    bytes += tb;
  }
  for (auto& g : groups) {
    std::vector<torch::Tensor> flat_parts;
    for (auto& t : g) flat_parts.push_back(t.reshape({-1}));
    std::vector<torch::Tensor> v{torch::cat(flat_parts)};
    c10d::BroadcastOptions o;
    o.rootRank = root;
    collective(*this, "broadcast of the initial weights", [&] { return impl_->pg->broadcast(v, o); });
    int64_t off = 0;
    for (auto& t : g) {
      t.copy_(v[0].narrow(0, off, t.numel()).view(t.sizes()));
      off += t.numel();
    }
  }
#else
  (void)tensors;
  (void)root;
#endif
}

std::tuple<torch::Tensor, torch::Tensor, int64_t> Distributed::gather_rows(const torch::Tensor& U, const torch::Tensor& V) {
#ifdef CXR_HAVE_DIST
  torch::NoGradGuard ng;
  auto& d = *impl_;
  const int N = d.opt.world_size;
  const int64_t D = U.size(1);
  // Row counts first: ranks may differ by images that failed to load.
  std::vector<torch::Tensor> n_in{torch::full({1}, U.size(0), U.options().dtype(torch::kLong))};
  std::vector<std::vector<torch::Tensor>> n_out(1);
  for (int r = 0; r < N; ++r) n_out[0].push_back(torch::empty_like(n_in[0]));
  collective(*this, "all-gather of the batch sizes", [&] { return d.pg->allgather(n_out, n_in); });
  std::vector<int64_t> sizes;
  for (auto& t : n_out[0]) sizes.push_back(t.to(torch::kCPU).item<int64_t>());
  const int64_t most = *std::max_element(sizes.begin(), sizes.end());
  int64_t off = 0;
  for (int r = 0; r < d.opt.rank; ++r) off += sizes[r];
  auto packed = torch::cat({U.to(torch::kFloat32), V.to(torch::kFloat32)}, 1);
  if (packed.size(0) < most)
    packed = torch::cat({packed, torch::zeros({most - packed.size(0), 2 * D}, packed.options())});
  std::vector<torch::Tensor> in{packed.contiguous()};
  std::vector<std::vector<torch::Tensor>> out(1);
  for (int r = 0; r < N; ++r) out[0].push_back(torch::empty_like(in[0]));
  collective(*this, "all-gather of the embeddings", [&] { return d.pg->allgather(out, in); });
  std::vector<torch::Tensor> rows;
  for (int r = 0; r < N; ++r) rows.push_back(out[0][r].narrow(0, 0, sizes[r]));
  auto G = torch::cat(rows);
  d.last_rows = G.size(0);
  return {G.narrow(1, 0, D).contiguous(), G.narrow(1, D, D).contiguous(), off};
#else
  (void)V;
  return {U, U, 0};
#endif
}

bool Distributed::any(bool flag) {
#ifdef CXR_HAVE_DIST
  auto dev = impl_->backend == "nccl" ? impl_->device : torch::Device(torch::kCPU);
  std::vector<torch::Tensor> v{torch::full({1}, flag ? 1 : 0, torch::TensorOptions().dtype(torch::kInt).device(dev))};
  c10d::AllreduceOptions o;
  o.reduceOp = c10d::ReduceOp::MAX;
  collective(*this, "stop agreement", [&] { return impl_->pg->allreduce(v, o); });
  return v[0].to(torch::kCPU).item<int>() != 0;
#else
  return flag;
#endif
}

void Distributed::barrier() {
#ifdef CXR_HAVE_DIST
  collective(*this, "barrier", [&] { return impl_->pg->barrier(); });
#endif
}

// ---------------------------------------------------------------------------------------------------
// Gradient reducer

struct GradReducer::State {
  struct Bucket {
    std::vector<size_t> params;
    std::vector<int64_t> offsets;
    int64_t numel = 0;
    torch::Tensor flat;
    size_t pending = 0;
    bool launched = false;
#ifdef CXR_HAVE_DIST
    c10::intrusive_ptr<c10d::Work> work;
#endif
  };
  Distributed* dist = nullptr;
  std::vector<torch::Tensor> params;  // same tensors as the reducer's (shallow handles)
  std::vector<double> scales;
  std::vector<Bucket> buckets;
  std::vector<std::pair<size_t, size_t>> where;  // param → (bucket, slot)
  std::vector<char> seen;
  std::vector<char> had_grad;
  bool armed = false;
  size_t next = 0;
  size_t from_hooks = 0;
  std::exception_ptr error;
  std::string error_msg;
  std::mutex mu;

  void put(size_t i, const torch::Tensor& g) {
    auto [b, slot] = where[i];
    auto& bk = buckets[b];
    auto dst = bk.flat.narrow(0, bk.offsets[slot], params[i].numel());
    if (g.defined()) {
      auto src = g.reshape({-1});
      if (scales[i] != 1.0)
        dst.copy_(src.mul(scales[i]));
      else
        dst.copy_(src);
      had_grad[i] = 1;
    } else {
      dst.zero_();
    }
    seen[i] = 1;
    --bk.pending;
  }

  // Launches ready buckets strictly in bucket order: every rank issues the same collectives in the same
  // sequence whatever order autograd finished them in.
  void launch_ready() {
    while (next < buckets.size() && buckets[next].pending == 0) {
      auto& bk = buckets[next++];
      bk.launched = true;
#ifdef CXR_HAVE_DIST
      if (error) continue;
      try {
        std::vector<torch::Tensor> v{bk.flat};
        bk.work = dist->impl().pg->allreduce(v);
      } catch (...) {
        error = std::current_exception();
      }
#endif
    }
  }
};

GradReducer::GradReducer(Distributed& dist, std::vector<torch::Tensor> params, std::vector<double> scales,
                         int64_t bucket_bytes)
    : dist_(dist), params_(std::move(params)), st_(std::make_shared<State>()) {
  CXR_CHECK(scales.size() == params_.size(), Internal, "GradReducer: one scale per parameter");
  auto& s = *st_;
  s.dist = &dist;
  s.params = params_;
  s.scales = std::move(scales);
  s.where.resize(params_.size());
  s.seen.assign(params_.size(), 0);
  s.had_grad.assign(params_.size(), 0);
  // Reverse registration order: the output-side parameters get their gradients first.
  int64_t bytes = 0;
  for (size_t k = params_.size(); k-- > 0;) {
    const auto& p = params_[k];
    const int64_t pb = p.numel() * static_cast<int64_t>(p.element_size());
    if (s.buckets.empty() || (bytes > 0 && bytes + pb > bucket_bytes)) {
      s.buckets.emplace_back();
      bytes = 0;
    }
    auto& bk = s.buckets.back();
    s.where[k] = {s.buckets.size() - 1, bk.params.size()};
    bk.params.push_back(k);
    bk.offsets.push_back(bk.numel);
    bk.numel += p.numel();
    bytes += pb;
  }
  for (auto& bk : s.buckets)
    bk.flat = torch::zeros({bk.numel}, params_.empty() ? torch::TensorOptions() : params_[0].options().requires_grad(false));
  std::weak_ptr<State> weak = st_;
  for (size_t i = 0; i < params_.size(); ++i) {
    hook_ids_.push_back(params_[i].register_hook([weak, i](const torch::Tensor& g) {
      auto st = weak.lock();
      if (!st) return;
      std::lock_guard<std::mutex> lock(st->mu);
      if (!st->armed || st->seen[i]) return;
      torch::NoGradGuard ng;
      st->put(i, g);
      const size_t before = st->next;
      st->launch_ready();
      st->from_hooks += st->next - before;
    }));
  }
}

GradReducer::~GradReducer() {
  for (size_t i = 0; i < params_.size() && i < hook_ids_.size(); ++i) {
    try {
      params_[i].remove_hook(hook_ids_[i]);
    } catch (...) {
    }
  }
}

size_t GradReducer::bucket_count() const { return st_->buckets.size(); }
size_t GradReducer::launched_during_backward() const { return st_->from_hooks; }

void GradReducer::begin(bool overlap) {
  auto& s = *st_;
  std::lock_guard<std::mutex> lock(s.mu);
  for (auto& bk : s.buckets) {
    bk.pending = bk.params.size();
    bk.launched = false;
#ifdef CXR_HAVE_DIST
    bk.work.reset();
#endif
  }
  std::fill(s.seen.begin(), s.seen.end(), 0);
  std::fill(s.had_grad.begin(), s.had_grad.end(), 0);
  s.next = 0;
  s.from_hooks = 0;
  s.error = nullptr;
  s.armed = overlap;
}

void GradReducer::finish() {
  auto& s = *st_;
  {
    std::lock_guard<std::mutex> lock(s.mu);
    s.armed = false;
    torch::NoGradGuard ng;
    // Whatever the hooks did not see: every gradient after several backward passes, and parameters the
    // graph did not reach (zeros on the wire, .grad left undefined, as on every other rank).
    for (size_t i = 0; i < params_.size(); ++i)
      if (!s.seen[i]) s.put(i, params_[i].grad());
    s.launch_ready();
  }
#ifdef CXR_HAVE_DIST
  if (s.error) {
    try {
      std::rethrow_exception(s.error);
    } catch (...) {
      dist_.fail("all-reduce of the gradients");
    }
  }
  for (auto& bk : s.buckets) wait_work(dist_, bk.work, "all-reduce of the gradients");
#endif
  torch::NoGradGuard ng;
  for (size_t i = 0; i < params_.size(); ++i) {
    if (!s.had_grad[i]) continue;
    auto [b, slot] = s.where[i];
    auto& bk = s.buckets[b];
    params_[i].mutable_grad() = bk.flat.narrow(0, bk.offsets[slot], params_[i].numel()).view(params_[i].sizes());
  }
}

}  // namespace cxr
