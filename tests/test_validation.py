"""Bad input raises ValueError (or MemoryError) naming the argument, before any work, and leaves
the network's state unchanged."""

import re

import numpy as np
import pytest

import tripartite

from conftest import moderate_inputs, moderate_tol, network_tol


def snapshot(net):
    return (net.synapses.copy(), net.astrocyte_weights.copy(), net.hidden_rates.copy(), net.calcium.copy(), net.time)


def assert_same(a, b):
    for x, y in zip(a, b):
        assert np.array_equal(x, y)


@pytest.fixture
def net(rng):
    net = tripartite.NeuronAstrocyteNetwork(8, 3, 64, dtype=np.float64)
    q, k, v = moderate_inputs(rng, (4, 8), (4, 8), 3)
    net.write(k, v)
    return net


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(tau_hidden=0.0), "tau_hidden must be positive"),
        (dict(tau_astro=-1.0), "tau_astro must be positive"),
        (dict(t_write=0), "t_write must be positive"),
        (dict(t_read=float("nan")), "t_read must be finite"),
        (dict(eta=0.0), "eta must be positive"),
        (dict(eta=1e307), r"eta must be in \[1e-100, 1e\+100\] .* got 1e\+307"),  # NaN calcium before
        (dict(eta=1e-306), r"eta must be in \[1e-100, 1e\+100\]"),  # zeroed terms with short windows before
        (dict(leak=-0.1), "leak must be >= 0"),
        # NaN synapses and calcium before; then the calcium underflowed to 0 and every output read 0
        (dict(tau_hidden=1e-308), r"t_write / tau_hidden must be in \[1e-100, 1e\+100\] .* a ratio of inf"),
        (dict(tau_hidden=1e200), r"t_write / tau_hidden must be in .* tau_hidden = 1e\+200 ms, a ratio of 1e-198"),
        (dict(tau_astro=1e-99), r"t_write / tau_astro must be in"),
        (dict(t_read=1e8, tau_hidden=1e-93, dt=1e4), r"t_read / tau_hidden must be in"),
        (dict(leak=1e308), r"leak \* t_write must be at most 1e\+100 .* got leak = 1e\+308 / ms"),
        (dict(dt=0.0), "dt must be positive"),
        (dict(dt=200.0), "dt must be at most t_write"),
        (dict(dt=20.0, integrator="euler"), "unstable for the euler integrator"),
        (dict(dt=30.0, integrator="rk4"), "unstable for the rk4 integrator"),
        # stable up to 2.78 tau, but its stages overshoot below zero beyond about 1.2 tau: euler's limit
        (dict(dt=20.0, integrator="rk4"), r"unstable for the rk4 integrator: it must be at most 10 ms \(1 x min"),
        (dict(dt=0.3, integrator="euler"), "dt must divide t_write"),
        (dict(dt=4e-308), "dt = 4e-308 ms is too small"),
        (dict(dt=1.0, leak=2.0, integrator="euler"), "unstable"),
        (dict(integrator="midpoint"), "integrator must be one of"),
        (dict(feature_map="cosine"), "feature_map must be one of"),
        (dict(dtype=np.int32), "dtype must be float32 or float64"),
        (dict(heads=0), "heads must be a positive integer"),
        (dict(seed=-1), "seed must be a non-negative integer"),
        (dict(scale=0.0), "scale must be positive"),
        (dict(num_threads=-2), "num_threads must be a non-negative integer"),
    ],
)
def test_bad_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        tripartite.NeuronAstrocyteNetwork(8, 3, 64, **kwargs)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("tau", [1e-98, 1e102], ids=["fast", "slow"])
def test_time_constants_at_the_ends_of_their_range_give_finite_outputs(rng, dtype, tau):
    """Windows of 100 ms over time constants of 1e-98 and 1e102 ms, the ends of TIME_RATIO_RANGE. So
    slow a network's outputs (~1e100) leave float32's range: it says so."""
    q, k, v = (rng.standard_normal((3, 8)) * 0.4 for _ in range(3))
    net = tripartite.NeuronAstrocyteNetwork(8, 8, 64, dtype=dtype, tau_hidden=tau, tau_astro=tau, t_write=100.0,
                                            t_read=100.0, dt=100.0)
    if tau > 1 and dtype == np.float32:  # y ~ 1e100: H and h ~ 1e-100, a ~ 1e-300
        with pytest.warns(RuntimeWarning) as caught:  # one context: pytest 7's nested ones do not pass warnings on
            y, a = net.stream(q, k, v, return_astrocyte=True)
        messages = [str(w.message) for w in caught]
        assert any("underflow float32" in m for m in messages)
        assert any(re.search(r"24 outputs overflow float32 .* use dtype=numpy.float64", m) for m in messages), messages
        assert np.isinf(y).all() and np.all(a > 0)
        return
    y, a = net.stream(q, k, v, return_astrocyte=True)
    assert np.isfinite(y).all() and np.all(a > 0) and np.isfinite(a).all() and y.any()
    if tau < 1:  # time constants far below the windows (1e-100 of them): the causal steady state
        steady = tripartite.attention(q, k, v, hidden_weights=net.hidden_weights[0], causal=True)
        tol = network_tol(dtype, 2 * len(q), 0) + moderate_tol(dtype, causal=True)  # each one's rounding
        assert np.max(np.abs(y - steady)) / np.max(np.abs(steady)) <= tol


@pytest.mark.parametrize("args, match", [((0, 3, 64), "d_key"), ((8, 3.5, 64), "d_value"), ((8, 3, True), "n_hidden")])
def test_bad_sizes(args, match):
    with pytest.raises(ValueError, match=match):
        tripartite.NeuronAstrocyteNetwork(*args)


def test_too_large_for_memory():
    with pytest.raises(MemoryError, match="GiB"):
        tripartite.NeuronAstrocyteNetwork(64, 64, 10**12)


@pytest.mark.parametrize(
    "method, make, match",
    [
        ("write", lambda: (np.ones((4, 7)), np.ones((4, 3))), r"keys must have shape .* D = 8, got \(4, 7\)"),
        ("write", lambda: (np.ones((4, 8)), np.ones((5, 3))), "values must have as many tokens"),
        ("write", lambda: (np.ones((4, 8)), np.ones((4, 2))), "values must have shape"),
        ("write", lambda: (np.ones(8), np.ones(3)), "keys must have shape"),
        ("write", lambda: (np.full((4, 8), np.nan), np.ones((4, 3))), "keys must be finite, got nan at index"),
        ("write", lambda: (np.ones((4, 8)), np.full((4, 3), np.inf)), "values must be finite"),
        ("write", lambda: (np.ones((4, 8), complex), np.ones((4, 3))), "keys must have a real numeric dtype"),
        ("write", lambda: (np.ones((4, 8), bool), np.ones((4, 3))), "keys must have a real numeric dtype"),
        ("write", lambda: ([["a"] * 8] * 4, np.ones((4, 3))), "keys must have a real numeric dtype"),
        ("read", lambda: (np.ones((2, 4, 8)),), "queries must have shape"),
        ("read", lambda: (np.full((2, 8), -np.inf),), "queries must be finite"),
        ("stream", lambda: (np.ones((3, 8)), np.ones((4, 8)), np.ones((4, 3))), "as many queries, keys and values"),
    ],
)
def test_bad_inputs_leave_state_unchanged(net, method, make, match):
    before = snapshot(net)
    with pytest.raises(ValueError, match=match):
        getattr(net, method)(*make())
    assert_same(before, snapshot(net))


def test_multi_head_inputs_need_head_axis(rng):
    net = tripartite.NeuronAstrocyteNetwork(8, 3, 64, heads=2)
    with pytest.raises(ValueError, match=r"\(heads, L, D\) with heads = 2"):
        net.write(np.ones((4, 8)), np.ones((4, 3)))


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: (np.ones((4, 5)), np.ones((4, 6)), np.ones((4, 2))), "k must have shape"),
        (lambda: (np.ones((4, 5)), np.ones((4, 5)), np.ones((3, 2))), "v must have shape"),
        (lambda: (np.ones(5), np.ones((4, 5)), np.ones((4, 2))), "q must have shape"),
        (lambda: (np.ones((2, 4, 5)), np.ones((3, 4, 5)), np.ones((3, 4, 2))), "do not broadcast"),
        (lambda: (np.full((4, 5), np.nan), np.ones((4, 5)), np.ones((4, 2))), "q must be finite"),
        (lambda: (np.ones((4, 5), complex), np.ones((4, 5)), np.ones((4, 2))), "q must have a real numeric dtype"),
    ],
)
def test_attention_bad_inputs(make, match):
    with pytest.raises(ValueError, match=match):
        tripartite.attention(*make(), n_hidden=16)


def test_attention_bad_options():
    q = np.ones((4, 5))
    with pytest.raises(ValueError, match="n_hidden"):
        tripartite.attention(q, q, q)
    with pytest.raises(ValueError, match="causal attention needs Lq == Lk"):
        tripartite.attention(q[:3], q, q, n_hidden=8, causal=True)
    with pytest.raises(ValueError, match="hidden_weights must have shape"):
        tripartite.attention(q, q, q, hidden_weights=np.ones((8, 4)))
    with pytest.raises(ValueError, match="scale must be positive"):
        tripartite.attention(q, q, q, n_hidden=8, scale=-1.0)
    with pytest.raises(MemoryError, match="GiB"):
        tripartite.attention(q, q, q, n_hidden=10**13)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_compiled_scan_matches_numpy(rng, dtype):
    """The parallel scan used for large arrays finds the same first NaN/Inf as NumPy's isfinite,
    and otherwise the same max |x|, negative zeros, subnormals and the largest values included."""
    from tripartite import _core

    n = 3 * (1 << 16) + 13  # several scan chunks and a ragged tail
    tiny = np.finfo(dtype).smallest_subnormal if hasattr(np.finfo(dtype), "smallest_subnormal") else np.finfo(dtype).tiny
    for trial in range(12):
        x = (rng.uniform(-1, 1, n) * np.finfo(dtype).max * 0.5 ** (trial * 10)).astype(dtype)  # up to the largest
        x[rng.integers(n)] = -x[rng.integers(n)] * 1.5 if trial % 2 else -0.0
        for pos in rng.choice(n, size=trial % 4, replace=False):
            x[pos] = (np.nan, np.inf, -np.inf)[int(pos) % 3]
        bad = np.flatnonzero(~np.isfinite(x))
        index, largest = _core.scan_values(x, 2)
        if bad.size:
            assert index == int(bad[0]) and np.isnan(largest)
        else:
            assert index == -1 and largest == float(np.max(np.abs(x)))
    x = np.full(n, np.finfo(dtype).max, dtype)
    x[-1] = np.nan
    assert _core.scan_values(x)[0] == n - 1
    assert _core.scan_values(np.full(n, -tiny, dtype)) == (-1, float(tiny))
    assert _core.scan_values(np.full(n, -0.0, dtype)) == (-1, 0.0)
    assert _core.scan_values(np.zeros(0, dtype)) == (-1, 0.0)


def test_large_hidden_weights_with_nan_are_refused_by_index(rng):
    q, k, v = moderate_inputs(rng, (4, 16), (4, 16), 2)
    W = tripartite.draw_hidden_weights(70000, 16)[0]  # over a million values: the compiled scan
    W[51234, 7] = np.nan
    with pytest.raises(ValueError, match=r"hidden_weights must be finite, got nan at index \(51234, 7\)"):
        tripartite.attention(q, k, v, hidden_weights=W)


@pytest.mark.parametrize("num_threads", [1, 2, 0])
def test_finiteness_scan_runs_on_the_callers_threads(rng, monkeypatch, num_threads):
    """The compiled scan of large inputs runs on the num_threads the call was given (0: all
    cores), in attention and in the network alike: a call asked for one thread validates on one."""
    seen = []
    scan = tripartite._core.scan_values
    monkeypatch.setattr(tripartite._core, "scan_values", lambda a, *t: seen.append(t) or scan(a, *t))
    q, k, v = moderate_inputs(rng, (4, 16), (4, 16), 2)
    W = tripartite.draw_hidden_weights(70000, 16)  # over a million values: the compiled scan
    tripartite.attention(q, k, v, hidden_weights=W[0], num_threads=num_threads)
    tripartite.NeuronAstrocyteNetwork(16, 2, 70000, hidden_weights=W, num_threads=num_threads)
    assert seen == [(num_threads,), (num_threads,)]  # passed explicitly, 0 included


@pytest.mark.parametrize("feature_map", ["performer", "orthogonal"])
def test_hidden_weights_memory_estimate_covers_the_peak(feature_map):
    """The bytes draw_hidden_weights checks against the machine before drawing cover the peak that
    NumPy allocates while it draws (traced; in the orthogonal construction, the QR). The estimate
    counts the arrays that grow with m d; the rest (the per-block norms and LAPACK's per-block
    vectors, O(m) bytes, and a few Python objects) is under 1 % of it at d = 32."""
    import tracemalloc

    from tripartite.weights import _draw_bytes

    m, d, heads = 20000, 32, 2
    tripartite.draw_hidden_weights(100, d, feature_map=feature_map)  # one-time allocations out of the way
    tracemalloc.start()
    try:
        tripartite.draw_hidden_weights(m, d, heads=heads, feature_map=feature_map)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    estimate = _draw_bytes(m, d, heads, feature_map, 4)
    assert 0.75 * estimate <= peak <= 1.01 * estimate, (peak, estimate)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_weights_too_large_for_the_inputs_are_refused(rng, dtype):
    """max |W| sqrt(D |x~|^2) beyond 0.1/eps: the log-rates would be noise (weights of 1e308 in
    float64, or 3e38 in float32, used to give outputs of 0 with no warning). The network checks
    its given weights against each call's keys and queries, and refuses before touching state."""
    q, k, v = (x.astype(dtype) for x in moderate_inputs(rng, (3, 8), (3, 8), 2))
    W = tripartite.draw_hidden_weights(64, 8, dtype=dtype)
    limit = 0.1 / np.finfo(dtype).eps
    for big in (float(np.finfo(dtype).max) / 2, 2 * limit / np.sqrt(8 * 1.0)):  # |x~|^2 = 1 (moderate_inputs)
        huge = W * (big / np.abs(W).max())
        with pytest.raises(ValueError, match=r"hidden_weights and q are too large together: .* exceeds"):
            tripartite.attention(q, k, v, hidden_weights=huge[0])
        net = tripartite.NeuronAstrocyteNetwork(8, 2, 64, dtype=dtype, hidden_weights=huge)
        with pytest.raises(ValueError, match=r"hidden_weights and keys are too large together"):
            net.write(k, v)
        assert net.time == 0.0 and not net.synapses.any()
    # within the bound the call runs (such log-rates, up to 4e5 in float32, 2e14 in float64, leave
    # every product but the largest below the dtype's range: it says so)
    fine = W * (0.5 * limit / np.sqrt(8 * 1.0) / np.abs(W).max())
    with pytest.warns(RuntimeWarning, match="underflow"):
        assert np.isfinite(tripartite.attention(q, k, v, hidden_weights=fine[0])).all()


def test_sizes_are_checked_before_values_are_scanned():
    """A broadcast view of a few bytes that stands for terabytes: the memory check comes first (the
    scans of its values made temporaries of its full size before: 'Unable to allocate 7.28 TiB')."""
    q = np.broadcast_to(np.zeros(8), (10**6, 10**6, 1, 8))
    small = np.zeros((1, 8))
    with pytest.raises(MemoryError, match=r"attention: .* GiB needed"):
        tripartite.attention(q, small, small, n_hidden=16)
    nan_view = np.broadcast_to(np.full(8, np.nan), (5 * 10**4, 1, 8))  # fits: then the scan names q
    with pytest.raises(ValueError, match="q must be finite"):
        tripartite.attention(nan_view, small, small, n_hidden=16)


def test_network_inputs_are_sized_before_they_are_scanned():
    net = tripartite.NeuronAstrocyteNetwork(8, 2, 16)
    keys = np.broadcast_to(np.zeros(8), (10**12, 8))
    with pytest.raises(MemoryError, match=r"keys of shape \(1000000000000, 8\) \(its checks and copy\); .*: .* GiB needed"):
        net.write(keys, np.broadcast_to(np.zeros(2), (10**12, 2)))
    assert net.time == 0.0


def test_integer_weights_get_the_log_rate_check_too(rng):
    """max |W| of an integer array without overflow: |int64(-2**62)| (np.abs(int8(-128)) is -128)."""
    q = rng.standard_normal((3, 8)) * 0.3
    W = np.ones((4, 8), dtype=np.int64)
    W[0] = -2**62
    with pytest.raises(ValueError, match=r"hidden_weights and q are too large together: .* = 4.61e\+18 x"):
        tripartite.attention(q, q, q, hidden_weights=W)


def test_a_run_checks_the_cores_per_thread_scratch(rng, monkeypatch):
    """(D + 3 x 32) values per neuron of a 2048-neuron block, per thread (32 windows: the longest
    segment): 4096 threads of D = 64 in float64 need 10 GiB, refused by name before the run (the
    state itself is small here)."""
    from tripartite import _validate

    net = tripartite.NeuronAstrocyteNetwork(64, 2, 16, dtype=np.float64)
    net.num_threads = 4096
    monkeypatch.setattr(_validate, "available_memory", lambda: 2**30)
    q, k, v = moderate_inputs(rng, (2, 64), (2, 64), 2)
    with pytest.raises(MemoryError, match=r"the core's scratch for num_threads = 4096: 10.00 GiB needed"):
        net.write(k, v)
    assert net.time == 0.0
    net.num_threads = 2
    net.write(k, v)  # 5 MiB: 2 threads of 2.5
