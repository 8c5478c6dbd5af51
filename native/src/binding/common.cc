#include "common.h"

#include <ATen/Parallel.h>

#include <atomic>
#include <cmath>

#include <new>

namespace cxr_binding {

AddonData* data_of(Napi::Env env) { return env.GetInstanceData<AddonData>(); }

ErrorInfo classify_current_exception() {
  try {
    throw;
  } catch (const cxr::Error& e) {
    return {e.code_name(), e.what()};
  } catch (const c10::Error& e) {
    std::string m = e.what_without_backtrace();
    auto nl = m.find('\n');
    if (nl != std::string::npos) m = m.substr(0, nl);
    bool oom = m.find("out of memory") != std::string::npos || m.find("can't allocate memory") != std::string::npos;
    return {oom ? "E_OOM" : "E_TORCH", m};
  } catch (const std::bad_alloc&) {
    return {"E_OOM", "out of memory"};
  } catch (const Napi::Error& e) {
    return {"E_INTERNAL", e.Message()};
  } catch (const std::exception& e) {
    return {"E_TORCH", e.what()};
  } catch (...) {
    return {"E_INTERNAL", "unknown native exception"};
  }
}

Napi::Error make_error(Napi::Env env, const std::string& code, const std::string& message) {
  auto err = Napi::Error::New(env, message);
  err.Value().Set("code", Napi::String::New(env, code));
  return err;
}

void throw_error(Napi::Env env, const std::string& code, const std::string& message) {
  throw make_error(env, code, message);
}

PromiseWorker::PromiseWorker(Napi::Env env, std::function<void()> run, std::function<Napi::Value(Napi::Env)> pack,
                             std::function<void()> done)
    : Napi::AsyncWorker(env, "cxr-train"), deferred_(Napi::Promise::Deferred::New(env)), run_(std::move(run)),
      pack_(std::move(pack)), done_(std::move(done)) {}

namespace {
std::atomic<int> g_worker_threads{0};
}  // namespace

void set_worker_threads(int n) { g_worker_threads.store(n); }

void PromiseWorker::Execute() {
  // Nothing may escape Execute(): an exception here would abort the process.
  try {
    const int want = g_worker_threads.load();
    if (want > 0 && at::get_num_threads() != want) at::set_num_threads(want);
    run_();
  } catch (...) {
    err_ = classify_current_exception();
    failed_ = true;
    SetError(err_.message);
  }
}

void PromiseWorker::OnOK() {
  Napi::HandleScope scope(Env());
  if (done_) done_();
  try {
    deferred_.Resolve(pack_(Env()));
  } catch (const Napi::Error& e) {
    deferred_.Reject(e.Value());
  } catch (...) {
    auto info = classify_current_exception();
    deferred_.Reject(make_error(Env(), info.code, info.message).Value());
  }
}

void PromiseWorker::OnError(const Napi::Error& e) {
  Napi::HandleScope scope(Env());
  if (done_) done_();
  deferred_.Reject(make_error(Env(), failed_ ? err_.code : "E_INTERNAL", failed_ ? err_.message : e.Message()).Value());
}

static int64_t numel_of(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (auto s : shape) n *= s;
  return n;
}

// A copy of a typed array of `type` (named `type_name` in errors) as a `dtype` tensor of `shape`.
static torch::Tensor typed_copy(Napi::Env env, const Napi::Value& v, std::vector<int64_t> shape, const char* what,
                                napi_typedarray_type type, const char* type_name, torch::ScalarType dtype) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != type)
    throw_error(env, "E_DTYPE", std::string(what) + " must be a " + type_name);
  auto arr = v.As<Napi::TypedArray>();
  for (auto s : shape)
    if (s < 0) throw_error(env, "E_SHAPE", std::string(what) + ": negative dimension");
  if (static_cast<int64_t>(arr.ElementLength()) != numel_of(shape))
    throw_error(env, "E_SHAPE", std::string(what) + ": " + std::to_string(arr.ElementLength()) +
                                    " values do not fill the declared shape (" + std::to_string(numel_of(shape)) + ")");
  // Copy on the JS thread: the worker never touches JS memory.
  auto* data = static_cast<uint8_t*>(arr.ArrayBuffer().Data()) + arr.ByteOffset();
  return torch::from_blob(data, shape, dtype).clone();
}

torch::Tensor float_tensor(Napi::Env env, const Napi::Value& v, std::vector<int64_t> shape, const char* what) {
  return typed_copy(env, v, std::move(shape), what, napi_float32_array, "Float32Array", torch::kFloat32);
}

torch::Tensor double_tensor(Napi::Env env, const Napi::Value& v, std::vector<int64_t> shape, const char* what) {
  return typed_copy(env, v, std::move(shape), what, napi_float64_array, "Float64Array", torch::kDouble);
}

torch::Tensor ids_tensor(Napi::Env env, const Napi::Value& v, std::vector<int64_t> shape, const char* what) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array)
    throw_error(env, "E_DTYPE", std::string(what) + " must be an Int32Array");
  auto arr = v.As<Napi::Int32Array>();
  if (static_cast<int64_t>(arr.ElementLength()) != numel_of(shape))
    throw_error(env, "E_SHAPE", std::string(what) + ": " + std::to_string(arr.ElementLength()) +
                                    " ids do not fill the declared shape (" + std::to_string(numel_of(shape)) + ")");
  return torch::from_blob(arr.Data(), shape, torch::kInt32).to(torch::kLong);
}

ImageArg image_arg(Napi::Env env, const Napi::Value& data, std::vector<int64_t> shape, const Napi::Value& pixels,
                   const char* what) {
  ImageArg a;
  if (!(data.IsTypedArray() && data.As<Napi::TypedArray>().TypedArrayType() == napi_uint8_array)) {
    a.floats = float_tensor(env, data, std::move(shape), what);
    return a;
  }
  auto arr = data.As<Napi::Uint8Array>();
  if (shape.size() != 4 || shape[1] != 1 || shape[0] < 1 || shape[2] < 1 || shape[3] < 1)
    throw_error(env, "E_SHAPE", std::string(what) + ": a Uint8Array batch has shape [N, 1, S, S] (grayscale bytes)");
  if (static_cast<int64_t>(arr.ElementLength()) != numel_of(shape))
    throw_error(env, "E_SHAPE", std::string(what) + ": " + std::to_string(arr.ElementLength()) +
                                    " bytes do not fill the declared shape (" + std::to_string(numel_of(shape)) + ")");
  if (!pixels.IsObject()) throw_error(env, "E_CONFIG", std::string(what) + ": a Uint8Array batch needs its pixel normalisation {scale, offset}");
  auto o = pixels.As<Napi::Object>();
  auto p = std::make_shared<cxr::PixelBatch>();
  for (const char* key : {"scale", "offset"}) {
    Napi::Value v = o.Get(key);
    if (!v.IsArray() || v.As<Napi::Array>().Length() != 3)
      throw_error(env, "E_CONFIG", std::string(what) + ": pixels." + key + " must be an array of 3 numbers");
    auto arr3 = v.As<Napi::Array>();
    for (uint32_t c = 0; c < 3; ++c) {
      Napi::Value x = arr3.Get(c);
      if (!x.IsNumber() || !std::isfinite(x.As<Napi::Number>().DoubleValue()))
        throw_error(env, "E_CONFIG", std::string(what) + ": pixels." + key + " must hold 3 finite numbers");
      (std::string(key) == "scale" ? p->scale : p->offset)[c] = x.As<Napi::Number>().DoubleValue();
    }
  }
  const bool has_gain = o.Has("gain") && !o.Get("gain").IsUndefined(), has_bias = o.Has("bias") && !o.Get("bias").IsUndefined();
  if (has_gain != has_bias) throw_error(env, "E_CONFIG", std::string(what) + ": pixels.gain and pixels.bias come together");
  if (has_gain) {
    p->gain = float_tensor(env, o.Get("gain"), {shape[0]}, "pixels.gain");
    p->bias = float_tensor(env, o.Get("bias"), {shape[0]}, "pixels.bias");
  }
  if (o.Has("meanGain") && !o.Get("meanGain").IsUndefined()) p->mean_gain = float_tensor(env, o.Get("meanGain"), {shape[0]}, "pixels.meanGain");
  if (o.Has("warp") && !o.Get("warp").IsUndefined()) p->warp = double_tensor(env, o.Get("warp"), {shape[0], 6}, "pixels.warp");
  // Copy on the JS thread (1 byte a pixel): the worker never touches JS memory.
  p->bytes = torch::from_blob(arr.Data(), shape, torch::kUInt8).clone();
  a.pixels = std::move(p);
  return a;
}

Napi::Float32Array to_float32_array(Napi::Env env, const torch::Tensor& t) {
  auto c = t.to(torch::kCPU, torch::kFloat32).contiguous();
  auto out = Napi::Float32Array::New(env, static_cast<size_t>(c.numel()));
  if (c.numel() > 0) std::memcpy(out.Data(), c.data_ptr<float>(), sizeof(float) * static_cast<size_t>(c.numel()));
  return out;
}

int64_t get_int(const Napi::Object& o, const char* key, int64_t def) {
  auto v = o.Get(key);
  return v.IsNumber() ? v.As<Napi::Number>().Int64Value() : def;
}
double get_num(const Napi::Object& o, const char* key, double def) {
  auto v = o.Get(key);
  return v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : def;
}
bool get_bool(const Napi::Object& o, const char* key, bool def) {
  auto v = o.Get(key);
  return v.IsBoolean() ? v.As<Napi::Boolean>().Value() : def;
}
std::string get_str(const Napi::Object& o, const char* key, const std::string& def) {
  auto v = o.Get(key);
  return v.IsString() ? v.As<Napi::String>().Utf8Value() : def;
}

std::string get_enum(Napi::Env env, const Napi::Object& o, const char* key, std::initializer_list<const char*> allowed,
                     const std::string& def, const char* where) {
  auto v = o.Get(key);
  if (v.IsUndefined()) return def;
  std::string list;
  for (const char* a : allowed) list += std::string(list.empty() ? "" : ", ") + "\"" + a + "\"";
  if (v.IsString()) {
    auto s = v.As<Napi::String>().Utf8Value();
    for (const char* a : allowed)
      if (s == a) return s;
    throw_error(env, "E_CONFIG", std::string(where) + key + " must be one of " + list + "; got \"" + s + "\"");
  }
  throw_error(env, "E_CONFIG", std::string(where) + key + " must be one of " + list);
}

namespace {
[[noreturn]] void missing(Napi::Env env, const char* where, const char* key, const char* what) {
  throw_error(env, "E_CONFIG", std::string(where) + key + " is required (" + what + ")");
}
}  // namespace

double req_num(Napi::Env env, const Napi::Object& o, const char* key, const char* where) {
  auto v = o.Get(key);
  if (!v.IsNumber()) missing(env, where, key, "a number");
  return v.As<Napi::Number>().DoubleValue();
}
int64_t req_int(Napi::Env env, const Napi::Object& o, const char* key, const char* where) {
  auto v = o.Get(key);
  if (!v.IsNumber()) missing(env, where, key, "an integer");
  return v.As<Napi::Number>().Int64Value();
}
bool req_bool(Napi::Env env, const Napi::Object& o, const char* key, const char* where) {
  auto v = o.Get(key);
  if (!v.IsBoolean()) missing(env, where, key, "true or false");
  return v.As<Napi::Boolean>().Value();
}
std::string req_str(Napi::Env env, const Napi::Object& o, const char* key, const char* where) {
  auto v = o.Get(key);
  if (!v.IsString()) missing(env, where, key, "a string");
  return v.As<Napi::String>().Utf8Value();
}
std::string req_enum(Napi::Env env, const Napi::Object& o, const char* key, std::initializer_list<const char*> allowed,
                     const char* where) {
  if (o.Get(key).IsUndefined()) missing(env, where, key, "a string");
  return get_enum(env, o, key, allowed, "", where);
}
Napi::Object req_object(Napi::Env env, const Napi::Value& v, const char* what) {
  if (!v.IsObject()) throw_error(env, "E_CONFIG", std::string(what) + " is required (an object with every field)");
  return v.As<Napi::Object>();
}

cxr::LossConfig loss_config(const Napi::Value& v) {
  auto env = v.Env();
  auto o = req_object(env, v, "the loss config");
  cxr::LossConfig c;
  if (!o.Has("kind")) missing(env, "loss.", "kind", "\"clip\" or \"relaxed\"");
  if (!o.Has("variant")) missing(env, "loss.", "variant", "\"clamp-diag\", \"clamp-numerator\" or \"margin\"");
  c.kind = req_enum(env, o, "kind", {"clip", "relaxed"}, "loss.") == "relaxed" ? cxr::LossKind::Relaxed : cxr::LossKind::Clip;
  c.alpha = req_num(env, o, "alpha", "loss.");
  const std::string variant = req_enum(env, o, "variant", {"clamp-diag", "clamp-numerator", "margin"}, "loss.");
  c.variant = variant == "clamp-numerator" ? cxr::RelaxVariantCfg::ClampNumerator
              : variant == "margin"        ? cxr::RelaxVariantCfg::Margin
                                           : cxr::RelaxVariantCfg::ClampDiag;
  c.label_smoothing = req_num(env, o, "labelSmoothing", "loss.");
  c.alpha_quantile = req_num(env, o, "alphaQuantile", "loss.");
  c.alpha_momentum = req_num(env, o, "alphaMomentum", "loss.");
  c.margin = req_num(env, o, "margin", "loss.");
  // The running α (null: none yet) is state of the trainer, not configuration.
  const Napi::Value run = o.Get("alphaRunning");
  c.alpha_running = run.IsNumber() ? run.As<Napi::Number>().DoubleValue() : std::nan("");
  return c;
}

void set_loss_stats(Napi::Env env, Napi::Object& o, const cxr::LossStats& st) {
  o.Set("relaxEngaged", st.engaged);
  o.Set("relaxAlpha", st.alpha);
  if (std::isnan(st.batch_quantile)) o.Set("relaxBatchQuantile", env.Null());
  else o.Set("relaxBatchQuantile", st.batch_quantile);
  o.Set("posSimMean", st.pos_mean);
  o.Set("posSimQ10", st.pos_q10);
  o.Set("posSimQ50", st.pos_q50);
  o.Set("posSimQ90", st.pos_q90);
  o.Set("negSimMean", st.neg_mean);
}

}  // namespace cxr_binding
