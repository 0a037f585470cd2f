// The steady state on an NVIDIA GPU (tripartite/cuda.hpp says what and how; attention.hpp is the
// CPU's version of the same algorithm, and its comments give the reasons for the log-scales).
//
// One thread block of kThreads threads per block of kNB hidden neurons of one head (and slice of
// kCW value columns). In each chunk of kTC tokens it forms the tokens' log-rates on its neurons,
//     y[i][r] = x~_i . W_r + (b_r - B)       (B: the block's largest bias, 0 without one),
// the row maxima M_i = max_r y[i][r] + B - off_i (off_i = |x~_i|^2 / 2 + log(m) / 2, in double) and
// the features f[i][r] = exp(y[i][r] - max_r y[i][r]) <= 1. Keys: H[r][c] += f[i][r] w_i v_i[c] and
// g[r] += f[i][r] w_i with w_i = exp(M_i - C), C the block's log-scale (raised when a chunk's
// largest M_i passes it by more than log(max T) / 8, rescaling H and g). Queries: the partial
// numerator sum_r f[i][r] H[r][c] and denominator sum_r f[i][r] g[r], at the log-scale C + M_i.
// Every sum runs in a fixed order (no atomics); the partials are folded in block order.
#include "tripartite/cuda.hpp"
#include "tripartite/features.hpp"

#ifdef TRIPARTITE_CUDA_EMULATION  // cpp/cuda/emulated.cpp: the same code on CPU fibers, for the tests
#include "tripartite/cuda_emulation.hpp"
#define TRIPARTITE_SHARED(name) unsigned char* name = ::tripartite_emulation::block->shared.data()
#define TRIPARTITE_LAUNCH(kernel, grid, threads, bytes, ...) tripartite_launch(kernel, grid, threads, bytes, __VA_ARGS__)
#define TRIPARTITE_API(name) name##_emulated
#define TRIPARTITE_GPU_UNROLL
#else
#include <cuda_runtime.h>
#define TRIPARTITE_SHARED(name) extern __shared__ __align__(16) unsigned char name[]
#define TRIPARTITE_LAUNCH(kernel, grid, threads, bytes, ...) kernel<<<grid, threads, bytes>>>(__VA_ARGS__)
#define TRIPARTITE_API(name) name
#define TRIPARTITE_GPU_UNROLL _Pragma("unroll")
#endif

#include <algorithm>
#include <cmath>
#include <limits>
#include <new>
#include <stdexcept>
#include <string>
#include <chrono>
#include <vector>

namespace tripartite::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kNB = static_cast<int>(kBlock);    // 128 hidden neurons: 32 lanes x 4
constexpr int kTC = 32;                          // tokens per chunk: 8 warps x 4
constexpr int kDT = 32;                          // inputs' columns per slice of the log-rates
constexpr int kCW = static_cast<int>(kColumns);  // 64 value columns: 8 warps x 8 (write), 32 lanes x 2 (read)
constexpr int kWS = kNB + 4;                     // row stride of the weights' slice (fewer bank conflicts)
static_assert(kNB == 128 && kTC == 32 && kCW == 64 && kThreads == 256, "the thread maps below assume these");

__host__ __device__ inline std::size_t smin(std::size_t x, std::size_t y) { return x < y ? x : y; }

void check(cudaError_t e, const char* what) {
  if (e == cudaSuccess) return;
  if (e == cudaErrorMemoryAllocation) {
    cudaGetLastError();  // clear it
    throw std::bad_alloc();
  }
  throw std::runtime_error(std::string("CUDA error in ") + what + ": " + cudaGetErrorString(e));
}

// A device allocation of n values, freed on scope exit.
template <class U>
struct Buffer {
  U* p = nullptr;
  std::size_t n = 0;
  explicit Buffer(std::size_t count) : n(count) {
    if (n) check(cudaMalloc(reinterpret_cast<void**>(&p), n * sizeof(U)), "cudaMalloc");
  }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  ~Buffer() {
    if (p) cudaFree(p);
  }
  void upload(const U* host) {
    if (n) check(cudaMemcpy(p, host, n * sizeof(U), cudaMemcpyHostToDevice), "cudaMemcpy to the device");
  }
  void download(U* host) const {
    if (n) check(cudaMemcpy(host, p, n * sizeof(U), cudaMemcpyDeviceToHost), "cudaMemcpy from the device");
  }
};

// Restores the caller's current device on scope exit.
struct DeviceGuard {
  int previous = 0;
  explicit DeviceGuard(int device) {
    check(cudaGetDevice(&previous), "cudaGetDevice");
    check(cudaSetDevice(device), "cudaSetDevice");
  }
  ~DeviceGuard() { cudaSetDevice(previous); }
};

// GPU time between construction and stop() (when on), by CUDA events; destroyed on scope exit.
struct Timer {
  cudaEvent_t start = nullptr, end = nullptr;
  explicit Timer(bool on) {
    if (!on) return;
    check(cudaEventCreate(&start), "cudaEventCreate");
    check(cudaEventCreate(&end), "cudaEventCreate");
    check(cudaEventRecord(start), "cudaEventRecord");
  }
  Timer(const Timer&) = delete;
  Timer& operator=(const Timer&) = delete;
  void stop() {
    if (end) check(cudaEventRecord(end), "cudaEventRecord");
  }
  double ms() const {
    float t = 0;
    check(cudaEventElapsedTime(&t, start, end), "cudaEventElapsedTime");
    return t;
  }
  ~Timer() {
    if (start) cudaEventDestroy(start);
    if (end) cudaEventDestroy(end);
  }
};

__device__ inline float exp_t(float x) { return expf(x); }
__device__ inline double exp_t(double x) { return exp(x); }

template <class T>
__device__ inline T neg_inf() {
  return -std::numeric_limits<T>::infinity();
}

template <class T>
__device__ inline T warp_max(T x) {
  for (int off = 16; off > 0; off >>= 1) x = max(x, __shfl_xor_sync(0xffffffffu, x, off));
  return x;
}

// Every lane gets the same sum (each step adds a pair in both orders: addition commutes).
template <class T>
__device__ inline T warp_sum(T x) {
  for (int off = 16; off > 0; off >>= 1) x += __shfl_xor_sync(0xffffffffu, x, off);
  return x;
}

// acc[a][b] += x[a] w[b]: the multiply-adds of a register tile (the log-rates, the write, the read).
template <int A, int B, class T>
__device__ inline void tile_fma(T (&acc)[A][B], const T (&x)[A], const T (&w)[B]) {
TRIPARTITE_GPU_UNROLL
  for (int a = 0; a < A; ++a)
TRIPARTITE_GPU_UNROLL
    for (int b = 0; b < B; ++b) acc[a][b] = fma(x[a], w[b], acc[a][b]);
}

template <class T>
struct Params {
  const T* W;               // n_weights x m x D
  const std::int64_t* w_index;
  const T* bias;            // heads x m or null
  const T* xk;              // heads x Lk x D: k s^{1/2}
  const T* xq;              // heads x Lq x D
  const double* koff;       // heads x Lk: |k~|^2 / 2 + log(m) / 2
  const double* qoff;
  const T* V;               // heads x Lk x Dv
  const std::uint8_t* mask; // heads x Lk or null
  std::size_t m, D, Dv, Lk, Lq, head;
};

// Shared memory of one thread block, carved from the dynamic allocation.
template <class T>
struct Shared {
  double* M;    // kTC: the chunk's row maxima M_i (-inf: no such row, or a masked key)
  double* B;    // 1: the block's largest bias
  T* ws;        // kDT x kWS: a slice of the block's weights, transposed
  T* ft;        // kTC x kNB: the chunk's features
  T* vp;        // kTC x kCW: the chunk's values times their key weights
  T* Hs;        // kNB x kCW: the block's synapses (read phase)
  T* xs;        // kTC x (kDT + 1): a slice of the chunk's inputs
  T* gs;        // kNB: the astrocyte weights (read phase)
  T* bias2;     // kNB: b_r - B
  T* wk;        // kTC: key weights
  static constexpr std::size_t bytes() {
    return sizeof(double) * (kTC + 2) +
           sizeof(T) * (std::size_t(kDT) * kWS + kTC * kNB + kTC * kCW + kNB * kCW + kTC * (kDT + 1) + 2 * kNB + kTC);
  }
  __device__ explicit Shared(unsigned char* base) {
    M = reinterpret_cast<double*>(base);
    B = M + kTC;
    T* t = reinterpret_cast<T*>(M + kTC + 2);  // 16-byte aligned: (kTC + 2) doubles
    ws = t;
    ft = ws + kDT * kWS;
    vp = ft + kTC * kNB;
    Hs = vp + kTC * kCW;
    xs = Hs + kNB * kCW;
    gs = xs + kTC * (kDT + 1);
    bias2 = gs + kNB;
    wk = bias2 + kNB;
  }
};

// The features of n <= kTC inputs X (rows of D) on the block's nbk neurons Wb (rows of D) into
// s.ft, their row maxima into s.M. Thread (tg, ng) = (tid / 32, tid % 32) forms rows 4 tg.. and
// neurons 4 ng.. . Starts and ends with a barrier.
template <class T>
__device__ void rates(const T* X, const double* off, int n, const T* Wb, int nbk, std::size_t D, bool has_bias,
                      const std::uint8_t* mask, Shared<T>& s) {
  const int tid = threadIdx.x, tg = tid / 32, ng = tid % 32;
  T acc[4][4] = {};
  for (std::size_t d0 = 0; d0 < D; d0 += kDT) {
    __syncthreads();  // the previous slice (or the previous users of xs and ws) are done
    const int dn = static_cast<int>(smin(kDT, D - d0));
    for (int e = tid; e < kTC * kDT; e += kThreads) {
      const int i = e / kDT, d = e % kDT;
      s.xs[i * (kDT + 1) + d] = (i < n && d < dn) ? X[std::size_t(i) * D + d0 + d] : T(0);
    }
    for (int e = tid; e < kNB * kDT; e += kThreads) {
      const int r = e / kDT, d = e % kDT;  // consecutive threads read consecutive d of a row of W
      s.ws[d * kWS + r] = (r < nbk && d < dn) ? Wb[std::size_t(r) * D + d0 + d] : T(0);
    }
    __syncthreads();
    for (int d = 0; d < dn; ++d) {
      T x[4], w[4];
TRIPARTITE_GPU_UNROLL
      for (int a = 0; a < 4; ++a) x[a] = s.xs[(4 * tg + a) * (kDT + 1) + d];
TRIPARTITE_GPU_UNROLL
      for (int b = 0; b < 4; ++b) w[b] = s.ws[d * kWS + 4 * ng + b];
      tile_fma(acc, x, w);
    }
  }
  T ymax[4];
TRIPARTITE_GPU_UNROLL
  for (int a = 0; a < 4; ++a) {
    T mx = neg_inf<T>();
TRIPARTITE_GPU_UNROLL
    for (int b = 0; b < 4; ++b) {
      const int r = 4 * ng + b;
      const T y = r < nbk ? acc[a][b] + (has_bias ? s.bias2[r] : T(0)) : neg_inf<T>();
      acc[a][b] = y;
      mx = max(mx, y);
    }
    ymax[a] = warp_max(mx);  // the warp holds rows 4 tg.. on all 128 neurons
  }
  __syncthreads();  // the previous users of ft and M are done
TRIPARTITE_GPU_UNROLL
  for (int a = 0; a < 4; ++a) {
    const int i = 4 * tg + a;
TRIPARTITE_GPU_UNROLL
    for (int b = 0; b < 4; ++b) s.ft[i * kNB + 4 * ng + b] = i < n ? exp_t(acc[a][b] - ymax[a]) : T(0);
    if (ng == 0)
      s.M[i] = (i < n && (!mask || mask[i])) ? static_cast<double>(ymax[a]) + s.B[0] - off[i] : kNegInf;
  }
  __syncthreads();
}

// One block of neurons (blockIdx.x + b0 of head p.head) and one slice of value columns
// (blockIdx.y): its partial readout of every query into part (count x Lq x (Dv + 1); the
// denominator, the log-scale and the underflow bound from slice 0 only).
template <class T>
__global__ void __launch_bounds__(kThreads) block_partials(Params<T> p, std::size_t b0, double* part, double* pscale,
                                                            double* pfloor) {
  TRIPARTITE_SHARED(smem);
  Shared<T> s(smem);
  const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
  const std::size_t hd = p.head, bl = blockIdx.x, r0 = (b0 + bl) * kNB;
  const int nbk = static_cast<int>(smin(kNB, p.m - r0));
  const std::size_t c0 = std::size_t(blockIdx.y) * kCW;
  const int cols = static_cast<int>(smin(kCW, p.Dv - c0));
  const std::size_t stride = p.Dv + 1;
  const T* Wb = p.W + ((p.w_index ? std::size_t(p.w_index[hd]) : hd) * p.m + r0) * p.D;

  // The block's largest bias B (in double, as the CPU's row maxima take it) and b_r - B in T.
  const bool has_bias = p.bias != nullptr;
  if (has_bias) {
    const T* bb = p.bias + hd * p.m + r0;
    if (warp == 0) {
      T mx = neg_inf<T>();
      for (int r = lane; r < nbk; r += 32) mx = max(mx, bb[r]);
      mx = warp_max(mx);
      if (lane == 0) s.B[0] = static_cast<double>(mx);
    }
    __syncthreads();
    const T B = static_cast<T>(s.B[0]);
    for (int r = tid; r < kNB; r += kThreads) s.bias2[r] = r < nbk ? bb[r] - B : T(0);
  } else if (tid == 0) {
    s.B[0] = 0.0;
  }
  // (rates() starts with a barrier)

  // Writing phase. Thread (rg, cg) = (tid % 32, tid / 32) holds H[4 rg + a][8 cg + c] in registers;
  // thread r < kNB holds g[r].
  const int rg = tid % 32, cg = tid / 32;
  T h[4][8] = {};
  T g = T(0);
  double C = kNegInf, F = 0.0;  // the block's log-scale, and its total key weight in C's units
  const double headroom = log(static_cast<double>(std::numeric_limits<T>::max())) / 8;
  for (std::size_t t0 = 0; t0 < p.Lk; t0 += kTC) {
    const int n = static_cast<int>(smin(kTC, p.Lk - t0));
    rates(p.xk + (hd * p.Lk + t0) * p.D, p.koff + hd * p.Lk + t0, n, Wb, nbk, p.D, has_bias,
          p.mask ? p.mask + hd * p.Lk + t0 : nullptr, s);
    double mx = kNegInf;
    for (int i = 0; i < kTC; ++i) mx = fmax(mx, s.M[i]);
    if (mx > C + headroom) {  // C = -inf: the first written key; mx = -inf (all masked): nothing
      if (C != kNegInf) {
        const double f = exp(C - mx);
        const T ft = static_cast<T>(f);
TRIPARTITE_GPU_UNROLL
        for (int a = 0; a < 4; ++a)
TRIPARTITE_GPU_UNROLL
          for (int c = 0; c < 8; ++c) h[a][c] *= ft;
        g *= ft;
        F *= f;
      }
      C = mx;
    }
    if (tid < kTC) s.wk[tid] = s.M[tid] == kNegInf ? T(0) : static_cast<T>(exp(s.M[tid] - C));
    __syncthreads();
    for (int i = 0; i < n; ++i) F += static_cast<double>(s.wk[i]);
    const T* Vc = p.V + (hd * p.Lk + t0) * p.Dv + c0;
    for (int e = tid; e < kTC * kCW; e += kThreads) {
      const int i = e / kCW, c = e % kCW;
      s.vp[e] = (i < n && c < cols) ? s.wk[i] * Vc[std::size_t(i) * p.Dv + c] : T(0);
    }
    __syncthreads();
    for (int i = 0; i < n; ++i) {
      T f[4], v[8];
TRIPARTITE_GPU_UNROLL
      for (int a = 0; a < 4; ++a) f[a] = s.ft[i * kNB + 4 * rg + a];
TRIPARTITE_GPU_UNROLL
      for (int c = 0; c < 8; ++c) v[c] = s.vp[i * kCW + 8 * cg + c];
      tile_fma(h, f, v);
    }
    if (tid < kNB)
      for (int i = 0; i < n; ++i) g = fma(s.ft[i * kNB + tid], s.wk[i], g);
  }
  const double floor_bound = underflow_log_bound<T>(nbk, log(F));  // F = 0 (no key): -inf, as the CPU's
TRIPARTITE_GPU_UNROLL
  for (int a = 0; a < 4; ++a)
TRIPARTITE_GPU_UNROLL
    for (int c = 0; c < 8; ++c) s.Hs[(4 * rg + a) * kCW + 8 * cg + c] = h[a][c];
  if (tid < kNB) s.gs[tid] = g;
  // (rates() starts with a barrier; Hs and gs are not touched by it)

  // Reading phase. Thread (qg, cl) = (tid / 32, tid % 32) forms queries 4 qg.. at columns 2 cl..;
  // warp w the denominators of queries 4 w.. .
  const int qg = tid / 32, cl = tid % 32;
  for (std::size_t t0 = 0; t0 < p.Lq; t0 += kTC) {
    const int n = static_cast<int>(smin(kTC, p.Lq - t0));
    rates(p.xq + (hd * p.Lq + t0) * p.D, p.qoff + hd * p.Lq + t0, n, Wb, nbk, p.D, has_bias, nullptr, s);
    T o[4][2] = {};
    for (int r = 0; r < nbk; ++r) {
      T e[4];
TRIPARTITE_GPU_UNROLL
      for (int a = 0; a < 4; ++a) e[a] = s.ft[(4 * qg + a) * kNB + r];
      const T hc[2] = {s.Hs[r * kCW + 2 * cl], s.Hs[r * kCW + 2 * cl + 1]};
      tile_fma(o, e, hc);
    }
    double* out = part + (bl * p.Lq + t0) * stride;
TRIPARTITE_GPU_UNROLL
    for (int a = 0; a < 4; ++a) {
      const int q = 4 * qg + a;
      if (q < n)
        for (int c = 0; c < 2; ++c)
          if (2 * cl + c < cols) out[std::size_t(q) * stride + c0 + 2 * cl + c] = static_cast<double>(o[a][c]);
    }
    if (blockIdx.y == 0) {
TRIPARTITE_GPU_UNROLL
      for (int a = 0; a < 4; ++a) {
        const int q = 4 * warp + a;
        T sum = T(0);
        for (int r = lane; r < nbk; r += 32) sum = fma(s.ft[q * kNB + r], s.gs[r], sum);
        sum = warp_sum(sum);
        if (lane == 0 && q < n) {
          const std::size_t idx = bl * p.Lq + t0 + q;
          part[idx * stride + p.Dv] = static_cast<double>(sum);
          pscale[idx] = C + s.M[q];
          pfloor[idx] = floor_bound + C + s.M[q];
        }
      }
    }
  }
}

// Running sums of one column of one query: x (the column's numerator) and den at the log-scale ref,
// and the underflow bound fl.
struct Running {
  double x, den, ref, fl;
};

// Partial k (of a block or a run: column value part[k][c], denominator part[k][Dv], log-scale
// pscale[k], underflow bound pfloor[k]) folded into s, as attention.hpp's detail::fold_partial
// (common.hpp: fold_scaled), one column and the denominator.
__device__ inline void fold_partial(Running& s, const double* part, const double* pscale, const double* pfloor,
                                    std::size_t k, std::size_t Dv, std::size_t c) {
  const std::size_t stride = Dv + 1;
  s.fl = log_add_exp(s.fl, pfloor[k]);
  const double pd = part[k * stride + Dv];
  if (!(pd > 0)) return;  // every key feature of the block underflowed (or no key): adds nothing
  double acc[2] = {s.x, s.den};
  const double p[2] = {part[k * stride + c], pd};
  fold_scaled(s.ref, pscale[k], acc, p, 2);
  s.x = acc[0];
  s.den = acc[1];
}

// The fold's first level: the partials of each run of kRun consecutive blocks (of `count`, a group
// that starts at a run's first block) folded in block order into one partial of the same layout
// (rpart, rscale, rfloor), all runs at once. Thread (run, q, c) folds column c of query q, c = Dv
// being the denominator; every thread of a query repeats the same scale decisions, and the one of
// c = 0 writes the scalars. (Before, fold_blocks alone folded all 782 blocks of the paper's scale
// in one chain per query and column: 1.05 ms of the kernels' 1.7 on an H200,
// docs/ncu-h200-86adcdb.txt. This level's speed there is not measured yet.)
__global__ void fold_runs(const double* part, const double* pscale, const double* pfloor, std::size_t count,
                          std::size_t Lq, std::size_t Dv, double* rpart, double* rscale, double* rfloor) {
  const std::size_t stride = Dv + 1, idx = std::size_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const std::size_t runs = (count + kRun - 1) / kRun;
  if (idx >= runs * Lq * stride) return;
  const std::size_t run = idx / (Lq * stride), q = idx / stride % Lq, c = idx % stride;
  Running s{0.0, 0.0, kNegInf, kNegInf};
  for (std::size_t b = run * kRun; b < smin(count, run * kRun + kRun); ++b) fold_partial(s, part, pscale, pfloor, b * Lq + q, Dv, c);
  const std::size_t j = run * Lq + q;
  rpart[j * stride + c] = s.x;  // for c = Dv, the denominator (folded with the same operations as s.den)
  if (c == 0) {
    rscale[j] = s.ref;
    rfloor[j] = s.fl;
  }
}

// The fold's second level: `count` partials (of runs) folded into the running sums of head `hd`, in
// order. Thread (q, c) folds column c of query q; every thread of a query repeats the same scale
// decisions. The scalars are read from *_in and written (by c = 0) to *_out, so no thread reads
// what another writes.
__global__ void fold_blocks(const double* part, const double* pscale, const double* pfloor, std::size_t count,
                            std::size_t Lq, std::size_t Dv, std::size_t hd, double* acc, const double* den_in,
                            const double* ref_in, const double* floor_in, double* den_out, double* ref_out,
                            double* floor_out) {
  const std::size_t idx = std::size_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= Lq * Dv) return;
  const std::size_t q = idx / Dv, c = idx % Dv, j = hd * Lq + q;
  Running s{acc[j * Dv + c], den_in[j], ref_in[j], floor_in[j]};
  for (std::size_t b = 0; b < count; ++b) fold_partial(s, part, pscale, pfloor, b * Lq + q, Dv, c);
  acc[j * Dv + c] = s.x;
  if (c == 0) {
    den_out[j] = s.den;
    ref_out[j] = s.ref;
    floor_out[j] = s.fl;
  }
}

template <class T>
__global__ void finish(const double* acc, const double* den, const double* ref, const double* fl, std::size_t rows,
                       std::size_t Dv, T* Y, double* log_a, double* log_u) {
  const std::size_t idx = std::size_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= rows * Dv) return;
  const std::size_t j = idx / Dv, c = idx % Dv;
  const bool visible = ref[j] != kNegInf;  // else every feature underflowed, or there is no key
  Y[idx] = visible ? static_cast<T>(acc[idx] / den[j]) : T(0);
  if (c == 0) {
    log_a[j] = visible ? ref[j] + log(den[j]) : kNegInf;
    log_u[j] = fl[j];
  }
}

__global__ void fill(double* x, std::size_t n, double value) {
  const std::size_t i = std::size_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) x[i] = value;
}

unsigned grid_for(std::size_t n) { return static_cast<unsigned>((n + kThreads - 1) / kThreads); }

}  // namespace

template <class T>
void TRIPARTITE_API(steady_state_attention)(const Args<T>& a) {
  const std::size_t heads = a.heads, D = a.D, Dv = a.Dv, m = a.m, Lq = a.Lq, Lk = a.Lk;
  if (heads == 0 || Lq == 0 || Dv == 0) return;
  if (m == 0 || D == 0) throw std::invalid_argument("CUDA attention needs m >= 1 and D >= 1");
  DeviceGuard guard(a.device);
  auto mark = std::chrono::steady_clock::now();
  auto phase = [&](int i) {  // the time since the last phase ended, as phase i
    const auto now = std::chrono::steady_clock::now();
    if (a.phase_ms) a.phase_ms[i] = std::chrono::duration<double, std::milli>(now - mark).count();
    mark = now;
  };

  // The scaled inputs x~ = x s^{1/2} in T and their offsets |x~|^2 / 2 + log(m) / 2 in double
  // (features.hpp, in natural units: the kernels exponentiate with exp, not exp2).
  auto scale_rows = [&](const T* X, std::size_t rows, std::vector<T>& out, std::vector<double>& off) {
    out.resize(rows * D);
    off.resize(rows);
    for (std::size_t i = 0; i < rows; ++i) off[i] = scaled_input(X + i * D, D, a.input_scale, m, out.data() + i * D, 1.0);
  };
  std::vector<T> xk_h, xq_h;
  std::vector<double> koff_h, qoff_h;
  scale_rows(a.K, heads * Lk, xk_h, koff_h);
  scale_rows(a.Q, heads * Lq, xq_h, qoff_h);
  phase(0);

  Buffer<T> W(a.n_weights * m * D), bias(a.bias ? heads * m : 0), xk(heads * Lk * D), xq(heads * Lq * D),
      V(heads * Lk * Dv), Y(heads * Lq * Dv);
  Buffer<std::int64_t> w_index(a.w_index ? heads : 0);
  Buffer<std::uint8_t> mask(a.key_mask ? heads * Lk : 0);
  Buffer<double> koff(heads * Lk), qoff(heads * Lq);
  const std::size_t group = group_size(m, Lq, Dv, a.partial_budget), stride = Dv + 1;
  Buffer<double> part(group * Lq * stride), pscale(group * Lq), pfloor(group * Lq);
  const std::size_t group_runs = runs_per_group(group);
  Buffer<double> rpart(group_runs * Lq * stride), rscale(group_runs * Lq), rfloor(group_runs * Lq);
  Buffer<double> acc(heads * Lq * Dv), scalars(heads * Lq * 6), log_a(heads * Lq), log_u(heads * Lq);
  phase(1);
  W.upload(a.W);
  if (a.bias) bias.upload(a.bias);
  xk.upload(xk_h.data());
  xq.upload(xq_h.data());
  V.upload(a.V);
  if (a.w_index) w_index.upload(a.w_index);
  if (a.key_mask) mask.upload(a.key_mask);
  koff.upload(koff_h.data());
  qoff.upload(qoff_h.data());
  phase(2);

  // Running sums: two buffers of (den, ref, floor), swapped after each group of a head.
  const std::size_t rows = heads * Lq;
  double* den[2] = {scalars.p, scalars.p + rows};
  double* ref[2] = {scalars.p + 2 * rows, scalars.p + 3 * rows};
  double* fl[2] = {scalars.p + 4 * rows, scalars.p + 5 * rows};
  Timer timer(a.kernel_ms != nullptr);
  check(cudaMemset(acc.p, 0, acc.n * sizeof(double)), "cudaMemset");
  for (int k = 0; k < 2; ++k) {
    TRIPARTITE_LAUNCH(fill, grid_for(rows), kThreads, 0, den[k], rows, 0.0);
    TRIPARTITE_LAUNCH(fill, grid_for(rows), kThreads, 0, ref[k], rows, kNegInf);
    TRIPARTITE_LAUNCH(fill, grid_for(rows), kThreads, 0, fl[k], rows, kNegInf);
  }
  check(cudaGetLastError(), "the initial fill");

  const std::size_t smem = Shared<T>::bytes();
  check(cudaFuncSetAttribute(block_partials<T>, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)),
        "cudaFuncSetAttribute (shared memory)");
  const std::size_t nb = blocks_per_head(m);
  const unsigned slices = static_cast<unsigned>((Dv + kCW - 1) / kCW);
  int parity = 0;
  for (std::size_t hd = 0; hd < heads; ++hd) {
    parity = 0;  // every head runs the same number of groups, so all end in the same buffer
    Params<T> p{W.p, a.w_index ? w_index.p : nullptr, a.bias ? bias.p : nullptr, xk.p, xq.p, koff.p, qoff.p, V.p,
                a.key_mask ? mask.p : nullptr, m, D, Dv, Lk, Lq, hd};
    for (std::size_t b0 = 0; b0 < nb; b0 += group) {
      const std::size_t count = std::min(group, nb - b0);
      TRIPARTITE_LAUNCH(block_partials<T>, dim3(static_cast<unsigned>(count), slices), kThreads, smem, p, b0, part.p,
                        pscale.p, pfloor.p);
      check(cudaGetLastError(), "block_partials");
      const std::size_t runs = runs_per_group(count);
      TRIPARTITE_LAUNCH(fold_runs, grid_for(runs * Lq * stride), kThreads, 0, part.p, pscale.p, pfloor.p, count, Lq, Dv,
                        rpart.p, rscale.p, rfloor.p);
      check(cudaGetLastError(), "fold_runs");
      TRIPARTITE_LAUNCH(fold_blocks, grid_for(Lq * Dv), kThreads, 0, rpart.p, rscale.p, rfloor.p, runs, Lq, Dv, hd,
                        acc.p, den[parity], ref[parity], fl[parity], den[1 - parity], ref[1 - parity], fl[1 - parity]);
      check(cudaGetLastError(), "fold_blocks");
      parity = 1 - parity;
    }
  }
  TRIPARTITE_LAUNCH(finish<T>, grid_for(rows * Dv), kThreads, 0, acc.p, den[parity], ref[parity], fl[parity], rows, Dv,
                    Y.p, log_a.p, log_u.p);
  check(cudaGetLastError(), "finish");
  timer.stop();
  check(cudaDeviceSynchronize(), "the attention kernels");
  phase(3);
  if (a.kernel_ms) *a.kernel_ms = timer.ms();
  Y.download(a.Y);
  if (a.log_a) log_a.download(a.log_a);
  if (a.log_underflow) log_u.download(a.log_underflow);
  phase(4);
}

int TRIPARTITE_API(device_count)() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // no driver or no device: not an error of ours
    return 0;
  }
  return n;
}

std::string TRIPARTITE_API(device_name)(int device) {
  cudaDeviceProp prop;
  check(cudaGetDeviceProperties(&prop, device), "cudaGetDeviceProperties");
  return prop.name;
}

std::pair<std::size_t, std::size_t> TRIPARTITE_API(memory_info)(int device) {
  DeviceGuard guard(device);
  std::size_t free_bytes = 0, total = 0;
  check(cudaMemGetInfo(&free_bytes, &total), "cudaMemGetInfo");
  return {free_bytes, total};
}

template void TRIPARTITE_API(steady_state_attention)<float>(const Args<float>&);
template void TRIPARTITE_API(steady_state_attention)<double>(const Args<double>&);

}  // namespace tripartite::cuda
