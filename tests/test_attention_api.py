"""tripartite.attention as an ML user calls it: a batch of sequences over heads."""


import numpy as np
import pytest

import tripartite
from tripartite import _core

from conftest import directions, moderate_inputs, moderate_tol
from tripartite import reference



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


def test_the_double_underflow_warning_counts_the_queries_of_the_whole_call(rng):
    # Two heads, float32, k = -q at |x~|^2 = 2e5: every query is recomputed in double and still
    # underflows. One warning over the whole call (it was one per head, each counting that head's
    # recomputed rows only: "3 of 3" twice).
    q = np.tile(directions(rng, 16, 2e5, 16**-0.5), (2, 3, 1)).astype(np.float32)
    with pytest.warns(RuntimeWarning, match="for 6 of 6 queries .* underflow double") as record:
        tripartite.attention(q, -q, rng.standard_normal((2, 3, 2)).astype(np.float32), n_hidden=100)
    assert len(record) == 1


def _masked_reference(q, k, v, W, mask, causal):
    """Per head and query, the paper's steady state over the keys the mask keeps (and, causal,
    tau <= t) alone: reference.random_feature_attention on that subset."""
    y = np.zeros(q.shape[:-1] + (v.shape[-1],))
    a = np.zeros(q.shape[:-1])
    for h in range(q.shape[0]):
        if not causal:  # every query sees the same keys
            if mask[h].any():
                y[h], a[h] = reference.random_feature_attention(q[h], k[h, mask[h]], v[h, mask[h]], W[h],
                                                                return_astrocyte=True)
            continue
        for t in range(q.shape[1]):
            keep = mask[h] & (np.arange(k.shape[1]) <= t)
            if keep.any():
                yt, at = reference.random_feature_attention(q[h, t : t + 1], k[h, keep], v[h, keep], W[h],
                                                            return_astrocyte=True)
                y[h, t], a[h, t] = yt[0], at[0]
    return y, a


@pytest.mark.parametrize("causal", [False, True], ids=["bidirectional", "causal"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_key_mask_leaves_the_masked_keys_out(rng, causal, dtype):
    # 100 keys: chunks of 72 and 28; head 0 masks the whole first chunk (its blocks start with no
    # key written) and scattered keys later, head 1 scattered keys only, head 2 nothing.
    L, D, Dv, m = 100, 16, 8, 700
    q, k, v = moderate_inputs(rng, (3, L, D), (3, L, D), Dv)
    mask = rng.random((3, L)) > 0.3
    mask[0, :72] = False
    mask[2] = True
    W = tripartite.draw_hidden_weights(m, D, heads=3, seed=1, dtype=np.float64)
    args = [x.astype(dtype) for x in (q, k, v)]
    y, a = tripartite.attention(*args, hidden_weights=W.astype(dtype), causal=causal, key_mask=mask,
                                return_astrocyte=True)
    y_ref, a_ref = _masked_reference(*(x.astype(dtype).astype(np.float64) for x in (q, k, v)),
                                     W.astype(dtype).astype(np.float64), mask, causal)
    tol = moderate_tol(dtype, causal)
    seen = a_ref > 0
    if causal:  # head 0's first 72 queries see no key
        assert not seen[0, :72].any() and (y[0, :72] == 0).all() and (a[0, :72] == 0).all()
    assert np.max(np.abs(y - y_ref)[seen]) <= tol * np.abs(v).max()
    assert np.max(np.abs(a[seen] / a_ref[seen] - 1)) <= tol
    unmasked = tripartite.attention(*args, hidden_weights=W.astype(dtype), causal=causal)
    assert np.array_equal(unmasked[2], y[2])  # an all-True row is the unmasked computation, bit for bit
    assert np.abs(unmasked[1] - y[1]).max() > 100 * tol  # and the mask changes the others


@pytest.mark.parametrize("causal", [False, True], ids=["bidirectional", "causal"])
def test_the_references_key_mask_leaves_the_masked_keys_out(rng, causal):
    """reference.random_feature_attention and softmax_attention with key_mask equal the references
    on the written keys alone (head 0: its first keys masked, head 1: every key, head 2: none), and
    attention with the same mask matches the reference to float64 rounding."""
    L, D, Dv, m = 30, 8, 3, 200
    q, k, v = moderate_inputs(rng, (3, L, D), (3, L, D), Dv)
    mask = rng.random((3, L)) > 0.3
    mask[0, :10] = False
    mask[1] = False
    mask[2] = True
    W = tripartite.draw_hidden_weights(m, D, heads=3, seed=1, dtype=np.float64)
    y, a = reference.random_feature_attention(q, k, v, W, causal=causal, key_mask=mask, return_astrocyte=True)
    y_sub, a_sub = _masked_reference(q, k, v, W, mask, causal)
    seen = a_sub > 0
    assert (y[~seen] == 0).all() and (a[~seen] == 0).all() and not seen[1].any()
    assert np.abs(y - y_sub).max() <= 1e-13 * np.abs(v).max()
    assert np.abs(a[seen] / a_sub[seen] - 1).max() <= 1e-13
    y_core, a_core = tripartite.attention(q, k, v, hidden_weights=W, causal=causal, key_mask=mask, return_astrocyte=True)
    assert np.abs(y_core - y).max() <= 1e-13 * np.abs(v).max()
    assert np.abs(a_core[seen] / a[seen] - 1).max() <= 1e-13 and (a_core[~seen] == 0).all()
    soft = reference.softmax_attention(q, k, v, causal=causal, key_mask=mask)
    for h in range(3):
        for t in range(L):
            keep = mask[h] & ((np.arange(L) <= t) if causal else True)
            expect = reference.softmax_attention(q[h, t : t + 1], k[h, keep], v[h, keep])[0] if keep.any() else 0
            assert np.abs(soft[h, t] - expect).max() <= 1e-14


def test_the_causal_reference_does_not_lose_early_keys_to_a_later_large_one(rng):
    """Key 0 at |k~|^2 = 3000 (log-rates near -1500), the later keys at 1: with one shift for all
    keys (their overall maximum, from a later key) query 0's only key underflowed and the causal
    reference returned y = 0, a = 0. Each query must equal the reference on the keys it sees."""
    D, m, L = 8, 64, 4
    q = directions(rng, (L, D), 1.0, D**-0.5)
    k = np.concatenate([directions(rng, (1, D), 3000.0, D**-0.5), directions(rng, (L - 1, D), 1.0, D**-0.5)])
    v = rng.standard_normal((L, 2))
    W = tripartite.draw_hidden_weights(m, D, dtype=np.float64)[0]
    y, a = reference.random_feature_attention(q, k, v, W, causal=True, return_astrocyte=True)
    for t in range(L):
        yt, at = reference.random_feature_attention(q[t : t + 1], k[: t + 1], v[: t + 1], W, return_astrocyte=True)
        assert np.abs(y[t] - yt[0]).max() <= 1e-13 * np.abs(v).max()
        assert a[t] == at[0] == 0 or abs(a[t] / at[0] - 1) <= 1e-13  # t = 0: a ~ e^-1500 underflows in both
    np.testing.assert_allclose(y[0], v[0], rtol=1e-13)  # one visible key: y = its value
    y_core = tripartite.attention(q, k, v, hidden_weights=W, causal=True)
    assert np.abs(y_core - y).max() <= 1e-12 * np.abs(v).max()


def test_the_references_give_zeros_for_queries_without_keys(rng):
    """Lk = 0: every query sees no key, so y = 0 and a = 0, as attention returns."""
    q = rng.standard_normal((2, 5, 8))
    k, v = np.zeros((2, 0, 8)), np.zeros((2, 0, 3))
    W = tripartite.draw_hidden_weights(64, 8, heads=2, dtype=np.float64)
    y, a = reference.random_feature_attention(q, k, v, W, return_astrocyte=True)
    assert y.shape == (2, 5, 3) and (y == 0).all() and (a == 0).all()
    assert (reference.softmax_attention(q, k, v) == 0).all() and reference.softmax_attention(q, k, v).shape == (2, 5, 3)
    y_core, a_core = tripartite.attention(q, k, v, hidden_weights=W, return_astrocyte=True)
    assert np.array_equal(y_core, y) and np.array_equal(a_core, a)


def test_key_mask_with_every_key_masked_gives_zeros(rng):
    q, k, v = moderate_inputs(rng, (5, 8), (7, 8), 3)
    y, a = tripartite.attention(q, k, v, n_hidden=64, key_mask=np.zeros(7, bool), return_astrocyte=True)
    assert (y == 0).all() and (a == 0).all()


def test_key_mask_is_broadcast_and_checked(rng):
    q, k, v = moderate_inputs(rng, (2, 5, 8), (2, 7, 8), 3)
    mask = np.arange(7) % 2 == 0
    y = tripartite.attention(q, k, v, n_hidden=64, key_mask=mask)
    y2 = tripartite.attention(q, k, v, n_hidden=64, key_mask=np.stack([mask, mask]))
    assert np.array_equal(y, y2)
    with pytest.raises(ValueError, match="key_mask must be a boolean array .* got dtype int64"):
        tripartite.attention(q, k, v, n_hidden=64, key_mask=mask.astype(np.int64))
    with pytest.raises(ValueError, match=r"key_mask must have shape \(\.\.\., Lk\) with Lk = 7 \(from k\), got \(2, 6\)"):
        tripartite.attention(q, k, v, n_hidden=64, key_mask=np.ones((2, 6), bool))
    with pytest.raises(ValueError, match="key_mask of shape .3, 7. has leading axes"):
        tripartite.attention(q, k, v, n_hidden=64, key_mask=np.ones((3, 7), bool))
