"""pytest-benchmark suite (not part of CI): python -m pytest bench --benchmark-only
(or --benchmark-disable to run each case once as a smoke test)."""

import numpy as np
import pytest

import cases


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("size", ["1M", "6.4M"])
def test_euler_write(benchmark, size, threads):
    case = cases.network_write(size, "euler", np.float32, threads, tokens=8)
    benchmark(case.run)
    if benchmark.stats:  # None under --benchmark-disable (a smoke run: each case once, untimed)
        benchmark.extra_info["synapse_updates_per_s"] = case.work / benchmark.stats.stats.median


@pytest.mark.parametrize("threads", [1, 2])
def test_exact_write(benchmark, threads):
    case = cases.network_write("6.4M", "exact", np.float32, threads, tokens=8)
    benchmark(case.run)


@pytest.mark.parametrize("impl", ["ours", "numpy", "BLAS products alone"])
def test_steady_state_paper_scale(benchmark, impl):
    case = cases.steady_state(1, 0) if impl == "ours" else cases.steady_state_peer(1, impl)
    benchmark(case.run)
