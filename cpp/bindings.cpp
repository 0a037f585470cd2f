// Python bindings of the core. This file only converts: it checks the raw arrays the Python layer
// prepared (dtype, C order, shape), takes their pointers, releases the GIL and runs the kernels.
// Argument validation with user-facing messages lives in the Python layer; the checks here guard
// the memory the kernels touch.
#include <pybind11/functional.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <chrono>
#include <tuple>
#include <type_traits>
#include <cstring>
#include <limits>
#include <utility>
#include <cstdint>
#include <cmath>
#include <string>
#include <vector>

#include "tripartite/attention.hpp"
#include "tripartite/monitor.hpp"
#include "tripartite/network.hpp"
#include "tripartite/window.hpp"
#include "tripartite/cuda.hpp"

namespace py = pybind11;
using namespace tripartite;

namespace {

std::string shape_str(const std::vector<py::ssize_t>& shape) {
  std::string out = "(";
  for (std::size_t i = 0; i < shape.size(); ++i) out += (i ? ", " : "") + std::to_string(shape[i]);
  return out + (shape.size() == 1 ? ",)" : ")");
}

template <class T>
T* checked(py::array& arr, const char* name, const std::vector<py::ssize_t>& shape, bool writable) {
  if (!arr.dtype().is(py::dtype::of<T>()))
    throw std::invalid_argument(std::string(name) + " must have dtype " + std::string(py::str(py::dtype::of<T>())) +
                                ", got " + std::string(py::str(arr.dtype())));
  if (!(arr.flags() & py::array::c_style))
    throw std::invalid_argument(std::string(name) + " must be C-contiguous");
  std::vector<py::ssize_t> actual(arr.shape(), arr.shape() + arr.ndim());
  if (actual != shape)
    throw std::invalid_argument(std::string(name) + " must have shape " + shape_str(shape) + ", got " +
                                shape_str(actual));
  if (!writable) return const_cast<T*>(static_cast<const T*>(arr.data()));
  if (!arr.writeable()) throw std::invalid_argument(std::string(name) + " must be writable");
  return static_cast<T*>(arr.mutable_data());
}

// An optional input (or, `writable`, output): null for None, else `checked`.
template <class T>
T* optional_array(const py::object& obj, const char* name, const std::vector<py::ssize_t>& shape,
                  bool writable = false) {
  if (obj.is_none()) return nullptr;
  if (!py::isinstance<py::array>(obj)) throw std::invalid_argument(std::string(name) + " must be a NumPy array or None");
  py::array arr = py::reinterpret_borrow<py::array>(obj);
  return checked<T>(arr, name, shape, writable);
}

// The arrays of a steady-state call checked (dtype, C order, shape) and their sizes and pointers
// put in `a`: AttentionArgs<T> (the CPU core) or cuda::Args<T> (the GPU's), whose fields are named alike.
template <class T, class Args>
void attention_arrays(Args& a, py::array& W, const py::object& bias, py::array& Q, py::array& K, py::array& V,
                      const py::object& w_index, const py::object& key_mask) {
  if (W.ndim() != 3 || Q.ndim() != 3 || K.ndim() != 3 || V.ndim() != 3)
    throw std::invalid_argument("hidden_weights, q, k, v must be 3-D (heads, rows, features)");
  a.heads = Q.shape(0), a.m = W.shape(1), a.D = W.shape(2);
  a.Lq = Q.shape(1), a.Lk = K.shape(1), a.Dv = V.shape(2);
  const auto hs = static_cast<py::ssize_t>(a.heads), D = static_cast<py::ssize_t>(a.D);
  // heads may share W's rows: head h reads W[w_index[h]]
  a.w_index = optional_array<std::int64_t>(w_index, "w_index", {hs});
  a.W = checked<T>(W, "hidden_weights", {a.w_index ? W.shape(0) : hs, W.shape(1), D}, false);
  for (std::size_t h = 0; a.w_index && h < a.heads; ++h)
    if (a.w_index[h] < 0 || a.w_index[h] >= W.shape(0))
      throw std::invalid_argument("w_index must index hidden_weights' " + std::to_string(W.shape(0)) + " heads, got " +
                                  std::to_string(a.w_index[h]));
  a.bias = optional_array<T>(bias, "hidden_bias", {hs, py::ssize_t(a.m)});
  a.Q = checked<T>(Q, "q", {hs, Q.shape(1), D}, false);
  a.K = checked<T>(K, "k", {hs, K.shape(1), D}, false);
  a.V = checked<T>(V, "v", {hs, K.shape(1), V.shape(2)}, false);
  a.key_mask = optional_array<std::uint8_t>(key_mask, "key_mask", {hs, K.shape(1)});
}

// The outputs of a steady-state call (y, log a_t, log of the underflow bound), allocated and their
// pointers put in `a`.
template <class T, class Args>
std::tuple<py::array_t<T>, py::array_t<double>, py::array_t<double>> attention_outputs(Args& a) {
  const auto hs = static_cast<py::ssize_t>(a.heads), Lq = static_cast<py::ssize_t>(a.Lq);
  py::array_t<T> Y({hs, Lq, static_cast<py::ssize_t>(a.Dv)});
  py::array_t<double> log_a({hs, Lq}), log_underflow({hs, Lq});
  a.Y = Y.mutable_data();
  a.log_a = log_a.mutable_data();
  a.log_underflow = log_underflow.mutable_data();
  return {Y, log_a, log_underflow};
}

template <class T>
py::tuple attention(py::array W, py::object bias, py::array Q, py::array K, py::array V, double input_scale, bool causal,
                    int num_threads, std::size_t partial_budget, py::object w_index, py::object key_mask) {
  AttentionArgs<T> a;
  attention_arrays<T>(a, W, bias, Q, K, V, w_index, key_mask);
  if (causal && a.Lq != a.Lk) throw std::invalid_argument("causal attention needs as many queries as keys");
  auto [Y, log_a, log_underflow] = attention_outputs<T>(a);
  a.input_scale = input_scale;
  a.causal = causal;
  a.partial_budget = partial_budget;
  const double work = 2.0 * double(a.heads) * double(a.m) * double(a.Lq + a.Lk) * double(a.D + a.Dv);
  a.threads = effective_threads(num_threads, work);
  {
    py::gil_scoped_release release;
    steady_state_attention(a);
  }
  return py::make_tuple(Y, log_a, log_underflow);
}

// The steady state on a GPU (tripartite/cuda.hpp), or, Emulated, the same kernels on the CPU
// emulation (cuda_emulation.hpp), which every build has, for the tests. The GPU's versions
// (Emulated = false) are instantiated only in a build with TRIPARTITE_CUDA=ON, which links them.
template <bool Emulated>
int gpu_count() {
  if constexpr (Emulated) return cuda::device_count_emulated();
  else return cuda::device_count();
}

template <class T, bool Emulated>
void run_gpu(const cuda::Args<T>& a) {
  if constexpr (Emulated) cuda::steady_state_attention_emulated(a);
  else cuda::steady_state_attention(a);
}

template <class T, bool Emulated>
cuda::Args<T> cuda_args(py::array& W, const py::object& bias, py::array& Q, py::array& K, py::array& V,
                        double input_scale, int device, std::size_t partial_budget, const py::object& w_index,
                        const py::object& key_mask) {
  cuda::Args<T> a;
  attention_arrays<T>(a, W, bias, Q, K, V, w_index, key_mask);
  a.n_weights = a.w_index ? W.shape(0) : a.heads;
  a.input_scale = input_scale;
  if (device < 0 || device >= gpu_count<Emulated>())
    throw std::invalid_argument("CUDA device " + std::to_string(device) + " does not exist (" +
                                std::to_string(gpu_count<Emulated>()) + " found)");
  a.device = device;
  if (partial_budget == 0) throw std::invalid_argument("partial_budget must be positive");
  a.partial_budget = partial_budget;
  return a;
}

// The same arrays as `attention`, bidirectional; returns (y, log a, log underflow bound, times):
// times in ms, the kernels' GPU time ("kernels_gpu", CUDA events) and the host's phases of the
// call (cuda.hpp: kPhaseNames) and the whole "call".
template <class T, bool Emulated>
py::tuple attention_cuda(py::array W, py::object bias, py::array Q, py::array K, py::array V, double input_scale,
                         int device, std::size_t partial_budget, py::object w_index, py::object key_mask) {
  cuda::Args<T> a = cuda_args<T, Emulated>(W, bias, Q, K, V, input_scale, device, partial_budget, w_index, key_mask);
  auto [Y, log_a, log_underflow] = attention_outputs<T>(a);
  double kernel_ms = 0, phase_ms[cuda::kPhases] = {};
  a.kernel_ms = &kernel_ms;
  a.phase_ms = phase_ms;
  const auto start = std::chrono::steady_clock::now();
  {
    py::gil_scoped_release release;
    run_gpu<T, Emulated>(a);
  }
  py::dict times;  // ms
  times["kernels_gpu"] = kernel_ms;
  for (int i = 0; i < cuda::kPhases; ++i) times[cuda::kPhaseNames[i]] = phase_ms[i];
  times["call"] = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  return py::make_tuple(Y, log_a, log_underflow, times);
}

// Reads where underflow may have changed the output by more than T's rounding (the core's
// bounds, relative to a); network.py warns about them once the state is up to date.
template <class T>
std::size_t count_underflowed(const std::vector<double>& log_bound) {
  const double limit = std::log(static_cast<double>(std::numeric_limits<T>::epsilon()));
  std::size_t lost = 0;
  for (double b : log_bound) lost += b > limit;
  return lost;
}

template <class T>
py::tuple run_network(py::array W, py::object bias, py::array H, py::array g, py::array h, py::array scalars, py::array keys,
                      py::array values, py::array queries, py::array is_write, py::array index,
                      py::dict params, std::string integrator, std::size_t write_steps, std::size_t read_steps,
                      int num_threads, py::object progress, std::size_t stop_multiple, py::object window_sums,
                      py::object window_reads) {
  NetworkParams p;
  if (W.ndim() != 3) throw std::invalid_argument("hidden_weights must be 3-D");
  p.heads = W.shape(0), p.m = W.shape(1), p.D = W.shape(2);
  p.Dv = H.ndim() == 3 ? H.shape(1) : 0;
  const auto hs = py::ssize_t(p.heads), m = py::ssize_t(p.m), D = py::ssize_t(p.D), Dv = py::ssize_t(p.Dv);
  NetworkState<T> s;
  s.W = checked<T>(W, "hidden_weights", {hs, m, D}, false);
  s.bias = optional_array<T>(bias, "hidden_bias", {hs, m});
  s.H = checked<T>(H, "synapses", {hs, Dv, m}, true);
  s.g = checked<T>(g, "astrocyte_weights", {hs, m}, true);
  s.h = checked<T>(h, "hidden", {hs, m}, true);
  s.scalars = checked<double>(scalars, "scalars", {hs, py::ssize_t(kNumScalars)}, true);
  WindowInputs<T> in;
  in.n_keys = keys.ndim() == 3 ? keys.shape(1) : 0;
  in.n_queries = queries.ndim() == 3 ? queries.shape(1) : 0;
  in.keys = checked<T>(keys, "keys", {hs, py::ssize_t(in.n_keys), D}, false);
  in.values = checked<T>(values, "values", {hs, py::ssize_t(in.n_keys), Dv}, false);
  in.queries = checked<T>(queries, "queries", {hs, py::ssize_t(in.n_queries), D}, false);
  const py::ssize_t n_windows = is_write.ndim() == 1 ? is_write.shape(0) : -1;
  const auto* kinds = checked<std::uint8_t>(is_write, "is_write", {n_windows}, false);
  const auto* idx = checked<std::int64_t>(index, "index", {n_windows}, false);
  std::vector<Window> schedule(static_cast<std::size_t>(n_windows));
  for (py::ssize_t i = 0; i < n_windows; ++i) {
    const bool w = kinds[i] != 0;
    const auto limit = static_cast<std::int64_t>(w ? in.n_keys : in.n_queries);
    if (idx[i] < 0 || idx[i] >= limit) throw std::invalid_argument("schedule index out of range");
    schedule[std::size_t(i)] = Window{w, std::size_t(idx[i])};
  }
  py::array_t<T> outputs({hs, py::ssize_t(in.n_queries), Dv});
  py::array_t<double> log_a({hs, py::ssize_t(in.n_queries)});
  std::fill(outputs.mutable_data(), outputs.mutable_data() + outputs.size(), T(0));
  std::fill(log_a.mutable_data(), log_a.mutable_data() + log_a.size(), kNegInf);
  in.outputs = outputs.mutable_data();
  in.log_astro = log_a.mutable_data();
  std::vector<double> log_underflow(std::size_t(hs) * in.n_queries, kNegInf);
  in.log_underflow = log_underflow.data();
  in.window_sums = optional_array<double>(window_sums, "window_sums", {hs, n_windows, 6}, true);  // written window by window
  in.window_reads = optional_array<double>(window_reads, "window_reads", {hs, n_windows, 2, Dv}, true);  // the reads' rows

  const Integrator integ = parse_integrator(integrator);
  const double tau_h = params["tau_hidden"].cast<double>(), tau_a = params["tau_astro"].cast<double>();
  const double t_write = params["t_write"].cast<double>(), t_read = params["t_read"].cast<double>();
  const double eta = params["eta"].cast<double>(), leak = params["leak"].cast<double>();
  p.input_scale = params["input_scale"].cast<double>();
  p.write_map = window_map(integ, t_write, write_steps, 1.0 / tau_h, 1.0 / tau_a, eta / t_write, leak);
  p.read_map = window_map(integ, t_read, read_steps, 1.0 / tau_h, 1.0 / tau_a, 0.0, 0.0);
  const double work = double(p.heads) * double(p.m) * double(p.D + 2 * p.Dv);
  p.threads = effective_threads(num_threads, work);

  // Between windows, at most every 0.1 s: take the GIL, let Python handle signals and report
  // progress. A pending KeyboardInterrupt, or `progress` returning True (the caller's own SIGINT
  // handler saw Ctrl-C), stops the run at the next window boundary that is a multiple of
  // stop_multiple (2 for streams: never between a token and its query).
  bool interrupted = false, pending = false;
  if (stop_multiple == 0) stop_multiple = 1;
  auto last = std::chrono::steady_clock::now();
  std::function<bool(std::size_t)> keep_going = [&](std::size_t done) {
    if (!pending) {
      const auto now = std::chrono::steady_clock::now();
      if (done != schedule.size() && now - last < std::chrono::milliseconds(100)) return true;
      last = now;
      py::gil_scoped_acquire acquire;
      if (PyErr_CheckSignals() != 0) {
        PyErr_Clear();
        pending = true;
      } else if (!progress.is_none()) {
        const py::object stop = progress(done);
        pending = !stop.is_none() && stop.cast<bool>();
      }
      if (!pending) return true;
    }
    if (done % stop_multiple != 0) return true;
    interrupted = true;
    return false;
  };
  std::size_t done;
  {
    py::gil_scoped_release release;
    done = run_windows(p, s, in, schedule, keep_going);
  }
  return py::make_tuple(outputs, log_a, done, interrupted, count_underflowed<T>(log_underflow));
}

py::tuple window_map_py(const std::string& integrator, double duration, std::size_t steps, double rate_h,
                        double rate_a, double e, double leak) {
  const WindowMap w = window_map(parse_integrator(integrator), duration, steps, rate_h, rate_a, e, leak);
  py::array_t<double> M({3, 3}), a(6);
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) M.mutable_at(i, j) = w.M[i][j];
  for (int i = 0; i < 6; ++i) a.mutable_at(i) = w.a[i];
  return py::make_tuple(M, a);
}

// a = b + s c over float32 arrays, the STREAM triad: the machine's memory bandwidth for the
// benchmarks (bytes moved = 12 per element).
void triad(py::array a, py::array b, py::array c, float s, int num_threads) {
  const py::ssize_t n = a.ndim() == 1 ? a.shape(0) : -1;
  float* pa = checked<float>(a, "a", {n}, true);
  const float* pb = checked<float>(b, "b", {n}, false);
  const float* pc = checked<float>(c, "c", {n}, false);
  const int threads = num_threads > 0 ? num_threads : max_threads();
  py::gil_scoped_release release;
  const std::size_t chunk = 1 << 16, chunks = (std::size_t(n) + chunk - 1) / chunk;
  parallel_for(chunks, threads, [&](std::size_t i) {
    const std::size_t lo = i * chunk, hi = std::min(std::size_t(n), lo + chunk);
#pragma omp simd
    for (std::size_t j = lo; j < hi; ++j) pa[j] = pb[j] + s * pc[j];
  });
}

// (flat index of the first NaN or Inf of a C-contiguous float array or -1, largest |value|): the
// finiteness check of large inputs (hidden weights), one parallel pass at memory speed instead of
// NumPy's isfinite array and all(), which also gives the magnitude the log-rates' precision check
// needs. Both come from one reduction: the bits of |x| (sign cleared) order as the values do, and
// NaN and Inf, whose exponent bits are all ones, lie above every finite value's. Blocks are
// scanned in parallel; the first bad block in order decides. (0 for an empty array.)
template <class T>
std::pair<py::ssize_t, double> scan_values(py::array_t<T, py::array::c_style> arr, int num_threads) {
  using U = std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint64_t>;
  constexpr U magnitude = sizeof(T) == 4 ? U(0x7FFFFFFFu) : U(0x7FFFFFFFFFFFFFFFull);
  constexpr U exponent = sizeof(T) == 4 ? U(0x7F800000u) : U(0x7FF0000000000000ull);
  const T* p = arr.data();
  const std::size_t n = static_cast<std::size_t>(arr.size());
  const std::size_t chunk = 1 << 16, chunks = (n + chunk - 1) / chunk;
  std::vector<U> largest(chunks, 0);
  {
    py::gil_scoped_release release;
    parallel_for(chunks, effective_threads(num_threads, double(n)), [&](std::size_t c) {
      const std::size_t lo = c * chunk, hi = std::min(n, lo + chunk);
      U acc = 0;  // an unsigned max reduction: vectorized by the compiler
      for (std::size_t i = lo; i < hi; ++i) {
        U bits;
        std::memcpy(&bits, p + i, sizeof(bits));
        bits &= magnitude;
        acc = bits > acc ? bits : acc;
      }
      largest[c] = acc;
    });
  }
  U top = 0;
  for (std::size_t c = 0; c < chunks; ++c) {
    if (largest[c] >= exponent)
      for (std::size_t i = c * chunk; i < std::min(n, (c + 1) * chunk); ++i)
        if (!std::isfinite(p[i])) return {static_cast<py::ssize_t>(i), std::numeric_limits<double>::quiet_NaN()};
    top = std::max(top, largest[c]);
  }
  T value;
  std::memcpy(&value, &top, sizeof(value));
  return {-1, static_cast<double>(value)};
}

// The machine's float32 FMA throughput (FLOP/s over all threads): each thread runs `iterations`
// rounds of 12 independent vector FMA chains in registers, no memory traffic. The compute limit
// the benchmarks quote beside the kernels, and its scaling from 1 to 2 threads.
double fma_throughput(int num_threads, long iterations) {
  if (iterations < 1) throw std::invalid_argument("iterations must be >= 1");
  const int threads = num_threads > 0 ? num_threads : max_threads();
  py::gil_scoped_release release;
  using V = simd::V<float>;
  std::vector<float> sink(static_cast<std::size_t>(threads) * 16, 0.0f);
  const auto start = std::chrono::steady_clock::now();
  parallel_for(static_cast<std::size_t>(threads), threads, [&](std::size_t t) {
    const float base = 1e-3f * static_cast<float>(t + 1);
    V a0 = simd::splat(base), a1 = a0 * 2.0f, a2 = a0 * 3.0f, a3 = a0 * 4.0f, a4 = a0 * 5.0f, a5 = a0 * 6.0f;
    V a6 = a0 * 7.0f, a7 = a0 * 8.0f, a8 = a0 * 9.0f, a9 = a0 * 10.0f, a10 = a0 * 11.0f, a11 = a0 * 12.0f;
    const V x = simd::splat(0.9999999f), y = simd::splat(1e-9f);
    for (long it = 0; it < iterations; ++it) {
      a0 = a0 * x + y, a1 = a1 * x + y, a2 = a2 * x + y, a3 = a3 * x + y, a4 = a4 * x + y, a5 = a5 * x + y;
      a6 = a6 * x + y, a7 = a7 * x + y, a8 = a8 * x + y, a9 = a9 * x + y, a10 = a10 * x + y, a11 = a11 * x + y;
#ifdef __AVX__
      asm volatile("" : "+x"(a0), "+x"(a1), "+x"(a2), "+x"(a3), "+x"(a4), "+x"(a5), "+x"(a6), "+x"(a7), "+x"(a8),
                   "+x"(a9), "+x"(a10), "+x"(a11));  // keeps the chains live and in registers
#else  // 32-byte vectors do not fit one SSE register: keep them live through memory
      asm volatile("" : "+m"(a0), "+m"(a1), "+m"(a2), "+m"(a3), "+m"(a4), "+m"(a5), "+m"(a6), "+m"(a7), "+m"(a8),
                   "+m"(a9), "+m"(a10), "+m"(a11));
#endif
    }
    const V a[12] = {a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11};
    for (int i = 0; i < 12; ++i) sink[t * 16] += a[i][0];
  });
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return 2.0 * 12 * simd::W<float> * double(iterations) * threads / seconds;
}

// The kernels' vector exp on its own, for testing it against NumPy: 2^(x - shift), elementwise.
// The kernels only pass x - shift <= 0 (log-rates less their row's largest); the exponent field
// holds 2^n up to n = the type's largest exponent, beyond which the bits would be garbage (and
// the shift's result past 32 or 64 bits undefined): refused here.
template <class T>
py::array_t<T> shifted_exp2(py::array_t<T, py::array::c_style | py::array::forcecast> x, T shift) {
  constexpr T top = static_cast<T>(std::numeric_limits<T>::max_exponent - 1);
  for (py::ssize_t i = 0; i < x.size(); ++i)
    if (!(x.data()[i] - shift <= top))
      throw std::invalid_argument("shifted_exp2: x - shift must be at most " + std::to_string(top) + " (and not NaN), got " +
                                  std::to_string(x.data()[i] - shift) + " at index " + std::to_string(i));
  py::array_t<T> out(x.size());
  std::copy_n(x.data(), x.size(), out.mutable_data());
  simd::exp2_shifted(out.mutable_data(), static_cast<std::size_t>(x.size()), shift);
  return out;
}

// The kernels' packing of hidden weights into panels, for testing it against NumPy and against the
// plain loop: rows [r0, r0 + full) of W (m x D), full a multiple of the panel width (16 values in
// float32, 8 in float64); returns (full / panel, D, panel).
template <class T>
py::array_t<T> pack_panels(py::array_t<T, py::array::c_style | py::array::forcecast> W, std::size_t r0,
                           std::size_t full, bool reference) {
  constexpr std::size_t P = tiles::kPanel<T>;
  if (W.ndim() != 2) throw std::invalid_argument("pack_panels: W must be 2-D (m, D), got " + std::to_string(W.ndim()) + "-D");
  const std::size_t m = std::size_t(W.shape(0)), D = std::size_t(W.shape(1));
  if (full % P || r0 > m || full > m - r0)
    throw std::invalid_argument("pack_panels: need full a multiple of " + std::to_string(P) + " and r0 + full <= m = " +
                                std::to_string(m) + ", got r0 = " + std::to_string(r0) + ", full = " + std::to_string(full));
  py::array_t<T> out({py::ssize_t(full / P), py::ssize_t(D), py::ssize_t(P)});
  if (reference)
    tiles::pack_panels_reference(W.data(), D, r0, full, out.mutable_data());
  else
    tiles::pack_panels(W.data(), D, r0, full, out.mutable_data());
  return out;
}

// One window of one head for a monitor (monitor.hpp): (sums (5,), u (m,), Hh (Dv,) or None, Hu
// (Dv,) or None), all float64. W (m, D), h and g (m,), bias (m,) or None and H (Dv, m) or None in
// the network's dtype T; x (D,) float64 (the scaled input x~) or None.
template <class T>
py::tuple monitor_window_py(py::array W, py::object x, double c, py::object bias, py::array h, py::array g, double e_h,
                            double e_g, py::object H, int num_threads) {
  if (W.ndim() != 2) throw std::invalid_argument("W must be 2-D (m, D)");
  MonitorWindowArgs<T> a;
  a.m = W.shape(0), a.D = W.shape(1);
  const auto m = py::ssize_t(a.m), D = py::ssize_t(a.D);
  a.W = checked<T>(W, "W", {m, D}, false);
  a.x = optional_array<double>(x, "x", {D});
  a.c = c;
  a.bias = optional_array<T>(bias, "bias", {m});
  a.h = checked<T>(h, "h", {m}, false);
  a.g = checked<T>(g, "g", {m}, false);
  a.e_h = e_h, a.e_g = e_g;
  if (!H.is_none()) {
    if (!py::isinstance<py::array>(H) || py::reinterpret_borrow<py::array>(H).ndim() != 2)
      throw std::invalid_argument("H must be a 2-D NumPy array (Dv, m) or None");
    a.Dv = py::reinterpret_borrow<py::array>(H).shape(0);
    a.H = optional_array<T>(H, "H", {py::ssize_t(a.Dv), m});
  }
  py::array_t<double> sums(5), u(m), Hh(py::ssize_t(a.Dv)), Hu(py::ssize_t(a.Dv));
  a.sums = sums.mutable_data(), a.u = u.mutable_data(), a.Hh = Hh.mutable_data(), a.Hu = Hu.mutable_data();
  a.threads = num_threads;
  {
    py::gil_scoped_release release;
    monitor_window(a);
  }
  if (!a.H) return py::make_tuple(sums, u, py::none(), py::none());
  return py::make_tuple(sums, u, Hh, Hu);
}

// Maps from a window's start to each sampled step: M (k, 3, 3) and the astrocyte functionals (k, 6).
py::tuple window_trajectory(const std::string& integrator, double duration, std::size_t steps, double rate_h,
                            double rate_a, double e, double leak, std::vector<std::size_t> samples) {
  for (std::size_t i = 0; i < samples.size(); ++i)
    if (samples[i] < 1 || samples[i] > steps || (i && samples[i] <= samples[i - 1]))
      throw std::invalid_argument("samples must be increasing step numbers in [1, steps]");
  std::vector<WindowMap> traj;
  window_map(parse_integrator(integrator), duration, steps, rate_h, rate_a, e, leak, &samples, &traj);
  const auto k = py::ssize_t(traj.size());
  py::array_t<double> M({k, py::ssize_t(3), py::ssize_t(3)}), a({k, py::ssize_t(6)});
  for (py::ssize_t s = 0; s < k; ++s) {
    for (int i = 0; i < 3; ++i)
      for (int j = 0; j < 3; ++j) M.mutable_at(s, i, j) = traj[std::size_t(s)].M[i][j];
    for (int i = 0; i < 6; ++i) a.mutable_at(s, i) = traj[std::size_t(s)].a[i];
  }
  return py::make_tuple(M, a);
}

}  // namespace

PYBIND11_MODULE(_core, mod) {
  mod.doc() = "tripartite's compiled core (private: use the tripartite package).";
  auto def_attention = [&mod](const char* name, auto kernel) {
    mod.def(name, kernel, py::arg("W"), py::arg("bias"), py::arg("q"), py::arg("k"), py::arg("v"),
            py::arg("input_scale"), py::arg("causal"), py::arg("num_threads"),
            py::arg("partial_budget") = kPartialBudget, py::arg("w_index") = py::none(),
            py::arg("key_mask") = py::none());
  };
  def_attention("attention_float32", &attention<float>);
  def_attention("attention_float64", &attention<double>);
  auto def_cuda = [&mod](const char* name, auto kernel) {
    mod.def(name, kernel, py::arg("W"), py::arg("bias"), py::arg("q"), py::arg("k"), py::arg("v"),
            py::arg("input_scale"), py::arg("device") = 0, py::arg("partial_budget") = cuda::kPartialBudget,
            py::arg("w_index") = py::none(), py::arg("key_mask") = py::none());
  };
  mod.attr("cuda_block_size") = cuda::kBlock;
  mod.attr("cuda_fold_run") = cuda::kRun;  // blocks folded together in the fold's first level
  mod.def("attention_cuda_bytes", &cuda::device_bytes, py::arg("itemsize"), py::arg("heads"), py::arg("n_weights"),
          py::arg("m"), py::arg("D"), py::arg("Lq"), py::arg("Lk"), py::arg("Dv"), py::arg("bias"), py::arg("w_index"),
          py::arg("key_mask"), py::arg("partial_budget") = cuda::kPartialBudget,
          "bytes attention_cuda_* allocates on the GPU for these sizes");
  // The GPU kernels on the CPU emulation: for the tests (tests/test_cuda.py), in every build.
  def_cuda("attention_cuda_emulated_float32", &attention_cuda<float, true>);
  def_cuda("attention_cuda_emulated_float64", &attention_cuda<double, true>);
  mod.def("cuda_emulated_device_count", &cuda::device_count_emulated);
  mod.def("cuda_emulated_device_name", &cuda::device_name_emulated, py::arg("device"));
  mod.def("cuda_emulated_memory_info", &cuda::memory_info_emulated, py::arg("device"));
  mod.def("cuda_emulated_peak_bytes", &cuda::peak_bytes_emulated,
          "the emulation's peak of device bytes allocated at once since the last call (which resets it)");
#ifdef TRIPARTITE_WITH_CUDA
  mod.attr("cuda_compiled") = true;
  def_cuda("attention_cuda_float32", &attention_cuda<float, false>);
  def_cuda("attention_cuda_float64", &attention_cuda<double, false>);
  mod.def("cuda_device_count", &cuda::device_count, "CUDA devices the driver sees (0 without a driver)");
  mod.def("cuda_device_name", &cuda::device_name, py::arg("device"));
  mod.def("cuda_memory_info", &cuda::memory_info, py::arg("device"), "(free, total) bytes of a CUDA device");
#else
  mod.attr("cuda_compiled") = false;
#endif
  auto def_network = [&mod](const char* name, auto fn) {
    mod.def(name, fn, py::arg("W"), py::arg("bias"), py::arg("H"), py::arg("g"), py::arg("h"), py::arg("scalars"),
            py::arg("keys"), py::arg("values"), py::arg("queries"), py::arg("is_write"), py::arg("index"),
            py::arg("params"), py::arg("integrator"), py::arg("write_steps"), py::arg("read_steps"),
            py::arg("num_threads"), py::arg("progress"), py::arg("stop_multiple"), py::arg("window_sums") = py::none(),
            py::arg("window_reads") = py::none());
  };
  def_network("run_network_float32", &run_network<float>);
  def_network("run_network_float64", &run_network<double>);
  mod.def("window_map", &window_map_py,
          "(M, a): the map of one window on (g, h, u) and the astrocyte's linear functional.");
  mod.def("scan_values", &scan_values<float>, py::arg("array"), py::arg("num_threads") = 0);
  mod.def("scan_values", &scan_values<double>, py::arg("array"), py::arg("num_threads") = 0,
          "(flat index of the first NaN or Inf of a float array or -1, largest |value| (NaN if there is a "
          "NaN or Inf; 0 if empty))");
  mod.def("shifted_exp2", &shifted_exp2<float>, py::arg("x"), py::arg("shift"));
  mod.def("shifted_exp2", &shifted_exp2<double>, py::arg("x"), py::arg("shift"),
          "2^(x - shift) by the kernels' vector exp2 (float32 or float64, flat; other input is cast to "
          "float32), for testing it");
  mod.def("pack_panels", &pack_panels<float>, py::arg("W"), py::arg("r0"), py::arg("full"), py::arg("reference") = false);
  mod.def("pack_panels", &pack_panels<double>, py::arg("W"), py::arg("r0"), py::arg("full"), py::arg("reference") = false,
          "rows [r0, r0 + full) of W packed into panels (full / panel, D, panel) by the kernels' packing "
          "(reference=True: the plain loop), for testing it");
  mod.def("triad", &triad, "a = b + s c (float32), for measuring memory bandwidth");
  mod.def("fma_throughput", &fma_throughput, py::arg("num_threads"), py::arg("iterations"),
          "float32 FLOP/s of register-only FMA chains on num_threads threads (the compute limit)");
  auto def_monitor = [&mod](const char* name, auto fn) {
    mod.def(name, fn, py::arg("W"), py::arg("x"), py::arg("c"), py::arg("bias"), py::arg("h"), py::arg("g"), py::arg("e_h"),
            py::arg("e_g"), py::arg("H"), py::arg("num_threads"),
            "(sums, u, Hh, Hu) of one window of one head for a monitor: the input's rates u in true units, "
            "sums = (g.h, g.u, h.h, h.u, u.u) in true units, Hh = H h and Hu = H u of the stored synapses");
  };
  def_monitor("monitor_window_float32", &monitor_window_py<float>);
  def_monitor("monitor_window_float64", &monitor_window_py<double>);
  mod.def("window_trajectory", &window_trajectory,
          "(M, a) from a window's start to each sampled step (for monitors).");
  mod.def("openmp_enabled", &has_openmp,
          "True if the core was built with OpenMP (else every call runs on one thread, whatever num_threads says).");
  mod.def("max_threads", &max_threads, "The number of threads num_threads=0 (all cores) means.");
  mod.attr("block_size") = kBlock;
  mod.attr("attention_block_size") = kNeuronBlock;
  mod.attr("chunk_size") = kChunk;
  mod.attr("blocks_per_task") = kBlocksPerTask;  // attention blocks per task (a thread's unit of work)
  mod.attr("single_thread_work") = kSingleThreadWork;  // estimated flops below which a call runs on one thread
  mod.def("segment_windows", &detail::segment_windows, py::arg("heads"), py::arg("m"), py::arg("d_key"), py::arg("d_value"),
          "Windows that share one pass over the weights and the synapses, for a network of this size.");
  mod.attr("max_segment_windows") = detail::kMaxSegment;
  mod.attr("min_segment_windows") = detail::kMinSegment;  // calls of at most this many windows keep their rates
  mod.attr("num_scalars") = std::size_t(kNumScalars);
}
