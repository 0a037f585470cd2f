// The GPU kernels of attention.cu compiled by the host compiler on the CUDA emulation
// (tripartite/cuda_emulation.hpp), as tripartite::cuda::*_emulated: in every build of the module,
// so that tests/test_cuda.py checks the kernels' code where there is no GPU.
//
// _FORTIFY_SOURCE off in this file: the emulation switches between its fibers' stacks with
// _longjmp, which fortified builds (Ubuntu's gcc enables _FORTIFY_SOURCE by default) turn into
// __longjmp_chk, and that aborts a jump onto another stack. Before any include, so that glibc's
// headers see it.
#undef _FORTIFY_SOURCE
#define TRIPARTITE_CUDA_EMULATION 1
#include "attention.cu"

namespace tripartite::cuda {

std::size_t peak_bytes_emulated() {
  auto& all = tripartite_emulation::allocations;
  std::lock_guard<std::mutex> lock(all.mutex);
  const std::size_t peak = all.peak;
  all.peak = all.live;
  return peak;
}

}  // namespace tripartite::cuda
