"""Neuron-astrocyte attention inside a real transformer: all-MiniLM-L6-v2 (issue 4).

- :func:`study_heads`: every one of the 72 heads (6 layers x 12) on a real text, replaced by the
  network; per head the astrocyte's a_t against the softmax normaliser Z_t and the error of the
  head's output, for several m, feature methods, in the steady state and in continuous time.
- :class:`NeuronAstrocyteAttention`: an attention callable for :meth:`MiniLM.encode` that replaces
  every head of the model; :func:`whole_model` measures the sentence embeddings it still gives.
- :func:`run_minilm`: the ``tripartite minilm`` command (tables, CSV, Markdown, figures).

Feature methods (all estimate the same softmax; only the variance differs). With q~ = q s^{1/2},
k~ = k s^{1/2}, positive random features estimate exp(q~.k~) with relative variance
(e^{|q~+k~|^2} - 1)/m per pair (iid weights), and on the built-in text MiniLM's heads have a mean
|q~+k~|^2 from 5.7 to 104 (13.7 at the median head; docs/minilm_heads.md). The methods:

- ``iid``: the paper's features, W_rj ~ N(0, 1).
- ``orthogonal``: block-orthogonal rows with chi-distributed norms.
- key shift: softmax is unchanged when a constant vector u is subtracted from every key, while
  |q~ + k~ - u~|^2 changes. ``mean`` subtracts the mean key (centring); ``optimal`` subtracts
  u = mean(q) + mean(k), which minimises the mean over all pairs of |q~ + k~ - u~|^2 (down to the
  sum of the variances of q~ and k~). The astrocyte then estimates Z_t e^{-q~_t.u~}; a_t is
  multiplied back by e^{q~_t.u~} before it is reported.
- ``oprf``: optimal positive random features (Likhosherstov et al., NeurIPS 2022, "Chefs' Random
  Tables"), f(w, x) = (1-4A)^{D/4} exp(A|w|^2 + B w.x - |x|^2/2), B = (1-4A)^{1/2}, with A < 0
  chosen per head from the data (:func:`oprf_parameter`). The network implements it with hidden
  weights B w and per-neuron biases A|w|^2 + (D/4) log(1-4A).
"""

from __future__ import annotations

import csv
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from . import _core
from . import _validate as V
from .attention import attention
from .attention import memory_bytes as attention_memory_bytes
from .network import NeuronAstrocyteNetwork, scratch_bytes, state_bytes
from .reference import softmax_attention, softmax_normaliser
from .weights import FEATURE_MAPS, _draw_bytes, draw_hidden_weights

KEY_SHIFTS = ("none", "mean", "optimal")


@dataclass(frozen=True)
class Method:
    """A way to draw and use the hidden neurons' weights; every method estimates the same softmax."""

    name: str
    feature_map: str = "performer"  # "performer" (iid) or "orthogonal"
    key_shift: str = "none"  # "none", "mean" (centring) or "optimal"
    oprf: bool = False
    description: str = ""

    def __post_init__(self) -> None:
        if self.feature_map not in FEATURE_MAPS:
            raise ValueError(f"feature_map must be one of {', '.join(FEATURE_MAPS)}, got {self.feature_map!r}")
        if self.key_shift not in KEY_SHIFTS:
            raise ValueError(f"key_shift must be one of {', '.join(KEY_SHIFTS)}, got {self.key_shift!r}")


METHODS: Dict[str, Method] = {
    m.name: m
    for m in (
        Method("iid", description="the paper's iid Gaussian weights"),
        Method("orthogonal", feature_map="orthogonal", description="block-orthogonal weights"),
        Method("centred", key_shift="mean", description="iid weights, keys centred"),
        Method("shifted", key_shift="optimal", description="iid weights, keys shifted by mean(q) + mean(k)"),
        Method("oprf", oprf=True, description="optimal positive random features, iid weights"),
        Method("oprf+ort+shift", feature_map="orthogonal", key_shift="optimal", oprf=True,
               description="optimal positive features, orthogonal weights, keys shifted"),
    )
}


def oprf_parameter(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """A of optimal positive random features for the pairs of rows of x and y (already scaled,
    x = q~, y = k~), over the last two axes: (..., Lx, D), (..., Ly, D) -> (...,).

    For one pair the relative second moment of f(w, x) f(w, y) over w ~ N(0, I_D) is
    (1-4A)^D (1-8A)^{-D/2} exp(rho / (1-8A)) with rho = |x + y|^2 (A < 1/8; at A = 0 this is the
    e^rho of the paper's features). Setting its derivative in A to zero, with u = 1 - 8A:
    D u^2 - (D + 2 rho) u - 2 rho = 0, whose positive root gives
    A = (1 - 2p - sqrt((2p + 1)^2 + 8p)) / 16,  p = rho / D.
    As in the paper, rho is replaced by its mean over all pairs,
    mean |x|^2 + mean |y|^2 + 2 mean(x).mean(y). A <= 0, and A = 0 when rho = 0.

    x and y must be finite, with at least one row and one column each, the same D and leading
    axes that broadcast; otherwise a ValueError names the argument.
    """
    x = V.real_array(x, "x")
    y = V.real_array(y, "y")
    for arr, name in ((x, "x"), (y, "y")):
        if arr.ndim < 2 or arr.shape[-2] < 1 or arr.shape[-1] < 1:
            raise ValueError(f"{name} must have shape (..., L, D) with L >= 1 and D >= 1, got {arr.shape}")
    if y.shape[-1] != x.shape[-1]:
        raise ValueError(f"y must have shape (..., Ly, D) with D = {x.shape[-1]} (from x), got {y.shape}")
    try:
        np.broadcast_shapes(x.shape[:-2], y.shape[:-2])
    except ValueError:
        raise ValueError(f"the leading axes of x {x.shape} and y {y.shape} do not broadcast") from None
    V.finite(x, "x")
    V.finite(y, "y")
    return _oprf_parameter(x, y)


def _oprf_parameter(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """:func:`oprf_parameter` without its checks (x, y checked or built by the study)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    d = x.shape[-1]
    rho = (x * x).sum(-1).mean(-1) + (y * y).sum(-1).mean(-1) + 2.0 * (x.mean(-2) * y.mean(-2)).sum(-1)
    p = np.maximum(rho, 0.0) / d
    return (1.0 - 2.0 * p - np.sqrt((2.0 * p + 1.0) ** 2 + 8.0 * p)) / 16.0


def oprf_weights(omega: np.ndarray, A: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Hidden weights and biases that make the network's rates OPRF features.

    omega (..., m, D) standard Gaussian (or orthogonal) draws, A (...) -> W = B omega (..., m, D) and
    b = A |omega|^2 + (D/4) log(1-4A) (..., m), in omega's dtype: phi_r(x) = m^{-1/2} f(omega_r, x)
    (float32 for a float16 omega, float64 for an integer one).

    A must be finite and below 1/8 (:func:`oprf_parameter` gives A <= 0): the second moment of the
    features, (1-4A)^D (1-8A)^{-D/2} exp(rho / (1-8A)), is infinite from A = 1/8 on, and from
    A = 1/4 on B = (1-4A)^{1/2} and log(1-4A) are undefined. A's shape must broadcast to omega's
    leading axes; omega must be finite. Otherwise a ValueError names the argument.
    """
    omega = V.real_array(omega, "omega")
    if omega.ndim < 2 or omega.shape[-1] < 1:
        raise ValueError(f"omega must have shape (..., m, D) with D >= 1, got {omega.shape}")
    A = V.real_array(A, "A")
    try:
        if np.broadcast_shapes(A.shape, omega.shape[:-2]) != omega.shape[:-2]:
            raise ValueError
    except ValueError:
        raise ValueError(f"A must have a shape that broadcasts to omega's leading axes {omega.shape[:-2]}, "
                         f"got {A.shape}") from None
    V.finite(omega, "omega")
    V.finite(A, "A")
    if A.size and not float(A.max()) < 0.125:
        raise ValueError(f"A must be below 1/8 (from A = 1/8 on the features' variance is infinite, and from 1/4 on "
                         f"the weights are undefined), got max A = {float(A.max()):g}")
    return _oprf_weights(omega.astype(V.compute_dtype(omega), copy=False), A)


def _oprf_weights(omega: np.ndarray, A: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """:func:`oprf_weights` without its checks (omega drawn and A computed by the study)."""
    A = np.asarray(A, dtype=np.float64)
    d = omega.shape[-1]
    B = np.sqrt(1.0 - 4.0 * A)
    W = omega * B[..., None, None].astype(omega.dtype)
    norms = np.einsum("...md,...md->...m", omega, omega, dtype=np.float64)
    b = A[..., None] * norms + (d / 4.0) * np.log1p(-4.0 * A)[..., None]
    return W, b.astype(omega.dtype)


def prepare_inputs(q: np.ndarray, k: np.ndarray, method: Method) -> Tuple[np.ndarray, np.ndarray]:
    """Keys shifted as ``method`` says (q, k unscaled, (..., L, D)). Returns (k_in, u): the keys to
    write and the shift u (..., D) subtracted from them (zero for "none")."""
    if method.key_shift == "none":
        u = np.zeros(k.shape[:-2] + k.shape[-1:], dtype=k.dtype)
    elif method.key_shift == "mean":
        u = k.mean(-2)
    else:
        u = q.mean(-2) + k.mean(-2)
    return (k - u[..., None, :]).astype(k.dtype), u


def hidden_draws(m: int, d: int, heads: int, seed: int, layer: int, method: Method, dtype=np.float32) -> np.ndarray:
    """omega (heads, m, D) for one layer. Each (seed, layer) has its own stream, and methods with
    the same feature map share their draws (common random numbers sharpen comparisons).
    ``seed`` and ``layer`` are non-negative integers (a ValueError names either otherwise); m, d,
    heads and dtype are checked as :func:`tripartite.draw_hidden_weights` checks them."""
    seed, layer = V.seed_value(seed), V.non_negative_int(layer, "layer")
    if not isinstance(method, Method):
        raise ValueError(f"method must be a Method (e.g. METHODS['iid']), got {method!r}")
    layer_seed = int(np.random.SeedSequence([seed, layer]).generate_state(1)[0])
    return draw_hidden_weights(m, d, heads=heads, seed=layer_seed, feature_map=method.feature_map, dtype=dtype)


def replaced_heads(
    q: np.ndarray,
    k: np.ndarray,
    v: np.ndarray,
    omega: np.ndarray,
    method: Method,
    network: Optional[Dict[str, float]] = None,
    num_threads: int = 0,
) -> Tuple[np.ndarray, np.ndarray]:
    """Heads (heads, L, D) computed by neuron-astrocyte attention with hidden draws omega
    (heads, m, D): the steady state (``network=None``) or the continuous-time network with the
    given time constants (ms). Returns y (heads, L, Dv) and a_t (heads, L) in the units of Z_t.
    A zero-length sequence (L = 0) gives empty y and a_t, as :func:`tripartite.attention` does."""
    d = q.shape[-1]
    if q.shape[-2] == 0:  # no query: nothing to estimate (OPRF's A would be a mean over no pairs)
        return np.zeros(q.shape[:-1] + v.shape[-1:], dtype=V.compute_dtype(q, k, v)), np.zeros(q.shape[:-1])
    scale = 1.0 / math.sqrt(d)
    k_in, u = prepare_inputs(q, k, method)
    if method.oprf:
        root = math.sqrt(scale)
        A = _oprf_parameter(q * root, k_in * root)
        W, b = _oprf_weights(omega, A)
    else:
        W, b = omega, None
    if network is None:
        y, a = attention(q, k_in, v, hidden_weights=W, hidden_bias=b, return_astrocyte=True, num_threads=num_threads)
    else:
        net = NeuronAstrocyteNetwork(
            d, v.shape[-1], W.shape[-2], heads=q.shape[0], hidden_weights=W, hidden_bias=b,
            dtype=q.dtype, num_threads=num_threads, **network,
        )
        net.write(k_in, v, progress=False)  # the study shows its own progress
        y, a = net.read(q, return_astrocyte=True, progress=False)
    # a estimates sum_tau exp(s q.(k - u)) = Z_t exp(-s q.u): put the factor back.
    log_back = scale * np.einsum("hld,hd->hl", q.astype(np.float64), u.astype(np.float64))
    with np.errstate(over="ignore"):
        return y, a * np.exp(log_back)


# ------------------------------------------------------------------------------------------------
# Measurements
# ------------------------------------------------------------------------------------------------
#: Ways to run the replaced heads: the steady state, and the continuous-time network (exact
#: integrator, t_write = 100 ms, t_read = 1000 ms) with the default time constants
#: (tau_hidden / t_write = 0.1) and with ten-times faster ones (tau_hidden / t_write = 0.01).
MODES: Dict[str, Optional[Dict[str, float]]] = {
    "steady": None,
    "network": {"tau_hidden": 10.0, "tau_astro": 100.0},
    "network-fast": {"tau_hidden": 1.0, "tau_astro": 10.0},
}

MODE_NOTES = {
    "steady": "the paper's steady-state equations",
    "network": "continuous time, tau_hidden = 10 ms, tau_astro = 100 ms (tau_hidden / t_write = 0.1, the defaults)",
    "network-fast": "continuous time, tau_hidden = 1 ms, tau_astro = 10 ms (tau_hidden / t_write = 0.01)",
}

HEAD_COLUMNS = ("method", "mode", "m", "layer", "head", "q2", "k2", "rho", "r_aZ", "r_logaZ", "a_err", "y_err")


def _pearson(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson correlation along the last axis."""
    x = x - x.mean(-1, keepdims=True)
    y = y - y.mean(-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (x * y).sum(-1) / np.sqrt((x * x).sum(-1) * (y * y).sum(-1))


def _ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 0..n-1 of a 1-D array, ties sharing their mean rank."""
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x))
    ranks[order] = np.arange(len(x))
    values, inverse = np.unique(x, return_inverse=True)
    if len(values) < len(x):
        ranks = (np.bincount(inverse, weights=ranks) / np.bincount(inverse))[inverse]
    return ranks


def spearman(x: Any, y: Any) -> float:
    """Spearman's rank correlation of two finite 1-D samples of one length, at least 2 (NaN has
    no rank; a ValueError names the argument).

    When either sample is constant its ranks are all equal and the correlation is undefined: the
    result is then NaN (as scipy.stats.spearmanr gives), without a warning, so that a study's table
    shows "nan" for that row instead of stopping."""
    x, y = (V.real_array(a, name).astype(float) for a, name in ((x, "x"), (y, "y")))
    if x.ndim != 1 or y.shape != x.shape:
        raise ValueError(f"x and y must be 1-D samples of one length, got shapes {x.shape} and {y.shape}")
    if x.size < 2:
        raise ValueError(f"x and y must have at least 2 values for a rank correlation, got {x.size}")
    V.finite(x, "x")
    V.finite(y, "y")
    return float(_pearson(_ranks(x), _ranks(y)))


def head_inputs_stats(q: np.ndarray, k: np.ndarray) -> Dict[str, np.ndarray]:
    """Mean |q~|^2, |k~|^2 and |q~ + k~|^2 (over all pairs) per head; q, k (..., L, D) unscaled."""
    s = 1.0 / math.sqrt(q.shape[-1])
    q64, k64 = q.astype(np.float64), k.astype(np.float64)
    q2 = s * (q64 * q64).sum(-1).mean(-1)
    k2 = s * (k64 * k64).sum(-1).mean(-1)
    return {"q2": q2, "k2": k2, "rho": q2 + k2 + 2 * s * (q64.mean(-2) * k64.mean(-2)).sum(-1)}


def head_errors(y: Any, a: Any, y_soft: Any, Z: Any) -> Dict[str, np.ndarray]:
    """Per head: Pearson r of a_t with Z_t and of log a_t with log Z_t, the median over queries of
    |a_t / Z_t - 1|, and the relative Frobenius error of the head's output.

    y, y_soft (..., L, Dv), the replaced and the real head's outputs; a, Z (..., L), the astrocyte's
    response and the softmax normaliser. All finite, L >= 1, Z > 0, a >= 0 (an a_t of 0 gives
    log a_t = -inf), and y_soft not zero on a whole head; otherwise a ValueError names the argument.
    A correlation is NaN for a head where a_t or Z_t is constant over the queries (undefined).
    """
    y, a, y_soft, Z = (V.real_array(x, name) for x, name in ((y, "y"), (a, "a"), (y_soft, "y_soft"), (Z, "Z")))
    if y.ndim < 2 or y.shape[-2] < 1:
        raise ValueError(f"y must have shape (..., L, Dv) with L >= 1, got {y.shape}")
    if y_soft.shape != y.shape:
        raise ValueError(f"y_soft must have the shape of y {y.shape}, got {y_soft.shape}")
    for x, name in ((a, "a"), (Z, "Z")):
        if x.shape != y.shape[:-1]:
            raise ValueError(f"{name} must have shape (..., L) = {y.shape[:-1]} (from y), got {x.shape}")
    for x, name in ((y, "y"), (a, "a"), (y_soft, "y_soft"), (Z, "Z")):
        V.finite(x, name)
    if not (Z > 0).all():
        raise ValueError(f"Z must be positive (a softmax normaliser), got min Z = {float(Z.min()):g}")
    if not (a >= 0).all():
        raise ValueError(f"a must be non-negative (an astrocyte's response), got min a = {float(a.min()):g}")
    if not (np.abs(y_soft).max(axis=(-1, -2)) > 0).all():
        raise ValueError("y_soft must not be zero on a whole head (the output error is relative to it)")
    return _head_errors(y, a, y_soft, Z)


def _head_errors(y: np.ndarray, a: np.ndarray, y_soft: np.ndarray, Z: np.ndarray) -> Dict[str, np.ndarray]:
    """:func:`head_errors` without its checks (the study's own arrays: a may be 0 or inf)."""
    with np.errstate(divide="ignore"):
        log_a = np.log(a)
    diff = y.astype(np.float64) - y_soft
    return {
        "r_aZ": _pearson(a, Z),
        "r_logaZ": _pearson(log_a, np.log(Z)),
        "a_err": np.median(np.abs(a / Z - 1.0), axis=-1),
        "y_err": np.sqrt((diff * diff).sum((-1, -2)) / (y_soft * y_soft).sum((-1, -2))),
    }


class _Progress:
    """A progress bar on stderr: tqdm when it imports, else one line per step; nothing when
    stderr is not a terminal (unless forced)."""

    def __init__(self, total: int, enabled: Optional[bool] = None) -> None:
        self._enabled = sys.stderr.isatty() if enabled is None else bool(enabled)
        self._total, self._done, self._bar = total, 0, None
        if self._enabled:
            try:
                from tqdm.auto import tqdm
            except ImportError:
                pass
            else:
                self._bar = tqdm(total=total, unit="step", dynamic_ncols=True, file=sys.stderr)

    def step(self, what: str) -> None:
        self._done += 1
        if self._bar is not None:
            self._bar.set_description(what, refresh=False)
            self._bar.update(1)
        elif self._enabled:
            print(f"[{self._done}/{self._total}] {what}", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def _m_label(m: int) -> str:
    exponent = math.log10(m)
    return f"1e{exponent:.0f}" if exponent == round(exponent) else str(m)


def _head_arrays(q: Any, k: Any, v: Any, axes: str) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """q, k, v as finite arrays of shape (<axes>, L, D) (v: (<axes>, L, Dv)) with the same leading
    axes and L, or a ValueError naming them. Like :func:`tripartite.attention`, the three are
    converted to one compute dtype: float64 if any is float64 (or an integer type), else float32
    (float16 inputs are computed in float32)."""
    ndim = len(axes.split(", ")) + 2
    arrays = tuple(V.real_array(x, name) for x, name in ((q, "q"), (k, "k"), (v, "v")))
    for x, name in zip(arrays, "qkv"):
        if x.ndim != ndim:
            last = "Dv" if name == "v" else "D"
            raise ValueError(f"{name} must have shape ({axes}, L, {last}), got {x.shape}")
    q, k, v = arrays
    if k.shape != q.shape or v.shape[:-1] != q.shape[:-1]:
        raise ValueError(f"q and k must have the same shape ({axes}, L, D) and v ({axes}, L, Dv), "
                         f"got q {q.shape}, k {k.shape}, v {v.shape}")
    if q.shape[-1] < 1:
        raise ValueError(f"q and k must have at least one feature (D >= 1), got q {q.shape}")
    for x, name in zip((q, k, v), "qkv"):
        V.finite(x, name)
    dtype = V.compute_dtype(q, k, v)
    return q.astype(dtype, copy=False), k.astype(dtype, copy=False), v.astype(dtype, copy=False)


def _layer_bytes(m: int, runs: Sequence[Tuple[Method, bool]], heads: int, d: int, dv: int, L: int, dtype: Any,
                 num_threads: int) -> int:
    """Peak bytes of one layer's replaced heads at ``m`` hidden neurons per head, over ``runs``
    ((method, continuous-time network?) pairs), from what the code allocates and what the checks
    inside it ask for. The layer holds omega (heads, m, D), drawn by :func:`hidden_draws` (with one
    head's float64 temporaries while drawing), and for OPRF W = B omega and the biases (whose
    float64 temporaries, |omega|^2 and b, live while they are built). Then the steady state calls
    :func:`tripartite.attention`, whose own check asks for the weights again, one head's in double,
    the inputs, outputs and per-thread partials, and 64 MiB of scratch (its own formula,
    :func:`tripartite.attention.memory_bytes`); the network is a :class:`NeuronAstrocyteNetwork`,
    whose checks ask for its state and its copy of the weights (:func:`tripartite.network.state_bytes`)
    and, while it runs, the core's per-thread scratch (:func:`tripartite.network.scratch_bytes`)."""
    hm, itemsize = heads * m, np.dtype(dtype).itemsize
    peak = 0
    for method, network in runs:
        held = hm * d * itemsize  # omega
        peak = max(peak, _draw_bytes(m, d, heads, method.feature_map, itemsize))
        if method.oprf:
            peak = max(peak, held + hm * (d * itemsize + 16 + itemsize))
            held += hm * (d + 1) * itemsize
        if network:
            need = state_bytes(heads, m, d, dv, dtype) + scratch_bytes(num_threads or _core.max_threads(), d, dtype)
        else:
            need = attention_memory_bytes(heads, m, d, heads, L, L, dv, dtype, False, num_threads)
        peak = max(peak, held + need)
    return peak


class StudyMemoryError(MemoryError):
    """The study at the largest m would not fit in memory (raised before any work; the CLI reports
    it as a bad ``--m``, and no other MemoryError)."""


def _check_study_memory(ms: Sequence[int], runs: Sequence[Tuple[Method, bool]], layers: int, heads: int, d: int,
                        dv: int, L: int, dtype: Any, num_threads: int, extra: int = 0) -> None:
    """MemoryError naming ``ms`` before any work when the study's peak at the largest m cannot fit:
    one layer's replaced heads (:func:`_layer_bytes`), plus what the study keeps throughout (q, k,
    v and the softmax references, whose L x L scores are computed for every layer at once) and
    ``extra`` (the model). Raises :class:`StudyMemoryError`."""
    if not runs:
        return
    m = max(ms)
    itemsize = np.dtype(dtype).itemsize
    need = (_layer_bytes(m, runs, heads, d, dv, L, dtype, num_threads)
            + layers * heads * (3 * L * L * 8 + L * (3 * d * itemsize + 2 * dv * 8 + 16)) + extra)
    V.check_memory(need, f"ms = {list(ms)}: the study at m = {m} hidden neurons per head (the largest of ms; use a "
                         f"smaller m) at its peak (the hidden weights, synapses and workspace of {heads} heads of a layer)",
                   StudyMemoryError)


def _ms(ms: Any) -> List[int]:
    """A non-empty list of positive numbers of hidden neurons."""
    items = [ms] if V.is_int(ms) else ms
    if isinstance(items, (str, bytes)):  # not a list of its characters
        raise ValueError(f"ms must be a list of positive integers, got {ms!r}")
    try:
        items = list(items)
    except TypeError:
        raise ValueError(f"ms must be a list of positive integers, got {ms!r}") from None
    if not items:
        raise ValueError(f"ms must name at least one number of hidden neurons, got {ms!r}")
    return [V.positive_int(m, "ms") for m in items]


def study_heads(
    q: np.ndarray,
    k: np.ndarray,
    v: np.ndarray,
    ms: Sequence[int],
    methods: Sequence[str] = tuple(METHODS),
    modes: Sequence[str] = tuple(MODES),
    seed: int = 0,
    num_threads: int = 0,
    progress: Optional[_Progress] = None,
) -> List[Dict[str, Any]]:
    """Replace every head by neuron-astrocyte attention and measure it against the real head.

    Parameters
    ----------
    q, k, v : numpy.ndarray, shape (layers, heads, L, D)
        What each layer's attention receives in the real model (:meth:`MiniLM.attention_inputs`).
    ms : sequence of int
        Numbers of hidden neurons per head.
    methods : names in :data:`METHODS`
    modes : names in :data:`MODES`
    seed : int
        Seed of the hidden weights (one stream per layer; see :func:`hidden_draws`).
    num_threads : int
        Threads of the replaced heads (0: all cores). Results do not depend on it.
    progress : optional
        A progress bar (``_Progress``) stepped once per (method, m, layer, mode); None: no progress.

    q, k and v must be finite; they are computed in one dtype as :func:`tripartite.attention`
    computes them (float16 in float32). Every argument is checked, and the memory of the study at
    the largest m (MemoryError naming ``ms``), before any work is done.

    Returns
    -------
    list of dict, one per (method, mode, m, layer, head), with the keys of :data:`HEAD_COLUMNS`
    (layer and head 0-based; q2, k2, rho of the real head's inputs, see :func:`head_inputs_stats`).
    """
    q, k, v = _head_arrays(q, k, v, "layers, heads")
    ms = _ms(ms)
    methods = V.names(methods, "methods", tuple(METHODS), "method")
    modes = V.names(modes, "modes", tuple(MODES), "mode")
    seed, num_threads = V.seed_value(seed), V.threads(num_threads)
    layers, heads, L, d = q.shape
    _check_study_memory(ms, [(METHODS[n], MODES[mode] is not None) for n in methods for mode in modes], layers, heads, d,
                        v.shape[-1], L, q.dtype, num_threads)
    Z = softmax_normaliser(q, k)
    y_soft = softmax_attention(q, k, v)
    stats = head_inputs_stats(q, k)
    rows = []
    n_layers, n_heads = q.shape[:2]
    for name in methods:
        method = METHODS[name]
        for m in ms:
            for layer in range(n_layers):
                omega = hidden_draws(m, q.shape[-1], n_heads, seed, layer, method, dtype=q.dtype)
                for mode in modes:
                    y, a = replaced_heads(q[layer], k[layer], v[layer], omega, method, MODES[mode], num_threads)
                    errs = _head_errors(y, a, y_soft[layer], Z[layer])
                    for h in range(n_heads):
                        row = {"method": name, "mode": mode, "m": int(m), "layer": layer, "head": h}
                        row.update({key: float(stats[key][layer, h]) for key in ("q2", "k2", "rho")})
                        row.update({key: float(errs[key][h]) for key in errs})
                        rows.append(row)
                    if progress is not None:
                        progress.step(f"{name} m={_m_label(m)} layer {layer} {mode}")
    return rows


# ------------------------------------------------------------------------------------------------
# The whole model
# ------------------------------------------------------------------------------------------------
class NeuronAstrocyteAttention:
    """An ``attention(q, k, v, layer)`` for :meth:`MiniLM.encode` that replaces every head of every
    layer by neuron-astrocyte attention: one astrocyte and ``n_hidden`` hidden neurons per head,
    with fixed hidden weights per (layer, head) drawn from ``seed``, shared by all the texts.

    Parameters
    ----------
    n_hidden : int
        m, hidden neurons per head.
    method : str
        A name in :data:`METHODS`.
    mode : str
        A name in :data:`MODES`: the steady state or the continuous-time network.
    seed : int
    num_threads : int

    The weights of the current layer are kept between calls; :meth:`MiniLM.encode` calls layer by
    layer, so each layer's weights are drawn once.

    A call takes q, k (heads, L, D) and v (heads, L, Dv), finite, in any real dtype: as
    :func:`tripartite.attention` does, they are computed in float64 if any is float64 (or an
    integer type), else in float32 (float16 included), and the result is in that dtype. A
    zero-length sequence (L = 0) gives an empty (heads, 0, Dv) result.
    """

    def __init__(self, n_hidden: int, method: str = "iid", mode: str = "steady", seed: int = 0, num_threads: int = 0) -> None:
        self.n_hidden = V.positive_int(n_hidden, "n_hidden")
        self.method, self.mode = V.choice(method, "method", METHODS), V.choice(mode, "mode", MODES)
        self.seed, self.num_threads = V.seed_value(seed), V.threads(num_threads)
        self._key: Optional[Tuple[int, int, int, Any]] = None
        self._omega: Optional[np.ndarray] = None

    def __call__(self, q: np.ndarray, k: np.ndarray, v: np.ndarray, layer: int) -> np.ndarray:
        V.non_negative_int(layer, "layer")
        q, k, v = _head_arrays(q, k, v, "heads")
        # The weights depend on the layer, the number of heads, the head dimension and the dtype.
        key = (layer, q.shape[0], q.shape[-1], q.dtype)
        if key != self._key:
            self._omega = None  # free the previous layer's weights first
            self._omega = hidden_draws(self.n_hidden, q.shape[-1], q.shape[0], self.seed, layer, METHODS[self.method], q.dtype)
            self._key = key
        return replaced_heads(q, k, v, self._omega, METHODS[self.method], MODES[self.mode], self.num_threads)[0]

    def __repr__(self) -> str:
        return (f"NeuronAstrocyteAttention(n_hidden={self.n_hidden}, method={self.method!r}, "
                f"mode={self.mode!r}, seed={self.seed})")


MODEL_COLUMNS = ("method", "mode", "m", "cos_mean", "cos_median", "cos_min", "spearman", "pearson", "seconds")


def whole_model(
    model: Any,
    pairs: Sequence[Tuple[str, str]],
    ms: Sequence[int],
    methods: Sequence[str] = ("iid",),
    modes: Sequence[str] = ("steady",),
    seed: int = 0,
    num_threads: int = 0,
    progress: Optional[_Progress] = None,
) -> Tuple[List[Dict[str, Any]], Dict[str, np.ndarray]]:
    """The model with every head replaced, against the real one, on sentence pairs.

    For each (method, mode, m): the cosine similarity of each sentence's embedding to the real
    model's (mean, median, min over the sentences), and how the similarity scores of the pairs
    (cosine of the two embeddings) agree with the real model's: Spearman and Pearson correlation.

    Returns the rows (keys :data:`MODEL_COLUMNS`) and the pair scores: ``"real"`` and one array per
    ``"method/mode/m"``. ``ms``, ``methods``, ``modes``, ``seed`` and ``num_threads`` are checked
    before the first sentence is encoded.
    """
    ms = _ms(ms)
    methods = V.names(methods, "methods", tuple(METHODS), "method")
    modes = V.names(modes, "modes", tuple(MODES), "mode")
    seed, num_threads = V.seed_value(seed), V.threads(num_threads)
    sentences = list(dict.fromkeys(s for pair in pairs for s in pair))
    index = {s: i for i, s in enumerate(sentences)}
    left = np.array([index[a] for a, _ in pairs])
    right = np.array([index[b] for _, b in pairs])

    def pair_scores(E):
        E = E.astype(np.float64)
        return (E[left] * E[right]).sum(-1)

    real = model.encode(sentences)
    scores = {"real": pair_scores(real)}
    rows = []
    for name in methods:
        for mode in modes:
            for m in ms:
                replaced = NeuronAstrocyteAttention(m, name, mode, seed, num_threads)
                calls = [0]

                def attention(q, k, v, layer, replaced=replaced, calls=calls, what=f"whole model {name} {mode} m={_m_label(m)}"):
                    out = replaced(q, k, v, layer)
                    calls[0] += 1
                    if progress is not None and calls[0] % len(sentences) == 0:  # a layer is done
                        progress.step(f"{what} layer {layer}")
                    return out

                t0 = time.perf_counter()
                E = model.encode(sentences, attention=attention)
                seconds = time.perf_counter() - t0
                cos = (E.astype(np.float64) * real).sum(-1)
                s = pair_scores(E)
                scores[f"{name}/{mode}/{m}"] = s
                rows.append({
                    "method": name, "mode": mode, "m": int(m), "cos_mean": float(cos.mean()),
                    "cos_median": float(np.median(cos)), "cos_min": float(cos.min()),
                    "spearman": spearman(scores["real"], s), "pearson": float(_pearson(scores["real"], s)),
                    "seconds": seconds,
                })
    return rows, scores


# ------------------------------------------------------------------------------------------------
# Reports: figures, CSV, Markdown, and the command
# ------------------------------------------------------------------------------------------------
DATA = Path(__file__).resolve().parent / "data"
DEFAULT_TEXT = DATA / "harbour_light.txt"
DEFAULT_PAIRS = DATA / "sentence_pairs.tsv"
BEST = "oprf+ort+shift"


def read_pairs(path: Any = DEFAULT_PAIRS) -> List[Tuple[str, str]]:
    """Sentence pairs from a text file: one pair a line, the two sentences separated by a tab;
    blank lines and lines starting with '#' are skipped."""
    pairs = []
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split("\t")
        if len(parts) != 2 or not all(p.strip() for p in parts):
            raise ValueError(f"{path}, line {n}: expected two sentences separated by one tab, got {line!r}")
        pairs.append((parts[0].strip(), parts[1].strip()))
    if len(pairs) < 3:
        raise ValueError(f"{path}: need at least 3 sentence pairs for a rank correlation, got {len(pairs)}")
    return pairs


def _fmt(x: Any) -> str:
    if isinstance(x, str):
        return x
    if isinstance(x, (int, np.integer)):
        return str(x)
    if not np.isfinite(x):
        return "nan"
    return f"{x:.3g}"


def _markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(_fmt(x) for x in row) + " |" for row in rows]
    return "\n".join(lines)


def _write_csv(path: Path, columns: Sequence[str], rows: Sequence[Dict[str, Any]]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(columns))
        writer.writeheader()
        for row in rows:
            writer.writerow({key: (f"{row[key]:.6g}" if isinstance(row[key], float) else row[key]) for key in columns})


def summarise_heads(rows: Sequence[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Per (method, mode, m): the median over heads of each measure, and the worst head (lowest
    correlations, largest errors; ``worst_head`` names the head with the largest output error)."""
    groups: Dict[Tuple[str, str, int], List[Dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["method"], row["mode"], row["m"]), []).append(row)
    out = []
    for (method, mode, m), group in groups.items():
        col = {key: np.array([r[key] for r in group]) for key in ("r_aZ", "r_logaZ", "a_err", "y_err")}
        worst = group[int(np.nanargmax(col["y_err"]))]
        out.append({
            "method": method, "mode": mode, "m": m,
            **{f"median_{key}": float(np.nanmedian(val)) for key, val in col.items()},
            "worst_r_aZ": float(np.nanmin(col["r_aZ"])), "worst_r_logaZ": float(np.nanmin(col["r_logaZ"])),
            "worst_a_err": float(np.nanmax(col["a_err"])), "worst_y_err": float(np.nanmax(col["y_err"])),
            "worst_head": f"{worst['layer']}.{worst['head']}",
        })
    return out


def goal_check(summary: Sequence[Dict[str, Any]], m_small: int = 10_000, m_large: int = 100_000) -> List[str]:
    """Issue 4's goal: which methods at m_small match or beat the paper's iid features at m_large on
    the median head (steady state), for the median |a/Z - 1| and for the output error."""
    by = {(s["method"], s["mode"], s["m"]): s for s in summary}
    target = by.get(("iid", "steady", m_large))
    if target is None:
        return []
    lines = [f"Paper's iid features at m = {m_large}, median head: |a/Z-1| = {target['median_a_err']:.3g}, "
             f"output error = {target['median_y_err']:.3g}."]
    for s in summary:
        if s["mode"] == "steady" and s["m"] == m_small:
            a_ok = s["median_a_err"] <= target["median_a_err"]
            y_ok = s["median_y_err"] <= target["median_y_err"]
            verdict = "meets the goal" if a_ok and y_ok else ("partly" if a_ok or y_ok else "does not")
            lines.append(f"- {s['method']} at m = {m_small}: |a/Z-1| = {s['median_a_err']:.3g}, "
                         f"output error = {s['median_y_err']:.3g}: {verdict}.")
    return lines


def _per_head_markdown(rows: Sequence[Dict[str, Any]], method: str, mode: str, ms: Sequence[int]) -> str:
    sel = {(r["layer"], r["head"], r["m"]): r for r in rows if r["method"] == method and r["mode"] == mode}
    heads = sorted({(l, h) for l, h, _ in sel})
    header = ["layer.head", "mean q~^2", "mean k~^2", "mean (q~+k~)^2"]
    for m in ms:
        header += [f"r(a,Z) {_m_label(m)}", f"r(log) {_m_label(m)}", f"med a err {_m_label(m)}", f"y err {_m_label(m)}"]
    table = []
    for l, h in heads:
        first = sel[(l, h, ms[0])]
        line: List[Any] = [f"{l}.{h}", first["q2"], first["k2"], first["rho"]]
        for m in ms:
            r = sel[(l, h, m)]
            line += [r["r_aZ"], r["r_logaZ"], r["a_err"], r["y_err"]]
        table.append(line)
    return _markdown_table(header, table)


def default_figure_head(q: np.ndarray, k: np.ndarray) -> Tuple[int, int]:
    """The head where the paper's figure says most: the largest spread of log Z_t over the text
    (the signal) relative to exp(rho / 2), rho = mean |q~ + k~|^2 (the scale of the random-feature
    noise). q, k (layers, heads, L, D). Returns (layer, head), 0-based."""
    spread = np.log(softmax_normaliser(q, k)).std(-1)
    score = np.log(spread) - head_inputs_stats(q, k)["rho"] / 2
    layer, head = np.unravel_index(np.argmax(score), score.shape)
    return int(layer), int(head)


def paper_figure_data(
    q: np.ndarray, k: np.ndarray, v: np.ndarray, head: Tuple[int, int], ms: Sequence[int], seed: int = 0,
    num_threads: int = 0, progress: Optional[_Progress] = None,
) -> Tuple[np.ndarray, List[Tuple[str, Dict[str, np.ndarray]]]]:
    """Z_t of one head and the panels of the paper's figure: a_t with the paper's features at the
    smallest and the largest m (steady state and continuous-time network), and with the best
    method at the middle m. With a single m the first two panels are the same m (one panel each
    is drawn, as for several)."""
    q, k, v = _head_arrays(q, k, v, "layers, heads")
    if (not isinstance(head, (tuple, list)) or len(head) != 2 or not all(V.is_int(i) and i >= 0 for i in head)
            or head[0] >= q.shape[0] or head[1] >= q.shape[1]):
        raise ValueError(f"head must be (layer, head) with layer < {q.shape[0]} and head < {q.shape[1]}, got {head!r}")
    layer, h = head
    ms = sorted(_ms(ms))
    seed, num_threads = V.seed_value(seed), V.threads(num_threads)
    _check_study_memory(ms, [(METHODS["iid"], True), (METHODS[BEST], False)], 1, q.shape[1], q.shape[-1], v.shape[-1],
                        q.shape[-2], q.dtype, num_threads)
    Z = softmax_normaliser(q[layer], k[layer])[h]
    panels = []
    for method, m, modes in (("iid", ms[0], ("steady", "network")), ("iid", ms[-1], ("steady", "network")),
                             (BEST, ms[len(ms) // 2], ("steady",))):
        omega = hidden_draws(m, q.shape[-1], q.shape[1], seed, layer, METHODS[method], q.dtype)
        series = {}
        for mode in modes:
            a = replaced_heads(q[layer], k[layer], v[layer], omega, METHODS[method], MODES[mode], num_threads)[1][h]
            series["steady state" if mode == "steady" else rf"network, $\tau_h$ = {MODES[mode]['tau_hidden']:g} ms"] = a
        title = "paper's iid features" if method == "iid" else method
        panels.append((f"{title}, m = {_m_label(m)}", series))
        if progress is not None:
            progress.step(f"figure {method} m={_m_label(m)}")
    return Z, panels


def _plain_log_ticks(ax: Any) -> None:
    """Label log axes at 1, 2 and 5 times powers of ten, in plain numbers (the default minor
    labels of a sub-decade range collide)."""
    from matplotlib.ticker import FuncFormatter

    def label(value, _pos):
        if value <= 0:
            return ""
        mantissa = value / 10 ** math.floor(math.log10(value) + 1e-9)
        return f"{value:g}" if round(mantissa, 6) in (1.0, 2.0, 5.0) else ""

    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_formatter(FuncFormatter(label))
        axis.set_minor_formatter(FuncFormatter(label))


def _close(fig: Any) -> None:
    import matplotlib.pyplot as plt

    plt.close(fig)


def figure_paper(path: Path, Z: np.ndarray, panels: Sequence[Tuple[str, Dict[str, np.ndarray]]], head: Tuple[int, int], L: int) -> None:
    """The paper's figure: a_t against Z_t, one panel per (title, {label: a_t})."""
    from .plots import astrocyte_vs_normaliser, figure

    fig, axes = figure(len(panels), width=4.6, height=4.2)
    styles = ({"marker": "o", "facecolors": "none", "edgecolors": "C0", "s": 22}, {"marker": "x", "color": "C3", "s": 14})
    for ax, (title, series) in zip(axes, panels):
        for (label, a), style in zip(series.items(), styles):
            astrocyte_vs_normaliser(ax, a, Z, label=label, **style)
        ax.set_title(title, fontsize=10)
        ax.legend(fontsize=8, loc="upper left")
        _plain_log_ticks(ax)
    fig.suptitle(f"all-MiniLM-L6-v2, layer {head[0] + 1} head {head[1] + 1} (1-based), {L} tokens of real text", fontsize=11)
    fig.savefig(path, dpi=130)
    _close(fig)


def figure_summary(path: Path, summary: Sequence[Dict[str, Any]], rows: Sequence[Dict[str, Any]], ms: Sequence[int]) -> None:
    """Median-head errors against m per method (steady state), and the output error of every head
    against its mean |q~+k~|^2 for the paper's features and the best method."""
    from .plots import figure

    fig, axes = figure(3, width=4.6, height=4.0)
    steady = [s for s in summary if s["mode"] == "steady"]
    for name in dict.fromkeys(s["method"] for s in steady):
        pts = sorted((s["m"], s["median_a_err"], s["median_y_err"]) for s in steady if s["method"] == name)
        m_, a_, y_ = (np.array(x) for x in zip(*pts))
        style = dict(marker="o", lw=2.2 if name in ("iid", BEST) else 1.2, label=name)
        axes[0].loglog(m_, a_, **style)
        axes[1].loglog(m_, y_, **style)
    ms = sorted(ms)
    for ax, key, what in zip(axes[:2], ("median_a_err", "median_y_err"),
                             ("median over heads of median |a_t/Z_t - 1|", "median over heads of output rel. error")):
        first = [s for s in steady if s["method"] == "iid" and s["m"] == ms[0]]
        if first and len(ms) > 1:
            guide = first[0][key] * np.sqrt(ms[0] / np.array(ms, dtype=float))
            ax.loglog(ms, guide, "k:", lw=1, label=r"$\propto m^{-1/2}$")
        ax.set_xlabel("hidden neurons m per head")
        ax.set_title(what, fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=8)
    series = dict.fromkeys((("iid", ms[-1]), (BEST, ms[len(ms) // 2]), (BEST, ms[-1])))
    for (name, m), marker in zip(series, ("o", "x", "+")):
        sel = [r for r in rows if r["method"] == name and r["mode"] == "steady" and r["m"] == m]
        if sel:
            axes[2].scatter([r["rho"] for r in sel], [r["y_err"] for r in sel], marker=marker, s=16, label=f"{name}, m = {_m_label(m)}")
    axes[2].set_xscale("log")
    axes[2].set_yscale("log")
    axes[2].set_xlabel(r"mean $\|\tilde q+\tilde k\|^2$ of the head")
    axes[2].set_title("output rel. error of every head (steady state)", fontsize=10)
    axes[2].legend(fontsize=8)
    axes[2].grid(True, which="both", alpha=0.3)
    fig.savefig(path, dpi=130)
    _close(fig)


def run_minilm(
    text: Optional[str] = None,
    ms: Sequence[int] = (1_000, 10_000, 100_000),
    out: Any = "tripartite-minilm",
    methods: Sequence[str] = tuple(METHODS),
    network_methods: Sequence[str] = ("iid", BEST),
    network_modes: Sequence[str] = ("network",),
    model_methods: Sequence[str] = ("iid", BEST),
    model_modes: Sequence[str] = ("steady",),
    pairs: Any = None,
    seed: int = 0,
    figure_head: Optional[Tuple[int, int]] = None,
    num_threads: int = 0,
    progress: Optional[bool] = None,
) -> int:
    """``tripartite minilm``: the per-head study, the whole-model run and the figures.

    Writes into ``out``: ``heads.csv`` (one row per method, mode, m, layer and head), ``model.csv``
    (one row per method, mode and m of the whole model), ``summary.md`` (summary, goal check,
    whole-model table), ``heads.md`` (the same and the per-head tables), ``figure.png`` (the
    paper's figure) and ``summary.png`` (errors against m and against the heads' norms).

    Every method in ``methods`` runs in the steady state; those in ``network_methods`` also run as
    the continuous-time network in each of ``network_modes`` (names in :data:`MODES`; the network
    costs about five times the steady state). ``model_methods`` x ``model_modes`` replace every head
    of the whole model. ``text`` is the text of the per-head study (default: the package's
    ~200-token text); ``pairs`` a sentence-pair file (default: the package's 30 pairs).
    ``figure_head`` (layer, head), 0-based; default: :func:`default_figure_head`. A list of names
    may be given as one string (``methods="iid"``). All arguments are checked before the model is
    loaded or ``out`` is created, but the text's tokens and the range of ``figure_head``, which
    need the model: before ``out`` is created. That includes memory: when the study's peak at the
    largest m (the hidden weights, synapses and workspace of one layer's 12 heads, the softmax
    references and the model) exceeds the memory available, a MemoryError names ``ms`` and the size.
    Without ``model_methods`` there is no whole-model run, no ``model.csv`` and no whole-model table
    in ``summary.md``.
    """
    from .transformer import MiniLM, blas_on_one_thread, model_config

    # Everything is checked before the model is loaded or ``out`` is created.
    methods, network_methods, model_methods = (
        V.names(methods, "methods", METHODS, "method"), V.names(network_methods, "network_methods", METHODS, "method"),
        V.names(model_methods, "model_methods", METHODS, "method"))
    model_modes = V.names(model_modes, "model_modes", MODES, "mode")
    network_modes = V.names(network_modes, "network_modes", [n for n in MODES if MODES[n]], "network mode")
    ms = sorted(set(_ms(ms)))
    seed, num_threads = V.seed_value(seed), V.threads(num_threads)
    progress = V.flag(progress, "progress", optional=True)
    if figure_head is not None:
        if (not isinstance(figure_head, (tuple, list)) or len(figure_head) != 2
                or not all(V.is_int(i) and i >= 0 for i in figure_head)):
            raise ValueError(f"figure_head must be (layer, head), two non-negative integers, got {figure_head!r}")
    if text is not None and not isinstance(text, str):
        raise ValueError(f"text must be a str or None, got {type(text).__name__}")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"out must be a folder, got the file {str(out)!r}")
    # What runs at each m: the per-head study, the whole model, and the paper's figure (iid in the
    # steady state and as the network, the best method in the steady state).
    runs = ([(METHODS[n], False) for n in methods] + [(METHODS[n], True) for n in network_methods if network_modes]
            + [(METHODS[n], MODES[mode] is not None) for n in model_methods for mode in model_modes]
            + [(METHODS["iid"], True), (METHODS[BEST], False)])
    # the model's shape from its config files, before its weights load (the text is truncated to
    # max_length tokens); its weights as read from model.safetensors and as MiniLM keeps them, a copy
    cfg = model_config()
    _check_study_memory(ms, runs, cfg["num_layers"], cfg["num_heads"], cfg["head_dim"], cfg["head_dim"],
                        cfg["max_length"], np.float32, num_threads, 2 * cfg["weights_bytes"])
    t_start = time.perf_counter()
    text = DEFAULT_TEXT.read_text(encoding="utf-8") if text is None else text
    pair_list = read_pairs(DEFAULT_PAIRS if pairs is None else pairs) if model_methods else []  # only the whole model reads them

    model = MiniLM()
    if figure_head is not None and not (figure_head[0] < model.num_layers and figure_head[1] < model.num_heads):
        raise ValueError(f"figure_head must be (layer, head) with layer < {model.num_layers}, head < {model.num_heads}, "
                         f"got {tuple(figure_head)}")
    (ids,) = model.tokenize(text)
    if len(ids) <= 2:  # [CLS] and [SEP] alone: correlations over two queries measure nothing
        raise ValueError(f"text must contain at least one token besides [CLS] and [SEP], got {text!r}")
    out.mkdir(parents=True, exist_ok=True)
    note = f" (max_length {model.max_length}: a longer text is truncated)" if len(ids) == model.max_length else ""
    print(f"{model}\ntext: {len(ids)} tokens{note}; sentence pairs: {len(pair_list)}; m = {ms}; seed {seed}")
    q, k, v = model.attention_inputs(text)
    stats = head_inputs_stats(q, k)
    if figure_head is None:
        figure_head = default_figure_head(q, k)
    fl, fh = (int(i) for i in figure_head)

    n_layers = q.shape[0]
    network_modes = list(network_modes) if network_methods else []
    steps = len(methods) + len(network_methods) * len(network_modes) + len(model_methods) * len(model_modes)
    bar = _Progress(n_layers * len(ms) * steps + 3, progress)
    # NumPy's products (the model, the softmax references) alternate with tripartite calls here:
    # BLAS on one thread, so that its idle threads do not spin beside ours (see blas_on_one_thread).
    try:
        with blas_on_one_thread():
            t0 = time.perf_counter()
            rows = study_heads(q, k, v, ms, methods, ["steady"], seed, num_threads, bar)
            if network_modes:
                rows += study_heads(q, k, v, ms, network_methods, network_modes, seed, num_threads, bar)
            t_heads = time.perf_counter() - t0
            model_rows = (whole_model(model, pair_list, ms, model_methods, model_modes, seed, num_threads, bar)[0]
                          if model_methods else [])
            Z, panels = paper_figure_data(q, k, v, (fl, fh), ms, seed, num_threads, bar)
    finally:
        bar.close()

    summary = summarise_heads(rows)
    _write_csv(out / "heads.csv", HEAD_COLUMNS, rows)
    if model_methods:
        _write_csv(out / "model.csv", MODEL_COLUMNS, model_rows)
    try:
        figure_paper(out / "figure.png", Z, panels, (fl, fh), len(ids))
        figure_summary(out / "summary.png", summary, rows, ms)
        figures = "figure.png, summary.png"
    except ImportError:
        figures = "no figures (install matplotlib: pip install 'tripartite[plot]')"

    summary_md = _markdown_table(
        ["method", "mode", "m", "median r(a,Z)", "median r(log a, log Z)", "median med abs(a/Z-1)", "median y err",
         "worst r(a,Z)", "worst r(log)", "worst med abs(a/Z-1)", "worst y err", "worst head"],
        [[s["method"], s["mode"], s["m"], s["median_r_aZ"], s["median_r_logaZ"], s["median_a_err"], s["median_y_err"],
          s["worst_r_aZ"], s["worst_r_logaZ"], s["worst_a_err"], s["worst_y_err"], s["worst_head"]] for s in summary],
    )
    model_md = _markdown_table(
        ["method", "mode", "m", "cos mean", "cos median", "cos min", "Spearman", "Pearson", "seconds"],
        [[r[c] for c in MODEL_COLUMNS] for r in model_rows],
    )
    goal = goal_check(summary)
    t_total = time.perf_counter() - t_start
    n_sentences = len({s for p in pair_list for s in p})
    md = [
        "# Neuron-astrocyte attention in all-MiniLM-L6-v2",
        "",
        f"Made by `tripartite minilm` (seed {seed}): every head of the model replaced by a neuron-astrocyte network "
        f"with m = {', '.join(map(str, ms))} hidden neurons per head; per-head study on a text of {len(ids)} tokens, "
        + (f"whole model on {len(pair_list)} sentence pairs. " if model_methods else "no whole-model run. ")
        + f"Per-head study {t_heads:.0f} s, whole run {t_total:.0f} s.",
        "",
        "Heads are named layer.head, 0-based. q~ = q D^{-1/4}, so q~.k~ is the model's score; mean (q~+k~)^2 is over all "
        "query-key pairs. r(a,Z): Pearson correlation of a_t with Z_t over the queries; r(log): the same for log a_t and "
        "log Z_t; med abs(a/Z-1): median over the queries of |a_t/Z_t - 1|; y err: |y - y_softmax| / |y_softmax| over the "
        "head's output (Frobenius). The network: exact integrator, t_write = 100 ms, t_read = 1000 ms; everything in float32.",
        "",
        "Modes:",
        *[f"- {name}: {MODE_NOTES[name]}" for name in ["steady", *network_modes]],
        "",
        "Methods:",
        *[f"- {name}: {METHODS[name].description}" for name in dict.fromkeys([*methods, *network_methods, *model_methods])],
        "",
        f"Figure head: {fl}.{fh} (mean (q~+k~)^2 = {stats['rho'][fl, fh]:.3g}).",
        "",
        f"## Per-head summary (median head and worst head over the {q.shape[0] * q.shape[1]} heads)",
        "",
        "The median of each measure over the heads, and its worst value (the worst head is the one with the largest y err).",
        "",
        summary_md,
        "",
    ]
    if goal:
        md += ["## Goal: methods at m = 1e4 against the paper's features at m = 1e5", "", *goal, ""]
    if model_methods:
        md += ["## The whole model, every head replaced", "",
               f"Cosine similarity of each of the {n_sentences} sentences' embedding to the real model's (mean, median, "
               f"min), and the rank (Spearman) and linear (Pearson) correlation of the {len(pair_list)} pair similarities "
               "with the real model's.", "", model_md, ""]
    (out / "summary.md").write_text("\n".join(md), encoding="utf-8")
    for name, mode in dict.fromkeys((r["method"], r["mode"]) for r in rows):
        md += [f"## Per head: {name}, {mode}", "", _per_head_markdown(rows, name, mode, ms), ""]
    (out / "heads.md").write_text("\n".join(md), encoding="utf-8")

    print(f"\nper-head summary (median and worst over {q.shape[0] * q.shape[1]} heads):\n{summary_md}")
    if goal:
        print("\n" + "\n".join(goal))
    print(f"\nwhole model, every head replaced:\n{model_md}" if model_methods else "\nwhole model: not run (no model methods)")
    print(f"\nwrote heads.csv, {'model.csv, ' if model_methods else ''}heads.md, summary.md; {figures} in {out}")
    print(f"figure head: layer.head {fl}.{fh} (mean |q~+k~|^2 = {stats['rho'][fl, fh]:.3g}); total {t_total:.1f} s")
    return 0
