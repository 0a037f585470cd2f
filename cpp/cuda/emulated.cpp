// The GPU kernels of attention.cu compiled by the host compiler on the CUDA emulation
// (tripartite/cuda_emulation.hpp), as tripartite::cuda::*_emulated: in every build of the module,
// so that tests/test_cuda.py checks the kernels' code where there is no GPU.
#define TRIPARTITE_CUDA_EMULATION 1
#include "attention.cu"
