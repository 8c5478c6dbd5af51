// CUDA glue of the fused relaxed contrastive loss: passes libtorch CUDA tensors to the raw kernels
// (relaxed_contrastive_kernels.cu) on the current stream. The GEMMs stay in relaxed_contrastive.cc
// (at::mm, i.e. libtorch's cuBLAS). Built only with CXR_WITH_CUDA.
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>

#include <string>

#include "cxr/errors.h"
#include "cxr/relaxed_contrastive.h"
#include "relaxed_contrastive_kernels.h"

namespace cxr {
namespace detail {
namespace {

cuda_kernels::RcKernelParams kparams(const RcParams& p) {
  cuda_kernels::RcKernelParams k;
  k.B = static_cast<long>(p.B);
  k.alpha = p.alpha;
  k.clamp = p.clamp;
  k.clamp_numerator = p.clamp_numerator;
  k.margin_mode = p.margin_mode;
  k.margin = p.margin;
  k.smoothing = p.smoothing;
  return k;
}

void check_launch(cudaError_t e, const char* what) {
  if (e != cudaSuccess)
    throw Error(ErrorCode::Torch, std::string("contrastive loss: CUDA ") + what + " failed: " + cudaGetErrorString(e));
}

void check_tensors(const torch::Tensor& buf, const torch::Tensor& scale) {
  CXR_CHECK(buf.is_cuda() && buf.is_contiguous() && buf.dim() == 2 && buf.size(0) == buf.size(1), Internal,
            "contrastive loss: CUDA buffer must be a contiguous square CUDA tensor");
  CXR_CHECK(scale.is_cuda() && scale.numel() == 1 && scale.scalar_type() == buf.scalar_type(), Internal,
            "contrastive loss: CUDA scale must be a 1-element tensor of the buffer dtype on the device");
  CXR_CHECK(buf.scalar_type() == at::kFloat || buf.scalar_type() == at::kDouble, Internal,
            "contrastive loss: CUDA buffer must be float32 or float64");
}

}  // namespace

void rc_cuda_forward_stats(torch::Tensor& buf, const torch::Tensor& scale, const RcParams& p, torch::Tensor& diag,
                           torch::Tensor& row_lse, torch::Tensor& col_lse, torch::Tensor& dv, torch::Tensor& loss) {
  check_tensors(buf, scale);
  c10::cuda::CUDAGuard guard(buf.device());
  cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  const int64_t B = p.B;
  const int chunks = cuda_kernels::rc_col_chunks(static_cast<long>(B));
  at::Tensor work = at::empty({3 * static_cast<int64_t>(chunks) * B}, buf.options());
  at::Tensor row_term = at::empty({B}, buf.options()), col_term = at::empty({B}, buf.options());
  const auto k = kparams(p);
  cudaError_t e;
  if (buf.scalar_type() == at::kDouble) {
    e = cuda_kernels::rc_forward<double>(buf.data_ptr<double>(), scale.data_ptr<double>(), k, diag.data_ptr<double>(),
                                         row_lse.data_ptr<double>(), col_lse.data_ptr<double>(), dv.data_ptr<double>(),
                                         row_term.data_ptr<double>(), col_term.data_ptr<double>(),
                                         work.data_ptr<double>(), stream);
  } else {
    e = cuda_kernels::rc_forward<float>(buf.data_ptr<float>(), scale.data_ptr<float>(), k, diag.data_ptr<float>(),
                                        row_lse.data_ptr<float>(), col_lse.data_ptr<float>(), dv.data_ptr<float>(),
                                        row_term.data_ptr<float>(),
                                        col_term.data_ptr<float>(), work.data_ptr<float>(), stream);
  }
  check_launch(e, "forward kernels");
  // O(B) reductions stay in ATen (same stream), summed in double for float buffers.
  at::Tensor total = row_term.to(at::kDouble).sum() + col_term.to(at::kDouble).sum();
  loss.copy_(total / (2.0 * static_cast<double>(B)));
}

void rc_cuda_build_grad(torch::Tensor& buf, const torch::Tensor& scale, const RcParams& p, const torch::Tensor& diag,
                        const torch::Tensor& row_lse, const torch::Tensor& col_lse, const torch::Tensor& dv,
                        torch::Tensor& dtheta_sum) {
  check_tensors(buf, scale);
  c10::cuda::CUDAGuard guard(buf.device());
  cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  at::Tensor rowdot = at::empty({p.B}, buf.options());
  const auto k = kparams(p);
  cudaError_t e;
  if (buf.scalar_type() == at::kDouble) {
    e = cuda_kernels::rc_build_grad<double>(buf.data_ptr<double>(), scale.data_ptr<double>(), k,
                                            diag.data_ptr<double>(), row_lse.data_ptr<double>(),
                                            col_lse.data_ptr<double>(), dv.data_ptr<double>(), rowdot.data_ptr<double>(), stream);
  } else {
    e = cuda_kernels::rc_build_grad<float>(buf.data_ptr<float>(), scale.data_ptr<float>(), k, diag.data_ptr<float>(),
                                           row_lse.data_ptr<float>(), col_lse.data_ptr<float>(), dv.data_ptr<float>(),
                                           rowdot.data_ptr<float>(), stream);
  }
  check_launch(e, "gradient kernel");
  dtheta_sum.copy_(rowdot.to(at::kDouble).sum());
}

}  // namespace detail
}  // namespace cxr
