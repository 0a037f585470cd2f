"""The benchmark's arithmetic against the machine's limits (bench/run.py, bench/cases.py): the work
it counts and the fractions it reports. Timing plays no part here."""

import argparse
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import cases  # noqa: E402
import run  # noqa: E402


class CountingArray(np.ndarray):
    """An ndarray that adds 2 M K N to `flops` for every matrix product it takes part in."""

    flops = 0

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        args = [np.asarray(x) if isinstance(x, CountingArray) else x for x in inputs]
        if ufunc is np.matmul and method == "__call__":
            a, b = args
            k = a.shape[-1]
            m = a.shape[-2] if a.ndim > 1 else 1
            n = b.shape[-1] if b.ndim > 1 else 1
            CountingArray.flops += 2 * m * k * n
        result = getattr(ufunc, method)(*args, **kwargs)
        return result.view(CountingArray) if isinstance(result, np.ndarray) else result


def test_steady_state_flops_are_the_numpy_peers_products():
    """The counted work is what the NumPy peer multiplies: its four products, plus the
    denominators' matrix-vector product (2 L m), which the count leaves out with the other
    astrocyte sums."""
    heads, L, D, Dv, m = 2, 7, 5, 3, 11
    rng = np.random.default_rng(0)
    q, k = (rng.standard_normal((heads, L, D)).view(CountingArray) for _ in range(2))
    v = rng.standard_normal((heads, L, Dv)).view(CountingArray)
    W = rng.standard_normal((heads, m, D)).view(CountingArray)
    CountingArray.flops = 0
    cases.numpy_steady_state(q, k, v, W)
    assert CountingArray.flops == cases.steady_state_flops(heads, L, D, Dv, m) + heads * 2 * L * m


def test_blas_products_are_the_counted_work_and_its_chain():
    """The BLAS peer multiplies exactly the counted work (no denominators) and chains the four
    products as the steady state does: y = (Q W^T) (V^T K W^T)^T = Q W^T W K^T V per head."""
    heads, L, D, Dv, m = 2, 7, 5, 3, 11
    rng = np.random.default_rng(1)
    q, k = (rng.standard_normal((heads, L, D)) for _ in range(2))
    v = rng.standard_normal((heads, L, Dv))
    W = rng.standard_normal((heads, m, D))
    CountingArray.flops = 0
    cases.blas_products(*(x.view(CountingArray) for x in (q, k, v, W)))
    assert CountingArray.flops == cases.steady_state_flops(heads, L, D, Dv, m)
    expected = np.einsum("hid,hmd,hme,hje,hjc->hic", q, W, W, k, v)
    np.testing.assert_allclose(cases.blas_products(q, k, v, W), expected, rtol=1e-12, atol=0)


def test_per_token_loop_bytes_counts_each_call_once():
    """Per key: W read, the outer product written, H and it read, H written; per query: W and H
    read. At the paper's scale (float32) that is 35.3 GB per head, twice that in float64."""
    L, D, Dv, m = 3, 2, 5, 7
    per_key = m * D + Dv * m + 2 * Dv * m + Dv * m
    per_query = m * D + Dv * m
    assert cases.per_token_loop_bytes(1, L, D, Dv, m, itemsize=4) == 4 * L * (per_key + per_query)
    assert cases.per_token_loop_bytes(3, L, D, Dv, m, itemsize=8) == 3 * 8 * L * (per_key + per_query)
    assert cases.per_token_loop_bytes(1) == pytest.approx(35.3e9, rel=1e-3)
    assert cases.steady_state_flops(1) == pytest.approx(10.09e9, rel=1e-3)


LIMITS = dict(fma_GFLOPs_1t=100.0, fma_GFLOPs_2t=200.0, triad_GBps_1t=20.0, triad_GBps_2t=30.0, sgemm_GFLOPs=160.0)


def test_update_bounds_per_dtype():
    """One multiply-add per update: the float32 FMA limit / 2 flops, half that in float64 (half
    the lanes); one read and one write of each synapse per dt: the triad / (2 itemsize)."""
    fma32, triad32 = run.update_bounds(LIMITS, 2, 4)
    fma64, triad64 = run.update_bounds(LIMITS, 2, 8)
    assert fma32 == 100e9 and fma64 == 50e9
    assert triad32 == 30e9 / 8 and triad64 == 30e9 / 16
    entry = dict(rate=50e9, seconds_median=0.5)
    run.against_update_bounds(LIMITS, 2, 8, nbytes=10e9)(entry)
    assert entry["x_fma_bound"] == pytest.approx(1.0) and entry["x_triad_bound"] == pytest.approx(50e9 / (30e9 / 16))
    assert entry["GBps"] == pytest.approx(20.0)


def test_triad_and_fma_fractions_of_single_rows():
    """A call that moves its bytes at the triad's rate is 100 % of it; float64 products at half the
    float32 FMA limit are 100 % of the float64 limit (half the lanes)."""
    entry = dict(seconds_median=0.5)
    assert "100% of the 2-thread triad" in run.against_triad(LIMITS, 2, 15e9)(entry)
    assert entry["GBps"] == pytest.approx(30.0) and entry["of_triad"] == pytest.approx(1.0)
    entry = dict(seconds_median=1.0)
    run.against_fma(LIMITS, 2, 100e9, itemsize=8)(entry)
    assert entry["GFLOPs"] == pytest.approx(100.0) and entry["of_fma"] == pytest.approx(1.0)


@pytest.mark.parametrize("text, expected", [("1,3", {"1", "3"}), ("1, 3", {"1", "3"}), ("5", {"5"})])
def test_sections_argument(text, expected):
    assert run._sections(text) == expected


@pytest.mark.parametrize("text", ["2", "6", "", "1,x"])
def test_sections_argument_refuses_unknown_sections(text):
    with pytest.raises(argparse.ArgumentTypeError, match="subset of 1,3,4,5"):
        run._sections(text)


def test_steady_state_limits_fractions_and_ceiling(capsys):
    """A kernel timed exactly at the FMA limit reports 100 % of it; a loop timed exactly at the
    triad, 100 % of it; the ceiling is the loop's time at the triad over ours at the FMA limit."""
    flops1, bytes1 = cases.steady_state_flops(1), cases.per_token_loop_bytes(1)
    by = {
        "steady state 1h ours 1t": flops1 / 100e9,
        "steady state 1h ours 2t": flops1 / 200e9,
        "steady state 12h ours 1t": 12 * flops1 / 50e9,
        "steady state 12h ours 2t": 12 * flops1 / 100e9,
        "steady state 1h numpy": flops1 / 160e9,
        "steady state 12h numpy": 12 * flops1 / 80e9,
        "steady state 1h per-token loop": bytes1 / 30e9,
        "steady state 1h per-token loop float64": 2 * bytes1 / 20e9,
    }
    loop_pairs = 1.5
    scaling = {"loop_vs_ours_2t": {"seconds_loop": (loop_pairs, 1.4, 1.6)}}
    out = run.steady_state_limits(by, scaling, LIMITS)
    assert out["1h_ours_1t"]["of_fma"] == pytest.approx(1.0) and "of_sgemm" not in out["1h_ours_1t"]
    assert out["1h_ours_2t"]["of_fma"] == pytest.approx(1.0) and out["1h_ours_2t"]["of_sgemm"] == pytest.approx(200 / 160)
    assert out["12h_ours_1t"]["of_fma"] == pytest.approx(0.5) and out["12h_ours_2t"]["of_fma"] == pytest.approx(0.5)
    assert out["1h_numpy"]["of_sgemm"] == pytest.approx(1.0) and out["12h_numpy"]["of_sgemm"] == pytest.approx(0.5)
    assert out["loop_float32"]["of_triad_2t"] == pytest.approx(1.0) and out["loop_float32"]["of_triad_1t"] == pytest.approx(1.5)
    assert out["loop_float64"]["of_triad_1t"] == pytest.approx(1.0)
    ceiling = (bytes1 / 30e9) / (flops1 / 200e9)
    assert out["ceiling_loop_at_triad_over_ours_at_fma"] == pytest.approx(ceiling)
    assert out["ours_2t_needed_for_20x_s"] == pytest.approx(loop_pairs / 20)
    assert out["ours_2t_needed_for_20x_of_fma"] == pytest.approx(flops1 / (loop_pairs / 20) / 200e9)
    printed = capsys.readouterr().out
    assert f"{ceiling:.1f}x" in printed and "100% of the FMA limit (2 threads)" in printed
    assert "BLAS products alone" not in printed and "1h_blas_products" not in out


def test_steady_state_limits_with_the_blas_products(capsys):
    """With the BLAS peer timed, its rate is reported against the FMA limit and sgemm, and the time
    that 20x needs against the BLAS products' time."""
    flops1, bytes1 = cases.steady_state_flops(1), cases.per_token_loop_bytes(1)
    by = {f"steady state {h}h {impl}": h * flops1 / 100e9
          for h in (1, 12) for impl in ("ours 1t", "ours 2t", "numpy")}
    by["steady state 1h per-token loop"] = by["steady state 1h per-token loop float64"] = bytes1 / 30e9
    by["steady state 1h BLAS products alone"] = flops1 / 120e9
    scaling = {"loop_vs_ours_2t": {"seconds_loop": (1.5, 1.4, 1.6)}}
    out = run.steady_state_limits(by, scaling, LIMITS)
    assert out["1h_blas_products"]["of_fma"] == pytest.approx(120 / 200)
    assert out["1h_blas_products"]["of_sgemm"] == pytest.approx(120 / 160)
    assert out["ours_2t_needed_for_20x_over_blas_products"] == pytest.approx((1.5 / 20) / (flops1 / 120e9))
    printed = capsys.readouterr().out
    assert "1h BLAS products alone:  120.0 GFLOP/s =  60% of the FMA limit,  75% of sgemm" in printed
    assert f"{(1.5 / 20) / (flops1 / 120e9):.2f}x the time of the BLAS products alone" in printed
