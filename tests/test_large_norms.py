"""Inputs with large norms: the log-rates span hundreds to thousands (in nats), far beyond the
range of a float's exponent, and the results must still be the dtype's rounding of the exact ones.

Tolerances: the log-rates W x~ are computed in the dtype, so each feature carries a relative error
of about eps |W x~| (the offset |x~|^2 / 2 is applied in double); y is a weighted mean of values,
so its error is at most a few times eps max|W x~| max|v|. Lost terms (the bugs these tests guard
against) give errors of order max|v|.
"""

import sys

import numpy as np
import pytest

import tripartite
from tripartite import _core, reference

from conftest import directions

attention_module = sys.modules["tripartite.attention"]  # the module (tripartite.attention is the function)


def _log_rate_span(W, s, *inputs):
    return max(np.abs(np.sqrt(s) * x @ W.T).max() for x in inputs)


NET = dict(t_write=20.0, t_read=50.0, tau_hidden=2.0, tau_astro=5.0, integrator="euler")


@pytest.mark.parametrize("norm2", [100.0, 400.0])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_network_matches_the_reference_when_the_first_log_rates_are_below_the_float_range(rng, dtype, norm2):
    # With |x~|^2 = 400 the first token's log-rates lie near -200: the stored arrays' scale drops
    # from 0 (after reset) to about -130, and exp(0 - (-130)) overflows a float. The float network
    # used to turn its zero state into inf * 0 = NaN on the first token and return zeros.
    D, Dv, m, s = 8, 2, 300, 8**-0.5
    q, k = directions(rng, (3, D), norm2, s), directions(rng, (3, D), norm2, s)
    v = rng.standard_normal((3, Dv))
    net = tripartite.NeuronAstrocyteNetwork(D, Dv, m, dtype=dtype, **NET)
    with np.testing.assert_no_warnings():  # nothing underflows here: no warning either
        y = net.stream(q, k, v)
    assert np.isfinite(net.synapses).all() and np.isfinite(net.calcium).all()
    W = net.hidden_weights[0].astype(np.float64)
    expected, _ = reference.simulate(k, v, q, W, stream=True, **NET)
    tol = 4 * np.finfo(dtype).eps * _log_rate_span(W, s, q, k) * np.abs(v).max()
    np.testing.assert_allclose(y, expected, rtol=0, atol=tol)
    assert np.abs(expected).max() > 100 * tol  # a result of zeros cannot pass


def test_float_and_double_networks_agree_beyond_the_double_exponent_range(rng):
    # |x~|^2 = 2500: log-rates near -1250, below what exp can return even in double (-745); the
    # double network used to return zeros too. The reference cannot follow (its true-unit values
    # underflow), so the two dtypes check each other.
    D, Dv, m, s = 16, 4, 1024, 16**-0.5
    q, k = directions(rng, (3, D), 2500.0, s), directions(rng, (3, D), 2500.0, s)
    v = rng.standard_normal((3, Dv))
    ys = {}
    for dtype in (np.float32, np.float64):
        net = tripartite.NeuronAstrocyteNetwork(D, Dv, m, dtype=dtype, **NET)
        ys[dtype] = net.stream(q, k, v)
        assert np.isfinite(net.synapses).all()
    # At such norms the calcium lags its target by factors of e^hundreds from window to window, so
    # the outputs are tiny; both dtypes carry their scales in double, and each row must agree
    # relative to its own size.
    W = net.hidden_weights[0]
    size = np.abs(ys[np.float64]).max(axis=1, keepdims=True)
    assert (size > 0).all() and np.isfinite(size).all()
    tol = 4 * np.finfo(np.float32).eps * _log_rate_span(W, s, q, k)
    np.testing.assert_array_less(np.abs(ys[np.float32] - ys[np.float64]) / size, tol)
    assert tol < 1e-2  # a row of zeros cannot pass


@pytest.mark.parametrize("stream", [False, True], ids=["write-then-read", "stream"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_network_follows_log_rates_that_swing_by_hundreds_from_token_to_token(rng, dtype, stream):
    # The defaults (t_read = 100 tau_hidden): h decays by e^-100 in a read window. Keys and queries
    # alternate between |x~|^2 = 4 and 300-500 (largest log-rates near 0 and near -120 to -220).
    # The float network used to keep h at the scale of the window's start, so after a read its
    # stored rates fell below float's range and the next window's carry-over factor (about e^90)
    # overflowed: inf * 0 = NaN in every rate, then zeros for every later output.
    D, Dv, m, s = 8, 3, 64, 8**-0.5
    k = np.concatenate([directions(rng, (1, D), n2, s) for n2 in (4.0, 400.0, 4.0, 500.0)])
    q = np.concatenate([directions(rng, (1, D), n2, s) for n2 in (4.0, 4.0, 300.0, 4.0)])
    v = rng.standard_normal((4, Dv))
    W = tripartite.draw_hidden_weights(m, D, dtype=np.float64)[0]
    rates = reference.log_features(np.concatenate([k, q]), W).max(axis=1)
    assert rates.max() - rates.min() > 100  # the swing this test is about
    net = tripartite.NeuronAstrocyteNetwork(D, Dv, m, dtype=dtype, integrator="euler", hidden_weights=W.astype(dtype)[None])
    if stream:
        y, a = net.stream(q, k, v, return_astrocyte=True)
    else:
        net.write(k, v)
        y, a = net.read(q, return_astrocyte=True)
    expected, a_expected = reference.simulate(k, v, q, W, stream=stream)  # euler, dt = 1, as the network
    tol = 4 * np.finfo(dtype).eps * _log_rate_span(W, s, q, k)
    np.testing.assert_allclose(y, expected, rtol=0, atol=tol * np.abs(v).max())
    np.testing.assert_allclose(a, a_expected, rtol=tol)
    assert np.abs(expected).max() > 100 * tol and (a_expected > 0).all()


def test_double_network_reads_queries_whose_log_rates_lie_far_above_its_keys(rng):
    # Keys at |x~|^2 = 3600 (log-rates near -1750), queries at |x~|^2 = 1 (near 0): the calcium's
    # terms span e^1700. Its scale used to be s_H + s_h, which the query's u.u term exceeded by
    # e^hundreds: inf, times the read's zero coefficient of it, made the calcium NaN and every
    # output 0. A read of t_read = 100 tau_hidden and 10 tau_astro ends within about 1e-4 of the
    # steady readout of the stored synapses, (H u) / (g . u) with u the query's rates.
    D, Dv, m, s = 16, 4, 1024, 16**-0.5
    k, q = directions(rng, (3, D), 3600.0, s), directions(rng, (3, D), 1.0, s)
    v = rng.standard_normal((3, Dv))
    net = tripartite.NeuronAstrocyteNetwork(D, Dv, m, dtype=np.float64, integrator="exact")
    net.write(k, v)
    W = net.hidden_weights[0]
    for t in range(3):
        y = net.read(q[t : t + 1])[0]
        log_u = reference.log_features(q[t : t + 1], W)[0]
        u = np.exp(log_u - log_u.max())
        steady = (net._H[0] @ u) / (net._g[0] @ u)  # stored units: H and g share their scale
        assert np.isfinite(y).all() and np.isfinite(net._scalars).all()
        np.testing.assert_allclose(y, steady, rtol=0, atol=1e-3 * np.abs(v).max())


@pytest.mark.parametrize("integrator", ["exact", "euler", "rk4"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_network_survives_windows_of_a_thousand_time_constants_beside_a_swing(dtype, integrator):
    # t_read = 10 s = 1000 tau_hidden: e^{-t/tau} underflows double (below e^-745), and the first
    # query's log-rates lie about 900 below the key's. The window map's zero times a factor past
    # e^709 was 0 * inf = NaN in the rates (and inf in y); now each such product is one exponential.
    # One key, so y = v wherever the read forgets the write; the first query's drive is e^-900
    # times the calcium left from the write (e^-100 of it after 10 tau_astro), so y is ~e^-900.
    D, m = 8, 256
    rng = np.random.default_rng(0)
    u = rng.normal(size=(3, D))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    x = lambda i, n2: u[i] * np.sqrt(n2 * np.sqrt(D))  # noqa: E731  |x~|^2 = n2
    net = tripartite.NeuronAstrocyteNetwork(D, 2, m, dtype=dtype, integrator=integrator, t_read=10000.0)
    net.write(x(0, 1.0)[None], np.ones((1, 2)))
    y, a = net.read(np.stack([x(1, 2000.0), x(2, 1.0)]), return_astrocyte=True)
    assert np.isfinite(net.hidden_rates).all() and np.isfinite(net._scalars).all() and np.isfinite(a).all()
    assert float(np.abs(y[0]).max()) < 1e-200
    # euler and rk4 compose t_read / dt = 1e4 step maps, whose rounding grows like sqrt(1e4) eps
    steps = 1 if integrator == "exact" else 10_000
    np.testing.assert_allclose(y[1], 1.0, rtol=10 * np.sqrt(steps) * np.finfo(dtype).eps)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_long_euler_and_rk4_windows_leave_no_subnormal_remnants(dtype):
    # A read of 10^4 steps of dt = tau / 10: euler and rk4 compose the step maps, and M11 = 0.9^1e4
    # (e^-1053) stuck at a subnormal 2.5e-323 (a subnormal times 0.9 rounds back to itself). The
    # network weighed that remnant as a real term against a query whose log-rates lie 900 below
    # the keys': y = [0.108, 0.286] for the values e_0, e_1, not a convex combination. The maps now
    # flush entries below double's smallest normal number to 0.
    D, m = 8, 256
    rng = np.random.default_rng(0)
    u = rng.normal(size=(3, D))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    x = lambda i, n2: u[i] * np.sqrt(n2 * np.sqrt(D))  # noqa: E731  |x~|^2 = n2
    M, a = _core.window_map("euler", 1e4, 10_000, 0.1, 0.1, 0.0, 0.0)
    assert M[1, 1] == 0 and a[0] == 0 and a[1] == 0
    ys = {}
    for integrator in ("exact", "euler", "rk4"):
        net = tripartite.NeuronAstrocyteNetwork(D, 2, m, dtype=dtype, integrator=integrator, t_read=1e4, tau_astro=10.0)
        net.write(np.stack([x(0, 1.0), x(1, 1.0)]), np.eye(2))
        ys[integrator] = net.read(x(2, 2000.0)[None])[0]
        # y's rounding: the output's (eps of the dtype), the log-domain products' (double's eps times
        # the log-rate gap, about 1e3) and, for euler and rk4, the 1e4 composed step maps' (sqrt(1e4) eps)
        steps = 1 if integrator == "exact" else 10_000
        tol = 10 * (np.finfo(dtype).eps + (1e3 + np.sqrt(steps)) * np.finfo(np.float64).eps)
        assert (ys[integrator] >= 0).all() and abs(ys[integrator].sum() - 1) <= tol
    for integrator in ("euler", "rk4"):  # they differ from exact only by the write phase's discretisation
        np.testing.assert_allclose(ys[integrator], ys["exact"], rtol=0, atol=1e-3)


@pytest.mark.parametrize("C", [300.0, -300.0])
def test_a_large_common_bias_costs_float_no_precision(rng, C):
    # The bias enters the float log-rates relative to each block's largest bias (the rest goes to
    # the row offset in double): a bias of C plus small per-neuron parts is as precise as the small
    # parts alone, up to rounding noise (a factor 2 here). Added to the float log-rates whole, C
    # cost them C's rounding (ulp(300) = 3e-5): 3 to 3.5 times the error of the small parts alone.
    D, m, L = 8, 256, 16
    q, k, v = (rng.standard_normal((1, L, D)) * 0.5 for _ in range(3))
    W = tripartite.draw_hidden_weights(m, D, dtype=np.float32)
    small = (rng.standard_normal((1, m)) * 0.5).astype(np.float32)
    f32 = [x.astype(np.float32) for x in (q, k, v)]

    def error(bias):
        y32 = tripartite.attention(*f32, hidden_weights=W, hidden_bias=bias)
        y64 = tripartite.attention(*(x.astype(np.float64) for x in f32), hidden_weights=W.astype(np.float64),
                                   hidden_bias=bias.astype(np.float64))
        return np.abs(y32 - y64).max()

    base = error(small)
    assert base > 0  # a float32 result (the comparison below is not 0 <= 0)
    assert error((small + np.float32(C)).astype(np.float32)) <= 2 * base


def test_float_network_warns_when_a_read_loses_its_products_to_underflow():
    # |x~|^2 = 1e4: one query's products with the stored synapses all lie below float's range, and
    # its output comes back as zeros in float (not in double). The network cannot recompute a
    # read in double (its state is float), so it says so.
    rng = np.random.default_rng(0)
    D, Dv, m, s = 16, 4, 1024, 16**-0.5
    q, k = directions(rng, (8, D), 1e4, s), directions(rng, (8, D), 1e4, s)
    v = rng.standard_normal((8, Dv))
    y64 = tripartite.NeuronAstrocyteNetwork(D, Dv, m, dtype=np.float64, **NET).stream(q, k, v)
    net = tripartite.NeuronAstrocyteNetwork(D, Dv, m, dtype=np.float32, **NET)
    with pytest.warns(RuntimeWarning, match="underflow float32.*use dtype=numpy.float64"):
        y32 = net.stream(q, k, v)
    lost = np.abs(y32).max(axis=1) == 0
    assert lost.any() and (np.abs(y64[lost]).max(axis=1) > 0).all()  # the case the warning is for
    assert net.time == 8 * (NET["t_write"] + NET["t_read"])  # the state advanced before the warning


@pytest.mark.parametrize("causal", [False, True])
def test_float_attention_recomputes_the_queries_whose_products_underflow(rng, causal, monkeypatch):
    # |x~|^2 = 1e4 (allowed: the float limit is where x~ W^T itself would overflow): every feature
    # is relative to its own row's maximum, and for some queries every key-query product lies more
    # than 2^126 below both maxima. Those queries came back as zeros (or with their largest terms
    # lost: errors of order max|v|); the core now bounds what underflow can have taken and the
    # attention function recomputes such queries in double, from the same float inputs.
    D, Dv, m, L, s = 16, 8, 4096, 64, 16**-0.5
    q = directions(rng, (L, D), 1e4, s).astype(np.float32)
    k = directions(rng, (L, D), 1e4, s).astype(np.float32)
    v = rng.standard_normal((L, Dv)).astype(np.float32)
    W = rng.standard_normal((m, D)).astype(np.float32)
    calls = []
    wide = _core.attention_float64
    monkeypatch.setattr(_core, "attention_float64", lambda *a, **kw: calls.append(a[3].shape[1]) or wide(*a, **kw))
    y = tripartite.attention(q, k, v, hidden_weights=W, causal=causal)
    assert y.dtype == np.float32 and calls, "no query was recomputed: the inputs no longer exercise the path"
    calls.clear()
    expected = tripartite.attention(*(x.astype(np.float64) for x in (q, k, v)), hidden_weights=W.astype(np.float64),
                                    causal=causal)
    tol = 4 * np.finfo(np.float32).eps * _log_rate_span(W, s, q, k) * np.abs(v).max()
    np.testing.assert_allclose(y, expected, rtol=0, atol=tol)
    assert (np.abs(expected).max(axis=-1) > 100 * tol).all()


def test_moderate_inputs_are_never_recomputed(rng, monkeypatch):
    # The bound sits about 80 nats below a_t at the paper's norms: no query is recomputed there.
    calls = []
    monkeypatch.setattr(_core, "attention_float64", lambda *a, **kw: calls.append(a) or None)
    q, k, v = (rng.standard_normal((2, 150, 64)).astype(np.float32) for _ in range(3))
    for causal in (False, True):
        tripartite.attention(q, k, v, n_hidden=2000, causal=causal)
    assert not calls


def test_double_attention_warns_when_its_products_underflow_double(rng):
    D, m, L, s = 16, 1024, 16, 16**-0.5
    q, k = directions(rng, (L, D), 1e6, s), directions(rng, (L, D), 1e6, s)
    v = rng.standard_normal((L, 4))
    with pytest.warns(RuntimeWarning, match="underflow double"):
        tripartite.attention(q, k, v, n_hidden=m)
    with np.testing.assert_no_warnings():
        tripartite.attention(q * 0.01, k * 0.01, v, n_hidden=m)


def test_underflow_criterion():
    log_a = np.array([[0.0, 0.0, -np.inf, -np.inf]])
    log_u = np.array([[-17.0, -15.0, -np.inf, 0.0]])
    lost = attention_module._underflowed(log_a, log_u, np.dtype(np.float32))
    assert lost.tolist() == [[False, True, False, True]]  # log(eps32) = -15.9


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_causal_outputs_do_not_depend_on_later_keys_of_the_chunk(dtype):
    # A key far smaller in norm than the keys before it in its chunk has a log-rate maximum over
    # 900 nats higher (the -|k~|^2/2 offset): the chunk used to be read at one scale set by its
    # largest key, which took every earlier key's weight (and the stored state) below double
    # range: the earlier queries came back as zeros, unflagged. Each query now has its own scale.
    rng = np.random.default_rng(2)
    D, L = 4, 80
    W = tripartite.draw_hidden_weights(64, D, seed=0, dtype=dtype)[0]
    s = D**-0.5
    k = directions(rng, (L, D), 2500.0, s)
    k[1] = 0  # token 1: the first chunk's later key
    k[73] = 0  # token 73: after 72 large keys written into the state, and after query 72
    q, v = k.copy(), rng.standard_normal((L, 2))
    args = [x.astype(dtype) for x in (q, k, v)]
    y = tripartite.attention(*args, hidden_weights=W, causal=True)
    for t in (0, 72):  # the same query with the later keys left out
        y_prefix = tripartite.attention(*(x[: t + 1] for x in args), hidden_weights=W, causal=True)
        tol = 4 * np.finfo(dtype).eps * _log_rate_span(W.astype(np.float64), s, q[: t + 1], k[: t + 1]) * np.abs(v).max()
        np.testing.assert_allclose(y[t], y_prefix[t], rtol=0, atol=tol)
        assert np.abs(y_prefix[t]).max() > 100 * tol


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_double_underflow_warning_points_at_the_caller(dtype):
    # k = -q at |x~|^2 = 2e5: every product underflows even double. From float32 the queries are
    # recomputed in double first; either way the warning names the caller's line, not the library.
    rng = np.random.default_rng(0)
    q = np.repeat(directions(rng, (1, 16), 2e5, 16**-0.5), 3, axis=0)
    with pytest.warns(RuntimeWarning, match="for 3 of 3 queries .* underflow double") as record:
        tripartite.attention(q.astype(dtype), (-q).astype(dtype), rng.standard_normal((3, 2)).astype(dtype), n_hidden=100)
    assert record[0].filename == __file__
