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

// W rows [r0, r1) transposed into Wt (D x (r1 - r0)), so that log-rates of many inputs can be
// computed with the hidden neurons as the contiguous (vectorised) axis.
template <class T>
void transpose_block(const T* W, std::size_t D, std::size_t r0, std::size_t r1, T* Wt) {
  const std::size_t nb = r1 - r0;
  for (std::size_t r = r0; r < r1; ++r)
    for (std::size_t j = 0; j < D; ++j) Wt[j * nb + (r - r0)] = W[r * D + j];
}

// Log-rates of n inputs (X~: n x D, already scaled) for one block: out (n x nb) row-major, and
// row_max[i] = max over the block of row i. `bias` points at the block's first bias (or is null).
template <class T>
void block_log_rates_many(const T* Wt, std::size_t D, std::size_t nb, const T* X, const double* offsets,
                          const T* bias, std::size_t n, T* out, double* row_max) {
  for (std::size_t i = 0; i < n; ++i) {
    T* row = out + i * nb;
    const T off = static_cast<T>(-offsets[i]);
    for (std::size_t r = 0; r < nb; ++r) row[r] = 0;
    const T* x = X + i * D;
    for (std::size_t j = 0; j < D; ++j) {
      const T xj = x[j];
      const T* wt = Wt + j * nb;
#pragma omp simd
      for (std::size_t r = 0; r < nb; ++r) row[r] += xj * wt[r];
    }
    T best = -std::numeric_limits<T>::infinity();
    for (std::size_t r = 0; r < nb; ++r) {
      row[r] += off;
      if (bias) row[r] += bias[r];
      best = std::max(best, row[r]);
    }
    row_max[i] = static_cast<double>(best);
  }
}

}  // namespace tripartite
