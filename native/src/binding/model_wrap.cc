// ModelWrap: the JS handle of one cxr::Engine. One owner; dispose(), the finalizer and the environment
// cleanup hook share one idempotent release. Heavy calls run as PromiseWorkers; overlapping ones get E_BUSY.
#include "model_wrap.h"

#include "cxr/engine.h"

namespace cxr_binding {

namespace {
// Every field is required (TypeScript sends a fully resolved config; the structs have no defaults).
cxr::Activation req_act(Napi::Env env, const Napi::Object& o, const char* where) {
  return req_enum(env, o, "act", {"quick_gelu", "gelu"}, where) == "gelu" ? cxr::Activation::Gelu : cxr::Activation::QuickGelu;
}

cxr::ModelConfig model_config(Napi::Env env, const Napi::Value& v) {
  auto o = req_object(env, v, "the model config");
  cxr::ModelConfig c;
  c.embed_dim = req_int(env, o, "embedDim", "");
  c.logit_scale_init = req_num(env, o, "logitScaleInit", "");
  auto vo = req_object(env, o.Get("vision"), "the model config's `vision` object");
  auto& vc = c.vision;
  vc.type = req_enum(env, vo, "type", {"vit", "resnet"}, "vision.");
  vc.image_size = req_int(env, vo, "imageSize", "vision.");
  vc.patch_size = req_int(env, vo, "patchSize", "vision.");
  vc.width = req_int(env, vo, "width", "vision.");
  vc.layers = req_int(env, vo, "layers", "vision.");
  vc.heads = req_int(env, vo, "heads", "vision.");
  vc.mlp_ratio = req_num(env, vo, "mlpRatio", "vision.");
  vc.resnet_width = req_int(env, vo, "resnetWidth", "vision.");
  vc.attn_pool_heads = req_int(env, vo, "attnPoolHeads", "vision.");
  vc.batchnorm_train = req_bool(env, vo, "batchnormTrain", "vision.");
  vc.patch_bias = req_bool(env, vo, "patchBias", "vision.");
  vc.ln_pre = req_bool(env, vo, "lnPre", "vision.");
  vc.layer_norm_eps = req_num(env, vo, "layerNormEps", "vision.");
  vc.act = req_act(env, vo, "vision.");
  auto rl = vo.Get("resnetLayers");
  if (!rl.IsArray()) throw_error(env, "E_CONFIG", "vision.resnetLayers is required (an array of integers)");
  auto layers = rl.As<Napi::Array>();
  for (uint32_t i = 0; i < layers.Length(); ++i) {
    auto n = layers.Get(i);
    if (!n.IsNumber()) throw_error(env, "E_CONFIG", "vision.resnetLayers must be an array of integers");
    vc.resnet_layers.push_back(n.As<Napi::Number>().Int64Value());
  }
  auto to = req_object(env, o.Get("text"), "the model config's `text` object");
  auto& tc = c.text;
  tc.type = req_enum(env, to, "type", {"causal", "bert"}, "text.");
  tc.vocab_size = req_int(env, to, "vocabSize", "text.");
  tc.context_length = req_int(env, to, "contextLength", "text.");
  tc.width = req_int(env, to, "width", "text.");
  tc.layers = req_int(env, to, "layers", "text.");
  tc.heads = req_int(env, to, "heads", "text.");
  tc.mlp_ratio = req_num(env, to, "mlpRatio", "text.");
  tc.act = req_act(env, to, "text.");
  tc.intermediate_size = req_int(env, to, "intermediateSize", "text.");
  tc.max_position = req_int(env, to, "maxPosition", "text.");
  tc.type_vocab_size = req_int(env, to, "typeVocabSize", "text.");
  tc.pad_id = req_int(env, to, "padId", "text.");
  tc.pooling = req_enum(env, to, "pooling", {"cls", "mean"}, "text.");
  tc.layer_norm_eps = req_num(env, to, "layerNormEps", "text.");
  tc.proj = req_enum(env, to, "proj", {"linear", "mlp"}, "text.");
  tc.proj_hidden = req_int(env, to, "projHidden", "text.");
  return c;
}

std::vector<int64_t> shape_of(const Napi::Value& v) {
  std::vector<int64_t> s;
  auto a = v.As<Napi::Array>();
  for (uint32_t i = 0; i < a.Length(); ++i) s.push_back(a.Get(i).As<Napi::Number>().Int64Value());
  return s;
}
}  // namespace

Napi::Function ModelWrap::Define(Napi::Env env) {
  return DefineClass(env, "NativeModel",
                     {InstanceMethod("encodeImages", &ModelWrap::EncodeImages),
                      InstanceMethod("encodeTexts", &ModelWrap::EncodeTexts),
                      InstanceMethod("saliency", &ModelWrap::Saliency),
                      InstanceMethod("trainStep", &ModelWrap::TrainStep),
                      InstanceMethod("evalLoss", &ModelWrap::EvalLoss),
                      InstanceMethod("configureOptimizer", &ModelWrap::ConfigureOptimizer),
                      InstanceMethod("getState", &ModelWrap::GetState),
                      InstanceMethod("loadState", &ModelWrap::LoadState),
                      InstanceMethod("getOptimizerState", &ModelWrap::GetOptimizerState),
                      InstanceMethod("loadOptimizerState", &ModelWrap::LoadOptimizerState),
                      InstanceMethod("setTrainable", &ModelWrap::SetTrainable),
                      InstanceMethod("parameterCount", &ModelWrap::ParameterCount),
                      InstanceMethod("initDistributed", &ModelWrap::InitDistributed),
                      InstanceMethod("broadcastState", &ModelWrap::BroadcastState),
                      InstanceMethod("distAny", &ModelWrap::DistAny),
                      InstanceMethod("distBarrier", &ModelWrap::DistBarrier),
                      InstanceMethod("dispose", &ModelWrap::Dispose),
                      InstanceAccessor("disposed", &ModelWrap::IsDisposed, nullptr),
                      InstanceAccessor("busy", &ModelWrap::IsBusy, nullptr),
                      InstanceAccessor("device", &ModelWrap::DeviceName, nullptr)});
}

ModelWrap::ModelWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ModelWrap>(info) {
  auto env = info.Env();
  data_ = data_of(env);
  auto cfg = model_config(env, info[0]);
  cxr::EngineOptions opt;
  {
    auto o = req_object(env, info[1], "the engine options");
    opt.device = req_str(env, o, "device", "");
    opt.precision = req_enum(env, o, "precision", {"fp32", "bf16"}, "");
    opt.seed = static_cast<uint64_t>(req_num(env, o, "seed", ""));
  }
  try {
    engine_ = std::make_shared<cxr::Engine>(cfg, opt);
  } catch (...) {
    auto e = classify_current_exception();
    throw_error(env, e.code, e.message);
  }
  // Parameters, plus Adam's two moments once the optimizer runs: a fair estimate of what V8 cannot see.
  reported_bytes_ = engine_->parameter_bytes() * 3;
  Napi::MemoryManagement::AdjustExternalMemory(env, reported_bytes_);
  data_->external_bytes += reported_bytes_;
  data_->live.insert(this);
}

ModelWrap::~ModelWrap() { Release(); }

void ModelWrap::Release() {
  if (!engine_) return;
  if (busy_) {  // the worker holds a reference; release when it finishes
    dispose_pending_ = true;
    return;
  }
  engine_.reset();
  if (data_) {
    data_->external_bytes -= reported_bytes_;
    data_->live.erase(this);
  }
  if (!env_closing_) Napi::MemoryManagement::AdjustExternalMemory(Env(), -reported_bytes_);
  reported_bytes_ = 0;
}

void ModelWrap::ReleaseForEnvTeardown() {
  env_closing_ = true;
  busy_ = false;
  Release();
}

cxr::Engine& ModelWrap::Checked(Napi::Env env, bool async) {
  if (!engine_ || dispose_pending_) throw_error(env, "E_DISPOSED", "this model was disposed");
  if (busy_)
    throw_error(env, "E_BUSY", "another call on this model is still running; await it before starting the next");
  return *engine_;
}

Napi::Value ModelWrap::Run(Napi::Env env, std::function<void()> run, std::function<Napi::Value(Napi::Env)> pack) {
  busy_ = true;
  auto self = Napi::Persistent(Value());  // keeps this wrap (and its engine) alive while the worker runs
  auto ref = std::make_shared<Napi::ObjectReference>(std::move(self));
  auto* w = new PromiseWorker(env, std::move(run), std::move(pack), [this, ref]() {
    busy_ = false;
    if (dispose_pending_) {
      dispose_pending_ = false;
      Release();
    }
    ref->Reset();
  });
  auto p = w->Promise();
  w->Queue();
  return p;
}

Napi::Value ModelWrap::EncodeImages(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  auto& eng = Checked(env, true);
  auto x = image_arg(env, info[0], shape_of(info[1]), info[3], "images");
  bool normalize = info[2].IsBoolean() && info[2].As<Napi::Boolean>().Value();
  auto out = std::make_shared<torch::Tensor>();
  return Run(env, [&eng, x, normalize, out]() { *out = eng.encode_images(x.on(eng.device()), normalize); },
             [out](Napi::Env e) -> Napi::Value { return to_float32_array(e, *out); });
}

Napi::Value ModelWrap::EncodeTexts(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  auto& eng = Checked(env, true);
  auto ids = ids_tensor(env, info[0], shape_of(info[1]), "token ids");
  bool normalize = info[2].IsBoolean() && info[2].As<Napi::Boolean>().Value();
  auto out = std::make_shared<torch::Tensor>();
  return Run(env, [&eng, ids, normalize, out]() { *out = eng.encode_texts(ids, normalize); },
             [out](Napi::Env e) -> Napi::Value { return to_float32_array(e, *out); });
}

// saliency(images, shape, {positive, negative, temperature, inputGradient}, pixels?) → Promise of
// {scores (N), maps (N×S×S), grid (N×h×w), gridShape [h, w], layer, inputGradient? (N×3×S×S)}.
Napi::Value ModelWrap::Saliency(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  auto& eng = Checked(env, true);
  auto x = image_arg(env, info[0], shape_of(info[1]), info[3], "images");
  cxr::SaliencyRequest req;
  {
    auto o = req_object(env, info[2], "the saliency request");
    const int64_t D = eng.config().embed_dim;
    req.positive = float_tensor(env, o.Get("positive"), {D}, "saliency positive text vector");
    req.negative = float_tensor(env, o.Get("negative"), {D}, "saliency negative text vector");
    req.temperature = req_num(env, o, "temperature", "saliency.");
    req.input_gradient = req_bool(env, o, "inputGradient", "saliency.");
  }
  auto res = std::make_shared<cxr::SaliencyResult>();
  return Run(env, [&eng, x, req, res]() { *res = eng.saliency(x.on(eng.device()), req); },
             [res](Napi::Env e) -> Napi::Value {
               auto o = Napi::Object::New(e);
               o.Set("scores", to_float32_array(e, res->score));
               o.Set("maps", to_float32_array(e, res->cam));
               o.Set("grid", to_float32_array(e, res->cam_grid));
               auto gs = Napi::Array::New(e, 2);
               gs.Set(uint32_t{0}, static_cast<double>(res->cam_grid.size(1)));
               gs.Set(uint32_t{1}, static_cast<double>(res->cam_grid.size(2)));
               o.Set("gridShape", gs);
               o.Set("layer", res->layer);
               if (res->input_grad.defined()) o.Set("inputGradient", to_float32_array(e, res->input_grad));
               return o;
             });
}

Napi::Value ModelWrap::TrainStep(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  auto& eng = Checked(env, true);
  auto x = image_arg(env, info[0], shape_of(info[1]), info[5], "images");
  auto ids = ids_tensor(env, info[2], shape_of(info[3]), "token ids");
  cxr::StepOptions so;
  {
    auto o = req_object(env, info[4], "the step options");
    so.lr = req_num(env, o, "lr", "step.");
    so.clip_grad_norm = req_num(env, o, "clipGradNorm", "step.");
    so.micro_batch = req_int(env, o, "microBatch", "step.");
    so.loss = loss_config(o.Get("loss"));
  }
  auto res = std::make_shared<cxr::StepResult>();
  return Run(env, [&eng, x, ids, so, res]() { *res = eng.train_step(x.on(eng.device()), ids, so); },
             [res](Napi::Env e) -> Napi::Value {
               auto o = Napi::Object::New(e);
               o.Set("loss", res->loss);
               o.Set("gradNorm", res->grad_norm);
               o.Set("logitScale", res->logit_scale);
               o.Set("msForward", res->ms_forward);
               o.Set("msBackward", res->ms_backward);
               o.Set("msOptimizer", res->ms_optimizer);
               o.Set("msTotal", res->ms_total);
               o.Set("msComm", res->ms_comm);
               o.Set("batch", static_cast<double>(res->batch));
               o.Set("worldSize", static_cast<double>(res->world_size));
               o.Set("buckets", static_cast<double>(res->buckets));
               o.Set("bucketsDuringBackward", static_cast<double>(res->buckets_during_backward));
               set_loss_stats(e, o, res->relax);
               return o;
             });
}

Napi::Value ModelWrap::EvalLoss(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  auto& eng = Checked(env, true);
  auto x = image_arg(env, info[0], shape_of(info[1]), info[5], "images");
  auto ids = ids_tensor(env, info[2], shape_of(info[3]), "token ids");
  auto lc = loss_config(info[4]);
  auto out = std::make_shared<double>(0);
  return Run(env, [&eng, x, ids, lc, out]() { *out = eng.eval_loss(x.on(eng.device()), ids, lc); },
             [out](Napi::Env e) -> Napi::Value { return Napi::Number::New(e, *out); });
}

Napi::Value ModelWrap::ConfigureOptimizer(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  auto& eng = Checked(env, false);
  cxr::OptimizerConfig c;
  {
    auto o = req_object(env, info[0], "the optimizer config");
    if (!o.Has("kind")) throw_error(env, "E_CONFIG", "optimizer.kind is required (\"adamw\" or \"sgd\")");
    c.kind = get_enum(env, o, "kind", {"adamw", "sgd"}, c.kind, "optimizer.");
    c.lr = req_num(env, o, "lr", "optimizer.");
    c.weight_decay = req_num(env, o, "weightDecay", "optimizer.");
    c.beta1 = req_num(env, o, "beta1", "optimizer.");
    c.beta2 = req_num(env, o, "beta2", "optimizer.");
    c.eps = req_num(env, o, "eps", "optimizer.");
    c.momentum = req_num(env, o, "momentum", "optimizer.");
    c.nesterov = req_bool(env, o, "nesterov", "optimizer.");
  }
  try {
    eng.configure_optimizer(c);
  } catch (...) {
    auto e = classify_current_exception();
    throw_error(env, e.code, e.message);
  }
  return env.Undefined();
}

Napi::Value ModelWrap::GetState(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  auto& eng = Checked(env, false);
  auto st = eng.state();
  auto arr = Napi::Array::New(env, st.size());
  for (size_t i = 0; i < st.size(); ++i) {
    auto o = Napi::Object::New(env);
    o.Set("name", st[i].name);
    auto shape = Napi::Array::New(env, st[i].tensor.dim());
    for (int64_t d = 0; d < st[i].tensor.dim(); ++d) shape.Set(static_cast<uint32_t>(d), static_cast<double>(st[i].tensor.size(d)));
    o.Set("shape", shape);
    o.Set("data", to_float32_array(env, st[i].tensor));
    arr.Set(static_cast<uint32_t>(i), o);
  }
  return arr;
}

Napi::Value ModelWrap::LoadState(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  auto& eng = Checked(env, false);
  if (!info[0].IsArray()) throw_error(env, "E_CONFIG", "loadState expects an array of {name, shape, data}");
  auto arr = info[0].As<Napi::Array>();
  std::vector<cxr::NamedTensor> ts;
  for (uint32_t i = 0; i < arr.Length(); ++i) {
    auto o = arr.Get(i).As<Napi::Object>();
    auto name = get_str(o, "name", "");
    ts.push_back({name, float_tensor(env, o.Get("data"), shape_of(o.Get("shape")), name.c_str())});
  }
  bool strict = !info[1].IsBoolean() || info[1].As<Napi::Boolean>().Value();
  cxr::LoadReport rep;
  try {
    rep = eng.load_state(ts, strict);
  } catch (...) {
    auto e = classify_current_exception();
    throw_error(env, e.code, e.message);
  }
  auto out = Napi::Object::New(env);
  auto miss = Napi::Array::New(env, rep.missing.size());
  for (size_t i = 0; i < rep.missing.size(); ++i) miss.Set(static_cast<uint32_t>(i), rep.missing[i]);
  auto unex = Napi::Array::New(env, rep.unexpected.size());
  for (size_t i = 0; i < rep.unexpected.size(); ++i) unex.Set(static_cast<uint32_t>(i), rep.unexpected[i]);
  out.Set("missing", miss);
  out.Set("unexpected", unex);
  return out;
}

Napi::Value ModelWrap::GetOptimizerState(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  auto& eng = Checked(env, false);
  try {
    auto s = eng.optimizer_state();
    return Napi::Buffer<char>::Copy(env, s.data(), s.size());
  } catch (const Napi::Error&) {
    throw;
  } catch (...) {
    auto e = classify_current_exception();
    throw_error(env, e.code, e.message);
  }
}

Napi::Value ModelWrap::LoadOptimizerState(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  auto& eng = Checked(env, false);
  if (!info[0].IsBuffer()) throw_error(env, "E_CONFIG", "loadOptimizerState expects a Buffer");
  auto b = info[0].As<Napi::Buffer<char>>();
  try {
    eng.load_optimizer_state(std::string(b.Data(), b.Length()));
  } catch (...) {
    auto e = classify_current_exception();
    throw_error(env, e.code, e.message);
  }
  return env.Undefined();
}

Napi::Value ModelWrap::SetTrainable(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  auto& eng = Checked(env, false);
  std::vector<std::string> prefixes;
  if (info[0].IsArray()) {
    auto a = info[0].As<Napi::Array>();
    for (uint32_t i = 0; i < a.Length(); ++i) prefixes.push_back(a.Get(i).As<Napi::String>().Utf8Value());
  }
  eng.set_trainable(prefixes);
  return env.Undefined();
}

Napi::Value ModelWrap::ParameterCount(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  auto& eng = Checked(env, false);
  bool trainable = info[0].IsBoolean() && info[0].As<Napi::Boolean>().Value();
  return Napi::Number::New(env, static_cast<double>(eng.parameter_count(trainable)));
}

// The process-group calls block on other ranks: they run on the worker thread like a train step.
Napi::Value ModelWrap::InitDistributed(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  auto& eng = Checked(env, true);
  if (!info[0].IsObject()) throw_error(env, "E_CONFIG", "initDistributed expects an options object");
  auto o = info[0].As<Napi::Object>();
  cxr::DistOptions d;
  d.rank = static_cast<int>(req_int(env, o, "rank", "distributed."));
  d.world_size = static_cast<int>(req_int(env, o, "worldSize", "distributed."));
  d.master_addr = req_str(env, o, "masterAddr", "distributed.");
  d.master_port = static_cast<int>(req_int(env, o, "masterPort", "distributed."));
  if (!o.Has("backend")) throw_error(env, "E_CONFIG", "distributed.backend is required (\"auto\", \"gloo\" or \"nccl\")");
  d.backend = get_enum(env, o, "backend", {"auto", "gloo", "nccl"}, d.backend, "distributed.");
  d.timeout_ms = req_int(env, o, "timeoutMs", "distributed.");
  d.bucket_mb = req_num(env, o, "bucketMb", "distributed.");
  d.ifname = req_str(env, o, "ifname", "distributed.");  // "" = from MASTER_ADDR / hostname
  auto backend = std::make_shared<std::string>();
  return Run(env, [&eng, d, backend]() {
               eng.init_distributed(d);
               *backend = eng.dist().backend();
             },
             [backend](Napi::Env e) -> Napi::Value { return Napi::String::New(e, *backend); });
}

Napi::Value ModelWrap::BroadcastState(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  auto& eng = Checked(env, true);
  return Run(env, [&eng]() { eng.broadcast_state(); }, [](Napi::Env e) -> Napi::Value { return e.Undefined(); });
}

Napi::Value ModelWrap::DistAny(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  auto& eng = Checked(env, true);
  bool flag = info[0].IsBoolean() && info[0].As<Napi::Boolean>().Value();
  auto out = std::make_shared<bool>(false);
  return Run(env, [&eng, flag, out]() { *out = eng.dist().any(flag); },
             [out](Napi::Env e) -> Napi::Value { return Napi::Boolean::New(e, *out); });
}

Napi::Value ModelWrap::DistBarrier(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  auto& eng = Checked(env, true);
  return Run(env, [&eng]() { eng.dist().barrier(); }, [](Napi::Env e) -> Napi::Value { return e.Undefined(); });
}

Napi::Value ModelWrap::Dispose(const Napi::CallbackInfo& info) {
  Release();
  if (engine_) dispose_pending_ = true;
  return info.Env().Undefined();
}

Napi::Value ModelWrap::IsDisposed(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), !engine_ || dispose_pending_);
}
Napi::Value ModelWrap::IsBusy(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), busy_); }
Napi::Value ModelWrap::DeviceName(const Napi::CallbackInfo& info) {
  if (!engine_) return info.Env().Null();
  return Napi::String::New(info.Env(), engine_->device().str());
}

}  // namespace cxr_binding
