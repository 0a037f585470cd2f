// What a monitor (python/tripartite/monitor.py) needs of one window of one head, in one pass over
// the head's weights, hidden state and (for the outputs) synapses, in double:
//   u_r   = exp(W_r . x~ + c + b_r), the rates of the window's input (c = -|x~|^2 / 2 - ln(m) / 2;
//           no input: u = 0), in true units;
//   sums  = (g.h, g.u, h.h, h.u, u.u) with h = h_stored e_h and g = g_stored e_g in true units;
//   Hh, Hu = H_stored h and H_stored u (Dv each; the caller applies the synapses' scale).
// The monitor's samples at every sampled step of the window follow from these and the window's
// maps (window.hpp). The same sums in NumPy are monitor._window_sums_reference; they took three
// times as long as the core's own window at the paper's m = 10^5, and more where NumPy's BLAS
// threads spun beside the core's.
//
// Neurons go in blocks of kBlock; each block's sums are taken in a fixed order (vectorised by the
// compiler, the same code on every thread) and the blocks folded in block order: the same bits on
// any number of threads.
#pragma once

#include <cmath>
#include <cstddef>
#include <vector>

#include "common.hpp"

namespace tripartite {

template <class T>
struct MonitorWindowArgs {
  std::size_t m = 0, D = 0, Dv = 0;
  const T* W = nullptr;         // m x D
  const double* x = nullptr;    // D, x~ (scaled), or null: no input (u = 0)
  double c = 0;                 // -|x~|^2 / 2 - ln(m) / 2
  const T* bias = nullptr;      // m, true units, or null
  const T* h = nullptr;         // m, stored
  const T* g = nullptr;         // m, stored
  double e_h = 1, e_g = 1;      // their scales
  const T* H = nullptr;         // Dv x m, stored, or null: no Hh, Hu
  double* u = nullptr;          // out: m
  double* sums = nullptr;       // out: 5
  double* Hh = nullptr;         // out: Dv (with H)
  double* Hu = nullptr;         // out: Dv (with H)
  int threads = 1;
};

template <class T>
void monitor_window(const MonitorWindowArgs<T>& a) {
  const std::size_t m = a.m, D = a.D, Dv = a.Dv, nb = n_blocks(m);
  const std::size_t per_block = 5 + (a.H ? 2 * Dv : 0);
  std::vector<double> partial(nb * per_block);
  const double work = double(m) * double(D + (a.H ? 2 * Dv : 0) + 8);
  parallel_for(nb, effective_threads(a.threads, work), [&](std::size_t b) {
    const std::size_t lo = block_begin(b), hi = block_end(b, m);
    double* p = partial.data() + b * per_block;
    for (std::size_t r = lo; r < hi; ++r) {
      double l = 0;
      if (a.x) {
        const T* w = a.W + r * D;
#pragma omp simd reduction(+ : l)
        for (std::size_t j = 0; j < D; ++j) l += static_cast<double>(w[j]) * a.x[j];
        l += a.c + (a.bias ? static_cast<double>(a.bias[r]) : 0.0);
      }
      a.u[r] = a.x ? std::exp(l) : 0.0;
    }
    double hb[kBlock];  // the block's h in true units
    for (std::size_t r = lo; r < hi; ++r) hb[r - lo] = static_cast<double>(a.h[r]) * a.e_h;
    const double* ub = a.u + lo;
    const std::size_t n = hi - lo;
    double gh = 0, gu = 0, hh = 0, hu = 0, uu = 0;
#pragma omp simd reduction(+ : gh, gu, hh, hu, uu)
    for (std::size_t i = 0; i < n; ++i) {
      const double h = hb[i], g = static_cast<double>(a.g[lo + i]) * a.e_g, u = ub[i];
      gh += g * h, gu += g * u, hh += h * h, hu += h * u, uu += u * u;
    }
    p[0] = gh, p[1] = gu, p[2] = hh, p[3] = hu, p[4] = uu;
    if (a.H) {
      for (std::size_t d = 0; d < Dv; ++d) {
        const T* row = a.H + d * m + lo;
        double sh = 0, su = 0;
        if (a.x) {
#pragma omp simd reduction(+ : sh, su)
          for (std::size_t i = 0; i < n; ++i) {
            const double s = static_cast<double>(row[i]);
            sh += s * hb[i], su += s * ub[i];
          }
        } else {  // u = 0, so H u = 0: the sample at a monitor's creation reads H once, not twice
#pragma omp simd reduction(+ : sh)
          for (std::size_t i = 0; i < n; ++i) sh += static_cast<double>(row[i]) * hb[i];
        }
        p[5 + d] = sh, p[5 + Dv + d] = su;
      }
    }
  });
  for (std::size_t k = 0; k < 5; ++k) a.sums[k] = 0;
  for (std::size_t d = 0; a.H && d < Dv; ++d) a.Hh[d] = a.Hu[d] = 0;
  for (std::size_t b = 0; b < nb; ++b) {  // in block order
    const double* p = partial.data() + b * per_block;
    for (std::size_t k = 0; k < 5; ++k) a.sums[k] += p[k];
    for (std::size_t d = 0; a.H && d < Dv; ++d) a.Hh[d] += p[5 + d], a.Hu[d] += p[5 + Dv + d];
  }
}

}  // namespace tripartite
