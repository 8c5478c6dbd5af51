// Tests of the fused relaxed contrastive loss against its autograd composite, finite differences,
// the plain CLIP loss and the error contract. The CXR_DEVICE_TESTs run the op on every device available
// (its CPU loops, and its CUDA kernels when a GPU is there); inputs are made on the CPU and moved.
#include <torch/torch.h>

#include <cmath>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "cxr/errors.h"
#include "cxr/relaxed_contrastive.h"
#include "cxr/torch_compat.h"
#include "test_util.h"

using namespace cxr;
using torch::Tensor;

namespace {

using LossFn = Tensor (*)(const Tensor&, const Tensor&, const Tensor&, const ContrastiveLossOptions&);

struct Result {
  double loss;
  Tensor dU, dV, dT;
};

// The device the op runs on in the current test (set by DeviceScope); inputs are moved there and the
// gradients come back to the CPU, so the checks read the same on every device.
std::string g_device = "cpu";
struct DeviceScope {
  explicit DeviceScope(const std::string& d) { g_device = d; }
  ~DeviceScope() { g_device = "cpu"; }
};
Tensor on_dev(const Tensor& t) { return t.to(torch::Device(g_device)); }

Result run(LossFn fn, const Tensor& U0, const Tensor& V0, const Tensor& T0, const ContrastiveLossOptions& opt) {
  Tensor U = on_dev(U0.detach()).clone().requires_grad_(true);
  Tensor V = on_dev(V0.detach()).clone().requires_grad_(true);
  Tensor T = on_dev(T0.detach()).clone().requires_grad_(true);
  Tensor L = fn(U, V, T, opt);
  L.backward();
  return {L.item<double>(), U.grad().cpu(), V.grad().cpu(), T.grad().cpu()};
}

// Inputs whose positive similarities s_ii are spread over (-1, 1), so that for α in (0, 1) some
// positives are above and some below the threshold.
std::pair<Tensor, Tensor> make_pair(int64_t B, int64_t D, uint64_t seed, torch::Dtype dt = torch::kDouble) {
  torch::manual_seed(seed);
  Tensor U = torch::randn({B, D}, torch::kDouble) * 1.7;
  Tensor noise = torch::randn({B, D}, torch::kDouble);
  Tensor mix = torch::linspace(-0.9, 3.0, B, torch::kDouble).unsqueeze(1);
  Tensor V = mix * U + noise;
  return {U.to(dt), V.to(dt)};
}

double max_abs(const Tensor& t) { return t.abs().max().item<double>(); }
double max_diff(const Tensor& a, const Tensor& b) { return max_abs(a.to(torch::kDouble) - b.to(torch::kDouble)); }

void expect_close(const Result& a, const Result& b, double tol, const std::string& what) {
  auto check = [&](double d, double scale, const char* part) {
    if (!(d <= tol * std::max(1.0, scale)))
      throw cxr_test::Failure{what + ": " + part + " differs by " + std::to_string(d)};
  };
  check(std::fabs(a.loss - b.loss), std::fabs(b.loss), "loss");
  check(max_diff(a.dU, b.dU), max_abs(b.dU), "dU");
  check(max_diff(a.dV, b.dV), max_abs(b.dV), "dV");
  check(max_diff(a.dT, b.dT), max_abs(b.dT), "dtheta");
}

const char* vname(RelaxVariant v) {
  return v == RelaxVariant::ClampDiag ? "clamp-diag" : v == RelaxVariant::ClampNumerator ? "clamp-numerator" : "margin";
}

bool bit_equal(const Result& a, const Result& b) {
  return a.loss == b.loss && torch::equal(a.dU, b.dU) && torch::equal(a.dV, b.dV) && torch::equal(a.dT, b.dT);
}

// Plain double-precision similarities of the inputs (no fused op involved).
Tensor plain_sims(const Tensor& U, const Tensor& V) {
  Tensor u = U.to(torch::kDouble), v = V.to(torch::kDouble);
  return at::mm(u / u.norm(2, {1}, true), (v / v.norm(2, {1}, true)).t());
}

// Largest off-diagonal entry per row (dim 1) or per column (dim 0).
Tensor offdiag_max(const Tensor& S, int64_t dim) {
  Tensor m = S.masked_fill(torch::eye(S.size(0), torch::kBool), -INFINITY);
  return std::get<0>(m.max(dim));
}

// The margin form's loss with its per-row / per-column thresholds given (frozen), in plain ATen ops on
// double: the function whose derivative the op's gradient is (the thresholds are constants of the step).
double margin_loss_frozen(const Tensor& U, const Tensor& V, const Tensor& T, const Tensor& thr_r, const Tensor& thr_c,
                          double eps) {
  Tensor S = plain_sims(U, V);
  const int64_t B = S.size(0);
  Tensor l = T.to(torch::kDouble).exp().reshape({});
  Tensor labels = torch::arange(B, torch::kLong);
  Tensor Sr = S.diagonal_scatter(torch::minimum(S.diagonal(), thr_r));
  Tensor Sc = S.diagonal_scatter(torch::minimum(S.diagonal(), thr_c));
  Tensor L = (at::cross_entropy_loss(l * Sr, labels, {}, at::Reduction::Mean, -100, eps) +
              at::cross_entropy_loss((l * Sc).t(), labels, {}, at::Reduction::Mean, -100, eps)) /
             2;
  return L.item<double>();
}

}  // namespace

CXR_DEVICE_TEST(matches_float64_reference_both_variants) {
  DeviceScope scope(device);
  int cases = 0;
  for (RelaxVariant var : {RelaxVariant::ClampDiag, RelaxVariant::ClampNumerator})
    for (int64_t B : {2, 7, 128})
      for (int64_t D : {3, 16, 64})
        for (double alpha : {0.3, 0.7, 1.0}) {
          auto [U, V] = make_pair(B, D, 1000 + B * 7 + D);
          Tensor T = torch::full({}, std::log(20.0), torch::kDouble);
          ContrastiveLossOptions opt;
          opt.alpha = alpha;
          opt.variant = var;
          Result f = run(relaxed_contrastive_loss, U, V, T, opt);
          Result r = run(relaxed_contrastive_loss_reference, U, V, T, opt);
          expect_close(f, r, 1e-11,
                       std::string(vname(var)) + " B=" + std::to_string(B) + " D=" + std::to_string(D) +
                           " alpha=" + std::to_string(alpha));
          ++cases;
        }
  EXPECT_TRUE(cases == 54);
}

CXR_DEVICE_TEST(clamp_actually_changes_the_loss) {
  DeviceScope scope(device);
  // Guards against a vacuous comparison: with these inputs the relaxation must matter.
  auto [U, V] = make_pair(64, 32, 7);
  Tensor T = torch::full({}, std::log(20.0), torch::kDouble);
  ContrastiveLossOptions a1, a03;
  a03.alpha = 0.3;
  Result r1 = run(relaxed_contrastive_loss, U, V, T, a1);
  Result r03 = run(relaxed_contrastive_loss, U, V, T, a03);
  EXPECT_TRUE(std::fabs(r1.loss - r03.loss) > 1e-3);
  a03.variant = RelaxVariant::ClampNumerator;
  Result n03 = run(relaxed_contrastive_loss, U, V, T, a03);
  EXPECT_TRUE(std::fabs(n03.loss - r03.loss) > 1e-3);
}

CXR_DEVICE_TEST(float32_matches_float64_reference) {
  DeviceScope scope(device);
  for (RelaxVariant var : {RelaxVariant::ClampDiag, RelaxVariant::ClampNumerator})
    for (double alpha : {0.5, 1.0}) {
      auto [U, V] = make_pair(300, 48, 11);
      Tensor T = torch::full({}, std::log(100.0), torch::kDouble);
      ContrastiveLossOptions opt;
      opt.alpha = alpha;
      opt.variant = var;
      opt.label_smoothing = 0.05;
      Result f = run(relaxed_contrastive_loss, U.to(torch::kFloat), V.to(torch::kFloat), T.to(torch::kFloat), opt);
      Result r = run(relaxed_contrastive_loss_reference, U, V, T, opt);
      EXPECT_TRUE(f.dU.scalar_type() == torch::kFloat && f.dT.scalar_type() == torch::kFloat);
      expect_close(f, r, 2e-5, std::string("float32 ") + vname(var));
    }
}

CXR_DEVICE_TEST(alpha_one_equals_clip_loss) {
  DeviceScope scope(device);
  for (auto dt : {torch::kDouble, torch::kFloat}) {
    auto [U, V] = make_pair(96, 40, 3, dt);
    Tensor T = torch::full({}, std::log(50.0), dt);
    for (RelaxVariant var : {RelaxVariant::ClampDiag, RelaxVariant::ClampNumerator}) {
      ContrastiveLossOptions opt;
      opt.variant = var;
      Result f = run(relaxed_contrastive_loss, U, V, T, opt);
      Result c = run([](const Tensor& u, const Tensor& v, const Tensor& t, const ContrastiveLossOptions&) {
        return clip_loss_reference(u, v, t);
      }, U, V, T, opt);
      expect_close(f, c, 1e-6, std::string("alpha=1 vs CLIP ") + vname(var));
    }
  }
}

CXR_DEVICE_TEST(finite_difference_gradients_float64) {
  DeviceScope scope(device);
  const double h = 1e-6;
  for (RelaxVariant var : {RelaxVariant::ClampDiag, RelaxVariant::ClampNumerator})
    for (double eps : {0.0, 0.1}) {
      auto [U, V] = make_pair(6, 5, 21);
      Tensor T = torch::full({1}, std::log(15.0), torch::kDouble);
      ContrastiveLossOptions opt;
      opt.alpha = 0.45;
      opt.variant = var;
      opt.label_smoothing = eps;
      // Central differences are only valid away from the kink at s_ii = α.
      Tensor uh = U / U.norm(2, {1}, true), vh = V / V.norm(2, {1}, true);
      Tensor sd = (uh * vh).sum(1);
      EXPECT_TRUE(((sd - opt.alpha).abs() > 1e-3).all().item<bool>());
      EXPECT_TRUE((sd > opt.alpha).any().item<bool>() && (sd < opt.alpha).any().item<bool>());
      Result f = run(relaxed_contrastive_loss, U, V, T, opt);
      auto L = [&](const Tensor& u, const Tensor& v, const Tensor& t) {
        torch::NoGradGuard ng;
        return relaxed_contrastive_loss(on_dev(u), on_dev(v), on_dev(t), opt).item<double>();
      };
      auto fd_check = [&](const Tensor& x, const Tensor& g, int which) {
        Tensor xf = x.flatten();
        for (int64_t k = 0; k < xf.numel(); ++k) {
          Tensor xp = x.clone(), xm = x.clone();
          xp.view({-1})[k] += h;
          xm.view({-1})[k] -= h;
          double lp = which == 0 ? L(xp, V, T) : which == 1 ? L(U, xp, T) : L(U, V, xp);
          double lm = which == 0 ? L(xm, V, T) : which == 1 ? L(U, xm, T) : L(U, V, xm);
          double fd = (lp - lm) / (2 * h);
          EXPECT_NEAR(g.flatten()[k].item<double>(), fd, 1e-7 + 1e-6 * std::fabs(fd));
        }
      };
      fd_check(U, f.dU, 0);
      fd_check(V, f.dV, 1);
      fd_check(T, f.dT, 2);
      EXPECT_TRUE(f.dT.sizes() == T.sizes());
    }
}

// Unit rows u_i with cosine cs[i] to e_i and the rest on e_{i+3}: against V̂ = identity rows, s_ii = cs[i]
// and row i's only other non-zero similarity is s_{i,i+3} = sqrt(1 - cs[i]²).
static Tensor unit_rows_with_cosines(const Tensor& cs) {
  const int64_t B = cs.size(0);
  Tensor U = torch::zeros({B, B}, torch::kDouble);
  for (int64_t i = 0; i < B; ++i) {
    const double c = cs[i].item<double>();
    U[i][i] = c;
    U[i][(i + 3) % B] = std::sqrt(1 - c * c);
  }
  return U;
}

CXR_DEVICE_TEST(positives_above_alpha_get_exactly_zero_gradient_in_clamp_diag) {
  DeviceScope scope(device);
  // V̂ = identity rows, so dL/dÛ = dL/dS·V̂ = dL/dS exactly: the diagonal of dU is the gradient of s_ii.
  const int64_t B = 8;
  Tensor V = torch::eye(B, torch::kDouble);
  Tensor cs = torch::tensor({0.95, 0.2, 0.8, -0.3, 0.6, 0.1, 0.99, 0.4}, torch::kDouble);
  Tensor U = unit_rows_with_cosines(cs);
  Tensor T = torch::full({}, std::log(30.0), torch::kDouble);
  ContrastiveLossOptions opt;
  opt.alpha = 0.5;
  opt.inputs_normalized = true;
  for (auto dt : {torch::kDouble, torch::kFloat}) {
    Result f = run(relaxed_contrastive_loss, U.to(dt), V.to(dt), T.to(dt), opt);
    Result r = run(relaxed_contrastive_loss_reference, U.to(dt), V.to(dt), T.to(dt), opt);
    for (int64_t i = 0; i < B; ++i) {
      double gf = f.dU[i][i].item<double>(), gr = r.dU[i][i].item<double>();
      if (cs[i].item<double>() > opt.alpha) {
        EXPECT_TRUE(gf == 0.0);
        EXPECT_TRUE(gr == 0.0);
      } else {
        EXPECT_TRUE(gf != 0.0);
      }
    }
    // dθ is still non-zero: the clamped logit l·α keeps depending on θ.
    EXPECT_TRUE(f.dT.item<double>() != 0.0);
  }
  // clamp-numerator keeps the log-sum-exp gradient on the positive.
  opt.variant = RelaxVariant::ClampNumerator;
  Result n = run(relaxed_contrastive_loss, U, V, T, opt);
  for (int64_t i = 0; i < B; ++i) EXPECT_TRUE(n.dU[i][i].item<double>() != 0.0);
}

CXR_DEVICE_TEST(label_smoothing_matches_reference) {
  DeviceScope scope(device);
  for (RelaxVariant var : {RelaxVariant::ClampDiag, RelaxVariant::ClampNumerator})
    for (double alpha : {0.3, 1.0}) {
      auto [U, V] = make_pair(33, 20, 5);
      Tensor T = torch::full({}, std::log(25.0), torch::kDouble);
      ContrastiveLossOptions opt;
      opt.alpha = alpha;
      opt.variant = var;
      opt.label_smoothing = 0.2;
      expect_close(run(relaxed_contrastive_loss, U, V, T, opt), run(relaxed_contrastive_loss_reference, U, V, T, opt),
                   1e-11, std::string("smoothing ") + vname(var));
    }
  // And with α = 1 the fused loss equals CLIP with the same smoothing.
  auto [U, V] = make_pair(33, 20, 5);
  Tensor T = torch::full({}, std::log(25.0), torch::kDouble);
  ContrastiveLossOptions opt;
  opt.label_smoothing = 0.2;
  torch::NoGradGuard ng;
  EXPECT_NEAR(relaxed_contrastive_loss(on_dev(U), on_dev(V), on_dev(T), opt).item<double>(),
              clip_loss_reference(U, V, T, 0.2).item<double>(), 1e-12);
}

CXR_DEVICE_TEST(inputs_normalized_flag) {
  DeviceScope scope(device);
  auto [U, V] = make_pair(20, 12, 9);
  Tensor uh = U / U.norm(2, {1}, true), vh = V / V.norm(2, {1}, true);
  Tensor T = torch::full({}, std::log(10.0), torch::kDouble);
  ContrastiveLossOptions a, b;
  a.alpha = b.alpha = 0.6;
  b.inputs_normalized = true;
  Result ra = run(relaxed_contrastive_loss, uh, vh, T, a);
  Result rb = run(relaxed_contrastive_loss, uh, vh, T, b);
  Result rr = run(relaxed_contrastive_loss_reference, uh, vh, T, b);
  EXPECT_NEAR(ra.loss, rb.loss, 1e-12);
  expect_close(rb, rr, 1e-11, "normalized inputs vs reference");
  // Without normalisation the gradient keeps its radial component; with it, it is tangent to the sphere.
  EXPECT_TRUE(max_abs((ra.dU * uh).sum(1)) < 1e-12);
  EXPECT_TRUE(max_abs((rb.dU * uh).sum(1)) > 1e-6);
}

CXR_TEST(gather_hook_two_simulated_ranks) {
  const int64_t B = 10, D = 6, b0 = 6;
  auto [X, Y] = make_pair(B, D, 31);
  torch::manual_seed(5);
  Tensor W0 = torch::randn({D, D}, torch::kDouble);
  Tensor T0 = torch::full({}, std::log(12.0), torch::kDouble);
  for (RelaxVariant var : {RelaxVariant::ClampDiag, RelaxVariant::ClampNumerator}) {
    ContrastiveLossOptions full;
    full.alpha = 0.5;
    full.variant = var;
    full.label_smoothing = 0.1;
    // Full batch, image encoder U = X·W (a shared parameter W).
    Tensor W = W0.clone().requires_grad_(true), T = T0.clone().requires_grad_(true);
    Tensor Yv = Y.clone().requires_grad_(true);
    Tensor Lf = relaxed_contrastive_loss(X.mm(W), Yv, T, full);
    Lf.backward();
    Tensor dW_sum = torch::zeros_like(W0), dY_cat = torch::zeros_like(Y);
    for (int rank = 0; rank < 2; ++rank) {
      const int64_t off = rank == 0 ? 0 : b0, b = rank == 0 ? b0 : B - b0;
      Tensor Wr = W0.clone().requires_grad_(true), Tr = T0.clone().requires_grad_(true);
      Tensor Xl = X.narrow(0, off, b), Yl = Y.narrow(0, off, b).clone().requires_grad_(true);
      ContrastiveLossOptions o = full;
      // What an all_gather would return: every rank's (detached) rows, in rank order.
      o.gather = [&, off, b](const Tensor& u, const Tensor& v) {
        Tensor Ug = X.mm(W0);
        Ug.narrow(0, off, b).copy_(u);
        Tensor Vg = Y.clone();
        Vg.narrow(0, off, b).copy_(v);
        return std::make_tuple(Ug, Vg, off);
      };
      for (LossFn fn : {relaxed_contrastive_loss, relaxed_contrastive_loss_reference}) {
        Wr.mutable_grad() = Tensor();
        Tr.mutable_grad() = Tensor();
        Yl.mutable_grad() = Tensor();
        Tensor Lr = fn(Xl.mm(Wr), Yl, Tr, o);
        EXPECT_NEAR(Lr.item<double>(), Lf.item<double>(), 1e-12);
        Lr.backward();
        EXPECT_TRUE(max_diff(Tr.grad(), T.grad()) < 1e-12);  // every rank gets the full dθ
        EXPECT_TRUE(max_diff(Yl.grad(), Yv.grad().narrow(0, off, b)) < 1e-12);
        if (fn == relaxed_contrastive_loss) {
          dW_sum += Wr.grad();
          dY_cat.narrow(0, off, b).copy_(Yl.grad());
        }
      }
    }
    // The sum of the ranks' parameter gradients is the full-batch gradient.
    EXPECT_TRUE(max_diff(dW_sum, W.grad()) < 1e-11);
    EXPECT_TRUE(max_diff(dY_cat, Yv.grad()) < 1e-12);
  }
}

CXR_DEVICE_TEST(low_precision_inputs_compute_in_float32) {
  DeviceScope scope(device);
  auto [U, V] = make_pair(64, 32, 13, torch::kFloat);
  Tensor T = torch::full({}, std::log(30.0), torch::kFloat);
  ContrastiveLossOptions opt;
  opt.alpha = 0.6;
  for (auto dt : {torch::kBFloat16, torch::kHalf}) {
    Tensor Ul = U.to(dt), Vl = V.to(dt);
    Result lo = run(relaxed_contrastive_loss, Ul, Vl, T, opt);
    // The same rounded inputs, upcast by hand: the op must compute exactly this float32 problem.
    Result hi = run(relaxed_contrastive_loss, Ul.to(torch::kFloat), Vl.to(torch::kFloat), T, opt);
    EXPECT_TRUE(lo.dU.scalar_type() == dt && lo.dV.scalar_type() == dt);
    EXPECT_NEAR(lo.loss, hi.loss, 0.0);
    EXPECT_TRUE(max_diff(lo.dU, hi.dU.to(dt)) == 0.0);
    Tensor L = relaxed_contrastive_loss(on_dev(Ul), on_dev(Vl), on_dev(T), opt);
    EXPECT_TRUE(L.scalar_type() == torch::kFloat && L.dim() == 0);
  }
}

CXR_TEST(autocast_does_not_lower_precision) {
  auto [U, V] = make_pair(128, 64, 17, torch::kFloat);
  Tensor T = torch::full({}, std::log(80.0), torch::kFloat);
  ContrastiveLossOptions opt;
  opt.alpha = 0.7;
  Result plain = run(relaxed_contrastive_loss, U, V, T, opt);
  cxr::compat::set_cpu_autocast(true);
  Result ac = run(relaxed_contrastive_loss, U, V, T, opt);
  Result ac_ref = run(relaxed_contrastive_loss_reference, U, V, T, opt);
  cxr::compat::set_cpu_autocast(false);
  EXPECT_NEAR(ac.loss, plain.loss, 0.0);
  EXPECT_TRUE(max_diff(ac.dU, plain.dU) == 0.0);
  // The composite's matmul does run in bf16 under autocast: the guard above is not vacuous.
  EXPECT_TRUE(std::fabs(ac_ref.loss - plain.loss) > 1e-5);
}

CXR_TEST(retain_graph_second_backward) {
  auto [U0, V0] = make_pair(16, 8, 19);
  Tensor U = U0.clone().requires_grad_(true), V = V0.clone().requires_grad_(true);
  Tensor T = torch::full({}, 2.0, torch::kDouble).requires_grad_(true);
  ContrastiveLossOptions opt;
  opt.alpha = 0.4;
  Tensor L = relaxed_contrastive_loss(U, V, T, opt);
  L.backward({}, /*retain_graph=*/true);
  Tensor g1 = U.grad().clone(), t1 = T.grad().clone();
  L.backward();
  EXPECT_TRUE(max_diff(U.grad(), 2 * g1) < 1e-13);
  EXPECT_TRUE(max_diff(T.grad(), 2 * t1) < 1e-13);
  // Upstream gradients other than 1 are honoured.
  U.mutable_grad() = Tensor();
  Tensor L2 = relaxed_contrastive_loss(U, V, T, opt);
  (3.0 * L2).backward();
  EXPECT_TRUE(max_diff(U.grad(), 3 * g1) < 1e-12);
}

CXR_DEVICE_TEST(errors) {
  DeviceScope scope(device);
  auto [U0, V0] = make_pair(4, 3, 1);
  Tensor U = on_dev(U0), V = on_dev(V0);
  Tensor T = on_dev(torch::zeros({}, torch::kDouble));
  Tensor Un = U.clone();
  Un[1][2] = std::nan("");
  EXPECT_THROWS_CODE(relaxed_contrastive_loss(Un, V, T), Numeric);
  Tensor Vi = V.clone();
  Vi[0][0] = INFINITY;
  EXPECT_THROWS_CODE(relaxed_contrastive_loss(U, Vi, T), Numeric);
  EXPECT_THROWS_CODE(relaxed_contrastive_loss(U, V, on_dev(torch::full({}, NAN, torch::kDouble))), Numeric);
  EXPECT_THROWS_CODE(relaxed_contrastive_loss(U, V, on_dev(torch::full({}, 1e6, torch::kDouble))), Numeric);
  EXPECT_THROWS_CODE(relaxed_contrastive_loss(U.narrow(0, 0, 1), V.narrow(0, 0, 1), T), Shape);
  try {
    relaxed_contrastive_loss(U.narrow(0, 0, 1), V.narrow(0, 0, 1), T);
  } catch (const Error& e) {
    EXPECT_TRUE(std::string(e.what()).find("contrastive loss needs a batch of at least 2") != std::string::npos);
  }
  EXPECT_THROWS_CODE(relaxed_contrastive_loss_reference(U.narrow(0, 0, 1), V.narrow(0, 0, 1), T), Shape);
  EXPECT_THROWS_CODE(relaxed_contrastive_loss(U.flatten(), V.flatten(), T), Shape);
  EXPECT_THROWS_CODE(relaxed_contrastive_loss(U, V.narrow(1, 0, 2), T), Shape);
  EXPECT_THROWS_CODE(relaxed_contrastive_loss(U, V, on_dev(torch::zeros({2}, torch::kDouble))), Shape);
  EXPECT_THROWS_CODE(relaxed_contrastive_loss(U.to(torch::kLong), V.to(torch::kLong), T), Dtype);
  for (double a : {0.0, -0.5, 1.5, std::nan("")}) {
    ContrastiveLossOptions o;
    o.alpha = a;
    EXPECT_THROWS_CODE(relaxed_contrastive_loss(U, V, T, o), Config);
    EXPECT_THROWS_CODE(relaxed_contrastive_loss_reference(U, V, T, o), Config);
  }
  for (double eps : {-0.1, 1.0}) {
    ContrastiveLossOptions o;
    o.label_smoothing = eps;
    EXPECT_THROWS_CODE(relaxed_contrastive_loss(U, V, T, o), Config);
  }
  ContrastiveLossOptions g;
  g.gather = [](const Tensor& u, const Tensor& v) { return std::make_tuple(u, v, int64_t{3}); };
  EXPECT_THROWS_CODE(relaxed_contrastive_loss(U, V, T, g), Shape);
}

CXR_TEST(matches_python_torch_fixture) {
  // Written by native/test/relaxed_contrastive_pyref.py with /usr/bin/python3 (python3-torch).
  std::string here = __FILE__;
  std::string path = here.substr(0, here.find_last_of('/')) + "/fixtures/relaxed_contrastive_torch.txt";
  std::ifstream f(path);
  EXPECT_TRUE(f.good());
  const int64_t B = 6, D = 5;
  Tensor U = torch::empty({B, D}, torch::kDouble), W = torch::empty({B, D}, torch::kDouble);
  for (int64_t i = 0; i < B; ++i)
    for (int64_t k = 0; k < D; ++k) {
      U[i][k] = std::sin(0.37 * i + 1.3 * k) * (1 + 0.1 * k);
      W[i][k] = std::cos(0.91 * i - 0.7 * k);
    }
  Tensor V = (torch::arange(B, torch::kDouble) * 0.6 - 0.5).unsqueeze(1) * U + W;
  Tensor T = torch::full({}, std::log(14.0), torch::kDouble);
  std::string line;
  std::getline(f, line);  // header
  int cases = 0;
  while (std::getline(f, line)) {
    std::istringstream head(line);
    std::string variant;
    double alpha, eps, loss, dtheta;
    head >> variant >> alpha >> eps >> loss >> dtheta;
    auto read_row = [&](Tensor& g) {
      std::string l2;
      std::getline(f, l2);
      std::istringstream is(l2);
      g = torch::empty({B, D}, torch::kDouble);
      for (int64_t k = 0; k < B * D; ++k) {
        double x;
        is >> x;
        g.view({-1})[k] = x;
      }
    };
    Tensor gU, gV;
    read_row(gU);
    read_row(gV);
    ContrastiveLossOptions opt;
    opt.alpha = alpha;
    opt.label_smoothing = eps;
    opt.variant = variant == "clamp-diag" ? RelaxVariant::ClampDiag : RelaxVariant::ClampNumerator;
    Result r = run(relaxed_contrastive_loss, U, V, T, opt);
    EXPECT_NEAR(r.loss, loss, 1e-12);
    EXPECT_NEAR(r.dT.item<double>(), dtheta, 1e-12);
    EXPECT_TRUE(max_diff(r.dU, gU) < 1e-12);
    EXPECT_TRUE(max_diff(r.dV, gV) < 1e-12);
    ++cases;
  }
  EXPECT_TRUE(cases == 6);
}

CXR_TEST(baseline_isa_loops_agree_with_avx2_loops) {
  auto [U, V] = make_pair(77, 24, 41, torch::kFloat);
  Tensor T = torch::full({}, std::log(60.0), torch::kFloat);
  for (RelaxVariant var : {RelaxVariant::ClampDiag, RelaxVariant::ClampNumerator}) {
    ContrastiveLossOptions opt;
    opt.alpha = 0.6;
    opt.variant = var;
    opt.label_smoothing = 0.1;
    const bool had_avx2 = cxr::detail::rc_cpu_uses_avx2();
    Result fast = run(relaxed_contrastive_loss, U, V, T, opt);
    cxr::detail::rc_cpu_force_baseline_isa(true);
    EXPECT_TRUE(!cxr::detail::rc_cpu_uses_avx2());
    Result base = run(relaxed_contrastive_loss, U, V, T, opt);
    cxr::detail::rc_cpu_force_baseline_isa(false);
    EXPECT_TRUE(cxr::detail::rc_cpu_uses_avx2() == had_avx2);
    expect_close(base, fast, 1e-6, std::string("baseline vs avx2 ") + vname(var));
    Result ref = run(relaxed_contrastive_loss_reference, U.to(torch::kDouble), V.to(torch::kDouble), T.to(torch::kDouble), opt);
    expect_close(base, ref, 2e-5, std::string("baseline vs float64 reference ") + vname(var));
  }
}

// Batches as trained (D 512, B up to 4096 on CUDA, 512 on CPU), float32 and bf16 inputs, both variants,
// relaxed and α = 1: the op on this device against the same op on the CPU and against the autograd
// composite in float64 on the same rounded inputs; α = 1 also against the CLIP loss. Tolerances are
// relative to the largest gradient entry: float32 1e-5, bf16 1e-2 (gradients are returned in the
// inputs' dtype, and bf16 keeps 8 mantissa bits).
CXR_DEVICE_TEST(training_sized_batches_match_cpu_op_and_reference) {
  DeviceScope scope(device);
  std::vector<int64_t> sizes = device == "cpu" ? std::vector<int64_t>{8, 64, 512} : std::vector<int64_t>{8, 64, 512, 4096};
  auto rel = [](const Tensor& a, const Tensor& b) {
    return max_diff(a, b) / std::max(max_abs(b.to(torch::kDouble)), 1e-30);
  };
  int cases = 0;
  for (int64_t B : sizes)
    for (auto dt : {torch::kFloat, torch::kBFloat16})
      for (RelaxVariant var : {RelaxVariant::ClampDiag, RelaxVariant::ClampNumerator})
        for (double alpha : {0.6, 1.0}) {
          auto [U32, V32] = make_pair(B, 512, 4000 + B, torch::kFloat);
          Tensor U = U32.to(dt), V = V32.to(dt);
          Tensor T = torch::full({}, std::log(100.0), torch::kFloat);
          ContrastiveLossOptions opt;
          opt.alpha = alpha;
          opt.variant = var;
          const std::string what = std::string(vname(var)) + " B=" + std::to_string(B) + (dt == torch::kFloat ? " float32" : " bf16") +
                                   " alpha=" + std::to_string(alpha) + " on " + device;
          Result f = run(relaxed_contrastive_loss, U, V, T, opt);
          Result r = run(relaxed_contrastive_loss_reference, U.to(torch::kDouble), V.to(torch::kDouble), T.to(torch::kDouble), opt);
          const double tol = dt == torch::kFloat ? 1e-5 : 1e-2;
          auto check = [&](const Result& a, const Result& b, const std::string& against) {
            const double dl = std::fabs(a.loss - b.loss) / std::max(1.0, std::fabs(b.loss));
            const double du = rel(a.dU, b.dU), dv = rel(a.dV, b.dV), dth = rel(a.dT, b.dT);
            if (!(dl <= 1e-5 && du <= tol && dv <= tol && dth <= 1e-4))
              throw cxr_test::Failure{what + " vs " + against + ": loss " + std::to_string(dl) + " dU " + std::to_string(du) +
                                      " dV " + std::to_string(dv) + " dtheta " + std::to_string(dth)};
          };
          EXPECT_TRUE(f.dU.scalar_type() == dt);
          check(f, r, "float64 autograd reference");
          if (device != "cpu") {
            std::string keep = g_device;
            g_device = "cpu";
            Result c = run(relaxed_contrastive_loss, U, V, T, opt);
            g_device = keep;
            check(f, c, "the CPU op");
          }
          if (alpha == 1.0) {
            Result clip = run([](const Tensor& u, const Tensor& v, const Tensor& t, const ContrastiveLossOptions&) {
              return clip_loss_reference(u, v, t);
            }, U.to(torch::kDouble), V.to(torch::kDouble), T.to(torch::kDouble), opt);
            check(f, clip, "the CLIP loss");
          }
          ++cases;
        }
  std::printf("  %d cases on %s (largest batch %lld)\n", cases, device.c_str(), static_cast<long long>(sizes.back()));
  EXPECT_TRUE(cases == static_cast<int>(sizes.size()) * 8);
}

// ---------------------------------------------------------------------------------------------------
// The adaptive threshold (alpha_quantile) and the margin form; the per-step statistics.

namespace {
// The new forms' option sets, each engaging on make_pair inputs.
std::vector<std::pair<std::string, ContrastiveLossOptions>> new_forms() {
  std::vector<std::pair<std::string, ContrastiveLossOptions>> v;
  for (double m : {0.05, 0.3}) {
    ContrastiveLossOptions o;
    o.variant = RelaxVariant::Margin;
    o.margin = m;
    v.emplace_back("margin m=" + std::to_string(m), o);
  }
  for (RelaxVariant var : {RelaxVariant::ClampDiag, RelaxVariant::ClampNumerator})
    for (double q : {0.3, 0.7})
      for (double run : {std::nan(""), 0.4}) {
        ContrastiveLossOptions o;
        o.variant = var;
        o.alpha_quantile = q;
        o.alpha_running = run;
        o.alpha_momentum = 0.9;
        v.emplace_back(std::string(vname(var)) + " q=" + std::to_string(q) + " running=" + std::to_string(run), o);
      }
  return v;
}
}  // namespace

CXR_DEVICE_TEST(new_forms_match_float64_reference) {
  DeviceScope scope(device);
  int engaged = 0, cases = 0;
  for (auto& [name, opt0] : new_forms())
    for (int64_t B : {2, 7, 128})
      for (int64_t D : {3, 16, 64})
        for (double eps : {0.0, 0.1}) {
          auto [U, V] = make_pair(B, D, 2000 + B * 7 + D);
          Tensor T = torch::full({}, std::log(20.0), torch::kDouble);
          ContrastiveLossOptions opt = opt0;
          opt.label_smoothing = eps;
          ContrastiveLossStats st;
          opt.stats = &st;
          Result f = run(relaxed_contrastive_loss, U, V, T, opt);
          opt.stats = nullptr;
          Result r = run(relaxed_contrastive_loss_reference, U, V, T, opt);
          expect_close(f, r, 1e-11, name + " B=" + std::to_string(B) + " D=" + std::to_string(D));
          engaged += st.engaged > 0 ? 1 : 0;
          ++cases;
        }
  EXPECT_TRUE(cases == 10 * 18);
  // Not a vacuous comparison: most cases have clamped positives.
  EXPECT_TRUE(engaged > cases / 2);
}

CXR_DEVICE_TEST(new_forms_float32_match_float64_reference) {
  DeviceScope scope(device);
  for (auto& [name, opt] : new_forms()) {
    auto [U, V] = make_pair(300, 48, 13);
    Tensor T = torch::full({}, std::log(20.0), torch::kDouble);
    Result f = run(relaxed_contrastive_loss, U.to(torch::kFloat), V.to(torch::kFloat), T.to(torch::kFloat), opt);
    Result r = run(relaxed_contrastive_loss_reference, U, V, T, opt);
    EXPECT_TRUE(f.dU.scalar_type() == torch::kFloat);
    expect_close(f, r, 1e-5, "float32 " + name);
  }
}

CXR_DEVICE_TEST(margin_finite_differences_float64) {
  DeviceScope scope(device);
  const double h = 1e-6;
  for (double eps : {0.0, 0.1})
    for (double m : {0.02, 0.15}) {
      auto [U, V] = make_pair(6, 5, 23);
      Tensor T = torch::full({1}, std::log(15.0), torch::kDouble);
      ContrastiveLossOptions opt;
      opt.variant = RelaxVariant::Margin;
      opt.margin = m;
      opt.label_smoothing = eps;
      ContrastiveLossStats st;
      opt.stats = &st;
      Result f = run(relaxed_contrastive_loss, U, V, T, opt);
      opt.stats = nullptr;
      Tensor S = plain_sims(U, V);
      Tensor thr_r = offdiag_max(S, 1) + m, thr_c = offdiag_max(S, 0) + m;
      Tensor d = S.diagonal();
      // Some positives clamped, some not, none at the kink.
      EXPECT_TRUE(st.engaged > 0 && st.engaged < 1);
      EXPECT_TRUE(((d - thr_r).abs() > 1e-3).all().item<bool>() && ((d - thr_c).abs() > 1e-3).all().item<bool>());
      // The frozen-threshold function is the op's loss at this point...
      EXPECT_NEAR(margin_loss_frozen(U, V, T, thr_r, thr_c, eps), f.loss, 1e-12);
      // ...and the op's gradient is its derivative.
      auto fd_check = [&](const Tensor& x, const Tensor& g, int which) {
        for (int64_t k = 0; k < x.numel(); ++k) {
          Tensor xp = x.clone(), xm = x.clone();
          xp.view({-1})[k] += h;
          xm.view({-1})[k] -= h;
          auto L = [&](const Tensor& xx) {
            return which == 0 ? margin_loss_frozen(xx, V, T, thr_r, thr_c, eps)
                 : which == 1 ? margin_loss_frozen(U, xx, T, thr_r, thr_c, eps)
                              : margin_loss_frozen(U, V, xx, thr_r, thr_c, eps);
          };
          const double fd = (L(xp) - L(xm)) / (2 * h);
          EXPECT_NEAR(g.flatten()[k].item<double>(), fd, 1e-7 + 1e-6 * std::fabs(fd));
        }
      };
      fd_check(U, f.dU, 0);
      fd_check(V, f.dV, 1);
      fd_check(T, f.dT, 2);
    }
}

CXR_DEVICE_TEST(quantile_form_is_the_clamp_at_its_alpha_with_finite_differences) {
  DeviceScope scope(device);
  const double h = 1e-6;
  for (RelaxVariant var : {RelaxVariant::ClampDiag, RelaxVariant::ClampNumerator})
    for (double run_alpha : {std::nan(""), 0.2}) {
      auto [U, V] = make_pair(6, 5, 29);
      Tensor T = torch::full({1}, std::log(15.0), torch::kDouble);
      ContrastiveLossOptions opt;
      opt.variant = var;
      opt.alpha_quantile = 0.5;
      opt.alpha_running = run_alpha;
      opt.alpha_momentum = 0.8;
      opt.label_smoothing = 0.05;
      ContrastiveLossStats st;
      opt.stats = &st;
      Result f = run(relaxed_contrastive_loss, U, V, T, opt);
      // α_t: the batch median (torch.quantile), blended into the running value.
      Tensor d = plain_sims(U, V).diagonal();
      const double q = at::quantile(d, 0.5).item<double>();
      EXPECT_NEAR(st.batch_quantile, q, 1e-12);
      const double a = std::isnan(run_alpha) ? q : 0.8 * run_alpha + 0.2 * q;
      EXPECT_NEAR(st.alpha, a, 1e-12);
      EXPECT_TRUE(((d - a).abs() > 1e-3).all().item<bool>());
      EXPECT_TRUE(st.engaged > 0 && st.engaged < 1);
      // Within the step α is a constant: the op is the fixed-α clamp at α_t...
      ContrastiveLossOptions fixed;
      fixed.variant = var;
      fixed.alpha = a;
      fixed.label_smoothing = 0.05;
      Result g = run(relaxed_contrastive_loss, U, V, T, fixed);
      expect_close(f, g, 1e-13, std::string("quantile vs fixed alpha ") + vname(var));
      // ...whose gradient is the finite difference of the loss at fixed α.
      auto L = [&](const Tensor& u, const Tensor& v, const Tensor& t) {
        torch::NoGradGuard ng;
        return relaxed_contrastive_loss(on_dev(u), on_dev(v), on_dev(t), fixed).item<double>();
      };
      for (int which = 0; which < 3; ++which) {
        const Tensor& x = which == 0 ? U : which == 1 ? V : T;
        const Tensor& gr = which == 0 ? f.dU : which == 1 ? f.dV : f.dT;
        for (int64_t k = 0; k < x.numel(); ++k) {
          Tensor xp = x.clone(), xm = x.clone();
          xp.view({-1})[k] += h;
          xm.view({-1})[k] -= h;
          const double lp = which == 0 ? L(xp, V, T) : which == 1 ? L(U, xp, T) : L(U, V, xp);
          const double lm = which == 0 ? L(xm, V, T) : which == 1 ? L(U, xm, T) : L(U, V, xm);
          const double fd = (lp - lm) / (2 * h);
          EXPECT_NEAR(gr.flatten()[k].item<double>(), fd, 1e-7 + 1e-6 * std::fabs(fd));
        }
      }
    }
}

CXR_DEVICE_TEST(limits_equal_clip_bit_for_bit) {
  DeviceScope scope(device);
  for (auto dt : {torch::kDouble, torch::kFloat})
    for (int64_t B : {2, 33, 128}) {
      auto [U, V] = make_pair(B, 24, 5 + B, dt);
      Tensor T = torch::full({}, std::log(40.0), dt);
      for (double eps : {0.0, 0.1}) {
        ContrastiveLossOptions clip;
        clip.label_smoothing = eps;
        Result c = run(relaxed_contrastive_loss, U, V, T, clip);
        ContrastiveLossOptions m = clip;
        m.variant = RelaxVariant::Margin;
        m.margin = INFINITY;
        ContrastiveLossOptions q = clip;
        q.alpha_quantile = 1.0;
        q.alpha_running = 0.3;  // ignored at q = 1
        ContrastiveLossOptions n = clip;
        n.variant = RelaxVariant::ClampNumerator;
        ContrastiveLossStats st;
        m.stats = &st;
        EXPECT_TRUE(bit_equal(run(relaxed_contrastive_loss, U, V, T, m), c));
        EXPECT_TRUE(st.engaged == 0);
        EXPECT_TRUE(bit_equal(run(relaxed_contrastive_loss, U, V, T, q), c));
        EXPECT_TRUE(bit_equal(run(relaxed_contrastive_loss, U, V, T, n), c));
        // And the fused CLIP is the composite CLIP loss (to rounding).
        Result r = run([](const Tensor& u, const Tensor& v, const Tensor& t, const ContrastiveLossOptions& o) {
          return clip_loss_reference(u, v, t, o.label_smoothing);
        }, U, V, T, clip);
        expect_close(c, r, dt == torch::kDouble ? 1e-12 : 1e-6, "fused CLIP vs composite");
      }
    }
}

CXR_DEVICE_TEST(statistics_equal_a_plain_computation) {
  DeviceScope scope(device);
  for (auto dt : {torch::kDouble, torch::kFloat})
    for (int64_t B : {2, 9, 200}) {
      auto [U, V] = make_pair(B, 16, 40 + B, dt);
      Tensor T = torch::full({}, std::log(30.0), dt);
      Tensor S = plain_sims(U, V);
      Tensor d = S.diagonal();
      const double tol = dt == torch::kDouble ? 1e-12 : 2e-6;
      const double neg = ((S.sum() - d.sum()) / static_cast<double>(B * (B - 1))).item<double>();
      for (int form = 0; form < 4; ++form) {
        ContrastiveLossOptions o;
        Tensor changed;
        if (form == 0) {  // CLIP
          changed = torch::zeros({B}, torch::kBool);
        } else if (form == 1) {
          o.alpha = 0.5;
          changed = d > 0.5;
        } else if (form == 2) {
          o.variant = RelaxVariant::ClampNumerator;
          o.alpha = 0.2;
          changed = d > 0.2;
        } else {
          o.variant = RelaxVariant::Margin;
          o.margin = 0.1;
          changed = (d > offdiag_max(S, 1) + 0.1).logical_or(d > offdiag_max(S, 0) + 0.1);
        }
        ContrastiveLossStats st;
        o.stats = &st;
        run(relaxed_contrastive_loss, U, V, T, o);
        // Kinks within rounding of a threshold could flip a float32 count; these inputs have none.
        EXPECT_NEAR(st.engaged, changed.to(torch::kDouble).mean().item<double>(), 1e-15);
        EXPECT_NEAR(st.pos_mean, d.mean().item<double>(), tol);
        EXPECT_NEAR(st.pos_q10, at::quantile(d, 0.1).item<double>(), tol);
        EXPECT_NEAR(st.pos_q50, at::quantile(d, 0.5).item<double>(), tol);
        EXPECT_NEAR(st.pos_q90, at::quantile(d, 0.9).item<double>(), tol);
        EXPECT_NEAR(st.neg_mean, neg, tol);
        if (form == 1) EXPECT_TRUE(st.alpha == 0.5);
        if (form == 0) EXPECT_TRUE(st.alpha == 1.0 && std::isnan(st.batch_quantile));
        if (form == 3) {
          const double thr = ((offdiag_max(S, 1) + offdiag_max(S, 0)) / 2 + 0.1).mean().item<double>();
          EXPECT_NEAR(st.alpha, thr, tol);
        }
      }
    }
}

CXR_DEVICE_TEST(margin_clamped_positives_get_exactly_zero_gradient) {
  DeviceScope scope(device);
  // V̂ = identity rows: the diagonal of dU is the gradient of s_ii. Row i's hardest negative is
  // s_{i,i+3} = sqrt(1 - c²); with a small margin the large positives are clamped in both directions.
  const int64_t B = 8;
  Tensor V = torch::eye(B, torch::kDouble);
  Tensor cs = torch::tensor({0.95, 0.2, 0.8, -0.3, 0.6, 0.1, 0.99, 0.4}, torch::kDouble);
  Tensor U = unit_rows_with_cosines(cs);
  Tensor T = torch::full({}, std::log(30.0), torch::kDouble);
  ContrastiveLossOptions opt;
  opt.variant = RelaxVariant::Margin;
  opt.margin = 0.05;
  opt.inputs_normalized = true;
  Result f = run(relaxed_contrastive_loss, U, V, T, opt);
  Tensor S = at::mm(U, V.t());
  Tensor nr = offdiag_max(S, 1), nc = offdiag_max(S, 0);
  for (int64_t i = 0; i < B; ++i) {
    const double s = cs[i].item<double>();
    const bool both = s > nr[i].item<double>() + 0.05 && s > nc[i].item<double>() + 0.05;
    const double g = f.dU[i][i].item<double>();
    if (both) EXPECT_TRUE(g == 0.0);
    else EXPECT_TRUE(g != 0.0);
  }
}

CXR_DEVICE_TEST(new_form_errors) {
  DeviceScope scope(device);
  auto [U0, V0] = make_pair(4, 3, 1);
  Tensor U = on_dev(U0), V = on_dev(V0);
  Tensor T = on_dev(torch::zeros({}, torch::kDouble));
  for (double m : {0.0, -0.1, std::nan("")}) {
    ContrastiveLossOptions o;
    o.variant = RelaxVariant::Margin;
    o.margin = m;
    EXPECT_THROWS_CODE(relaxed_contrastive_loss(U, V, T, o), Config);
  }
  for (double q : {-0.1, 1.5, std::nan("")}) {
    ContrastiveLossOptions o;
    o.alpha_quantile = q;
    EXPECT_THROWS_CODE(relaxed_contrastive_loss(U, V, T, o), Config);
  }
  ContrastiveLossOptions o;
  o.alpha_quantile = 0.5;
  o.alpha_momentum = 1.5;
  EXPECT_THROWS_CODE(relaxed_contrastive_loss(U, V, T, o), Config);
  o.alpha_momentum = 0.9;
  o.alpha_running = 1.5;
  EXPECT_THROWS_CODE(relaxed_contrastive_loss(U, V, T, o), Config);
  o.alpha_running = std::nan("");
  o.variant = RelaxVariant::Margin;
  o.margin = 0.1;
  EXPECT_THROWS_CODE(relaxed_contrastive_loss(U, V, T, o), Config);
}

CXR_TEST_MAIN()
