// Shared pieces of the N-API binding: per-environment data, error mapping, the async worker base.
// No logic lives here: TypeScript validates options; the binding unpacks, calls the core, packs results.
#pragma once
#include <initializer_list>
#include <napi.h>
#include <torch/torch.h>

#include <functional>
#include <set>
#include <string>

#include "cxr/config.h"
#include "cxr/errors.h"
#include "cxr/pixels.h"

namespace cxr_binding {

class ModelWrap;

// Per-environment state (principle 4): no statics, so worker threads and jest workers are safe.
struct AddonData {
  Napi::FunctionReference model_ctor;
  std::set<ModelWrap*> live;
  int64_t external_bytes = 0;
};

AddonData* data_of(Napi::Env env);

// Maps any exception to a stable code and a one-line message.
struct ErrorInfo {
  std::string code, message;
};
ErrorInfo classify_current_exception();
Napi::Error make_error(Napi::Env env, const std::string& code, const std::string& message);
[[noreturn]] void throw_error(Napi::Env env, const std::string& code, const std::string& message);

// The intra-op thread count every worker call runs with. libtorch keeps it per OS thread (OpenMP's
// nthreads ICV, initialised once on a thread's first parallel op), so a count set later on the JS thread
// would not reach libuv threads that already ran torch work: each call re-applies it where it differs,
// or a step could run with another count than the one before it and results would stop being bit-exact.
// Process-wide by nature (libtorch's own setting is), hence a process-wide value rather than AddonData.
void set_worker_threads(int n);

// Runs `run` on a libuv worker thread; resolves with `pack(env)` or rejects with a coded error.
class PromiseWorker : public Napi::AsyncWorker {
 public:
  PromiseWorker(Napi::Env env, std::function<void()> run, std::function<Napi::Value(Napi::Env)> pack,
                std::function<void()> done = {});
  Napi::Promise Promise() { return deferred_.Promise(); }
  void Execute() override;
  void OnOK() override;
  void OnError(const Napi::Error& e) override;

 private:
  Napi::Promise::Deferred deferred_;
  std::function<void()> run_;
  std::function<Napi::Value(Napi::Env)> pack_;
  std::function<void()> done_;
  ErrorInfo err_;
  bool failed_ = false;
};

// Argument helpers (TypeScript has validated types; these guard against misuse of the raw surface).
torch::Tensor float_tensor(Napi::Env env, const Napi::Value& v, std::vector<int64_t> shape, const char* what);
torch::Tensor double_tensor(Napi::Env env, const Napi::Value& v, std::vector<int64_t> shape, const char* what);
torch::Tensor ids_tensor(Napi::Env env, const Napi::Value& v, std::vector<int64_t> shape, const char* what);
Napi::Float32Array to_float32_array(Napi::Env env, const torch::Tensor& t);

// An image batch argument: a Float32Array of N×3×S×S normalised values (shape [N,3,S,S]), or a Uint8Array
// of N×1×S×S grayscale bytes (shape [N,1,S,S]) with `pixels` = {scale: [3], offset: [3], gain?, bias?,
// meanGain? (Float32Array of N each), warp? (Float64Array of N×6)}: the fields of cxr::PixelBatch. Unpacked on the JS thread (the bytes copied); `on(device)` runs on the worker
// and gives the float images there.
struct ImageArg {
  torch::Tensor floats;
  std::shared_ptr<cxr::PixelBatch> pixels;
  torch::Tensor on(const torch::Device& device) const { return pixels ? cxr::pixels_to_images(*pixels, device) : floats; }
};
ImageArg image_arg(Napi::Env env, const Napi::Value& data, std::vector<int64_t> shape, const Napi::Value& pixels,
                   const char* what);
int64_t get_int(const Napi::Object& o, const char* key, int64_t def);
double get_num(const Napi::Object& o, const char* key, double def);
bool get_bool(const Napi::Object& o, const char* key, bool def);
std::string get_str(const Napi::Object& o, const char* key, const std::string& def);
// An enum option: `def` when absent; any other value than one of `allowed` throws E_CONFIG naming the field
// (`where` + `key`) and the allowed values, so a typo never silently becomes the default.
std::string get_enum(Napi::Env env, const Napi::Object& o, const char* key, std::initializer_list<const char*> allowed,
                     const std::string& def, const char* where);
// Required options: TypeScript sends every value of these objects (the C++ structs' own defaults are never
// used for them); a missing or mistyped field is E_CONFIG naming it (`where` + `key`).
double req_num(Napi::Env env, const Napi::Object& o, const char* key, const char* where);
int64_t req_int(Napi::Env env, const Napi::Object& o, const char* key, const char* where);
bool req_bool(Napi::Env env, const Napi::Object& o, const char* key, const char* where);
std::string req_str(Napi::Env env, const Napi::Object& o, const char* key, const char* where);
// A required enum option: absent is E_CONFIG "required", any other value than one of `allowed` as get_enum.
std::string req_enum(Napi::Env env, const Napi::Object& o, const char* key, std::initializer_list<const char*> allowed,
                     const char* where);
// The options object argument `v` (E_CONFIG naming `what` when it is absent or not an object).
Napi::Object req_object(Napi::Env env, const Napi::Value& v, const char* what);
// The loss: every field required, the enums checked.
cxr::LossConfig loss_config(const Napi::Value& v);
// Sets the loss statistics of a step (cxr::LossStats) as the StepResult fields relaxEngaged, ... negSimMean.
void set_loss_stats(Napi::Env env, Napi::Object& o, const cxr::LossStats& st);

}  // namespace cxr_binding
