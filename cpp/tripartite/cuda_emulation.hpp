// The subset of CUDA that cpp/cuda/attention.cu uses, emulated on the CPU, so that the GPU
// kernels' own code (their indexing, barriers, warp shuffles and sums) is compiled by the host
// compiler and tested on every machine, CI's included, against the NumPy reference
// (tests/test_cuda.py). cpp/cuda/emulated.cpp compiles attention.cu with it.
//
// A kernel launch runs the grid's blocks one after another. The threads of a block are fibers
// (ucontext) on the calling thread: each runs until it reaches a barrier (__syncthreads, or a warp
// shuffle's exchange), then the next one runs. A barrier opens once every thread of its block (or
// of its warp) waits at one; when no barrier can open while threads still wait, the threads took
// different paths to their barriers, and the launch throws std::logic_error. That check, the
// exchanges and the order of every sum are those of the GPU; speed, the hardware's exp and
// concurrent execution (a missing barrier between a write and a read of shared memory is caught
// only when the reader runs before the writer) are not.
#pragma once

#include <setjmp.h>
#include <ucontext.h>

#if defined(__USE_FORTIFY_LEVEL) && __USE_FORTIFY_LEVEL > 0
// glibc's fortified _longjmp (__longjmp_chk) aborts the jumps between fiber stacks below.
#error "cuda_emulation.hpp must be compiled with _FORTIFY_SOURCE undefined (see cpp/cuda/emulated.cpp)"
#endif

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <math.h>
#include <mutex>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <stdexcept>
#include <type_traits>
#include <unordered_map>
#include <vector>

// Under AddressSanitizer, every switch between the scheduler's stack and a fiber's is announced to it
// (its fiber interface), so that it knows which stack a thread runs on.
#if defined(__SANITIZE_ADDRESS__)
#define TRIPARTITE_EMULATION_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TRIPARTITE_EMULATION_ASAN 1
#endif
#endif
#ifdef TRIPARTITE_EMULATION_ASAN
#include <sanitizer/common_interface_defs.h>
#endif

#define __global__
#define __device__
#define __host__
#define __launch_bounds__(...)

struct dim3 {
  unsigned x = 1, y = 1, z = 1;
  dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};

namespace tripartite_emulation {

enum class Wait { none, block, warp, done };

// A thread of a block: started once with makecontext / swapcontext, then switched with _setjmp /
// _longjmp, which (unlike swapcontext) do not save the signal mask by a system call.
struct Fiber {
  ucontext_t context;
  jmp_buf resume;
  bool started = false;
  Wait wait = Wait::none;
  void* asan_fake = nullptr;  // its fake stack while it waits (AddressSanitizer only)
};

// One block's threads, its shared memory and its warps' exchange slots.
struct Block {
  static constexpr std::size_t kStack = std::size_t(64) << 10;
  std::vector<Fiber> fibers;
  std::vector<std::unique_ptr<char[]>> stacks;  // allocated once per thread index, not cleared
  std::vector<unsigned char> shared;
  std::vector<unsigned char> exchange;  // 32 slots of 8 bytes per warp
  ucontext_t scheduler;
  jmp_buf back;  // to the scheduler
  int current = -1;
  std::function<void()> body;
};

inline Block* block = nullptr;
inline dim3 thread_index, block_index, block_dim, grid_dim;

// AddressSanitizer's fiber interface (no-ops without it): `to_fiber` before the scheduler runs
// fiber i, `to_scheduler` before a fiber returns to it (saving the fiber's fake stack in `save`, or
// with nullptr when it has finished), `arrived_on_*` on the stack just entered (the scheduler's
// bounds are learnt on a fiber, from the switch's other end).
#ifdef TRIPARTITE_EMULATION_ASAN
struct AsanStacks {
  void* fake = nullptr;  // the scheduler's fake stack while a fiber runs
  const void* scheduler_bottom = nullptr;
  std::size_t scheduler_size = 0;
};
inline AsanStacks asan;
inline void to_fiber(const Block& b, unsigned i) {
  __sanitizer_start_switch_fiber(&asan.fake, b.stacks[i].get(), Block::kStack);
}
inline void to_scheduler(void** save) {
  __sanitizer_start_switch_fiber(save, asan.scheduler_bottom, asan.scheduler_size);
}
inline void arrived_on_fiber(void* saved) {
  __sanitizer_finish_switch_fiber(saved, &asan.scheduler_bottom, &asan.scheduler_size);
}
inline void arrived_on_scheduler() { __sanitizer_finish_switch_fiber(asan.fake, nullptr, nullptr); }
#else
inline void to_fiber(const Block&, unsigned) {}
inline void to_scheduler(void**) {}
inline void arrived_on_fiber(void*) {}
inline void arrived_on_scheduler() {}
#endif

inline void trampoline() {
  arrived_on_fiber(nullptr);
  block->body();
  block->fibers[block->current].wait = Wait::done;
  to_scheduler(nullptr);
  _longjmp(block->back, 1);
}

inline void wait_at(Wait w) {
  Fiber& f = block->fibers[block->current];
  f.wait = w;
  if (!_setjmp(f.resume)) {
    to_scheduler(&f.asan_fake);
    _longjmp(block->back, 1);
  }
  arrived_on_fiber(block->fibers[block->current].asan_fake);
}

// Runs body() as `threads` threads of one block with `shared_bytes` of shared memory.
inline void run_block(Block& b, unsigned threads, std::size_t shared_bytes, std::function<void()> body) {
  b.body = std::move(body);
  b.fibers.assign(threads, Fiber{});
  b.stacks.resize(threads);
  b.shared.assign(shared_bytes, 0xA5);  // not zeroed: a kernel must write its shared memory first
  b.exchange.assign((threads + 31) / 32 * 32 * 8, 0);
  Block* outer = block;
  block = &b;
  for (unsigned i = 0; i < threads; ++i) {
    if (!b.stacks[i]) b.stacks[i].reset(new char[Block::kStack]);
    Fiber& f = b.fibers[i];
    getcontext(&f.context);
    f.context.uc_stack.ss_sp = b.stacks[i].get();
    f.context.uc_stack.ss_size = Block::kStack;
    f.context.uc_link = &b.scheduler;
    makecontext(&f.context, trampoline, 0);
  }
  const unsigned warps = (threads + 31) / 32;
  for (;;) {
    for (unsigned i = 0; i < threads; ++i) {
      if (b.fibers[i].wait != Wait::none) continue;
      b.current = static_cast<int>(i);
      thread_index = dim3(i);
      Fiber& f = b.fibers[i];
      if (!_setjmp(b.back)) {
        to_fiber(b, i);
        if (f.started) _longjmp(f.resume, 1);
        f.started = true;
        swapcontext(&b.scheduler, &f.context);
      }
      arrived_on_scheduler();
    }
    bool released = false, all_done = true, all_at_block = true;
    for (unsigned w = 0; w < warps; ++w) {
      bool warp_waits = true;
      for (unsigned i = 32 * w; i < std::min(threads, 32 * w + 32); ++i) warp_waits &= b.fibers[i].wait == Wait::warp;
      if (warp_waits) {
        for (unsigned i = 32 * w; i < std::min(threads, 32 * w + 32); ++i) b.fibers[i].wait = Wait::none;
        released = true;
      }
    }
    if (released) continue;
    for (const Fiber& f : b.fibers) {
      all_done &= f.wait == Wait::done;
      all_at_block &= f.wait == Wait::block || f.wait == Wait::done;
    }
    if (all_done) break;
    if (all_at_block) {
      for (Fiber& f : b.fibers)
        if (f.wait == Wait::block) f.wait = Wait::none;
      continue;
    }
    block = outer;
    throw std::logic_error("emulated CUDA kernel: the threads of a block wait at different barriers");
  }
  block = outer;
}

struct Event {
  std::chrono::steady_clock::time_point t;
};

}  // namespace tripartite_emulation

#define threadIdx (::tripartite_emulation::thread_index)
#define blockIdx (::tripartite_emulation::block_index)
#define blockDim (::tripartite_emulation::block_dim)
#define gridDim (::tripartite_emulation::grid_dim)

inline void __syncthreads() { tripartite_emulation::wait_at(tripartite_emulation::Wait::block); }

// The lanes of a warp exchange through 8-byte slots between two warp barriers.
template <class T>
T __shfl_xor_sync(unsigned /*mask*/, T x, int lane_mask) {
  static_assert(sizeof(T) <= 8 && std::is_trivially_copyable_v<T>, "8-byte values at most");
  using namespace tripartite_emulation;
  const unsigned lane = thread_index.x % 32, warp = thread_index.x / 32;
  unsigned char* slots = block->exchange.data() + warp * 32 * 8;
  std::memcpy(slots + lane * 8, &x, sizeof(T));
  wait_at(Wait::warp);
  T y;
  std::memcpy(&y, slots + (lane ^ static_cast<unsigned>(lane_mask)) * 8, sizeof(T));
  wait_at(Wait::warp);
  return y;
}

inline float max(float a, float b) { return std::fmax(a, b); }
inline double max(double a, double b) { return std::fmax(a, b); }
inline float min(float a, float b) { return std::fmin(a, b); }
inline double min(double a, double b) { return std::fmin(a, b); }
using std::exp;
using std::fabs;
using std::fma;
using std::fmax;
using std::log;
using std::log1p;

// The runtime API, on host memory.
enum cudaError_t { cudaSuccess = 0, cudaErrorInvalidValue = 1, cudaErrorMemoryAllocation = 2, cudaErrorInvalidDevice = 101 };
enum cudaMemcpyKind { cudaMemcpyHostToDevice = 1, cudaMemcpyDeviceToHost = 2 };
enum cudaFuncAttribute { cudaFuncAttributeMaxDynamicSharedMemorySize = 8 };
using cudaEvent_t = tripartite_emulation::Event*;
struct cudaDeviceProp {
  char name[256];
};

// "Device" memory is host memory; the bytes live and their peak are counted, so that the tests can
// check the memory estimate made before a call (cuda.hpp: device_bytes) against what it allocates.
namespace tripartite_emulation {
struct Allocations {
  std::mutex mutex;
  std::unordered_map<void*, std::size_t> sizes;
  std::size_t live = 0, peak = 0;
};
inline Allocations allocations;
}  // namespace tripartite_emulation

inline cudaError_t cudaMalloc(void** p, std::size_t n) {
  *p = std::malloc(n);
  if (!*p) return cudaErrorMemoryAllocation;
  auto& all = tripartite_emulation::allocations;
  std::lock_guard<std::mutex> lock(all.mutex);
  all.sizes[*p] = n;
  all.live += n;
  all.peak = std::max(all.peak, all.live);
  return cudaSuccess;
}
inline cudaError_t cudaFree(void* p) {
  if (p) {
    auto& all = tripartite_emulation::allocations;
    std::lock_guard<std::mutex> lock(all.mutex);
    all.live -= all.sizes.at(p);
    all.sizes.erase(p);
  }
  std::free(p);
  return cudaSuccess;
}
inline cudaError_t cudaMemcpy(void* dst, const void* src, std::size_t n, cudaMemcpyKind) {
  std::memcpy(dst, src, n);
  return cudaSuccess;
}
inline cudaError_t cudaMemset(void* p, int value, std::size_t n) {
  std::memset(p, value, n);
  return cudaSuccess;
}
inline cudaError_t cudaGetDevice(int* device) {
  *device = 0;
  return cudaSuccess;
}
inline cudaError_t cudaSetDevice(int device) { return device == 0 ? cudaSuccess : cudaErrorInvalidDevice; }
inline cudaError_t cudaGetDeviceCount(int* n) {
  *n = 1;
  return cudaSuccess;
}
inline cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int device) {
  if (device != 0) return cudaErrorInvalidDevice;
  std::snprintf(prop->name, sizeof(prop->name), "%s", "CUDA emulation on the CPU (tripartite tests)");
  return cudaSuccess;
}
inline cudaError_t cudaMemGetInfo(std::size_t* free_bytes, std::size_t* total) {
  *free_bytes = *total = std::size_t(1) << 40;  // the host's memory check applies to the same arrays
  return cudaSuccess;
}
inline cudaError_t cudaGetLastError() { return cudaSuccess; }
inline cudaError_t cudaDeviceSynchronize() { return cudaSuccess; }
inline const char* cudaGetErrorString(cudaError_t e) { return e == cudaSuccess ? "no error" : "emulated CUDA error"; }
template <class F>
inline cudaError_t cudaFuncSetAttribute(F*, cudaFuncAttribute, int) {
  return cudaSuccess;
}
inline cudaError_t cudaEventCreate(cudaEvent_t* e) {
  *e = new tripartite_emulation::Event{};
  return cudaSuccess;
}
inline cudaError_t cudaEventRecord(cudaEvent_t e) {
  e->t = std::chrono::steady_clock::now();
  return cudaSuccess;
}
inline cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end) {
  *ms = std::chrono::duration<float, std::milli>(end->t - start->t).count();
  return cudaSuccess;
}
inline cudaError_t cudaEventDestroy(cudaEvent_t e) {
  delete e;
  return cudaSuccess;
}

// kernel<<<grid, threads, shared_bytes>>>(args...): the blocks one after another.
template <class... P, class... A>
void tripartite_launch(void (*kernel)(P...), dim3 grid, unsigned threads, std::size_t shared_bytes, A... args) {
  using namespace tripartite_emulation;
  static std::mutex one_launch_at_a_time;  // the emulation's state is global
  std::lock_guard<std::mutex> lock(one_launch_at_a_time);
  static Block b;  // its stacks are kept from one launch to the next
  grid_dim = grid;
  block_dim = dim3(threads);
  for (unsigned z = 0; z < grid.z; ++z)
    for (unsigned y = 0; y < grid.y; ++y)
      for (unsigned x = 0; x < grid.x; ++x) {
        block_index = dim3(x, y, z);
        run_block(b, threads, shared_bytes, [&] { kernel(args...); });
      }
}
