// Fused relaxed contrastive loss (METHOD.md §1-2): CPU implementation, autograd Function, dispatch to
// the CUDA back end, and the autograd composites used as oracles and as the unfused baseline.
//
// Memory plan (the point of fusing): the forward allocates ONE B×B buffer, S = Û·V̂ᵀ (raw cosine
// similarities, the diagonal clamped in place for clamp-diag). Row/column max and log-sum-exp are
// computed in two sweeps over it without materialising l·S, softmaxes or log-softmaxes. The buffer is
// kept for the backward, which overwrites it in place with dL/dS = l·(softmax_row + softmax_col -
// 2·target)/(2B) (masked on the diagonal) and feeds it to the two gradient GEMMs. Everything else is
// O(B) or O(B·D).
#include "cxr/relaxed_contrastive.h"

#include <ATen/Parallel.h>
#include <c10/core/impl/LocalDispatchKeySet.h>
#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <sstream>
#include <vector>

#include "cxr/errors.h"

// Two copies of the hot loops: AVX2+FMA and the baseline ISA, chosen at run time.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define CXR_RC_HAVE_AVX2 1
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#pragma GCC optimize("no-trapping-math")
#define CXR_RC_NS avx2
namespace cxr { namespace rc_cpu {
#include "relaxed_contrastive_cpu.inc"
}}  // namespace cxr::rc_cpu
#undef CXR_RC_NS
#pragma GCC pop_options
#endif
#ifdef __GNUC__
#pragma GCC push_options
#pragma GCC optimize("no-trapping-math")
#endif
#define CXR_RC_NS base
namespace cxr { namespace rc_cpu {
#include "relaxed_contrastive_cpu.inc"
}}  // namespace cxr::rc_cpu
#undef CXR_RC_NS
#ifdef __GNUC__
#pragma GCC pop_options
#endif

namespace cxr {
namespace {

constexpr double kNormEps = 1e-12;  // same as torch.nn.functional.normalize

std::atomic<bool> g_force_baseline{false};

bool cpu_has_avx2() {
#ifdef CXR_RC_HAVE_AVX2
  static const bool ok = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return ok && !g_force_baseline.load(std::memory_order_relaxed);
#else
  return false;
#endif
}

template <class T>
void k_pass_a(const T* buf, long B, long r0, long r1, T* rmax, T* rsum, T* cmax, T* csum) {
#ifdef CXR_RC_HAVE_AVX2
  if (cpu_has_avx2()) return rc_cpu::avx2::pass_a<T>(buf, B, r0, r1, rmax, rsum, cmax, csum);
#endif
  rc_cpu::base::pass_a<T>(buf, B, r0, r1, rmax, rsum, cmax, csum);
}
template <class T>
void k_pass_b(const T* buf, long B, long r0, long r1, T l, const T* rmax, const T* cmax, T* rexp, T* cexp) {
#ifdef CXR_RC_HAVE_AVX2
  if (cpu_has_avx2()) return rc_cpu::avx2::pass_b<T>(buf, B, r0, r1, l, rmax, cmax, rexp, cexp);
#endif
  rc_cpu::base::pass_b<T>(buf, B, r0, r1, l, rmax, cmax, rexp, cexp);
}
template <class T>
T k_grad_segment(T* row, long j0, long j1, T l, T mr, T lr, const T* mc, const T* lc, T c, T t_off) {
#ifdef CXR_RC_HAVE_AVX2
  if (cpu_has_avx2()) return rc_cpu::avx2::grad_segment<T>(row, j0, j1, l, mr, lr, mc, lc, c, t_off);
#endif
  return rc_cpu::base::grad_segment<T>(row, j0, j1, l, mr, lr, mc, lc, c, t_off);
}
template <class T>
T k_dot(const T* a, const T* b, long n) {
#ifdef CXR_RC_HAVE_AVX2
  if (cpu_has_avx2()) return rc_cpu::avx2::dot<T>(a, b, n);
#endif
  return rc_cpu::base::dot<T>(a, b, n);
}
template <class T> T k_exp(T x) {
#ifdef CXR_RC_HAVE_AVX2
  if (cpu_has_avx2()) return rc_cpu::avx2::ex(x);
#endif
  return rc_cpu::base::ex(x);
}

// ---------------------------------------------------------------------------------------------------
// CPU B×B passes.

// The relaxed diagonal values of METHOD.md §2 for one positive s = s_ii with the largest off-diagonal
// entries nr (row i) and nc (column i): the value that enters the row log-sum-exp (xr) and the row
// target (tr), and the same for the column loss (xc, tc). A value below s means the relaxation changed
// that term; a value equal to s (bit for bit) means it did not, which is also how the backward tells
// whether the positive keeps its gradient there. The thresholds are constants of the step.
template <class T>
inline void relaxed_diag(const detail::RcParams& p, T s, T nr, T nc, T& xr, T& tr, T& xc, T& tc) {
  if (p.margin_mode) {
    const T m = static_cast<T>(p.margin);
    xr = tr = std::min(s, static_cast<T>(nr + m));
    xc = tc = std::min(s, static_cast<T>(nc + m));
  } else if (p.clamp && !p.clamp_numerator) {
    xr = tr = xc = tc = std::min(s, static_cast<T>(p.alpha));
  } else if (p.clamp) {
    xr = xc = s;
    tr = tc = std::min(s, static_cast<T>(p.alpha));
  } else {
    xr = tr = xc = tc = s;
  }
}

// Forward statistics over the buffer (raw S, left unchanged). Saves the raw diagonal, fills dv (7 x B:
// xr, tr, xc, tc of relaxed_diag, the off-diagonal row sums, the off-diagonal row and column maxima) and
// returns the loss. The two sweeps read the off-diagonal entries only; each row's and column's relaxed
// diagonal value is added to its statistics in O(B). row_lse / col_lse (2 x B) receive, per row /
// column, the max m (similarity units, over the off-diagonal entries and the relaxed diagonal value)
// and log Σ exp(l·(x - m)), so that log-softmax = l·(x - m) - that.
template <class T>
double cpu_forward_stats_t(at::Tensor& buf_t, const detail::RcParams& p, at::Tensor& diag_t, at::Tensor& row_lse_t,
                           at::Tensor& col_lse_t, at::Tensor& dv_t) {
  const long B = p.B;
  T* buf = buf_t.data_ptr<T>();
  T* diag = diag_t.data_ptr<T>();
  T* dv = dv_t.data_ptr<T>();
  for (long i = 0; i < B; ++i) diag[i] = buf[i * B + i];
  // Row chunks, each with its own column accumulators (B values each, cache resident), so the column
  // reduction reads the buffer row-major like the row reduction.
  const long nchunks = std::max<long>(1, std::min<long>(at::get_num_threads(), B / 32));
  std::vector<T> rmax(B), rsum(B), rexp(B);
  std::vector<T> cmax_p(nchunks * B, -std::numeric_limits<T>::infinity()), csum_p(nchunks * B, 0),
      cexp_p(nchunks * B, 0);
  auto chunk_rows = [&](long c, long& r0, long& r1) {
    r0 = B * c / nchunks;
    r1 = B * (c + 1) / nchunks;
  };
  at::parallel_for(0, nchunks, 1, [&](int64_t c0, int64_t c1) {
    for (long c = c0; c < c1; ++c) {
      long r0, r1;
      chunk_rows(c, r0, r1);
      k_pass_a<T>(buf, B, r0, r1, rmax.data(), rsum.data(), cmax_p.data() + c * B, csum_p.data() + c * B);
    }
  });
  std::vector<T> cmax(cmax_p.begin(), cmax_p.begin() + B);
  std::vector<double> csum(csum_p.begin(), csum_p.begin() + B);
  for (long c = 1; c < nchunks; ++c)
    for (long j = 0; j < B; ++j) {
      cmax[j] = std::max(cmax[j], cmax_p[c * B + j]);
      csum[j] += csum_p[c * B + j];
    }
  // The relaxed diagonal and the maxima including it.
  std::vector<T> mr(B), mc(B);
  for (long i = 0; i < B; ++i) {
    T xr, tr, xc, tc;
    relaxed_diag<T>(p, diag[i], rmax[i], cmax[i], xr, tr, xc, tc);
    dv[i] = xr;
    dv[B + i] = tr;
    dv[2 * B + i] = xc;
    dv[3 * B + i] = tc;
    dv[4 * B + i] = rsum[i];
    dv[5 * B + i] = rmax[i];
    dv[6 * B + i] = cmax[i];
    mr[i] = std::max(rmax[i], xr);
    mc[i] = std::max(cmax[i], xc);
  }
  const T l = static_cast<T>(p.scale);
  at::parallel_for(0, nchunks, 1, [&](int64_t c0, int64_t c1) {
    for (long c = c0; c < c1; ++c) {
      long r0, r1;
      chunk_rows(c, r0, r1);
      k_pass_b<T>(buf, B, r0, r1, l, mr.data(), mc.data(), rexp.data(), cexp_p.data() + c * B);
    }
  });
  T* rl = row_lse_t.data_ptr<T>();
  T* cl = col_lse_t.data_ptr<T>();
  const double ld = p.scale, eps = p.smoothing, Bd = static_cast<double>(B);
  double total = 0;
  for (long i = 0; i < B; ++i) {
    const T xr = dv[i], tr = dv[B + i], xc = dv[2 * B + i], tc = dv[3 * B + i];
    double ce = 0;
    for (long c = 0; c < nchunks; ++c) ce += cexp_p[c * B + i];
    ce += static_cast<double>(k_exp<T>(l * (xc - mc[i])));
    const double re = static_cast<double>(rexp[i]) + static_cast<double>(k_exp<T>(l * (xr - mr[i])));
    rl[i] = mr[i];
    rl[B + i] = static_cast<T>(std::log(re));
    cl[i] = mc[i];
    cl[B + i] = static_cast<T>(std::log(ce));
    const double lse_r = ld * mr[i] + std::log(re);
    const double lse_c = ld * mc[i] + std::log(ce);
    const double trm = (1 - eps) * ld * tr + eps / Bd * ld * (static_cast<double>(rsum[i]) + tr);
    const double tcm = (1 - eps) * ld * tc + eps / Bd * ld * (csum[i] + tc);
    total += (lse_r - trm) + (lse_c - tcm);
  }
  return total / (2 * Bd);
}

// Backward: overwrite the buffer with dL/dS (for a unit upstream gradient) and return dL/dθ.
template <class T>
double cpu_build_grad_t(at::Tensor& buf_t, const detail::RcParams& p, const at::Tensor& diag_t, const at::Tensor& row_lse_t,
                        const at::Tensor& col_lse_t, const at::Tensor& dv_t) {
  const long B = p.B;
  T* buf = buf_t.data_ptr<T>();
  const T* diag = diag_t.data_ptr<T>();
  const T* rl = row_lse_t.data_ptr<T>();
  const T* cl = col_lse_t.data_ptr<T>();
  const T* dv = dv_t.data_ptr<T>();
  const double Bd = static_cast<double>(B), eps = p.smoothing;
  const T l = static_cast<T>(p.scale), c = static_cast<T>(1.0 / (2 * Bd));
  const T t_off = static_cast<T>(eps / Bd / Bd);
  // Target weight of the diagonal in one direction (row or column loss).
  const T td = static_cast<T>((1 - eps + eps / Bd) / (2 * Bd));
  std::vector<double> rowdot(B);
  const int64_t grain = std::max<int64_t>(1, 32768 / B);
  at::parallel_for(0, B, grain, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      T* row = buf + i * B;
      double acc = static_cast<double>(k_grad_segment<T>(row, 0, i, l, rl[i], rl[B + i], cl, cl + B, c, t_off)) +
                   static_cast<double>(k_grad_segment<T>(row, i + 1, B, l, rl[i], rl[B + i], cl, cl + B, c, t_off));
      // Diagonal: each of the four relaxed values passes the gradient to s_ii when it equals s_ii (not
      // clamped) and to nothing else (the thresholds are constants); all four scale with l, so dθ
      // collects dL/dz·z for each of them.
      const T s = diag[i], xr = dv[i], tr = dv[B + i], xc = dv[2 * B + i], tc = dv[3 * B + i];
      const T gr = c * k_exp<T>(l * (xr - rl[i]) - rl[B + i]);
      const T gc = c * k_exp<T>(l * (xc - cl[i]) - cl[B + i]);
      acc += static_cast<double>(gr * (l * xr) + gc * (l * xc) - td * (l * tr) - td * (l * tc));
      row[i] = l * ((xr < s ? T(0) : gr) + (xc < s ? T(0) : gc) - (tr < s ? T(0) : td) - (tc < s ? T(0) : td));
      rowdot[i] = acc;
    }
  });
  double sum = 0;
  for (double v : rowdot) sum += v;
  return sum;
}

// ---------------------------------------------------------------------------------------------------
// Shared helpers.

std::string shape_str(const at::Tensor& t) {
  std::ostringstream os;
  os << t.sizes();
  return os.str();
}

void check_options(const ContrastiveLossOptions& opt) {
  CXR_CHECK(std::isfinite(opt.alpha) && opt.alpha > 0.0 && opt.alpha <= 1.0, Config,
            "contrastive loss: alpha must satisfy 0 < alpha <= 1, got " + std::to_string(opt.alpha));
  CXR_CHECK(std::isfinite(opt.label_smoothing) && opt.label_smoothing >= 0.0 && opt.label_smoothing < 1.0, Config,
            "contrastive loss: label_smoothing must satisfy 0 <= eps < 1, got " + std::to_string(opt.label_smoothing));
  CXR_CHECK(std::isfinite(opt.alpha_quantile) && opt.alpha_quantile >= 0.0 && opt.alpha_quantile <= 1.0, Config,
            "contrastive loss: alpha_quantile must satisfy 0 <= q <= 1 (0: fixed alpha), got " +
                std::to_string(opt.alpha_quantile));
  CXR_CHECK(std::isfinite(opt.alpha_momentum) && opt.alpha_momentum >= 0.0 && opt.alpha_momentum <= 1.0, Config,
            "contrastive loss: alpha_momentum must satisfy 0 <= beta <= 1, got " + std::to_string(opt.alpha_momentum));
  CXR_CHECK(std::isnan(opt.alpha_running) || (std::isfinite(opt.alpha_running) && opt.alpha_running <= 1.0), Config,
            "contrastive loss: alpha_running must be NaN (none yet) or a finite number <= 1, got " +
                std::to_string(opt.alpha_running));
  if (opt.variant == RelaxVariant::Margin) {
    CXR_CHECK(!std::isnan(opt.margin) && opt.margin > 0.0, Config,
              "contrastive loss: margin must be > 0 (or +inf), got " + std::to_string(opt.margin));
    CXR_CHECK(opt.alpha_quantile == 0.0, Config, "contrastive loss: the margin variant takes no alpha_quantile");
  }
}

// The threshold α of the clamp forms for this step, from the raw positives (host doubles) when adaptive.
double step_alpha(const ContrastiveLossOptions& opt, const at::Tensor& diag, double* batch_q) {
  *batch_q = std::numeric_limits<double>::quiet_NaN();
  if (opt.variant == RelaxVariant::Margin || opt.alpha_quantile == 0.0) return opt.alpha;
  if (opt.alpha_quantile >= 1.0) return 1.0;  // q = 1: plain CLIP, no clamp
  at::Tensor d = diag.to(at::kCPU, at::kDouble).contiguous();
  std::vector<double> v(d.data_ptr<double>(), d.data_ptr<double>() + d.numel());
  const double q = detail::quantile_sorted_inplace(v, opt.alpha_quantile);
  *batch_q = q;
  const double a = std::isnan(opt.alpha_running) ? q : opt.alpha_momentum * opt.alpha_running + (1 - opt.alpha_momentum) * q;
  return std::min(a, 1.0);
}

// Statistics of the step from the raw diagonal and dv (see cpu_forward_stats_t), O(B) on the host.
void fill_stats(const at::Tensor& diag, const at::Tensor& dv, const detail::RcParams& p, double batch_q,
                ContrastiveLossStats* st) {
  at::Tensor d = diag.to(at::kCPU, at::kDouble).contiguous(), w = dv.to(at::kCPU, at::kDouble).contiguous();
  const int64_t B = d.numel();
  const double* pd = d.data_ptr<double>();
  const double* pw = w.data_ptr<double>();
  int64_t engaged = 0;
  double pos = 0, neg = 0, thr = 0;
  for (int64_t i = 0; i < B; ++i) {
    bool e = false;
    for (int k = 0; k < 4; ++k) e = e || pw[k * B + i] < pd[i];
    engaged += e ? 1 : 0;
    pos += pd[i];
    neg += pw[4 * B + i];
    thr += (pw[5 * B + i] + pw[6 * B + i]) / 2 + p.margin;
  }
  std::vector<double> v(pd, pd + B);
  st->engaged = static_cast<double>(engaged) / static_cast<double>(B);
  st->alpha = p.margin_mode ? thr / static_cast<double>(B) : (p.clamp ? p.alpha : 1.0);
  st->batch_quantile = batch_q;
  st->pos_mean = pos / static_cast<double>(B);
  st->neg_mean = neg / (static_cast<double>(B) * static_cast<double>(B - 1));
  st->pos_q10 = detail::quantile_sorted_inplace(v, 0.1);
  st->pos_q50 = detail::quantile_sorted_inplace(v, 0.5);
  st->pos_q90 = detail::quantile_sorted_inplace(v, 0.9);
}

void check_inputs(const at::Tensor& U, const at::Tensor& V, const at::Tensor& theta, const ContrastiveLossOptions& opt) {
  CXR_CHECK(U.defined() && V.defined() && theta.defined(), Shape, "contrastive loss: undefined input tensor");
  CXR_CHECK(U.dim() == 2 && V.dim() == 2, Shape,
            "contrastive loss: U and V must be 2-D (B x D), got " + shape_str(U) + " and " + shape_str(V));
  CXR_CHECK(U.sizes() == V.sizes(), Shape,
            "contrastive loss: U and V must have the same shape, got " + shape_str(U) + " and " + shape_str(V));
  CXR_CHECK(U.size(1) >= 1, Shape, "contrastive loss: embedding dimension must be >= 1");
  if (!opt.gather)
    CXR_CHECK(U.size(0) >= 2, Shape,
              "contrastive loss needs a batch of at least 2 (got B = " + std::to_string(U.size(0)) + ")");
  else
    CXR_CHECK(U.size(0) >= 1, Shape, "contrastive loss: the local batch is empty");
  CXR_CHECK(theta.numel() == 1, Shape,
            "contrastive loss: logit_scale_log must be a 0-dim or 1-element tensor, got " + shape_str(theta));
  CXR_CHECK(at::isFloatingType(U.scalar_type()) && at::isFloatingType(V.scalar_type()) &&
                at::isFloatingType(theta.scalar_type()),
            Dtype, "contrastive loss: U, V and logit_scale_log must be floating point");
  CXR_CHECK(U.device() == V.device(), Device, "contrastive loss: U and V must be on the same device");
  check_options(opt);
}

// Calls the gather hook and validates what it returns.
std::tuple<at::Tensor, at::Tensor, int64_t> call_gather(const ContrastiveLossOptions& opt, const at::Tensor& U,
                                                        const at::Tensor& V) {
  auto [Ug, Vg, off] = opt.gather(U.detach(), V.detach());
  const int64_t b = U.size(0);
  CXR_CHECK(Ug.defined() && Vg.defined() && Ug.dim() == 2 && Ug.sizes() == Vg.sizes() && Ug.size(1) == U.size(1),
            Shape, "contrastive loss: gather must return two B_global x D tensors with D = " + std::to_string(U.size(1)));
  CXR_CHECK(Ug.size(0) >= 2, Shape,
            "contrastive loss needs a batch of at least 2 (global B = " + std::to_string(Ug.size(0)) + ")");
  CXR_CHECK(off >= 0 && off + b <= Ug.size(0), Shape,
            "contrastive loss: gather offset " + std::to_string(off) + " does not place " + std::to_string(b) +
                " local rows inside a global batch of " + std::to_string(Ug.size(0)));
  CXR_CHECK(Ug.device() == U.device() && Vg.device() == U.device(), Device,
            "contrastive loss: gather must return tensors on the device of U");
  return {Ug, Vg, off};
}

bool all_finite(const at::Tensor& t) { return at::isfinite(t).all().item<bool>(); }

at::ScalarType compute_dtype(const at::Tensor& U, const at::Tensor& V) {
  return (U.scalar_type() == at::kDouble || V.scalar_type() == at::kDouble) ? at::kDouble : at::kFloat;
}

// Row-normalises x (compute dtype, contiguous). Returns (x̂, raw norms B x 1). On CPU one fused pass,
// elsewhere ATen ops.
template <class T>
void cpu_normalize_t(const at::Tensor& x, at::Tensor& xh, at::Tensor& n) {
  const int64_t B = x.size(0), D = x.size(1);
  const T* px = x.data_ptr<T>();
  T* ph = xh.data_ptr<T>();
  T* pn = n.data_ptr<T>();
  at::parallel_for(0, B, std::max<int64_t>(1, 16384 / D), [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      const T* r = px + i * D;
      const double nn = std::sqrt(static_cast<double>(k_dot<T>(r, r, D)));
      pn[i] = static_cast<T>(nn);
      const T inv = static_cast<T>(1.0 / std::max(nn, kNormEps));
      for (int64_t k = 0; k < D; ++k) ph[i * D + k] = r[k] * inv;
    }
  });
}

std::pair<at::Tensor, at::Tensor> normalize_rows(const at::Tensor& x) {
  if (x.is_cpu()) {
    at::Tensor xh = at::empty_like(x), n = at::empty({x.size(0), 1}, x.options());
    if (x.scalar_type() == at::kDouble) cpu_normalize_t<double>(x, xh, n);
    else cpu_normalize_t<float>(x, xh, n);
    return {xh, n};
  }
  at::Tensor n = x.norm(2, {1}, true);
  return {x / n.clamp_min(kNormEps), n};
}

// Gradient through x̂ = x / max(|x|, eps), times the upstream scalar go; in place on dxh on CPU.
template <class T>
void cpu_normalize_backward_t(at::Tensor& dxh, const at::Tensor& xh, const at::Tensor& n, double go) {
  const int64_t B = dxh.size(0), D = dxh.size(1);
  T* pd = dxh.data_ptr<T>();
  const T* ph = xh.data_ptr<T>();
  const T* pn = n.data_ptr<T>();
  at::parallel_for(0, B, std::max<int64_t>(1, 16384 / D), [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      T* d = pd + i * D;
      const T* h = ph + i * D;
      const double dot = k_dot<T>(d, h, D);
      const double nn = pn[i];
      const T proj = static_cast<T>(nn >= kNormEps ? dot : 0.0);
      const T sc = static_cast<T>(go / std::max(nn, kNormEps));
      for (int64_t k = 0; k < D; ++k) d[k] = (d[k] - h[k] * proj) * sc;
    }
  });
}

at::Tensor normalize_backward(at::Tensor dxh, const at::Tensor& xh, const at::Tensor& n, const at::Tensor& go) {
  if (dxh.is_cpu() && dxh.is_contiguous()) {
    const double g = go.item<double>();
    if (dxh.scalar_type() == at::kDouble) cpu_normalize_backward_t<double>(dxh, xh, n, g);
    else cpu_normalize_backward_t<float>(dxh, xh, n, g);
    return dxh;
  }
  at::Tensor dot = (dxh * xh).sum({1}, true);
  at::Tensor unclamped = (n >= kNormEps).to(dxh.scalar_type());
  return (dxh - xh * (dot * unclamped)) / n.clamp_min(kNormEps) * go;
}

// Excludes autocast for the op's own ATen calls: the loss must be computed (and accumulated) in
// float32 even when the caller runs under bf16/fp16 autocast.
struct NoAutocast {
  c10::impl::ExcludeDispatchKeyGuard guard{c10::autocast_dispatch_keyset};
};

// GEMM into the buffer; used by the forward and by a repeated backward (retain_graph) after the first
// backward consumed the buffer.
at::Tensor logits_buffer(const at::Tensor& Ug, const at::Tensor& Vg) {
  at::Tensor S = at::empty({Ug.size(0), Vg.size(0)}, Ug.options());
  at::mm_out(S, Ug, Vg.t());
  return S;
}

// ---------------------------------------------------------------------------------------------------
// Autograd Function.

class RelaxedContrastiveFn : public torch::autograd::Function<RelaxedContrastiveFn> {
 public:
  static torch::autograd::variable_list forward(torch::autograd::AutogradContext* ctx, const at::Tensor& U,
                                                const at::Tensor& V, const at::Tensor& theta,
                                                const ContrastiveLossOptions* opt_p) {
    NoAutocast no_autocast;
    const ContrastiveLossOptions& opt = *opt_p;
    const at::ScalarType ct = compute_dtype(U, V);
    CXR_CHECK(all_finite(U) && all_finite(V), Numeric, "contrastive loss: U or V contains NaN or Inf");
    CXR_CHECK(all_finite(theta), Numeric, "contrastive loss: logit_scale_log is NaN or Inf");
    const bool cuda = U.is_cuda();
    at::Tensor Uc = U.to(ct).contiguous(), Vc = V.to(ct).contiguous();
    at::Tensor Uh = Uc, Vh = Vc, nu, nv;
    if (!opt.inputs_normalized) {
      std::tie(Uh, nu) = normalize_rows(Uc);
      std::tie(Vh, nv) = normalize_rows(Vc);
    }
    at::Tensor Ug = Uh, Vg = Vh;
    int64_t off = 0;
    if (opt.gather) {
      at::Tensor Ugr, Vgr;
      std::tie(Ugr, Vgr, off) = call_gather(opt, U, V);
      Ug = Ugr.to(ct).contiguous();
      Vg = Vgr.to(ct).contiguous();
      CXR_CHECK(all_finite(Ug) && all_finite(Vg), Numeric, "contrastive loss: gathered U or V contains NaN or Inf");
      if (!opt.inputs_normalized) {
        Ug = normalize_rows(Ug).first;
        Vg = normalize_rows(Vg).first;
      }
    }
    at::Tensor buf = logits_buffer(Ug, Vg);
    detail::RcParams p;
    p.B = Ug.size(0);
    double batch_q = 0;
    p.alpha = step_alpha(opt, buf.diagonal(), &batch_q);
    p.margin_mode = opt.variant == RelaxVariant::Margin;
    p.margin = p.margin_mode ? opt.margin : 0.0;
    p.clamp = !p.margin_mode && p.alpha < 1.0;
    p.clamp_numerator = opt.variant == RelaxVariant::ClampNumerator;
    p.smoothing = opt.label_smoothing;

    at::Tensor diag = at::empty({p.B}, Ug.options()), row_lse = at::empty({2, p.B}, Ug.options()),
               col_lse = at::empty({2, p.B}, Ug.options()), dv = at::empty({7, p.B}, Ug.options());
    at::Tensor loss, scale_t;
    if (cuda) {
#ifdef CXR_WITH_CUDA
      scale_t = at::exp(theta.detach().to(U.device(), ct).reshape({}));
      CXR_CHECK(all_finite(scale_t), Numeric, "contrastive loss: exp(logit_scale_log) is not finite");
      loss = at::empty({}, Ug.options());
      detail::rc_cuda_forward_stats(buf, scale_t, p, diag, row_lse, col_lse, dv, loss);
#else
      throw Error(ErrorCode::Device, "contrastive loss: CUDA tensors need a build with CXR_WITH_CUDA");
#endif
    } else {
      p.scale = std::exp(theta.detach().to(at::kDouble).item<double>());
      CXR_CHECK(std::isfinite(p.scale) && p.scale > 0, Numeric,
                "contrastive loss: exp(logit_scale_log) is not finite");
      const double L = ct == at::kDouble ? cpu_forward_stats_t<double>(buf, p, diag, row_lse, col_lse, dv)
                                         : cpu_forward_stats_t<float>(buf, p, diag, row_lse, col_lse, dv);
      loss = at::scalar_tensor(L, Ug.options());
    }
    if (opt.stats) fill_stats(diag, dv, p, batch_q, opt.stats);
    auto& sd = ctx->saved_data;
    sd["Uh"] = Uh; sd["Vh"] = Vh; sd["Ug"] = Ug; sd["Vg"] = Vg;
    sd["nu"] = nu; sd["nv"] = nv;
    sd["buf"] = buf; sd["diag"] = diag; sd["row_lse"] = row_lse; sd["col_lse"] = col_lse; sd["dv"] = dv;
    sd["margin_mode"] = p.margin_mode; sd["margin"] = p.margin;
    sd["scale_t"] = scale_t;
    sd["scale"] = p.scale; sd["alpha"] = p.alpha; sd["clamp"] = p.clamp; sd["clamp_num"] = p.clamp_numerator;
    sd["smoothing"] = p.smoothing; sd["off"] = off; sd["normalized"] = opt.inputs_normalized;
    sd["consumed"] = false;
    sd["u_dtype"] = static_cast<int64_t>(U.scalar_type());
    sd["v_dtype"] = static_cast<int64_t>(V.scalar_type());
    sd["t_dtype"] = static_cast<int64_t>(theta.scalar_type());
    sd["t_sizes"] = theta.sizes().vec();
    sd["t_device"] = theta.device();
    return {loss};
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    NoAutocast no_autocast;
    auto& sd = ctx->saved_data;
    at::Tensor Uh = sd["Uh"].toTensor(), Vh = sd["Vh"].toTensor(), Ug = sd["Ug"].toTensor(), Vg = sd["Vg"].toTensor();
    at::Tensor diag = sd["diag"].toTensor(), row_lse = sd["row_lse"].toTensor(), col_lse = sd["col_lse"].toTensor();
    at::Tensor dv = sd["dv"].toTensor();
    detail::RcParams p;
    p.B = Ug.size(0);
    p.scale = sd["scale"].toDouble();
    p.alpha = sd["alpha"].toDouble();
    p.clamp = sd["clamp"].toBool();
    p.clamp_numerator = sd["clamp_num"].toBool();
    p.margin_mode = sd["margin_mode"].toBool();
    p.margin = sd["margin"].toDouble();
    p.smoothing = sd["smoothing"].toDouble();
    const int64_t off = sd["off"].toInt(), b = Uh.size(0);

    at::Tensor buf;
    if (!sd["consumed"].toBool()) {
      buf = sd["buf"].toTensor();
      sd["buf"] = at::Tensor();  // the backward overwrites it; a second backward recomputes it
      sd["consumed"] = true;
    } else {
      buf = logits_buffer(Ug, Vg);  // the diagonal is not read: the relaxed values are in dv
    }
    at::Tensor dtheta;
    if (buf.is_cuda()) {
#ifdef CXR_WITH_CUDA
      dtheta = at::empty({}, buf.options());
      detail::rc_cuda_build_grad(buf, sd["scale_t"].toTensor(), p, diag, row_lse, col_lse, dv, dtheta);
#endif
    } else {
      const double d = buf.scalar_type() == at::kDouble ? cpu_build_grad_t<double>(buf, p, diag, row_lse, col_lse, dv)
                                                        : cpu_build_grad_t<float>(buf, p, diag, row_lse, col_lse, dv);
      dtheta = at::scalar_tensor(d, buf.options());
    }
    // buf now holds dL/dS. Local rows of Û couple to buffer rows [off, off+b), local rows of V̂ to
    // buffer columns [off, off+b).
    at::Tensor go = grads[0].to(buf.scalar_type()).reshape({});
    at::Tensor dU, dV;
    const bool normalized = sd["normalized"].toBool();
    if (ctx->needs_input_grad(0)) {
      dU = at::mm(buf.narrow(0, off, b), Vg);
      dU = normalized ? dU.mul_(go) : normalize_backward(dU, Uh, sd["nu"].toTensor(), go);
      dU = dU.to(static_cast<at::ScalarType>(sd["u_dtype"].toInt()));
    }
    if (ctx->needs_input_grad(1)) {
      dV = at::mm(buf.narrow(1, off, b).t(), Ug);
      dV = normalized ? dV.mul_(go) : normalize_backward(dV, Vh, sd["nv"].toTensor(), go);
      dV = dV.to(static_cast<at::ScalarType>(sd["v_dtype"].toInt()));
    }
    at::Tensor dT;
    if (ctx->needs_input_grad(2)) {
      dT = (dtheta * go)
               .to(sd["t_device"].toDevice(), static_cast<at::ScalarType>(sd["t_dtype"].toInt()))
               .reshape(sd["t_sizes"].toIntVector());
    }
    return {dU, dV, dT, at::Tensor()};
  }
};

}  // namespace

namespace detail {
double quantile_sorted_inplace(std::vector<double>& v, double q) {
  CXR_CHECK(!v.empty(), Internal, "quantile of no values");
  std::sort(v.begin(), v.end());
  const double h = static_cast<double>(v.size() - 1) * q;
  const size_t lo = static_cast<size_t>(std::floor(h));
  const size_t hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (h - static_cast<double>(lo)) * (v[hi] - v[lo]);
}
bool rc_cpu_force_baseline_isa(bool on) { return g_force_baseline.exchange(on); }
bool rc_cpu_uses_avx2() { return cpu_has_avx2(); }
}  // namespace detail

torch::Tensor relaxed_contrastive_loss(const torch::Tensor& U, const torch::Tensor& V, const torch::Tensor& logit_scale_log,
                                       const ContrastiveLossOptions& opt) {
  check_inputs(U, V, logit_scale_log, opt);
  return RelaxedContrastiveFn::apply(U, V, logit_scale_log, &opt)[0];
}

torch::Tensor relaxed_contrastive_loss_reference(const torch::Tensor& U, const torch::Tensor& V,
                                                 const torch::Tensor& logit_scale_log, const ContrastiveLossOptions& opt) {
  check_inputs(U, V, logit_scale_log, opt);
  at::Tensor u = U, v = V;
  if (opt.gather) {
    auto [Ug, Vg, off] = call_gather(opt, U, V);
    const int64_t b = U.size(0), Bg = Ug.size(0);
    // Gradients reach the local rows only: splice the local (grad-carrying) rows into the gathered ones.
    u = at::cat({Ug.narrow(0, 0, off).to(U.scalar_type()), U, Ug.narrow(0, off + b, Bg - off - b).to(U.scalar_type())});
    v = at::cat({Vg.narrow(0, 0, off).to(V.scalar_type()), V, Vg.narrow(0, off + b, Bg - off - b).to(V.scalar_type())});
  }
  if (!opt.inputs_normalized) {
    u = u / u.norm(2, {1}, true).clamp_min(kNormEps);
    v = v / v.norm(2, {1}, true).clamp_min(kNormEps);
  }
  at::Tensor S = at::mm(u, v.t());
  at::Tensor l = logit_scale_log.exp().reshape({});
  const int64_t B = S.size(0);
  const double eps = opt.label_smoothing;
  at::Tensor labels = at::arange(B, S.options().dtype(at::kLong));
  auto ce = [&](const at::Tensor& logits) {
    return at::cross_entropy_loss(logits, labels, {}, at::Reduction::Mean, -100, eps);
  };
  if (opt.variant == RelaxVariant::Margin) {
    // Per direction: the diagonal clamped at the largest off-diagonal entry of its row (column) plus m,
    // the threshold detached (a constant of the step).
    at::Tensor off = S.detach().masked_fill(at::eye(B, S.options().dtype(at::kBool)), -std::numeric_limits<double>::infinity());
    at::Tensor thr_r = std::get<0>(off.max(1)) + opt.margin, thr_c = std::get<0>(off.max(0)) + opt.margin;
    at::Tensor Sr = S.diagonal_scatter(at::minimum(S.diagonal(), thr_r));
    at::Tensor Sc = S.diagonal_scatter(at::minimum(S.diagonal(), thr_c));
    return (ce(l * Sr) + ce((l * Sc).t())) / 2;
  }
  // The threshold: fixed, or the running q-quantile of the positives (torch's quantile here, so the
  // op's own quantile is checked too).
  double alpha = opt.alpha;
  if (opt.alpha_quantile >= 1.0) alpha = 1.0;
  else if (opt.alpha_quantile > 0.0) {
    const double q = at::quantile(S.diagonal().detach().to(at::kDouble), opt.alpha_quantile).item<double>();
    alpha = std::isnan(opt.alpha_running) ? q : opt.alpha_momentum * opt.alpha_running + (1 - opt.alpha_momentum) * q;
    alpha = std::min(alpha, 1.0);
  }
  const bool clamp = alpha < 1.0;
  if (!clamp || opt.variant == RelaxVariant::ClampDiag) {
    if (clamp) S = S.diagonal_scatter(S.diagonal().clamp_max(alpha));
    at::Tensor logits = l * S;
    return (ce(logits) + ce(logits.t())) / 2;
  }
  // clamp-numerator: the log-sum-exp over the raw logits, the target term over the clamped diagonal.
  at::Tensor logits = l * S;
  at::Tensor target_logits = l * S.diagonal_scatter(S.diagonal().clamp_max(alpha));
  at::Tensor tdiag = target_logits.diagonal();
  at::Tensor row = logits.logsumexp({1}) - ((1 - eps) * tdiag + eps / B * target_logits.sum({1}));
  at::Tensor col = logits.logsumexp({0}) - ((1 - eps) * tdiag + eps / B * target_logits.sum({0}));
  return (row.mean() + col.mean()) / 2;
}

torch::Tensor clip_loss_reference(const torch::Tensor& U, const torch::Tensor& V, const torch::Tensor& logit_scale_log,
                                  double label_smoothing) {
  ContrastiveLossOptions opt;
  opt.label_smoothing = label_smoothing;
  check_inputs(U, V, logit_scale_log, opt);
  at::Tensor u = U / U.norm(2, {1}, true).clamp_min(kNormEps);
  at::Tensor v = V / V.norm(2, {1}, true).clamp_min(kNormEps);
  at::Tensor logits = logit_scale_log.exp().reshape({}) * at::mm(u, v.t());
  at::Tensor labels = at::arange(U.size(0), U.options().dtype(at::kLong));
  return (at::cross_entropy_loss(logits, labels, {}, at::Reduction::Mean, -100, label_smoothing) +
          at::cross_entropy_loss(logits.t(), labels, {}, at::Reduction::Mean, -100, label_smoothing)) /
         2;
}

}  // namespace cxr
