// Shared pieces of the core: the fixed blocking of hidden neurons, the parallel loop, log-sum-exp.
#pragma once

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstddef>
#include <exception>
#include <limits>
#include <mutex>
#include <new>
#include <stdexcept>
#include <utility>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace tripartite {

// Hidden neurons are split into blocks of this many. The width is fixed, never derived from the
// number of threads: every reduction over hidden neurons adds the same per-block partial sums in
// the same order, so results are bitwise independent of the thread count.
inline constexpr std::size_t kBlock = 2048;

inline std::size_t n_blocks(std::size_t m) { return (m + kBlock - 1) / kBlock; }
inline std::size_t block_begin(std::size_t b) { return b * kBlock; }
inline std::size_t block_end(std::size_t b, std::size_t m) { return std::min(m, (b + 1) * kBlock); }

inline constexpr double kNegInf = -std::numeric_limits<double>::infinity();

// Functions that the GPU's kernels (cpp/cuda/attention.cu) call too.
#ifdef __CUDACC__
#define TRIPARTITE_HOST_DEVICE __host__ __device__
#else
#define TRIPARTITE_HOST_DEVICE
#endif

// Allocator of 64-byte aligned storage (a cache line): the kernels' 32-byte loads from scratch
// rows and panels then never straddle two lines (malloc's 16-byte alignment splits every other one).
template <class T>
struct AlignedAllocator {
  using value_type = T;
  static constexpr std::size_t alignment = 64;
  AlignedAllocator() = default;
  template <class U>
  AlignedAllocator(const AlignedAllocator<U>&) {}
  T* allocate(std::size_t n) { return static_cast<T*>(::operator new(n * sizeof(T), std::align_val_t(alignment))); }
  void deallocate(T* p, std::size_t) { ::operator delete(p, std::align_val_t(alignment)); }
  template <class U>
  bool operator==(const AlignedAllocator<U>&) const { return true; }
  template <class U>
  bool operator!=(const AlignedAllocator<U>&) const { return false; }
};
template <class T>
using aligned_vector = std::vector<T, AlignedAllocator<T>>;

// The same storage left uninitialised on resize (default-initialised, not zeroed): for scratch that
// every kernel writes before it reads, so that a call does not first clear megabytes serially.
template <class T>
struct UninitAllocator : AlignedAllocator<T> {
  using value_type = T;
  template <class U>
  struct rebind {
    using other = UninitAllocator<U>;
  };
  UninitAllocator() = default;
  template <class U>
  UninitAllocator(const UninitAllocator<U>&) {}
  template <class U>
  void construct(U* p) noexcept {
    ::new (static_cast<void*>(p)) U;
  }
  template <class U, class... Args>
  void construct(U* p, Args&&... args) {
    ::new (static_cast<void*>(p)) U(std::forward<Args>(args)...);
  }
};
template <class T>
using scratch_vector = std::vector<T, UninitAllocator<T>>;

inline int max_threads() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

inline bool has_openmp() {
#ifdef _OPENMP
  return true;
#else
  return false;
#endif
}

// Index of the calling thread in the current team (0 outside a parallel region): selects the
// per-thread scratch of a kernel.
inline std::size_t thread_slot() {
#ifdef _OPENMP
  return static_cast<std::size_t>(omp_in_parallel() ? omp_get_thread_num() : 0);
#else
  return 0;
#endif
}

// Threads for a call: `requested` (0 = OpenMP's default), but one thread for work too small to
// repay starting a team. `work` is a rough count of floating-point operations.
inline constexpr double kSingleThreadWork = 2.0e5;
inline int effective_threads(int requested, double work) {
  int t = requested > 0 ? requested : max_threads();
  if (work < kSingleThreadWork) t = 1;
  return std::max(1, t);
}

// Runs body(i) for i in [0, n) on `threads` threads: a static schedule, or with `dynamic` one task
// at a time to whichever thread is free (for a few long tasks of unequal cost). Which thread runs a
// task never changes what the task computes. An exception thrown by any task is caught inside the
// parallel region, the remaining tasks are skipped, and the first exception is rethrown after the
// region: nothing escapes an OpenMP region.
template <class F>
void parallel_for(std::size_t n, int threads, F&& body, bool dynamic = false) {
  std::exception_ptr error;
  std::atomic<bool> failed{false};
  std::mutex lock;
  const std::ptrdiff_t count = static_cast<std::ptrdiff_t>(n);
  auto run = [&](std::ptrdiff_t i) {
    if (failed.load(std::memory_order_relaxed)) return;
    try {
      body(static_cast<std::size_t>(i));
    } catch (...) {
      std::lock_guard<std::mutex> guard(lock);
      if (!error) error = std::current_exception();
      failed.store(true, std::memory_order_relaxed);
    }
  };
  if (dynamic) {
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads) if (threads > 1 && count > 1)
    for (std::ptrdiff_t i = 0; i < count; ++i) run(i);
  } else {
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1 && count > 1)
    for (std::ptrdiff_t i = 0; i < count; ++i) run(i);
  }
  if (error) std::rethrow_exception(error);
}

// Log of what float underflow can take from a sum over n neurons whose products are taken in T
// relative to their maxima: a factor below min(T) (exp2 gives 0 there) times the other factor,
// or a product below min(T) (subnormal), each at most 2 min(T) times the weight e^log_weight the
// terms carry, so at most 4 min(T) n e^log_weight. Used by the steady state (per block) and the
// network (per read), each in its own units.
template <class T>
TRIPARTITE_HOST_DEVICE double underflow_log_bound(std::size_t n, double log_weight) {
  return std::log(4.0 * static_cast<double>(std::numeric_limits<T>::min()) * static_cast<double>(n)) + log_weight;
}

// log(exp(x) + exp(y)), exact for -inf arguments.
TRIPARTITE_HOST_DEVICE inline double log_add_exp(double x, double y) {
  if (x == kNegInf) return y;
  if (y == kNegInf) return x;
  const double hi = std::max(x, y);
  return hi + std::log1p(std::exp(-std::fabs(x - y)));
}

// One step of a fold of partial sums, each at its own log-scale, taken in a fixed order (the
// steady state's block partials, on the CPU and the GPU): n values `partial` at log-scale `scale`
// join the running sums acc at log-scale ref,
//   acc <- acc exp(ref - ref') + partial exp(scale - ref'),  ref' = max(ref, scale),
// with one exponential, of the smaller log-scale minus the larger (no factor exceeds 1). The first
// partial (ref = -inf) is copied: acc is not read then, so it need not be initialised.
TRIPARTITE_HOST_DEVICE inline void fold_scaled(double& ref, double scale, double* acc, const double* partial,
                                               std::size_t n) {
  if (ref == kNegInf) {
    for (std::size_t d = 0; d < n; ++d) acc[d] = partial[d];
    ref = scale;
  } else if (scale > ref) {
    const double f = std::exp(ref - scale);
    for (std::size_t d = 0; d < n; ++d) acc[d] = acc[d] * f + partial[d];
    ref = scale;
  } else {
    const double f = std::exp(scale - ref);
    for (std::size_t d = 0; d < n; ++d) acc[d] += partial[d] * f;
  }
}

// log|x|, -inf for 0.
inline double log_abs(double x) { return x == 0.0 ? kNegInf : std::log(std::fabs(x)); }

// x y e^{log_factor} as one exponential of log|x| + log|y| + log_factor (0 if x or y is 0): the
// network's coefficients and calcium terms, which its scales keep at most about 1 while their
// factors need not be. A window of some 740 time constants underflows e^{-t/tau} to 0 (or a
// subnormal) while a swing of the log-rates sends e^{log_factor} past double's range, and
// M * exp(factor) was 0 * inf = NaN (or inf) that spoiled every later window.
inline double scaled_product(double x, double y, double log_factor) {
  if (x == 0.0 || y == 0.0) return 0.0;
  const double magnitude = std::exp(std::log(std::fabs(x)) + std::log(std::fabs(y)) + log_factor);
  return (x < 0) != (y < 0) ? -magnitude : magnitude;
}

// x in T, as IEEE rounding gives it: beyond T's largest finite value, +-inf. (A plain cast of a
// double outside float's range is undefined behaviour in C++17, though GCC and Clang give inf.)
template <class T>
inline T narrow_to(double x) {
  if constexpr (sizeof(T) < sizeof(double)) {
    constexpr double top = static_cast<double>(std::numeric_limits<T>::max());
    if (x > top || x < -top) {  // beyond top, IEEE rounding gives inf except within half an ulp of it
      const double half_ulp = std::ldexp(1.0, std::numeric_limits<T>::max_exponent - std::numeric_limits<T>::digits - 1);
      if (std::fabs(x) >= top + half_ulp) return x > 0 ? std::numeric_limits<T>::infinity() : -std::numeric_limits<T>::infinity();
      return x > 0 ? std::numeric_limits<T>::max() : -std::numeric_limits<T>::max();
    }
  }
  return static_cast<T>(x);
}

}  // namespace tripartite
