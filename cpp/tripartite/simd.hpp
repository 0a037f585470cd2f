// Small SIMD helpers on GCC/Clang vector extensions (32-byte vectors: AVX2 when the compiler may
// use it, pairs of SSE registers otherwise). Plain loops stay the readable reference; these are
// used only in the kernels' innermost tiles.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>

#ifdef __AVX__
#include <immintrin.h>
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

template <class T>
inline double hsum(V<T> v) {  // fixed order: lane 0, 1, 2, ...
  double s = 0;
  for (std::size_t i = 0; i < W<T>; ++i) s += static_cast<double>(v[i]);
  return s;
}

// 2^y for N vectors of float lanes at once, y <= ~128: y = n + r with n = round(y) (the rounding
// done by adding 1.5 2^23, whose float spacing is 1, so r = y - n is exact and |r| <= 1/2), and a
// degree-5 polynomial for 2^r, minimax in relative error with its constant term exactly 1 (9e-8;
// 1.7e-7 with float rounding; 2^0 = 1 exactly); 2^n is built in the exponent bits. Base 2 needs no
// range reduction by ln 2: two multiply-adds fewer than e^x, and only the polynomial and the final
// product use the FMA units. y is first raised to -127: from n = -127 down the exponent field is 0,
// so inputs below -126.5 give exactly 0 (like exp2f's underflow, without most denormals) with no
// mask. The N exponentials go step by step side by side: one alone is a chain of about 35 cycles
// of latency, which the out-of-order window does not hide (measured on Zen 3: 4 at once are 20 %
// faster per vector than 1; 2 and 6 at once are slower than 4).
template <std::size_t N>
inline void exp2(V<float>* y) {
  typedef std::int32_t vi __attribute__((vector_size(32)));
  const V<float> magic = splat(12582912.0f);
  V<float> t[N], r[N], p[N];
  for (std::size_t k = 0; k < N; ++k) y[k] = max<float>(y[k], splat(-127.0f));
  for (std::size_t k = 0; k < N; ++k) t[k] = y[k] + magic;
  for (std::size_t k = 0; k < N; ++k) r[k] = y[k] - (t[k] - magic);
  for (std::size_t k = 0; k < N; ++k) p[k] = splat(1.3264727e-3f) * r[k] + 9.6715130e-3f;
  for (std::size_t k = 0; k < N; ++k) p[k] = p[k] * r[k] + 5.5507336e-2f;
  for (std::size_t k = 0; k < N; ++k) p[k] = p[k] * r[k] + 2.4022242e-1f;
  for (std::size_t k = 0; k < N; ++k) p[k] = p[k] * r[k] + 6.9314700e-1f;
  for (std::size_t k = 0; k < N; ++k) p[k] = p[k] * r[k] + 1.0f;
  for (std::size_t k = 0; k < N; ++k) {
    vi ti;
    std::memcpy(&ti, &t[k], sizeof(ti));
    const vi bits = (ti - 0x4B400000 + 127) << 23;  // n + 127 in the exponent field (0x4B400000 is magic's bits)
    V<float> scale;
    std::memcpy(&scale, &bits, sizeof(scale));
    y[k] = p[k] * scale;
  }
}
inline V<float> exp2(V<float> y) {
  exp2<1>(&y);
  return y;
}

// The same for double lanes: n = round(y) by adding 1.5 2^52, and a degree-11 polynomial for 2^r,
// |r| <= 1/2, with its constant term exactly 1 (a Chebyshev fit of (2^r - 1) / r: 8.5e-18
// relative, far below double rounding; the result is within about 2 ulp of exp2). y is first raised
// to -1023, where the exponent field is 0: inputs below -1022.5 give exactly 0 (no subnormals, as
// in float). glibc's scalar exp2, which this replaces, took a third of a float64 steady-state call.
template <std::size_t N>
inline void exp2(V<double>* y) {
  typedef std::int64_t vi __attribute__((vector_size(32)));
  const V<double> magic = splat(6755399441055744.0);
  V<double> t[N], r[N], p[N];
  for (std::size_t k = 0; k < N; ++k) y[k] = max<double>(y[k], splat(-1023.0));
  for (std::size_t k = 0; k < N; ++k) t[k] = y[k] + magic;
  for (std::size_t k = 0; k < N; ++k) r[k] = y[k] - (t[k] - magic);
  for (std::size_t k = 0; k < N; ++k) p[k] = splat(4.4549605981865186e-10) * r[k] + 7.072585949269223e-09;
  constexpr double c[9] = {1.0178062445845774e-07, 1.321544258792169e-06, 1.525273382983612e-05,
                           0.0001540353044173605,  0.0013333558146416936, 0.009618129107606888,
                           0.0555041086648216,     0.24022650695910097,   0.6931471805599453};
  for (double ci : c)
    for (std::size_t k = 0; k < N; ++k) p[k] = p[k] * r[k] + ci;
  for (std::size_t k = 0; k < N; ++k) p[k] = p[k] * r[k] + 1.0;
  for (std::size_t k = 0; k < N; ++k) {
    vi ti;
    std::memcpy(&ti, &t[k], sizeof(ti));
    const vi bits = (ti - 0x4338000000000000LL + 1023) << 52;  // n + 1023 in the exponent field (magic's bits)
    V<double> scale;
    std::memcpy(&scale, &bits, sizeof(scale));
    y[k] = p[k] * scale;
  }
}
inline V<double> exp2(V<double> y) {
  exp2<1>(&y);
  return y;
}

// x[i] <- 2^(x[i] - shift) for i < n.
template <class T>
inline void exp2_shifted(T* x, std::size_t n, T shift) {
  constexpr std::size_t N = 4, Wd = W<T>;
  std::size_t i = 0;
  for (; i + N * Wd <= n; i += N * Wd) {
    V<T> y[N];
    for (std::size_t k = 0; k < N; ++k) y[k] = load(x + i + k * Wd) - shift;
    exp2<N>(y);
    for (std::size_t k = 0; k < N; ++k) store(x + i + k * Wd, y[k]);
  }
  for (; i + Wd <= n; i += Wd) store(x + i, exp2(load(x + i) - shift));
  if (i < n) {
    T tail[W<T>] = {};
    for (std::size_t j = i; j < n; ++j) tail[j - i] = x[j];
    V<T> t = exp2(load(tail) - shift);
    for (std::size_t j = i; j < n; ++j) x[j] = t[j - i];
  }
}

}  // namespace tripartite::simd
