// CUDA kernels of the fused relaxed contrastive loss; see relaxed_contrastive_kernels.h for contracts
// and relaxed_contrastive.cc for the math (the CPU version is the reference implementation).
#include <cuda_runtime.h>

#include <cfloat>

#include "relaxed_contrastive_kernels.h"

namespace cxr {
namespace cuda_kernels {
namespace {

constexpr int kThreads = 256;

template <class T> __device__ __forceinline__ T dexp(T x);
template <> __device__ __forceinline__ float dexp<float>(float x) { return expf(x); }
template <> __device__ __forceinline__ double dexp<double>(double x) { return exp(x); }
template <class T> __device__ __forceinline__ T dlog(T x);
template <> __device__ __forceinline__ float dlog<float>(float x) { return logf(x); }
template <> __device__ __forceinline__ double dlog<double>(double x) { return log(x); }
template <class T> __device__ __forceinline__ T neg_inf();
template <> __device__ __forceinline__ float neg_inf<float>() { return -FLT_MAX; }
template <> __device__ __forceinline__ double neg_inf<double>() { return -DBL_MAX; }

// Online softmax state: running max m (similarity units) and s = Σ exp(l·(x - m)).
template <class T>
__device__ __forceinline__ void online_add(T& m, T& s, T x, T l) {
  if (x > m) {
    s = s * dexp(l * (m - x)) + T(1);
    m = x;
  } else {
    s += dexp(l * (x - m));
  }
}
template <class T>
__device__ __forceinline__ void online_merge(T& m, T& s, T m2, T s2, T l) {
  if (s2 == T(0)) return;
  if (s == T(0)) {
    m = m2;
    s = s2;
    return;
  }
  if (m2 > m) {
    s = s * dexp(l * (m - m2)) + s2;
    m = m2;
  } else {
    s += s2 * dexp(l * (m2 - m));
  }
}

// Block-wide reduction of (m, s, sum) triples; result valid in thread 0.
template <class T>
__device__ void block_reduce_ms(T& m, T& s, T& sum, T l) {
  __shared__ T sm[kThreads], ss[kThreads], su[kThreads];
  const int t = threadIdx.x;
  sm[t] = m;
  ss[t] = s;
  su[t] = sum;
  __syncthreads();
  for (int w = blockDim.x / 2; w > 0; w >>= 1) {
    if (t < w) {
      T mm = sm[t], s1 = ss[t];
      online_merge(mm, s1, sm[t + w], ss[t + w], l);
      sm[t] = mm;
      ss[t] = s1;
      su[t] += su[t + w];
    }
    __syncthreads();
  }
  m = sm[0];
  s = ss[0];
  sum = su[0];
}

template <class T>
__device__ T block_reduce_sum(T v) {
  __shared__ T sh[kThreads];
  const int t = threadIdx.x;
  sh[t] = v;
  __syncthreads();
  for (int w = blockDim.x / 2; w > 0; w >>= 1) {
    if (t < w) sh[t] += sh[t + w];
    __syncthreads();
  }
  return sh[0];
}

// Target term of row/column k: (1-ε)·l·x' + ε/B·l·(sum - x + x'), x = buffer diagonal, x' the
// clamped numerator value for clamp-numerator (x itself otherwise).
template <class T>
__device__ __forceinline__ T target_term(T x, T sum, T l, const RcKernelParams& p) {
  const T xt = (p.clamp && p.clamp_numerator) ? fmin(x, T(p.alpha)) : x;
  const T eps = T(p.smoothing);
  return (T(1) - eps) * l * xt + eps / T(p.B) * l * (sum - x + xt);
}

template <class T>
__global__ void k_diag(T* buf, RcKernelParams p, T* diag) {
  const long i = blockIdx.x * (long)blockDim.x + threadIdx.x;
  if (i >= p.B) return;
  const T x = buf[i * p.B + i];
  diag[i] = x;
  if (p.clamp && !p.clamp_numerator && x > T(p.alpha)) buf[i * p.B + i] = T(p.alpha);
}

// One block per row.
template <class T>
__global__ void k_row_stats(const T* buf, const T* scale, RcKernelParams p, T* row_stats, T* row_term) {
  const long i = blockIdx.x, B = p.B;
  const T l = *scale;
  const T* row = buf + i * B;
  T m = neg_inf<T>(), s = 0, sum = 0;
  for (long j = threadIdx.x; j < B; j += blockDim.x) {
    const T x = row[j];
    online_add(m, s, x, l);
    sum += x;
  }
  block_reduce_ms(m, s, sum, l);
  if (threadIdx.x == 0) {
    const T ls = dlog(s);
    row_stats[i] = m;
    row_stats[B + i] = ls;
    row_term[i] = l * m + ls - target_term(row[i], sum, l, p);
  }
}

// Column partials: grid (column tiles, row chunks); consecutive threads read consecutive columns of
// the same row (coalesced).
template <class T>
__global__ void k_col_partial(const T* buf, const T* scale, RcKernelParams p, int chunks, T* work) {
  const long B = p.B;
  const long j = blockIdx.x * (long)blockDim.x + threadIdx.x;
  if (j >= B) return;
  const int c = blockIdx.y;
  const long r0 = B * c / chunks, r1 = B * (c + 1) / chunks;
  const T l = *scale;
  T m = neg_inf<T>(), s = 0, sum = 0;
  for (long i = r0; i < r1; ++i) {
    const T x = buf[i * B + j];
    online_add(m, s, x, l);
    sum += x;
  }
  work[(long)c * B + j] = m;
  work[((long)chunks + c) * B + j] = s;
  work[(2L * chunks + c) * B + j] = sum;
}

template <class T>
__global__ void k_col_final(const T* buf, const T* scale, RcKernelParams p, int chunks, const T* work, T* col_stats,
                            T* col_term) {
  const long B = p.B;
  const long j = blockIdx.x * (long)blockDim.x + threadIdx.x;
  if (j >= B) return;
  const T l = *scale;
  T m = neg_inf<T>(), s = 0, sum = 0;
  for (int c = 0; c < chunks; ++c) {
    online_merge(m, s, work[(long)c * B + j], work[((long)chunks + c) * B + j], l);
    sum += work[(2L * chunks + c) * B + j];
  }
  const T ls = dlog(s);
  col_stats[j] = m;
  col_stats[B + j] = ls;
  col_term[j] = l * m + ls - target_term(buf[j * B + j], sum, l, p);
}

// One block per row: G in place and the row's share of dL/dθ.
template <class T>
__global__ void k_build_grad(T* buf, const T* scale, RcKernelParams p, const T* diag, const T* row_stats,
                             const T* col_stats, T* rowdot) {
  const long i = blockIdx.x, B = p.B;
  const T l = *scale;
  const T c = T(1) / (T(2) * T(B));
  const T eps = T(p.smoothing);
  const T t_off = eps / T(B) / T(B);
  const T t_diag = (T(1) - eps + eps / T(B)) / T(B);
  const T alpha = T(p.alpha);
  const T mr = row_stats[i], lr = row_stats[B + i];
  T* row = buf + i * B;
  T acc = 0;
  for (long j = threadIdx.x; j < B; j += blockDim.x) {
    const T x = row[j];
    const T z = l * x;
    const T a = c * (dexp(l * (x - mr) - lr) + dexp(l * (x - col_stats[j]) - col_stats[B + j]));
    if (j != i) {
      const T g = a - t_off;
      acc += g * z;
      row[j] = l * g;
    } else if (!p.clamp || !p.clamp_numerator) {
      const bool active = p.clamp && diag[i] > alpha;
      acc += (a - t_diag) * z;
      row[j] = active ? T(0) : l * (a - t_diag);
    } else {
      const bool active = x > alpha;
      const T zt = l * (active ? alpha : x);
      acc += a * z - t_diag * zt;
      row[j] = l * (a - (active ? T(0) : t_diag));
    }
  }
  const T tot = block_reduce_sum(acc);
  if (threadIdx.x == 0) rowdot[i] = tot;
}

}  // namespace

int rc_col_chunks(long B) {
  long c = B / 64;
  if (c < 1) c = 1;
  if (c > 64) c = 64;
  return static_cast<int>(c);
}

template <class T>
cudaError_t rc_forward(T* buf, const T* scale, const RcKernelParams& p, T* diag, T* row_stats, T* col_stats,
                       T* row_term, T* col_term, T* work, cudaStream_t stream) {
  const long B = p.B;
  const unsigned tiles = static_cast<unsigned>((B + kThreads - 1) / kThreads);
  const int chunks = rc_col_chunks(B);
  k_diag<T><<<tiles, kThreads, 0, stream>>>(buf, p, diag);
  k_row_stats<T><<<static_cast<unsigned>(B), kThreads, 0, stream>>>(buf, scale, p, row_stats, row_term);
  k_col_partial<T><<<dim3(tiles, static_cast<unsigned>(chunks)), kThreads, 0, stream>>>(buf, scale, p, chunks, work);
  k_col_final<T><<<tiles, kThreads, 0, stream>>>(buf, scale, p, chunks, work, col_stats, col_term);
  return cudaGetLastError();
}

template <class T>
cudaError_t rc_build_grad(T* buf, const T* scale, const RcKernelParams& p, const T* diag, const T* row_stats,
                          const T* col_stats, T* rowdot, cudaStream_t stream) {
  k_build_grad<T><<<static_cast<unsigned>(p.B), kThreads, 0, stream>>>(buf, scale, p, diag, row_stats, col_stats,
                                                                         rowdot);
  return cudaGetLastError();
}

template cudaError_t rc_forward<float>(float*, const float*, const RcKernelParams&, float*, float*, float*, float*,
                                       float*, float*, cudaStream_t);
template cudaError_t rc_forward<double>(double*, const double*, const RcKernelParams&, double*, double*, double*,
                                        double*, double*, double*, cudaStream_t);
template cudaError_t rc_build_grad<float>(float*, const float*, const RcKernelParams&, const float*, const float*,
                                          const float*, float*, cudaStream_t);
template cudaError_t rc_build_grad<double>(double*, const double*, const RcKernelParams&, const double*,
                                           const double*, const double*, double*, cudaStream_t);

}  // namespace cuda_kernels
}  // namespace cxr
