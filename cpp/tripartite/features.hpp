// The hidden layer's log-rates: log phi_r(x) = W_r . x~ - |x~|^2 / 2 - log(m) / 2, x~ = x sqrt(s).
// Rates are only ever exponentiated after subtracting a maximum, so no row overflows or underflows
// as a whole (MODEL.md section 1, numerics).
#pragma once

#include <cmath>
#include <cstddef>

#include "common.hpp"

namespace tripartite {

// x~ = x * input_scale into `out` (D), and returns the constant |x~|^2 / 2 + log(m) / 2.
template <class T>
double scaled_input(const T* x, std::size_t D, double input_scale, std::size_t m, T* out) {
  double norm2 = 0.0;
  for (std::size_t j = 0; j < D; ++j) {
    const double xs = static_cast<double>(x[j]) * input_scale;
    out[j] = static_cast<T>(xs);
    norm2 += xs * xs;
  }
  return 0.5 * norm2 + 0.5 * std::log(static_cast<double>(m));
}

// Log-rates of hidden neurons [r0, r1) for one input: out[r - r0] = W_r . x~ + b_r - offset, where
// the bias b (m, may be null for zero) is a per-neuron constant (used by optimal positive features).
// Returns their maximum.
template <class T>
double block_log_rates(const T* W, std::size_t D, std::size_t r0, std::size_t r1, const T* x_scaled,
                       double offset, const T* bias, T* out) {
  double best = kNegInf;
  for (std::size_t r = r0; r < r1; ++r) {
    const T* w = W + r * D;
    T acc = 0;
#pragma omp simd reduction(+ : acc)
    for (std::size_t j = 0; j < D; ++j) acc += w[j] * x_scaled[j];
    const double b = bias ? static_cast<double>(bias[r]) : 0.0;
    const T value = static_cast<T>(static_cast<double>(acc) + b - offset);
    out[r - r0] = value;
    best = std::max(best, static_cast<double>(value));
  }
  return best;
}

}  // namespace tripartite
