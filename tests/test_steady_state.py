"""Ladder item 1: the compiled steady state against the NumPy closed form (same W)."""

import math

import numpy as np
import pytest

import tripartite
from tripartite import _core, reference

from conftest import dot_magnitude, log_rate_tol, moderate_inputs, moderate_tol

# Features and their sums are formed in the input dtype over D and over blocks of
# _core.attention_block_size = 512 hidden neurons (folded in double): moderate_tol in conftest.py
# derives the tolerance of moderate inputs from that, log_rate_tol the one of large log-rates.
SEEDS = [12345, 1, 4, 16, 17]  # 1, 16 and 17 exceeded the former fixed tolerances


def rel_err(x, ref):
    return float(np.max(np.abs(x - ref)) / np.max(np.abs(ref)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("causal", [False, True], ids=["bidirectional", "causal"])
@pytest.mark.parametrize("feature_map", ["performer", "orthogonal"])
def test_matches_closed_form(rng, dtype, causal, feature_map):
    heads, L, D, Dv, m = 3, 63, 60, 13, 4099  # odd sizes: tail loops and a partial block
    q, k, v = moderate_inputs(rng, (heads, L, D), (heads, L, D), Dv)
    q, k, v = (x.astype(dtype) for x in (q, k, v))
    W = tripartite.draw_hidden_weights(m, D, heads=heads, seed=7, feature_map=feature_map, dtype=dtype)
    y, a = tripartite.attention(q, k, v, hidden_weights=W, causal=causal, return_astrocyte=True)
    y_ref, a_ref = reference.random_feature_attention(q, k, v, W, causal=causal, return_astrocyte=True)
    assert y.dtype == dtype and y.shape == (heads, L, Dv) and a.shape == (heads, L)
    assert rel_err(y, y_ref) <= moderate_tol(dtype, causal)
    assert np.max(np.abs(a / a_ref - 1)) <= moderate_tol(dtype, causal)


def test_seed_draws_the_same_weights(rng):
    q, k, v = moderate_inputs(rng, (2, 17, 8), (2, 17, 8), 5)
    y = tripartite.attention(q, k, v, n_hidden=500, seed=3)
    W = tripartite.draw_hidden_weights(500, 8, heads=2, seed=3, dtype=np.float64)
    assert rel_err(y, reference.random_feature_attention(q, k, v, W)) <= moderate_tol(np.float64, False)
    assert np.array_equal(y, tripartite.attention(q, k, v, n_hidden=500, seed=3))
    assert not np.array_equal(y, tripartite.attention(q, k, v, n_hidden=500, seed=4))


def test_leading_axes_broadcast(rng):
    # (batch, heads) for q, one set of keys shared by the batch, shared hidden weights.
    q, _, _ = moderate_inputs(rng, (2, 3, 9, 16), (1, 16), 4)
    _, k, v = moderate_inputs(rng, (1, 16), (3, 11, 16), 4)
    W = tripartite.draw_hidden_weights(300, 16, dtype=np.float64)[0]
    y = tripartite.attention(q, k, v, hidden_weights=W)
    assert y.shape == (2, 3, 9, 4)
    y_ref = reference.random_feature_attention(q, np.broadcast_to(k, (2, 3, 11, 16)), np.broadcast_to(v, (2, 3, 11, 4)), W)
    assert rel_err(y, y_ref) <= moderate_tol(np.float64, False)


# Column layouts, each against the reference over two chunks (80 tokens):
#  - float64, causal: the intra-chunk sums (tiles::weighted_rows) take Dv + 1 columns in blocks of
#    12, 4 and 1 vectors of doubles, then a scalar tail;
#  - float32: synapse panels hold 16 columns (two 8-float vectors): Dv and Dv + 1 on both sides of
#    16 and 32, bidirectional and causal.
COLUMN_LAYOUTS = ([(np.float64, True, Dv) for Dv in (1, 4, 15, 47, 64, 79)]
                  + [(np.float32, causal, Dv) for causal in (False, True) for Dv in (1, 15, 16, 17, 33)])


@pytest.mark.parametrize("dtype, causal, Dv", COLUMN_LAYOUTS,
                         ids=[f"{np.dtype(t).name}-{'causal' if c else 'bidirectional'}-Dv{Dv}" for t, c, Dv in COLUMN_LAYOUTS])
def test_column_layouts(rng, dtype, causal, Dv):
    q, k, v = (x.astype(dtype) for x in moderate_inputs(rng, (2, 80, 8), (2, 80, 8), Dv))
    W = tripartite.draw_hidden_weights(600, 8, heads=2, seed=5, dtype=dtype)
    y, a = tripartite.attention(q, k, v, hidden_weights=W, causal=causal, return_astrocyte=True)
    y_ref, a_ref = reference.random_feature_attention(q, k, v, W, causal=causal, return_astrocyte=True)
    assert y.dtype == dtype
    assert rel_err(y, y_ref) <= moderate_tol(dtype, causal)
    assert np.max(np.abs(a / a_ref - 1)) <= moderate_tol(dtype, causal)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("Lq, Lk", [(5, 200), (170, 11)])
def test_query_and_key_counts_differ_across_chunks(rng, dtype, Lq, Lk):
    """Few queries against three chunks of keys, and three chunks of queries against a few keys,
    with a hidden bias, against the reference."""
    heads, D, Dv, m = 2, 9, 7, 1100
    q = moderate_inputs(rng, (heads, Lq, D), (heads, Lk, D), Dv)[0]
    _, k, v = moderate_inputs(rng, (heads, Lq, D), (heads, Lk, D), Dv)
    q, k, v = (x.astype(dtype) for x in (q, k, v))
    W = tripartite.draw_hidden_weights(m, D, heads=heads, seed=2, dtype=dtype)
    b = rng.normal(-0.3, 0.2, (heads, m))
    y, a = tripartite.attention(q, k, v, hidden_weights=W, hidden_bias=b, return_astrocyte=True)
    y_ref, a_ref = reference.random_feature_attention(q, k, v, W, return_astrocyte=True, hidden_bias=b)
    assert y.shape == (heads, Lq, Dv)
    assert rel_err(y, y_ref) <= moderate_tol(dtype, False)
    assert np.max(np.abs(a / a_ref - 1)) <= moderate_tol(dtype, False)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("causal", [False, True], ids=["bidirectional", "causal"])
def test_non_default_scale(rng, dtype, causal):
    """scale = 0.3 (not D^-1/2) enters as x~ = x s^{1/2}, in y and in a_t's units."""
    q, k, v = (x.astype(dtype) for x in moderate_inputs(rng, (2, 80, 8), (2, 80, 8), 3, scale=0.3))
    W = tripartite.draw_hidden_weights(700, 8, heads=2, seed=4, dtype=dtype)
    y, a = tripartite.attention(q, k, v, hidden_weights=W, scale=0.3, causal=causal, return_astrocyte=True)
    y_ref, a_ref = reference.random_feature_attention(q, k, v, W, scale=0.3, causal=causal, return_astrocyte=True)
    assert rel_err(y, y_ref) <= moderate_tol(dtype, causal)
    assert np.max(np.abs(a / a_ref - 1)) <= moderate_tol(dtype, causal)
    # the default scale (1/sqrt(8) = 0.35) gives another answer, far outside that
    assert rel_err(tripartite.attention(q, k, v, hidden_weights=W, causal=causal), y_ref) > 100 * moderate_tol(dtype, causal)


def test_causal_equals_masked_prefixes(rng):
    """Causal output t equals bidirectional attention over the first t+1 tokens (same W)."""
    c = _core.chunk_size
    q, k, v = moderate_inputs(rng, (c + 6, 12), (c + 6, 12), 3)  # crosses a chunk boundary
    W = tripartite.draw_hidden_weights(700, 12, dtype=np.float64)[0]
    y = tripartite.attention(q, k, v, hidden_weights=W, causal=True)
    for t in (0, 5, c - 1, c, c + 5):
        y_t = tripartite.attention(q[t : t + 1], k[: t + 1], v[: t + 1], hidden_weights=W)
        # both sides compiled: the causal and the bidirectional error budgets add
        assert rel_err(y[t], y_t[0]) <= moderate_tol(np.float64, True) + moderate_tol(np.float64, False)


@pytest.mark.parametrize("causal", [False, True])
def test_large_norms_stay_finite(rng, causal):
    """|q~|^2 = |k~|^2 = 400: features span e^{+-100}; the log domain keeps every row finite."""
    q, k, v = (x.astype(np.float32) for x in moderate_inputs(rng, (20, 32), (20, 32), 4, norm2=400.0))
    W = tripartite.draw_hidden_weights(2000, 32, dtype=np.float32)[0]
    y = tripartite.attention(q, k, v, hidden_weights=W, causal=causal)
    y_ref = reference.random_feature_attention(q, k, v, W, causal=causal)  # the same float32 inputs
    assert np.isfinite(y).all()
    # log-rates of -300..-100 (|x~|^2 / 2 = 200 is formed in double), float32 dot products of
    # S ~ 135: log_rate_tol ~ 1.8e-4 (1e-3 before); measured over 40 seeds <= 5e-6 (the dot
    # products' partial sums of random directions stay well below S, unlike those of rows of W)
    S = max(dot_magnitude(x, W) for x in (q, k))
    assert rel_err(y, y_ref) <= log_rate_tol(np.float32, 32, S) + moderate_tol(np.float32, causal)


def test_empty_sequences():
    q = np.zeros((0, 4))
    assert tripartite.attention(q, np.ones((3, 4)), np.ones((3, 2)), n_hidden=10).shape == (0, 2)
    y, a = tripartite.attention(np.ones((2, 4)), np.zeros((0, 4)), np.zeros((0, 2)), n_hidden=10, return_astrocyte=True)
    assert y.shape == (2, 2) and not y.any() and not a.any()  # no key written: a = 0, y = 0


def test_dtype_follows_inputs(rng):
    q, k, v = moderate_inputs(rng, (5, 4), (5, 4), 2)
    assert tripartite.attention(q.astype(np.float32), k.astype(np.float32), v.astype(np.float32), n_hidden=64).dtype == np.float32
    assert tripartite.attention(q, k.astype(np.float32), v, n_hidden=64).dtype == np.float64
    assert tripartite.attention(np.ones((2, 3), int), np.ones((2, 3), int), np.ones((2, 2), int), n_hidden=8).dtype == np.float64


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("causal", [False, True], ids=["bidirectional", "causal"])
def test_hidden_bias_matches_closed_form(rng, dtype, causal):
    heads, L, D, Dv, m = 2, 37, 12, 5, 2500
    q, k, v = (x.astype(dtype) for x in moderate_inputs(rng, (heads, L, D), (heads, L, D), Dv))
    W = tripartite.draw_hidden_weights(m, D, heads=heads, seed=1, dtype=dtype) * 0.8
    b = rng.normal(-0.5, 0.3, (heads, m))
    y, a = tripartite.attention(q, k, v, hidden_weights=W, hidden_bias=b, causal=causal, return_astrocyte=True)
    y_ref, a_ref = reference.random_feature_attention(q, k, v, W, causal=causal, return_astrocyte=True, hidden_bias=b)
    assert rel_err(y, y_ref) <= moderate_tol(dtype, causal)
    assert np.max(np.abs(a / a_ref - 1)) <= moderate_tol(dtype, causal)


def _late_keys_from_W(rng, where, D, m, seed):
    """Float64 q, k, v (L = two chunks + 22 tokens, Dv = 3) and W (m, D) whose keys from the third
    chunk ("chunk-boundary") or from the middle of the second ("mid-chunk") on are rows of W
    (k~ = w_r: log-rate |w_r|^2 / 2 ~ D / 2 on that neuron), the earlier ones moderate."""
    c = _core.chunk_size
    start = 2 * c if where == "chunk-boundary" else c + c // 2
    L = 2 * c + 22
    W = tripartite.draw_hidden_weights(m, D, seed=seed, dtype=np.float64)[0]
    q, k, v = moderate_inputs(rng, (L, D), (L, D), 3)
    k[start:] = W[rng.choice(m, L - start, replace=False)] / math.sqrt(D**-0.5)  # k~ = k s^{1/2} = w_r
    return q, k, v, W


def _assert_matches_reference(q, k, v, W, causal):
    """Finite, and y and log a_t within the log-rates' rounding (log_rate_tol: rows of W as keys
    make one neuron dominate each large feature product, so nothing averages) of the reference."""
    tol = log_rate_tol(q.dtype.type, q.shape[-1], max(dot_magnitude(x, W) for x in (q, k))) + moderate_tol(q.dtype.type, causal)
    y, a = tripartite.attention(q, k, v, hidden_weights=W, causal=causal, return_astrocyte=True)
    y_ref, a_ref = reference.random_feature_attention(q, k, v, W, causal=causal, return_astrocyte=True)
    assert np.isfinite(y).all() and np.isfinite(a).all()
    assert rel_err(y, y_ref) <= tol
    assert np.max(np.abs(np.log(a) - np.log(a_ref))) <= tol


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("causal", [False, True], ids=["bidirectional", "causal"])
@pytest.mark.parametrize("where", ["chunk-boundary", "mid-chunk"])
def test_later_keys_far_larger_than_earlier_ones(seed, dtype, causal, where):
    """The last keys are rows of W (k~ = w_r: log-rate |w_r|^2/2 ~ D/2 = 100 on that neuron) while
    the earlier keys' log-rates stay below ~8. That exceeds a block's scale by more than its
    headroom (e^11 in float32, e^88 in float64), so the stored synapses are rescaled mid-sequence;
    the early keys' features then sit e^-90 below and must neither overflow nor poison the sums.
    Mid-chunk, the causal queries before the first large key see only small keys: the large keys
    later in their chunk must not push those below float range (they did, before the chunk was
    read at its own scale)."""
    # three chunks; blocks of 512 and a last one of 52 neurons
    rng = np.random.default_rng(seed)
    q, k, v, W = (x.astype(dtype) for x in _late_keys_from_W(rng, where, D=200, m=2100, seed=5))
    # S = |w_r|^2 ~ 220-260: log_rate_tol ~ 8e-4 in float32 (1e-4 before: seed 1 gave 1.45e-4),
    # 3e-12 in float64; measured over 40 seeds <= 1.5e-4 and 4.7e-13
    _assert_matches_reference(q, k, v, W, causal)


# The kernels' exp in base 2, per dtype: (lowest exponent of a normal number, bound on the relative
# error wherever the result is normal). float: a degree-5 polynomial on [-1/2, 1/2] after taking out
# the integer part, 1.7e-7 in float, plus the rounding of the final product. double: degree 11,
# 8.5e-18 from the polynomial, Horner's rounding and the final product's within 2 ulp (2 eps).
EXP2 = {np.float32: (-126, 2.5e-7), np.float64: (-1022, 2 * np.finfo(np.float64).eps)}


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_packing_of_weights_against_numpy(dtype):
    """The kernels' panels of hidden weights (square blocks transposed in registers) hold exactly
    the values NumPy's transpose puts there, and the plain loop's, for D a multiple of the vector
    width and not (the columns past it go one by one), from any first row."""
    panel = 16 if dtype == np.float32 else 8
    rng = np.random.default_rng(5)
    for m, D, r0, full in [(64, 64, 0, 64), (100, 64, 3, 96), (50, 13, 1, 48), (40, 3, 7, 32), (33, 9, 0, 32),
                           (16, 1, 0, 16), (20, 8, 4, 16)]:
        W = rng.standard_normal((m, D)).astype(dtype)
        want = W[r0:r0 + full].reshape(full // panel, panel, D).transpose(0, 2, 1)
        got = _core.pack_panels(W, r0, full)
        assert got.dtype == dtype and got.shape == want.shape
        assert np.array_equal(got, want), (m, D, r0, full)
        assert np.array_equal(_core.pack_panels(W, r0, full, reference=True), want), (m, D, r0, full)
    with pytest.raises(ValueError, match="multiple of"):
        _core.pack_panels(np.zeros((40, 4), dtype), 0, panel + 1)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_vector_exp2_against_numpy(dtype):
    """The kernels' exp2 within its bound of exp2 in double (float) or of glibc's exp2 (double)
    wherever the result is a normal number, exactly 1 at the shift, exactly 0 below the lowest
    exponent minus 1/2, monotone across that edge, and the same bits whichever path a value takes."""
    low_exp, bound = EXP2[dtype]
    rng = np.random.default_rng(11)
    y = np.concatenate([np.linspace(low_exp, 0.0, 300_001), rng.uniform(low_exp, 0.0, 100_000),
                        rng.uniform(-1.0, 0.0, 100_000)]).astype(dtype)
    out = _core.shifted_exp2(y, 0.0)
    assert out.dtype == dtype
    assert np.max(np.abs(out / np.exp2(y.astype(np.float64)) - 1)) <= bound
    shift = dtype(37.5)
    assert _core.shifted_exp2(np.array([shift]), shift)[0] == 1.0
    low = np.array([low_exp - 1, low_exp - 4, 5 * low_exp, -1e30], dtype=dtype)
    assert np.all(_core.shifted_exp2(low, 0.0) == 0.0)
    # monotone across the underflow edge
    edge = _core.shifted_exp2(np.linspace(low_exp - 3.0, low_exp + 2.0, 4001, dtype=dtype), 0.0)
    assert np.all(np.diff(edge) >= 0)
    # the same bits whichever path a value takes: groups of 4 vectors, single vectors, the tail
    for n in range(1, 70):
        assert np.array_equal(_core.shifted_exp2(y[:n], 0.0), out[:n]), n
    # up to the largest exponent, and no further (the exponent field would overflow: 2^128 read -0.0)
    top = np.finfo(dtype).maxexp - 1
    assert _core.shifted_exp2(np.array([top], dtype=dtype), 0.0)[0] == dtype(2.0) ** top
    for bad in (top + 0.5, np.nan):
        with pytest.raises(ValueError, match=rf"x - shift must be at most {top}"):
            _core.shifted_exp2(np.array([0.0, bad], dtype=dtype), 0.0)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("where", ["chunk-boundary", "mid-chunk"])
def test_causal_keys_beyond_the_read_headroom(seed, where):
    """float64, D = 500: the large keys' log-rates (~250) exceed the earlier ones by more than the
    causal read's double headroom (log(max double) / 4 ~ 177), so their chunk is read at a raised
    scale and the state written so far is brought to it in double before the intra-chunk sums."""
    q, k, v, W = _late_keys_from_W(np.random.default_rng(seed), where, D=500, m=1100, seed=7)
    # S = |w_r|^2 ~ 550-610: log_rate_tol ~ 1.1e-11 (1e-12 before: seeds 16 and 17 exceeded it);
    # measured over 40 seeds <= 1.1e-12
    _assert_matches_reference(q, k, v, W, True)
