// Module entry: per-environment data, capabilities(), threads, leak counters and the model class.
#include <ATen/Parallel.h>
#include <ATen/Version.h>
#include <torch/version.h>

#include "common.h"
#include "cxr/attention.h"
#include "cxr/cpu_cache.h"
#include "cxr/engine.h"
#include "cxr/loss.h"
#include "cxr/threads.h"
#include "io.h"
#include "model_wrap.h"

namespace cxr_binding {
namespace {

/** capabilities(): what this build can do, and what is available now. */
Napi::Value Capabilities(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  auto o = Napi::Object::New(env);
  o.Set("torchVersion", TORCH_VERSION);
  auto cuda = Napi::Object::New(env);
#ifdef CXR_WITH_CUDA
  cuda.Set("kernels", true);
#else
  cuda.Set("kernels", false);
#endif
  cuda.Set("built", at::hasCUDA());
  cuda.Set("available", cxr::cuda_available());
  cuda.Set("devices", static_cast<double>(cxr::cuda_device_count()));
  cuda.Set("cudnn", at::globalContext().hasCuDNN());
  o.Set("cuda", cuda);
  // at::scaled_dot_product_attention in the towers (libtorch >= 2.0); else the explicit attention.
  o.Set("fusedAttention", cxr::fused_attention_compiled());
  auto dist = Napi::Object::New(env);
  dist.Set("gloo", cxr::dist_backend_built("gloo"));
  dist.Set("nccl", cxr::dist_backend_built("nccl"));
  o.Set("distributed", dist);
  o.Set("threads", at::get_num_threads());
  o.Set("interopThreads", at::get_num_interop_threads());
  o.Set("blas", cxr::blas_name());
  o.Set("blasThreads", cxr::blas_threads());
  o.Set("parallelInfo", at::get_parallel_info());
  return o;
}

/** setNumThreads(n): intra-op threads (libtorch's and OpenBLAS's pool) for every later call, on any thread. */
Napi::Value SetNumThreads(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  if (!info[0].IsNumber() || info[0].As<Napi::Number>().Int32Value() < 1)
    throw_error(env, "E_CONFIG", "threads must be an integer >= 1");
  const int n = info[0].As<Napi::Number>().Int32Value();
  cxr::set_threads(n);
  set_worker_threads(n);
  return env.Undefined();
}

/** stats(): live native models and the bytes reported to V8 (leak counters; both 0 when all are released). */
Napi::Value Stats(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  auto* d = data_of(env);
  auto o = Napi::Object::New(env);
  o.Set("liveModels", static_cast<double>(d->live.size()));
  o.Set("externalBytes", static_cast<double>(d->external_bytes));
  // The CPU block cache every engine installs (cxr/cpu_cache.h): process-wide, not per environment.
  const cxr::CpuCacheStats cs = cxr::cpu_cache_stats();
  auto c = Napi::Object::New(env);
  c.Set("installed", cs.installed);
  c.Set("limitBytes", static_cast<double>(cs.limit_bytes));
  c.Set("cachedBytes", static_cast<double>(cs.cached_bytes));
  c.Set("inUseBytes", static_cast<double>(cs.in_use_bytes));
  c.Set("hits", static_cast<double>(cs.hits));
  c.Set("misses", static_cast<double>(cs.misses));
  c.Set("released", static_cast<double>(cs.released));
  o.Set("cpuCache", c);
  return o;
}

/** releaseCpuCache(): gives every cached CPU block back to the system (blocks in use stay). */
Napi::Value ReleaseCpuCache(const Napi::CallbackInfo& info) {
  cxr::cpu_cache_release();
  return info.Env().Undefined();
}

/**
 * contrastiveLoss(u, v, [B, D], theta, lossConfig): loss and exact gradients of the contrastive loss for
 * given embeddings (synchronous; for tests, parity checks and the tfjs comparison).
 * Returns {loss, gradU: Float32Array, gradV: Float32Array, gradTheta}.
 */
Napi::Value ContrastiveLoss(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  auto shape = info[2].As<Napi::Array>();
  std::vector<int64_t> s{shape.Get(0u).As<Napi::Number>().Int64Value(), shape.Get(1u).As<Napi::Number>().Int64Value()};
  auto u = float_tensor(env, info[0], s, "u").set_requires_grad(true);
  auto v = float_tensor(env, info[1], s, "v").set_requires_grad(true);
  auto theta = torch::full({}, info[3].As<Napi::Number>().DoubleValue()).set_requires_grad(true);
  auto cfg = loss_config(info[4]);
  try {
    CXR_CHECK(torch::isfinite(u).all().item<bool>() && torch::isfinite(v).all().item<bool>(), Numeric,
              "embeddings contain NaN or Inf");
    cxr::LossStats st;
    auto loss = cxr::contrastive_loss(u, v, theta, cfg, {}, &st);
    loss.backward();
    auto o = Napi::Object::New(env);
    auto so = Napi::Object::New(env);
    set_loss_stats(env, so, st);
    o.Set("stats", so);
    o.Set("loss", loss.item<double>());
    o.Set("gradU", to_float32_array(env, u.grad()));
    o.Set("gradV", to_float32_array(env, v.grad()));
    o.Set("gradTheta", theta.grad().item<double>());
    return o;
  } catch (const Napi::Error&) {
    throw;
  } catch (...) {
    auto e = classify_current_exception();
    throw_error(env, e.code, e.message);
  }
}

/**
 * pixelsToImages(bytes, [N, 1, S, S], pixels): the normalised N×3×S×S float32 images of a uint8 batch, as
 * the model calls build them on their device, here on the CPU (synchronous; for tests and host consumers).
 */
Napi::Value PixelsToImages(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  std::vector<int64_t> shape;
  if (info[1].IsArray()) {
    auto a = info[1].As<Napi::Array>();
    for (uint32_t i = 0; i < a.Length(); ++i) shape.push_back(a.Get(i).As<Napi::Number>().Int64Value());
  }
  auto arg = image_arg(env, info[0], shape, info[2], "pixels");
  try {
    return to_float32_array(env, arg.on(torch::Device(torch::kCPU)));
  } catch (...) {
    auto e = classify_current_exception();
    throw_error(env, e.code, e.message);
  }
}

/** selfTest(kind): rejects from a worker with a libtorch or std exception (tests the error mapping). */
Napi::Value SelfTest(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  bool torch_err = info[0].IsString() && info[0].As<Napi::String>().Utf8Value() == "torch";
  auto* w = new PromiseWorker(
      env,
      [torch_err]() {
        if (torch_err) (void)torch::ones({2}).view({3});
        throw std::runtime_error("self-test std::exception");
      },
      [](Napi::Env e) -> Napi::Value { return e.Undefined(); });
  auto p = w->Promise();
  w->Queue();
  return p;
}

void Cleanup(void* arg) {
  auto* d = static_cast<AddonData*>(arg);
  auto live = d->live;  // copy: release erases
  for (auto* w : live) w->ReleaseForEnvTeardown();
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  auto* d = new AddonData();
  env.SetInstanceData<AddonData>(d);
  napi_add_env_cleanup_hook(env, Cleanup, d);
  auto ctor = ModelWrap::Define(env);
  d->model_ctor = Napi::Persistent(ctor);
  exports.Set("NativeModel", ctor);
  exports.Set("capabilities", Napi::Function::New(env, Capabilities, "capabilities"));
  exports.Set("setNumThreads", Napi::Function::New(env, SetNumThreads, "setNumThreads"));
  exports.Set("stats", Napi::Function::New(env, Stats, "stats"));
  exports.Set("releaseCpuCache", Napi::Function::New(env, ReleaseCpuCache, "releaseCpuCache"));
  exports.Set("selfTest", Napi::Function::New(env, SelfTest, "selfTest"));
  exports.Set("pixelsToImages", Napi::Function::New(env, PixelsToImages, "pixelsToImages"));
  exports.Set("contrastiveLoss", Napi::Function::New(env, ContrastiveLoss, "contrastiveLoss"));
  RegisterIo(env, exports);
  return exports;
}

}  // namespace
}  // namespace cxr_binding

static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) { return cxr_binding::Init(env, exports); }
NODE_API_MODULE(cxr_native, InitAddon)
