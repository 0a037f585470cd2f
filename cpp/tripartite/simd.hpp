// Small SIMD helpers on GCC/Clang vector extensions (32-byte vectors: AVX2 when the compiler may
// use it, pairs of SSE registers otherwise). Plain loops stay the readable reference; these are
// used only in the kernels' innermost tiles.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <iterator>

#ifdef __AVX__
#include <immintrin.h>
#endif

// Fully unrolls the loop that follows, a loop over a register tile's rows (a compile-time count).
// Unrolled before the compiler lays out the tile's accumulator array, the array lives in registers
// from the tile's first instruction to its last. Without it GCC 12 kept the array in memory wherever
// a tile was compiled out of line (in the module: the rate and write tiles), so every tile call
// began with a call to memset to clear it, and stored and reloaded it around its inner loop. The
// steady state at the paper's scale took 0.96 of the time with it (float32, 2 threads, 40 pairs),
// with bitwise the same results.
#if defined(__clang__)
#define TRIPARTITE_UNROLL _Pragma("unroll")
#elif defined(__GNUC__)
#define TRIPARTITE_UNROLL _Pragma("GCC unroll 8")
#else
#define TRIPARTITE_UNROLL
#endif

namespace tripartite::simd {

template <class T>
struct Vec {
  static constexpr std::size_t width = 32 / sizeof(T);
  typedef T type __attribute__((vector_size(32)));
};
template <class T>
using V = typename Vec<T>::type;
template <class T>
inline constexpr std::size_t W = Vec<T>::width;

template <class T>
inline V<T> load(const T* p) {
  V<T> v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}
template <class T>
inline void store(T* p, V<T> v) {
  std::memcpy(p, &v, sizeof(v));
}
template <class T>
inline V<T> splat(T x) {  // a broadcast (vbroadcastss/sd), not an add to zero
  if constexpr (W<T> == 8)
    return V<T>{x, x, x, x, x, x, x, x};
  else
    return V<T>{x, x, x, x};
}
// Lane-wise maximum (one vmaxps/vmaxpd under AVX; neither argument is ever NaN here).
template <class T>
inline V<T> max(V<T> a, V<T> b) {
#ifdef __AVX__
  if constexpr (sizeof(T) == 4)
    return (V<T>)_mm256_max_ps((__m256)a, (__m256)b);
  else
    return (V<T>)_mm256_max_pd((__m256d)a, (__m256d)b);
#else
  return a > b ? a : b;
#endif
}

// In-register transpose of a square of W<T> vectors: afterwards r[j][l] is the old r[l][j].
// Shuffles only (unpack, then 2-lane and 4-lane blocks, as an AVX 8 x 8 transpose is written).
template <class T>
inline void transpose(V<T>* r) {
  if constexpr (W<T> == 8) {
    V<T> t[8], s[8];
    for (std::size_t k = 0; k < 8; k += 2) {
      t[k] = __builtin_shufflevector(r[k], r[k + 1], 0, 8, 1, 9, 4, 12, 5, 13);
      t[k + 1] = __builtin_shufflevector(r[k], r[k + 1], 2, 10, 3, 11, 6, 14, 7, 15);
    }
    for (std::size_t k = 0; k < 8; k += 4)
      for (std::size_t i = 0; i < 2; ++i) {
        s[k + 2 * i] = __builtin_shufflevector(t[k + i], t[k + 2 + i], 0, 1, 8, 9, 4, 5, 12, 13);
        s[k + 2 * i + 1] = __builtin_shufflevector(t[k + i], t[k + 2 + i], 2, 3, 10, 11, 6, 7, 14, 15);
      }
    for (std::size_t k = 0; k < 4; ++k) {
      r[k] = __builtin_shufflevector(s[k], s[k + 4], 0, 1, 2, 3, 8, 9, 10, 11);
      r[k + 4] = __builtin_shufflevector(s[k], s[k + 4], 4, 5, 6, 7, 12, 13, 14, 15);
    }
  } else {
    V<T> t[4];
    t[0] = __builtin_shufflevector(r[0], r[1], 0, 4, 2, 6);
    t[1] = __builtin_shufflevector(r[0], r[1], 1, 5, 3, 7);
    t[2] = __builtin_shufflevector(r[2], r[3], 0, 4, 2, 6);
    t[3] = __builtin_shufflevector(r[2], r[3], 1, 5, 3, 7);
    r[0] = __builtin_shufflevector(t[0], t[2], 0, 1, 4, 5);
    r[1] = __builtin_shufflevector(t[1], t[3], 0, 1, 4, 5);
    r[2] = __builtin_shufflevector(t[0], t[2], 2, 3, 6, 7);
    r[3] = __builtin_shufflevector(t[1], t[3], 2, 3, 6, 7);
  }
}

template <class T>
inline double hsum(V<T> v) {  // fixed order: lane 0, 1, 2, ...
  double s = 0;
  for (std::size_t i = 0; i < W<T>; ++i) s += static_cast<double>(v[i]);
  return s;
}

// The constants of exp2 per lane type: the rounding constant 1.5 2^(mantissa bits) (its spacing is
// 1, so adding it rounds to an integer), the lowest input (where the exponent field becomes 0),
// the exponent bias and field position, and the polynomial for 2^r on |r| <= 1/2 from its
// highest coefficient down, the constant term (exactly 1) not listed.
//   float: degree 5, minimax in relative error (9e-8; 1.7e-7 with float rounding).
//   double: degree 11, a Chebyshev fit of (2^r - 1) / r (8.5e-18, far below double rounding; the
//   result is within about 2 ulp of exp2). It replaced glibc's scalar exp2, which took a third of
//   a float64 steady-state call.
template <class T>
struct Exp2Constants;
template <>
struct Exp2Constants<float> {
  using Int = std::int32_t;
  static constexpr float magic = 12582912.0f, lowest = -127.0f;
  static constexpr Int magic_bits = 0x4B400000, bias = 127, shift = 23;
  static constexpr float poly[] = {1.3264727e-3f, 9.6715130e-3f, 5.5507336e-2f, 2.4022242e-1f, 6.9314700e-1f};
};
template <>
struct Exp2Constants<double> {
  using Int = std::int64_t;
  static constexpr double magic = 6755399441055744.0, lowest = -1023.0;
  static constexpr Int magic_bits = 0x4338000000000000LL, bias = 1023, shift = 52;
  static constexpr double poly[] = {4.4549605981865186e-10, 7.072585949269223e-09, 1.0178062445845774e-07,
                                    1.321544258792169e-06,  1.525273382983612e-05,  0.0001540353044173605,
                                    0.0013333558146416936,  0.009618129107606888,   0.0555041086648216,
                                    0.24022650695910097,    0.6931471805599453};
};

// 2^y for N vectors of T lanes at once, y <= the largest exponent: y = n + r with n = round(y) (the
// rounding done by adding the magic constant, so r = y - n is exact and |r| <= 1/2), a polynomial
// for 2^r with its constant term exactly 1 (2^0 = 1 exactly), and 2^n built in the exponent bits.
// Base 2 needs no range reduction by ln 2: two multiply-adds fewer than e^x, and only the
// polynomial and the final product use the FMA units. y is first raised to the lowest input (-127
// in float): from there down the exponent field is 0, so inputs below it + 1/2 give exactly 0 (like
// exp2f's underflow, without most denormals) with no mask. The N exponentials go step by step side
// by side: one alone is a chain of about 35 cycles of latency, which the out-of-order window does
// not hide (measured on Zen 3 in float: 4 at once are 20 % faster per vector than 1; 2 and 6 at
// once are slower than 4).
template <class T, std::size_t N>
inline void exp2(V<T>* y) {
  using C = Exp2Constants<T>;
  typedef typename C::Int vi __attribute__((vector_size(32)));
  const V<T> magic = splat(C::magic);
  V<T> t[N], r[N], p[N];
  for (std::size_t k = 0; k < N; ++k) y[k] = max<T>(y[k], splat(C::lowest));
  for (std::size_t k = 0; k < N; ++k) t[k] = y[k] + magic;
  for (std::size_t k = 0; k < N; ++k) r[k] = y[k] - (t[k] - magic);
  for (std::size_t k = 0; k < N; ++k) p[k] = splat(C::poly[0]) * r[k] + C::poly[1];
  for (std::size_t i = 2; i < std::size(C::poly); ++i)
    for (std::size_t k = 0; k < N; ++k) p[k] = p[k] * r[k] + C::poly[i];
  for (std::size_t k = 0; k < N; ++k) p[k] = p[k] * r[k] + T(1);
  for (std::size_t k = 0; k < N; ++k) {
    vi ti;
    std::memcpy(&ti, &t[k], sizeof(ti));
    const vi bits = (ti - C::magic_bits + C::bias) << C::shift;  // n + bias in the exponent field
    V<T> scale;
    std::memcpy(&scale, &bits, sizeof(scale));
    y[k] = p[k] * scale;
  }
}

// x[i] <- 2^(x[i] - shift) for i < n.
template <class T>
inline void exp2_shifted(T* x, std::size_t n, T shift) {
  constexpr std::size_t N = 4, Wd = W<T>;
  std::size_t i = 0;
  for (; i + N * Wd <= n; i += N * Wd) {
    V<T> y[N];
    for (std::size_t k = 0; k < N; ++k) y[k] = load(x + i + k * Wd) - shift;
    exp2<T, N>(y);
    for (std::size_t k = 0; k < N; ++k) store(x + i + k * Wd, y[k]);
  }
  for (; i + Wd <= n; i += Wd) {
    V<T> y = load(x + i) - shift;
    exp2<T, 1>(&y);
    store(x + i, y);
  }
  if (i < n) {
    T tail[W<T>] = {};
    for (std::size_t j = i; j < n; ++j) tail[j - i] = x[j];
    V<T> t = load(tail) - shift;
    exp2<T, 1>(&t);
    for (std::size_t j = i; j < n; ++j) x[j] = t[j - i];
  }
}

}  // namespace tripartite::simd
