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

// exp(x) for float lanes, x <= ~88: x = n ln2 + r with n = round(x / ln2) (the rounding done by
// adding 1.5 2^23, whose float spacing is 1), |r| <= ln2/2, and a degree-5 polynomial for e^r,
// minimax in relative error with its constant term exactly 1 (9e-8; 1.5e-7 with float rounding;
// exp(0) = 1 exactly); 2^n is built in the exponent bits. x is first raised to -88: from n = -127
// down the exponent field is 0, so inputs below about -87.7 give exactly 0 (like expf's underflow,
// without most denormals) with no mask.
inline V<float> exp(V<float> x) {
  typedef std::int32_t vi __attribute__((vector_size(32)));
  const V<float> magic = splat(12582912.0f);
  x = max<float>(x, splat(-88.0f));
  const V<float> t = x * 1.44269504088896341f + magic;
  const V<float> n = t - magic;
  V<float> r = x - n * 0.693359375f;  // ln2 split: the high part is exact in float
  r = r + n * 2.12194440e-4f;
  V<float> p = splat(8.2903150e-3f);
  p = p * r + 4.1897930e-2f;
  p = p * r + 1.6667636e-1f;
  p = p * r + 4.9999151e-1f;
  p = p * r + 9.9999970e-1f;
  p = p * r + 1.0f;
  vi ti;
  std::memcpy(&ti, &t, sizeof(ti));
  const vi bits = (ti - 0x4B400000 + 127) << 23;  // n + 127 in the exponent field (0x4B400000 is magic's bits)
  V<float> scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  return p * scale;
}

// x[i] <- exp(x[i] - shift) for i < n.
inline void exp_shifted(float* x, std::size_t n, float shift) {
  std::size_t i = 0;
  for (; i + W<float> <= n; i += W<float>) store(x + i, exp(load(x + i) - shift));
  if (i < n) {
    float tail[W<float>] = {};
    for (std::size_t j = i; j < n; ++j) tail[j - i] = x[j];
    V<float> t = exp(load(tail) - shift);
    for (std::size_t j = i; j < n; ++j) x[j] = t[j - i];
  }
}
inline void exp_shifted(double* x, std::size_t n, double shift) {
  for (std::size_t i = 0; i < n; ++i) x[i] = std::exp(x[i] - shift);
}

}  // namespace tripartite::simd
