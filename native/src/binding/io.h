// Checkpoint file reading exposed to JS (see io.cc).
#pragma once
#include "common.h"

namespace cxr_binding {
void RegisterIo(Napi::Env env, Napi::Object exports);
}
