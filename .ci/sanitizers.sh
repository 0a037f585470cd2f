#!/usr/bin/env bash
# Builds the C++ core with AddressSanitizer + UndefinedBehaviorSanitizer into its own virtual
# environment and runs the tests that exercise the core. Any sanitizer report aborts the run
# (halt_on_error / -fno-sanitize-recover), so a green run means no reports. The GPU kernels run
# here too, on the CUDA emulation (their "device" buffers are heap blocks, so an index out of
# bounds is a report; the fibers' stack switches are announced to ASan): the kernel tests of
# tests/test_cuda.py but for the four slowest kinds, which repeat the others' paths at larger
# sizes (about 35 s under ASan instead of 3 min).
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"
venv="${SANITIZER_VENV:-$repo/build/asan-venv}"
# An isolated environment: a tripartite installed elsewhere (editable installs register import
# hooks) must not shadow the sanitized build.
[ -x "$venv/bin/python" ] || python -m venv "$venv"
"$venv/bin/python" -m pip install --quiet numpy pytest hypothesis tqdm scikit-build-core pybind11
TRIPARTITE_SANITIZE=ON TRIPARTITE_NATIVE=OFF "$venv/bin/python" -m pip install --quiet --no-build-isolation --no-deps \
  -Cbuild-dir="$repo/build/asan" "$repo"
runtime="$(g++ -print-file-name=libasan.so):$(g++ -print-file-name=libubsan.so)"
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:halt_on_error=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
LD_PRELOAD="$runtime" "$venv/bin/python" -c "
import sys, tripartite
core = tripartite._core.__file__
print('sanitized core:', core)
sys.exit(0 if core.startswith('$venv') else 'the sanitized build is shadowed by ' + core)"
LD_PRELOAD="$runtime" "$venv/bin/python" -m pytest -q -p no:cacheprovider \
  tests/test_steady_state.py tests/test_integrators.py tests/test_network.py tests/test_determinism.py \
  tests/test_validation.py tests/test_checkpoint.py tests/test_monitor.py tests/test_fuzz.py tests/test_ladder.py
LD_PRELOAD="$runtime" "$venv/bin/python" -m pytest -q -p no:cacheprovider tests/test_cuda.py \
  -k "not same_bits and not agrees_with and not closed_form and not (memory_estimate and None)"
