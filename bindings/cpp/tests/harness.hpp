// A small test harness: TEST(name) { ... } with CHECK/REQUIRE, run by run_all(), which
// prints one line per test and a last line "N passed, M failed".
#ifndef WPS_CPP_TEST_HARNESS_HPP
#define WPS_CPP_TEST_HARNESS_HPP

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

namespace harness {

struct Case {
  const char* name;
  void (*fn)();
};

inline std::vector<Case>& cases() {
  static std::vector<Case> all;
  return all;
}

inline int& failures_in_case() {
  static int n = 0;
  return n;
}

struct Register {
  Register(const char* name, void (*fn)()) { cases().push_back({name, fn}); }
};

inline void fail(const char* file, int line, const std::string& what) {
  std::fprintf(stderr, "  %s:%d: check failed: %s\n", file, line, what.c_str());
  failures_in_case()++;
}

/// Required environment variable (the test script provides it).
inline std::string env(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') {
    std::fprintf(stderr, "missing environment variable %s\n", name);
    std::exit(2);
  }
  return v;
}

/// A latch with a deadline, for waiting on events delivered on other threads.
class Signal {
 public:
  void notify(int n = 1) {
    std::lock_guard<std::mutex> lock(mu_);
    count_ += n;
    cv_.notify_all();
  }
  bool wait_for_count(int target, std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return count_ >= target; });
  }
  int count() {
    std::lock_guard<std::mutex> lock(mu_);
    return count_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int count_ = 0;
};

/// Signals when destroyed: captured (through a shared_ptr) by handlers to observe when the
/// library frees their state.
class Probe {
 public:
  explicit Probe(Signal& freed) : freed_(freed) {}
  Probe(const Probe&) = delete;
  Probe& operator=(const Probe&) = delete;
  ~Probe() { freed_.notify(); }

 private:
  Signal& freed_;
};

inline int run_all(int argc, char** argv) {
  int passed = 0, failed = 0;
  for (const Case& c : cases()) {
    if (argc > 1 && std::string(argv[1]) != c.name) continue;
    failures_in_case() = 0;
    auto start = std::chrono::steady_clock::now();
    c.fn();
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start).count();
    if (failures_in_case() == 0) {
      passed++;
      std::printf("ok   %s (%lld ms)\n", c.name, static_cast<long long>(ms));
    } else {
      failed++;
      std::printf("FAIL %s (%lld ms)\n", c.name, static_cast<long long>(ms));
    }
    std::fflush(stdout);
  }
  std::printf("%d passed, %d failed\n", passed, failed);
  return failed == 0 && passed > 0 ? 0 : 1;
}

}  // namespace harness

#define TEST(name)                                          \
  static void test_##name();                                \
  static harness::Register register_##name(#name, test_##name); \
  static void test_##name()

#define CHECK(cond)                                              \
  do {                                                           \
    if (!(cond)) harness::fail(__FILE__, __LINE__, #cond);       \
  } while (0)

#define REQUIRE(cond)                                            \
  do {                                                           \
    if (!(cond)) {                                               \
      harness::fail(__FILE__, __LINE__, #cond);                  \
      return;                                                    \
    }                                                            \
  } while (0)

#endif  // WPS_CPP_TEST_HARNESS_HPP
