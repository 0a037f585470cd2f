#!/usr/bin/env bash
# The core's steady state on aarch64 (ARM servers, Apple silicon under Linux), where the kernels
# take their portable branches (GCC vector extensions compiled to NEON, no AVX): tests/cpp/
# attention_check.cpp cross-compiled with GCC for aarch64 and run under qemu's user-mode emulation,
# against a naive long-double evaluation of the closed form with the Python suite's tolerances, and
# 1 against 3 threads bit for bit. The cross compiler and qemu come from Debian's packages where
# they are missing; where they cannot be had, the step says that it skipped.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"
if ! command -v aarch64-linux-gnu-g++ > /dev/null || ! command -v qemu-aarch64 > /dev/null; then
  bash .ci/apt-install.sh g++-aarch64-linux-gnu qemu-user
fi
if ! command -v aarch64-linux-gnu-g++ > /dev/null || ! command -v qemu-aarch64 > /dev/null; then
  echo "aarch64 step skipped: no aarch64-linux-gnu-g++ or qemu-aarch64, and they could not be installed"
  exit 0
fi
echo "aarch64 step: $(aarch64-linux-gnu-g++ --version | head -1), $(qemu-aarch64 --version | head -1)"
mkdir -p build/aarch64
rm -f build/aarch64/attention_check
# CMakeLists.txt's release flags without -march=native and -falign-*, plus -Werror; static, so that
# qemu needs no aarch64 root.
aarch64-linux-gnu-g++ -std=c++17 -O3 -DNDEBUG -fno-math-errno -ffp-contract=fast -Wall -Wextra -Werror -fopenmp \
  -Icpp tests/cpp/attention_check.cpp -static -o build/aarch64/attention_check 2>&1 \
  | grep -v -e "Using 'dlopen' in statically linked applications" -e "goacc_profiling_initialize" || true
[ -x build/aarch64/attention_check ] || { echo "aarch64 step: the check did not build" >&2; exit 1; }
qemu-aarch64 build/aarch64/attention_check
