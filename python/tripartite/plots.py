"""Figures (needs matplotlib: ``pip install tripartite[plot]``)."""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np


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


def astrocyte_vs_normaliser(ax: Any, a: np.ndarray, Z: np.ndarray, label: Optional[str] = None, **scatter_kw) -> Any:
    """The paper's figure: the astrocyte's response a_t against the softmax normaliser Z_t, one
    point per query, on log-log axes with the identity line."""
    a, Z = np.asarray(a, dtype=float).ravel(), np.asarray(Z, dtype=float).ravel()
    ax.scatter(Z, a, s=scatter_kw.pop("s", 10), alpha=scatter_kw.pop("alpha", 0.7), label=label, **scatter_kw)
    lo, hi = min(Z.min(), a[a > 0].min() if (a > 0).any() else Z.min()), max(Z.max(), a.max())
    ax.plot([lo, hi], [lo, hi], "k--", lw=1)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(r"softmax normaliser $Z_t=\sum_\tau e^{q_t\cdot k_\tau/\sqrt{D}}$")
    ax.set_ylabel(r"astrocyte response $a_t$")
    return ax


def error_vs_m(ax: Any, ms: Sequence[int], errors: Sequence[float], label: Optional[str] = None) -> Any:
    """Relative error against the number of hidden neurons m, with the m^{-1/2} law through the
    first point."""
    ms, errors = np.asarray(ms, dtype=float), np.asarray(errors, dtype=float)
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


def calcium_trace(ax: Any, monitor: Any, head: int = 0) -> Any:
    """The astrocyte's calcium a(t) from a monitor recording "calcium"; writing windows shaded."""
    _shade_windows(ax, monitor)
    ax.plot(monitor.t, monitor.calcium[:, head], lw=1.2)
    ax.set_xlabel("time (ms)")
    ax.set_ylabel("astrocyte calcium a(t)")
    return ax


def synapse_traces(ax: Any, monitor: Any, head: int = 0) -> Any:
    """Traces of the monitored tripartite synapses H_dr(t); writing windows shaded."""
    _shade_windows(ax, monitor)
    for i, (d, r) in enumerate(monitor.synapse_indices):
        ax.plot(monitor.t, monitor.synapses[:, head, i], lw=1.2, label=f"H[{d},{r}]")
    ax.set_xlabel("time (ms)")
    ax.set_ylabel("synaptic weight")
    ax.legend(fontsize="small")
    return ax


def figure(ncols: int = 1, width: float = 5.0, height: float = 4.0):
    """A new figure with ``ncols`` axes side by side."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, ncols, figsize=(width * ncols, height), constrained_layout=True)
    return fig, np.atleast_1d(axes)
