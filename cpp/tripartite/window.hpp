// The map of one input window of the continuous-time network (MODEL.md section 2).
//
// Within a window the input u is constant, and for every hidden neuron r the triple
// (g_r, h_r, u_r) obeys the same linear equations
//     dg/dt = e h - leak g,    dh/dt = (u - h) / tau_hidden,    du/dt = 0,
// with e = eta / t_write while writing (e = leak = 0 while reading). Synapse H_dr follows g_r with
// its forcing multiplied by v_d. So the window maps every neuron by one 3x3 matrix M, and the
// synapses by H <- M00 H + v (M01 h + M02 u)^T: one pass over H per token, whatever dt is.
//
// The astrocyte tau_astro da/dt = -a + g.h is quadratic in the state, but the vector
//     z = (a, g.h, g.u, h.h, h.u, u.u)
// obeys a linear system, so a at the end of the window is a fixed linear functional of z at its
// start. Both are computed here once per kind of window:
//   - "exact": matrix exponentials of the continuous systems (exact for any dt);
//   - "euler", "rk4": the composition of N = window/dt steps of that method applied to the full
//     nonlinear system (h, g, H, a). Because the stage values of g and h are linear in the state,
//     a's stages need only the Gram entries in z, and this reproduces step-by-step time stepping
//     up to rounding.
#pragma once

#include <array>
#include <cmath>
#include <cstddef>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

namespace tripartite {

enum class Integrator { euler, rk4, exact };

inline Integrator parse_integrator(const std::string& name) {
  if (name == "euler") return Integrator::euler;
  if (name == "rk4") return Integrator::rk4;
  if (name == "exact") return Integrator::exact;
  throw std::invalid_argument("integrator must be one of 'euler', 'rk4', 'exact', got '" + name + "'");
}

struct WindowMap {
  double M[3][3];  // (g, h, u)_end = M (g, h, u)_start, in true units
  double a[6];     // a_end = sum_i a[i] z_i with z = (a, g.h, g.u, h.h, h.u, u.u) at the start
};

namespace detail {

template <std::size_t N>
using Mat = std::array<std::array<double, N>, N>;

template <std::size_t N>
Mat<N> identity() {
  Mat<N> r{};
  for (std::size_t i = 0; i < N; ++i) r[i][i] = 1.0;
  return r;
}

template <std::size_t N>
Mat<N> matmul(const Mat<N>& x, const Mat<N>& y) {
  Mat<N> r{};
  for (std::size_t i = 0; i < N; ++i)
    for (std::size_t k = 0; k < N; ++k)
      for (std::size_t j = 0; j < N; ++j) r[i][j] += x[i][k] * y[k][j];
  return r;
}

// exp(A) by scaling and squaring with a degree-18 Taylor polynomial: the scaled matrix has norm
// <= 1/4, where the truncation error (1/4)^19/19! is far below double precision.
template <std::size_t N>
Mat<N> expm(Mat<N> A) {
  double norm = 0.0;
  for (std::size_t i = 0; i < N; ++i) {
    double row = 0.0;
    for (std::size_t j = 0; j < N; ++j) row += std::fabs(A[i][j]);
    norm = std::max(norm, row);
  }
  int squarings = 0;
  if (norm > 0.25) squarings = static_cast<int>(std::ceil(std::log2(norm / 0.25)));
  const double s = std::ldexp(1.0, -squarings);
  for (auto& row : A)
    for (auto& x : row) x *= s;
  Mat<N> result = identity<N>();
  Mat<N> term = identity<N>();
  for (int k = 1; k <= 18; ++k) {
    term = matmul(term, A);
    for (std::size_t i = 0; i < N; ++i)
      for (std::size_t j = 0; j < N; ++j) term[i][j] /= k;
    for (std::size_t i = 0; i < N; ++i)
      for (std::size_t j = 0; j < N; ++j) result[i][j] += term[i][j];
  }
  for (int k = 0; k < squarings; ++k) result = matmul(result, result);
  return result;
}

// Coefficients of g.h over the Gram entries (g.h, g.u, h.h, h.u, u.u) when g = A (g0, h0, u) and
// h = B (g0, h0, u) with B[0] = 0 (h never depends on g).
inline std::array<double, 5> gram_coefficients(const std::array<double, 3>& A, const std::array<double, 3>& B) {
  return {A[0] * B[1], A[0] * B[2], A[1] * B[1], A[1] * B[2] + A[2] * B[1], A[2] * B[2]};
}

// Entries below double's smallest normal number become 0. The true values there are e^{-708} or
// less of the window's start, but euler and rk4 reach them by composing thousands of step maps, and
// a subnormal times 0.9 rounds back to itself: a window of 10^4 steps of dt = tau / 10 left M11 at
// 2.5e-323 instead of e^{-1053}. Taken for real terms (the network weighs each term by its log),
// such remnants outweighed the inputs of a query whose log-rates lie some 900 below the state's.
inline void flush_subnormal(WindowMap& w) {
  const double tiny = std::numeric_limits<double>::min();
  for (auto& row : w.M)
    for (double& x : row)
      if (std::fabs(x) < tiny) x = 0.0;
  for (double& x : w.a)
    if (std::fabs(x) < tiny) x = 0.0;
}

}  // namespace detail

// The map of a window of `duration` ms. rate_h = 1/tau_hidden, rate_a = 1/tau_astro (1/ms),
// e = eta/t_write (0 while reading), leak (1/ms, 0 while reading). `steps` is used by euler/rk4.
// If `samples` is given (increasing step numbers in [1, steps]), the maps from the window's start
// to each of those steps are appended to `trajectory` (for monitors; "exact" samples the
// continuous solution at t = duration * step / steps).
inline WindowMap window_map(Integrator integrator, double duration, std::size_t steps, double rate_h,
                            double rate_a, double e, double leak, const std::vector<std::size_t>* samples = nullptr,
                            std::vector<WindowMap>* trajectory = nullptr) {
  using detail::Mat;
  Mat<3> Nmat{};
  Nmat[0] = {-leak, e, 0.0};
  Nmat[1] = {0.0, -rate_h, rate_h};
  Nmat[2] = {0.0, 0.0, 0.0};
  WindowMap map{};
  if (integrator == Integrator::exact) {
    if (samples && trajectory)
      for (std::size_t step : *samples)
        trajectory->push_back(window_map(integrator, duration * double(step) / double(steps), 1, rate_h, rate_a, e, leak));
    // The exact map is linear in e: e enters only g's forcing (M01, M02) and, through it, the
    // calcium's terms in h.h, h.u and u.u (a[3..5]), and no path of the equations passes e twice.
    // So the e-free entries come from the system at e = 0 and the others from the system at
    // e = 1 / duration, scaled by e * duration. Both systems are scaled like the default (eta =
    // 1). Taken at e itself, one scaling and squaring mixed e with the rates, and its rounding
    // grew with e: y moved by 5e-10 relative at eta = 1e10 and by 4 % at eta = 1e16.
    auto exact_map = [&](double e_) {
      WindowMap w{};
      Mat<3> A = Nmat;
      A[0][1] = e_;
      for (auto& row : A)
        for (auto& x : row) x *= duration;
      const Mat<3> M = detail::expm(A);
      Mat<6> Lmat{};
      Lmat[0] = {-rate_a, rate_a, 0.0, 0.0, 0.0, 0.0};
      Lmat[1] = {0.0, -(leak + rate_h), rate_h, e_, 0.0, 0.0};
      Lmat[2] = {0.0, 0.0, -leak, 0.0, e_, 0.0};
      Lmat[3] = {0.0, 0.0, 0.0, -2.0 * rate_h, 2.0 * rate_h, 0.0};
      Lmat[4] = {0.0, 0.0, 0.0, 0.0, -rate_h, rate_h};
      for (auto& row : Lmat)
        for (auto& x : row) x *= duration;
      const Mat<6> Z = detail::expm(Lmat);
      for (int i = 0; i < 3; ++i)
        for (int j = 0; j < 3; ++j) w.M[i][j] = M[i][j];
      for (int i = 0; i < 6; ++i) w.a[i] = Z[0][i];
      return w;
    };
    map = exact_map(0.0);
    if (e != 0.0 && duration > 0.0) {
      const WindowMap unit = exact_map(1.0 / duration);
      const double f = e * duration;
      map.M[0][1] = f * unit.M[0][1];
      map.M[0][2] = f * unit.M[0][2];
      for (int i = 3; i < 6; ++i) map.a[i] = f * unit.a[i];
    }
    detail::flush_subnormal(map);
    return map;
  }

  const double dt = duration / static_cast<double>(steps);
  // One step of the method on (g, h, u): X_{n+1} = P X_n. For rk4 the stage maps are kept, since
  // the astrocyte's stages read g.h at the stage states.
  Mat<3> stage[4];
  const double frac[4] = {0.0, 0.5, 0.5, 1.0};
  Mat<3> P = detail::identity<3>();
  int n_stages = integrator == Integrator::euler ? 1 : 4;
  stage[0] = detail::identity<3>();
  for (int i = 1; i < n_stages; ++i) {
    const Mat<3> K = detail::matmul(Nmat, stage[i - 1]);
    stage[i] = detail::identity<3>();
    for (int r = 0; r < 3; ++r)
      for (int c = 0; c < 3; ++c) stage[i][r][c] += frac[i] * dt * K[r][c];
  }
  {
    const double weight_rk4[4] = {1.0 / 6.0, 2.0 / 6.0, 2.0 / 6.0, 1.0 / 6.0};
    Mat<3> sum{};
    for (int i = 0; i < n_stages; ++i) {
      const double w = n_stages == 1 ? 1.0 : weight_rk4[i];
      const Mat<3> K = detail::matmul(Nmat, stage[i]);
      for (int r = 0; r < 3; ++r)
        for (int c = 0; c < 3; ++c) sum[r][c] += w * dt * K[r][c];
    }
    for (int r = 0; r < 3; ++r)
      for (int c = 0; c < 3; ++c) P[r][c] += sum[r][c];
  }

  // a_n as a linear functional over z0 = (a0, g.h, g.u, h.h, h.u, u.u).
  std::array<double, 6> alpha{1.0, 0.0, 0.0, 0.0, 0.0, 0.0};
  Mat<3> Pn = detail::identity<3>();
  std::size_t next_sample = 0;
  auto record = [&](std::size_t step) {
    if (!samples || !trajectory) return;
    while (next_sample < samples->size() && (*samples)[next_sample] < step) ++next_sample;
    if (next_sample < samples->size() && (*samples)[next_sample] == step) {
      WindowMap w{};
      for (int i = 0; i < 3; ++i)
        for (int j = 0; j < 3; ++j) w.M[i][j] = Pn[i][j];
      for (int i = 0; i < 6; ++i) w.a[i] = alpha[i];
      detail::flush_subnormal(w);
      trajectory->push_back(w);
    }
  };
  auto gh_at = [](const Mat<3>& X) {  // functional of g.h at the state X (g0, h0, u)
    const auto c = detail::gram_coefficients(X[0], X[1]);
    return std::array<double, 6>{0.0, c[0], c[1], c[2], c[3], c[4]};
  };
  for (std::size_t n = 0; n < steps; ++n) {
    if (integrator == Integrator::euler) {
      const auto q = gh_at(Pn);
      for (int i = 0; i < 6; ++i) alpha[i] += dt * rate_a * (q[i] - alpha[i]);
    } else {
      std::array<double, 6> a_stage = alpha, K[4];
      for (int s = 0; s < 4; ++s) {
        if (s > 0)
          for (int i = 0; i < 6; ++i) a_stage[i] = alpha[i] + frac[s] * dt * K[s - 1][i];
        const auto q = gh_at(detail::matmul(stage[s], Pn));
        for (int i = 0; i < 6; ++i) K[s][i] = rate_a * (q[i] - a_stage[i]);
      }
      for (int i = 0; i < 6; ++i) alpha[i] += dt / 6.0 * (K[0][i] + 2.0 * K[1][i] + 2.0 * K[2][i] + K[3][i]);
    }
    Pn = detail::matmul(P, Pn);
    record(n + 1);
  }
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) map.M[i][j] = Pn[i][j];
  for (int i = 0; i < 6; ++i) map.a[i] = alpha[i];
  detail::flush_subnormal(map);
  return map;
}

}  // namespace tripartite
