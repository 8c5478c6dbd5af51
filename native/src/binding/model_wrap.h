#pragma once
#include <memory>

#include "common.h"

namespace cxr { class Engine; }

namespace cxr_binding {

class ModelWrap : public Napi::ObjectWrap<ModelWrap> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit ModelWrap(const Napi::CallbackInfo& info);
  ~ModelWrap() override;
  void ReleaseForEnvTeardown();

 private:
  void Release();
  cxr::Engine& Checked(Napi::Env env, bool async);
  Napi::Value Run(Napi::Env env, std::function<void()> run, std::function<Napi::Value(Napi::Env)> pack);
  Napi::Value EncodeImages(const Napi::CallbackInfo& info);
  Napi::Value EncodeTexts(const Napi::CallbackInfo& info);
  Napi::Value Saliency(const Napi::CallbackInfo& info);
  Napi::Value TrainStep(const Napi::CallbackInfo& info);
  Napi::Value EvalLoss(const Napi::CallbackInfo& info);
  Napi::Value ConfigureOptimizer(const Napi::CallbackInfo& info);
  Napi::Value GetState(const Napi::CallbackInfo& info);
  Napi::Value LoadState(const Napi::CallbackInfo& info);
  Napi::Value GetOptimizerState(const Napi::CallbackInfo& info);
  Napi::Value LoadOptimizerState(const Napi::CallbackInfo& info);
  Napi::Value SetTrainable(const Napi::CallbackInfo& info);
  Napi::Value ParameterCount(const Napi::CallbackInfo& info);
  Napi::Value InitDistributed(const Napi::CallbackInfo& info);
  Napi::Value BroadcastState(const Napi::CallbackInfo& info);
  Napi::Value DistAny(const Napi::CallbackInfo& info);
  Napi::Value DistBarrier(const Napi::CallbackInfo& info);
  Napi::Value Dispose(const Napi::CallbackInfo& info);
  Napi::Value IsDisposed(const Napi::CallbackInfo& info);
  Napi::Value IsBusy(const Napi::CallbackInfo& info);
  Napi::Value DeviceName(const Napi::CallbackInfo& info);

  std::shared_ptr<cxr::Engine> engine_;
  AddonData* data_ = nullptr;
  int64_t reported_bytes_ = 0;
  bool busy_ = false;
  bool dispose_pending_ = false;
  bool env_closing_ = false;
};

}  // namespace cxr_binding
