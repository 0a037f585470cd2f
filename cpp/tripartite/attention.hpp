// The paper's steady state (MODEL.md section 1) for many heads at once:
//     y_t = H phi(q~_t) / a_t,  a_t = g . phi(q~_t),  H = sum_tau v_tau phi(k~_tau)^T,  g = sum_tau phi(k~_tau)
// bidirectional (write all keys, then read all queries) or causal (query t sees keys tau <= t).
//
// Hidden neurons are processed in blocks of kNeuronBlock, a few consecutive blocks of one head per
// task. For each block the task packs the block's rows of W, writes every key into the block's own
// synapses (per-thread scratch, never a full m x Dv array) and reads every query from them. Keys
// and queries go in chunks of kChunk, so no feature matrix larger than kChunk x kNeuronBlock per
// thread is ever formed. Each block keeps its own log-scale C_b: its synapses are stored as
// H_b exp(-C_b), with C_b within a headroom of the largest key log-rate the block has seen. The
// blocks' partial readouts are folded in double precision, in block order (within a task, then
// across tasks), rescaled to a running reference: thread-count independent and safe from overflow.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

#include "common.hpp"
#include "features.hpp"
#include "tiles.hpp"

namespace tripartite {

// Tokens per chunk: a multiple of the register tiles' 6 rows (64 left a 4-row tile in every
// chunk), and the paper's L = 197 is three chunks instead of four.
inline constexpr std::size_t kChunk = 72;
// Hidden neurons per block: a block's packed weights, synapses and one chunk of features (about
// 130 KB each) fit a core's 512 KB L2 together, and a chunk's feature rows (2 KB apart) span half
// as many pages as with 1024 (the Hebbian write ran 7 % faster). A task runs kBlocksPerTask
// consecutive blocks of one head and folds their partials itself, in block order, while they are
// in cache: one head at the paper's m = 1e5 is 98 tasks, which two threads share to within one
// task in 49, with half the partials of one task per block. Results do not depend on either
// constant beyond rounding.
inline constexpr std::size_t kNeuronBlock = 512;
inline constexpr std::size_t kBlocksPerTask = 2;
static_assert(kNeuronBlock <= tiles::kMaxRatesBlock, "shifted_rates takes a whole block");
// Row stride of a chunk's feature rows: 16 values (a cache line or two) more than a block, so the
// rows of a chunk fall in different cache sets (a power-of-two stride puts them all in one set).
inline constexpr std::size_t kRow = kNeuronBlock + 16;

// Bytes of block partials the steady state keeps at once by default (it folds them into the
// running sums every group of blocks); at least one block per thread is kept whatever this says.
// The result does not depend on it (tested).
inline constexpr std::size_t kPartialBudget = std::size_t(16) << 20;

template <class T>
struct AttentionArgs {
  std::size_t heads = 1, Lk = 0, Lq = 0, D = 0, Dv = 0, m = 0;
  const T* W = nullptr;  // (heads, or as many as w_index names) x m x D
  // Head h uses W's head w_index[h] (null: head h). Weights shared by several heads (a batch of
  // sequences with per-head weights) are then read in place instead of copied per head.
  const std::int64_t* w_index = nullptr;
  const T* bias = nullptr;  // heads x m, per-neuron log-rate offsets (null: none)
  const T* Q = nullptr;  // heads x Lq x D (unscaled)
  const T* K = nullptr;  // heads x Lk x D (unscaled)
  const T* V = nullptr;  // heads x Lk x Dv
  // heads x Lk (null: every key): 0 for a key that is not written (padding). Its log-rate
  // maximum is taken as -inf, so it weighs 0 and never sets a block's scale.
  const std::uint8_t* key_mask = nullptr;
  T* Y = nullptr;        // heads x Lq x Dv
  double* log_a = nullptr;  // heads x Lq, log of the astrocyte response a_t (may be null)
  // heads x Lq (may be null): log of a bound on what underflow may have taken from a_t (see
  // detail::underflow_bound); -inf where nothing can have been lost.
  double* log_underflow = nullptr;
  double input_scale = 1.0;  // sqrt(s)
  bool causal = false;
  int threads = 1;
  std::size_t partial_budget = kPartialBudget;
};

namespace detail {

// Per-thread scratch for one task: a block's packed weights, a chunk of key and of query features,
// the block's own synapses and astrocyte weights, and its partial readout before the task's fold.
template <class T>
struct BlockScratch {
  std::size_t Dvp;
  scratch_vector<T> packed, keys, queries, H, g, vp, key_w;  // written before read (vp's padding: zeroed)
  std::vector<double> key_max, query_max, read_w, row_w, scores, sums;
  scratch_vector<double> part, part_scale, part_floor;  // one block's partial readout of every query, before its fold
  BlockScratch(std::size_t D, std::size_t Dv, std::size_t Lq)
      : Dvp(tiles::padded_columns<T>(Dv)), packed(D * kNeuronBlock), keys(kChunk * kRow), queries(kChunk * kRow),
        H(kNeuronBlock * Dvp), g(kNeuronBlock), vp(kChunk * Dvp, T(0)), key_w(kChunk), key_max(kChunk),
        query_max(kChunk), read_w(kChunk), row_w(kChunk), scores(kChunk * kChunk), sums(kChunk * (Dvp + 1)), part(Lq * (Dv + 1)),
        part_scale(Lq), part_floor(Lq) {}
};

// Raises the block's scale C when a chunk's largest key log-rate `candidate` exceeds it by more
// than a headroom of log(max T) / 8 (e^11 in float, e^88 in double), rescaling the stored synapses
// and weights. Below that, the chunk's keys simply carry weights exp(M_t - C) > 1: floating point
// does not care about the scale, and skipping the rescale saves a pass over the block's synapses
// for nearly every chunk after the first. Nothing can overflow: |v| <= sqrt(max T) is enforced.
template <class T>
void raise_scale(double& C, double candidate, T* H, std::size_t columns, T* g, std::size_t nb) {
  const double headroom = std::log(static_cast<double>(std::numeric_limits<T>::max())) / 8;
  if (candidate <= C + headroom) return;  // C = -inf (nothing written yet) compares as -inf
  if (C != kNegInf) {  // rescale the block's rows in use: nb rows of each panel column (ld kNeuronBlock)
    const T f = static_cast<T>(std::exp(C - candidate));
    constexpr std::size_t P = tiles::kPanel<T>;
    for (std::size_t c = 0; c < columns / P; ++c)
      for (std::size_t i = 0; i < nb * P; ++i) H[c * kNeuronBlock * P + i] *= f;
    for (std::size_t r = 0; r < nb; ++r) g[r] *= f;
  }
  C = candidate;
}

// What underflow can take from a block's partial denominator, in the units of its scale C + M_q:
// underflow_log_bound over the block's neurons with the weight F = sum_t f_t, the block's total
// key weight (a query feature <= 1 times g_r <= F, a key feature <= 1 times f_t). The features
// are relative to each row's own maximum, so when every key-query product of a query lies far
// below those maxima (inputs with |x~|^2 in the thousands in float) the denominator is of the
// order of this bound or below it, and the query's result is no longer the float rounding of the
// exact one. The caller compares the bound with a_t (attention.py recomputes such queries in double).
template <class T>
double underflow_bound(std::size_t nb, double F) {
  return underflow_log_bound<T>(nb, std::log(F));  // F = 0 (no key): -inf, nothing to lose
}

// Running combination of one query's block partials, taken in block order (common.hpp:
// fold_scaled) over blocks whose denominator is positive (a zero partial is a block where every key
// feature underflowed: it adds nothing). The result depends on the block order only, never on how
// the blocks were grouped or which thread computed them.
inline void fold_partial(const double* partial, double scale, std::size_t n, double* acc, double& ref) {
  if (!(partial[n - 1] > 0)) return;
  fold_scaled(ref, scale, acc, partial, n);
}

}  // namespace detail

template <class T>
void steady_state_attention(const AttentionArgs<T>& a) {
  const std::size_t heads = a.heads, D = a.D, Dv = a.Dv, m = a.m, Lq = a.Lq, Lk = a.Lk;
  const std::size_t nb = (m + kNeuronBlock - 1) / kNeuronBlock;  // blocks per head
  const std::size_t per_head = (nb + kBlocksPerTask - 1) / kBlocksPerTask;  // tasks per head
  const std::size_t tasks = heads * per_head;
  const std::size_t stride = Dv + 1;
  const int nthreads = a.threads;
  std::vector<detail::BlockScratch<T>> scratch;
  scratch.reserve(static_cast<std::size_t>(nthreads));
  for (int i = 0; i < nthreads; ++i) scratch.emplace_back(D, Dv, Lq);
  auto my_scratch = [&]() -> detail::BlockScratch<T>& { return scratch[thread_slot()]; };

  const std::size_t per_task = std::max<std::size_t>(1, Lq * stride * sizeof(double));
  const std::size_t group =
      std::min(tasks, std::max<std::size_t>(static_cast<std::size_t>(nthreads), a.partial_budget / per_task));
  scratch_vector<double> partial(group * Lq * stride), partial_scale(group * Lq), partial_floor(group * Lq);  // every entry written by its task
  std::vector<double> acc(heads * Lq * stride, 0.0), ref(heads * Lq, kNegInf), floor(heads * Lq, kNegInf);

  // The scaled keys and queries (x~ log2(e)) and their offsets, once per call: every block of a
  // head reads the same ones.
  scratch_vector<T> xk(heads * Lk * D), xq(heads * Lq * D);
  std::vector<double> key_off(heads * Lk), query_off(heads * Lq);
  auto weights = [&](std::size_t hd) { return a.W + (a.w_index ? std::size_t(a.w_index[hd]) : hd) * m * D; };
  auto scale_rows = [&](const T* X, std::size_t rows, T* out, double* offsets) {
    parallel_for(rows, nthreads, [&](std::size_t i) {
      offsets[i] = scaled_input(X + i * D, D, a.input_scale, m, out + i * D);
    });
  };
  scale_rows(a.K, heads * Lk, xk.data(), key_off.data());
  scale_rows(a.Q, heads * Lq, xq.data(), query_off.data());
  // Causal: the values in double with a column of ones (stride Dv + 1), once per call, for the
  // intra-chunk sums (tiles::weighted_rows) of every block.
  scratch_vector<double> vd(a.causal ? heads * Lk * stride : 0);  // every entry written below
  if (a.causal)
    parallel_for(heads * Lk, nthreads, [&](std::size_t row) {
      for (std::size_t d = 0; d < Dv; ++d) vd[row * stride + d] = static_cast<double>(a.V[row * Dv + d]);
      vd[row * stride + Dv] = 1.0;
    });

  // Key features of chunk [t0, t0 + n) for the block: each key's row exponentiated against its own
  // maximum M_t (s.keys, s.key_max); returns the chunk's largest M_t.
  auto load_keys = [&](detail::BlockScratch<T>& s, std::size_t hd, std::size_t t0, std::size_t n, std::size_t r0,
                       std::size_t nbk) {
    const std::size_t row = hd * Lk + t0;
    tiles::shifted_rates(s.packed.data(), weights(hd), D, r0, nbk, xk.data() + row * D, key_off.data() + row,
                         a.bias ? a.bias + hd * m + r0 : nullptr, n, s.keys.data(), kRow, s.key_max.data());
    double mx = kNegInf;
    if (a.key_mask)
      for (std::size_t i = 0; i < n; ++i)
        if (!a.key_mask[row + i]) s.key_max[i] = kNegInf;
    for (std::size_t i = 0; i < n; ++i) mx = std::max(mx, s.key_max[i]);
    return mx;
  };
  // Before the chunk's keys are written: the block's scale C is raised if needed (so the weights
  // f_t = exp(M_t - C) stay <= e^headroom), the weights go to s.key_w and the values times f_t,
  // zero-padded to Dvp columns, to s.vp.
  // F, the sum of the block's key weights so far (in the units of C), follows. A masked key
  // (M_t = -inf) weighs 0.
  auto key_weight = [](const detail::BlockScratch<T>& s, std::size_t j, double scale) {
    return s.key_max[j] == kNegInf ? 0.0 : std::exp(s.key_max[j] - scale);
  };
  auto weigh_keys = [&](detail::BlockScratch<T>& s, std::size_t hd, double& C, double& F, double mx, std::size_t t0,
                        std::size_t n, std::size_t nbk) {
    const double C_old = C;
    detail::raise_scale(C, mx, s.H.data(), s.Dvp, s.g.data(), nbk);
    if (C != C_old) F = C_old == kNegInf ? 0.0 : F * std::exp(C_old - C);
    for (std::size_t i = 0; i < n; ++i) {
      const T f = static_cast<T>(key_weight(s, i, C));
      s.key_w[i] = f;
      F += static_cast<double>(f);
      const T* v = a.V + (hd * Lk + t0 + i) * Dv;
      for (std::size_t d = 0; d < Dv; ++d) s.vp[i * s.Dvp + d] = f * v[d];
    }
  };
  auto load_queries = [&](detail::BlockScratch<T>& s, std::size_t hd, std::size_t t0, std::size_t n, std::size_t r0,
                          std::size_t nbk) {
    const std::size_t row = hd * Lq + t0;
    tiles::shifted_rates(s.packed.data(), weights(hd), D, r0, nbk, xq.data() + row * D, query_off.data() + row,
                         a.bias ? a.bias + hd * m + r0 : nullptr, n, s.queries.data(), kRow, s.query_max.data());
  };

  // One block of one head: its synapses are written and read here alone, so the block's partial
  // readout of every query (out, with log-scales out_scale) is complete when this returns.
  auto run_block = [&](detail::BlockScratch<T>& s, std::size_t hd, std::size_t b, double* out, double* out_scale,
                       double* out_floor) {
    const std::size_t r0 = b * kNeuronBlock, nbk = std::min(m, r0 + kNeuronBlock) - r0;
    double C = kNegInf;  // the block's log-scale: its synapses are stored as H_b exp(-C)
    double F = 0;        // the block's total key weight, in the units of C
    tiles::pack_panels(weights(hd), D, r0, tiles::full_panels<T>(nbk), s.packed.data());
    if (a.causal || Lk == 0) {  // the state is read before (or without) any write: clear it
      std::fill(s.H.begin(), s.H.end(), T(0));
      std::fill(s.g.begin(), s.g.end(), T(0));
    }
    if (!a.causal) {
      for (std::size_t t0 = 0; t0 < Lk; t0 += kChunk) {  // the first chunk's write starts from zero
        const std::size_t n = std::min(kChunk, Lk - t0);
        weigh_keys(s, hd, C, F, load_keys(s, hd, t0, n, r0, nbk), t0, n, nbk);
        tiles::hebbian_write(s.keys.data(), kRow, s.vp.data(), n, s.Dvp, nbk, s.H.data(), kNeuronBlock, s.g.data(),
                             s.key_w.data(), t0 == 0);
      }
      const double floor = detail::underflow_bound<T>(nbk, F);
      for (std::size_t t0 = 0; t0 < Lq; t0 += kChunk) {
        const std::size_t n = std::min(kChunk, Lq - t0);
        load_queries(s, hd, t0, n, r0, nbk);
        tiles::readout<T, kRow>(s.queries.data(), n, nbk, s.H.data(), kNeuronBlock, Dv, s.g.data(), out + t0 * stride,
                                s.sums.data());
        for (std::size_t i = 0; i < n; ++i) {
          out_scale[t0 + i] = C + s.query_max[i];
          out_floor[t0 + i] = floor + C + s.query_max[i];
        }
      }
      return;
    }
    // Causal: chunk by chunk, read (the state so far + masked intra-chunk scores), then write.
    // Query i is read at its own scale P_i = max(C, max_{j <= i} M_j - headroom): the chunk's own
    // keys up to i are ignored unless they exceed C by more than a double headroom, and later keys
    // play no part (a large key late in the chunk must not push the earlier keys' weights, or the
    // stored state, out of range for the queries before it). The intra-chunk weights
    // exp(M_j - P_i) <= e^headroom are kept in double. P_i only changes where a key raises it, so
    // the weights are recomputed only there.
    const double read_headroom = std::log(std::numeric_limits<double>::max()) / 4;
    for (std::size_t t0 = 0; t0 < Lq; t0 += kChunk) {
      const std::size_t n = std::min(kChunk, Lq - t0);
      const double mx = load_keys(s, hd, t0, n, r0, nbk);
      load_queries(s, hd, t0, n, r0, nbk);
      double* o = out + t0 * stride;
      tiles::readout<T, kRow>(s.queries.data(), n, nbk, s.H.data(), kNeuronBlock, Dv, s.g.data(), o, s.sums.data());
      // Intra-chunk scores phi(q_i) . phi(k_j) on this block, then the masked sums over j <= i.
      tiles::causal_scores(s.keys.data(), s.queries.data(), kRow, n, nbk, s.scores.data(), kChunk);
      // F_keys: sum_{j<=i} read_w[j]; f_state: the state's factor exp(C - P) (0 if nothing is written yet)
      double prefix = kNegInf, P = std::numeric_limits<double>::quiet_NaN(), F_keys = 0, f_state = 0;
      for (std::size_t i = 0; i < n; ++i) {
        prefix = std::max(prefix, s.key_max[i]);
        const double P_i = std::max(C, prefix - read_headroom);
        if (!(P_i == P)) {  // the first query, or key i raised the scale: the weights so far at P_i
          P = P_i;
          f_state = C == kNegInf ? 0.0 : std::exp(C - P);
          F_keys = 0;
          for (std::size_t j = 0; j < i; ++j) F_keys += s.read_w[j] = key_weight(s, j, P);
        }
        F_keys += s.read_w[i] = key_weight(s, i, P);
        if (P != C)
          for (std::size_t d = 0; d < stride; ++d) o[i * stride + d] *= f_state;
        for (std::size_t j = 0; j <= i; ++j) s.row_w[j] = s.scores[i * kChunk + j] * s.read_w[j];
        tiles::weighted_rows(o + i * stride, s.row_w.data(), vd.data() + (hd * Lk + t0) * stride, i + 1, stride);
        // the key weight query i is read with: the state's and the chunk's keys j <= i
        out_scale[t0 + i] = P + s.query_max[i];
        out_floor[t0 + i] = detail::underflow_bound<T>(nbk, F * f_state + F_keys) + P + s.query_max[i];
      }
      weigh_keys(s, hd, C, F, mx, t0, n, nbk);
      tiles::hebbian_write(s.keys.data(), kRow, s.vp.data(), n, s.Dvp, nbk, s.H.data(), kNeuronBlock, s.g.data(),
                           s.key_w.data(), false);
    }
  };

  // One task: blocks [first, last) of one head, one after another, each block's partial folded into
  // the task's in block order. A query whose features underflowed on every block gets zeros (the
  // fold across tasks skips it).
  auto run_task = [&](std::size_t task, double* out, double* out_scale, double* out_floor) {
    auto& s = my_scratch();
    const std::size_t hd = task / per_head, first = task % per_head * kBlocksPerTask;
    std::fill(out_scale, out_scale + Lq, kNegInf);
    std::fill(out_floor, out_floor + Lq, kNegInf);
    for (std::size_t b = first; b < std::min(nb, first + kBlocksPerTask); ++b) {
      run_block(s, hd, b, s.part.data(), s.part_scale.data(), s.part_floor.data());
      for (std::size_t i = 0; i < Lq; ++i) {
        detail::fold_partial(s.part.data() + i * stride, s.part_scale[i], stride, out + i * stride, out_scale[i]);
        out_floor[i] = log_add_exp(out_floor[i], s.part_floor[i]);
      }
    }
    for (std::size_t i = 0; i < Lq; ++i)
      if (out_scale[i] == kNegInf) std::fill_n(out + i * stride, stride, 0.0);
  };

  // Tasks run in groups (all at once when their partials fit kPartialBudget); each group's
  // partials are folded into the running sums in task order.
  for (std::size_t first = 0; first < tasks; first += group) {
    const std::size_t count = std::min(group, tasks - first);
    parallel_for(
        count, nthreads,
        [&](std::size_t k) {
          run_task(first + k, partial.data() + k * Lq * stride, partial_scale.data() + k * Lq,
                   partial_floor.data() + k * Lq);
        },
        true);
    parallel_for(heads * Lq, nthreads, [&](std::size_t job) {
      const std::size_t hd = job / Lq, i = job % Lq;
      // this head's tasks in the group: [hd per_head, (hd + 1) per_head) within [first, first + count)
      const std::size_t lo = std::max(first, hd * per_head), hi = std::min(first + count, (hd + 1) * per_head);
      for (std::size_t task = lo; task < hi; ++task) {
        const std::size_t k = task - first;
        detail::fold_partial(partial.data() + (k * Lq + i) * stride, partial_scale[k * Lq + i], stride,
                             acc.data() + job * stride, ref[job]);
        floor[job] = log_add_exp(floor[job], partial_floor[k * Lq + i]);
      }
    });
  }
  parallel_for(heads * Lq, nthreads, [&](std::size_t job) {
    const double* s = acc.data() + job * stride;
    T* y = a.Y + job * Dv;
    const bool visible = ref[job] != kNegInf;  // else every feature underflowed, or there is no key
    for (std::size_t d = 0; d < Dv; ++d) y[d] = visible ? static_cast<T>(s[d] / s[Dv]) : T(0);
    if (a.log_a) a.log_a[job] = visible ? ref[job] + std::log(s[Dv]) : kNegInf;
    if (a.log_underflow) a.log_underflow[job] = floor[job];
  });
}

}  // namespace tripartite
