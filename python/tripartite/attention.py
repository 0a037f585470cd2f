"""The paper's steady state as a drop-in attention function."""

from __future__ import annotations

import math
import warnings
from typing import Any, Optional, Tuple, Union

import numpy as np

from . import _core
from . import _cuda
from . import _validate as V
from .weights import FEATURE_MAPS, draw_hidden_weights


def _check_leading_axes(arr: np.ndarray, trailing: int, batch: tuple, name: str, hint: str = "") -> None:
    """``arr``'s leading axes (all but the last ``trailing``) must broadcast to the (batch, head)
    axes of q, k, v without widening them."""
    lead = arr.shape[: arr.ndim - trailing]
    try:
        if len(lead) > len(batch) or np.broadcast_shapes(lead, batch) != batch:
            raise ValueError
    except ValueError:
        raise ValueError(
            f"{name} of shape {arr.shape} has leading axes {lead}, which do not broadcast to the leading (batch, head) "
            f"axes {batch} of q, k, v{hint}"
        ) from None


def _broadcast_weights(hidden_weights: Any, batch: tuple, m_expected: Optional[int], d: int
                       ) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    """The given weights, their shape checked (the values are scanned after the memory check, with
    the caller's indices), and for each of the prod(batch) heads the index of its weights in
    their (n_w, m, D) view, each distinct head's weights once (None when every head has its own):
    weights that broadcast over a batch axis are read in place by every sequence of the batch, not
    copied."""
    W = V.real_array(hidden_weights, "hidden_weights")
    if W.ndim < 2 or W.shape[-1] != d:
        raise ValueError(f"hidden_weights must have shape (..., m, D) with D = {d}, got {W.shape}")
    if W.shape[-2] < 1:
        raise ValueError(f"hidden_weights must have at least one row (m >= 1 hidden neuron), got shape {W.shape}")
    if m_expected is not None and W.shape[-2] != m_expected:
        raise ValueError(f"hidden_weights must have m = n_hidden = {m_expected} rows, got shape {W.shape}")
    _check_leading_axes(W, 2, batch, "hidden_weights", f": give shape (m, D) = {W.shape[-2:]} for all heads, or "
                        f"(..., m, D) with leading axes that broadcast to {batch}")
    n_w = math.prod(W.shape[:-2])
    if n_w == math.prod(batch):  # one set of weights per head: no index
        return W, None
    index = np.ascontiguousarray(np.broadcast_to(np.arange(n_w, dtype=np.int64).reshape(W.shape[:-2]), batch).reshape(-1))
    return W, index


def _underflowed(log_a: np.ndarray, log_u: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Queries where underflow may have changed a_t (and so y_t) by more than the dtype's rounding.

    The core computes every feature relative to its row's largest one; a key-query product far
    below both rows' maxima underflows. log_u bounds (in log) what those products can have
    contributed to a_t, so a query is safe when log_u - log a_t < log(eps)."""
    with np.errstate(invalid="ignore"):
        return log_u - log_a > math.log(np.finfo(dtype).eps)


def _recompute_underflowed(args: list, w_index: Optional[np.ndarray], key_mask: Optional[np.ndarray], input_scale: float,
                           causal: bool, threads: int, y: np.ndarray, log_a: np.ndarray, log_u: np.ndarray) -> int:
    """Recompute in double, head by head and in place, the float queries whose products underflow
    float (inputs with |x~|^2 in the thousands): their result is then the float rounding of the
    exact one for the same float inputs and weights, instead of a sum that lost its largest terms
    (or all of them: a row of zeros). A causal head is recomputed whole (query t needs keys <= t).
    Returns how many of the recomputed queries underflow even double."""
    lost = _underflowed(log_a, log_u, np.dtype(np.float32))
    W, bias, q, k, v = args
    wide = lambda x: None if x is None else x.astype(np.float64)  # noqa: E731
    still = 0
    for h in np.flatnonzero(lost.any(axis=1)):
        rows = np.arange(q.shape[1]) if causal else np.flatnonzero(lost[h])
        w = h if w_index is None else w_index[h]
        y64, la, lu = _core.attention_float64(
            wide(W[w : w + 1]), wide(None if bias is None else bias[h : h + 1]), wide(q[h : h + 1, rows]),
            wide(k[h : h + 1]), wide(v[h : h + 1]), input_scale, causal, threads,
            key_mask=None if key_mask is None else key_mask[h : h + 1],
        )
        y[h, rows], log_a[h, rows], log_u[h, rows] = y64[0], la[0], lu[0]
        still += int(_underflowed(la, lu, np.dtype(np.float64)).sum())
    return still


def _warn_underflow(lost: int, total: int) -> None:
    """Warn about the queries of a call whose products underflow even double."""
    if lost:
        warnings.warn(
            f"attention: for {lost} of {total} queries the key-query products underflow "
            "double precision (|q~|^2, |k~|^2 far in the thousands): their outputs may have lost terms",
            RuntimeWarning,
            stacklevel=3,  # the caller of attention()
        )


def memory_bytes(n_weights: int, m: int, d: int, heads: int, Lq: int, Lk: int, Dv: int, dtype: np.dtype,
                 causal: bool, threads: int) -> int:
    """Bytes :func:`attention` needs at its peak (its memory check, and the MiniLM study's): the
    weights (n_weights sets of m x D) and the flattened q, k, v, y; then the core's working set: the
    scaled q and k with their offsets, running sums (heads, Lq, Dv + 2) in double, per thread one
    block's partial readout (Lq, Dv + 2) and one task's (the task partials held at once: 16 MiB, or
    one per thread if that is more), plus a few MiB of per-thread block scratch (the synapses live
    there, one 512-neuron block at a time, never as an m x Dv array); causal: the values in double;
    float: one head's inputs in double, its scaled inputs and outputs, for queries that underflow
    float (see _recompute_underflowed). threads 0: all cores."""
    itemsize = np.dtype(dtype).itemsize
    return int(
        (n_weights * m * d + heads * (2 * (Lq + Lk) * d + (Lk + Lq) * Dv)) * itemsize
        + heads * (Lq + Lk) * 8 + heads * Lq * 8
        + ((m * d + 3 * (Lq + Lk) * d + Lk * Dv + Lq * Dv + m) * 8 if itemsize == 4 else 0)
        + (heads * Lk * (Dv + 1) * 8 if causal else 0)
        + (heads + 2 * (threads or _core.max_threads())) * Lq * (Dv + 2) * 8
        + (64 << 20)
    )


def attention(
    q: Any,
    k: Any,
    v: Any,
    *,
    n_hidden: Optional[int] = None,
    seed: int = 0,
    feature_map: str = "performer",
    causal: bool = False,
    scale: Optional[float] = None,
    num_threads: int = 0,
    hidden_weights: Any = None,
    hidden_bias: Any = None,
    return_astrocyte: bool = False,
    key_mask: Any = None,
    device: str = "cpu",
) -> Union[np.ndarray, Tuple[np.ndarray, np.ndarray]]:
    """Neuron-astrocyte attention: the paper's steady state, like ``scaled_dot_product_attention``.

    For every head, keys and values are written into the tripartite synapses by Hebbian
    plasticity (H = sum_tau v_tau phi(k~_tau)^T, g = sum_tau phi(k~_tau)); each query's astrocyte
    response a_t = g . phi(q~_t) divides the synapses: y_t = H phi(q~_t) / a_t. This is linear
    attention with m positive random features and tends to softmax attention as m grows (relative
    error ~ m^{-1/2} for moderate norms).

    Parameters
    ----------
    q : array_like, shape (..., Lq, D)
    k : array_like, shape (..., Lk, D)
    v : array_like, shape (..., Lk, Dv)
        Leading axes (batch, heads) broadcast against each other. float32 or float64; the result
        is float64 if any input is float64 (or integer), else float32 (float16 inputs are computed
        and returned in float32).
    n_hidden : int
        m, hidden neurons per head. Required unless ``hidden_weights`` is given.
    seed : int
        Seed of the hidden weights; each index of the (flattened) leading axes is its own head with
        its own weights, as drawn by :func:`tripartite.draw_hidden_weights`: with (batch, heads)
        axes, the same sequence at two places of the batch meets two different astrocytes. To give
        every sequence of a batch the same astrocyte per head, pass ``hidden_weights`` of shape
        (heads, m, D) (e.g. ``draw_hidden_weights(m, D, heads=H)``).
    feature_map : {"performer", "orthogonal"}
    causal : bool
        Query t sees keys tau <= t only (the streaming protocol). Needs Lq == Lk.
    scale : float, optional
        s, the factor of q.k (q~ = q s^{1/2}, k~ = k s^{1/2}); default 1/sqrt(D).
    num_threads : int
        0 = all cores. Results do not depend on it.
    hidden_weights : array_like, shape (..., m, D), optional
        Explicit hidden weights (broadcast over the leading axes) instead of drawing them. Weights
        that broadcast over an axis are read in place by every index of it, not copied. They are
        used in the dtype of the computation (float64 weights are rounded to float32 when q, k
        and v are float32). For unbatched (L, D) inputs pass one head's (m, D) matrix, e.g.
        ``draw_hidden_weights(m, D)[0]``; ``draw_hidden_weights`` draws in float32 unless asked
        for float64, while ``n_hidden``/``seed`` draw in the dtype of the computation. Weights for
        which max |W| sqrt(D max |x~|^2) exceeds 0.1/eps of that dtype (x = q, k) are refused: the
        log-rates W x~ would lose all precision.
    hidden_bias : array_like, shape (..., m), optional
        Per-neuron offsets b_r added to the log-rates (phi_r = m^{-1/2} exp(W_r x~ + b_r - |x~|^2/2));
        used by optimal positive random features. Broadcast over the leading axes. Only
        differences between neurons matter; a large common part costs float64 rounding of about
        eps |b| (|b| up to 4.5e14 is accepted).
    return_astrocyte : bool
        Also return a_t (float64, shape (..., Lq)), the astrocyte's response in the paper's units
        (it estimates Z_t = sum_tau exp(s q_t.k_tau)). It is computed in the log domain and
        exponentiated last: it is inf where the estimate itself overflows float64 and 0 where it
        underflows (log a_t below about -745: every score q~_t.k~_tau far below -700), as well as
        for a query that sees no key; y is unaffected by either. (Where Z_t overflows but the
        estimate does not, as at extreme norms where the estimate is heavy-tailed, a_t is finite.)

    key_mask : array_like of bool, shape (..., Lk), optional
        True for the keys that are written into the synapses (like the boolean ``attn_mask`` of
        ``scaled_dot_product_attention`` restricted to keys); False for padding, which no query
        sees. A query that sees no key gets y = 0 and a = 0. Broadcast over the leading axes.
    device : {"cpu", "cuda", "cuda:N"}
        Where the products run: the C++/OpenMP core, or the CUDA kernels of a build with
        ``TRIPARTITE_CUDA=ON`` (bidirectional only: ``causal=True`` is refused there;
        ``num_threads`` then plays no part). Both compute the same algorithm with their own block
        sizes and exponentials, so they agree to the dtype's precision, not bitwise; each gives the
        same bits on every call. See :func:`tripartite.cuda_available`.

    Returns
    -------
    y : numpy.ndarray, shape (..., Lq, Dv)
    a : numpy.ndarray, shape (..., Lq), only with ``return_astrocyte``
    """
    causal = V.flag(causal, "causal")
    return_astrocyte = V.flag(return_astrocyte, "return_astrocyte")
    gpu = _cuda.device_index(device)
    if gpu is not None and causal:
        raise ValueError(f"causal=True is not implemented on device={device!r} (the CUDA kernels compute the "
                         "bidirectional steady state): use device='cpu'")
    q = V.real_array(q, "q")
    k = V.real_array(k, "k")
    v = V.real_array(v, "v")
    batch = V.attention_shapes(q, k, v)
    d = q.shape[-1]
    if causal and q.shape[-2] != k.shape[-2]:
        raise ValueError(f"causal attention needs Lq == Lk, got q {q.shape} and k {k.shape}")
    V.choice(feature_map, "feature_map", FEATURE_MAPS)
    seed = V.seed_value(seed)
    threads = V.threads(num_threads)
    s = V.scale_value(scale, d)
    dtype = V.compute_dtype(q, k, v)
    heads = math.prod(batch)
    Lq, Lk, Dv = q.shape[-2], k.shape[-2], v.shape[-1]
    if hidden_weights is None:
        if n_hidden is None:
            raise ValueError("n_hidden (the number of hidden neurons m) is required unless hidden_weights is given")
        m = V.positive_int(n_hidden, "n_hidden")
        W, w_index = None, None
    else:
        W_given, w_index = _broadcast_weights(hidden_weights, batch,
                                              None if n_hidden is None else V.positive_int(n_hidden, "n_hidden"), d)
        W = W_given.reshape((-1,) + W_given.shape[-2:])  # (n_w, m, D), a view
        m = W.shape[-2]
    V.check_memory(memory_bytes(heads if W is None else len(W), m, d, heads, Lq, Lk, Dv, dtype, causal, threads),
                   "attention")
    if gpu is not None:  # a key mask that keeps every key is not sent: counting it errs on the safe side
        _cuda.check_device_memory(_core.attention_cuda_bytes(
            np.dtype(dtype).itemsize, heads, heads if W is None else len(W), m, d, Lq, Lk, Dv, hidden_bias is not None,
            W is not None and w_index is not None, key_mask is not None), gpu, "attention")
    # the values, once the sizes are known to fit (a broadcast view's scan makes temporaries of its full size)
    for name, x in (("q", q), ("k", k)):
        V.finite(x, name, threads)
    v_max = V.finite(v, "v", threads, magnitude=True)
    norm2 = {"q": V.input_norms(q, "q", s, dtype), "k": V.input_norms(k, "k", s, dtype)}
    V.value_magnitude(v, "v", dtype, v_max)
    if W is not None:
        w_max = V.finite(W_given, "hidden_weights", threads, dtype, magnitude=True)  # before broadcasting: each value once
        for name in ("q", "k"):
            V.log_rate_terms(w_max, norm2[name], name, d, dtype)

    bias = None
    if hidden_bias is not None:
        b = V.real_array(hidden_bias, "hidden_bias")
        if b.ndim < 1 or b.shape[-1] != m:
            raise ValueError(f"hidden_bias must have shape (..., m) with m = {m}, got {b.shape}")
        _check_leading_axes(b, 1, batch, "hidden_bias", f": give shape (m,) = ({m},) for all heads, or (..., m) with "
                            f"leading axes that broadcast to {batch}")
        V.bias_magnitude(b, V.finite(b, "hidden_bias", threads, dtype, magnitude=True))  # before broadcasting
        bias = np.ascontiguousarray(np.broadcast_to(b, batch + (m,)).reshape((heads, m)), dtype=dtype)

    mask = None
    if key_mask is not None:
        km = np.asarray(key_mask)
        if km.dtype != np.bool_:
            raise ValueError(f"key_mask must be a boolean array (True: the key is written), got dtype {km.dtype}")
        if km.ndim < 1 or km.shape[-1] != Lk:
            raise ValueError(f"key_mask must have shape (..., Lk) with Lk = {Lk} (from k), got {km.shape}")
        _check_leading_axes(km, 1, batch, "key_mask")
        km = np.broadcast_to(km, batch + (Lk,))
        if not km.all():
            mask = np.ascontiguousarray(km.reshape((heads, Lk)), dtype=np.uint8)

    out_shape = batch + (Lq, Dv)
    if heads == 0 or Lq == 0 or Dv == 0:
        y = np.zeros(out_shape, dtype=dtype)
        return (y, np.zeros(batch + (Lq,))) if return_astrocyte else y
    if W is None:
        W = draw_hidden_weights(m, d, heads=heads, seed=seed, feature_map=feature_map, dtype=dtype)
    flat = lambda x, shape: np.ascontiguousarray(np.broadcast_to(x, batch + shape).reshape((heads,) + shape), dtype=dtype)  # noqa: E731
    args = [np.ascontiguousarray(W, dtype=dtype), bias, flat(q, (Lq, d)), flat(k, (Lk, d)), flat(v, (Lk, Dv))]
    if gpu is None:
        kernel = _core.attention_float32 if dtype == np.float32 else _core.attention_float64
        y, log_a, log_u = kernel(*args, math.sqrt(s), causal, threads, w_index=w_index, key_mask=mask)
    else:
        kernel = _core.attention_cuda_float32 if dtype == np.float32 else _core.attention_cuda_float64
        y, log_a, log_u, _ = kernel(*args, math.sqrt(s), gpu, w_index=w_index, key_mask=mask)
    if dtype == np.float32:
        lost = _recompute_underflowed(args, w_index, mask, math.sqrt(s), causal, threads, y, log_a, log_u)
    else:
        lost = int(_underflowed(log_a, log_u, dtype).sum())
    _warn_underflow(lost, log_a.size)
    y = y.reshape(out_shape)
    if not return_astrocyte:
        return y
    with np.errstate(over="ignore"):
        a = np.exp(log_a).reshape(batch + (Lq,))
    return y, a
