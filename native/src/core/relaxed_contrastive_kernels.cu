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

// Target term of a row/column: (1-ε)·l·t + ε/B·l·(off + t), t the relaxed target value of its
// diagonal, off the sum of its off-diagonal entries.
template <class T>
__device__ __forceinline__ T target_term(T t, T off, T l, const RcKernelParams& p) {
  const T eps = T(p.smoothing);
  return (T(1) - eps) * l * t + eps / T(p.B) * l * (off + t);
}

// The relaxed diagonal value of a row (or column) with positive s and largest off-diagonal entry n:
// the value in the log-sum-exp (x) and in the target (t). Same as relaxed_diag on the CPU.
template <class T>
__device__ __forceinline__ void relaxed_diag(const RcKernelParams& p, T s, T n, T& x, T& t) {
  if (p.margin_mode) {
    x = t = fmin(s, n + T(p.margin));
  } else if (p.clamp && !p.clamp_numerator) {
    x = t = fmin(s, T(p.alpha));
  } else if (p.clamp) {
    x = s;
    t = fmin(s, T(p.alpha));
  } else {
    x = t = s;
  }
}

template <class T>
__global__ void k_diag(const T* buf, RcKernelParams p, T* diag) {
  const long i = blockIdx.x * (long)blockDim.x + threadIdx.x;
  if (i >= p.B) return;
  diag[i] = buf[i * p.B + i];
}

// One block per row: off-diagonal entries, then the relaxed diagonal value.
template <class T>
__global__ void k_row_stats(const T* buf, const T* scale, RcKernelParams p, const T* diag, T* row_stats, T* dv,
                            T* row_term) {
  const long i = blockIdx.x, B = p.B;
  const T l = *scale;
  const T* row = buf + i * B;
  T m = neg_inf<T>(), s = 0, sum = 0;
  for (long j = threadIdx.x; j < B; j += blockDim.x) {
    if (j == i) continue;
    const T x = row[j];
    online_add(m, s, x, l);
    sum += x;
  }
  block_reduce_ms(m, s, sum, l);
  if (threadIdx.x == 0) {
    T x, t;
    relaxed_diag(p, diag[i], m, x, t);
    dv[i] = x;
    dv[B + i] = t;
    dv[4 * B + i] = sum;
    dv[5 * B + i] = m;
    online_add(m, s, x, l);
    const T ls = dlog(s);
    row_stats[i] = m;
    row_stats[B + i] = ls;
    row_term[i] = l * m + ls - target_term(t, sum, l, p);
  }
}

// Column partials over the off-diagonal entries: grid (column tiles, row chunks); consecutive threads
// read consecutive columns of the same row (coalesced).
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
    if (i == j) continue;
    const T x = buf[i * B + j];
    online_add(m, s, x, l);
    sum += x;
  }
  work[(long)c * B + j] = m;
  work[((long)chunks + c) * B + j] = s;
  work[(2L * chunks + c) * B + j] = sum;
}

template <class T>
__global__ void k_col_final(const T* scale, RcKernelParams p, int chunks, const T* work, const T* diag, T* col_stats,
                            T* dv, T* col_term) {
  const long B = p.B;
  const long j = blockIdx.x * (long)blockDim.x + threadIdx.x;
  if (j >= B) return;
  const T l = *scale;
  T m = neg_inf<T>(), s = 0, sum = 0;
  for (int c = 0; c < chunks; ++c) {
    online_merge(m, s, work[(long)c * B + j], work[((long)chunks + c) * B + j], l);
    sum += work[(2L * chunks + c) * B + j];
  }
  T x, t;
  relaxed_diag(p, diag[j], m, x, t);
  dv[2 * B + j] = x;
  dv[3 * B + j] = t;
  dv[6 * B + j] = m;
  online_add(m, s, x, l);
  const T ls = dlog(s);
  col_stats[j] = m;
  col_stats[B + j] = ls;
  col_term[j] = l * m + ls - target_term(t, sum, l, p);
}

// One block per row: G in place and the row's share of dL/dθ. The diagonal: each of the four relaxed
// values passes the gradient to s_ii when it equals s_ii (not clamped), and dθ collects dL/dz·z for each.
template <class T>
__global__ void k_build_grad(T* buf, const T* scale, RcKernelParams p, const T* diag, const T* row_stats,
                             const T* col_stats, const T* dv, T* rowdot) {
  const long i = blockIdx.x, B = p.B;
  const T l = *scale;
  const T c = T(1) / (T(2) * T(B));
  const T eps = T(p.smoothing);
  const T t_off = eps / T(B) / T(B);
  const T td = (T(1) - eps + eps / T(B)) / (T(2) * T(B));
  const T mr = row_stats[i], lr = row_stats[B + i];
  T* row = buf + i * B;
  T acc = 0;
  for (long j = threadIdx.x; j < B; j += blockDim.x) {
    if (j != i) {
      const T x = row[j];
      const T z = l * x;
      const T g = c * (dexp(l * (x - mr) - lr) + dexp(l * (x - col_stats[j]) - col_stats[B + j])) - t_off;
      acc += g * z;
      row[j] = l * g;
    } else {
      const T s = diag[i], xr = dv[i], tr = dv[B + i], xc = dv[2 * B + i], tc = dv[3 * B + i];
      const T gr = c * dexp(l * (xr - mr) - lr);
      const T gc = c * dexp(l * (xc - col_stats[i]) - col_stats[B + i]);
      acc += gr * (l * xr) + gc * (l * xc) - td * (l * tr) - td * (l * tc);
      row[j] = l * ((xr < s ? T(0) : gr) + (xc < s ? T(0) : gc) - (tr < s ? T(0) : td) - (tc < s ? T(0) : td));
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
cudaError_t rc_forward(T* buf, const T* scale, const RcKernelParams& p, T* diag, T* row_stats, T* col_stats, T* dv,
                       T* row_term, T* col_term, T* work, cudaStream_t stream) {
  const long B = p.B;
  const unsigned tiles = static_cast<unsigned>((B + kThreads - 1) / kThreads);
  const int chunks = rc_col_chunks(B);
  k_diag<T><<<tiles, kThreads, 0, stream>>>(buf, p, diag);
  k_row_stats<T><<<static_cast<unsigned>(B), kThreads, 0, stream>>>(buf, scale, p, diag, row_stats, dv, row_term);
  k_col_partial<T><<<dim3(tiles, static_cast<unsigned>(chunks)), kThreads, 0, stream>>>(buf, scale, p, chunks, work);
  k_col_final<T><<<tiles, kThreads, 0, stream>>>(scale, p, chunks, work, diag, col_stats, dv, col_term);
  return cudaGetLastError();
}

template <class T>
cudaError_t rc_build_grad(T* buf, const T* scale, const RcKernelParams& p, const T* diag, const T* row_stats,
                          const T* col_stats, const T* dv, T* rowdot, cudaStream_t stream) {
  k_build_grad<T><<<static_cast<unsigned>(p.B), kThreads, 0, stream>>>(buf, scale, p, diag, row_stats, col_stats, dv,
                                                                         rowdot);
  return cudaGetLastError();
}

template cudaError_t rc_forward<float>(float*, const float*, const RcKernelParams&, float*, float*, float*, float*,
                                       float*, float*, float*, cudaStream_t);
template cudaError_t rc_forward<double>(double*, const double*, const RcKernelParams&, double*, double*, double*,
                                        double*, double*, double*, double*, cudaStream_t);
template cudaError_t rc_build_grad<float>(float*, const float*, const RcKernelParams&, const float*, const float*,
                                          const float*, const float*, float*, cudaStream_t);
template cudaError_t rc_build_grad<double>(double*, const double*, const RcKernelParams&, const double*,
                                           const double*, const double*, const double*, double*, cudaStream_t);

}  // namespace cuda_kernels
}  // namespace cxr
