"""Slow, readable NumPy references, in float64. The compiled kernels are tested against these.

- :func:`softmax_attention`: the transformer's attention.
- :func:`softmax_normaliser`: its denominator Z_t = sum_tau exp(s q_t . k_tau), which the
  astrocyte's response estimates.
- :func:`random_feature_attention`: the paper's steady state (MODEL.md section 1) for given hidden
  weights W.
- :func:`simulate`: the continuous-time network (MODEL.md section 2), stepped with explicit Euler or
  classical Runge-Kutta, one time step at a time.
"""

from __future__ import annotations

import math
import warnings
from typing import Dict, List, Optional, Tuple, Union

import numpy as np
from numpy.typing import ArrayLike

from . import _validate as V

__all__ = ["softmax_attention", "softmax_normaliser", "random_feature_attention", "log_features", "simulate"]

# The checks, all at the top of the public functions: real, finite arrays of consistent shapes with
# D >= 1 features and m >= 1 hidden neurons (as tripartite.attention requires; L = 0 tokens is
# allowed), and, as attention and the network refuse them, keys and queries whose log-rates would
# lose all precision in float64 (V.input_norms) and hidden biases beyond V.bias_magnitude.
_F64 = np.dtype(np.float64)


def _matrix(x: ArrayLike, name: str, width: Optional[int] = None, width_name: str = "D") -> np.ndarray:
    """``x`` as a finite float64 (rows, width) matrix."""
    x = V.real_array(x, name)
    if x.ndim != 2 or (width is not None and x.shape[1] != width):
        expect = f"(rows, {width_name})" + (f" with {width_name} = {width} (from hidden_weights)" if width is not None else "")
        raise ValueError(f"{name} must have shape {expect}, got {x.shape}")
    V.finite(x, name)
    return x.astype(np.float64)


def _batched(x: ArrayLike, name: str, axes: str) -> np.ndarray:
    """``x`` as a float64 array of shape (..., <axes>): real, finite, at least 2-D."""
    arr = V.real_array(x, name)
    if arr.ndim < 2:
        raise ValueError(f"{name} must have shape (..., {axes}), got {arr.shape}")
    V.finite(arr, name)
    return arr.astype(np.float64)


def _has_features(x: np.ndarray, name: str) -> None:
    """D >= 1, as :func:`tripartite.attention` requires (s = 1/sqrt(D) needs D > 0)."""
    if x.shape[-1] < 1:
        raise ValueError(f"{name} must have at least one feature (D >= 1), got shape {x.shape}")


def _weights(hidden_weights: ArrayLike, hidden_bias: Optional[ArrayLike], d: Optional[int] = None,
             source: str = "") -> Tuple[np.ndarray, Optional[np.ndarray]]:
    """hidden_weights (..., m, D) with m >= 1 and D = ``d`` (from ``source``), and hidden_bias
    (..., m) or None, checked as :func:`tripartite.attention` checks them; ``d=None``: one head's
    weights (m, D) with D >= 1 and bias (m,), as :func:`simulate` takes them."""
    batched = d is not None
    if batched:
        W = _batched(hidden_weights, "hidden_weights", "m, D")
        if W.shape[-1] != d:
            raise ValueError(f"hidden_weights must have shape (..., m, D) with D = {d} (from {source}), got {W.shape}")
    else:
        W = _matrix(hidden_weights, "hidden_weights", None, "D")
        _has_features(W, "hidden_weights")
    if W.shape[-2] < 1:
        raise ValueError(f"hidden_weights must have at least one row (m >= 1 hidden neuron), got shape {W.shape}")
    if hidden_bias is None:
        return W, None
    m = W.shape[-2]
    b = V.real_array(hidden_bias, "hidden_bias")
    if batched and (b.ndim < 1 or b.shape[-1] != m):
        raise ValueError(f"hidden_bias must have shape (..., m) with m = {m} (from hidden_weights), got {b.shape}")
    if not batched and b.shape != (m,):
        raise ValueError(f"hidden_bias must have shape (m,) = ({m},), got {b.shape}")
    V.bias_magnitude(b, V.finite(b, "hidden_bias", magnitude=True))
    return W, b.astype(np.float64)


def _broadcast(*named: Tuple[str, tuple]) -> None:
    """The leading axes of (name, shape) pairs must broadcast, or a ValueError names them all."""
    try:
        np.broadcast_shapes(*(shape for _, shape in named))
    except ValueError:
        given = ", ".join(f"{name} {shape}" for name, shape in named)
        raise ValueError(f"the leading axes of the inputs must broadcast against each other, got {given}") from None


def _attention_inputs(q: ArrayLike, k: ArrayLike, v: Optional[ArrayLike] = None, *, scale: Optional[float] = None,
                      causal: bool = False, key_mask: Optional[ArrayLike] = None,
                      weights: Optional[Tuple[ArrayLike, Optional[ArrayLike]]] = None) -> tuple:
    """q (..., Lq, D), k (..., Lk, D), v (..., Lk, Dv) and key_mask (..., Lk) checked (real, finite,
    D >= 1, consistent last axes, leading axes that broadcast) and returned as float64 (the mask as
    bool), with the scale s. ``weights``: (hidden_weights, hidden_bias) of the random features,
    checked too (:func:`_weights`), their leading axes broadcast with the others', and q and k
    checked as attention checks them (V.input_norms); without, q and k must give finite scores
    (:func:`tripartite._validate.scores_fit`). Returns q, k, v, key_mask, s, W, b (W and b None without weights)."""
    q, k = _batched(q, "q", "Lq, D"), _batched(k, "k", "Lk, D")
    if v is not None:
        v = _batched(v, "v", "Lk, Dv")
    V.attention_axes(q, k, v)
    lead: List[Tuple[str, tuple]] = [("q", q.shape[:-2]), ("k", k.shape[:-2])]
    if v is not None:
        lead.append(("v", v.shape[:-2]))
    if key_mask is not None:
        key_mask = np.asarray(key_mask)
        if key_mask.dtype != bool or key_mask.ndim < 1 or key_mask.shape[-1] != k.shape[-2]:
            raise ValueError(f"key_mask must be a bool array of shape (..., Lk) with Lk = {k.shape[-2]} (from k), "
                             f"got dtype {key_mask.dtype} and shape {key_mask.shape}")
        lead.append(("key_mask", key_mask.shape[:-1]))
    W = b = None
    if weights is not None:
        W, b = _weights(weights[0], weights[1], q.shape[-1], "q")
        lead.append(("hidden_weights", W.shape[:-2]))
        if b is not None:
            lead.append(("hidden_bias", b.shape[:-1]))
    _broadcast(*lead)
    if V.flag(causal, "causal") and q.shape[-2] != k.shape[-2]:
        raise ValueError(f"causal attention needs Lq == Lk, got q {q.shape} and k {k.shape}")
    s = V.scale_value(scale, q.shape[-1])
    if weights is not None:
        V.input_norms(q, "q", s, _F64)
        V.input_norms(k, "k", s, _F64)
    else:
        V.scores_fit(q, k, s, _F64)
    return q, k, v, key_mask, s, W, b


def _visible(scores_shape: tuple, causal: bool, key_mask: Optional[np.ndarray]) -> Optional[np.ndarray]:
    """Which (query, key) pairs count: the causal triangle and the written keys (None: all)."""
    mask = None
    if causal:
        mask = np.tril(np.ones(scores_shape[-2:], dtype=bool))
    if key_mask is not None:
        keys = key_mask[..., None, :]
        mask = keys if mask is None else mask & keys
    return mask


def _divide(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den[..., None], and 0 for a query that sees no key (den = 0), as attention returns."""
    den = den[..., None]
    out = np.zeros(np.broadcast_shapes(num.shape, den.shape))
    return np.divide(num, den, out=out, where=den > 0)


def softmax_attention(q: ArrayLike, k: ArrayLike, v: ArrayLike, scale: Optional[float] = None, causal: bool = False,
                      key_mask: Optional[ArrayLike] = None) -> np.ndarray:
    """Softmax attention ``softmax(s q k^T) v`` over the last two axes, s = 1/sqrt(D) by default.

    Shapes: q (..., Lq, D), k (..., Lk, D), v (..., Lk, Dv) -> (..., Lq, Dv), D >= 1. ``causal``
    masks keys after the query (needs Lq == Lk); ``key_mask`` (..., Lk), True for the keys that
    count, masks padding, as in :func:`tripartite.attention`. A query that sees no key (Lk = 0, or
    every key masked) gets 0. Inputs whose scores could overflow float64 (max(1, s) |q| |k| beyond
    its largest value) are refused.
    """
    q, k, v, key_mask, s, _, _ = _attention_inputs(q, k, v, scale=scale, causal=causal, key_mask=key_mask)
    scores = (q @ np.swapaxes(k, -1, -2)) * s
    mask = _visible(scores.shape, causal, key_mask)
    if mask is not None:
        scores = np.where(mask, scores, -np.inf)
    top = scores.max(axis=-1, keepdims=True, initial=-np.inf)
    weights = np.exp(scores - np.where(np.isfinite(top), top, 0.0))  # a row with no key: all 0
    return _divide(weights, weights.sum(axis=-1)) @ v


def softmax_normaliser(q: ArrayLike, k: ArrayLike, scale: Optional[float] = None) -> np.ndarray:
    """Z_t = sum_tau exp(s q_t . k_tau), the softmax denominator the astrocyte estimates.

    q (..., Lq, D), k (..., Lk, D) -> (..., Lq). Z_t is inf where it overflows float64 (scores
    above about 709), as the astrocyte's a_t of :func:`tripartite.attention` is; inputs whose
    scores themselves could overflow are refused, as in :func:`softmax_attention`.
    """
    q, k, _, _, s, _, _ = _attention_inputs(q, k, scale=scale)
    with np.errstate(over="ignore"):
        return np.exp((q @ np.swapaxes(k, -1, -2)) * s).sum(axis=-1)


def log_features(x: ArrayLike, hidden_weights: ArrayLike, scale: Optional[float] = None,
                 hidden_bias: Optional[ArrayLike] = None) -> np.ndarray:
    """log phi(x~) = W x~ + b - |x~|^2 / 2 - log(m) / 2, with x~ = x sqrt(s).

    x (..., L, D), hidden_weights (..., m, D), hidden_bias (..., m) or None -> (..., L, m), with
    D >= 1 and m >= 1. As :func:`tripartite.attention`, it refuses x with |x~|^2 beyond 0.1 / eps
    (the log-rates would lose all precision) and |b| beyond that too.
    """
    x = _batched(x, "x", "L, D")
    _has_features(x, "x")
    W, b = _weights(hidden_weights, hidden_bias, x.shape[-1], "x")
    _broadcast(("x", x.shape[:-2]), ("hidden_weights", W.shape[:-2]),
               *([("hidden_bias", b.shape[:-1])] if b is not None else []))
    V.input_norms(x, "x", V.scale_value(scale, x.shape[-1]), _F64)
    return _log_features(x, W, scale, b)


def _log_features(x: np.ndarray, W: np.ndarray, scale: Optional[float], hidden_bias: Optional[np.ndarray]) -> np.ndarray:
    """:func:`log_features` without its checks (for callers that checked their inputs)."""
    x = np.asarray(x, dtype=np.float64)
    W = np.asarray(W, dtype=np.float64)
    xs = x * math.sqrt(V.scale_value(scale, x.shape[-1]))
    m = W.shape[-2]
    logits = xs @ np.swapaxes(W, -1, -2) - 0.5 * (xs * xs).sum(axis=-1, keepdims=True) - 0.5 * math.log(m)
    if hidden_bias is not None:
        logits = logits + np.asarray(hidden_bias, dtype=np.float64)[..., None, :]
    return logits


def random_feature_attention(
    q: ArrayLike,
    k: ArrayLike,
    v: ArrayLike,
    hidden_weights: ArrayLike,
    scale: Optional[float] = None,
    causal: bool = False,
    return_astrocyte: bool = False,
    hidden_bias: Optional[ArrayLike] = None,
    key_mask: Optional[ArrayLike] = None,
) -> Union[np.ndarray, Tuple[np.ndarray, np.ndarray]]:
    """The paper's steady state: y_t = H phi(q~_t) / a_t with H = sum_tau v_tau phi(k~_tau)^T and
    a_t = g . phi(q~_t), g = sum_tau phi(k~_tau).

    Shapes: q (..., Lq, D), k (..., Lk, D), v (..., Lk, Dv), hidden_weights (..., m, D),
    hidden_bias (..., m) or None (per-neuron log-rate offsets), key_mask (..., Lk) or None (True
    for the keys that are written, as in :func:`tripartite.attention`). Returns y (..., Lq, Dv),
    and with ``return_astrocyte`` also a_t (..., Lq) in true units. A query that sees no key (Lk = 0,
    or every key masked) gets y = 0 and a = 0. Inputs are checked as attention checks them (D >= 1,
    m >= 1, |q~|^2, |k~|^2 and |b| at most 0.1 / eps(double)).

    Features are formed in the log domain: the keys' log-features are shifted by their overall
    maximum (a constant that cancels in y and is added back to log a_t), each query's by its own
    maximum; causal, each key by its own maximum and each query's sum by the largest of those
    among the keys it sees. A query whose every key-query product underflows double even so
    (|q~|^2, |k~|^2 in the hundreds, far apart) gets y = 0 and a = 0 with a RuntimeWarning, as
    attention warns.
    """
    q, k, v, key_mask, _, W, b = _attention_inputs(q, k, v, scale=scale, causal=causal, key_mask=key_mask,
                                                   weights=(hidden_weights, hidden_bias))
    return_astrocyte = V.flag(return_astrocyte, "return_astrocyte")
    log_k = _log_features(k, W, scale, b)
    log_q = _log_features(q, W, scale, b)
    if key_mask is not None:  # a key that is not written: log-features -inf, features 0
        log_k = np.where(key_mask[..., :, None], log_k, -np.inf)
    finite = lambda x: np.where(np.isfinite(x), x, 0.0)  # noqa: E731  (no key: features all 0)
    shift_q = log_q.max(axis=-1, keepdims=True)
    phi_q = np.exp(log_q - shift_q)
    if causal:
        # Each key relative to its own maximum M_tau, and each query's sum relative to the largest
        # M_tau it sees, P_t = max_{tau <= t} M_tau: with one shift for all keys, a later key far
        # above the earlier ones would underflow every key an earlier query sees.
        key_top = log_k.max(axis=-1, initial=-np.inf)  # (..., Lk)
        phi_k = np.exp(log_k - finite(key_top)[..., None])
        prefix = np.maximum.accumulate(key_top, axis=-1)  # (..., Lq): P_t (Lq == Lk)
        visible = np.tril(np.ones((q.shape[-2], k.shape[-2]), dtype=bool))
        weights = np.exp(np.where(visible, key_top[..., None, :] - finite(prefix)[..., :, None], -np.inf))
        scores = (phi_q @ np.swapaxes(phi_k, -1, -2)) * weights  # (..., Lq, Lk): phi(q_t) . phi(k_tau) e^{-P_t}
        num = scores @ v
        den = scores.sum(axis=-1)
        shift = finite(prefix)
        sees_a_key = np.isfinite(prefix)  # (..., Lq)
    else:
        top_k = log_k.max(axis=(-2, -1), keepdims=True, initial=-np.inf)
        shift_k = finite(top_k)
        phi_k = np.exp(log_k - shift_k)
        H = np.swapaxes(v, -1, -2) @ phi_k  # (..., Dv, m): the tripartite synapses
        g = phi_k.sum(axis=-2)  # (..., m): neuron-to-astrocyte weights
        num = phi_q @ np.swapaxes(H, -1, -2)
        den = phi_q @ g[..., None]
        den = den[..., 0]
        shift = shift_k[..., 0]
        sees_a_key = np.isfinite(top_k[..., 0])  # (..., 1)
    lost = int(np.count_nonzero((den == 0) & sees_a_key))
    if lost:
        warnings.warn(
            f"random_feature_attention: for {lost} of {den.size} queries every key-query product underflows "
            "double precision (|q~|^2, |k~|^2 in the hundreds or more, and far apart): their outputs are 0",
            RuntimeWarning,
            stacklevel=2,
        )
    y = _divide(num, den)
    if not return_astrocyte:
        return y
    with np.errstate(over="ignore"):
        a = den * np.exp(shift_q[..., 0] + shift)
    return y, a


def _true_units_fit(log_k: np.ndarray, log_q: np.ndarray, stream: bool, eta: float) -> None:
    """:func:`simulate` steps the network in true units: every rate phi = exp(log phi) must be
    finite, and each query's calcium, about eta sum_tau phi(k~_tau) . phi(q~_t) over the keys it
    reads (the steady state; the windows' lags scale it by factors of order 1), must lie in
    float64's normal range, or the read would return 0 (or NaN) without a word."""
    hi, lo = math.log(np.finfo(np.float64).max), math.log(np.finfo(np.float64).tiny)
    hint = ("simulate works in true units, for moderate inputs: rescale them, or use tripartite.NeuronAstrocyteNetwork, "
            "which works in the log domain")
    for name, log_x in (("keys", log_k), ("queries", log_q)):
        if log_x.size and log_x.max() > hi:
            row = int(np.unravel_index(np.argmax(log_x), log_x.shape)[0])
            raise ValueError(f"{name} is too large: the rates phi({name}[{row}]~) reach exp({log_x.max():.4g}), beyond "
                             f"float64's largest value exp({hi:.4g}) ({hint})")
    for t in range(len(log_q)):
        seen = log_k[: t + 1] if stream else log_k
        if not len(seen):
            continue
        products = seen + log_q[t]  # log phi_r(k~_tau) phi_r(q~_t), (keys, m)
        top = products.max()
        log_a = math.log(eta) + top + math.log(np.exp(products - top).sum())
        if not lo <= log_a <= hi:
            raise ValueError(
                f"keys and queries are too large: the calcium of query {t}, about eta sum_tau phi(k~_tau) . phi(q~_t) = "
                f"exp({log_a:.4g}), {'underflows' if log_a < lo else 'overflows'} float64 (its normal numbers span "
                f"exp({lo:.4g}) to exp({hi:.4g})) ({hint})"
            )


def simulate(
    keys: ArrayLike,
    values: ArrayLike,
    queries: ArrayLike,
    hidden_weights: ArrayLike,
    *,
    stream: bool = False,
    scale: Optional[float] = None,
    tau_hidden: float = 10.0,
    tau_astro: float = 100.0,
    t_write: float = 100.0,
    t_read: float = 1000.0,
    eta: float = 1.0,
    leak: float = 0.0,
    dt: float = 1.0,
    integrator: str = "euler",
    hidden_bias: Optional[ArrayLike] = None,
    record_every: Optional[int] = None,
) -> Union[Tuple[np.ndarray, np.ndarray], Tuple[np.ndarray, np.ndarray, Dict[str, np.ndarray]]]:
    """Step the continuous-time network of one head, one dt at a time (MODEL.md section 2);
    note the argument order: ``simulate(keys, values, queries, W)``, unlike ``net.stream(queries,
    keys, values)`` and ``attention(q, k, v)``.

    keys (L, D), values (L, Dv), queries (Lq, D), hidden_weights (m, D), in that order: keys and
    values first, as they are written first (all three are 2-D, so passing them in the
    ``stream``/``attention`` order is not caught when D == Dv). With ``stream=False``
    all tokens are written, then all queries read; with ``stream=True`` token t is written, then
    query t read. Returns the outputs y (Lq, Dv) and the astrocyte's calcium a (Lq,), each at the
    end of its query's read window. ``integrator`` is "euler" or "rk4". Float64, true units (no
    log-domain rescaling): meant for moderate inputs and small networks. Parameters and inputs are
    checked as :class:`tripartite.NeuronAstrocyteNetwork` checks them (times > 0, leak >= 0, each
    window within 1e±100 of each time constant, a stable dt that divides t_write and t_read; finite keys, values and queries, |x~|^2 at most
    0.1 / eps(double), |values| at most sqrt of double's largest; D >= 1, m >= 1, |b| bounded);
    ``record_every`` is a positive integer. Inputs whose rates or calcium leave float64's range
    in true units (the network, in the log domain, follows them) are refused, not answered with 0.

    With ``record_every=n`` it also returns a dict of traces sampled every n steps (including
    t = 0): "t" (ms), "calcium", "hidden" (k, m), "astrocyte_weights" (k, m), "synapses"
    (k, Dv, m), "outputs" (k, Dv): the output neurons' rates: clamped to v during writes,
    y = H h / a during reads (and at t = 0; 0 where a = 0).
    """
    # The network's rules (the checks of NeuronAstrocyteNetwork): positive times, a stable dt that
    # divides both windows, and inputs of one head with consistent shapes.
    V.choice(integrator, "integrator", ("euler", "rk4"))
    params = V.network_params(tau_hidden, tau_astro, t_write, t_read, eta, leak)
    n_write, n_read = V.time_steps(V.positive(dt, "dt", "ms"), integrator, params, exact_available=False)
    if record_every is not None:
        V.positive_int(record_every, "record_every")
    stream = V.flag(stream, "stream")
    W, hidden_bias = _weights(hidden_weights, hidden_bias)
    m, D = W.shape
    keys, queries = _matrix(keys, "keys", D), _matrix(queries, "queries", D)
    values = _matrix(values, "values", None, "Dv")
    Dv = values.shape[1]
    if len(values) != len(keys):
        raise ValueError(f"values must have as many rows as keys ({len(keys)}), got {values.shape}")
    if stream and len(queries) != len(keys):
        raise ValueError(f"stream=True needs as many queries as keys ({len(keys)}), got {len(queries)}")
    s = V.scale_value(scale, D)
    V.input_norms(keys, "keys", s, _F64)
    V.input_norms(queries, "queries", s, _F64)
    V.value_magnitude(values, "values", _F64)
    log_k, log_q = _log_features(keys, W, s, hidden_bias), _log_features(queries, W, s, hidden_bias)
    _true_units_fit(log_k, log_q, stream, params["eta"])
    phi_k, phi_q = np.exp(log_k), np.exp(log_q)  # the hidden neurons' target rates, token by token

    # The state: hidden rates h (m), synapses H (Dv, m), astrocyte weights g (m), calcium a.
    state = (np.zeros(m), np.zeros((Dv, m)), np.zeros(m), 0.0)

    def derivative(state, u, v, writing):
        h, H, g, a = state
        dh = (u - h) / tau_hidden
        if writing:
            dH = (eta / t_write) * np.outer(v, h) - leak * H
            dg = (eta / t_write) * h - leak * g
        else:  # no plasticity while reading
            dH, dg = np.zeros_like(H), np.zeros_like(g)
        da = (-a + g @ h) / tau_astro
        return dh, dH, dg, da

    def add(state, deriv, step):
        return tuple(x + step * dx for x, dx in zip(state, deriv))

    def step(state, u, v, writing):
        if integrator == "euler":
            return add(state, derivative(state, u, v, writing), dt)
        k1 = derivative(state, u, v, writing)
        k2 = derivative(add(state, k1, dt / 2), u, v, writing)
        k3 = derivative(add(state, k2, dt / 2), u, v, writing)
        k4 = derivative(add(state, k3, dt), u, v, writing)
        return tuple(x + dt / 6 * (d1 + 2 * d2 + 2 * d3 + d4) for x, d1, d2, d3, d4 in zip(state, k1, k2, k3, k4))

    trace = {name: [] for name in ("t", "calcium", "hidden", "astrocyte_weights", "synapses", "outputs")}
    clock = [0]

    def record(state, v=None):
        """A sample; v: the value the output neurons are clamped to (a write window), or None."""
        h, H, g, a = state
        trace["t"].append(clock[0] * dt)
        trace["calcium"].append(a)
        trace["hidden"].append(h)
        trace["astrocyte_weights"].append(g)
        trace["synapses"].append(H)
        trace["outputs"].append(np.array(v) if v is not None else H @ h / a if a > 0 else np.zeros(Dv))

    def window(state, u, v, writing, n_steps):
        for _ in range(n_steps):
            state = step(state, u, v, writing)
            clock[0] += 1
            if record_every and clock[0] % record_every == 0:
                record(state, v if writing else None)
        return state

    if record_every:
        record(state)

    def read(state, t):
        state = window(state, phi_q[t], None, False, n_read)
        h, H, _, a = state
        return state, (H @ h / a if a > 0 else np.zeros(Dv)), a

    outputs, calcium = np.zeros((len(queries), Dv)), np.zeros(len(queries))
    if stream:
        for t in range(len(queries)):
            state = window(state, phi_k[t], values[t], True, n_write)
            state, outputs[t], calcium[t] = read(state, t)
    else:
        for t in range(len(keys)):
            state = window(state, phi_k[t], values[t], True, n_write)
        for t in range(len(queries)):
            state, outputs[t], calcium[t] = read(state, t)
    if record_every:
        return outputs, calcium, {name: np.array(samples) for name, samples in trace.items()}
    return outputs, calcium
