// The hidden layer's log-rates: log phi_r(x) = W_r . x~ + b_r - |x~|^2 / 2 - log(m) / 2, with
// x~ = x sqrt(s); the products themselves are tiles::shifted_rates, in base 2 (x~ enters them times
// log2(e), so a rate is 2^(W_r . x~ log2(e)) and the exp needs no multiplication by log2(e) of its
// own). Rates are only ever exponentiated after subtracting a maximum, so no row overflows or
// underflows as a whole (MODEL.md section 1).
#pragma once

#include <cmath>
#include <cstddef>

#include "common.hpp"

namespace tripartite {

inline constexpr double kLog2e = 1.4426950408889634;  // log2(e)

// x~ log2(e) = x * input_scale * log2(e) into `out` (D), the input of tiles::shifted_rates (`unit`
// 1: x~ itself, for the GPU's kernels, which take exp in natural units), and returns the constant
// |x~|^2 / 2 + log(m) / 2 (natural units).
template <class T>
double scaled_input(const T* x, std::size_t D, double input_scale, std::size_t m, T* out, double unit = kLog2e) {
  double norm2 = 0.0;
  for (std::size_t j = 0; j < D; ++j) {
    const double xs = static_cast<double>(x[j]) * input_scale;
    out[j] = static_cast<T>(xs * unit);
    norm2 += xs * xs;
  }
  return 0.5 * norm2 + 0.5 * std::log(static_cast<double>(m));
}

}  // namespace tripartite
