// Intra-op threads of the native core: libtorch's count and the BLAS library's own.
//
// Why both: at::set_num_threads governs ATen's parallel_for and, with the OpenMP backend, OpenMP's thread count
// in the calling thread. It does not reach a BLAS that keeps its own pool. Debian installs OpenBLAS in two
// builds behind the libblas.so.3 alternative; when both are installed the pthread build wins (priority 100
// vs 95), and that build sizes its pool from OPENBLAS_NUM_THREADS / OMP_NUM_THREADS at load, else from the
// core count. Measured on this project's 2-vCPU machine (libtorch 1.13, pthread OpenBLAS): with
// at::set_num_threads(1) alone, the test-vit train step still ran its GEMMs on 2 threads and the second
// thread spun between calls, 59 ms of CPU per 31 ms step; with the BLAS pool set to 1 as well, 31 ms.
#pragma once
#include <string>

namespace cxr {

// Sets libtorch's intra-op threads and, when the process's BLAS is OpenBLAS, its pool to the same count.
// n >= 1. Process-wide; each later step honours it whatever thread it runs on.
void set_threads(int n);

// The BLAS thread count now (OpenBLAS's openblas_get_num_threads), or -1 when the BLAS does not say.
int blas_threads();

// The BLAS library's own description (OpenBLAS's config string, "MKL", "BLIS"), or a note that it is the
// reference BLAS.
std::string blas_name();

}  // namespace cxr
