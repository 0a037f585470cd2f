// The paper's steady state (MODEL.md section 1) for many heads at once:
//     y_t = H phi(q~_t) / a_t,  a_t = g . phi(q~_t),  H = sum_tau v_tau phi(k~_tau)^T,  g = sum_tau phi(k~_tau)
// bidirectional (write all keys, then read all queries) or causal (query t sees keys tau <= t).
//
// Hidden neurons are processed in blocks of kBlock; keys and queries in chunks of kChunk, so no
// feature matrix larger than kChunk x kBlock per thread is ever formed. Each block keeps its own
// log-scale C_b: its synapses are stored as H_b * exp(-C_b), with C_b the largest log-rate of a key
// seen by that block. Partial sums over a block are combined across blocks in double precision,
// in block order, after rescaling to a common reference: thread-count independent and safe from
// overflow.
#pragma once

#include <cmath>
#include <cstddef>
#include <vector>

#include "common.hpp"
#include "features.hpp"
#include "simd.hpp"
#include "tiles.hpp"

namespace tripartite {

inline constexpr std::size_t kChunk = 64;

template <class T>
struct AttentionArgs {
  std::size_t heads = 1, Lk = 0, Lq = 0, D = 0, Dv = 0, m = 0;
  const T* W = nullptr;  // heads x m x D
  const T* bias = nullptr;  // heads x m, per-neuron log-rate offsets (null: none)
  const T* Q = nullptr;  // heads x Lq x D (unscaled)
  const T* K = nullptr;  // heads x Lk x D (unscaled)
  const T* V = nullptr;  // heads x Lk x Dv
  T* Y = nullptr;        // heads x Lq x Dv
  double* log_a = nullptr;  // heads x Lq, log of the astrocyte response a_t (may be null)
  double input_scale = 1.0;  // sqrt(s)
  bool causal = false;
  int threads = 1;
};

namespace detail {

// Per-thread scratch for one (head, block) task.
template <class T>
struct BlockScratch {
  std::vector<T> packed, keys, queries, xk, xq;
  std::vector<double> key_off, query_off, key_max, query_max, scores;
  std::vector<const T*> rows;
  BlockScratch(std::size_t D, std::size_t Dv)
      : packed(D * kBlock), keys(kChunk * kBlock), queries(kChunk * kBlock), xk(kChunk * D), xq(kChunk * D),
        key_off(kChunk), query_off(kChunk), key_max(kChunk), query_max(kChunk), scores(kChunk * kChunk),
        rows(std::max(Dv + 1, kChunk)) {}
};

template <class T>
void scale_inputs(const T* X, std::size_t n, std::size_t D, double input_scale, std::size_t m, T* out,
                  double* offsets) {
  for (std::size_t i = 0; i < n; ++i) offsets[i] = scaled_input(X + i * D, D, input_scale, m, out + i * D);
}

// Sets the block's scale to at least `candidate`, rescaling its stored synapses and weights.
template <class T>
void raise_scale(double& C, double candidate, T* H, T* g, std::size_t Dv, std::size_t m, std::size_t r0,
                 std::size_t nb) {
  if (candidate <= C) return;
  if (C != kNegInf) {
    const T f = static_cast<T>(std::exp(C - candidate));
    for (std::size_t d = 0; d < Dv; ++d)
      for (std::size_t r = 0; r < nb; ++r) H[d * m + r0 + r] *= f;
    for (std::size_t r = 0; r < nb; ++r) g[r0 + r] *= f;
  }
  C = candidate;
}

// Partial readout of n queries against one block: out[i] = (H_b psi_i, g_b . psi_i), Dv + 1 doubles.
template <class T>
void read_block(BlockScratch<T>& s, const T* P, std::size_t n, std::size_t Dv, std::size_t nb, const T* H, const T* g,
                std::size_t m, std::size_t r0, double* out) {
  for (std::size_t d = 0; d < Dv; ++d) s.rows[d] = H + d * m + r0;
  s.rows[Dv] = g + r0;
  tiles::dot_rows(s.rows.data(), Dv + 1, P, kBlock, n, nb, out, Dv + 1);
}

// Combines per-block partials of one query: block b's partial starts at partial[b * stride] and
// its log-scale is scales[b * scale_stride].
template <class T>
void combine_blocks(const double* partial, const double* scales, std::size_t nb, std::size_t stride,
                    std::size_t scale_stride, std::size_t Dv, T* y, double* log_a) {
  double ref = kNegInf;
  for (std::size_t b = 0; b < nb; ++b)
    if (partial[b * stride + Dv] > 0) ref = std::max(ref, scales[b * scale_stride]);
  if (ref == kNegInf) {  // every feature underflowed: no key is visible (or no key at all)
    for (std::size_t d = 0; d < Dv; ++d) y[d] = 0;
    if (log_a) *log_a = kNegInf;
    return;
  }
  double den = 0;
  for (std::size_t b = 0; b < nb; ++b) den += scaled(partial[b * stride + Dv], scales[b * scale_stride] - ref);
  for (std::size_t d = 0; d < Dv; ++d) {
    double num = 0;
    for (std::size_t b = 0; b < nb; ++b) num += scaled(partial[b * stride + d], scales[b * scale_stride] - ref);
    y[d] = static_cast<T>(num / den);
  }
  if (log_a) *log_a = ref + std::log(den);
}

}  // namespace detail

template <class T>
void steady_state_attention(const AttentionArgs<T>& a) {
  const std::size_t heads = a.heads, D = a.D, Dv = a.Dv, m = a.m;
  const std::size_t nb = n_blocks(m);
  const std::size_t tasks = heads * nb;
  const std::size_t stride = Dv + 1;
  std::vector<T> H(heads * Dv * m, T(0)), g(heads * m, T(0));
  std::vector<double> C(tasks, kNegInf);  // log-scale of each (head, block)
  std::vector<double> partial(tasks * kChunk * stride), partial_scale(tasks * kChunk);
  const int nthreads = a.threads;
  std::vector<detail::BlockScratch<T>> scratch;
  scratch.reserve(static_cast<std::size_t>(nthreads));
  for (int i = 0; i < nthreads; ++i) scratch.emplace_back(D, Dv);
  auto my_scratch = [&]() -> detail::BlockScratch<T>& { return scratch[thread_slot()]; };

  // Loads the keys of chunk [t0, t0+n) of head hd for block (r0, nbk): exp-rates relative to the
  // block's (raised) scale, in s.keys.
  auto load_keys = [&](detail::BlockScratch<T>& s, std::size_t hd, std::size_t task, std::size_t t0, std::size_t n,
                       std::size_t r0, std::size_t nbk) {
    detail::scale_inputs(a.K + (hd * a.Lk + t0) * D, n, D, a.input_scale, m, s.xk.data(), s.key_off.data());
    tiles::log_rates(s.packed.data(), a.W + hd * m * D, D, r0, nbk, s.xk.data(), s.key_off.data(),
                     a.bias ? a.bias + hd * m + r0 : nullptr, n, s.keys.data(), kBlock, s.key_max.data());
    double mx = kNegInf;
    for (std::size_t i = 0; i < n; ++i) mx = std::max(mx, s.key_max[i]);
    detail::raise_scale(C[task], mx, H.data() + hd * Dv * m, g.data() + hd * m, Dv, m, r0, nbk);
    for (std::size_t i = 0; i < n; ++i) simd::exp_shifted(s.keys.data() + i * kBlock, nbk, static_cast<T>(C[task]));
  };
  auto load_queries = [&](detail::BlockScratch<T>& s, std::size_t hd, std::size_t t0, std::size_t n, std::size_t r0,
                          std::size_t nbk) {
    detail::scale_inputs(a.Q + (hd * a.Lq + t0) * D, n, D, a.input_scale, m, s.xq.data(), s.query_off.data());
    tiles::log_rates(s.packed.data(), a.W + hd * m * D, D, r0, nbk, s.xq.data(), s.query_off.data(),
                     a.bias ? a.bias + hd * m + r0 : nullptr, n, s.queries.data(), kBlock, s.query_max.data());
    for (std::size_t i = 0; i < n; ++i)
      simd::exp_shifted(s.queries.data() + i * kBlock, nbk, static_cast<T>(s.query_max[i]));
  };
  auto combine = [&](std::size_t t0, std::size_t n) {
    parallel_for(heads * n, nthreads, [&](std::size_t job) {
      const std::size_t hd = job / n, i = job % n;
      const std::size_t first = hd * nb * kChunk + i;  // (task = hd * nb + 0, query i); tasks are kChunk apart
      double* la = a.log_a ? a.log_a + hd * a.Lq + t0 + i : nullptr;
      detail::combine_blocks(partial.data() + first * stride, partial_scale.data() + first, nb, kChunk * stride, kChunk,
                             Dv, a.Y + (hd * a.Lq + t0 + i) * Dv, la);
    });
  };

  if (!a.causal) {
    // Writing phase: each (head, block) task takes every key chunk in order; no synchronisation.
    parallel_for(tasks, nthreads, [&](std::size_t task) {
      const std::size_t hd = task / nb, b = task % nb;
      const std::size_t r0 = block_begin(b), nbk = block_end(b, m) - r0;
      auto& s = my_scratch();
      tiles::pack_panels(a.W + hd * m * D, D, r0, tiles::full_panels<T>(nbk), s.packed.data());
      for (std::size_t t0 = 0; t0 < a.Lk; t0 += kChunk) {
        const std::size_t n = std::min(kChunk, a.Lk - t0);
        load_keys(s, hd, task, t0, n, r0, nbk);
        tiles::hebbian_write(s.keys.data(), kBlock, a.V + (hd * a.Lk + t0) * Dv, n, Dv, nbk, H.data() + hd * Dv * m,
                             g.data() + hd * m, m, r0);
      }
    });
    // Reading phase, one chunk of queries at a time.
    for (std::size_t t0 = 0; t0 < a.Lq; t0 += kChunk) {
      const std::size_t n = std::min(kChunk, a.Lq - t0);
      parallel_for(tasks, nthreads, [&](std::size_t task) {
        const std::size_t hd = task / nb, b = task % nb;
        const std::size_t r0 = block_begin(b), nbk = block_end(b, m) - r0;
        auto& s = my_scratch();
        tiles::pack_panels(a.W + hd * m * D, D, r0, tiles::full_panels<T>(nbk), s.packed.data());
        load_queries(s, hd, t0, n, r0, nbk);
        detail::read_block(s, s.queries.data(), n, Dv, nbk, H.data() + hd * Dv * m, g.data() + hd * m, m, r0,
                           partial.data() + task * kChunk * stride);
        for (std::size_t i = 0; i < n; ++i) partial_scale[task * kChunk + i] = C[task] + s.query_max[i];
      });
      combine(t0, n);
    }
    return;
  }

  // Causal: chunk by chunk, read (state + masked intra-chunk scores), then write.
  for (std::size_t t0 = 0; t0 < a.Lq; t0 += kChunk) {
    const std::size_t n = std::min(kChunk, a.Lq - t0);
    parallel_for(tasks, nthreads, [&](std::size_t task) {
      const std::size_t hd = task / nb, b = task % nb;
      const std::size_t r0 = block_begin(b), nbk = block_end(b, m) - r0;
      auto& s = my_scratch();
      T* Hh = H.data() + hd * Dv * m;
      T* gh = g.data() + hd * m;
      tiles::pack_panels(a.W + hd * m * D, D, r0, tiles::full_panels<T>(nbk), s.packed.data());
      load_keys(s, hd, task, t0, n, r0, nbk);
      load_queries(s, hd, t0, n, r0, nbk);
      double* out = partial.data() + task * kChunk * stride;
      detail::read_block(s, s.queries.data(), n, Dv, nbk, Hh, gh, m, r0, out);
      const T* Vc = a.V + (hd * a.Lk + t0) * Dv;
      // Intra-chunk scores phi(q_i) . phi(k_j) on this block, then the masked sums over j <= i.
      for (std::size_t j = 0; j < n; ++j) s.rows[j] = s.keys.data() + j * kBlock;
      tiles::dot_rows(s.rows.data(), n, s.queries.data(), kBlock, n, nbk, s.scores.data(), kChunk);
      for (std::size_t i = 0; i < n; ++i) {
        double* o = out + i * stride;
        for (std::size_t j = 0; j <= i; ++j) {
          const double score = s.scores[i * kChunk + j];
          for (std::size_t d = 0; d < Dv; ++d) o[d] += score * static_cast<double>(Vc[j * Dv + d]);
          o[Dv] += score;
        }
        partial_scale[task * kChunk + i] = C[task] + s.query_max[i];
      }
      tiles::hebbian_write(s.keys.data(), kBlock, Vc, n, Dv, nbk, Hh, gh, m, r0);
    });
    combine(t0, n);
  }
}

}  // namespace tripartite
