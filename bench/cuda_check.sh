#!/usr/bin/env bash
# The GPU check, as one script for a machine with an NVIDIA GPU and the CUDA toolkit: builds
# tripartite with TRIPARTITE_CUDA=ON into a folder of its own (nothing is installed), runs the GPU
# tests (tests/test_cuda.py) and the CPU core's steady-state tests against that build, then
# bench/cuda_attention.py. Outputs go to OUTDIR (default /tmp/tripartite-cuda-check).
#     bash bench/cuda_check.sh [OUTDIR] [CUDA_ARCHITECTURES (default 90: H100/H200)]
# Where compute-sanitizer is on the PATH, a small call (bench/cuda_sanitize.py) runs under its
# memcheck and racecheck tools, each within 120 s.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-/tmp/tripartite-cuda-check}
arch=${2:-90}
mkdir -p "$out"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$out/gpu.txt"
echo "CPU cores: $(nproc); $(python3 --version); $(nvcc --version | tail -1)" | tee -a "$out/gpu.txt"
export CMAKE_BUILD_PARALLEL_LEVEL=$(nproc)
site=/tmp/tripartite-cuda-site
start=$(date +%s)
if ! python3 -m pip install --no-build-isolation --no-deps -q . -Cbuild-dir=/tmp/tripartite-cuda-build \
    -Ccmake.define.TRIPARTITE_CUDA=ON -Ccmake.define.TRIPARTITE_CUDA_ARCHITECTURES="$arch" --target "$site" \
    > "$out/build.txt" 2>&1; then
  tail -60 "$out/build.txt"
  exit 1
fi
echo "build: $(($(date +%s) - start)) s"
export PYTHONPATH=$site
python3 -c "import tripartite; print('cuda_available:', tripartite.cuda_available(), tripartite.cuda_devices())"
status=0
step() { echo "== $1: $(($(date +%s) - start)) s since the build began"; }
step tests
python3 -m pytest -q -p no:cacheprovider tests/test_cuda.py 2>&1 | tee "$out/pytest-cuda.txt" | tail -40 || status=1
step bench
PYTHONUNBUFFERED=1 python3 bench/cuda_attention.py --json "$out/bench-cuda.json" 2>&1 | tee "$out/bench-cuda.txt" || status=1
step "CPU tests"
python3 -m pytest -q -p no:cacheprovider tests/test_steady_state.py tests/test_attention_api.py 2>&1 \
  | tee "$out/pytest-cpu.txt" | tail -8 || status=1
if command -v compute-sanitizer > /dev/null; then
  for tool in memcheck racecheck; do
    step "compute-sanitizer $tool"
    timeout 120 compute-sanitizer --tool $tool --error-exitcode 3 python3 bench/cuda_sanitize.py \
      > "$out/sanitize-$tool.txt" 2>&1
    rc=$?
    tail -6 "$out/sanitize-$tool.txt"
    echo "compute-sanitizer $tool: exit $rc"
    [ $rc -eq 0 ] || status=1
  done
fi
step done
exit $status
