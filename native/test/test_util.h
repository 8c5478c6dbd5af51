// Minimal test harness for the C++ core tests (no external framework needed on a GPU machine).
#pragma once
#include <cmath>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

namespace cxr_test {
struct Case { const char* name; std::function<void()> fn; };
inline std::vector<Case>& registry() { static std::vector<Case> r; return r; }
struct Register { Register(const char* n, std::function<void()> f) { registry().push_back({n, std::move(f)}); } };
struct Failure { std::string msg; };
inline int run_all() {
  int failed = 0, passed = 0;
  for (auto& c : registry()) {
    try { c.fn(); ++passed; std::printf("PASS %s\n", c.name); }
    catch (const Failure& f) { ++failed; std::printf("FAIL %s: %s\n", c.name, f.msg.c_str()); }
    catch (const std::exception& e) { ++failed; std::printf("FAIL %s: exception: %s\n", c.name, e.what()); }
  }
  std::printf("%d passed, %d failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}
}  // namespace cxr_test

#define CXR_TEST(name) \
  static void name(); static ::cxr_test::Register name##_reg(#name, name); static void name()
#define EXPECT_TRUE(c) do { if (!(c)) throw ::cxr_test::Failure{std::string(__FILE__) + ":" + std::to_string(__LINE__) + ": " #c}; } while (0)
#define EXPECT_NEAR(a, b, tol) do { double _a = (a), _b = (b); if (!(std::fabs(_a - _b) <= (tol))) \
  throw ::cxr_test::Failure{std::string(__FILE__) + ":" + std::to_string(__LINE__) + ": " #a "=" + std::to_string(_a) + " vs " #b "=" + std::to_string(_b)}; } while (0)
#define EXPECT_THROWS_CODE(expr, codeval) do { bool _t = false; try { expr; } catch (const ::cxr::Error& e) { _t = e.code() == ::cxr::ErrorCode::codeval; } \
  if (!_t) throw ::cxr_test::Failure{std::string(__FILE__) + ":" + std::to_string(__LINE__) + ": expected cxr::Error " #codeval " from " #expr}; } while (0)
#define CXR_TEST_MAIN() int main() { return ::cxr_test::run_all(); }
