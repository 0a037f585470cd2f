"""Figures (needs matplotlib: ``pip install tripartite[plot]``).

Every helper checks its data before it draws anything: bad data (empty or mismatched arrays,
NaN or Inf, values a log axis cannot show, a head the monitor did not record) raises a ValueError
naming the argument, and leaves the axes untouched."""

from __future__ import annotations

from typing import Any, Optional, Sequence, Tuple

import numpy as np

from . import _validate as V


def _pyplot():
    try:
        import matplotlib

        if not _interactive():  # no pyplot yet: draw off-screen, never open a window
            matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError("plotting needs matplotlib: pip install 'tripartite[plot]'") from None
    return plt


def _interactive() -> bool:
    import sys

    return "matplotlib.pyplot" in sys.modules


def _samples(x: Any, name: str, allow_inf: bool = False) -> np.ndarray:
    """``x`` flattened to a non-empty finite float64 sample (with ``allow_inf``, +-inf allowed: an
    overflow, left out of a log axis), or a ValueError naming it."""
    arr = V.real_array(x, name)
    if not arr.size:
        raise ValueError(f"{name} must have at least one value, got shape {arr.shape}")
    if allow_inf:
        if np.isnan(arr).any():
            raise ValueError(f"{name} must not be NaN, got nan at index {tuple(int(i) for i in np.argwhere(np.isnan(arr))[0])}")
    else:
        V.finite(arr, name)
    return arr.astype(float).ravel()


def _same_size(x: np.ndarray, y: np.ndarray, names: str) -> None:
    if x.size != y.size:
        raise ValueError(f"{names} must have one value per point each, got {x.size} and {y.size} values")


def astrocyte_vs_normaliser(ax: Any, a: Any, Z: Any, label: Optional[str] = None, **scatter_kw) -> Any:
    """The paper's figure: the astrocyte's response a_t against the softmax normaliser Z_t, one
    point per query, on log-log axes with the identity line.

    ``a`` and ``Z`` (any shape, flattened) must have the same number of values, at least one, no
    NaN; Z positive and a non-negative. Points that a log axis cannot show are left out: an a_t of
    0 (an underflow) and values that overflowed to inf (Z_t or a_t at extreme norms, as the study
    can meet them); at least one point must remain.
    """
    a, Z = _samples(a, "a", allow_inf=True), _samples(Z, "Z", allow_inf=True)
    _same_size(a, Z, "a and Z")
    if not (Z > 0).all():
        raise ValueError(f"Z must be positive (a softmax normaliser, on a log axis), got min Z = {Z.min():g}")
    if not (a >= 0).all():
        raise ValueError(f"a must be non-negative (an astrocyte's response), got min a = {a.min():g}")
    shown = np.isfinite(a) & np.isfinite(Z) & (a > 0)
    if not shown.any():
        raise ValueError(f"a and Z have no point a log-log axis can show (all {a.size} have a = 0 or an inf)")
    a, Z = a[shown], Z[shown]
    ax.scatter(Z, a, s=scatter_kw.pop("s", 10), alpha=scatter_kw.pop("alpha", 0.7), label=label, **scatter_kw)
    lo, hi = min(Z.min(), a.min()), max(Z.max(), a.max())
    ax.plot([lo, hi], [lo, hi], "k--", lw=1)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(r"softmax normaliser $Z_t=\sum_\tau e^{q_t\cdot k_\tau/\sqrt{D}}$")
    ax.set_ylabel(r"astrocyte response $a_t$")
    return ax


def error_vs_m(ax: Any, ms: Sequence[int], errors: Sequence[float], label: Optional[str] = None) -> Any:
    """Relative error against the number of hidden neurons m, with the m^{-1/2} law through the
    first point.

    ``ms`` and ``errors`` must have the same number of values, at least one, all finite and
    positive (both axes are logarithmic)."""
    ms, errors = _samples(ms, "ms"), _samples(errors, "errors")
    _same_size(ms, errors, "ms and errors")
    for arr, name in ((ms, "ms"), (errors, "errors")):
        if not (arr > 0).all():
            raise ValueError(f"{name} must be positive (on a log axis), got {arr.min():g}")
    ax.loglog(ms, errors, "o-", label=label)
    ax.loglog(ms, errors[0] * np.sqrt(ms[0] / ms), "k:", lw=1, label=r"$\propto m^{-1/2}$")
    ax.set_xlabel("hidden neurons m")
    ax.set_ylabel("relative error vs softmax attention")
    ax.legend()
    return ax


def _shade_windows(ax: Any, monitor: Any) -> None:
    """Shades the writing windows of a monitor's time axis."""
    t, kind = monitor.t, monitor.window
    writing = kind == "write"
    start = None
    for i in range(len(t)):
        if writing[i] and start is None:
            start = t[i - 1] if i else t[i]
        if start is not None and (not writing[i] or i == len(t) - 1):
            ax.axvspan(start, t[i - 1] if not writing[i] else t[i], color="0.9", lw=0)
            start = None


def _head_position(monitor: Any, head: Optional[int], variable: str) -> int:
    """The position in ``monitor.heads`` of the head numbered ``head`` (the network's head index,
    as given to ``net.monitor(heads=...)``; None: the first recorded head), after checking that
    ``monitor`` is a StateMonitor recording ``variable``."""
    from .monitor import StateMonitor

    if not isinstance(monitor, StateMonitor):
        raise ValueError(f"monitor must be a StateMonitor (from net.monitor(...)), got {type(monitor).__name__}")
    if variable not in monitor.variables:
        raise ValueError(f"monitor must record {variable!r} (net.monitor(({variable!r}, ...))), it records "
                         f"{', '.join(monitor.variables)}")
    recorded = [int(h) for h in monitor.heads]
    if head is None:
        return 0
    if not V.is_int(head) or int(head) not in recorded:
        raise ValueError(f"head must be one of the heads the monitor records, {recorded} (the network's head "
                         f"numbers, as given to net.monitor(heads=...)), got {head!r}")
    return recorded.index(int(head))


def calcium_trace(ax: Any, monitor: Any, head: Optional[int] = None) -> Any:
    """The astrocyte's calcium a(t) from a monitor recording "calcium"; writing windows shaded.

    ``head`` is the network's head number, as given to ``net.monitor(heads=...)``: after
    ``mon = net.monitor("calcium", heads=[1])``, ``calcium_trace(ax, mon, head=1)``. Default: the
    first recorded head. A head the monitor does not record raises a ValueError."""
    i = _head_position(monitor, head, "calcium")
    _shade_windows(ax, monitor)
    ax.plot(monitor.t, monitor.calcium[:, i], lw=1.2)
    ax.set_xlabel("time (ms)")
    ax.set_ylabel("astrocyte calcium a(t)")
    return ax


def synapse_traces(ax: Any, monitor: Any, head: Optional[int] = None) -> Any:
    """Traces of the monitored tripartite synapses H_dr(t) from a monitor recording "synapses";
    writing windows shaded. ``head`` as in :func:`calcium_trace`: the network's head number (as
    given to ``net.monitor(heads=...)``), by default the first recorded head."""
    h = _head_position(monitor, head, "synapses")
    _shade_windows(ax, monitor)
    for i, (d, r) in enumerate(monitor.synapse_indices):
        ax.plot(monitor.t, monitor.synapses[:, h, i], lw=1.2, label=f"H[{d},{r}]")
    ax.set_xlabel("time (ms)")
    ax.set_ylabel("synaptic weight")
    ax.legend(fontsize="small")
    return ax


def figure(ncols: int = 1, width: float = 5.0, height: float = 4.0) -> Tuple[Any, np.ndarray]:
    """A new figure with ``ncols`` axes side by side, each ``width`` x ``height`` inches: returns
    the matplotlib Figure and a 1-D array of its ``ncols`` Axes."""
    ncols = V.positive_int(ncols, "ncols")
    V.positive(width, "width", "inches")
    V.positive(height, "height", "inches")
    plt = _pyplot()
    fig, axes = plt.subplots(1, ncols, figsize=(width * ncols, height), constrained_layout=True)
    return fig, np.atleast_1d(axes)
