// The steady state (MODEL.md section 1, bidirectional) on an NVIDIA GPU: the host-side interface
// of cpp/cuda/attention.cu, built only with TRIPARTITE_CUDA=ON. Plain C++: no CUDA header is
// needed to call it.
//
// The algorithm is the CPU's (attention.hpp) with its own block size: hidden neurons go in blocks
// of kBlock, one thread block each (and per slice of kColumns value columns). A block writes every
// key into its own synapses, kept in registers and shared memory (never an m x Dv array), at a
// log-scale C_b raised as the CPU's is, then reads every query from them. Its partial readouts (in
// double, with their log-scales) are folded in two levels of fixed order, query by query: the
// blocks of each run of kRun consecutive blocks in block order (runs counted from the head's first
// block; in parallel over runs), then the runs in run order. Nothing is summed with atomics, so the
// result depends on the inputs only: the same bits on every call and for any grouping of blocks
// (partial_budget; groups are whole runs). Its roundings differ from the CPU's (other block size,
// exp instead of exp2 of base-2 log-rates, the two-level fold), so the two agree to float
// precision, not bitwise.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>

namespace tripartite::cuda {

inline constexpr std::size_t kBlock = 128;    // hidden neurons per thread block
inline constexpr std::size_t kColumns = 64;   // value columns per slice (grid.y = ceil(Dv / kColumns))
inline constexpr std::size_t kRun = 32;       // blocks folded together in the fold's first level
// Bytes of block partials kept on the device at once by default (they are folded every group of
// blocks); at least one run of kRun blocks (or the whole head) is kept whatever this says. The
// result does not depend on it.
inline constexpr std::size_t kPartialBudget = std::size_t(256) << 20;

template <class T>
struct Args {
  std::size_t heads = 1, Lk = 0, Lq = 0, D = 0, Dv = 0, m = 0;
  std::size_t n_weights = 1;            // heads of W (heads, unless w_index names them)
  const T* W = nullptr;                 // n_weights x m x D (host)
  const std::int64_t* w_index = nullptr;  // heads (null: head h uses W[h])
  const T* bias = nullptr;              // heads x m (null: none)
  const T* Q = nullptr;                 // heads x Lq x D (unscaled)
  const T* K = nullptr;                 // heads x Lk x D (unscaled)
  const T* V = nullptr;                 // heads x Lk x Dv
  const std::uint8_t* key_mask = nullptr;  // heads x Lk (null: every key)
  T* Y = nullptr;                       // heads x Lq x Dv
  double* log_a = nullptr;              // heads x Lq
  double* log_underflow = nullptr;      // heads x Lq (see attention.hpp: detail::underflow_bound)
  double input_scale = 1.0;             // sqrt(s)
  int device = 0;
  std::size_t partial_budget = kPartialBudget;
  double* kernel_ms = nullptr;          // (may be null) GPU time of the kernels, transfers excluded
  double* phase_ms = nullptr;           // (may be null) kPhases host wall-clock times, in ms (below)
};

// The host's wall-clock phases of a call, in order (the device buffers' release, at return, is not
// among them): the inputs' scaling on the host, the device allocations, the uploads, the kernels
// (launch to synchronisation), the downloads.
inline constexpr int kPhases = 5;
inline constexpr const char* kPhaseNames[kPhases] = {"scaling", "allocation", "upload", "kernels", "download"};

// Runs the call on device a.device (host arrays in and out); throws std::runtime_error on a CUDA
// error, std::bad_alloc when the device is out of memory.
template <class T>
void steady_state_attention(const Args<T>& a);

inline std::size_t blocks_per_head(std::size_t m) { return (m + kBlock - 1) / kBlock; }

// Blocks of one head whose partials (Lq x (Dv + 1) sums, a log-scale and an underflow bound each,
// in double) are kept on the device at once: the whole head where the budget allows, else a
// multiple of kRun (at least one run), so that every group holds whole runs of the fold.
inline std::size_t group_size(std::size_t m, std::size_t Lq, std::size_t Dv, std::size_t partial_budget) {
  const std::size_t nb = blocks_per_head(m), per_block = Lq * (Dv + 3) * sizeof(double);
  if (per_block == 0 || partial_budget / per_block >= nb) return nb;
  return std::min(nb, std::max(kRun, partial_budget / per_block / kRun * kRun));
}

// Runs of the fold's first level in a group of `group` blocks.
inline std::size_t runs_per_group(std::size_t group) { return (group + kRun - 1) / kRun; }

// Bytes a call of these sizes allocates on the device (itemsize: 4 or 8; bias, w_index, key_mask:
// whether they are given), for the memory check before any work: every buffer of
// steady_state_attention.
inline std::size_t device_bytes(std::size_t itemsize, std::size_t heads, std::size_t n_weights, std::size_t m,
                                std::size_t D, std::size_t Lq, std::size_t Lk, std::size_t Dv, bool bias, bool w_index,
                                bool key_mask, std::size_t partial_budget = kPartialBudget) {
  const std::size_t values = n_weights * m * D + (bias ? heads * m : 0) + heads * (Lk + Lq) * D + heads * Lk * Dv +
                             heads * Lq * Dv;  // W, bias, the scaled inputs, V, Y
  const std::size_t doubles = heads * (Lk + Lq)                               // the inputs' offsets
                              + group_size(m, Lq, Dv, partial_budget) * Lq * (Dv + 3)  // the partials
                              + runs_per_group(group_size(m, Lq, Dv, partial_budget)) * Lq * (Dv + 3)  // runs
                              + heads * Lq * (Dv + 6)                          // running sums and scalars
                              + heads * Lq * 2;                                // log a, log underflow
  return values * itemsize + doubles * sizeof(double) + (w_index ? heads * sizeof(std::int64_t) : 0) +
         (key_mask ? heads * Lk : 0);
}

int device_count();                             // 0 without a driver or a device
std::string device_name(int device);
std::pair<std::size_t, std::size_t> memory_info(int device);  // (free, total) bytes

// The same functions compiled from the same source for the CPU (cuda_emulation.hpp says how),
// in every build: the tests run the kernels' code through them where there is no GPU.
template <class T>
void steady_state_attention_emulated(const Args<T>& a);
int device_count_emulated();
std::string device_name_emulated(int device);
std::pair<std::size_t, std::size_t> memory_info_emulated(int device);
// The emulation's peak of "device" bytes allocated at once since the last call (which resets it).
std::size_t peak_bytes_emulated();

}  // namespace tripartite::cuda
