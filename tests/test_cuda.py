"""attention(..., device="cuda"): the CUDA kernels against the NumPy reference and the CPU core.

Each test of the kernels runs twice: on the GPU, where this build has CUDA and the driver sees a
GPU, and on the CUDA emulation (cpp/tripartite/cuda_emulation.hpp), which every build has: the
kernels' own source compiled for the CPU, each block's threads run as fibers with the GPU's
barriers and warp shuffles. CI has no GPU, so there the emulation checks the kernels' indexing,
barriers and sums; their speed and the GPU's own exp are checked only on a GPU
(bench/cuda_check.sh). Tolerances follow conftest.moderate_tol's derivation with the GPU's block
of _core.cuda_block_size neurons, whose features are summed in the input dtype (the partials are
folded in double)."""

import math

import numpy as np
import pytest

import tripartite
from tripartite import _core, reference

from conftest import EPS, dot_magnitude, log_rate_tol, moderate_inputs, moderate_tol

EMULATED = {  # what attention(device="cuda") calls, and the emulation's counterpart
    "cuda_device_count": _core.cuda_emulated_device_count,
    "cuda_device_name": _core.cuda_emulated_device_name,
    "cuda_memory_info": _core.cuda_emulated_memory_info,
    "attention_cuda_float32": _core.attention_cuda_emulated_float32,
    "attention_cuda_float64": _core.attention_cuda_emulated_float64,
}


@pytest.fixture(params=["gpu", "emulated"])
def backend(request, monkeypatch):
    """The GPU (skipped without one), or the emulation standing in for it."""
    if request.param == "gpu":
        if not tripartite.cuda_available():
            pytest.skip("no CUDA build or no GPU")
    else:
        monkeypatch.setattr(_core, "cuda_compiled", True)
        for name, fn in EMULATED.items():
            monkeypatch.setattr(_core, name, fn, raising=False)
    return request.param


def rel_err(x, ref):
    return float(np.max(np.abs(x - ref)) / np.max(np.abs(ref)))


def gpu_tol(dtype):
    """moderate_tol's bound, ~eps sqrt(block) for each of the numerator and the denominator, with
    the GPU's block size."""
    return 2 * math.sqrt(_core.cuda_block_size) * EPS[dtype]


# --- the device argument (every build) ---------------------------------------------------------

@pytest.mark.parametrize("device", ["gpu", "cuda:x", "cuda:-1", 0, None, "cpu:0"])
def test_bad_device_is_named(device):
    with pytest.raises(ValueError, match="device must be 'cpu', 'cuda' or 'cuda:N'"):
        tripartite.attention(np.ones((2, 4)), np.ones((2, 4)), np.ones((2, 3)), n_hidden=8, device=device)


def test_cpu_device_is_the_default():
    rng = np.random.default_rng(0)
    q, k, v = moderate_inputs(rng, (5, 8), (6, 8), 3)
    y = tripartite.attention(q, k, v, n_hidden=64, seed=3)
    assert np.array_equal(tripartite.attention(q, k, v, n_hidden=64, seed=3, device="cpu"), y)
    assert np.array_equal(tripartite.attention(q, k, v, n_hidden=64, seed=3, device=" CPU "), y)


@pytest.mark.skipif(bool(_core.cuda_compiled), reason="this build has CUDA")
def test_cuda_without_a_cuda_build_says_how_to_build_it():
    with pytest.raises(ValueError, match="TRIPARTITE_CUDA=ON"):
        tripartite.attention(np.ones((2, 4)), np.ones((2, 4)), np.ones((2, 3)), n_hidden=8, device="cuda")
    assert tripartite.cuda_available() is False and tripartite.cuda_devices() == []


@pytest.mark.skipif(not _core.cuda_compiled or tripartite.cuda_available(), reason="needs a CUDA build without a GPU")
def test_cuda_build_without_a_gpu_says_so():
    with pytest.raises(ValueError, match="no driver, or no GPU"):
        tripartite.attention(np.ones((2, 4)), np.ones((2, 4)), np.ones((2, 3)), n_hidden=8, device="cuda")


def test_causal_is_refused_on_cuda(backend):
    with pytest.raises(ValueError, match="causal=True is not implemented on device='cuda'"):
        tripartite.attention(np.ones((2, 4)), np.ones((2, 4)), np.ones((2, 3)), n_hidden=8, causal=True, device="cuda")


def test_missing_gpu_index_is_named(backend):
    n = _core.cuda_device_count()
    with pytest.raises(ValueError, match=f"sees {n} GPU"):
        tripartite.attention(np.ones((2, 4)), np.ones((2, 4)), np.ones((2, 3)), n_hidden=8, device=f"cuda:{n}")


def test_device_memory_is_checked_before_any_work(backend, monkeypatch):
    monkeypatch.setattr(_core, "cuda_memory_info", lambda index: (1 << 20, 1 << 30))
    calls = []
    monkeypatch.setattr(_core, "attention_cuda_float32", lambda *a, **kw: calls.append(1))
    with pytest.raises(MemoryError, match=r"GPU memory needed on cuda:0, but only 0\.00 GiB of its 1\.00 GiB is free"):
        tripartite.attention(np.ones((2, 4), np.float32), np.ones((2, 4), np.float32), np.ones((2, 3), np.float32),
                             n_hidden=100_000, device="cuda")
    assert calls == []


# --- the kernels (a GPU) ------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("feature_map", ["performer", "orthogonal"])
def test_matches_closed_form(backend, dtype, feature_map):
    rng = np.random.default_rng(12345)
    heads, L, D, Dv, m = 3, 63, 60, 13, 4099  # odd sizes: tails of every loop and a partial block
    q, k, v = (x.astype(dtype) for x in moderate_inputs(rng, (heads, L, D), (heads, L, D), Dv))
    W = tripartite.draw_hidden_weights(m, D, heads=heads, seed=7, feature_map=feature_map, dtype=dtype)
    y, a = tripartite.attention(q, k, v, hidden_weights=W, return_astrocyte=True, device="cuda")
    y_ref, a_ref = reference.random_feature_attention(q, k, v, W, return_astrocyte=True)
    assert y.dtype == dtype and y.shape == (heads, L, Dv) and a.shape == (heads, L)
    assert rel_err(y, y_ref) <= gpu_tol(dtype)
    assert np.max(np.abs(a / a_ref - 1)) <= gpu_tol(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("D, Dv", [(1, 1), (17, 64), (33, 65), (70, 130), (64, 200)])
def test_column_slices_and_input_slices(backend, dtype, D, Dv):
    """Dv over several slices of 64 columns (and a partial one), D over several slices of 32."""
    rng = np.random.default_rng(D * 1000 + Dv)
    q, k, v = (x.astype(dtype) for x in moderate_inputs(rng, (2, 40, D), (2, 37, D), Dv))
    W = tripartite.draw_hidden_weights(300, D, heads=2, seed=1, dtype=dtype)
    y, a = tripartite.attention(q, k, v, hidden_weights=W, return_astrocyte=True, device="cuda")
    y_ref, a_ref = reference.random_feature_attention(q, k, v, W, return_astrocyte=True)
    assert rel_err(y, y_ref) <= gpu_tol(dtype)
    assert np.max(np.abs(a / a_ref - 1)) <= gpu_tol(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("Lq, Lk", [(1, 100), (70, 5), (32, 32), (33, 65)])
def test_query_and_key_counts_with_a_bias(backend, dtype, Lq, Lk):
    rng = np.random.default_rng(Lq * 100 + Lk)
    D, Dv, m = 16, 5, 700
    q, k, v = (x.astype(dtype) for x in moderate_inputs(rng, (Lq, D), (Lk, D), Dv))
    W = tripartite.draw_hidden_weights(m, D, seed=2, dtype=dtype)[0]
    b = rng.normal(-0.3, 0.2, m)
    y, a = tripartite.attention(q, k, v, hidden_weights=W, hidden_bias=b, return_astrocyte=True, device="cuda")
    y_ref, a_ref = reference.random_feature_attention(q, k, v, W, return_astrocyte=True, hidden_bias=b)
    assert rel_err(y, y_ref) <= gpu_tol(dtype)
    assert np.max(np.abs(a / a_ref - 1)) <= gpu_tol(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_key_mask(backend, dtype):
    """Masked keys are not written; a query of a head whose keys are all masked gets y = 0, a = 0."""
    rng = np.random.default_rng(3)
    D, Dv, m, L = 12, 4, 500, 45
    q, k, v = (x.astype(dtype) for x in moderate_inputs(rng, (3, L, D), (3, L, D), Dv))
    W = tripartite.draw_hidden_weights(m, D, heads=3, seed=4, dtype=dtype)
    mask = rng.random((3, L)) < 0.6
    mask[2] = False
    y, a = tripartite.attention(q, k, v, hidden_weights=W, key_mask=mask, return_astrocyte=True, device="cuda")
    for h in range(2):
        y_ref, a_ref = reference.random_feature_attention(q[h], k[h][mask[h]], v[h][mask[h]], W[h], return_astrocyte=True)
        assert rel_err(y[h], y_ref) <= gpu_tol(dtype)
        assert np.max(np.abs(a[h] / a_ref - 1)) <= gpu_tol(dtype)
    assert not y[2].any() and not a[2].any()


def test_shared_weights_are_read_in_place(backend):
    """(batch, heads) inputs with per-head weights: every sequence of the batch meets its head's W."""
    rng = np.random.default_rng(5)
    D, Dv, m = 8, 3, 400
    q, k, v = moderate_inputs(rng, (2, 3, 20, D), (2, 3, 20, D), Dv)
    W = tripartite.draw_hidden_weights(m, D, heads=3, seed=6, dtype=np.float64)
    y = tripartite.attention(q, k, v, hidden_weights=W, device="cuda")
    for b in range(2):
        for h in range(3):
            y_ref = reference.random_feature_attention(q[b, h], k[b, h], v[b, h], W[h])
            assert rel_err(y[b, h], y_ref) <= gpu_tol(np.float64)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_agrees_with_the_cpu_core_at_the_papers_width(backend, dtype):
    """L = 197, D = 64, m = 20000 (2000 emulated), two heads: the GPU and the CPU core each within
    their bound of the reference, so within the sum of the bounds of each other."""
    rng = np.random.default_rng(16)
    q, k, v = (x.astype(dtype) for x in moderate_inputs(rng, (2, 197, 64), (2, 197, 64), 64))
    m = 20000 if backend == "gpu" else 2000  # the emulation takes ~1 ms per block and chunk
    y_gpu, a_gpu = tripartite.attention(q, k, v, n_hidden=m, seed=16, return_astrocyte=True, device="cuda")
    y_cpu, a_cpu = tripartite.attention(q, k, v, n_hidden=m, seed=16, return_astrocyte=True)
    tol = gpu_tol(dtype) + moderate_tol(dtype, False)
    assert rel_err(y_gpu, y_cpu) <= tol
    assert np.max(np.abs(a_gpu / a_cpu - 1)) <= tol


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_same_bits_on_every_call_and_for_any_grouping(backend, dtype):
    """No atomics: two calls give the same bits, and so do folding the partials one run of
    _core.cuda_fold_run blocks at a time (partial_budget of one byte: three groups here, the last
    one short) or two runs at a time, instead of all at once."""
    rng = np.random.default_rng(7)
    run = _core.cuda_block_size * _core.cuda_fold_run  # hidden neurons in a run of the fold
    heads, L, D, Dv, m = 2, 50, 24, 7, 2 * run + 900
    q, k, v = (x.astype(dtype) for x in moderate_inputs(rng, (heads, L, D), (heads, L, D), Dv))
    W = tripartite.draw_hidden_weights(m, D, heads=heads, seed=8, dtype=dtype)
    kernel = _core.attention_cuda_float32 if dtype == np.float32 else _core.attention_cuda_float64
    s = D ** -0.25
    first = kernel(W, None, q, k, v, s)
    again = kernel(W, None, q, k, v, s)
    grouped = kernel(W, None, q, k, v, s, partial_budget=1)
    per_block = L * (Dv + 3) * np.dtype(np.float64).itemsize
    in_twos = kernel(W, None, q, k, v, s, partial_budget=2 * _core.cuda_fold_run * per_block)
    for x, y, z, t in zip(first[:3], again[:3], grouped[:3], in_twos[:3]):
        assert x.tobytes() == y.tobytes() == z.tobytes() == t.tobytes()
    times = first[3]  # ms: the kernels' GPU time (CUDA events) and the host's phases of the call
    assert set(times) == {"kernels_gpu", "scaling", "allocation", "upload", "kernels", "download", "call"}
    assert times["kernels_gpu"] > 0 and all(math.isfinite(t) and t >= 0 for t in times.values())
    phases = ("scaling", "allocation", "upload", "kernels", "download")
    assert sum(times[p] for p in phases) <= times["call"]  # sub-intervals of one call, by one clock


def test_large_norms_stay_finite(backend):
    """|q~|^2 = |k~|^2 = 400: features span e^{+-100}; float32 queries whose products underflow are
    recomputed in double (on the CPU) as for the CPU core."""
    rng = np.random.default_rng(12345)
    q, k, v = (x.astype(np.float32) for x in moderate_inputs(rng, (20, 32), (20, 32), 4, norm2=400.0))
    W = tripartite.draw_hidden_weights(2000, 32, dtype=np.float32)[0]
    y = tripartite.attention(q, k, v, hidden_weights=W, device="cuda")
    y_ref = reference.random_feature_attention(q, k, v, W)
    assert np.isfinite(y).all()
    S = max(dot_magnitude(x, W) for x in (q, k))
    assert rel_err(y, y_ref) <= log_rate_tol(np.float32, 32, S) + gpu_tol(np.float32)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_later_keys_far_larger_than_earlier_ones(backend, dtype):
    """Keys from the third chunk on are rows of W (log-rates ~ D / 2 = 100 on one neuron), beyond a
    block's headroom (e^11 in float32, e^88 in float64) above the earlier ones: the block's
    synapses are rescaled mid-sequence, and the early keys' features must not poison the sums."""
    rng = np.random.default_rng(1)
    D, m, chunk = 200, 2100, 32  # the GPU's chunk of keys is 32 tokens
    L = 2 * chunk + 22
    W = tripartite.draw_hidden_weights(m, D, seed=5, dtype=np.float64)[0]
    q, k, v = moderate_inputs(rng, (L, D), (L, D), 3)
    k[2 * chunk:] = W[rng.choice(m, L - 2 * chunk, replace=False)] / math.sqrt(D**-0.5)
    q, k, v, W = (x.astype(dtype) for x in (q, k, v, W))
    tol = log_rate_tol(dtype, D, max(dot_magnitude(x, W) for x in (q, k))) + gpu_tol(dtype)
    y, a = tripartite.attention(q, k, v, hidden_weights=W, return_astrocyte=True, device="cuda")
    y_ref, a_ref = reference.random_feature_attention(q, k, v, W, return_astrocyte=True)
    assert np.isfinite(y).all() and np.isfinite(a).all()
    assert rel_err(y, y_ref) <= tol
    assert np.max(np.abs(np.log(a) - np.log(a_ref))) <= tol


def test_empty_and_keyless_calls(backend):
    y, a = tripartite.attention(np.ones((3, 4)), np.zeros((0, 4)), np.zeros((0, 2)), n_hidden=10, return_astrocyte=True,
                                device="cuda")
    assert y.shape == (3, 2) and not y.any() and not a.any()
    assert tripartite.attention(np.zeros((0, 4)), np.ones((3, 4)), np.ones((3, 2)), n_hidden=10, device="cuda").shape == (0, 2)


def test_devices_are_listed(backend):
    names = tripartite.cuda_devices()
    assert len(names) == _core.cuda_device_count() >= 1 and all(isinstance(n, str) and n for n in names)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("bias, shared, masked, budget", [
    (False, False, False, None),  # the whole head in one group
    (True, True, True, None),     # bias, w_index (two heads share one W), key mask
    (False, False, True, 1),      # one run of blocks at a time
])
def test_memory_estimate_is_what_the_kernels_allocate(dtype, bias, shared, masked, budget):
    """The memory checked before a call (_core.attention_cuda_bytes, cuda.hpp: device_bytes) is the
    peak the kernels allocate at once, to the byte, on the emulation (whose allocations are
    counted)."""
    rng = np.random.default_rng(3)
    heads, Lq, Lk, D, Dv = 2, 21, 37, 12, 70
    m = _core.cuda_block_size * _core.cuda_fold_run + 300  # two runs of the fold
    W = rng.standard_normal((1 if shared else heads, m, D)).astype(dtype)
    q = rng.standard_normal((heads, Lq, D)).astype(dtype)
    k = rng.standard_normal((heads, Lk, D)).astype(dtype)
    v = rng.standard_normal((heads, Lk, Dv)).astype(dtype)
    b = rng.standard_normal((heads, m)).astype(dtype) if bias else None
    w_index = np.zeros(heads, np.int64) if shared else None
    mask = (rng.random((heads, Lk)) < 0.7).astype(np.uint8) if masked else None
    kernel = _core.attention_cuda_emulated_float32 if dtype == np.float32 else _core.attention_cuda_emulated_float64
    kwargs = {} if budget is None else {"partial_budget": budget}
    _core.cuda_emulated_peak_bytes()  # reset
    kernel(W, b, q, k, v, 0.5, w_index=w_index, key_mask=mask, **kwargs)
    peak = _core.cuda_emulated_peak_bytes()
    estimate = _core.attention_cuda_bytes(np.dtype(dtype).itemsize, heads, W.shape[0], m, D, Lq, Lk, Dv, bias, shared,
                                          masked, **kwargs)
    assert peak == estimate
