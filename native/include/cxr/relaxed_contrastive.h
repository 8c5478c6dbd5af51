// Relaxed contrastive (CLIP-style) loss: the positive-pair relaxation of METHOD.md §2 as one fused
// native autograd op (CPU; CUDA when built with CXR_WITH_CUDA), plus plain autograd composites of the
// same math that serve as test oracles and as the unfused benchmark baseline.
#pragma once
#include <cstdint>
#include <functional>
#include <limits>
#include <tuple>
#include <vector>

#include <torch/torch.h>

namespace cxr {

/// How the positive pair is relaxed above the threshold α.
///  - ClampDiag: S̃ = S with S̃_ii = min(s_ii, α); the symmetric CE is applied to l·S̃, so the positive
///    entry gets zero gradient once s_ii > α (in both the numerator and the log-sum-exp).
///  - ClampNumerator: L_i = -l·min(s_ii, α) + logsumexp_j(l·s_ij); the true s_ii stays in the
///    log-sum-exp (and keeps its gradient there), only the numerator is clamped.
///  - Margin: a per-direction clamp-diag whose threshold is the largest negative of the row (row loss)
///    or of the column (column loss) plus the margin m, in cosine units: S̃^row_ii = min(s_ii, n^r_i + m)
///    with n^r_i = max_{j≠i} s_ij, S̃^col_ii = min(s_ii, n^c_i + m) with n^c_i = max_{k≠i} s_ki. The
///    thresholds are constants of the step (stop-gradient): differentiating through the max would pull
///    the hardest negative towards the anchor. (In logits: the positive stops being pulled once l·s_ii
///    exceeds the largest negative logit by l·m.) m = +inf is plain CLIP.
enum class RelaxVariant { ClampDiag, ClampNumerator, Margin };

/// Per-step statistics of the forward pass, taken from the quantities the fused op computes anyway
/// (the B raw positives s_ii, the off-diagonal row sums and the relaxed diagonal values): no extra pass
/// over the B×B matrix. Over the global batch when gathering.
struct ContrastiveLossStats {
  /// Fraction of positive pairs whose loss term the relaxation changed (clamped in the row or the
  /// column loss, numerator or log-sum-exp).
  double engaged = 0;
  /// Threshold used: α of the clamp forms (1 = no clamp; the EMA value for the adaptive form); for
  /// Margin the mean of the row and column thresholds n + m (+inf for m = +inf).
  double alpha = 1;
  /// Adaptive form: the q-quantile of this batch's positives (NaN otherwise).
  double batch_quantile = std::numeric_limits<double>::quiet_NaN();
  /// Positive similarities s_ii: mean and the 10/50/90 % quantiles (linear interpolation, as
  /// torch.quantile).
  double pos_mean = 0, pos_q10 = 0, pos_q50 = 0, pos_q90 = 0;
  /// Mean off-diagonal (negative) similarity.
  double neg_mean = 0;
};

struct ContrastiveLossOptions {
  /// Threshold α on the positive-pair cosine similarity; 1 reproduces plain CLIP exactly (no clamp is
  /// applied at all). Must satisfy 0 < α <= 1, else Error(Config).
  double alpha = 1.0;
  RelaxVariant variant = RelaxVariant::ClampDiag;
  /// Adaptive threshold (ClampDiag / ClampNumerator): 0 = off (α above is used); q in (0, 1): α is the
  /// running q-quantile of the positives, α_t = β·α_{t-1} + (1-β)·Q_q(s_ii of this batch) (α_t = Q_q
  /// when alpha_running is NaN, i.e. the first step), a constant within the step (the gradients are those
  /// of the clamp at α_t); q = 1 is plain CLIP (no clamp). The caller keeps α_t (stats->alpha) as the next
  /// alpha_running. β = 1 holds α at alpha_running (the first batch's quantile when none yet): a threshold
  /// measured on the starting model and then frozen.
  double alpha_quantile = 0.0;
  double alpha_running = std::numeric_limits<double>::quiet_NaN();
  double alpha_momentum = 0.9;
  /// Margin variant: m in cosine units, > 0; +inf is plain CLIP.
  double margin = std::numeric_limits<double>::infinity();
  /// When set, the forward writes the step's statistics here.
  ContrastiveLossStats* stats = nullptr;
  /// true: U and V are already unit rows; the op skips the normalisation (and its gradient).
  bool inputs_normalized = false;
  /// PyTorch cross_entropy semantics: target = (1-ε)·onehot + ε/B. Must satisfy 0 <= ε < 1.
  double label_smoothing = 0.0;
  /// Distributed hook: given the local U, V (B_local x D, detached, as passed to the op) returns the
  /// gathered (B_global x D) tensors (raw or normalised, the op normalises them unless
  /// inputs_normalized) and the offset of the local rows in them. The loss is taken over the global
  /// batch (mean over B_global rows and columns); gradients flow to the local rows only, and each of
  /// them equals the gradient of the global loss with respect to that row. dθ is the full dθ of the
  /// global loss on every rank.
  std::function<std::tuple<torch::Tensor, torch::Tensor, int64_t>(const torch::Tensor&, const torch::Tensor&)> gather;
};

/// Fused relaxed contrastive loss. logit_scale_log is θ (0-dim or 1-element; the scale is l = exp(θ),
/// not clamped here). Returns a 0-dim loss with autograd to U, V and θ. float64 inputs are computed in
/// float64; every other float dtype (float32, bf16, fp16) is computed in float32 and the loss is
/// float32; autocast is disabled inside the op. Errors: Shape (not 2-D, shapes differ, B < 2, bad
/// gather result), Numeric (NaN/Inf in U, V or θ, or exp(θ) not finite), Config (α, ε out of range),
/// Dtype (not floating point), Device (CUDA tensor without a CUDA build, or mixed devices).
torch::Tensor relaxed_contrastive_loss(const torch::Tensor& U, const torch::Tensor& V, const torch::Tensor& logit_scale_log,
                                       const ContrastiveLossOptions& opt = {});

/// Straightforward autograd composite of the same math (test oracle and unfused baseline). Computes
/// in the dtype of its inputs.
torch::Tensor relaxed_contrastive_loss_reference(const torch::Tensor& U, const torch::Tensor& V,
                                                 const torch::Tensor& logit_scale_log,
                                                 const ContrastiveLossOptions& opt = {});

/// Plain CLIP loss (α = 1) as an autograd composite, written as open_clip does.
torch::Tensor clip_loss_reference(const torch::Tensor& U, const torch::Tensor& V, const torch::Tensor& logit_scale_log,
                                  double label_smoothing = 0.0);

namespace detail {
/// Parameters of the B×B pass shared by the CPU and CUDA back ends.
struct RcParams {
  int64_t B = 0;              // global batch (the buffer is B x B, row-major, contiguous)
  double scale = 1.0;         // l = exp(θ) (CPU only; CUDA reads it from a device scalar)
  double alpha = 1.0;
  bool clamp = false;         // alpha < 1 (clamp forms)
  bool clamp_numerator = false;
  bool margin_mode = false;   // Margin variant (clamp / clamp_numerator unused)
  double margin = 0.0;
  double smoothing = 0.0;
};
/// Linear-interpolation quantile (torch.quantile's default) of n values (sorted in place).
double quantile_sorted_inplace(std::vector<double>& v, double q);
/// Testing hook: run the CPU loops in their baseline-ISA build even on an AVX2 machine. Returns the
/// previous setting.
bool rc_cpu_force_baseline_isa(bool on);
/// Whether the CPU loops currently run in their AVX2+FMA build.
bool rc_cpu_uses_avx2();
#ifdef CXR_WITH_CUDA
// CUDA back end (relaxed_contrastive_cuda.cc). Same contracts as the CPU functions in
// relaxed_contrastive.cc: see there.
// dv (5 x B): relaxed diagonal values (row log-sum-exp value, row target value, column log-sum-exp
// value, column target value) and the off-diagonal row sums.
void rc_cuda_forward_stats(torch::Tensor& buf, const torch::Tensor& scale, const RcParams& p, torch::Tensor& diag,
                           torch::Tensor& row_lse, torch::Tensor& col_lse, torch::Tensor& dv, torch::Tensor& loss);
void rc_cuda_build_grad(torch::Tensor& buf, const torch::Tensor& scale, const RcParams& p, const torch::Tensor& diag,
                        const torch::Tensor& row_lse, const torch::Tensor& col_lse, const torch::Tensor& dv,
                        torch::Tensor& dtheta_sum);
#endif
}  // namespace detail

}  // namespace cxr
