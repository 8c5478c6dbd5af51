// The one place where the differences between libtorch versions are handled (1.13 and 2.x are built and
// tested; 2.0-2.2 follow the 2.x branches below by the versions the APIs changed in). Every other source
// calls these small functions and contains no version #if of its own.
#pragma once
#include <ATen/autocast_mode.h>
#include <torch/torch.h>
#include <torch/version.h>

#include <chrono>
#include <cstring>
#include <string>

#define CXR_TORCH_AT_LEAST(major, minor) \
  (TORCH_VERSION_MAJOR > (major) || (TORCH_VERSION_MAJOR == (major) && TORCH_VERSION_MINOR >= (minor)))

namespace cxr::compat {

// at::scaled_dot_product_attention (fused CPU kernel; flash / memory-efficient kernels on CUDA): 2.0+.
constexpr bool kHasFusedAttention = CXR_TORCH_AT_LEAST(2, 0);

// Fused attention where libtorch has it. q: (N, H, Lq, d), k/v: (N, H, Lk, d); mask additive, broadcastable
// to (N, H, Lq, Lk), or undefined; causal: lower-triangular (Lq == Lk), the mask is then not used. The scale
// is 1/sqrt(d). Throws on a libtorch without the op (callers check kHasFusedAttention first).
inline torch::Tensor fused_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                     const torch::Tensor& mask, bool causal) {
#if CXR_TORCH_AT_LEAST(2, 0)
  c10::optional<torch::Tensor> m;
  if (mask.defined() && !causal) m = mask;
  return at::scaled_dot_product_attention(q, k, v, m, 0.0, causal);
#else
  (void)q; (void)k; (void)v; (void)mask; (void)causal;
  TORCH_CHECK(false, "scaled_dot_product_attention needs libtorch >= 2.0");
#endif
}

// bf16 autocast on CUDA: 2.4 made the calls take the device type and deprecated the *_gpu_* ones.
inline void set_cuda_autocast(bool enabled, at::ScalarType dtype) {
#if CXR_TORCH_AT_LEAST(2, 4)
  at::autocast::set_autocast_dtype(at::kCUDA, dtype);
  at::autocast::set_autocast_enabled(at::kCUDA, enabled);
#else
  at::autocast::set_autocast_gpu_dtype(dtype);
  at::autocast::set_enabled(enabled);
#endif
}

// CPU autocast (bf16), for tests that check the loss is not lowered by it; same 2.4 change.
inline void set_cpu_autocast(bool enabled) {
#if CXR_TORCH_AT_LEAST(2, 4)
  at::autocast::set_autocast_enabled(at::kCPU, enabled);
#else
  at::autocast::set_cpu_enabled(enabled);
#endif
}

// c10::Allocator: 2.3 made allocate() non-const and added the pure virtual copy_data(). Subclasses
// implement allocate_bytes() and get the right overrides for the libtorch they are built against.
struct AllocatorBase : c10::Allocator {
  virtual c10::DataPtr allocate_bytes(size_t n) const = 0;
#if CXR_TORCH_AT_LEAST(2, 3)
  c10::DataPtr allocate(size_t n) override { return allocate_bytes(n); }
  void copy_data(void* dest, const void* src, std::size_t count) const override {
    if (count > 0) std::memcpy(dest, src, count);
  }
#else
  c10::DataPtr allocate(size_t n) const override { return allocate_bytes(n); }
#endif
};

// c10d: since 2.0 Gloo and NCCL are Backends held by a ProcessGroup (2.5 dropped the ProcessGroup options);
// in 1.13 they are ProcessGroups themselves. A template so that this header needs no c10d includes: it is
// instantiated in distributed.cc only, with PG = c10d::ProcessGroup.
template <class PG, class StoreT, class BackendT>
c10::intrusive_ptr<PG> process_group_of(const c10::intrusive_ptr<StoreT>& store, int rank, int size,
                                        const c10::intrusive_ptr<BackendT>& backend, const std::string& name,
                                        c10::DeviceType device, std::chrono::milliseconds timeout) {
#if CXR_TORCH_AT_LEAST(2, 5)
  (void)timeout;
  auto pg = c10::make_intrusive<PG>(store, rank, size);
#elif CXR_TORCH_AT_LEAST(2, 0)
  auto pg = c10::make_intrusive<PG>(store, rank, size, c10::make_intrusive<typename PG::Options>(name, timeout));
#endif
#if CXR_TORCH_AT_LEAST(2, 0)
  const auto type = PG::strToBackendType(name);
  pg->setDefaultBackend(type);
  pg->setBackend(device, type, backend);
  return pg;
#else
  (void)store; (void)rank; (void)size; (void)name; (void)device; (void)timeout;
  return backend;
#endif
}

// c10d::TCPStoreOptions: 2.4 turned useLibUV on by default, but builds without libuv (Debian's 2.6) then
// refuse to start a store. Switches it off and returns true when there was something to switch (the caller
// retries); false on versions without the option.
template <class StoreOptions>
bool store_without_libuv(StoreOptions& o) {
#if CXR_TORCH_AT_LEAST(2, 4)
  if (!o.useLibUV) return false;
  o.useLibUV = false;
  return true;
#else
  (void)o;
  return false;
#endif
}

}  // namespace cxr::compat
