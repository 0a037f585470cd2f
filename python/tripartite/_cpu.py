"""Refuse to import a compiled core built for instructions this CPU lacks, and say why.

Source builds compile the core for the CPU they run on (``-march=native``, see README, "Build
options"). Copied to an older CPU -- a wheel reused from pip's cache on a cluster's shared home,
say -- such a core would die of an illegal instruction at its first kernel, far from the cause. The
build records the x86 instruction sets the compiler may use (``tripartite/_build_cpu.py``, written
by CMakeLists.txt); on Linux the import compares them with the CPU's flags in /proc/cpuinfo and
raises an ImportError that names the missing ones and how to rebuild. Elsewhere, or when
``TRIPARTITE_SKIP_CPU_CHECK=1`` is set (a CPU whose /proc/cpuinfo hides flags it has), nothing is
checked.
"""

from __future__ import annotations

import os
from typing import FrozenSet, Iterable, List, Optional

# The compiler's macro (__NAME__) of each instruction set CMakeLists.txt asks about, and the flag
# /proc/cpuinfo shows for it. The two lists must name the same sets (tests/test_cpu_check.py).
FLAG_OF = {
    "SSE3": "pni",
    "SSSE3": "ssse3",
    "SSE4_1": "sse4_1",
    "SSE4_2": "sse4_2",
    "SSE4A": "sse4a",
    "POPCNT": "popcnt",
    "AVX": "avx",
    "AVX2": "avx2",
    "FMA": "fma",
    "FMA4": "fma4",
    "XOP": "xop",
    "F16C": "f16c",
    "BMI": "bmi1",
    "BMI2": "bmi2",
    "LZCNT": "abm",
    "MOVBE": "movbe",
    "ADX": "adx",
    "AVX512F": "avx512f",
    "AVX512CD": "avx512cd",
    "AVX512BW": "avx512bw",
    "AVX512DQ": "avx512dq",
    "AVX512VL": "avx512vl",
    "AVX512IFMA": "avx512ifma",
    "AVX512VBMI": "avx512vbmi",
    "AVX512VBMI2": "avx512_vbmi2",
    "AVX512VNNI": "avx512_vnni",
    "AVX512BITALG": "avx512_bitalg",
    "AVX512VPOPCNTDQ": "avx512_vpopcntdq",
    "AVX512BF16": "avx512_bf16",
    "AVX512FP16": "avx512_fp16",
    "AVXVNNI": "avx_vnni",
}

SKIP_VARIABLE = "TRIPARTITE_SKIP_CPU_CHECK"


def cpu_flags(path: str = "/proc/cpuinfo") -> Optional[FrozenSet[str]]:
    """The first CPU's flags from /proc/cpuinfo (x86 Linux), or None where there is no such list."""
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            for line in f:
                key, sep, value = line.partition(":")
                if sep and key.strip() == "flags":
                    return frozenset(value.split())
    except OSError:
        return None
    return None


def missing_features(features: Iterable[str], flags: FrozenSet[str]) -> List[str]:
    """The build's instruction sets (macro names, as in FLAG_OF) whose flag the CPU does not show.
    A name FLAG_OF does not know (a record from another version) cannot be checked and is skipped."""
    return [name for name in features if name in FLAG_OF and FLAG_OF[name] not in flags]


def check_build_cpu(
    features: Optional[Iterable[str]] = None, flags: Optional[FrozenSet[str]] = None, native: bool = True
) -> None:
    """Raise ImportError if the compiled core may use instruction sets this CPU lacks.

    ``features`` (and ``native``: built with -march=native) default to the build's record
    (tripartite/_build_cpu.py), ``flags`` to :func:`cpu_flags`. Without either (a build that could
    not ask its compiler, a CPU without /proc/cpuinfo) nothing is checked, nor when the environment
    variable TRIPARTITE_SKIP_CPU_CHECK is 1.
    """
    if os.environ.get(SKIP_VARIABLE) == "1":
        return
    if features is None:
        try:
            from . import _build_cpu
        except ImportError:
            return
        if not _build_cpu.KNOWN:
            return
        features, native = _build_cpu.FEATURES, _build_cpu.NATIVE
    if flags is None:
        flags = cpu_flags()
        if flags is None:
            return
    missing = missing_features(features, flags)
    if not missing:
        return
    target = (
        "Source builds target the CPU they are built on (-march=native)."
        if native
        else "This build was compiled for them (its CMAKE_CXX_FLAGS)."
    )
    raise ImportError(
        f"tripartite's compiled core was built for a CPU with {', '.join(missing)} "
        f"(flags {', '.join(FLAG_OF[name] for name in missing)} in /proc/cpuinfo), which this CPU lacks: "
        f"its first kernel would stop the process with an illegal instruction. {target} Rebuild on this "
        "machine: pip install --force-reinstall --no-cache-dir --no-binary tripartite tripartite (or, from a "
        "checkout, pip install --force-reinstall --no-cache-dir .); for a build that runs on several kinds of "
        f"CPU, set TRIPARTITE_NATIVE=OFF (README, Build options). If this CPU does have them, set "
        f"{SKIP_VARIABLE}=1 to skip this check."
    )
