"""Argument checks shared by the public API. Every message names the argument, what was expected
and what was given; checks run before any work is done or any state is touched."""

from __future__ import annotations

import math
import os
from typing import Any, List, Optional, Sequence

import numpy as np

from . import _core

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def real_array(x: Any, name: str) -> np.ndarray:
    """``x`` as an array of a real numeric dtype (bool, complex, object and strings are refused)."""
    try:
        arr = np.asarray(x)
    except Exception as exc:  # ragged lists and the like
        raise ValueError(f"{name} must be an array of real numbers, got {type(x).__name__}: {exc}") from None
    if arr.dtype.kind not in "fiu":
        raise ValueError(f"{name} must have a real numeric dtype (floating point or integer), got dtype {arr.dtype}")
    return arr


# Arrays at least this large are scanned by the compiled core (one parallel pass, no temporary).
_FAST_FINITE_SIZE = 1 << 20


def finite(arr: np.ndarray, name: str, num_threads: int = 0, dtype: Optional[np.dtype] = None,
           magnitude: bool = False) -> Optional[float]:
    """Raise a ValueError naming `name` and the first NaN or Inf of `arr` (its value and index);
    with `dtype`, also if a value does not fit in it (:func:`fits_dtype`). With `magnitude`,
    returns max |arr| (0 if empty; else None). Large arrays are scanned by the core on
    `num_threads` threads (0: all cores), the caller's own count, so that a call asked to run on
    one thread does not validate on more; the core's scan gives max |arr| with no extra pass."""
    bad, largest = None, None
    if not arr.size:
        largest = 0.0
    elif arr.size >= _FAST_FINITE_SIZE and arr.dtype in FLOAT_DTYPES and arr.flags.c_contiguous:
        flat, largest = _core.scan_values(arr.reshape(-1), num_threads)
        bad = None if flat < 0 else np.unravel_index(flat, arr.shape)
    elif not np.isfinite(arr).all():
        bad = np.argwhere(~np.isfinite(arr))[0]
    if bad is not None:
        raise ValueError(f"{name} must be finite, got {arr[tuple(bad)]} at index {tuple(int(i) for i in bad)}")
    if magnitude and largest is None:
        largest = _largest_magnitude(arr)
    if dtype is not None:
        fits_dtype(arr, name, dtype, largest)
    return float(largest) if magnitude else None


def _largest_magnitude(arr: np.ndarray) -> float:
    """max |arr| of a non-empty real array: two passes (max and min), no temporary, and no
    overflow of a signed integer's most negative value (np.abs(int8(-128)) is -128)."""
    return max(float(np.max(arr)), -float(np.min(arr)))


def _precision_limit(dtype: np.dtype) -> float:
    """0.1/eps of the dtype: a log-rate's terms beyond it round by more than 0.1, every rate off by
    10 % or more (the bound of :func:`input_norms`, :func:`log_rate_terms` and, in double,
    :func:`bias_magnitude`)."""
    return 0.1 / float(np.finfo(dtype).eps)


def _rescale(what: str, dtype: np.dtype) -> str:
    """The remedy for log-rates beyond :func:`_precision_limit`: rescale, or (from float32) use float64."""
    return f"rescale {what}" + (" or use float64" if np.dtype(dtype) != np.float64 else "")


def input_norms(arr: np.ndarray, name: str, scale: float, dtype: np.dtype) -> float:
    """Keys and queries enter the log-rates as W x~ - |x~|^2/2; beyond |x~|^2 = 0.1/eps of the
    dtype the rounding of that difference exceeds 1, i.e. every rate would be off by a factor
    e or more. Refuse such inputs instead of returning noise. Returns max |x~|^2 (0 if empty)."""
    if not arr.size:
        return 0.0
    with np.errstate(over="ignore"):
        norm2 = float(np.max(np.sum(np.square(arr, dtype=np.float64), axis=-1))) * scale
    limit = _precision_limit(dtype)
    if not norm2 <= limit:
        raise ValueError(
            f"{name} is too large: max |{name}~|^2 = {norm2:.3g} exceeds {limit:.3g}, beyond which {np.dtype(dtype).name} "
            f"log-rates lose all precision ({_rescale('the inputs', dtype)})"
        )
    return norm2


def log_rate_terms(weights_max: float, norm2: float, name: str, d: int, dtype: np.dtype) -> None:
    """The log-rates' dot products W x~ are summed in the dtype: their rounding grows like eps times
    the sum of |W_rj x~_j|, at most max |W| sqrt(D |x~|^2). Beyond 0.1/eps every rate would be off
    by a factor e or more (and far beyond, the products overflow: weights of 1e308 gave outputs of
    0 with no warning). Refuse such weights and inputs together, as :func:`input_norms` does the
    inputs alone (0.1/eps bounds both)."""
    bound = weights_max * math.sqrt(d * norm2)
    limit = _precision_limit(dtype)
    if not bound <= limit:
        raise ValueError(
            f"hidden_weights and {name} are too large together: the terms of the log-rates W {name}~ sum to up to "
            f"max |hidden_weights| x sqrt(D max |{name}~|^2) = {weights_max:.3g} x {math.sqrt(d * norm2):.3g} = "
            f"{bound:.3g}, which exceeds {limit:.3g}, beyond which {np.dtype(dtype).name} log-rates lose all precision "
            f"({_rescale('them', dtype)})"
        )


def bias_magnitude(arr: np.ndarray, largest: Optional[float] = None) -> None:
    """The hidden bias enters the log-rates W x~ + b, whose common part is carried in double: its
    rounding grows like eps(double) |b| (an audit measured y moving by 8e-13 at a constant |b| = 1e4,
    5e-5 at 1e12 and 0.6 at 1e16, as the float64 reference does). Refuse biases beyond
    0.1 / eps(double), where the rounding of a
    log-rate exceeds 0.1, instead of returning noise. ``largest``: max |arr| if the caller has it
    (:func:`finite` with ``magnitude``), else two more passes over ``arr``."""
    if not arr.size:
        return
    if largest is None:
        largest = _largest_magnitude(arr)
    limit = _precision_limit(np.float64)
    if largest > limit:
        raise ValueError(f"hidden_bias is too large: max |hidden_bias| = {largest:.3g} exceeds {limit:.3g}, beyond which "
                         "the log-rates lose all precision even in float64 (only differences between neurons matter: "
                         "subtract a common part)")


def fits_dtype(arr: np.ndarray, name: str, dtype: np.dtype, largest: Optional[float] = None) -> None:
    """Values beyond the largest finite number of the compute dtype would become inf when cast to it
    (float64 weights given to a float32 computation): refuse them. Called by :func:`finite` given a
    dtype, after its scan (NaN would otherwise read as too large), with max |arr| if it has it
    (else two passes over ``arr``, its max and min, no temporary)."""
    limit = float(np.finfo(dtype).max)
    if not arr.size or arr.dtype.kind != "f" or float(np.finfo(arr.dtype).max) <= limit:
        return
    big = _largest_magnitude(arr) if largest is None else largest
    if not big <= limit:
        raise ValueError(
            f"{name} does not fit in {np.dtype(dtype).name}: max |{name}| = {big:.3g} exceeds its largest value {limit:.3g} "
            f"(it would become inf)"
        )


def value_magnitude(arr: np.ndarray, name: str, dtype: np.dtype, largest: Optional[float] = None) -> None:
    """Values are summed into the synapses; beyond sqrt(max float) those sums could overflow.
    ``largest``: max |arr| if the caller has it (:func:`finite` with ``magnitude``)."""
    limit = math.sqrt(float(np.finfo(dtype).max))
    if largest is None:
        largest = _largest_magnitude(arr) if arr.size else 0.0
    if not largest <= limit:
        raise ValueError(f"{name} is too large: max |{name}| = {largest:.3g} exceeds {limit:.3g} for {np.dtype(dtype).name}")


def _largest_norm(x: np.ndarray) -> float:
    """max over the rows of |x_row| in float64 (x finite), without overflowing the squares."""
    top = _largest_magnitude(x) if x.size else 0.0
    if top == 0.0:
        return 0.0
    return top * float(np.sqrt(np.max(np.sum(np.square(x.astype(np.float64) / top), axis=-1))))


def scores_fit(q: np.ndarray, k: np.ndarray, s: float, dtype: np.dtype) -> None:
    """A softmax's scores s q.k, and every partial sum of q k^T, are at most max(1, s) |q| |k|
    (Cauchy-Schwarz): refuse inputs for which that bound exceeds the dtype's largest value, where
    the scores could be inf and the softmax NaN. (Large finite scores are fine: a softmax
    subtracts each row's maximum.)"""
    bound = max(1.0, s) * _largest_norm(q) * _largest_norm(k)
    limit = float(np.finfo(dtype).max)
    if not bound <= limit:
        raise ValueError(f"q and k are too large: max(1, s) max |q| max |k| = {bound:.3g} exceeds {limit:.3g}, the "
                         f"largest {np.dtype(dtype).name}, so the scores s q.k could overflow (rescale the inputs)")


def attention_axes(q: np.ndarray, k: np.ndarray, v: Optional[np.ndarray] = None) -> None:
    """Check the last axes of q (..., Lq, D), k (..., Lk, D) and, if given, v (..., Lk, Dv): at
    least 2-D, D >= 1, k's D and v's Lk consistent."""
    for name, x, axes in (("q", q, "Lq, D"), ("k", k, "Lk, D"), ("v", v, "Lk, Dv")):
        if x is not None and x.ndim < 2:
            raise ValueError(f"{name} must have shape (..., {axes}), got {x.shape}")
    d = q.shape[-1]
    if d < 1:
        raise ValueError(f"q must have at least one feature (D >= 1), got shape {q.shape}")
    if k.shape[-1] != d:
        raise ValueError(f"k must have shape (..., Lk, D) with D = {d} (from q), got {k.shape}")
    if v is not None and v.shape[-2] != k.shape[-2]:
        raise ValueError(f"v must have shape (..., Lk, Dv) with Lk = {k.shape[-2]} (from k), got {v.shape}")


def attention_shapes(q: np.ndarray, k: np.ndarray, v: np.ndarray) -> tuple:
    """Check q (..., Lq, D), k (..., Lk, D), v (..., Lk, Dv) (:func:`attention_axes`) with leading
    axes that broadcast; returns the broadcast leading axes."""
    attention_axes(q, k, v)
    try:
        return np.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
    except ValueError:
        raise ValueError(f"leading axes of q {q.shape}, k {k.shape}, v {v.shape} do not broadcast") from None


def exact_array(arr: np.ndarray, name: str, shape: tuple, dtype: Any) -> np.ndarray:
    """``arr`` with exactly this shape and dtype (stored state: no broadcasting, no cast)."""
    if arr.shape != tuple(shape) or arr.dtype != np.dtype(dtype):
        raise ValueError(
            f"{name} must have shape {tuple(shape)} and dtype {np.dtype(dtype).name}, got shape {arr.shape} and dtype {arr.dtype}"
        )
    return arr


def compute_dtype(*arrays: np.ndarray) -> np.dtype:
    """float64 if any input is float64 (or an integer type), else float32."""
    kinds = [a.dtype for a in arrays]
    if any(d == np.float64 or d.kind in "iu" or d.itemsize > 8 for d in kinds):
        return np.dtype(np.float64)
    return np.dtype(np.float32)


def float_dtype(dtype: Any, name: str = "dtype") -> np.dtype:
    if dtype is None:  # np.dtype(None) would silently mean float64
        raise ValueError(f"{name} must be float32 or float64, got None")
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise ValueError(f"{name} must be float32 or float64, got {dtype!r}") from None
    if dt not in FLOAT_DTYPES:
        raise ValueError(f"{name} must be float32 or float64, got {dt}")
    return dt


def positive(value: Any, name: str, unit: str = "") -> float:
    v = number(value, name)
    if not v > 0:
        raise ValueError(f"{name} must be positive{(' (' + unit + ')') if unit else ''}, got {value!r}")
    return v


# eta only scales H, g and a (y does not depend on it), but the window maps carry eta / t_write
# times the window: far outside this range they overflow double or fall below its normal numbers
# (eta = 1e307 gave NaN calcium; eta = 1e-306 with windows of 1e-3 tau zeroed the calcium's terms).
ETA_RANGE = (1e-100, 1e100)


def learning_rate(eta: Any) -> float:
    """eta, positive and within ETA_RANGE."""
    eta = positive(eta, "eta")
    low, high = ETA_RANGE
    if not low <= eta <= high:
        raise ValueError(f"eta must be in [{low:g}, {high:g}] (outputs do not depend on it; beyond that range "
                         f"the window maps leave double's range), got {eta:g}")
    return eta


# The window maps take each window in units of the time constants: t / tau far outside this range
# leaves double's range (t_write / tau_hidden = 1e310 gave NaN synapses and calcium, and leak t_write
# = 1e310 likewise; t_write / tau_hidden = 1e-170 let the calcium underflow to 0, so every output
# read 0). Measured: finite outputs and positive calcium for window / tau_hidden from 1e-158 to 1e306,
# and for window / tau_astro down to 1e-306 in float64 (in float32 the outputs of so slow an
# astrocyte exceed float32's range below about 1e-36: inf, with the underflow warning).
TIME_RATIO_RANGE = (1e-100, 1e100)


def network_params(tau_hidden: Any, tau_astro: Any, t_write: Any, t_read: Any, eta: Any, leak: Any) -> dict:
    """The time constants, windows (ms, positive), learning rate (:func:`learning_rate`) and leak
    (1/ms, >= 0) of a network, as the network and reference.simulate take them, with each window
    over each time constant within TIME_RATIO_RANGE (:func:`_time_scales`)."""
    p = dict(tau_hidden=positive(tau_hidden, "tau_hidden", "ms"), tau_astro=positive(tau_astro, "tau_astro", "ms"),
             t_write=positive(t_write, "t_write", "ms"), t_read=positive(t_read, "t_read", "ms"),
             eta=learning_rate(eta), leak=non_negative(leak, "leak"))
    _time_scales(p)
    return p


def _time_scales(p: dict) -> None:
    """Each window over each time constant, and leak times the write window, within
    TIME_RATIO_RANGE (p has checked positive tau_hidden, tau_astro, t_write, t_read and leak >= 0)."""
    low, high = TIME_RATIO_RANGE
    for window in ("t_write", "t_read"):
        for tau in ("tau_hidden", "tau_astro"):
            ratio = p[window] / p[tau]
            if not low <= ratio <= high:
                raise ValueError(f"{window} / {tau} must be in [{low:g}, {high:g}] (beyond that range the window "
                                 f"maps leave double's range), got {window} = {p[window]:g} ms and {tau} = "
                                 f"{p[tau]:g} ms, a ratio of {ratio:g}")
    if p["leak"] * p["t_write"] > high:
        raise ValueError(f"leak * t_write must be at most {high:g} (beyond, the window maps leave double's range), "
                         f"got leak = {p['leak']:g} / ms and t_write = {p['t_write']:g} ms")


def non_negative(value: Any, name: str) -> float:
    v = number(value, name)
    if v < 0:
        raise ValueError(f"{name} must be >= 0, got {value!r}")
    return v


def number(value: Any, name: str) -> float:
    if isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype.kind in "iuf":
        value = value[()]  # a 0-d array of a real number is that number (as float() always read it)
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name} must be a real number, got {value!r}")
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return v


def is_int(value: Any) -> bool:
    """Whether ``value`` is a Python or NumPy integer; bools (Python's and NumPy's) are not, nor are
    floats with integral values."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def positive_int(value: Any, name: str) -> int:
    if not is_int(value) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def non_negative_int(value: Any, name: str) -> int:
    if not is_int(value) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    return int(value)


def seed_value(seed: Any) -> int:
    return non_negative_int(seed, "seed")


# More threads than this is a mistake, not a request: the core would start them all and size
# per-thread scratch for each (2**31 threads asked for a 960 GiB working set).
MAX_THREADS = 4096


def threads(num_threads: Any) -> int:
    if not is_int(num_threads) or num_threads < 0:
        raise ValueError(f"num_threads must be a non-negative integer (0 = all cores), got {num_threads!r}")
    if num_threads > MAX_THREADS:
        raise ValueError(
            f"num_threads must be at most {MAX_THREADS} (0 = all {_core.max_threads()} cores), got {num_threads!r}"
        )
    return int(num_threads)


def indices(value: Any, name: str, bound: int, what: str) -> np.ndarray:
    """A non-empty list (or 1-D integer array) of integer indices in [0, bound), as int64. Floats,
    bools, strings and a bare integer are refused, not rounded or read as characters."""
    items = None
    if not isinstance(value, (str, bytes)) and not (isinstance(value, np.ndarray) and value.ndim != 1):
        try:
            items = list(value)
        except TypeError:
            pass
    what = what + " " if what else ""
    if items is None or not all(is_int(i) for i in items):
        raise ValueError(f"{name} must be a list of integer {what}indices, got {value!r}")
    if not items or min(items) < 0 or max(items) >= bound:
        raise ValueError(f"{name} must be {what}indices in [0, {bound}), at least one, got {[int(i) for i in items]}")
    return np.asarray(items, dtype=np.int64)


def flag(value: Any, name: str, optional: bool = False) -> Optional[bool]:
    """A bool (NumPy's included); with ``optional``, None too. Strings such as "no" are refused
    rather than read as True."""
    if optional and value is None:
        return None
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False{' (or None)' if optional else ''}, got {value!r}")
    return bool(value)


def names(value: Any, name: str, options: Sequence[str], what: str) -> List[str]:
    """A list of names from ``options`` (each checked as :func:`choice` does, ``what`` naming one);
    a bare string is one name (``methods="iid"``)."""
    items = [value] if isinstance(value, str) else value
    try:
        items = list(items)
    except TypeError:
        raise ValueError(f"{name} must be a list of names among {', '.join(options)}, got {value!r}") from None
    for item in items:
        if not isinstance(item, str) or item not in options:
            raise ValueError(f"{what} must be one of {', '.join(options)}, got {item!r} (in {name}={value!r})")
    return items


def choice(value: Any, name: str, options: tuple) -> str:
    if not isinstance(value, str) or value not in options:
        raise ValueError(f"{name} must be one of {', '.join(repr(o) for o in options)}, got {value!r}")
    return value


# The largest dt, in units of min(tau_hidden, tau_astro, 1/leak): explicit Euler keeps the rates
# non-negative and monotone only for dt <= tau. rk4 is linearly stable up to
# 2.78 of them, but beyond about 1.2 its stages overshoot below zero. Measured with windows of
# 4 dt, tau_hidden = tau_astro, values v ~ N(0, 1), 20 seeds of 6 tokens: at dt = 2.5 tau the
# calcium went negative in 41 of 120 reads (which then return 0), and at 2 tau y differed from the
# exact integrator's by up to 3.5; at 1 tau by up to 0.01. So rk4 keeps euler's limit.
MAX_STEP = {"euler": 1.0, "rk4": 1.0}
# rk4's limit before 2026-11-30: checkpoints saved with a dt up to it still load (with a warning).
LEGACY_MAX_STEP_RK4 = 2.5
# Steps of dt per window: euler and rk4 compose that many step maps per window (and monitors
# sample on that grid), so a dt far below any time scale is refused rather than left to run.
MAX_STEPS = 1e8


def step_limit(integrator: str, p: dict, max_step: Optional[float] = None) -> float:
    """The largest stable dt (ms) of "euler" or "rk4" for the parameters ``p``: ``max_step`` (by
    default MAX_STEP[integrator]) x min(tau_hidden, tau_astro, 1/leak)."""
    step = _max_step(integrator, max_step)
    limit = step * min(p["tau_hidden"], p["tau_astro"])
    return min(limit, step / p["leak"]) if p["leak"] > 0 else limit


def _max_step(integrator: str, max_step: Optional[float]) -> float:
    """The stability factor of "euler" or "rk4": ``max_step``, or by default MAX_STEP[integrator]."""
    return MAX_STEP[integrator] if max_step is None else max_step


def time_steps(dt: float, integrator: str, p: dict, exact_available: bool = True, max_step: Optional[float] = None) -> tuple:
    """Steps of dt in a write and in a read window, for checked positive ``dt`` and ``p`` (tau_hidden,
    tau_astro, t_write, t_read, leak). dt must be at most each window, divide both into whole steps
    (euler, rk4) and be stable: at most MAX_STEP x min(tau_hidden, tau_astro, 1/leak). "exact"
    takes one map per window: (1, 1)."""
    for window in ("t_write", "t_read"):
        if dt > p[window]:
            raise ValueError(f"dt must be at most {window} = {p[window]} ms, got dt = {dt} ms")
        if p[window] / dt > MAX_STEPS:
            raise ValueError(
                f"dt = {dt:g} ms is too small: {window} / dt = {p[window] / dt:.3g} steps per window, "
                f"more than {MAX_STEPS:.0e}"
            )
    if integrator == "exact":
        return 1, 1
    limit = step_limit(integrator, p, max_step)
    if dt > limit:
        raise ValueError(
            f"dt = {dt} ms is unstable for the {integrator} integrator: it must be at most "
            f"{limit:g} ms ({_max_step(integrator, max_step):g} x min(tau_hidden, tau_astro, 1/leak)); "
            "use a smaller dt" + (" or integrator='exact'" if exact_available else "")
        )
    return whole_steps(dt, p)


def whole_steps(dt: float, p: dict, why: str = "") -> tuple:
    """Steps of dt in a write and in a read window (p: t_write, t_read), refusing a dt that does
    not divide both into whole steps (to 1e-9 of the window); ``why`` is added to the message."""
    steps = []
    for window in ("t_write", "t_read"):
        n = round(p[window] / dt)
        if abs(n * dt - p[window]) > 1e-9 * p[window]:
            raise ValueError(f"dt must divide {window} = {p[window]} ms into whole steps{why}, got dt = {dt} ms")
        steps.append(n)
    return steps[0], steps[1]


def scale_value(scale: Optional[float], d_key: int) -> float:
    """The score scale s (q.k is multiplied by s); default 1/sqrt(d_key)."""
    if scale is None:
        return 1.0 / math.sqrt(d_key)
    return positive(scale, "scale")


def available_memory() -> Optional[int]:
    """Bytes of memory available to a new allocation, if the system says."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_memory(n_bytes: float, what: str, error: type = MemoryError) -> None:
    """MemoryError (or the subclass ``error``) naming the size, before allocating, when ``n_bytes``
    cannot fit."""
    avail = available_memory()
    if avail is not None and n_bytes > avail:
        raise error(f"{what}: {n_bytes / 2**30:.2f} GiB needed, but only {avail / 2**30:.2f} GiB of memory is available")
