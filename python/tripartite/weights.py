"""The hidden neurons' fixed random input weights W (MODEL.md section 1)."""

from __future__ import annotations

from typing import Any

import numpy as np

from . import _validate as V

FEATURE_MAPS = ("performer", "orthogonal")
_ROWS_PER_DRAW = 8192


def _head_rng(seed: int, head: int) -> np.random.Generator:
    # One independent stream per head: head i's weights do not depend on how many heads there are.
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(head,)))


def _orthogonal(rng: np.random.Generator, m: int, d: int) -> np.ndarray:
    """Block-orthogonal rows with chi(d)-distributed norms: each block of d rows is a Haar-random
    orthonormal basis, rescaled so every row has the norm of a d-dimensional Gaussian vector. The
    marginal law of each row is N(0, I), so E[phi(x).phi(y)] = exp(x.y) is unchanged."""
    n_blocks = -(-m // d)
    gauss = rng.standard_normal((n_blocks, d, d))
    q, r = np.linalg.qr(gauss)  # the peak: the blocks, LAPACK's copy of them, Q and R
    del gauss
    q *= np.sign(np.diagonal(r, axis1=-2, axis2=-1))[:, None, :]  # Haar measure
    del r
    rows = np.swapaxes(q, -1, -2)  # orthonormal rows
    rows *= np.sqrt(rng.chisquare(d, size=(n_blocks, d)))[..., None]
    return rows.reshape(n_blocks * d, d)[:m]


def _draw_bytes(m: int, d: int, heads: int, feature_map: str, itemsize: int) -> int:
    """Peak bytes of draw_hidden_weights: the result, then one head's float64 temporaries, a chunk
    of the performer draw or the peak of the orthogonal construction (four arrays of its
    n_blocks d <= m + d rows, see _orthogonal)."""
    temporaries = 4 * (m + d) * d * 8 if feature_map == "orthogonal" else min(m, _ROWS_PER_DRAW) * d * 8
    return heads * m * d * itemsize + temporaries


def draw_hidden_weights(
    n_hidden: int,
    d_key: int,
    *,
    heads: int = 1,
    seed: int = 0,
    feature_map: str = "performer",
    dtype: Any = np.float32,
) -> np.ndarray:
    """Draw the hidden neurons' input weights, one matrix per head.

    Parameters
    ----------
    n_hidden : int
        m, the number of hidden neurons per head.
    d_key : int
        D, the dimension of keys and queries.
    heads : int
        Number of heads (astrocytes); head ``i`` uses the ``i``-th child stream of ``seed``.
    seed : int
        Non-negative seed. The same seed gives the same weights in float32 and float64 (drawn in
        float64, then rounded).
    feature_map : {"performer", "orthogonal"}
        "performer": iid N(0, 1) entries, as in the paper. "orthogonal": block-orthogonal rows
        with chi-distributed norms (lower variance at equal m).
    dtype : float32 or float64

    Returns
    -------
    numpy.ndarray, shape (heads, n_hidden, d_key)
        Always with the heads axis: for unbatched (L, D) inputs to :func:`tripartite.attention`,
        pass ``W[0]``.
    """
    m = V.positive_int(n_hidden, "n_hidden")
    d = V.positive_int(d_key, "d_key")
    heads = V.positive_int(heads, "heads")
    seed = V.seed_value(seed)
    V.choice(feature_map, "feature_map", FEATURE_MAPS)
    dt = V.float_dtype(dtype)
    V.check_memory(_draw_bytes(m, d, heads, feature_map, dt.itemsize), "hidden_weights")
    out = np.empty((heads, m, d), dtype=dt)
    for i in range(heads):
        rng = _head_rng(seed, i)
        if feature_map == "orthogonal":
            out[i] = _orthogonal(rng, m, d)
            continue
        # In chunks of rows: the float64 draw stays small (the stream is the same as one draw).
        for r0 in range(0, m, _ROWS_PER_DRAW):
            r1 = min(m, r0 + _ROWS_PER_DRAW)
            out[i, r0:r1] = rng.standard_normal((r1 - r0, d))
    return out
