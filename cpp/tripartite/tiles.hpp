// Register-tiled inner kernels of the steady state: the three products that dominate its cost.
//   rates          out (n x nb)    = 2^(X~ log2(e) (n x D) W_b^T - row max)  (packed W panels)
//   Hebbian write  H_b (nb x Dv)  += E^T (nb x n) V (n x Dv),  g_b += column sums of E
//   readout        out (n x Dv+1)  = P (n x nb) [H_b, g_b]             (in double, span by span)
// Each keeps a 6 x 2-vector tile of accumulators in registers (12 of the 16 AVX registers) and
// broadcasts one operand from memory, like a GEMM micro-kernel. The summation order is fixed by
// the code, never by the thread count. The network's per-synapse pass (synapse_segment) and the
// dot products of the causal intra-chunk scores (causal_scores) are here too.
#pragma once

#include <algorithm>
#include <cstddef>
#include <limits>
#include <cstring>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "features.hpp"
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

// f(std::integral_constant<std::size_t, n>{}) for a count n in 1..K known only at run time (any
// other n: 1), so that each count is its own unrolled code: the tile heights, the rows of synapses
// taken together.
template <std::size_t K, class F>
inline void with_count(std::size_t n, F&& f) {
  static_assert(K >= 1, "with_count: counts start at 1");
  if constexpr (K == 1)
    f(std::integral_constant<std::size_t, 1>{});
  else if (n == K)
    f(std::integral_constant<std::size_t, K>{});
  else
    with_count<K - 1>(n, f);
}

// Register tiles are kRows tall; a strip's last tile may have 1 to kRows - 1. with_rows calls f
// with the row count as a compile-time constant.
inline constexpr std::size_t kRows = 6;

template <class F>
inline void with_rows(std::size_t rows, F&& f) {
  with_count<kRows>(rows, f);
}

// The most neurons shifted_rates takes at once: the network's blocks; the steady state's are
// smaller (both callers static_assert it).
inline constexpr std::size_t kMaxRatesBlock = kBlock;

// W rows [r0, r0 + full) into panels: panel p is D x kPanel, packed[(p D + j) kPanel + l] = W[r0 + p kPanel + l][j].
// The plain loop, one value per load and store: the reference pack_panels is tested against.
template <class T>
void pack_panels_reference(const T* W, std::size_t D, std::size_t r0, std::size_t full, T* packed) {
  constexpr std::size_t P = kPanel<T>;
  for (std::size_t p = 0; p < full / P; ++p)
    for (std::size_t l = 0; l < P; ++l) {
      const T* w = W + (r0 + p * P + l) * D;
      for (std::size_t j = 0; j < D; ++j) packed[(p * D + j) * P + l] = w[j];
    }
}

// The same copy by square blocks of Wd x Wd values transposed in registers (Wd = simd::W<T>): Wd
// vector loads of Wd rows, Wd stores of Wd columns, where the plain loop stores one value at a
// time, each to another cache line. Measured against the plain loop (two builds in one process,
// float32, 2 threads, alternating pairs): the network's short writes at 6.4M synapses, 16 tokens,
// took 0.920, 0.969 and 0.959 of the time in three runs of 10-16 pairs, 4 tokens at 64M 0.978,
// 0.952 and 0.958; 197-token writes and reads, which wait on DRAM for the weights, 0.975 and 0.982,
// and the steady state 0.999 (10 pairs). Columns beyond the last multiple of Wd go one value at
// a time. A permutation: the same bits either way.
template <class T>
void pack_panels(const T* W, std::size_t D, std::size_t r0, std::size_t full, T* packed) {
  constexpr std::size_t P = kPanel<T>, Wd = simd::W<T>;
  const std::size_t Dfull = D / Wd * Wd;
  for (std::size_t p = 0; p < full / P; ++p) {
    for (std::size_t half = 0; half < P / Wd; ++half) {  // the panel's lanes [half Wd, half Wd + Wd)
      const T* w = W + (r0 + p * P + half * Wd) * D;
      T* out = packed + p * D * P + half * Wd;
      for (std::size_t j0 = 0; j0 < Dfull; j0 += Wd) {
        V<T> rows[Wd];
        for (std::size_t l = 0; l < Wd; ++l) rows[l] = load(w + l * D + j0);
        simd::transpose<T>(rows);  // rows[j] = (w[l][j0 + j])_l
        for (std::size_t j = 0; j < Wd; ++j) store(out + (j0 + j) * P, rows[j]);
      }
      for (std::size_t j = Dfull; j < D; ++j)
        for (std::size_t l = 0; l < Wd; ++l) out[j * P + l] = w[l * D + j];
    }
  }
}

// One register tile of log-rates without the rows' offsets: acc[i] (2 vectors) = sum_j x[i][j]
// panel[j][:] (+ the bias), i < R, stored and folded into the rows' running maxima. R = kRows keeps
// 12 accumulators and 2 panel vectors in the 16 AVX registers.
template <class T, std::size_t R>
inline void rate_tile(const T* panel, std::size_t D, const T* const* x, T* const* o, const T* bias_panel,
                      V<T>* row_best) {
  constexpr std::size_t P = kPanel<T>, Wd = simd::W<T>;
  V<T> acc[R][2];
  TRIPARTITE_UNROLL
  for (std::size_t ii = 0; ii < R; ++ii) acc[ii][0] = acc[ii][1] = V<T>{};
  for (std::size_t j = 0; j < D; ++j) {
    const V<T> w0 = load(panel + j * P), w1 = load(panel + j * P + Wd);
    TRIPARTITE_UNROLL
    for (std::size_t ii = 0; ii < R; ++ii) {
      const V<T> xb = splat(x[ii][j]);
      acc[ii][0] += xb * w0;
      acc[ii][1] += xb * w1;
    }
  }
  if (bias_panel) {  // the bias, already in base 2 (shifted_rates: a plain add, nothing to contract)
    const V<T> b0 = load(bias_panel), b1 = load(bias_panel + Wd);
    TRIPARTITE_UNROLL
    for (std::size_t ii = 0; ii < R; ++ii) acc[ii][0] += b0, acc[ii][1] += b1;
  }
  TRIPARTITE_UNROLL
  for (std::size_t ii = 0; ii < R; ++ii) {
    store(o[ii], acc[ii][0]);
    store(o[ii] + Wd, acc[ii][1]);
    row_best[ii] = simd::max<T>(row_best[ii], simd::max<T>(acc[ii][0], acc[ii][1]));
  }
}

// The rates of n inputs on a block of nb neurons. X holds x~ log2(e) (features.hpp: scaled_input),
// so the products y[i][r] = X_i . W_{r0+r} + (bias[r] - B) log2(e) are log-rates in base 2,
// relative to B, the block's largest bias (0 without a bias). With the log-rate
// l[i][r] = y[i][r] ln 2 + B - offsets[i], row_max[i] = max_r l[i][r] (in double) and
// out[i][r] = exp(l[i][r] - row_max[i]) = 2^(y[i][r] - max_r y[i][r]) (row stride `stride`). B and
// the offset are constant along a row, so they enter row_max only. Each strip of rows is
// exponentiated while it is still in cache (unless `exponentiate` is false: the log-rates and
// their maxima only).
template <class T>
void shifted_rates(const T* packed, const T* W, std::size_t D, std::size_t r0, std::size_t nb, const T* X,
                   const double* offsets, const T* bias, std::size_t n, T* out, std::size_t stride,
                   double* row_max, bool exponentiate = true) {
  constexpr std::size_t P = kPanel<T>, R = kRows;
  const std::size_t full = full_panels<T>(nb);
  // The bias enters relative to the block's largest, which goes to row_max in double: a bias
  // with a large common part (C = 300) otherwise cost the log-rates C's rounding in T (float32
  // attention's error at C = 300 was 3.7e-6 of max|y|, 4.0e-7 without a bias; now 4.0e-7 with it).
  // A constant bias now adds nothing in T; in double, where B joins the offset, it adds ulp(B).
  T bias_ref = 0;
  // (bias[r] - B) log2(e) in T, once per call: every tile and tail row then adds the same rounded
  // value. Computed inside each tile, Clang's builds fused the product into the tile's add in some
  // tile heights and not in others, so that with a bias a write of two tokens and two writes of
  // one token gave different bits (GCC's builds gave the same bits either way).
  alignas(64) T bias2[kMaxRatesBlock];
  if (bias) {
    bias_ref = bias[0];
    for (std::size_t r = 1; r < nb; ++r) bias_ref = std::max(bias_ref, bias[r]);
    for (std::size_t r = 0; r < nb; ++r) bias2[r] = (bias[r] - bias_ref) * T(kLog2e);
  }
  for (std::size_t i0 = 0; i0 < n; i0 += R) {
    const std::size_t rows = std::min(R, n - i0);
    const T* x[R];
    T* o[R];
    V<T> best[R];
    for (std::size_t ii = 0; ii < rows; ++ii) {
      const std::size_t i = i0 + ii;
      x[ii] = X + i * D;
      o[ii] = out + i * stride;
      best[ii] = splat(-std::numeric_limits<T>::infinity());
    }
    with_rows(rows, [&](auto R_) {  // one dispatch per strip of inputs: its tiles inline
      for (std::size_t p = 0; p < full / P; ++p) {
        T* op[R];
        for (std::size_t ii = 0; ii < rows; ++ii) op[ii] = o[ii] + p * P;
        const T* bp = bias ? bias2 + p * P : nullptr;
        rate_tile<T, R_>(packed + p * D * P, D, x, op, bp, best);
      }
    });
    for (std::size_t ii = 0; ii < rows; ++ii) {
      const std::size_t i = i0 + ii;
      T* oi = out + i * stride;
      T top = full ? best[ii][0] : -std::numeric_limits<T>::infinity();
      for (std::size_t l = 1; l < simd::W<T> && full; ++l) top = std::max(top, best[ii][l]);
      for (std::size_t r = full; r < nb; ++r) {  // the tail: plain loops
        const T* w = W + (r0 + r) * D;
        T value = 0;
        for (std::size_t j = 0; j < D; ++j) value += w[j] * x[ii][j];
        if (bias) value += bias2[r];
        oi[r] = value;
        top = std::max(top, value);
      }
      row_max[i] = static_cast<double>(top) / kLog2e + static_cast<double>(bias_ref) - offsets[i];
      if (exponentiate) simd::exp2_shifted(oi, nb, top);
    }
  }
}

// The block's synapses in the steady state are stored neuron-major in column panels of kPanel
// values: Hp[(c * ld + r) * kPanel + l] is the synapse from neuron r to value column c kPanel + l,
// with the value columns padded with zeros to a multiple of kPanel. A panel column is one
// contiguous stream, and a register tile is R consecutive rows of it.
template <class T>
std::size_t padded_columns(std::size_t Dv) {
  return (Dv + kPanel<T> - 1) / kPanel<T> * kPanel<T>;
}

template <class T, std::size_t R>
inline void write_tile(const T* E, std::size_t stride, const T* Vp, std::size_t Dvp, std::size_t n, T* h, bool fresh) {
  constexpr std::size_t P = kPanel<T>, Wd = simd::W<T>;
  V<T> acc[R][2];
  TRIPARTITE_UNROLL
  for (std::size_t ii = 0; ii < R; ++ii)
    acc[ii][0] = fresh ? V<T>{} : load(h + ii * P), acc[ii][1] = fresh ? V<T>{} : load(h + ii * P + Wd);
  for (std::size_t t = 0; t < n; ++t) {
    const V<T> v0 = load(Vp + t * Dvp), v1 = load(Vp + t * Dvp + Wd);
    const T* e = E + t * stride;
    TRIPARTITE_UNROLL
    for (std::size_t ii = 0; ii < R; ++ii) {
      const V<T> eb = splat(e[ii]);
      acc[ii][0] += eb * v0;
      acc[ii][1] += eb * v1;
    }
  }
  TRIPARTITE_UNROLL
  for (std::size_t ii = 0; ii < R; ++ii) store(h + ii * P, acc[ii][0]), store(h + ii * P + Wd, acc[ii][1]);
}

// Hebbian write of n keys into a block of nb neurons:
//   Hp[r][c] += sum_t E[t][r] Vp[t][c]   (Vp: n x Dvp values, zero-padded)
//   g[r]     += sum_t w[t] E[t][r]       (w: the keys' weights, which Vp carries too)
// t is summed in order for every synapse. With `fresh`, the rows r < nb start from zero instead
// of their stored values (the first write into a block: no separate clearing pass).
template <class T>
void hebbian_write(const T* E, std::size_t stride, const T* Vp, std::size_t n, std::size_t Dvp, std::size_t nb, T* Hp,
                   std::size_t ld, T* g, const T* weights, bool fresh) {
  constexpr std::size_t P = kPanel<T>, R = kRows, Wd = simd::W<T>;
  for (std::size_t r0 = 0; r0 < nb; r0 += R) {
    const std::size_t rows = std::min(R, nb - r0);
    with_rows(rows, [&](auto R_) {  // one dispatch per strip of neurons: its tiles inline
      for (std::size_t c = 0; c < Dvp / P; ++c)
        write_tile<T, R_>(E + r0, stride, Vp + c * P, Dvp, n, Hp + (c * ld + r0) * P, fresh);
    });
  }
  // g, G vectors of neurons [r, r + G Wd) side by side: one vector alone is a chain of n dependent
  // operations that waits on each one's latency (the write ran 3-5 % slower with it). Every neuron
  // sums its keys in order whatever G, so G does not change the result.
  auto g_columns = [&](auto G_, std::size_t r) {
    constexpr std::size_t G = decltype(G_)::value;
    V<T> acc[G];
    for (std::size_t k = 0; k < G; ++k) acc[k] = fresh ? V<T>{} : load(g + r + k * Wd);
    for (std::size_t t = 0; t < n; ++t) {
      const V<T> w = splat(weights[t]);
      for (std::size_t k = 0; k < G; ++k) acc[k] += w * load(E + t * stride + r + k * Wd);
    }
    for (std::size_t k = 0; k < G; ++k) store(g + r + k * Wd, acc[k]);
  };
  const std::size_t fullv = nb / Wd * Wd;
  std::size_t r = 0;
  for (; r + 4 * Wd <= fullv; r += 4 * Wd) g_columns(std::integral_constant<std::size_t, 4>{}, r);
  for (; r < fullv; r += Wd) g_columns(std::integral_constant<std::size_t, 1>{}, r);
  for (; r < nb; ++r) {  // the tail
    T acc = fresh ? T(0) : g[r];
    for (std::size_t t = 0; t < n; ++t) acc += weights[t] * E[t * stride + r];
    g[r] = acc;
  }
}

// out[0 .. 2 Wd) += the two accumulator vectors, widened to double.
template <class T>
inline void add_widened(double* out, V<T> a0, V<T> a1) {
  if constexpr (std::is_same_v<T, double>) {
    store(out, load(out) + a0);
    store(out + simd::W<T>, load(out + simd::W<T>) + a1);
  } else {
    typedef float half __attribute__((vector_size(16)));
    typedef double wide __attribute__((vector_size(32)));
    const half h[4] = {__builtin_shufflevector(a0, a0, 0, 1, 2, 3), __builtin_shufflevector(a0, a0, 4, 5, 6, 7),
                       __builtin_shufflevector(a1, a1, 0, 1, 2, 3), __builtin_shufflevector(a1, a1, 4, 5, 6, 7)};
    for (std::size_t k = 0; k < 4; ++k) {
      wide o;
      std::memcpy(&o, out + 4 * k, sizeof(o));
      o += __builtin_convertvector(h[k], wide);
      std::memcpy(out + 4 * k, &o, sizeof(o));
    }
  }
}

// One readout tile: rows ii < R of P start at p + ii * Stride (a compile-time stride, so the R rows
// need one pointer register), neurons [r0, r1) of one panel column h of the synapses.
template <class T, std::size_t R, std::size_t Stride>
inline void read_tile(const T* p, std::size_t r0, std::size_t r1, const T* h, double* const* out) {
  constexpr std::size_t P = kPanel<T>, Wd = simd::W<T>;
  V<T> acc[R][2];
  TRIPARTITE_UNROLL
  for (std::size_t ii = 0; ii < R; ++ii) acc[ii][0] = acc[ii][1] = V<T>{};
  for (std::size_t r = r0; r < r1; ++r) {
    const V<T> h0 = load(h + r * P), h1 = load(h + r * P + Wd);
    TRIPARTITE_UNROLL
    for (std::size_t ii = 0; ii < R; ++ii) {
      const V<T> pb = splat(p[ii * Stride + r]);
      acc[ii][0] += pb * h0;
      acc[ii][1] += pb * h1;
    }
  }
  TRIPARTITE_UNROLL
  for (std::size_t ii = 0; ii < R; ++ii) add_widened<T>(out[ii], acc[ii][0], acc[ii][1]);
}

inline constexpr std::size_t kReadSpan = 256;  // neurons summed in registers before adding in double

// Readout of n query feature rows P (row stride Stride) against a block of nb neurons:
//   out[i][c] = sum_r P[i][r] Hp[r][c] (c < Dv),  out[i][Dv] = sum_r P[i][r] g[r]
// in double (out has row stride Dv + 1). Spans of kReadSpan neurons are summed in registers in
// order, then added span by span: a fixed order.
template <class T, std::size_t Stride>
void readout(const T* Pm, std::size_t n, std::size_t nb, const T* Hp, std::size_t ld, std::size_t Dv, const T* g,
             double* out, double* scratch) {
  constexpr std::size_t P = kPanel<T>, R = kRows, Wd = simd::W<T>;
  const std::size_t Dvp = padded_columns<T>(Dv), so = Dvp + 1;  // scratch rows: Dvp sums, then the denominator
  std::fill(scratch, scratch + n * so, 0.0);
  for (std::size_t s0 = 0; s0 < nb; s0 += kReadSpan) {
    const std::size_t s1 = std::min(nb, s0 + kReadSpan);
    for (std::size_t i0 = 0; i0 < n; i0 += R) {
      const std::size_t rows = std::min(R, n - i0);
      const T* p = Pm + i0 * Stride;
      for (std::size_t c = 0; c < Dvp / P; ++c) {
        double* oc[R];
        for (std::size_t ii = 0; ii < rows; ++ii) oc[ii] = scratch + (i0 + ii) * so + c * P;
        const T* h = Hp + c * ld * P;
        with_rows(rows, [&](auto R_) { read_tile<T, R_, Stride>(p, s0, s1, h, oc); });
      }
      // The denominator P . g over the span, the tile's rows side by side: independent chains
      // instead of one row's chain of dependent operations at a time (the same order per row).
      with_rows(rows, [&](auto R_) {
        constexpr std::size_t Rn = decltype(R_)::value;
        V<T> acc[Rn] = {};
        std::size_t r = s0;
        for (; r + Wd <= s1; r += Wd) {
          const V<T> gv = load(g + r);
          for (std::size_t ii = 0; ii < Rn; ++ii) acc[ii] += load(p + ii * Stride + r) * gv;
        }
        for (std::size_t ii = 0; ii < Rn; ++ii) {
          const T* pi = p + ii * Stride;
          double den = simd::hsum<T>(acc[ii]);
          for (std::size_t q = r; q < s1; ++q) den += static_cast<double>(pi[q] * g[q]);
          scratch[(i0 + ii) * so + Dvp] += den;
        }
      });
    }
  }
  for (std::size_t i = 0; i < n; ++i) {
    std::copy_n(scratch + i * so, Dv, out + i * (Dv + 1));
    out[i * (Dv + 1) + Dv] = scratch[i * so + Dvp];
  }
}

// The most entries synapse_segment takes at once: a segment's windows, with two more reads after
// each read where a monitor of the outputs asks for them (network.hpp: up to 3 x 32).
inline constexpr std::size_t kMaxSegment = 96;

// Reads of synapses that no later window of the segment changes: for rows dd < NR of H (stride m)
// and the NJ windows jj whose rates are rows jj of `hr` (stride `stride`),
//   acc[jj][dd0 + dd][k] = sum over the panels c < full, in order, of H[dd][c + k Wd ..] * hr[jj][c + k Wd ..]
// A register tile of NR x NJ x 2 accumulators, summed in the same order, with the same fused
// multiply-adds, as the per-synapse pass sums a read: the same bits.
template <class T, std::size_t NR, std::size_t NJ>
inline void read_tile_final(const T* H, std::size_t m, const T* hr, std::size_t stride, std::size_t full,
                            V<T> (*acc)[4][2], std::size_t dd0) {
  constexpr std::size_t P = kPanel<T>, Wd = simd::W<T>;
  V<T> a[NJ][NR][2];
  TRIPARTITE_UNROLL
  for (std::size_t jj = 0; jj < NJ; ++jj)
    TRIPARTITE_UNROLL
    for (std::size_t dd = 0; dd < NR; ++dd) a[jj][dd][0] = a[jj][dd][1] = V<T>{};
  for (std::size_t c = 0; c < full; c += P) {
    V<T> h[NR][2];
    TRIPARTITE_UNROLL
    for (std::size_t dd = 0; dd < NR; ++dd) h[dd][0] = load(H + dd * m + c), h[dd][1] = load(H + dd * m + c + Wd);
    TRIPARTITE_UNROLL
    for (std::size_t jj = 0; jj < NJ; ++jj) {
      const V<T> x0 = load(hr + jj * stride + c), x1 = load(hr + jj * stride + c + Wd);
      TRIPARTITE_UNROLL
      for (std::size_t dd = 0; dd < NR; ++dd) {
        a[jj][dd][0] += h[dd][0] * x0;
        a[jj][dd][1] += h[dd][1] * x1;
      }
    }
  }
  for (std::size_t jj = 0; jj < NJ; ++jj)
    for (std::size_t dd = 0; dd < NR; ++dd) acc[jj][dd0 + dd][0] = a[jj][dd][0], acc[jj][dd0 + dd][1] = a[jj][dd][1];
}

// One pass over a block's synapses (rows d < Dv of stride m, starting at the block's first
// neuron) for a segment of S windows, taken in order for every synapse:
//   window j writes:  H[d][r] <- kg[j] H[d][r] + v[j][d] w_j[r]
//   window j reads:   dots[j][d] = sum_r H[d][r] h_j[r]  (H as it is at that window)
// w_j and h_j are rows j of `w` and `hr` (stride `stride`). The arithmetic applied to each synapse
// does not depend on S, so running windows one at a time or in segments gives identical bits.
// The windows up to the segment's last write go window by window through each tile of synapses
// (the reads among them accumulate in memory: up to S x 8 vectors). The reads after it see the
// synapses as the pass leaves them, so they are taken afterwards in register tiles of 2 rows by 3
// reads, with the same sums in the same order (a read of 197 queries at 6.4M synapses, float32,
// 2 threads, segments of 32 windows: 0.815 of the time with the tiles as without, 8 pairs, in a
// build that kept every window's rates between the passes; the same bits). A read-only segment leaves the synapses as they are, without storing them back.
template <class T>
void synapse_segment(T* H, std::size_t m, std::size_t Dv, std::size_t nb, const bool* is_write, std::size_t S,
                     const T* kg, const T* values, const T* w, const T* hr, std::size_t stride, double* dots,
                     std::size_t dots_stride) {
  constexpr std::size_t P = kPanel<T>, Wd = simd::W<T>;
  if (S > kMaxSegment) throw std::invalid_argument("synapse_segment: at most " + std::to_string(kMaxSegment) + " entries");
  const std::size_t full = full_panels<T>(nb);
  std::size_t mixed = 0;  // windows [0, mixed) change the synapses or read them between changes
  for (std::size_t j = 0; j < S; ++j)
    if (is_write[j]) mixed = j + 1;
  V<T> dacc[kMaxSegment][4][2];  // per window of the segment, per row of the group
  T tail[kMaxSegment][4];
  for (std::size_t d0 = 0; d0 < Dv; d0 += 4) {
    with_count<4>(std::min<std::size_t>(4, Dv - d0), [&](auto ND_) {
      constexpr std::size_t nd = decltype(ND_)::value;
      T* Hd = H + d0 * m;
      for (std::size_t j = 0; j < S; ++j)
        for (std::size_t dd = 0; dd < 4; ++dd) {
          dacc[j][dd][0] = dacc[j][dd][1] = V<T>{};
          tail[j][dd] = 0;
        }
      for (std::size_t c = 0; c < full && mixed; c += P) {
        V<T> acc[nd][2];
        TRIPARTITE_UNROLL
        for (std::size_t dd = 0; dd < nd; ++dd) {
          acc[dd][0] = load(Hd + dd * m + c);
          acc[dd][1] = load(Hd + dd * m + c + Wd);
        }
        for (std::size_t j = 0; j < mixed; ++j) {
          if (is_write[j]) {
            const V<T> w0 = load(w + j * stride + c), w1 = load(w + j * stride + c + Wd), f = splat(kg[j]);
            TRIPARTITE_UNROLL
            for (std::size_t dd = 0; dd < nd; ++dd) {
              const V<T> vb = splat(values[j * Dv + d0 + dd]);
              acc[dd][0] = acc[dd][0] * f + vb * w0;
              acc[dd][1] = acc[dd][1] * f + vb * w1;
            }
          } else {
            const V<T> h0 = load(hr + j * stride + c), h1 = load(hr + j * stride + c + Wd);
            TRIPARTITE_UNROLL
            for (std::size_t dd = 0; dd < nd; ++dd) {
              dacc[j][dd][0] += acc[dd][0] * h0;
              dacc[j][dd][1] += acc[dd][1] * h1;
            }
          }
        }
        TRIPARTITE_UNROLL
        for (std::size_t dd = 0; dd < nd; ++dd) {
          store(Hd + dd * m + c, acc[dd][0]);
          store(Hd + dd * m + c + Wd, acc[dd][1]);
        }
      }
      for (std::size_t r = full; r < nb; ++r)  // the tail, every window in order
        for (std::size_t dd = 0; dd < nd; ++dd) {
          T a = Hd[dd * m + r];
          for (std::size_t j = 0; j < S; ++j) {
            if (is_write[j])
              a = a * kg[j] + values[j * Dv + d0 + dd] * w[j * stride + r];
            else
              tail[j][dd] += a * hr[j * stride + r];
          }
          Hd[dd * m + r] = a;
        }
      // The reads after the last write, on the panels' final synapses: rows in pairs, reads in threes.
      for (std::size_t j0 = mixed; j0 < S; j0 += 3)
        for (std::size_t dd0 = 0; dd0 < nd; dd0 += 2) {
          const std::size_t nj = std::min<std::size_t>(3, S - j0), nr = std::min<std::size_t>(2, nd - dd0);
          auto tile = [&](auto NR_, auto NJ_) {
            read_tile_final<T, decltype(NR_)::value, decltype(NJ_)::value>(Hd + dd0 * m, m, hr + j0 * stride, stride,
                                                                           full, dacc + j0, dd0);
          };
          using one = std::integral_constant<std::size_t, 1>;
          using two = std::integral_constant<std::size_t, 2>;
          using three = std::integral_constant<std::size_t, 3>;
          if (nr == 2)
            nj == 3 ? tile(two{}, three{}) : nj == 2 ? tile(two{}, two{}) : tile(two{}, one{});
          else
            nj == 3 ? tile(one{}, three{}) : nj == 2 ? tile(one{}, two{}) : tile(one{}, one{});
        }
      for (std::size_t j = 0; j < S; ++j)
        if (!is_write[j])
          for (std::size_t dd = 0; dd < nd; ++dd)
            dots[j * dots_stride + d0 + dd] =
                simd::hsum<T>(dacc[j][dd][0]) + simd::hsum<T>(dacc[j][dd][1]) + static_cast<double>(tail[j][dd]);
    });
  }
}

// out[c] += sum_{j < rows} w[j] X[j * cols + c] for c < cols, in double: the causal intra-chunk
// sums of one query (X: the chunk's values in double with a last column of ones, so the last
// output gathers the weights themselves). Every column adds its terms in order of j, one fused
// multiply-add each, whichever block of columns holds it; blocks of 12 vectors stay in registers
// while all rows pass, so `out` is loaded and stored once, not once per row.
inline void weighted_rows(double* out, const double* w, const double* X, std::size_t rows, std::size_t cols) {
  constexpr std::size_t Wd = simd::W<double>;
  std::size_t c0 = 0;
  auto columns = [&](auto K_) {
    constexpr std::size_t K = decltype(K_)::value;
    V<double> acc[K];
    for (std::size_t k = 0; k < K; ++k) acc[k] = load(out + c0 + k * Wd);
    for (std::size_t j = 0; j < rows; ++j) {
      const V<double> wb = splat(w[j]);
      const double* x = X + j * cols + c0;
      for (std::size_t k = 0; k < K; ++k) acc[k] += wb * load(x + k * Wd);
    }
    for (std::size_t k = 0; k < K; ++k) store(out + c0 + k * Wd, acc[k]);
    c0 += K * Wd;
  };
  while (c0 + 12 * Wd <= cols) columns(std::integral_constant<std::size_t, 12>{});
  while (c0 + 4 * Wd <= cols) columns(std::integral_constant<std::size_t, 4>{});
  while (c0 + Wd <= cols) columns(std::integral_constant<std::size_t, 1>{});
  for (; c0 < cols; ++c0) {  // the tail
    double acc = out[c0];
    for (std::size_t j = 0; j < rows; ++j) acc += w[j] * X[j * cols + c0];
    out[c0] = acc;
  }
}

// The causal intra-chunk scores: out[i * out_stride + j] = sum_{r < nb} K[j * stride + r] P[i * stride + r]
// for j <= i < n (tiles of 4 queries by 3 keys; the few entries above the diagonal that a tile
// straddles are written too, the tiles wholly above it are skipped). Each score is summed in the
// same order whichever tile computes it.
template <class T>
void causal_scores(const T* K, const T* Pm, std::size_t stride, std::size_t n, std::size_t nb, double* out,
                   std::size_t out_stride) {
  constexpr std::size_t Wd = simd::W<T>;
  const std::size_t full = nb / Wd * Wd;
  for (std::size_t i0 = 0; i0 < n; i0 += 4) {
    const T* p[4];
    for (std::size_t ii = 0; ii < 4; ++ii) p[ii] = Pm + std::min(i0 + ii, n - 1) * stride;
    const std::size_t keys = std::min(n, i0 + 4);  // keys j <= the tile's last query
    for (std::size_t d0 = 0; d0 < keys; d0 += 3) {
      const T* h[3];
      for (std::size_t dd = 0; dd < 3; ++dd) h[dd] = K + std::min(d0 + dd, keys - 1) * stride;
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
        for (std::size_t dd = 0; dd < 3 && d0 + dd < keys; ++dd) {
          double s = simd::hsum<T>(acc[ii][dd]);
          for (std::size_t r = full; r < nb; ++r) s += static_cast<double>(h[dd][r] * p[ii][r]);
          out[(i0 + ii) * out_stride + d0 + dd] = s;
        }
    }
  }
}

}  // namespace tripartite::tiles
