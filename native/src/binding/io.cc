// Checkpoint reading for JS: readTorchFile(path) runs cxr::read_torch_file on a worker thread (files are
// large) and resolves with [{name, shape, dtype, data: Float32Array}] (every tensor upcast to float32).
#include "io.h"

#include <memory>

#include "cxr/checkpoint_io.h"

namespace cxr_binding {
namespace {

const char* dtype_name(c10::ScalarType t) {
  switch (t) {
    case c10::kFloat: return "F32";
    case c10::kHalf: return "F16";
    case c10::kBFloat16: return "BF16";
    case c10::kDouble: return "F64";
    case c10::kLong: return "I64";
    case c10::kInt: return "I32";
    case c10::kShort: return "I16";
    case c10::kChar: return "I8";
    case c10::kByte: return "U8";
    case c10::kBool: return "BOOL";
    default: return "OTHER";
  }
}

struct ReadResult {
  std::string kind;
  std::vector<std::string> names, dtypes;
  std::vector<torch::Tensor> tensors;  // float32, contiguous
};

/**
 * readTorchFile(path): Promise<{kind: "torch-save" | "torchscript", tensors: [{name, shape, dtype, data}]}>.
 * Rejects with E_IO (unreadable) or E_CHECKPOINT (not a checkpoint, damaged, or holding Python objects).
 */
Napi::Value ReadTorchFile(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  if (!info[0].IsString()) throw_error(env, "E_CONFIG", "readTorchFile expects a path");
  auto path = info[0].As<Napi::String>().Utf8Value();
  auto res = std::make_shared<ReadResult>();
  auto* w = new PromiseWorker(
      env,
      [path, res]() {
        auto f = cxr::read_torch_file(path);
        res->kind = f.kind == cxr::TorchFileKind::TorchScript ? "torchscript" : "torch-save";
        for (auto& nt : f.tensors) {
          res->names.push_back(nt.name);
          res->dtypes.push_back(dtype_name(nt.tensor.scalar_type()));
          res->tensors.push_back(nt.tensor.to(torch::kFloat32).contiguous());
          nt.tensor = torch::Tensor();  // keep the peak at one copy plus one tensor
        }
      },
      [res](Napi::Env e) -> Napi::Value {
        auto out = Napi::Object::New(e);
        out.Set("kind", res->kind);
        auto arr = Napi::Array::New(e, res->tensors.size());
        for (size_t i = 0; i < res->tensors.size(); ++i) {
          const auto& t = res->tensors[i];
          auto o = Napi::Object::New(e);
          o.Set("name", res->names[i]);
          auto shape = Napi::Array::New(e, t.dim());
          for (int64_t d = 0; d < t.dim(); ++d) shape.Set(static_cast<uint32_t>(d), static_cast<double>(t.size(d)));
          o.Set("shape", shape);
          o.Set("dtype", res->dtypes[i]);
          o.Set("data", to_float32_array(e, t));
          res->tensors[i] = torch::Tensor();
          arr.Set(static_cast<uint32_t>(i), o);
        }
        out.Set("tensors", arr);
        return out;
      });
  auto p = w->Promise();
  w->Queue();
  return p;
}

}  // namespace

void RegisterIo(Napi::Env env, Napi::Object exports) {
  exports.Set("readTorchFile", Napi::Function::New(env, ReadTorchFile, "readTorchFile"));
}

}  // namespace cxr_binding
