"""Ladder item 2: each compiled integrator against the step-by-step NumPy reference, convergence
orders, and the exact integrator against the dt -> 0 limit of the reference."""

import math

import numpy as np
import pytest

import tripartite
from tripartite import _core, reference

from conftest import EPS, dot_magnitude, float32_numbers, log_rate_tol, moderate_inputs, network_tol

# Small windows keep the NumPy reference quick while still spanning several time constants.
FAST = dict(tau_hidden=2.0, tau_astro=5.0, t_write=10.0, t_read=40.0)
SHORT = dict(FAST, t_read=20.0)  # for the larger networks below


def network(D, Dv, m, **kw):
    params = {**FAST, "dtype": np.float64, **kw}
    return tripartite.NeuronAstrocyteNetwork(D, Dv, m, seed=5, **params)


def run(net, q, k, v, stream):
    if stream:
        return net.stream(q, k, v, return_astrocyte=True)
    net.write(k, v)
    return net.read(q, return_astrocyte=True)


def rel_err(x, ref):
    return float(np.max(np.abs(x - ref)) / np.max(np.abs(ref)))


@pytest.mark.parametrize("integrator", ["euler", "rk4"])
@pytest.mark.parametrize("stream", [False, True], ids=["write-read", "stream"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("leak", [0.0, 0.02])
def test_matches_reference_simulation(rng, integrator, stream, dtype, leak):
    D, Dv, m, L, dt = 7, 3, 97, 5, 0.5
    q, k, v = moderate_inputs(rng, (L, D), (L, D), Dv)
    net = network(D, Dv, m, dtype=dtype, integrator=integrator, dt=dt, leak=leak)
    y, a = run(net, q, k, v, stream)
    y_ref, a_ref = reference.simulate(
        k, v, q, net.hidden_weights[0].astype(np.float64), stream=stream, integrator=integrator, dt=dt, leak=leak, **FAST
    )
    # The core composes the steps of a window in closed form; the reference steps one dt at a
    # time: equal up to the state's rounding (network_tol: 2L windows, L (t_write + t_read) / dt
    # reference steps): 20 eps32 = 2.4e-6 and 1.4e-14 (1e-5 and 1e-12 before); measured over 8
    # seeds <= 2.2 eps32 and 5 eps64.
    tol = network_tol(dtype, 2 * L, L * (FAST["t_write"] + FAST["t_read"]) / dt)
    assert rel_err(y, y_ref) <= tol
    assert np.max(np.abs(a / a_ref - 1)) <= tol
    assert net.time == pytest.approx(L * (FAST["t_write"] + FAST["t_read"]))


def test_exact_matches_rk4_at_fine_dt(rng):
    D, Dv, m, L = 6, 4, 150, 4
    q, k, v = moderate_inputs(rng, (L, D), (L, D), Dv)
    params = dict(tau_hidden=10.0, tau_astro=100.0, t_write=100.0, t_read=1000.0, leak=0.003)
    y_exact, a_exact = run(network(D, Dv, m, integrator="exact", **params), q, k, v, True)
    dt = 0.01
    y_rk4, a_rk4 = run(network(D, Dv, m, integrator="rk4", dt=dt, **params), q, k, v, True)
    # rk4's truncation error at this dt is ~1e-19 (2.7e-11 at dt = 1, times dt^4); what is left is
    # rounding: the core composes a window's t_read / dt = 1e5 step maps, each product rounded
    # (at most linear growth: 1e5 eps = 2.2e-11). Measured over 3 seeds <= 8.7e-14 (y) and
    # 2.5e-13 (a); euler at this dt is 1.9-3.5e-6 and 1.4e-5 off (the tolerance was 1e-6).
    tol = params["t_read"] / dt * EPS[np.float64]
    assert rel_err(y_rk4, y_exact) <= tol
    assert np.max(np.abs(a_rk4 / a_exact - 1)) <= tol


def convergence_orders(integrator, dts):
    rng = np.random.default_rng(1)
    D, Dv, m, L = 6, 4, 150, 3
    q, k, v = moderate_inputs(rng, (L, D), (L, D), Dv)
    params = dict(tau_hidden=10.0, tau_astro=20.0, t_write=40.0, t_read=80.0)
    _, a_exact = run(network(D, Dv, m, integrator="exact", **params), q, k, v, True)
    errors = []
    for dt in dts:
        _, a = run(network(D, Dv, m, integrator=integrator, dt=dt, **params), q, k, v, True)
        errors.append(np.max(np.abs(a / a_exact - 1)))
    return [math.log2(errors[i] / errors[i + 1]) for i in range(len(dts) - 1)], errors


def test_euler_is_first_order():
    orders, _ = convergence_orders("euler", [0.4, 0.2, 0.1, 0.05])
    assert all(abs(o - 1.0) <= 0.15 for o in orders), orders


def test_rk4_is_fourth_order():
    orders, errors = convergence_orders("rk4", [4.0, 2.0, 1.0])
    assert errors[-1] > 1e-13  # still above float64 rounding, so the order is measurable
    assert all(abs(o - 4.0) <= 0.5 for o in orders), orders


def test_window_map_exact_matches_composed_rk4_steps():
    M_exact, a_exact = tripartite._core.window_map("exact", 100.0, 1, 0.1, 0.01, 0.01, 0.002)
    M_rk4, a_rk4 = tripartite._core.window_map("rk4", 100.0, 10000, 0.1, 0.01, 0.01, 0.002)
    assert np.allclose(M_exact, M_rk4, rtol=1e-12, atol=1e-14)
    assert np.allclose(a_exact, a_rk4, rtol=1e-11, atol=1e-14)


def explicit_weights_and_bias(rng, D, m):
    W = rng.standard_normal((1, m, D)) * 0.9
    b = rng.normal(-0.3, 0.2, (1, m))
    return W, b


def test_explicit_weights_and_bias_match_reference(rng):
    D, Dv, m, L, dt = 5, 3, 64, 4, 0.25
    q, k, v = moderate_inputs(rng, (L, D), (L, D), Dv)
    W, b = explicit_weights_and_bias(rng, D, m)
    net = network(D, Dv, m, integrator="euler", dt=dt, hidden_weights=W, hidden_bias=b)
    assert np.array_equal(net.hidden_weights, W) and np.array_equal(net.hidden_bias, b)
    y, a = run(net, q, k, v, True)
    y_ref, a_ref = reference.simulate(k, v, q, W[0], stream=True, integrator="euler", dt=dt, hidden_bias=b[0], **FAST)
    tol = network_tol(np.float64, 2 * L, L * (FAST["t_write"] + FAST["t_read"]) / dt)  # 1.8e-14 (1e-12 before)
    assert rel_err(y, y_ref) <= tol and np.max(np.abs(a / a_ref - 1)) <= tol


@pytest.mark.parametrize("leak", [0.0, 0.02])
def test_exact_matches_richardson_extrapolated_rk4(rng, leak):
    """The exact integrator is the dt -> 0 limit of stepping (its own dt only sets the monitors'
    grid; the core gets one step per window, so no dt-independence test can fail): against the
    Richardson extrapolation R = (16 ref(h/2) - ref(h)) / 15 of the reference's rk4 (error
    C h^4 + O(h^5)), which cancels the h^4 term. What is left is O(h^5), smaller than the
    correction |R - ref(h/2)| ~ C (h/2)^4 by a factor ~ h / tau_hidden (1/32 here; measured 1/34),
    so the tolerance is 4 (h / tau_hidden) |R - ref(h/2)| plus the rounding of network_tol. That is
    about 6e-12, where rk4 itself at h/2 is 5e-11 off (and at the former tolerance 1e-5, dt = 0.25,
    1.3e-8)."""
    D, Dv, m, L = 5, 3, 64, 4
    q, k, v = moderate_inputs(rng, (L, D), (L, D), Dv)
    W, b = explicit_weights_and_bias(rng, D, m)
    net = network(D, Dv, m, integrator="exact", dt=0.25, hidden_weights=W, hidden_bias=b, leak=leak)
    y, a = run(net, q, k, v, True)
    h = 0.125
    coarse, fine = (reference.simulate(k, v, q, W[0], stream=True, integrator="rk4", dt=step, hidden_bias=b[0], leak=leak, **FAST)
                    for step in (h, h / 2))
    for got, x_h, x_h2 in ((y, coarse[0], fine[0]), (a, coarse[1], fine[1])):
        extrapolated = (16 * x_h2 - x_h) / 15
        correction = rel_err(x_h2, extrapolated)
        tol = 4 * (h / 2) / FAST["tau_hidden"] * correction + network_tol(np.float64, 2 * L, L * (FAST["t_write"] + FAST["t_read"]) / (h / 2))
        assert rel_err(got, extrapolated) <= tol, (rel_err(got, extrapolated), tol)
        assert rel_err(got, x_h2) > tol  # the comparison tells exact from rk4 at h/2


def assert_both_dtypes_match(D, Dv, m, W, b, q, k, v, stream, integrator, dt, params, extra_tol=lambda dtype: 0.0):
    """Float32 and float64 networks with weights W and bias b against reference.simulate."""
    L = len(k)
    y_ref, a_ref = reference.simulate(k, v, q, W[0], stream=stream, integrator=integrator, dt=dt,
                                      hidden_bias=None if b is None else b[0], **params)
    for dtype in (np.float32, np.float64):
        net = tripartite.NeuronAstrocyteNetwork(D, Dv, m, dtype=dtype, integrator=integrator, dt=dt, hidden_weights=W,
                                                hidden_bias=b, **params)
        y, a = run(net, q, k, v, stream)
        tol = network_tol(dtype, 2 * L, L * (params["t_write"] + params["t_read"]) / dt) + extra_tol(dtype)
        assert rel_err(y, y_ref) <= tol, (dtype, rel_err(y, y_ref), tol)
        assert np.max(np.abs(a / a_ref - 1)) <= tol, (dtype, np.max(np.abs(a / a_ref - 1)), tol)


@pytest.mark.parametrize("integrator", ["euler", "rk4"])
@pytest.mark.parametrize("stream", [False, True], ids=["write-read", "stream"])
def test_several_blocks_and_wide_values_match_reference(rng, integrator, stream):
    """m = 4500: two full blocks of block_size = 2048 neurons and a partial one of 404; Dv = 9
    values (more than a vector of 4 doubles or 8 floats); leak and a hidden bias."""
    D, Dv, m, L, dt = 7, 9, 2 * _core.block_size + 404, 4, 0.5
    q, k, v = (float32_numbers(x) for x in moderate_inputs(rng, (L, D), (L, D), Dv))
    W = float32_numbers(rng.standard_normal((1, m, D)))
    b = float32_numbers(rng.normal(-0.3, 0.2, (1, m)))
    assert_both_dtypes_match(D, Dv, m, W, b, q, k, v, stream, integrator, dt, dict(SHORT, leak=0.02))


@pytest.mark.parametrize("integrator", ["euler", "rk4"])
@pytest.mark.parametrize("stream", [False, True], ids=["write-read", "stream"])
def test_inputs_of_varied_norms_match_reference(rng, integrator, stream):
    """Keys and queries with |x~|^2 from 0.01 to 20, some along rows of W in either block (log-rate
    |w_r| sqrt(20) - 10 ~ 10 on that neuron, down to ~ -30 on others): the state's log-scales
    must follow from window to window. |x~|^2 stays <= 20: first-token log-rates below ~ -87 are
    a known float32 issue, fixed separately."""
    D, Dv, m, L, dt = 20, 5, _core.block_size + 452, 5, 0.5
    W = float32_numbers(rng.standard_normal((1, m, D)))
    s = D**-0.5

    def along(r, norm2):  # x with x~ = x s^{1/2} along w_r and |x~|^2 = norm2
        return W[0, r] * math.sqrt(norm2 / (W[0, r] @ W[0, r]) / s)

    q, k, v = moderate_inputs(rng, (L, D), (L, D), Dv)
    k[0] *= 0.1  # |x~|^2 = 0.01, the first token
    k[2], k[4] = along(2300, 20.0), along(100, 12.0)
    k[3] *= 2.0  # |x~|^2 = 4
    q[1], q[3] = along(2300, 20.0), along(2400, 20.0)
    q[2] *= 0.1
    q, k, v = (float32_numbers(x) for x in (q, k, v))
    # one neuron dominates each large feature: the log-rates' rounding adds log_rate_tol
    S = max(dot_magnitude(x, W[0]) for x in (q, k))
    assert_both_dtypes_match(D, Dv, m, W, None, q, k, v, stream, integrator, dt, dict(SHORT, leak=0.01),
                             extra_tol=lambda dtype: log_rate_tol(dtype, D, S))


@pytest.mark.parametrize("integrator", ["euler", "rk4"])
def test_scale_and_eta_match_reference(rng, integrator):
    """scale = 0.3 (not D^-1/2) and eta = 2.5: y is unchanged by eta (H, g and a all scale with
    it), a_t grows with it."""
    D, Dv, m, L, dt = 8, 3, 300, 4, 0.5
    q, k, v = (float32_numbers(x) for x in moderate_inputs(rng, (L, D), (L, D), Dv, scale=0.3))
    W = float32_numbers(rng.standard_normal((1, m, D)))
    assert_both_dtypes_match(D, Dv, m, W, None, q, k, v, True, integrator, dt, dict(FAST, scale=0.3, eta=2.5))
