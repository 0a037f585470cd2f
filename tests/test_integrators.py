"""Ladder item 2: each compiled integrator against the step-by-step NumPy reference, convergence
orders, and the exact integrator's independence of dt."""

import math

import numpy as np
import pytest

import tripartite
from tripartite import reference

from conftest import moderate_inputs

# Small windows keep the NumPy reference quick while still spanning several time constants.
FAST = dict(tau_hidden=2.0, tau_astro=5.0, t_write=10.0, t_read=40.0)


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
    # time: equal up to rounding (float64) or float32 storage of the state (float32).
    tol = 1e-5 if dtype == np.float32 else 1e-12
    assert rel_err(y, y_ref) <= tol
    assert np.max(np.abs(a / a_ref - 1)) <= tol
    assert net.time == pytest.approx(L * (FAST["t_write"] + FAST["t_read"]))


def test_exact_matches_rk4_at_fine_dt(rng):
    D, Dv, m, L = 6, 4, 150, 4
    q, k, v = moderate_inputs(rng, (L, D), (L, D), Dv)
    params = dict(tau_hidden=10.0, tau_astro=100.0, t_write=100.0, t_read=1000.0, leak=0.003)
    y_exact, a_exact = run(network(D, Dv, m, integrator="exact", **params), q, k, v, True)
    y_rk4, a_rk4 = run(network(D, Dv, m, integrator="rk4", dt=0.01, **params), q, k, v, True)
    assert rel_err(y_rk4, y_exact) <= 1e-6
    assert np.max(np.abs(a_rk4 / a_exact - 1)) <= 1e-6


def test_exact_is_dt_independent(rng):
    D, Dv, m, L = 6, 4, 150, 4
    q, k, v = moderate_inputs(rng, (L, D), (L, D), Dv)
    ys = [run(network(D, Dv, m, integrator="exact", dt=dt), q, k, v, False)[0] for dt in (0.1, 1.0, 10.0)]
    assert np.array_equal(ys[0], ys[1]) and np.array_equal(ys[1], ys[2])


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


@pytest.mark.parametrize("integrator", ["euler", "exact"])
def test_explicit_weights_and_bias_match_reference(rng, integrator):
    D, Dv, m, L = 5, 3, 64, 4
    q, k, v = moderate_inputs(rng, (L, D), (L, D), Dv)
    W = rng.standard_normal((1, m, D)) * 0.9
    b = rng.normal(-0.3, 0.2, (1, m))
    net = network(D, Dv, m, integrator=integrator, dt=0.25, hidden_weights=W, hidden_bias=b)
    assert np.array_equal(net.hidden_weights, W) and np.array_equal(net.hidden_bias, b)
    y, a = run(net, q, k, v, True)
    # "exact" is compared with rk4 stepping, whose error at dt/tau = 1/8 is (1/8)^4 ~ 2e-4 per unit time
    ref_integrator = "euler" if integrator == "euler" else "rk4"
    y_ref, a_ref = reference.simulate(k, v, q, W[0], stream=True, integrator=ref_integrator, dt=0.25, hidden_bias=b[0], **FAST)
    tol = 1e-12 if integrator == "euler" else 1e-5
    assert rel_err(y, y_ref) <= tol and np.max(np.abs(a / a_ref - 1)) <= tol
