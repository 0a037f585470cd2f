"""tripartite.transformer checks its public inputs: softmax_attention, gelu and erf refuse NaN, the
wrong dtypes and mismatched shapes with a ValueError naming the argument (an audit found them
accepted, or erf(1j) silently dropping the imaginary part), while the model's forward pass calls
unchecked internals at no cost per layer; MiniLM's arguments of the wrong type raise a ValueError
(still a TypeError, as they raised before), and a single token sequence given to hidden_states is
reported with its own shape."""

import math
import warnings

import numpy as np
import pytest

from tripartite import reference
from tripartite import transformer as T
from tripartite.transformer import MiniLM


_R = np.random.default_rng(7)
_Q, _K, _V = (_R.standard_normal((2, 5, 4)).astype(np.float32) for _ in range(3))


# softmax_attention ---------------------------------------------------------------------------------
@pytest.mark.parametrize("args, match", [
    ((np.where(np.eye(5, 4) > 0, np.nan, _Q), _K, _V), r"^q must be finite, got nan at index \(0, 0, 0\)"),
    ((_Q, _K * np.inf, _V), r"^k must be finite"),
    ((_Q, _K, _V.astype(np.float64) * np.nan), r"^v must be finite"),
    ((np.ones((2, 5, 4), dtype=int), _K, _V), r"^q must have a floating-point dtype .* got dtype int64"),
    ((_Q, _K + 1j, _V), r"^k must have a real numeric dtype .* got dtype complex"),
    ((_Q, [[1, 2], [3]], _V), r"^k must be an array of real numbers"),
    ((_Q, _K[..., :3], _V), r"^k must have shape \(\.\.\., Lk, D\) with D = 4 \(from q\), got \(2, 5, 3\)"),
    ((_Q, _K, _V[:, :3]), r"^v must have shape \(\.\.\., Lk, Dv\) with Lk = 5 \(from k\), got \(2, 3, 4\)"),
    ((_Q[0, 0], _K, _V), r"^q must have shape \(\.\.\., Lq, D\), got \(4,\)"),
    ((np.stack([_Q] * 3), np.stack([_K] * 2), _V),
     r"^leading axes of q \(3, 2, 5, 4\), k \(2, 2, 5, 4\), v \(2, 5, 4\) do not broadcast"),
    ((_Q[..., :0], _K[..., :0], _V), r"^q must have at least one feature \(D >= 1\), got shape \(2, 5, 0\)"),
    ((_Q * np.float32(1e20), _K * np.float32(1e20), _V), r"^q and k are too large: .* the largest float32"),
])
def test_softmax_attention_refuses_bad_input(args, match):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a ValueError, not NumPy warnings and NaN
        with pytest.raises(ValueError, match=match):
            T.softmax_attention(*args)


def test_softmax_attention_with_no_keys_gives_zeros_as_the_reference():
    y = T.softmax_attention(_Q, _K[:, :0], _V[:, :0])
    assert y.shape == (2, 5, 4) and y.dtype == np.float32 and not y.any()
    assert not reference.softmax_attention(_Q, _K[:, :0], _V[:, :0]).any()


def test_softmax_attention_accepts_lists_of_floats_and_keeps_its_results():
    q, k, v = (x.astype(np.float64) for x in (_Q, _K, _V))
    np.testing.assert_array_equal(T.softmax_attention(q.tolist(), k.tolist(), v.tolist()), T.softmax_attention(q, k, v))
    np.testing.assert_allclose(T.softmax_attention(q, k, v), reference.softmax_attention(q, k, v), rtol=1e-14, atol=1e-15)


# gelu and erf ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("x, match", [
    (np.array([0.5, np.nan], dtype=np.float32), r"^x must be finite, got nan at index \(1,\)"),
    (np.array([-np.inf]), r"^x must be finite, got -inf"),  # GELU(-inf) came out NaN
    (np.array([1, 2]), r"^x must have a floating-point dtype .* got dtype int64"),  # truncated back to int
    (np.array([1j]), r"^x must have a real numeric dtype .* got dtype complex128"),
    ("1.0", r"^x must have a real numeric dtype"),
])
def test_gelu_refuses_bad_input(x, match):
    with pytest.raises(ValueError, match=match):
        T.gelu(x)


@pytest.mark.parametrize("x, match", [
    (1j, r"^x must have a real numeric dtype .* got dtype complex128"),  # used to drop the imaginary part
    (np.array([0.1, np.nan]), r"^x must be finite, got nan at index \(1,\)"),
    ([True], r"^x must have a real numeric dtype .* got dtype bool"),
])
def test_erf_refuses_bad_input(x, match):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no ComplexWarning on the way
        with pytest.raises(ValueError, match=match):
            T.erf(x)


def test_erf_and_gelu_still_take_their_documented_inputs():
    assert T.erf(1) == pytest.approx(math.erf(1.0), abs=4e-16)  # integers are real numbers for erf
    assert T.erf([0.5, -0.5]).dtype == np.float64
    y = T.gelu(np.array([1.0], dtype=np.float32))
    assert y.dtype == np.float32 and y[0] == pytest.approx(0.5 * (1 + math.erf(1 / math.sqrt(2))), rel=1e-7)


def test_forward_pass_does_not_call_the_checked_functions(model, monkeypatch):
    # The public checks cost nothing per layer: the model calls the unchecked internals.
    expected = model.encode("A cat sat on the mat.")

    def refuse(*args, **kwargs):
        raise AssertionError("the forward pass called a checked public function")

    for name in ("softmax_attention", "gelu", "erf"):
        monkeypatch.setattr(T, name, refuse)
    np.testing.assert_array_equal(model.encode("A cat sat on the mat."), expected)
    model.attention_inputs("A cat sat.")


# MiniLM's arguments ------------------------------------------------------------------------------------
@pytest.mark.parametrize("max_length", [2.0, "128", True, np.float64(128)])
def test_max_length_of_the_wrong_type_is_a_value_error(max_length):
    with pytest.raises(ValueError, match=r"^max_length must be an integer in \[2, 512\], got"):
        MiniLM(max_length=max_length)


@pytest.mark.parametrize("bad, match", [(["ok", 3], r"^texts\[1\] must be a str, got int"), (42, r"^texts must be a str"),
                                        (b"bytes", r"^texts must be a str")])
def test_texts_of_the_wrong_type_are_value_errors_and_still_type_errors(model, bad, match):
    for method in (model.encode, model.tokenize):
        with pytest.raises(ValueError, match=match) as err:
            method(bad)
        assert isinstance(err.value, TypeError)  # as before: callers catching TypeError keep working
    with pytest.raises(ValueError, match=r"^text must be a str, got list"):
        model.attention_inputs(["hi"])
    with pytest.raises(ValueError, match=r"^attention must be callable or None, got int"):
        model.encode("hi", attention=5)
    with pytest.raises(ValueError, match=r"^attention must be callable or None, got int"):
        model.hidden_states(model.tokenize("hi"), attention=5)


def test_hidden_states_reports_the_shape_of_a_single_sequence(model):
    for one in (np.array([101, 102]), [101, 102]):
        with pytest.raises(ValueError, match=r"^ids must be a sequence of 1-D integer arrays .* of shape \(2,\) "
                                             r"\(for one sequence, pass \[ids\]\)"):
            model.hidden_states(one)
    with pytest.raises(ValueError, match=r"^ids must be a sequence of 1-D integer arrays .* got int"):
        model.hidden_states(101)
    bad_item = r"^ids must be a non-empty 1-D integer array, got shape \(1,\) dtype float64 \(ids\[1\]\)$"
    with pytest.raises(ValueError, match=bad_item):
        model.hidden_states([np.array([101, 102]), np.array([1.5])])
    ids = np.array([[101, 7592, 102]])  # a 2-D array is a sequence of sequences
    np.testing.assert_array_equal(model.hidden_states(ids)[0], model.hidden_states([ids[0]])[0])
