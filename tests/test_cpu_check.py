"""The import refuses a compiled core built for instruction sets this CPU lacks (tripartite/_cpu.py)."""

import importlib.util
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tripartite import _build_cpu, _cpu

ROOT = Path(__file__).resolve().parents[1]


def test_the_flag_map_names_the_instruction_sets_the_build_asks_about():
    """CMakeLists.txt lists the compiler macros it looks for; _cpu.FLAG_OF must map exactly those
    (a set the map lacked would raise KeyError at import, one it has extra would never be asked)."""
    text = (ROOT / "CMakeLists.txt").read_text()
    listed = re.search(r"set\(TRIPARTITE_ISA_MACROS([^)]*)\)", text)
    assert listed, "CMakeLists.txt no longer sets TRIPARTITE_ISA_MACROS"
    assert set(listed.group(1).split()) == set(_cpu.FLAG_OF)


def test_the_build_records_its_instruction_sets():
    assert _build_cpu.KNOWN, "the build could not ask the compiler for its predefined macros"
    assert set(_build_cpu.FEATURES) <= set(_cpu.FLAG_OF)
    if _build_cpu.NATIVE and _cpu.cpu_flags() is not None:
        # -march=native on an x86 machine enables at least SSE3 (every x86-64 CPU since 2004)
        assert "SSE3" in _build_cpu.FEATURES
    # (that this CPU has them is what `import tripartite` above already checked)


def test_missing_instruction_sets_raise_importerror_naming_them_and_the_remedy():
    flags = frozenset({"pni", "ssse3", "sse4_1", "sse4_2", "avx"})
    with pytest.raises(ImportError) as info:
        _cpu.check_build_cpu(features=("SSE3", "AVX", "AVX2", "FMA"), flags=flags)
    message = str(info.value)
    assert "AVX2, FMA" in message and "avx2, fma" in message and "SSE3" not in message
    assert "--no-cache-dir" in message and "TRIPARTITE_NATIVE=OFF" in message and _cpu.SKIP_VARIABLE in message
    _cpu.check_build_cpu(features=("SSE3", "AVX"), flags=flags)  # all present: no error
    _cpu.check_build_cpu(features=("SSE3", "AVX", "AMX_TILE"), flags=flags)  # a name this version does not know


def test_nothing_is_checked_without_cpu_flags_or_when_skipped(monkeypatch):
    monkeypatch.setattr(_cpu, "cpu_flags", lambda path="/proc/cpuinfo": None)
    _cpu.check_build_cpu(features=("AVX512F",))  # no /proc/cpuinfo flags (not x86 Linux)
    monkeypatch.setenv(_cpu.SKIP_VARIABLE, "1")
    _cpu.check_build_cpu(features=("AVX512F",), flags=frozenset())


def test_cpu_flags_reads_the_first_flags_line(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: x\nflags\t\t: fpu sse2 avx2 fma\n\nprocessor\t: 1\nflags\t\t: fpu\n")
    assert _cpu.cpu_flags(str(info)) == frozenset({"fpu", "sse2", "avx2", "fma"})
    info.write_text("processor\t: 0\nFeatures\t: fp asimd\n")  # an ARM machine's cpuinfo
    assert _cpu.cpu_flags(str(info)) is None
    assert _cpu.cpu_flags(str(tmp_path / "absent")) is None


@pytest.mark.skipif(not _build_cpu.FEATURES, reason="this build may use no instruction set beyond baseline x86-64")
def test_import_refuses_the_core_on_a_cpu_without_its_instructions():
    """The whole import path, in a fresh interpreter: with the CPU's flags stripped of the build's
    last instruction set, `import tripartite` raises the ImportError before the core is loaded."""
    package = Path(importlib.util.find_spec("tripartite").origin).parent
    lacking = _build_cpu.FEATURES[-1]
    script = textwrap.dedent(
        f"""
        import importlib.util, sys
        spec = importlib.util.spec_from_file_location("tripartite._cpu", {str(package / "_cpu.py")!r})
        cpu = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(cpu)
        real = cpu.cpu_flags()
        cpu.cpu_flags = lambda path="/proc/cpuinfo": (real or frozenset()) - {{cpu.FLAG_OF[{lacking!r}]}}
        sys.modules["tripartite._cpu"] = cpu
        try:
            import tripartite
        except ImportError as error:
            print("refused:", error)
            print("core loaded:", "tripartite._core" in sys.modules)
            sys.exit(3)
        """
    )
    env = {k: v for k, v in os.environ.items() if k != _cpu.SKIP_VARIABLE}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 3, done.stdout + done.stderr
    assert f"built for a CPU with {lacking}" in done.stdout and "which this CPU lacks" in done.stdout
    assert "core loaded: False" in done.stdout
