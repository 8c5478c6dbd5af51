// Raw CUDA kernels of the fused relaxed contrastive loss (relaxed_contrastive_kernels.cu): CUDA runtime
// and raw pointers only, so that the .cu compiles with plain `nvcc -c` (scripts/check-cuda.sh) without
// libtorch. The libtorch glue is relaxed_contrastive_cuda.cc. All arrays are device pointers; the B x B
// buffer is row-major and contiguous. T is float or double.
#pragma once
#include <cuda_runtime_api.h>

namespace cxr {
namespace cuda_kernels {

struct RcKernelParams {
  long B;
  double alpha;
  bool clamp;            // alpha < 1
  bool clamp_numerator;  // variant ClampNumerator (else ClampDiag)
  bool margin_mode;      // variant Margin (clamp, clamp_numerator unused)
  double margin;         // Margin: m in cosine units (+inf: plain CLIP)
  double smoothing;      // label smoothing ε
};

// Number of row chunks of the column reduction; the workspace of rc_forward holds 3·chunks·B values.
int rc_col_chunks(long B);

// Forward: saves the raw diagonal into diag (B) (the buffer is not modified), writes dv (7 x B: the
// relaxed diagonal values xr, tr, xc, tc, the off-diagonal row sums, the off-diagonal row and column
// maxima; see relaxed_diag in relaxed_contrastive.cc), row_stats/col_stats (2 x B: max over the
// off-diagonal entries and the relaxed diagonal value in similarity units, then log Σ exp(l·(x - max)))
// and the per-row / per-column loss terms (B each; loss = (Σ row_term + Σ col_term) / (2B)).
// scale points to l = exp(θ) on the device (no host sync).
template <class T>
cudaError_t rc_forward(T* buf, const T* scale, const RcKernelParams& p, T* diag, T* row_stats, T* col_stats, T* dv,
                       T* row_term, T* col_term, T* work, cudaStream_t stream);

// Backward: overwrites the buffer with dL/dS (unit upstream gradient) and writes each row's share of
// dL/dθ into rowdot (B).
template <class T>
cudaError_t rc_build_grad(T* buf, const T* scale, const RcKernelParams& p, const T* diag, const T* row_stats,
                          const T* col_stats, const T* dv, T* rowdot, cudaStream_t stream);

}  // namespace cuda_kernels
}  // namespace cxr
