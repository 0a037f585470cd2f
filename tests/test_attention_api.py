"""tripartite.attention as an ML user calls it: a batch of sequences over heads."""

import importlib

import numpy as np
import pytest

import tripartite
from tripartite import _core

from conftest import moderate_inputs

attention_module = importlib.import_module("tripartite.attention")


def test_weights_per_head_are_shared_by_the_batch_and_read_in_place(rng, monkeypatch):
    # q, k, v (batch, heads, L, D) with weights (heads, m, D): every sequence of the batch meets
    # the same astrocyte of each head, so its result does not depend on its place in the batch,
    # and the core receives the heads' weights once (not once per sequence).
    B, H, L, D, m = 3, 2, 10, 16, 700
    q, k, v = moderate_inputs(rng, (B, H, L, D), (B, H, L, D), 8)
    q[2], k[2], v[2] = q[0], k[0], v[0]  # the same sequence at two places in the batch
    W = tripartite.draw_hidden_weights(m, D, heads=H, seed=3, dtype=np.float32)
    seen = []
    kernel = _core.attention_float32
    monkeypatch.setattr(_core, "attention_float32", lambda *a, **kw: seen.append((a[0].shape, kw["w_index"])) or kernel(*a, **kw))
    y = tripartite.attention(*(x.astype(np.float32) for x in (q, k, v)), hidden_weights=W)
    assert seen[0][0] == (H, m, D) and seen[0][1].tolist() == [0, 1] * B
    assert np.array_equal(y[0], y[2])
    for b in range(B):  # each sequence alone, with the same weights: the same bits
        assert np.array_equal(y[b], tripartite.attention(*(x[b].astype(np.float32) for x in (q, k, v)), hidden_weights=W))


def test_weights_drawn_by_the_function_differ_per_index_of_the_leading_axes(rng):
    # Without hidden_weights every index of the flattened leading axes is its own astrocyte: the
    # same sequence at two places in a batch gets two independent estimates (documented).
    q, k, v = moderate_inputs(rng, (2, 1, 10, 16), (2, 1, 10, 16), 8)
    q[1], k[1], v[1] = q[0], k[0], v[0]
    y = tripartite.attention(q, k, v, n_hidden=256)
    assert not np.array_equal(y[0], y[1])


def test_core_refuses_a_weight_index_out_of_range():
    W = np.zeros((2, 32, 4), np.float32)
    x = np.zeros((3, 5, 4), np.float32)
    with pytest.raises(ValueError, match="w_index must index hidden_weights' 2 heads, got 2"):
        _core.attention_float32(W, None, x, x, x, 1.0, False, 1, w_index=np.array([0, 1, 2], np.int64))
    with pytest.raises(ValueError, match="w_index must have shape"):
        _core.attention_float32(W, None, x, x, x, 1.0, False, 1, w_index=np.array([0, 1], np.int64))


def test_float16_inputs_are_computed_and_returned_in_float32(rng):
    q, k, v = moderate_inputs(rng, (6, 8), (6, 8), 3)
    y = tripartite.attention(*(x.astype(np.float16) for x in (q, k, v)), n_hidden=128)
    assert y.dtype == np.float32
    y32 = tripartite.attention(*(x.astype(np.float16).astype(np.float32) for x in (q, k, v)), n_hidden=128)
    assert np.array_equal(y, y32)


def test_the_double_underflow_warning_counts_the_queries_of_the_whole_call(monkeypatch):
    # Two heads, float32: the queries recomputed in double are counted over the whole call, in
    # one warning (the count used to be per head, over that head's recomputed rows only).
    lost = {0: np.array([[0.0, -np.inf]]), 1: np.array([[-np.inf, 0.0]])}
    calls = iter([0, 1])

    def fake64(W, bias, q, k, v, *args):
        h = next(calls)
        return np.zeros((1, q.shape[1], v.shape[2])), np.zeros((1, q.shape[1])), lost[h][:, : q.shape[1]] + 0

    monkeypatch.setattr(_core, "attention_float64", fake64)
    y = np.zeros((2, 2, 1), np.float32)
    log_a = np.zeros((2, 2))
    log_u = np.zeros((2, 2))  # every query flagged in float32
    x = np.zeros((2, 2, 1), np.float32)
    with pytest.warns(RuntimeWarning, match="for 2 of 4 queries") as record:
        attention_module._recompute_underflowed([np.zeros((2, 3, 1), np.float32), None, x, x, x], None, 1.0, False, 1,
                                                y, log_a, log_u)
    assert len(record) == 1
