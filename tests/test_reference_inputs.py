"""tripartite.reference checks its inputs as tripartite.attention and the network do: bad input
raises a ValueError naming the argument, the expected and the actual value, before any work (an
audit found NaN values accepted, NaN keys blamed on "x", D = 0 a ZeroDivisionError, m = 0 a math
domain error, scores of inf turned into NaN, and simulate's true-unit features underflowing to a
silent 0)."""

import inspect
import typing
import warnings

import numpy as np
import pytest

import tripartite
from tripartite import reference

from conftest import moderate_inputs

SIM = dict(t_write=10.0, t_read=10.0)  # short windows: each call a few ms


@pytest.fixture
def qkvw(rng):
    q, k, v = moderate_inputs(rng, (4, 8), (4, 8), 3)
    return q, k, v, rng.standard_normal((16, 8))


# 1, 2. non-finite inputs of simulate, named as the caller named them -------------------------------
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("name", ["keys", "values", "queries"])
def test_simulate_names_its_non_finite_input(qkvw, name, bad):
    q, k, v, W = qkvw
    args = dict(keys=k, values=v, queries=q)
    args[name] = args[name].copy()
    args[name][1, 2] = bad
    with pytest.raises(ValueError, match=rf"^{name} must be finite, got {bad} at index \(1, 2\)"):
        reference.simulate(args["keys"], args["values"], args["queries"], W, **SIM)


# 3. leading axes that do not broadcast: every input named by its own name --------------------------
def test_random_feature_attention_names_k_when_its_leading_axes_clash(qkvw):
    q, k, v, W = qkvw
    clash = r"must broadcast against each other, got q \(\), k \(2,\), v \(\), hidden_weights \(3,\)"
    with pytest.raises(ValueError, match=clash):
        reference.random_feature_attention(q, np.stack([k] * 2), v, np.stack([W] * 3))
    with pytest.raises(ValueError, match=r"got q \(3,\), k \(2,\), v \(\), hidden_weights \(\), hidden_bias \(2,\)"):
        reference.random_feature_attention(np.stack([q] * 3), np.stack([k] * 2), v, W, hidden_bias=np.zeros((2, 16)))
    with pytest.raises(ValueError, match=r"got x \(3,\), hidden_weights \(2,\)"):  # log_features' own argument is x
        reference.log_features(np.stack([q] * 3), np.stack([W] * 2))


# 4. D = 0 and m = 0 are refused, as attention refuses them; L = 0 is allowed, as in attention ------
_Z = np.zeros((4, 0))
_NO_D = r"at least one feature \(D >= 1\)"
_NO_M = r"hidden_weights must have at least one row \(m >= 1 hidden neuron\)"


@pytest.mark.parametrize("call, match", [
    (lambda q, k, v, W: reference.softmax_attention(_Z, _Z, v), rf"^q must have {_NO_D}, got shape \(4, 0\)"),
    (lambda q, k, v, W: reference.softmax_normaliser(_Z, _Z, scale=1.0), rf"^q must have {_NO_D}"),
    (lambda q, k, v, W: reference.log_features(_Z, np.zeros((16, 0))), rf"^x must have {_NO_D}, got shape \(4, 0\)"),
    (lambda q, k, v, W: reference.random_feature_attention(_Z, _Z, v, np.zeros((16, 0))), rf"^q must have {_NO_D}"),
    (lambda q, k, v, W: reference.simulate(_Z, v, _Z, np.zeros((16, 0)), **SIM),
     rf"^hidden_weights must have {_NO_D}, got shape \(16, 0\)"),
    (lambda q, k, v, W: reference.log_features(q, W[:0]), rf"^{_NO_M}, got shape \(0, 8\)"),
    (lambda q, k, v, W: reference.random_feature_attention(q, k, v, W[:0]), rf"^{_NO_M}"),
    (lambda q, k, v, W: reference.simulate(k, v, q, W[:0], **SIM), rf"^{_NO_M}"),
])
def test_zero_features_or_hidden_neurons_are_value_errors(qkvw, call, match):
    with pytest.raises(ValueError, match=match):
        call(*qkvw)


def test_zero_features_are_refused_as_attention_refuses_them(qkvw):
    v = qkvw[2]
    with pytest.raises(ValueError, match="q must have at least one feature"):
        tripartite.attention(_Z, _Z, v, n_hidden=8)
    with pytest.raises(ValueError, match="q must have at least one feature"):
        reference.random_feature_attention(_Z, _Z, v, np.zeros((8, 0)))


def test_zero_tokens_are_allowed_as_in_attention(qkvw):
    q, k, v, W = qkvw
    assert tripartite.attention(q[:0], k[:0], v[:0], hidden_weights=W).shape == (0, 3)
    assert reference.random_feature_attention(q[:0], k[:0], v[:0], W).shape == (0, 3)
    assert not reference.random_feature_attention(q, k[:0], v[:0], W).any()
    assert not reference.softmax_attention(q, k[:0], v[:0]).any()
    y, a = reference.simulate(k[:0], v[:0], q, W, **SIM)
    assert y.shape == (4, 3) and not y.any() and not a.any()


# 5. inputs too large for the computation -----------------------------------------------------------
def test_softmax_refuses_scores_that_overflow_and_keeps_large_finite_ones(qkvw):
    q, k, v, _ = qkvw
    with pytest.raises(ValueError, match=r"^q and k are too large: .* exceeds 1.8e\+308"):
        reference.softmax_attention(q * 1e200, k * 1e200, v)
    with pytest.raises(ValueError, match="q and k are too large"):
        reference.softmax_normaliser(q * 1e200, k * 1e200)
    # scores of order 1e10 are finite: the max-shift makes each row one-hot, no warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = reference.softmax_attention(q * 1e5, k * 1e5, v)
    best = np.argmax(q @ k.T, axis=1)
    np.testing.assert_array_equal(y, v[best])


def test_random_feature_attention_refuses_the_norms_attention_refuses(qkvw):
    q, k, v, W = qkvw
    for scale in (1e8, 1e200):
        with pytest.raises(ValueError, match=r"^q is too large: max \|q~\|\^2 = .* exceeds 4.5e\+14") as ref_err:
            reference.random_feature_attention(q * scale, k, v, W)
        with pytest.raises(ValueError, match=r"^q is too large") as att_err:
            tripartite.attention(q * scale, k, v, hidden_weights=W)
        assert str(ref_err.value) == str(att_err.value)  # the same rule, in the same words
        with pytest.raises(ValueError, match=r"^k is too large"):
            reference.random_feature_attention(q, k * scale, v, W)
        with pytest.raises(ValueError, match=r"^x is too large"):
            reference.log_features(q * scale, W)


def test_random_feature_attention_warns_where_every_product_underflows_as_attention_does(qkvw):
    q, k, v, W = qkvw
    with pytest.warns(RuntimeWarning, match="underflow"):
        y_att = tripartite.attention(q * 1e5, k * 1e5, v, hidden_weights=W)
    with pytest.warns(RuntimeWarning, match=r"random_feature_attention: for \d of 4 queries every key-query product"):
        y_ref = reference.random_feature_attention(q * 1e5, k * 1e5, v, W)
    np.testing.assert_array_equal(y_ref == 0, y_att == 0)


def test_simulate_refuses_inputs_whose_true_unit_calcium_leaves_double(qkvw):
    # |x~|^2 ~ 1e10: every rate is exp(-1e10) = 0 in float64, and simulate returned y = 0 without a word
    q, k, v, W = qkvw
    with pytest.raises(ValueError, match=r"^keys and queries are too large: the calcium of query 0, .* underflows float64"):
        reference.simulate(k * 1e5, v, q * 1e5, W, **SIM)
    with pytest.raises(ValueError, match=r"^keys is too large: max \|keys~\|\^2"):  # as the network refuses them
        reference.simulate(k * 1e8, v, q, W, **SIM)
    with pytest.raises(ValueError, match=r"^queries is too large"):
        reference.simulate(k, v, q * 1e8, W, **SIM)
    with pytest.raises(ValueError, match=r"^values is too large"):
        reference.simulate(k, v * 1e200, q, W, **SIM)


def test_simulate_refuses_rates_that_overflow(qkvw):
    # log phi = W x~ - |x~|^2 / 2 - log(m)/2 = 1800 - 450 - 0: phi = inf in true units
    x, W = np.array([[30.0]]), np.array([[60.0]])
    with pytest.raises(ValueError, match=r"^keys is too large: the rates phi\(keys\[0\]~\) reach exp\(1350\)"):
        reference.simulate(x, np.ones((1, 1)), np.zeros((1, 1)), W, scale=1.0, **SIM)


def test_simulate_still_follows_moderately_large_norms(rng):
    # |x~|^2 = 400: the rates are near exp(-200), well inside double: computed, not refused
    q, k, v = moderate_inputs(rng, (3, 8), (3, 8), 2, norm2=400.0)
    y, a = reference.simulate(k, v, q, rng.standard_normal((300, 8)), stream=True, **SIM)
    assert np.isfinite(y).all() and (a > 0).all() and np.abs(y).max() > 0


# 6. hidden_bias, checked as attention checks it --------------------------------------------------------
def test_hidden_bias_is_checked_as_attention_checks_it(qkvw):
    q, k, v, W = qkvw
    with pytest.raises(ValueError, match=r"^hidden_bias must have a real numeric dtype .* got dtype <U1"):
        reference.simulate(k, v, q, W, hidden_bias=["a"] * 16, **SIM)
    with pytest.raises(ValueError, match=r"^hidden_bias must have shape \(m,\) = \(16,\), got \(\)"):
        reference.simulate(k, v, q, W, hidden_bias=0.5, **SIM)
    with pytest.raises(ValueError, match=r"^hidden_bias must be finite"):
        reference.simulate(k, v, q, W, hidden_bias=np.full(16, np.nan), **SIM)
    for call in (lambda b: reference.random_feature_attention(q, k, v, W, hidden_bias=b),
                 lambda b: reference.log_features(q, W, hidden_bias=b),
                 lambda b: tripartite.attention(q, k, v, hidden_weights=W, hidden_bias=b)):
        with pytest.raises(ValueError, match=r"^hidden_bias is too large: max \|hidden_bias\| = 1e\+300 exceeds 4.5e\+14"):
            call(np.full(16, 1e300))
        with pytest.raises(ValueError, match=r"^hidden_bias must have a real numeric dtype"):
            call("abc")


# 7. type hints ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", reference.__all__)
def test_public_functions_are_annotated(name):
    func = getattr(reference, name)
    hints = typing.get_type_hints(func)  # resolves every annotation (none is a dangling name)
    params = inspect.signature(func).parameters
    assert set(params) <= set(hints), f"unannotated: {set(params) - set(hints)}"
    assert "return" in hints
