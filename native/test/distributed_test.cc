// C++ test of data parallelism: two ranks (two forks of this process) over Gloo on loopback, each with half
// of a batch, must take the same steps as one engine with the whole batch (global-batch loss through the
// loss op's gather hook + bucketed gradient all-reduce), with and without feature-cached accumulation,
// and with buckets small enough that several are in flight. Then rank 1 exits and rank 0's next
// collective must fail with Error(Dist) naming rank 1.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cxr/engine.h"
#include "test_models.h"
#include "test_util.h"

using namespace cxr;

using cxr_test::tiny_vit;

static int free_port() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  int port = ntohs(a.sin_port);
  close(fd);
  return port;
}

// Runs on both ranks; returns the largest weight difference to the single-engine reference.
static double run_rank(int rank, int port, int64_t micro_batch, double bucket_mb, std::vector<double>& loss_diffs) {
  auto g = at::make_generator<at::CPUGeneratorImpl>(21);
  auto imgs = torch::randn({8, 3, 32, 32}, g);
  auto ids = torch::randint(1, 100, {8, 16}, g);
  OptimizerConfig oc = cxr_test::adamw(1e-3, 0.1);  // with decay: the optimizer state must stay identical across ranks too
  StepOptions so = cxr_test::clip_step(1e-3);
  so.clip_grad_norm = 1.0;
  so.loss.kind = LossKind::Relaxed;
  so.loss.alpha = 0.8;
  so.micro_batch = micro_batch;
  EngineOptions eo = cxr_test::cpu_engine(3);
  Engine ref(tiny_vit(), eo);
  eo.seed = 100 + rank;  // different initial weights on purpose: broadcast_state must fix them
  Engine e(tiny_vit(), eo);
  ref.configure_optimizer(oc);
  e.configure_optimizer(oc);
  DistOptions d;
  d.rank = rank;
  d.world_size = 2;
  d.master_port = port;
  d.timeout_ms = 60000;
  d.bucket_mb = bucket_mb;
  e.init_distributed(d);
  e.broadcast_state();
  // Rank 0 got 3 of the 8 pairs, rank 1 5: uneven shares (a batch that lost images) gather correctly.
  auto mine_i = rank == 0 ? imgs.narrow(0, 0, 3) : imgs.narrow(0, 3, 5);
  auto mine_t = rank == 0 ? ids.narrow(0, 0, 3) : ids.narrow(0, 3, 5);
  StepOptions mso = so;
  if (micro_batch > 0) mso.micro_batch = 2;
  // Reference weights: copy rank 0's (the broadcast source) into ref so both start equal.
  {
    Engine init0(tiny_vit(), [] {
      EngineOptions o = cxr_test::cpu_engine(100);
      return o;
    }());
    ref.load_state(init0.state(), true);
  }
  for (int step = 0; step < 3; ++step) {
    auto ra = ref.train_step(imgs, ids, so);
    auto rb = e.train_step(mine_i, mine_t, mso);
    loss_diffs.push_back(std::fabs(ra.loss - rb.loss));
    EXPECT_TRUE(rb.batch == 8 && rb.world_size == 2);
    if (micro_batch == 0 && bucket_mb < 1) {
      // Small buckets, one backward pass: all but the last bucket go out before backward ends.
      EXPECT_TRUE(rb.buckets > 10 && rb.buckets_during_backward >= rb.buckets - 1);
    }
    if (step == 0 && rank == 0)
      std::printf("  %lld buckets, %lld sent during backward\n", static_cast<long long>(rb.buckets),
                  static_cast<long long>(rb.buckets_during_backward));
  }
  auto sa = ref.state(), sb = e.state();
  double maxdiff = 0;
  for (size_t i = 0; i < sa.size(); ++i) maxdiff = std::max(maxdiff, (sa[i].tensor - sb[i].tensor).abs().max().item<double>());
  if (rank == 0) {
    // Rank 1 has gone (exited after its checks); the next collective names it.
    bool named = false;
    try {
      e.dist().any(false);
    } catch (const Error& err) {
      named = err.code() == ErrorCode::Dist && std::string(err.what()).find("Rank 1 stopped answering") != std::string::npos;
      std::printf("  after rank 1 left: %s\n", err.what());
    }
    EXPECT_TRUE(named);
  }
  return maxdiff;
}

// One rank in a forked child: exit code 0 when its weights and losses match the reference.
[[noreturn]] static void rank_child(int rank, int port, int64_t micro_batch, double bucket_mb) {
  int code = 1;
  try {
    std::vector<double> ld;
    double md = run_rank(rank, port, micro_batch, bucket_mb, ld);
    double worst_loss = 0;
    for (double x : ld) worst_loss = std::max(worst_loss, x);
    if (rank == 0)
      std::printf("  micro_batch %lld, buckets of %.3g MB: max weight diff %.3g, max loss diff %.3g\n",
                  static_cast<long long>(micro_batch), bucket_mb, md, worst_loss);
    code = md < 1e-5 ? (worst_loss < 1e-5 ? 0 : 3) : 2;
  } catch (const ::cxr_test::Failure& f) {
    std::printf("  rank %d: %s\n", rank, f.msg.c_str());
  } catch (const std::exception& e) {
    std::printf("  rank %d: %s\n", rank, e.what());
  }
  std::fflush(stdout);
  _exit(code);
}

// Both ranks run in forked children, so that this process never runs autograd or OpenMP before a fork
// (libtorch 2.x refuses autograd in a child forked after the parent used it; OpenMP pools do not survive
// fork either).
static void two_ranks(int64_t micro_batch, double bucket_mb) {
  if (!dist_backend_built("gloo")) {
    std::printf("  skipped: built without Gloo headers (libgloo-dev)\n");
    return;
  }
  const int port = free_port();
  std::fflush(stdout);
  pid_t pids[2];
  for (int rank = 0; rank < 2; ++rank) {
    pids[rank] = fork();
    EXPECT_TRUE(pids[rank] >= 0);
    if (pids[rank] == 0) rank_child(rank, port, micro_batch, bucket_mb);
  }
  int status[2] = {0, 0};
  for (int rank = 0; rank < 2; ++rank) waitpid(pids[rank], &status[rank], 0);
  for (int rank = 0; rank < 2; ++rank) EXPECT_TRUE(WIFEXITED(status[rank]) && WEXITSTATUS(status[rank]) == 0);
}

CXR_TEST(two_ranks_equal_one_engine_with_the_whole_batch) { two_ranks(0, 25); }
// ~40 KB buckets: many all-reduces launched from the hooks while backward is still running.
CXR_TEST(two_ranks_many_buckets_overlapped_with_backward) { two_ranks(0, 0.04); }
CXR_TEST(two_ranks_with_feature_cached_accumulation) { two_ranks(2, 0.04); }

CXR_TEST(bad_options_are_config_errors) {
  DistOptions d;
  d.rank = 2;
  d.world_size = 2;
  EXPECT_THROWS_CODE(Distributed(d, torch::Device(torch::kCPU)), Config);
  d.rank = 0;
  d.backend = "mpi";
  EXPECT_THROWS_CODE(Distributed(d, torch::Device(torch::kCPU)), Config);
  d.backend = "nccl";
  EXPECT_THROWS_CODE(Distributed(d, torch::Device(torch::kCPU)), Config);
}

int main() {
  at::set_num_threads(1);  // no OpenMP pool in the parent: forked children would hang on it
  return ::cxr_test::run_all();
}
