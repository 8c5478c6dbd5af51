// cxr::Error: the one exception type thrown by the native core. The binding maps `code` to the
// stable JS error code (E_SHAPE, ...); c10::Error and std::exception are mapped at the boundary too.
#pragma once
#include <stdexcept>
#include <string>

namespace cxr {

enum class ErrorCode { Shape, Dtype, Device, Oom, Disposed, Busy, Config, Torch, Numeric, Io, Checkpoint, Dist, Internal };

inline const char* error_code_name(ErrorCode c) {
  switch (c) {
    case ErrorCode::Shape: return "E_SHAPE";
    case ErrorCode::Dtype: return "E_DTYPE";
    case ErrorCode::Device: return "E_DEVICE";
    case ErrorCode::Oom: return "E_OOM";
    case ErrorCode::Disposed: return "E_DISPOSED";
    case ErrorCode::Busy: return "E_BUSY";
    case ErrorCode::Config: return "E_CONFIG";
    case ErrorCode::Torch: return "E_TORCH";
    case ErrorCode::Numeric: return "E_NUMERIC";
    case ErrorCode::Io: return "E_IO";
    case ErrorCode::Checkpoint: return "E_CHECKPOINT";
    case ErrorCode::Dist: return "E_DIST";
    case ErrorCode::Internal: return "E_INTERNAL";
  }
  return "E_INTERNAL";
}

class Error : public std::runtime_error {
 public:
  Error(ErrorCode code, const std::string& msg) : std::runtime_error(msg), code_(code) {}
  ErrorCode code() const noexcept { return code_; }
  const char* code_name() const noexcept { return error_code_name(code_); }

 private:
  ErrorCode code_;
};

}  // namespace cxr

// CXR_CHECK(cond, code, msg-expression): throws cxr::Error when cond is false.
#define CXR_CHECK(cond, code, msg)                                        \
  do {                                                                    \
    if (!(cond)) throw ::cxr::Error(::cxr::ErrorCode::code, (msg));       \
  } while (0)
