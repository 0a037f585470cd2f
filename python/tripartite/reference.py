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
from typing import Optional, Tuple

import numpy as np

from . import _validate as V

__all__ = ["softmax_attention", "softmax_normaliser", "random_feature_attention", "log_features", "simulate"]


def _matrix(x, name: str, width: Optional[int] = None, width_name: str = "D") -> np.ndarray:
    """``x`` as a float64 (rows, width) matrix."""
    x = V.real_array(x, name)
    if x.ndim != 2 or (width is not None and x.shape[1] != width):
        expect = f"(rows, {width_name})" + (f" with {width_name} = {width} (from hidden_weights)" if width is not None else "")
        raise ValueError(f"{name} must have shape {expect}, got {x.shape}")
    return x.astype(np.float64)


def _batched(x, name: str, axes: str) -> np.ndarray:
    """``x`` as a float64 array of shape (..., <axes>): real, finite, at least 2-D."""
    arr = V.real_array(x, name)
    if arr.ndim < 2:
        raise ValueError(f"{name} must have shape (..., {axes}), got {arr.shape}")
    V.finite(arr, name)
    return arr.astype(np.float64)


def _broadcast(*named) -> None:
    """The leading axes of (name, shape) pairs must broadcast, or a ValueError names them all."""
    try:
        np.broadcast_shapes(*(shape for _, shape in named))
    except ValueError:
        given = ", ".join(f"{name} {shape}" for name, shape in named)
        raise ValueError(f"the leading axes of the inputs must broadcast against each other, got {given}") from None


def _attention_inputs(q, k, v=None, causal: bool = False, key_mask=None):
    """q (..., Lq, D), k (..., Lk, D), v (..., Lk, Dv) and key_mask (..., Lk) checked (real, finite,
    consistent last axes, leading axes that broadcast) and returned as float64 (the mask as bool)."""
    q, k = _batched(q, "q", "Lq, D"), _batched(k, "k", "Lk, D")
    if k.shape[-1] != q.shape[-1]:
        raise ValueError(f"k must have shape (..., Lk, D) with D = {q.shape[-1]} (from q), got {k.shape}")
    lead = [("q", q.shape[:-2]), ("k", k.shape[:-2])]
    if v is not None:
        v = _batched(v, "v", "Lk, Dv")
        if v.shape[-2] != k.shape[-2]:
            raise ValueError(f"v must have shape (..., Lk, Dv) with Lk = {k.shape[-2]} (from k), got {v.shape}")
        lead.append(("v", v.shape[:-2]))
    if key_mask is not None:
        key_mask = np.asarray(key_mask)
        if key_mask.dtype != bool or key_mask.ndim < 1 or key_mask.shape[-1] != k.shape[-2]:
            raise ValueError(f"key_mask must be a bool array of shape (..., Lk) with Lk = {k.shape[-2]} (from k), "
                             f"got dtype {key_mask.dtype} and shape {key_mask.shape}")
        lead.append(("key_mask", key_mask.shape[:-1]))
    _broadcast(*lead)
    if V.flag(causal, "causal") and q.shape[-2] != k.shape[-2]:
        raise ValueError(f"causal attention needs Lq == Lk, got q {q.shape} and k {k.shape}")
    return q, k, v, key_mask


def _visible(scores_shape, causal: bool, key_mask) -> Optional[np.ndarray]:
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


def softmax_attention(q, k, v, scale: Optional[float] = None, causal: bool = False, key_mask=None) -> np.ndarray:
    """Softmax attention ``softmax(s q k^T) v`` over the last two axes, s = 1/sqrt(D) by default.

    Shapes: q (..., Lq, D), k (..., Lk, D), v (..., Lk, Dv) -> (..., Lq, Dv). ``causal`` masks
    keys after the query (needs Lq == Lk); ``key_mask`` (..., Lk), True for the keys that count,
    masks padding, as in :func:`tripartite.attention`. A query that sees no key (Lk = 0, or every
    key masked) gets 0.
    """
    q, k, v, key_mask = _attention_inputs(q, k, v, causal, key_mask)
    scores = (q @ np.swapaxes(k, -1, -2)) * V.scale_value(scale, q.shape[-1])
    mask = _visible(scores.shape, causal, key_mask)
    if mask is not None:
        scores = np.where(mask, scores, -np.inf)
    top = scores.max(axis=-1, keepdims=True, initial=-np.inf)
    weights = np.exp(scores - np.where(np.isfinite(top), top, 0.0))  # a row with no key: all 0
    return _divide(weights, weights.sum(axis=-1)) @ v


def softmax_normaliser(q, k, scale: Optional[float] = None) -> np.ndarray:
    """Z_t = sum_tau exp(s q_t . k_tau), the softmax denominator the astrocyte estimates."""
    q, k, _, _ = _attention_inputs(q, k)
    return np.exp((q @ np.swapaxes(k, -1, -2)) * V.scale_value(scale, q.shape[-1])).sum(axis=-1)


def log_features(x, hidden_weights, scale: Optional[float] = None, hidden_bias=None) -> np.ndarray:
    """log phi(x~) = W x~ + b - |x~|^2 / 2 - log(m) / 2, with x~ = x sqrt(s).

    x (..., L, D), hidden_weights (..., m, D), hidden_bias (..., m) or None -> (..., L, m).
    """
    x, W = _batched(x, "x", "L, D"), _batched(hidden_weights, "hidden_weights", "m, D")
    if W.shape[-1] != x.shape[-1]:
        raise ValueError(f"hidden_weights must have shape (..., m, D) with D = {x.shape[-1]}, got {W.shape}")
    if hidden_bias is not None:
        hidden_bias = V.real_array(hidden_bias, "hidden_bias")
        if hidden_bias.ndim < 1 or hidden_bias.shape[-1] != W.shape[-2]:
            raise ValueError(f"hidden_bias must have shape (..., m) with m = {W.shape[-2]} (from hidden_weights), "
                             f"got {hidden_bias.shape}")
        V.finite(hidden_bias, "hidden_bias")
    _broadcast(("x", x.shape[:-2]), ("hidden_weights", W.shape[:-2]),
               *([("hidden_bias", hidden_bias.shape[:-1])] if hidden_bias is not None else []))
    return _log_features(x, W, scale, hidden_bias)


def _log_features(x, W, scale, hidden_bias) -> np.ndarray:
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
    q,
    k,
    v,
    hidden_weights,
    scale: Optional[float] = None,
    causal: bool = False,
    return_astrocyte: bool = False,
    hidden_bias=None,
    key_mask=None,
):
    """The paper's steady state: y_t = H phi(q~_t) / a_t with H = sum_tau v_tau phi(k~_tau)^T and
    a_t = g . phi(q~_t), g = sum_tau phi(k~_tau).

    Shapes: q (..., Lq, D), k (..., Lk, D), v (..., Lk, Dv), hidden_weights (..., m, D),
    hidden_bias (..., m) or None (per-neuron log-rate offsets), key_mask (..., Lk) or None (True
    for the keys that are written, as in :func:`tripartite.attention`). Returns y (..., Lq, Dv),
    and with ``return_astrocyte`` also a_t (..., Lq) in true units. A query that sees no key (Lk = 0,
    or every key masked) gets y = 0 and a = 0.

    Features are formed in the log domain: the keys' log-features are shifted by their overall
    maximum (a constant that cancels in y and is added back to log a_t), each query's by its own
    maximum; causal, each key by its own maximum and each query's sum by the largest of those
    among the keys it sees.
    """
    q, k, v, key_mask = _attention_inputs(q, k, v, causal, key_mask)
    return_astrocyte = V.flag(return_astrocyte, "return_astrocyte")
    log_k = log_features(k, hidden_weights, scale, hidden_bias)
    _broadcast(("q", q.shape[:-2]), ("hidden_weights", np.shape(hidden_weights)[:-2]))
    log_q = _log_features(q, hidden_weights, scale, hidden_bias)  # checked with the keys
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
    else:
        shift_k = finite(log_k.max(axis=(-2, -1), keepdims=True, initial=-np.inf))
        phi_k = np.exp(log_k - shift_k)
        H = np.swapaxes(v, -1, -2) @ phi_k  # (..., Dv, m): the tripartite synapses
        g = phi_k.sum(axis=-2)  # (..., m): neuron-to-astrocyte weights
        num = phi_q @ np.swapaxes(H, -1, -2)
        den = phi_q @ g[..., None]
        den = den[..., 0]
        shift = shift_k[..., 0]
    y = _divide(num, den)
    if not return_astrocyte:
        return y
    with np.errstate(over="ignore"):
        a = den * np.exp(shift_q[..., 0] + shift)
    return y, a


def simulate(
    keys,
    values,
    queries,
    hidden_weights,
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
    hidden_bias=None,
    record_every: Optional[int] = None,
):
    """Step the continuous-time network of one head, one dt at a time (MODEL.md section 2);
    note the argument order: ``simulate(keys, values, queries, W)``, unlike ``net.stream(queries,
    keys, values)`` and ``attention(q, k, v)``.

    keys (L, D), values (L, Dv), queries (Lq, D), hidden_weights (m, D), in that order: keys and
    values first, as they are written first (all three are 2-D, so passing them in the
    ``stream``/``attention`` order is not caught when D == Dv). With ``stream=False``
    all tokens are written, then all queries read; with ``stream=True`` token t is written, then
    query t read. Returns the outputs y (Lq, Dv) and the astrocyte's calcium a (Lq,), each at the
    end of its query's read window. ``integrator`` is "euler" or "rk4". Float64, true units (no
    log-domain rescaling): meant for moderate inputs and small networks. Parameters are checked
    as :class:`tripartite.NeuronAstrocyteNetwork` checks them (times > 0, leak >= 0, a stable dt
    that divides t_write and t_read); ``record_every`` is a positive integer.

    With ``record_every=n`` it also returns a dict of traces sampled every n steps (including
    t = 0): "t" (ms), "calcium", "hidden" (k, m), "astrocyte_weights" (k, m), "synapses"
    (k, Dv, m), "outputs" (k, Dv): the output neurons' rates: clamped to v during writes,
    y = H h / a during reads (and at t = 0; 0 where a = 0).
    """
    # The network's rules (the checks of NeuronAstrocyteNetwork): positive times, a stable dt that
    # divides both windows, and inputs of one head with consistent shapes.
    V.choice(integrator, "integrator", ("euler", "rk4"))
    params = dict(tau_hidden=V.positive(tau_hidden, "tau_hidden", "ms"), tau_astro=V.positive(tau_astro, "tau_astro", "ms"),
                  t_write=V.positive(t_write, "t_write", "ms"), t_read=V.positive(t_read, "t_read", "ms"),
                  leak=V.non_negative(leak, "leak"))
    V.learning_rate(eta)
    n_write, n_read = V.time_steps(V.positive(dt, "dt", "ms"), integrator, params, exact_available=False)
    if record_every is not None:
        V.positive_int(record_every, "record_every")
    stream = V.flag(stream, "stream")
    W = _matrix(hidden_weights, "hidden_weights")
    m, D = W.shape
    keys, queries = _matrix(keys, "keys", D), _matrix(queries, "queries", D)
    values = _matrix(values, "values", None, "Dv")
    Dv = values.shape[1]
    if len(values) != len(keys):
        raise ValueError(f"values must have as many rows as keys ({len(keys)}), got {values.shape}")
    if stream and len(queries) != len(keys):
        raise ValueError(f"stream=True needs as many queries as keys ({len(keys)}), got {len(queries)}")
    if hidden_bias is not None and np.shape(hidden_bias) != (m,):
        raise ValueError(f"hidden_bias must have shape (m,) = ({m},), got {np.shape(hidden_bias)}")
    if hidden_bias is not None:
        V.bias_magnitude(np.asarray(hidden_bias, dtype=np.float64))
    phi = lambda x: np.exp(log_features(x, W, scale, hidden_bias))  # noqa: E731

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

    def read(state, query):
        state = window(state, phi(query[None])[0], None, False, n_read)
        h, H, _, a = state
        return state, (H @ h / a if a > 0 else np.zeros(Dv)), a

    outputs, calcium = np.zeros((len(queries), Dv)), np.zeros(len(queries))
    if stream:
        for t in range(len(queries)):
            state = window(state, phi(keys[t][None])[0], values[t], True, n_write)
            state, outputs[t], calcium[t] = read(state, queries[t])
    else:
        for t in range(len(keys)):
            state = window(state, phi(keys[t][None])[0], values[t], True, n_write)
        for t in range(len(queries)):
            state, outputs[t], calcium[t] = read(state, queries[t])
    if record_every:
        return outputs, calcium, {name: np.array(samples) for name, samples in trace.items()}
    return outputs, calcium
