// Minimal test harness for the C++ core tests (no external framework needed on a GPU machine).
//
// CXR_TEST(name) registers a test that runs once. CXR_DEVICE_TEST(name) registers a test taking the
// device spec ("cpu", "cuda:0") and runs it on every device available: CPU always, cuda:0 when
// torch::cuda::is_available(); CXR_TEST_DEVICES=cpu or =cuda:0 restricts the list. Each result line
// names its device, and the summary says which devices ran and whether CUDA was there.
// On CUDA the tests run with TF32 off (cuBLAS and cuDNN): they check exactness, not speed.
#pragma once
#include <ATen/Context.h>
#include <torch/cuda.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

namespace cxr_test {
struct Case { const char* name; std::function<void()> fn; };
struct DeviceCase { const char* name; std::function<void(const std::string&)> fn; };
inline std::vector<Case>& registry() { static std::vector<Case> r; return r; }
inline std::vector<DeviceCase>& device_registry() { static std::vector<DeviceCase> r; return r; }
struct Register { Register(const char* n, std::function<void()> f) { registry().push_back({n, std::move(f)}); } };
struct RegisterDevice {
  RegisterDevice(const char* n, std::function<void(const std::string&)> f) { device_registry().push_back({n, std::move(f)}); }
};
struct Failure { std::string msg; };
// Thrown by a device test that does not apply to a device (e.g. bf16 autocast on CPU): reported as SKIP.
struct Skip { std::string why; };

inline bool cuda_present() { return torch::cuda::is_available(); }

// The devices the device tests run on.
inline std::vector<std::string> test_devices() {
  std::vector<std::string> all{"cpu"};
  if (cuda_present()) all.push_back("cuda:0");
  const char* only = std::getenv("CXR_TEST_DEVICES");
  if (!only || !*only) return all;
  std::vector<std::string> keep;
  for (auto& d : all)
    if (("," + std::string(only) + ",").find("," + d + ",") != std::string::npos) keep.push_back(d);
  return keep;
}

inline int run_all() {
  int failed = 0, passed = 0, skipped = 0;
  for (auto& c : registry()) {
    try { c.fn(); ++passed; std::printf("PASS %s\n", c.name); }
    catch (const Skip& s) { ++skipped; std::printf("SKIP %s: %s\n", c.name, s.why.c_str()); }
    catch (const Failure& f) { ++failed; std::printf("FAIL %s: %s\n", c.name, f.msg.c_str()); }
    catch (const std::exception& e) { ++failed; std::printf("FAIL %s: exception: %s\n", c.name, e.what()); }
    std::fflush(stdout);
  }
  const auto devices = test_devices();
  for (const auto& dev : devices) {
    if (dev != "cpu") {
      at::globalContext().setAllowTF32CuBLAS(false);
      at::globalContext().setAllowTF32CuDNN(false);
    }
    for (auto& c : device_registry()) {
      try { c.fn(dev); ++passed; std::printf("PASS %s [%s]\n", c.name, dev.c_str()); }
      catch (const Skip& s) { ++skipped; std::printf("SKIP %s [%s]: %s\n", c.name, dev.c_str(), s.why.c_str()); }
      catch (const Failure& f) { ++failed; std::printf("FAIL %s [%s]: %s\n", c.name, dev.c_str(), f.msg.c_str()); }
      catch (const std::exception& e) { ++failed; std::printf("FAIL %s [%s]: exception: %s\n", c.name, dev.c_str(), e.what()); }
      std::fflush(stdout);
    }
  }
  std::string ran;
  for (const auto& d : devices) ran += (ran.empty() ? "" : ", ") + d;
  std::printf("devices: %s (CUDA %s)\n", ran.c_str(),
              cuda_present() ? (std::to_string(torch::cuda::device_count()) + " device(s)").c_str() : "not available");
  std::printf("%d passed, %d skipped, %d failed\n", passed, skipped, failed);
  return failed == 0 ? 0 : 1;
}
}  // namespace cxr_test

#define CXR_TEST(name) \
  static void name(); static ::cxr_test::Register name##_reg(#name, name); static void name()
#define CXR_DEVICE_TEST(name)                                                      \
  static void name(const std::string& device);                                     \
  static ::cxr_test::RegisterDevice name##_reg(#name, name);                        \
  static void name(const std::string& device)
#define EXPECT_TRUE(c) do { if (!(c)) throw ::cxr_test::Failure{std::string(__FILE__) + ":" + std::to_string(__LINE__) + ": " #c}; } while (0)
#define EXPECT_NEAR(a, b, tol) do { double _a = (a), _b = (b); if (!(std::fabs(_a - _b) <= (tol))) \
  throw ::cxr_test::Failure{std::string(__FILE__) + ":" + std::to_string(__LINE__) + ": " #a "=" + std::to_string(_a) + " vs " #b "=" + std::to_string(_b)}; } while (0)
#define EXPECT_THROWS_CODE(expr, codeval) do { bool _t = false; try { expr; } catch (const ::cxr::Error& e) { _t = e.code() == ::cxr::ErrorCode::codeval; } \
  if (!_t) throw ::cxr_test::Failure{std::string(__FILE__) + ":" + std::to_string(__LINE__) + ": expected cxr::Error " #codeval " from " #expr}; } while (0)
#define CXR_SKIP(why) throw ::cxr_test::Skip{why}
#define CXR_TEST_MAIN() int main() { return ::cxr_test::run_all(); }
