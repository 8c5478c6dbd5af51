// Data-parallel training over libtorch's c10d: a TCPStore rendezvous compatible with torchrun's
// environment, a Gloo (CPU) or NCCL (CUDA) process group, and the two things the train step needs from
// it: the rows of every rank's embeddings (for the global-batch contrastive loss) and bucketed gradient
// all-reduce, launched from autograd hooks while backward is still running.
//
// Every collective failure (a peer that died, a timeout) becomes Error(Dist) whose message names the
// rank(s) that stopped answering, found by a short liveness round over the store.
#pragma once
#include <torch/torch.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

namespace cxr {

struct DistOptions {
  int rank = 0;
  int world_size = 1;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  std::string backend = "auto";  // "auto" (NCCL on CUDA when built with it, else Gloo) | "gloo" | "nccl"
  int64_t timeout_ms = 600000;   // rendezvous and every collective
  double bucket_mb = 25.0;       // gradient bucket size (PyTorch DDP's default)
  std::string ifname;            // network interface for Gloo ("" = address of master_addr's route / hostname)
};

/// Whether this build can create a process group with the backend ("gloo" | "nccl").
bool dist_backend_built(const std::string& backend);

struct DistImpl;

/// One process group; owned by the Engine that uses it.
class Distributed {
 public:
  /// Rendezvous: blocks until every rank has joined (or timeout_ms passes: Error(Dist)).
  Distributed(const DistOptions& opt, const torch::Device& device);
  ~Distributed();
  Distributed(const Distributed&) = delete;
  Distributed& operator=(const Distributed&) = delete;

  int rank() const;
  int world_size() const;
  const std::string& backend() const;
  const DistOptions& options() const;

  /// Copies `tensors` of rank `root` into every rank's tensors (in place; coalesced per dtype).
  void broadcast_(const std::vector<torch::Tensor>& tensors, int root = 0);
  /// Rows of U and V of every rank, in rank order, and the offset of this rank's rows. Ranks may hold
  /// different numbers of rows (a batch that lost an unreadable image).
  std::tuple<torch::Tensor, torch::Tensor, int64_t> gather_rows(const torch::Tensor& U, const torch::Tensor& V);
  /// Rows of the last gather_rows (the global batch).
  int64_t last_gathered_rows() const;
  /// True on every rank when `flag` is true on any rank (stop agreement).
  bool any(bool flag);
  void barrier();
  /// Milliseconds spent waiting on collectives since the last call (and resets the counter).
  double take_comm_ms();

  /// Rethrows the current collective exception as Error(Dist) with a diagnosis of which ranks are gone.
  [[noreturn]] void fail(const std::string& what);

  DistImpl& impl() { return *impl_; }

 private:
  std::unique_ptr<DistImpl> impl_;
};

/// Gradient all-reduce in buckets of ~bucket_mb, in a fixed order (the reverse of registration, the order
/// backward produces them). Armed for a step, each parameter's hook copies its gradient into its bucket
/// and a full bucket is all-reduced asynchronously while backward goes on; finish() launches the rest,
/// waits, and points every parameter's .grad at its reduced slice. Gradients are summed over ranks, each
/// scaled by its factor first (1/N for a parameter whose gradient is already complete on every rank).
class GradReducer {
 public:
  GradReducer(Distributed& dist, std::vector<torch::Tensor> params, std::vector<double> scales, int64_t bucket_bytes);
  ~GradReducer();
  GradReducer(const GradReducer&) = delete;
  GradReducer& operator=(const GradReducer&) = delete;

  /// Starts a step. overlap: launch buckets from the hooks (one backward pass per step); otherwise the
  /// hooks stay idle and finish() reads .grad (several backward passes, e.g. gradient accumulation).
  void begin(bool overlap);
  void finish();
  /// The parameters this reducer was built for (to detect a changed trainable set).
  const std::vector<torch::Tensor>& params() const { return params_; }
  size_t bucket_count() const;
  /// Buckets of the last step launched from the hooks, i.e. while backward was still running.
  size_t launched_during_backward() const;

 private:
  struct State;
  Distributed& dist_;
  std::vector<torch::Tensor> params_;
  std::shared_ptr<State> st_;
  std::vector<unsigned> hook_ids_;
};

}  // namespace cxr
