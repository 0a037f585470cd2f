"""Ladder items 3 and 4: continuous time against the steady state, random features against
softmax attention."""

import math

import numpy as np
import pytest

import tripartite
from tripartite import reference

from conftest import moderate_inputs


def continuous_vs_steady(eps, q, k, v, m):
    """Deviation of the continuous-time network from the steady state when tau_hidden and
    tau_astro are eps * t_write (t_read = t_write)."""
    D, Dv = q.shape[1], v.shape[1]
    net = tripartite.NeuronAstrocyteNetwork(
        D, Dv, m, seed=2, dtype=np.float64, tau_hidden=eps * 100.0, tau_astro=eps * 100.0, t_write=100.0, t_read=100.0
    )
    net.write(k, v)
    y = net.read(q)
    y_steady = tripartite.attention(q, k, v, hidden_weights=net.hidden_weights[0])
    return float(np.max(np.abs(y - y_steady)) / np.max(np.abs(y_steady)))


def test_continuous_time_tends_to_steady_state_linearly(rng):
    q, k, v = moderate_inputs(rng, (12, 16), (24, 16), 8)
    devs = [continuous_vs_steady(eps, q, k, v, 512) for eps in (1e-1, 1e-2, 1e-3)]
    # O(tau/t_write): each decade of tau_hidden/t_write shrinks the deviation tenfold, up to the
    # O(eps^2) correction.
    ratios = [devs[i] / devs[i + 1] for i in range(2)]
    assert all(8.0 <= r <= 12.0 for r in ratios), (devs, ratios)


def relative_error_vs_softmax(m, seeds, q, k, v):
    y_soft = reference.softmax_attention(q, k, v)
    errs = [
        np.linalg.norm(tripartite.attention(q, k, v, n_hidden=m, seed=s) - y_soft) / np.linalg.norm(y_soft)
        for s in seeds
    ]
    return float(np.sqrt(np.mean(np.square(errs))))


def test_error_falls_as_inverse_sqrt_m(rng):
    """|q~|^2 = |k~|^2 = 1: the RMS error over seeds falls as m^{-1/2} (slope -0.5 on log-log)."""
    q, k, v = moderate_inputs(rng, (32, 16), (32, 16), 8)
    ms = [256, 1024, 4096, 16384, 65536]
    errs = [relative_error_vs_softmax(m, range(6), q, k, v) for m in ms]
    slope = np.polyfit(np.log(ms), np.log(errs), 1)[0]
    assert -0.6 <= slope <= -0.4, (slope, errs)


def test_astrocyte_is_unbiased_estimate_of_softmax_normaliser(rng):
    """E_W[a_t] = Z_t: the mean over 32 seeds is within a few standard errors of Z_t."""
    q, k, v = moderate_inputs(rng, (16, 16), (32, 16), 4)
    Z = reference.softmax_normaliser(q, k)
    a = np.array([tripartite.attention(q, k, v, n_hidden=256, seed=s, return_astrocyte=True)[1] for s in range(32)])
    mean, se = a.mean(axis=0), a.std(axis=0, ddof=1) / math.sqrt(len(a))
    z = (mean - Z) / se
    assert np.max(np.abs(z)) < 4.0, z  # 16 queries: P(any |z| > 4) ~ 1e-3 for an unbiased estimator
    assert np.mean(z**2) < 2.5, z  # z^2 averages 1 when unbiased


def test_astrocyte_error_bound_from_feature_variance(rng):
    """Per pair, Var[phi(q).phi(k)] / E^2 = (exp|q~+k~|^2 - 1) / m for these features, so the
    relative error of a_t is bounded by a few of that standard deviation, for any norms."""
    m = 8192
    for norm2 in (0.25, 1.0, 2.0):
        q, k, v = moderate_inputs(rng, (8, 16), (16, 16), 4, norm2=norm2)
        _, a = tripartite.attention(q, k, v, n_hidden=m, seed=1, return_astrocyte=True)
        Z = reference.softmax_normaliser(q, k)
        s = 1 / math.sqrt(16)
        sum_norm2 = np.max(np.sum((q[:, None] + k[None]) ** 2, axis=-1) * s, axis=1)
        sigma = np.sqrt(np.expm1(sum_norm2) / m)
        assert np.all(np.abs(a / Z - 1) <= 5 * sigma), (norm2, np.abs(a / Z - 1) / sigma)


@pytest.mark.parametrize("feature_map", ["performer", "orthogonal"])
def test_network_output_tracks_softmax_at_large_m(rng, feature_map):
    """End to end: the continuous-time network at m = 65536 is as close to softmax attention as
    the m^{-1/2} law predicts from the steady state's RMS error at m = 4096 (over 8 seeds), plus
    the O(tau_hidden / t_write) = 1e-3 continuous-time term."""
    q, k, v = moderate_inputs(rng, (10, 16), (20, 16), 4)
    y_soft = reference.softmax_attention(q, k, v)
    err_4096 = np.sqrt(np.mean([
        np.sum((tripartite.attention(q, k, v, n_hidden=4096, seed=s, feature_map=feature_map) - y_soft) ** 2)
        for s in range(10, 18)
    ])) / np.linalg.norm(y_soft)
    net = tripartite.NeuronAstrocyteNetwork(16, 4, 65536, feature_map=feature_map, dtype=np.float64, tau_hidden=0.1, tau_astro=1.0)
    net.write(k, v)
    err = np.linalg.norm(net.read(q) - y_soft) / np.linalg.norm(y_soft)
    assert err <= 3 * err_4096 * math.sqrt(4096 / 65536) + 1e-3, (err, err_4096)
