// The continuous-time neuron-astrocyte network (MODEL.md section 2), advanced window by window.
//
// State of each head, in the arrays the caller owns:
//   H (Dv x m) synapses, g (m) neuron-to-astrocyte weights, h (m) hidden rates, and six doubles
//   `scalars` = (a, s_a, s_H, s_h, B_g, B_h).
// Rates span many orders of magnitude, so arrays are stored relative to a log-scale:
//   true H = H * exp(s_H), true g = g * exp(s_H), true h = h * exp(s_h), true a = a * exp(s_a).
// B_g and B_h are logs of upper bounds on max_r g_r and max_r h_r; the scales follow them, so
// stored values stay of order one and neither overflow nor underflow as a whole.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <functional>
#include <vector>

#include "common.hpp"
#include "features.hpp"
#include "tiles.hpp"
#include "window.hpp"

namespace tripartite {

enum Scalar : std::size_t { kA = 0, kScaleA, kScaleH, kScaleh, kBoundG, kBoundh, kNumScalars };

struct NetworkParams {
  std::size_t heads = 1, m = 0, D = 0, Dv = 0;
  double input_scale = 1.0;  // sqrt(s): x~ = x sqrt(s)
  WindowMap write_map{}, read_map{};
  int threads = 1;
};

template <class T>
struct NetworkState {
  const T* W;  // heads x m x D
  const T* bias;  // heads x m per-neuron log-rate offsets, or null
  T* H;        // heads x Dv x m
  T* g;        // heads x m
  T* h;        // heads x m
  double* scalars;  // heads x kNumScalars
};

// One window of the schedule: a token to write (keys[index], values[index]) or a query to read
// (queries[index], output written to outputs[index]).
struct Window {
  bool write;
  std::size_t index;
};

template <class T>
struct WindowInputs {
  const T* keys = nullptr;     // heads x n_keys x D
  const T* values = nullptr;   // heads x n_keys x Dv
  const T* queries = nullptr;  // heads x n_queries x D
  std::size_t n_keys = 0, n_queries = 0;
  T* outputs = nullptr;        // heads x n_queries x Dv
  double* log_astro = nullptr;  // heads x n_queries: log a at the end of each read window
  // heads x n_queries (may be null): log of a bound, relative to a, on what underflow may have
  // taken from each read (see run_windows); -inf where nothing can have been lost.
  double* log_underflow = nullptr;
  // heads x n_windows x 6 (may be null): for each window of the call, its head's state at the
  // window's start as a monitor of the calcium needs it, in true units: the calcium a and the
  // Gram sums (g.h, g.u, h.h, h.u, u.u) the window's calcium update takes (u: the window's input
  // rates). A calcium monitor's samples follow from these and the window's maps (monitor.py), with
  // no pass of their own and with the run in segments.
  double* window_sums = nullptr;
  // heads x n_windows x 2 x Dv (may be null): for each read window of the call, H h and H u at
  // the window's start in true units (h: the hidden rates then, u: the query's rates), what a
  // monitor of the outputs needs (y(s) = H h(s) / a(s) inside the window); write windows' rows are
  // left as they are. Each read then takes two more readouts in the pass over the synapses (and
  // the workspace and scratch hold three rows for it).
  double* window_reads = nullptr;
};

namespace detail {

// Coefficients per head and window: the update's five (stored units), c, the scales before the
// window (s_H, s_h) and the bound B_g after it.
inline constexpr std::size_t kCoef = 9;

// Windows advanced together: one pass over the synapses serves a whole segment of S windows (the
// synapses take a rank-S update) instead of one pass per window. The passes are bound by memory (a
// block's weights and synapses come from DRAM once per segment), so longer segments are faster:
// at 6.4M synapses (m = 1e5, D = Dv = 64, float32, 2 threads) a write of 197 tokens took 0.77 of
// the time with 16 windows and 0.67 with 32 as with 8, a read 0.81 and 0.68 (when the workspace
// still held every window's rates), with the same results bit for bit: the arithmetic applied to
// each synapse and each neuron does not depend on S. A segment's time grows with S, and so does the
// wait for Ctrl-C, which the core checks between segments: S is as long as kSegmentWork
// multiply-adds per segment allow (heads m (D + Dv) per window), between kMinSegment and kMaxSegment,
// and even: a stream stops only after a read, at an even window count, so an odd S would let it
// stop only at every other segment's end.
inline constexpr std::size_t kMinSegment = 8, kMaxSegment = 32;
static_assert(kMinSegment % 2 == 0 && kMaxSegment % 2 == 0, "segments have an even number of windows");
static_assert(3 * kMaxSegment <= tiles::kMaxSegment, "a segment's entries, three a read with window_reads");
static_assert(kBlock <= tiles::kMaxRatesBlock, "shifted_rates takes a whole block");
inline constexpr std::size_t kSegmentWork = std::size_t(1) << 32;

inline std::size_t segment_windows(std::size_t heads, std::size_t m, std::size_t D, std::size_t Dv) {
  const double per_window = std::max(1.0, double(heads) * double(m) * double(D + Dv));
  const auto S = static_cast<std::size_t>(std::clamp(double(kSegmentWork) / per_window, double(kMinSegment), double(kMaxSegment)));
  return S - S % 2;  // kMinSegment and kMaxSegment are even
}

// Work shared by the passes of one segment, sized once per call for segments of up to `seg` windows
// and `rows` entries of the pass over the synapses (3 seg with window_reads: see run_windows).
template <class T>
struct Workspace {
  std::size_t nb, seg, rows;
  std::vector<T> x_scaled;        // 2 x heads x seg x D (this segment's inputs and the next's)
  std::vector<double> offset;     // 2 x heads x seg
  std::vector<T> values;          // heads x rows x Dv: the values of the segment's writes
  std::vector<double> block_max;  // 2 x heads x seg x nb
  std::vector<double> gram;       // heads x seg x nb x 5: (g.h, g.u, h.h, h.u, u.u) per block
  std::vector<double> coef;       // heads x seg x kCoef
  std::vector<double> dots;       // heads x nb x rows x Dv: each read entry's H h, per block
  Workspace(const NetworkParams& p, std::size_t seg, std::size_t rows)
      : nb(n_blocks(p.m)),
        seg(seg),
        rows(rows),
        x_scaled(2 * p.heads * seg * p.D),
        offset(2 * p.heads * seg),
        values(p.heads * rows * std::max<std::size_t>(p.Dv, 1)),
        block_max(2 * p.heads * seg * nb),
        gram(p.heads * seg * nb * 5),
        coef(p.heads * seg * kCoef),
        dots(p.heads * nb * rows * std::max<std::size_t>(p.Dv, 1)) {}
};

// Per-thread scratch of the segment passes: u holds one block's rates of every window of the
// segment, exp(log-rate - block max). The coefficients of a segment need the maxima over all
// blocks first, so the rates are computed twice: for their maxima, in the pass over the previous
// segment (or, for a call's first segment, in a pass of its own), and again with their
// exponentials in the segment's own pass, bit for bit the same. Keeping every block's rates between
// the two instead held S x m values per head, a quarter of a 6.4M-synapse network's own state at
// 32 windows (its peak RSS above the baseline measured 1.39 of the payload; 1.17 without them).
// Against keeping them: write 0.649 -> 0.792, read 0.571 -> 0.662 of the time before longer segments
// (6.4M synapses, float32, 2 threads, 8 pairs); the maxima in a pass of their own for every segment
// measured 0.818 and 0.747.
template <class T>
struct SegmentScratch {
  aligned_vector<T> packed, u, w, hr;  // w: each write's increment of g per unit v; hr: h after each read
  std::vector<double> row_max;
  SegmentScratch(std::size_t D, std::size_t seg, std::size_t rows)
      : packed(D * kBlock), u(seg * kBlock), w(rows * kBlock), hr(rows * kBlock), row_max(seg) {}
};

}  // namespace detail

// Runs the windows of `schedule` in order. Between segments it calls `keep_going(done)` (if set)
// with the number of windows completed; when it returns false the run stops there, at a window
// boundary, with a consistent state. Returns the number of windows completed.
template <class T>
std::size_t run_windows(const NetworkParams& p, NetworkState<T> s, const WindowInputs<T>& in,
                        const std::vector<Window>& schedule,
                        const std::function<bool(std::size_t)>& keep_going = {}) {
  using detail::kMaxSegment;
  const std::size_t m = p.m, D = p.D, Dv = p.Dv, heads = p.heads;
  // seg: windows per segment; rows: entries of a segment's pass over the synapses per head. With
  // in.window_reads each read is three entries (its own readout of h at the end, then h at the
  // start and u).
  const std::size_t seg = detail::segment_windows(heads, m, D, Dv);
  const bool extra_reads = in.window_reads != nullptr && Dv > 0;
  const std::size_t rows = extra_reads ? 3 * seg : seg;
  detail::Workspace<T> ws(p, seg, rows);
  const std::size_t nb = ws.nb;
  const std::size_t tasks = heads * nb;
  std::vector<detail::SegmentScratch<T>> scratch;
  for (int i = 0; i < p.threads; ++i) scratch.emplace_back(D, seg, rows);
  auto my_scratch = [&]() -> detail::SegmentScratch<T>& { return scratch[thread_slot()]; };

  // The scaled inputs of windows [first, first + count) into slot `slot` (0 or 1: a segment's
  // inputs, and the next one's, which pass 2 reads while it has each block's weights in cache).
  auto prepare = [&](std::size_t slot, std::size_t first, std::size_t count) {
    const Window* wn = schedule.data() + first;
    for (std::size_t hd = 0; hd < heads; ++hd)
      for (std::size_t i = 0; i < count; ++i) {
        const T* x = wn[i].write ? in.keys + (hd * in.n_keys + wn[i].index) * D
                                 : in.queries + (hd * in.n_queries + wn[i].index) * D;
        const std::size_t row = (slot * heads + hd) * seg + i;
        ws.offset[row] = scaled_input(x, D, p.input_scale, m, ws.x_scaled.data() + row * D);
      }
  };
  // The block's packed weights (sc.packed).
  auto pack = [&](detail::SegmentScratch<T>& sc, std::size_t hd, std::size_t r0, std::size_t nbk) {
    tiles::pack_panels(s.W + hd * m * D, D, r0, tiles::full_panels<T>(nbk), sc.packed.data());
  };
  // The log-rates of slot `slot`'s `count` inputs on the block's packed weights, into `out` (row
  // stride `out_stride`) as u = exp(log-rate - block max) if asked; with `keep_max`, their maxima
  // go to the slot's block maxima (pass 2 recomputes rates whose maxima are already there).
  auto block_rates = [&](detail::SegmentScratch<T>& sc, std::size_t slot, std::size_t count, std::size_t hd,
                         std::size_t b, bool exponentiate, T* out, std::size_t out_stride, bool keep_max = true) {
    const std::size_t r0 = block_begin(b), nbk = block_end(b, m) - r0, row = (slot * heads + hd) * seg;
    tiles::shifted_rates(sc.packed.data(), s.W + hd * m * D, D, r0, nbk, ws.x_scaled.data() + row * D,
                         ws.offset.data() + row, s.bias ? s.bias + hd * m + r0 : nullptr, count, out, out_stride,
                         sc.row_max.data(), exponentiate);
    if (keep_max)
      for (std::size_t i = 0; i < count; ++i) ws.block_max[(row + i) * nb + b] = sc.row_max[i];
  };

  // Pass 1, for the first segment only: the block maxima of its log-rates. Each later segment's
  // come from the pass 2 before it. A call of at most kMinSegment windows (a token at a time: one
  // segment, as seg >= kMinSegment) keeps its rates from here to pass 2 instead, in `kept` (heads x
  // n x m, no more than before segments grew), so that its blocks' weights are read once, not twice.
  std::size_t cur = 0;  // the slot of the segment being run
  const bool keep_rates = schedule.size() <= detail::kMinSegment;
  scratch_vector<T> kept(keep_rates ? heads * schedule.size() * m : 0);  // every entry written by pass 1
  if (!schedule.empty()) {
    const std::size_t S0 = std::min(seg, schedule.size());
    prepare(cur, 0, S0);
    parallel_for(tasks, p.threads, [&](std::size_t task) {
      const std::size_t hd = task / nb, b = task % nb;
      auto& sc = my_scratch();
      pack(sc, hd, block_begin(b), block_end(b, m) - block_begin(b));
      if (keep_rates)
        block_rates(sc, cur, S0, hd, b, true, kept.data() + hd * S0 * m + block_begin(b), m);
      else
        block_rates(sc, cur, S0, hd, b, false, sc.u.data(), kBlock);
    });
  }

  std::size_t done = 0;
  while (done < schedule.size()) {
    const std::size_t S = std::min(seg, schedule.size() - done);
    const Window* win = schedule.data() + done;
    // The pass's entries: window i is entry entry[i]; with extra_reads a read's h at its start and
    // u follow it as entries entry[i] + 1 and + 2 (reads that change nothing).
    bool is_write[tiles::kMaxSegment];
    std::size_t entry[kMaxSegment], S_e = 0;
    for (std::size_t i = 0; i < S; ++i) {
      entry[i] = S_e;
      is_write[S_e++] = win[i].write;
      if (extra_reads && !win[i].write) is_write[S_e++] = false, is_write[S_e++] = false;
    }
    for (std::size_t hd = 0; hd < heads; ++hd)
      for (std::size_t i = 0; i < S; ++i)
        if (win[i].write)
          std::copy_n(in.values + (hd * in.n_keys + win[i].index) * Dv, Dv, ws.values.data() + (hd * rows + entry[i]) * Dv);
    const std::size_t next = done + S, S_next = next < schedule.size() ? std::min(seg, schedule.size() - next) : 0;
    if (S_next) prepare(1 - cur, next, S_next);
    auto bmax_row = [&](std::size_t hd, std::size_t i) { return ws.block_max.data() + ((cur * heads + hd) * seg + i) * nb; };

    // Per head and window: new scales and the update coefficients (they depend on the inputs'
    // maxima only, not on the state's values).
    for (std::size_t hd = 0; hd < heads; ++hd) {
      double* sc = s.scalars + hd * kNumScalars;
      for (std::size_t i = 0; i < S; ++i) {
        const WindowMap& map = win[i].write ? p.write_map : p.read_map;
        const bool update_g = win[i].write;  // reads leave g and the synapses alone
        const double* bmax = bmax_row(hd, i);
        double c = kNegInf;
        for (std::size_t b = 0; b < nb; ++b) c = std::max(c, bmax[b]);
        const double sH = sc[kScaleH], sh = sc[kScaleh];
        // h's scale for the window is its bound at the window's end (like g's below), so that the
        // stored rates end the window at most 1 and the carry-over factor k0 is at most 1. With
        // the bound at the start instead, a window in which h decays far below its old bound (a
        // read of t_read / tau_hidden = 100 time constants, then a key with smaller log-rates)
        // left the stored rates near e^-100, below float's range, and gave the next window a
        // factor near e^90, which overflows float: inf * 0 = NaN in every rate.
        const double bound_h = log_add_exp(log_abs(map.M[1][1]) + sc[kBoundh], log_abs(map.M[1][2]) + c);
        const double sh_new = bound_h == kNegInf ? sh : bound_h;
        double sH_new = sH, bound_g = sc[kBoundG];
        if (update_g) {
          bound_g = log_add_exp(log_add_exp(log_abs(map.M[0][0]) + sc[kBoundG],
                                            log_abs(map.M[0][1]) + sc[kBoundh]),
                                log_abs(map.M[0][2]) + c);
          if (bound_g != kNegInf) sH_new = bound_g;
        }
        double* k = ws.coef.data() + (hd * seg + i) * detail::kCoef;
        // An array whose bound is -inf holds zeros at an arbitrary scale (0 after a reset): its
        // coefficient is 0, not exp(scale - new scale), which overflows T once the first input's
        // log-rates lie below about -log(max T) (-88 in float) and would turn 0 into inf * 0 = NaN.
        const bool h_zero = sc[kBoundh] == kNegInf, g_zero = sc[kBoundG] == kNegInf;
        k[0] = h_zero ? 0.0 : scaled_product(map.M[1][1], 1.0, sh - sh_new);  // h <- k0 h + k1 e^{c_b - c} u
        k[1] = scaled_product(map.M[1][2], 1.0, c - sh_new);
        k[2] = !update_g ? 1.0 : g_zero ? 0.0 : scaled_product(map.M[0][0], 1.0, sH - sH_new);  // g <- k2 g + k3 h + k4 e^{c_b - c} u
        k[3] = update_g && !h_zero ? scaled_product(map.M[0][1], 1.0, sh - sH_new) : 0.0;
        k[4] = update_g ? scaled_product(map.M[0][2], 1.0, c - sH_new) : 0.0;
        k[5] = c;
        k[6] = sH;  // scales before the window, for the Gram entries
        k[7] = sh;
        k[8] = bound_g;
        sc[kScaleH] = sH_new;
        sc[kScaleh] = sh_new;
        sc[kBoundG] = bound_g;
        sc[kBoundh] = bound_h;
      }
    }

    // Pass 2: each block steps its neurons through the segment's windows, then takes one pass
    // over its synapses (the Hebbian updates and the readouts, window by window per synapse).
    parallel_for(tasks, p.threads, [&](std::size_t task) {
      const std::size_t hd = task / nb, b = task % nb;
      const std::size_t r0 = block_begin(b), nbk = block_end(b, m) - r0;
      auto& sc = my_scratch();
      if (!keep_rates) {  // the same rates as those whose maxima were taken, bit for bit
        pack(sc, hd, r0, nbk);
        block_rates(sc, cur, S, hd, b, true, sc.u.data(), kBlock, false);
      }
      T* g = s.g + hd * m + r0;
      T* h = s.h + hd * m + r0;
      T kg_seg[tiles::kMaxSegment];
      std::fill_n(kg_seg, S_e, T(1));  // a read's entries take none
      for (std::size_t i = 0; i < S; ++i) {
        const double* k = ws.coef.data() + (hd * seg + i) * detail::kCoef;
        const double rel = std::exp(bmax_row(hd, i)[b] - k[5]);
        const T kh = static_cast<T>(k[0]), ku = static_cast<T>(k[1] * rel);
        const T kg = static_cast<T>(k[2]), kgh = static_cast<T>(k[3]), kgu = static_cast<T>(k[4] * rel);
        kg_seg[entry[i]] = kg;
        const T* u = keep_rates ? kept.data() + (hd * S + i) * m + r0 : sc.u.data() + i * kBlock;
        double gh = 0, gu = 0, hh = 0, hu = 0, uu = 0;
#pragma omp simd reduction(+ : gh, gu, hh, hu, uu)
        for (std::size_t r = 0; r < nbk; ++r) {
          gh += static_cast<double>(g[r]) * h[r];
          gu += static_cast<double>(g[r]) * u[r];
          hh += static_cast<double>(h[r]) * h[r];
          hu += static_cast<double>(h[r]) * u[r];
          uu += static_cast<double>(u[r]) * u[r];
        }
        double* gr = ws.gram.data() + ((hd * seg + i) * nb + b) * 5;
        gr[0] = gh, gr[1] = gu, gr[2] = hh, gr[3] = hu, gr[4] = uu;
        if (win[i].write) {
          T* w = sc.w.data() + entry[i] * kBlock;
#pragma omp simd
          for (std::size_t r = 0; r < nbk; ++r) {
            w[r] = kgh * h[r] + kgu * u[r];
            g[r] = kg * g[r] + w[r];
            h[r] = kh * h[r] + ku * u[r];
          }
        } else {
          T* hr = sc.hr.data() + entry[i] * kBlock;
          if (extra_reads) {  // h at the start and u as the entries after the read
            std::copy_n(h, nbk, hr + kBlock);
            std::copy_n(u, nbk, hr + 2 * kBlock);
          }
#pragma omp simd
          for (std::size_t r = 0; r < nbk; ++r) h[r] = hr[r] = kh * h[r] + ku * u[r];
        }
      }
      tiles::synapse_segment(s.H + hd * Dv * m + r0, m, Dv, nbk, is_write, S_e, kg_seg,
                             ws.values.data() + hd * rows * Dv, sc.w.data(), sc.hr.data(), kBlock,
                             ws.dots.data() + task * rows * Dv, Dv);
      // The next segment's maxima, while the block's weights are packed (sc.u is free again).
      if (S_next) block_rates(sc, 1 - cur, S_next, hd, b, false, sc.u.data(), kBlock);
    });

    // Per head and window, in order: the astrocyte's calcium and the outputs of the reads.
    for (std::size_t hd = 0; hd < heads; ++hd) {
      double* sc = s.scalars + hd * kNumScalars;
      for (std::size_t i = 0; i < S; ++i) {
        const WindowMap& map = win[i].write ? p.write_map : p.read_map;
        const double* k = ws.coef.data() + (hd * seg + i) * detail::kCoef;
        const double sH = k[6], sh = k[7];
        const double sa = sc[kScaleA];
        // the scales after window i
        const double* k_next = i + 1 < S ? ws.coef.data() + (hd * seg + i + 1) * detail::kCoef : nullptr;
        const double sH_new = k_next ? k_next[6] : sc[kScaleH];
        const double sh_new = k_next ? k_next[7] : sc[kScaleh];
        const double* bmax = bmax_row(hd, i);
        // a = map.a . (a before, g.h, g.u, h.h, h.u, u.u), each Gram entry the sum of its blocks'
        // (stored units, log-scale exponent(t, b)). a's new scale is the largest term's, and each
        // term is one scaled_product: at most 1, whatever its coefficient and its scale. (The
        // scale was s_H + s_h, which a query whose log-rates lie far above g's scale exceeds by
        // hundreds: u.u overflowed to inf, and a read's zero coefficient of it made 0 * inf = NaN.)
        auto exponent = [&](int t, std::size_t b) {
          const double cb = bmax[b];
          switch (t) {
            case 1: return sH + sh;
            case 2: return sH + cb;
            case 3: return 2 * sh;
            case 4: return sh + cb;
            default: return 2 * cb;
          }
        };
        auto gram = [&](int t, std::size_t b) { return ws.gram[((hd * seg + i) * nb + b) * 5 + (t - 1)]; };
        if (in.window_sums) {
          double* out = in.window_sums + (hd * schedule.size() + done + i) * 6;
          out[0] = scaled_product(sc[kA], 1.0, sa);
          for (int t = 1; t < 6; ++t) {
            double sum = 0;
            for (std::size_t b = 0; b < nb; ++b) sum += scaled_product(gram(t, b), 1.0, exponent(t, b));
            out[t] = sum;
          }
        }
        double sa_new = log_abs(map.a[0]) + log_abs(sc[kA]) + sa;  // -inf if either is 0
        for (int t = 1; t < 6; ++t)
          if (map.a[t] != 0)
            for (std::size_t b = 0; b < nb; ++b)
              sa_new = std::max(sa_new, log_abs(map.a[t]) + log_abs(gram(t, b)) + exponent(t, b));
        if (sa_new == kNegInf) sa_new = sH_new + sh_new;  // a = 0: any scale
        double a = scaled_product(map.a[0], sc[kA], sa - sa_new);
        for (int t = 1; t < 6; ++t) {
          if (map.a[t] == 0) continue;
          for (std::size_t b = 0; b < nb; ++b) a += scaled_product(map.a[t], gram(t, b), exponent(t, b) - sa_new);
        }
        sc[kA] = a;
        sc[kScaleA] = sa_new;
        if (win[i].write) continue;
        // y = H h / a: H h in the units e^{s_H + s_h}, a in e^{s_a}
        const double log_f = sH_new + sh_new - sa_new;
        const double log_a = a > 0 ? std::log(a) : kNegInf;  // in a's units
        T* y = in.outputs + (hd * in.n_queries + win[i].index) * Dv;
        for (std::size_t d = 0; d < Dv; ++d) {
          double acc = 0;
          for (std::size_t b = 0; b < nb; ++b) acc += ws.dots[((hd * nb + b) * rows + entry[i]) * Dv + d];
          y[d] = a > 0 ? narrow_to<T>(scaled_product(acc, 1.0, log_f - log_a)) : T(0);
        }
        if (extra_reads) {  // H h (stored in e^{s_H + s_h} before the window) and H u (e^{s_H + c_b} per block)
          double* out = in.window_reads + (hd * schedule.size() + done + i) * 2 * Dv;
          for (std::size_t d = 0; d < Dv; ++d) {
            double hh = 0, hu = 0;
            for (std::size_t b = 0; b < nb; ++b) {
              const double* dot = ws.dots.data() + ((hd * nb + b) * rows + entry[i]) * Dv + d;
              hh += dot[Dv];
              hu += scaled_product(dot[2 * Dv], 1.0, sH + bmax[b]);
            }
            out[d] = scaled_product(hh, 1.0, sH + sh);
            out[Dv + d] = hu;
          }
        }
        // The reads' products H_dr h_r are taken in T, with every array relative to its bound:
        // underflow_log_bound over the m neurons with the weight e^{B_g - s_H} (h_r <= 1, |H_dr| <=
        // max|v| g_r), in the units of a (times max(1, max|v|) for y): large when a is small in its
        // units, i.e. when the query's products all lie far below the stored maxima (|x~|^2 in the
        // thousands in float). Nothing written (B_g = -inf): nothing to lose.
        if (in.log_underflow)
          in.log_underflow[hd * in.n_queries + win[i].index] =
              k[8] == kNegInf ? kNegInf : underflow_log_bound<T>(m, k[8] - sH_new) - log_a + log_f;
        if (in.log_astro) in.log_astro[hd * in.n_queries + win[i].index] = log_a + sa_new;
      }
    }
    cur = 1 - cur;
    done += S;
    if (keep_going && !keep_going(done)) break;
  }
  return done;
}

}  // namespace tripartite
