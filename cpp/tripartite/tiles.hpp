// Register-tiled inner kernels of the steady state: the three products that dominate its cost.
//   log-rates      out (n x nb)   = X~ (n x D) W_b^T + offsets      (panels of packed W rows)
//   Hebbian write  H_b (Dv x nb) += V^T (Dv x n) E (n x nb),  g_b += column sums of E
//   readout        out (n x rows)  = P (n x nb) [H_b; g_b]^T        (dot products over neurons)
// Each keeps a small tile of accumulators in registers. The neuron range of a block is split
// into full panels of kPanel<T> neurons (vector code) and a tail (plain loops). The summation
// order is fixed by the code, never by the thread count.
#pragma once

#include <algorithm>
#include <cstddef>
#include <stdexcept>

#include "simd.hpp"

namespace tripartite::tiles {

using simd::load;
using simd::splat;
using simd::store;
template <class T>
using V = simd::V<T>;
template <class T>
inline constexpr std::size_t kPanel = 2 * simd::W<T>;

template <class T>
std::size_t full_panels(std::size_t nb) {
  return nb / kPanel<T> * kPanel<T>;
}

// W rows [r0, r0 + full) into panels: panel p is D x kPanel, packed[(p D + j) kPanel + l] = W[r0 + p kPanel + l][j].
template <class T>
void pack_panels(const T* W, std::size_t D, std::size_t r0, std::size_t full, T* packed) {
  constexpr std::size_t P = kPanel<T>;
  for (std::size_t p = 0; p < full / P; ++p)
    for (std::size_t l = 0; l < P; ++l) {
      const T* w = W + (r0 + p * P + l) * D;
      for (std::size_t j = 0; j < D; ++j) packed[(p * D + j) * P + l] = w[j];
    }
}

// out[i][r] = X~_i . W_{r0+r} + bias[r] - offsets[i] for r < nb (row stride `stride`), row_max[i].
template <class T>
void log_rates(const T* packed, const T* W, std::size_t D, std::size_t r0, std::size_t nb, const T* X,
               const double* offsets, const T* bias, std::size_t n, T* out, std::size_t stride, double* row_max) {
  constexpr std::size_t P = kPanel<T>, Wd = simd::W<T>;
  const std::size_t full = full_panels<T>(nb);
  for (std::size_t p = 0; p < full / P; ++p) {
    const T* panel = packed + p * D * P;
    for (std::size_t i0 = 0; i0 < n; i0 += 4) {
      const T* x[4];
      for (std::size_t ii = 0; ii < 4; ++ii) x[ii] = X + std::min(i0 + ii, n - 1) * D;
      V<T> acc[4][2] = {};
      for (std::size_t j = 0; j < D; ++j) {
        const V<T> w0 = load(panel + j * P), w1 = load(panel + j * P + Wd);
        for (std::size_t ii = 0; ii < 4; ++ii) {
          const V<T> xb = splat(x[ii][j]);
          acc[ii][0] += xb * w0;
          acc[ii][1] += xb * w1;
        }
      }
      for (std::size_t ii = 0; ii < 4 && i0 + ii < n; ++ii) {
        T* o = out + (i0 + ii) * stride + p * P;
        store(o, acc[ii][0]);
        store(o + Wd, acc[ii][1]);
      }
    }
  }
  for (std::size_t i = 0; i < n; ++i) {
    T* o = out + i * stride;
    const T* x = X + i * D;
    for (std::size_t r = full; r < nb; ++r) {
      const T* w = W + (r0 + r) * D;
      T acc = 0;
      for (std::size_t j = 0; j < D; ++j) acc += w[j] * x[j];
      o[r] = acc;
    }
    const T off = static_cast<T>(-offsets[i]);
    T best = -std::numeric_limits<T>::infinity();
    for (std::size_t r = 0; r < nb; ++r) {
      T value = o[r] + off;
      if (bias) value += bias[r];
      o[r] = value;
      best = std::max(best, value);
    }
    row_max[i] = static_cast<double>(best);
  }
}

// H rows d (stride m, starting at column r0) <- decay H + sum_t V[t][d] E[t][:], and (if g is not
// null) g += sum_t E[t][:].
template <class T>
void hebbian_write(const T* E, std::size_t stride, const T* Vv, std::size_t n, std::size_t Dv, std::size_t nb, T* H,
                   T* g, std::size_t m, std::size_t r0, T decay = T(1)) {
  const V<T> f = splat(decay);
  constexpr std::size_t P = kPanel<T>, Wd = simd::W<T>;
  const std::size_t full = full_panels<T>(nb);
  for (std::size_t c = 0; c < full; c += P) {
    std::size_t d0 = 0;
    for (; d0 + 4 <= Dv; d0 += 4) {
      V<T> acc[4][2];
      for (std::size_t dd = 0; dd < 4; ++dd) {
        const T* h = H + (d0 + dd) * m + r0 + c;
        acc[dd][0] = load(h) * f;
        acc[dd][1] = load(h + Wd) * f;
      }
      for (std::size_t t = 0; t < n; ++t) {
        const V<T> e0 = load(E + t * stride + c), e1 = load(E + t * stride + c + Wd);
        const T* v = Vv + t * Dv + d0;
        for (std::size_t dd = 0; dd < 4; ++dd) {
          const V<T> vb = splat(v[dd]);
          acc[dd][0] += vb * e0;
          acc[dd][1] += vb * e1;
        }
      }
      for (std::size_t dd = 0; dd < 4; ++dd) {
        T* h = H + (d0 + dd) * m + r0 + c;
        store(h, acc[dd][0]);
        store(h + Wd, acc[dd][1]);
      }
    }
    for (; d0 < Dv; ++d0) {
      T* h = H + d0 * m + r0 + c;
      V<T> a0 = load(h) * f, a1 = load(h + Wd) * f;
      for (std::size_t t = 0; t < n; ++t) {
        const V<T> vb = splat(Vv[t * Dv + d0]);
        a0 += vb * load(E + t * stride + c);
        a1 += vb * load(E + t * stride + c + Wd);
      }
      store(h, a0);
      store(h + Wd, a1);
    }
    if (g) {
      V<T> g0 = load(g + r0 + c), g1 = load(g + r0 + c + Wd);
      for (std::size_t t = 0; t < n; ++t) {
        g0 += load(E + t * stride + c);
        g1 += load(E + t * stride + c + Wd);
      }
      store(g + r0 + c, g0);
      store(g + r0 + c + Wd, g1);
    }
  }
  for (std::size_t r = full; r < nb; ++r) {
    for (std::size_t d = 0; d < Dv; ++d) {
      T acc = H[d * m + r0 + r] * decay;
      for (std::size_t t = 0; t < n; ++t) acc += Vv[t * Dv + d] * E[t * stride + r];
      H[d * m + r0 + r] = acc;
    }
    if (!g) continue;
    T acc = g[r0 + r];
    for (std::size_t t = 0; t < n; ++t) acc += E[t * stride + r];
    g[r0 + r] = acc;
  }
}

// One pass over a block's synapses (rows d < Dv of stride m, starting at the block's first
// neuron) for a segment of S windows, taken in order for every synapse:
//   window j writes:  H[d][r] <- kg[j] H[d][r] + v[j][d] w_j[r]
//   window j reads:   dots[j][d] = sum_r H[d][r] h_j[r]  (H as it is at that window)
// w_j and h_j are rows j of `w` and `hr` (stride `stride`). The arithmetic applied to each synapse
// does not depend on S, so running windows one at a time or in segments gives identical bits.
template <class T>
void synapse_segment(T* H, std::size_t m, std::size_t Dv, std::size_t nb, const bool* is_write, std::size_t S,
                     const T* kg, const T* values, const T* w, const T* hr, std::size_t stride, double* dots,
                     std::size_t dots_stride) {
  constexpr std::size_t P = kPanel<T>, Wd = simd::W<T>;
  const std::size_t full = full_panels<T>(nb);
  V<T> dacc[16][4][2];  // per window of the segment, per row of the tile
  if (S > 16) throw std::invalid_argument("synapse_segment: at most 16 windows");
  T tail[16][4];
  for (std::size_t d0 = 0; d0 < Dv; d0 += 4) {
    const std::size_t nd = std::min<std::size_t>(4, Dv - d0);
    for (std::size_t j = 0; j < S; ++j)
      for (std::size_t dd = 0; dd < 4; ++dd) {
        dacc[j][dd][0] = dacc[j][dd][1] = V<T>{};
        tail[j][dd] = 0;
      }
    for (std::size_t c = 0; c < full; c += P) {
      V<T> acc[4][2];
      for (std::size_t dd = 0; dd < nd; ++dd) {
        acc[dd][0] = load(H + (d0 + dd) * m + c);
        acc[dd][1] = load(H + (d0 + dd) * m + c + Wd);
      }
      for (std::size_t j = 0; j < S; ++j) {
        if (is_write[j]) {
          const V<T> w0 = load(w + j * stride + c), w1 = load(w + j * stride + c + Wd), f = splat(kg[j]);
          for (std::size_t dd = 0; dd < nd; ++dd) {
            const V<T> vb = splat(values[j * Dv + d0 + dd]);
            acc[dd][0] = acc[dd][0] * f + vb * w0;
            acc[dd][1] = acc[dd][1] * f + vb * w1;
          }
        } else {
          const V<T> h0 = load(hr + j * stride + c), h1 = load(hr + j * stride + c + Wd);
          for (std::size_t dd = 0; dd < nd; ++dd) {
            dacc[j][dd][0] += acc[dd][0] * h0;
            dacc[j][dd][1] += acc[dd][1] * h1;
          }
        }
      }
      for (std::size_t dd = 0; dd < nd; ++dd) {
        store(H + (d0 + dd) * m + c, acc[dd][0]);
        store(H + (d0 + dd) * m + c + Wd, acc[dd][1]);
      }
    }
    for (std::size_t r = full; r < nb; ++r)
      for (std::size_t dd = 0; dd < nd; ++dd) {
        T a = H[(d0 + dd) * m + r];
        for (std::size_t j = 0; j < S; ++j) {
          if (is_write[j])
            a = a * kg[j] + values[j * Dv + d0 + dd] * w[j * stride + r];
          else
            tail[j][dd] += a * hr[j * stride + r];
        }
        H[(d0 + dd) * m + r] = a;
      }
    for (std::size_t j = 0; j < S; ++j)
      if (!is_write[j])
        for (std::size_t dd = 0; dd < nd; ++dd)
          dots[j * dots_stride + d0 + dd] =
              simd::hsum<T>(dacc[j][dd][0]) + simd::hsum<T>(dacc[j][dd][1]) + static_cast<double>(tail[j][dd]);
  }
}

// out[i * out_stride + d] = sum_{r < nb} rows[d][r] * P[i * stride + r], for i < n, d < n_rows.
template <class T>
void dot_rows(const T* const* rows, std::size_t n_rows, const T* Pm, std::size_t stride, std::size_t n,
              std::size_t nb, double* out, std::size_t out_stride) {
  constexpr std::size_t Wd = simd::W<T>;
  const std::size_t full = nb / Wd * Wd;
  for (std::size_t i0 = 0; i0 < n; i0 += 4) {
    const T* p[4];
    for (std::size_t ii = 0; ii < 4; ++ii) p[ii] = Pm + std::min(i0 + ii, n - 1) * stride;
    for (std::size_t d0 = 0; d0 < n_rows; d0 += 3) {
      const T* h[3];
      for (std::size_t dd = 0; dd < 3; ++dd) h[dd] = rows[std::min(d0 + dd, n_rows - 1)];
      V<T> acc[4][3] = {};
      for (std::size_t r = 0; r < full; r += Wd) {
        const V<T> h0 = load(h[0] + r), h1 = load(h[1] + r), h2 = load(h[2] + r);
        for (std::size_t ii = 0; ii < 4; ++ii) {
          const V<T> pv = load(p[ii] + r);
          acc[ii][0] += pv * h0;
          acc[ii][1] += pv * h1;
          acc[ii][2] += pv * h2;
        }
      }
      for (std::size_t ii = 0; ii < 4 && i0 + ii < n; ++ii)
        for (std::size_t dd = 0; dd < 3 && d0 + dd < n_rows; ++dd) {
          double s = simd::hsum<T>(acc[ii][dd]);
          for (std::size_t r = full; r < nb; ++r) s += static_cast<double>(h[dd][r] * p[ii][r]);
          out[(i0 + ii) * out_stride + d0 + dd] = s;
        }
    }
  }
}

}  // namespace tripartite::tiles
