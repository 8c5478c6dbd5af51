#include "cxr/threads.h"

#include <ATen/Parallel.h>
#include <dlfcn.h>

namespace cxr {

void set_threads(int n) {
  at::set_num_threads(n);
  // Looked up at run time: libtorch links libblas.so.3, whichever library the system put behind it.
  using set_fn = void (*)(int);
  if (auto f = reinterpret_cast<set_fn>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) f(n);
}

int blas_threads() {
  using get_fn = int (*)();
  if (auto f = reinterpret_cast<get_fn>(dlsym(RTLD_DEFAULT, "openblas_get_num_threads"))) return f();
  return -1;
}

std::string blas_name() {
  // OpenBLAS exports openblas_get_config; Debian's reference BLAS does not (and is 15-25x slower).
  using cfg_fn = char* (*)();
  if (auto f = reinterpret_cast<cfg_fn>(dlsym(RTLD_DEFAULT, "openblas_get_config"))) return std::string(f());
  if (dlsym(RTLD_DEFAULT, "mkl_get_version")) return "MKL";
  if (dlsym(RTLD_DEFAULT, "bli_info_get_version_str")) return "BLIS";
  return "reference BLAS (slow: install libopenblas0-openmp)";
}

}  // namespace cxr
