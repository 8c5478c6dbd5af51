// The CPU block cache (cxr/cpu_cache.h): reuse, bounds, pass-through, thread safety, and a train step that is
// bit-for-bit the same with the cache on and off.
#include <c10/core/CPUAllocator.h>
#include <torch/torch.h>

#include <atomic>
#include <random>
#include <thread>
#include <vector>

#include "cxr/cpu_cache.h"
#include "cxr/engine.h"
#include "test_models.h"
#include "test_util.h"

namespace {

constexpr int64_t kMiB = 1024 * 1024;

// Runs with the cache on and a known limit; restores the limit afterwards.
struct Limit {
  std::size_t old;
  explicit Limit(std::size_t bytes) : old(cxr::cpu_cache_stats().limit_bytes) {
    cxr::install_cpu_cache();
    cxr::cpu_cache_set_limit(bytes);
  }
  ~Limit() { cxr::cpu_cache_set_limit(old); }
};

}  // namespace

CXR_TEST(a_freed_block_is_handed_out_again) {
  Limit lim(64 * kMiB);
  EXPECT_TRUE(cxr::cpu_cache_stats().installed);
  void* first = nullptr;
  {
    auto t = torch::empty({kMiB / 4}, torch::kFloat32);  // 1 MiB
    first = t.data_ptr();
    EXPECT_TRUE(reinterpret_cast<std::uintptr_t>(first) % 64 == 0);
  }
  const auto before = cxr::cpu_cache_stats();
  EXPECT_TRUE(before.cached_bytes >= static_cast<std::size_t>(kMiB));
  auto t = torch::full({kMiB / 4}, 3.5f);
  EXPECT_TRUE(t.data_ptr() == first);
  const auto after = cxr::cpu_cache_stats();
  EXPECT_TRUE(after.hits == before.hits + 1);
  EXPECT_TRUE(after.cached_bytes + kMiB == before.cached_bytes);
  EXPECT_NEAR(t.sum().item<double>(), 3.5 * (kMiB / 4), 0.0);
}

CXR_TEST(small_blocks_pass_through) {
  Limit lim(64 * kMiB);
  const auto before = cxr::cpu_cache_stats();
  for (int i = 0; i < 100; ++i) {
    auto t = torch::ones({1000});  // 4 KB: below the cached size
    EXPECT_NEAR(t.sum().item<double>(), 1000.0, 0.0);
  }
  const auto after = cxr::cpu_cache_stats();
  EXPECT_TRUE(after.hits == before.hits && after.misses == before.misses);
  EXPECT_TRUE(after.cached_bytes == before.cached_bytes);
}

CXR_TEST(the_limit_bounds_what_is_kept) {
  cxr::install_cpu_cache();
  cxr::cpu_cache_release();
  Limit lim(2 * kMiB + 8192);
  const auto before = cxr::cpu_cache_stats();
  {
    std::vector<torch::Tensor> ts;
    for (int i = 0; i < 3; ++i) ts.push_back(torch::empty({kMiB / 4}));
  }  // three 1 MiB blocks freed: two fit
  const auto after = cxr::cpu_cache_stats();
  EXPECT_TRUE(after.cached_bytes == static_cast<std::size_t>(2 * kMiB));
  EXPECT_TRUE(after.released == before.released + 1);
  cxr::cpu_cache_set_limit(0);  // off: releases everything and keeps nothing
  EXPECT_TRUE(cxr::cpu_cache_stats().cached_bytes == 0);
  { auto t = torch::empty({kMiB / 4}); }
  EXPECT_TRUE(cxr::cpu_cache_stats().cached_bytes == 0);
}

CXR_TEST(raw_allocate_and_raw_deleter_agree) {
  Limit lim(64 * kMiB);
  c10::Allocator* a = c10::GetCPUAllocator();
  for (std::size_t n : {std::size_t(0), std::size_t(100), std::size_t(3 * kMiB + 5)}) {
    void* p = a->raw_allocate(n);
    if (n > 0) static_cast<char*>(p)[n - 1] = 7;
    a->raw_deallocate(p);
  }
  EXPECT_TRUE(a->raw_deleter() != nullptr);
}

CXR_TEST(threads_allocate_and_free_concurrently) {
  Limit lim(16 * kMiB);
  const auto before = cxr::cpu_cache_stats();
  std::atomic<int> bad{0};
  std::vector<std::thread> ts;
  for (int w = 0; w < 4; ++w) {
    ts.emplace_back([w, &bad] {
      std::mt19937 rng(w);
      std::vector<torch::Tensor> live;
      for (int i = 0; i < 400; ++i) {
        const int64_t n = 16384 + static_cast<int64_t>(rng() % (kMiB / 2));
        auto t = torch::full({n}, static_cast<float>(w));
        if (t[n - 1].item<float>() != static_cast<float>(w)) ++bad;
        live.push_back(t);
        if (live.size() > 6) live.erase(live.begin() + static_cast<long>(rng() % live.size()));
      }
    });
  }
  for (auto& t : ts) t.join();
  const auto after = cxr::cpu_cache_stats();
  EXPECT_TRUE(bad.load() == 0);
  EXPECT_TRUE(after.in_use_bytes == before.in_use_bytes);  // every block came back
  EXPECT_TRUE(after.cached_bytes <= 16 * kMiB);
}

CXR_TEST(train_steps_are_identical_with_and_without_the_cache) {
  auto run = [](std::size_t limit) {
    Limit lim(limit);
    cxr::cpu_cache_release();
    cxr::Engine e(cxr_test::tiny_vit(), cxr_test::cpu_engine(3));
    e.configure_optimizer(cxr_test::adamw(1e-3, 0.1));
    const cxr::StepOptions so = cxr_test::clip_step(1e-3);
    torch::manual_seed(0);
    auto images = torch::randn({4, 3, 32, 32});
    auto ids = torch::randint(1, 100, {4, 16}, torch::kLong);
    std::vector<double> losses;
    for (int i = 0; i < 3; ++i) losses.push_back(e.train_step(images, ids, so).loss);
    return std::make_pair(losses, e.encode_images(images, true));
  };
  const auto on = run(256 * kMiB);
  const auto hits = cxr::cpu_cache_stats().hits;
  const auto off = run(0);
  EXPECT_TRUE(hits > 0);
  for (std::size_t i = 0; i < on.first.size(); ++i) EXPECT_TRUE(on.first[i] == off.first[i]);
  EXPECT_TRUE(torch::equal(on.second, off.second));
}

CXR_TEST_MAIN()
