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

#include <cmath>
#include <cstddef>
#include <functional>
#include <vector>

#include "common.hpp"
#include "features.hpp"
#include "window.hpp"

namespace tripartite {

enum Scalar : std::size_t { kA = 0, kScaleA, kScaleH, kScaleh, kBoundG, kBoundh, kNumScalars };

struct NetworkParams {
  std::size_t heads = 1, m = 0, D = 0, Dv = 0;
  double input_scale = 1.0;  // sqrt(s): x~ = x sqrt(s)
  WindowMap write_map{}, read_map{};
  bool write_changes_g = true;  // false only if the write map leaves g unchanged
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
};

namespace detail {

inline double log_abs(double x) { return x == 0.0 ? kNegInf : std::log(std::fabs(x)); }

// Work shared by the passes of one window, sized once per call.
template <class T>
struct Workspace {
  std::size_t nb;
  std::vector<T> u;             // heads x m: exp(log-rate - block max) of the window's input
  std::vector<T> w;             // heads x m: the window's increment of g per unit v
  std::vector<double> block_max;  // heads x nb
  std::vector<double> gram;       // heads x nb x 5: (g.h, g.u, h.h, h.u, u.u) per block
  std::vector<double> coef;       // heads x 8: per-window update coefficients (stored units)
  std::vector<double> readout;    // heads x nb x Dv: partial H h per block
  std::vector<T> x_scaled;        // heads x D
  std::vector<double> offset;     // heads
  Workspace(const NetworkParams& p)
      : nb(n_blocks(p.m)),
        u(p.heads * p.m),
        w(p.heads * p.m),
        block_max(p.heads * nb),
        gram(p.heads * nb * 5),
        coef(p.heads * 8),
        readout(p.heads * nb * p.Dv),
        x_scaled(p.heads * p.D),
        offset(p.heads) {}
};

}  // namespace detail

// Runs the windows [first, last) of `schedule`. Between windows it calls `keep_going(done)` (if
// set) with the number of windows completed; when it returns false the run stops there, at a
// window boundary, with a consistent state. Returns the number of windows completed.
template <class T>
std::size_t run_windows(const NetworkParams& p, NetworkState<T> s, const WindowInputs<T>& in,
                        const std::vector<Window>& schedule,
                        const std::function<bool(std::size_t)>& keep_going = {}) {
  const std::size_t m = p.m, D = p.D, Dv = p.Dv, heads = p.heads;
  detail::Workspace<T> ws(p);
  const std::size_t nb = ws.nb;
  const std::size_t tasks = heads * nb;

  std::size_t done = 0;
  for (const Window& win : schedule) {
    const WindowMap& map = win.write ? p.write_map : p.read_map;
    const bool update_g = win.write && p.write_changes_g;

    // Inputs of this window, one per head.
    for (std::size_t hd = 0; hd < heads; ++hd) {
      const T* x = win.write ? in.keys + (hd * in.n_keys + win.index) * D
                             : in.queries + (hd * in.n_queries + win.index) * D;
      ws.offset[hd] = scaled_input(x, D, p.input_scale, m, ws.x_scaled.data() + hd * D);
    }

    // Pass 1: log-rates, their block maxima, u relative to the block maximum, Gram partial sums.
    parallel_for(tasks, p.threads, [&](std::size_t task) {
      const std::size_t hd = task / nb, b = task % nb;
      const std::size_t r0 = block_begin(b), r1 = block_end(b, m);
      T* u = ws.u.data() + hd * m;
      const double mx = block_log_rates(s.W + hd * m * D, D, r0, r1, ws.x_scaled.data() + hd * D,
                                        ws.offset[hd], s.bias ? s.bias + hd * m : nullptr, u + r0);
      const T mxT = static_cast<T>(mx);
      const T* g = s.g + hd * m;
      const T* h = s.h + hd * m;
      double gh = 0, gu = 0, hh = 0, hu = 0, uu = 0;
      for (std::size_t r = r0; r < r1; ++r) {
        const T ur = std::exp(u[r] - mxT);
        u[r] = ur;
        gh += static_cast<double>(g[r]) * h[r];
        gu += static_cast<double>(g[r]) * ur;
        hh += static_cast<double>(h[r]) * h[r];
        hu += static_cast<double>(h[r]) * ur;
        uu += static_cast<double>(ur) * ur;
      }
      ws.block_max[task] = mx;
      double* gr = ws.gram.data() + task * 5;
      gr[0] = gh, gr[1] = gu, gr[2] = hh, gr[3] = hu, gr[4] = uu;
    });

    // Per head: new scales, the astrocyte's new calcium, coefficients of pass 2.
    for (std::size_t hd = 0; hd < heads; ++hd) {
      double* sc = s.scalars + hd * kNumScalars;
      const double* bmax = ws.block_max.data() + hd * nb;
      double c = kNegInf;
      for (std::size_t b = 0; b < nb; ++b) c = std::max(c, bmax[b]);
      const double sH = sc[kScaleH], sh = sc[kScaleh], sa = sc[kScaleA];
      const double sh_new = std::max(c, sc[kBoundh]);
      double sH_new = sH, bound_g = sc[kBoundG];
      if (update_g) {
        bound_g = log_add_exp(log_add_exp(detail::log_abs(map.M[0][0]) + sc[kBoundG],
                                          detail::log_abs(map.M[0][1]) + sc[kBoundh]),
                              detail::log_abs(map.M[0][2]) + c);
        if (bound_g != kNegInf) sH_new = bound_g;
      }
      const double bound_h =
          log_add_exp(detail::log_abs(map.M[1][1]) + sc[kBoundh], detail::log_abs(map.M[1][2]) + c);
      const double sa_new = sH_new + sh_new;

      // z = (a, g.h, g.u, h.h, h.u, u.u) in units of exp(sa_new).
      double z[6] = {scaled(sc[kA], sa - sa_new), 0, 0, 0, 0, 0};
      for (std::size_t b = 0; b < nb; ++b) {
        const double* gr = ws.gram.data() + (hd * nb + b) * 5;
        const double cb = bmax[b];
        z[1] += scaled(gr[0], sH + sh - sa_new);
        z[2] += scaled(gr[1], sH + cb - sa_new);
        z[3] += scaled(gr[2], 2 * sh - sa_new);
        z[4] += scaled(gr[3], sh + cb - sa_new);
        z[5] += scaled(gr[4], 2 * cb - sa_new);
      }
      double a_new = 0;
      for (int i = 0; i < 6; ++i) a_new += map.a[i] * z[i];

      double* k = ws.coef.data() + hd * 8;
      k[0] = map.M[1][1] * std::exp(sh - sh_new);  // h <- k0 h + k1 e^{c_b - c} u
      k[1] = map.M[1][2] * std::exp(c - sh_new);
      k[2] = update_g ? map.M[0][0] * std::exp(sH - sH_new) : 1.0;  // g <- k2 g + k3 h + k4 e^{c_b - c} u
      k[3] = update_g ? map.M[0][1] * std::exp(sh - sH_new) : 0.0;
      k[4] = update_g ? map.M[0][2] * std::exp(c - sH_new) : 0.0;
      k[5] = c;

      sc[kA] = a_new;
      sc[kScaleA] = sa_new;
      sc[kScaleH] = sH_new;
      sc[kScaleh] = sh_new;
      sc[kBoundG] = bound_g;
      sc[kBoundh] = bound_h;
    }

    // Pass 2: update h, g and the synapses (write) or read the output neurons (read).
    parallel_for(tasks, p.threads, [&](std::size_t task) {
      const std::size_t hd = task / nb, b = task % nb;
      const std::size_t r0 = block_begin(b), r1 = block_end(b, m);
      const double* k = ws.coef.data() + hd * 8;
      const double rel = std::exp(ws.block_max[task] - k[5]);  // block scale -> window scale
      const T kh = static_cast<T>(k[0]), ku = static_cast<T>(k[1] * rel);
      const T kg = static_cast<T>(k[2]), kgh = static_cast<T>(k[3]), kgu = static_cast<T>(k[4] * rel);
      T* g = s.g + hd * m;
      T* h = s.h + hd * m;
      const T* u = ws.u.data() + hd * m;
      T* w = ws.w.data() + hd * m;
      T* H = s.H + hd * Dv * m;
      if (update_g) {
#pragma omp simd
        for (std::size_t r = r0; r < r1; ++r) {
          w[r] = kgh * h[r] + kgu * u[r];
          g[r] = kg * g[r] + w[r];
          h[r] = kh * h[r] + ku * u[r];
        }
        const T* v = in.values + (hd * in.n_keys + win.index) * Dv;
        for (std::size_t d = 0; d < Dv; ++d) {
          T* row = H + d * m;
          const T vd = v[d];
#pragma omp simd
          for (std::size_t r = r0; r < r1; ++r) row[r] = kg * row[r] + vd * w[r];
        }
      } else {
#pragma omp simd
        for (std::size_t r = r0; r < r1; ++r) h[r] = kh * h[r] + ku * u[r];
      }
      if (!win.write) {
        double* out = ws.readout.data() + task * Dv;
        for (std::size_t d = 0; d < Dv; ++d) {
          const T* row = H + d * m;
          double acc = 0;
#pragma omp simd reduction(+ : acc)
          for (std::size_t r = r0; r < r1; ++r) acc += static_cast<double>(row[r]) * h[r];
          out[d] = acc;
        }
      }
    });

    if (!win.write) {
      for (std::size_t hd = 0; hd < heads; ++hd) {
        const double* sc = s.scalars + hd * kNumScalars;
        T* y = in.outputs + (hd * in.n_queries + win.index) * Dv;
        const double a = sc[kA];
        for (std::size_t d = 0; d < Dv; ++d) {
          double acc = 0;
          for (std::size_t b = 0; b < nb; ++b) acc += ws.readout[(hd * nb + b) * Dv + d];
          // y = H h / a; stored units cancel because s_a = s_H + s_h.
          y[d] = a > 0 ? static_cast<T>(acc / a) : T(0);
        }
        if (in.log_astro) in.log_astro[hd * in.n_queries + win.index] = (a > 0 ? std::log(a) : kNegInf) + sc[kScaleA];
      }
    }
    ++done;
    if (keep_going && !keep_going(done)) break;
  }
  return done;
}

}  // namespace tripartite
