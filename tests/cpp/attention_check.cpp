// The steady state checked without Python, for builds that the Python suite cannot reach (.ci/aarch64.sh
// cross-compiles it for aarch64 and runs it under qemu): tripartite::steady_state_attention against
// a naive long-double evaluation of the closed form (MODEL.md section 1), in float and double,
// bidirectional and causal, with 1 and 3 threads (which must agree bit for bit).
//   y_t = sum_r phi_r(q_t) H_r / sum_r phi_r(q_t) g_r,  H_r = sum_tau phi_r(k_tau) v_tau,  g_r = sum_tau phi_r(k_tau)
// The tolerance is the Python suite's (tests/conftest.py: moderate_tol): a block's features are
// summed in the input dtype, about eps sqrt(block) for the numerator and the denominator, plus, when
// causal, four roundings of the read headroom's offsets in double. The error is the suite's rel_err:
// the largest absolute error over the largest absolute reference value.
// Build: g++ -std=c++17 -O2 -march=native -fopenmp -Icpp tests/cpp/attention_check.cpp; exit status 0 when all
// pass.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <random>
#include <vector>

#include "tripartite/attention.hpp"

using namespace tripartite;

namespace {

// m spans two full blocks and a tail; L spans two full chunks of tokens and part of a third, so
// that keys are written into a block's state across chunks and causal queries read it.
constexpr std::size_t H = 2, L = 2 * kChunk + 13, D = 13, Dv = 7, M = 1100;

template <class T>
double tolerance(bool causal) {
  double tol = 2 * std::sqrt(double(kNeuronBlock)) * std::numeric_limits<T>::epsilon();
  if (causal) tol += 4 * (std::log(std::numeric_limits<double>::max()) / 4) * std::numeric_limits<double>::epsilon();
  return tol;
}

struct Problem {
  std::vector<double> W, Q, K, V;  // drawn once, cast per dtype
  Problem() : W(H * M * D), Q(H * L * D), K(H * L * D), V(H * L * Dv) {
    std::mt19937_64 gen(1);
    std::normal_distribution<double> normal(0, 1);
    for (auto& x : W) x = normal(gen);
    for (auto& x : Q) x = 0.4 * normal(gen);  // |x~|^2 about 0.6: moderate inputs
    for (auto& x : K) x = 0.4 * normal(gen);
    for (auto& x : V) x = normal(gen);
  }
};

template <class T>
std::vector<T> cast(const std::vector<double>& x) {
  return std::vector<T>(x.begin(), x.end());
}

template <class T>
std::vector<T> core(const Problem& p, bool causal, int threads, double input_scale) {
  const std::vector<T> W = cast<T>(p.W), Q = cast<T>(p.Q), K = cast<T>(p.K), V = cast<T>(p.V);
  std::vector<T> Y(H * L * Dv);
  AttentionArgs<T> a;
  a.heads = H, a.Lk = L, a.Lq = L, a.D = D, a.Dv = Dv, a.m = M;
  a.W = W.data(), a.Q = Q.data(), a.K = K.data(), a.V = V.data(), a.Y = Y.data();
  a.input_scale = input_scale, a.causal = causal, a.threads = threads;
  steady_state_attention(a);
  return Y;
}

// The closed form in long double, from the same (rounded) inputs as the core's dtype T: the
// synapses H_r and the astrocyte weights g_r written key by key, every query read from them after
// all keys (bidirectional) or right after its own key (causal).
template <class T>
std::vector<long double> naive(const Problem& p, bool causal, double input_scale) {
  const std::vector<T> W = cast<T>(p.W), Q = cast<T>(p.Q), K = cast<T>(p.K), V = cast<T>(p.V);
  auto rate = [&](std::size_t h, std::size_t r, const T* x) {
    long double dot = 0, norm2 = 0;
    for (std::size_t j = 0; j < D; ++j) {
      const long double xs = static_cast<long double>(x[j]) * input_scale;
      dot += static_cast<long double>(W[(h * M + r) * D + j]) * xs;
      norm2 += xs * xs;
    }
    return std::exp(dot - norm2 / 2);  // the common m^(-1/2) cancels in y
  };
  std::vector<long double> y(H * L * Dv), Hs(M * Dv), g(M);
  auto read = [&](std::size_t h, std::size_t t) {
    std::vector<long double> num(Dv, 0);
    long double den = 0;
    for (std::size_t r = 0; r < M; ++r) {
      const long double f = rate(h, r, &Q[(h * L + t) * D]);
      den += f * g[r];
      for (std::size_t d = 0; d < Dv; ++d) num[d] += f * Hs[r * Dv + d];
    }
    for (std::size_t d = 0; d < Dv; ++d) y[(h * L + t) * Dv + d] = num[d] / den;
  };
  for (std::size_t h = 0; h < H; ++h) {
    std::fill(Hs.begin(), Hs.end(), 0.0L);
    std::fill(g.begin(), g.end(), 0.0L);
    for (std::size_t tau = 0; tau < L; ++tau) {
      for (std::size_t r = 0; r < M; ++r) {
        const long double f = rate(h, r, &K[(h * L + tau) * D]);
        g[r] += f;
        for (std::size_t d = 0; d < Dv; ++d) Hs[r * Dv + d] += f * static_cast<long double>(V[(h * L + tau) * Dv + d]);
      }
      if (causal) read(h, tau);
    }
    if (!causal)
      for (std::size_t t = 0; t < L; ++t) read(h, t);
  }
  return y;
}

template <class T>
int check(const Problem& p, bool causal, const char* name) {
  const double input_scale = std::sqrt(1 / std::sqrt(double(D)));  // sqrt(s), s = D^-1/2
  const std::vector<T> y1 = core<T>(p, causal, 1, input_scale), y3 = core<T>(p, causal, 3, input_scale);
  const std::vector<long double> ref = naive<T>(p, causal, input_scale);
  long double err = 0, top = 0;
  bool nan_seen = false;  // a NaN output fails the check (std::max, or a comparison, would drop it)
  for (std::size_t i = 0; i < ref.size(); ++i) {
    const long double e = std::fabs(static_cast<long double>(y1[i]) - ref[i]);
    nan_seen = nan_seen || std::isnan(e);
    if (e > err) err = e;
    top = std::max(top, std::fabs(ref[i]));
  }
  if (nan_seen) err = std::numeric_limits<long double>::quiet_NaN();
  const double rel = static_cast<double>(err / top), tol = tolerance<T>(causal);
  const bool same = y1 == y3, ok = rel <= tol && same;
  std::printf("%-7s %-13s rel. error %.2e (tolerance %.2e), 1 vs 3 threads %s: %s\n", name,
              causal ? "causal" : "bidirectional", rel, tol, same ? "bitwise equal" : "DIFFERENT", ok ? "ok" : "FAILED");
  return ok ? 0 : 1;
}

}  // namespace

int main() {
  const Problem p;
  int failed = 0;
  for (bool causal : {false, true}) {
    failed += check<float>(p, causal, "float32");
    failed += check<double>(p, causal, "float64");
  }
  std::printf("%s\n", failed ? "FAILED" : "all passed");
  return failed ? 1 : 0;
}
