"""``tripartite demo``: a default network in continuous time, compared with the paper's steady
state and with softmax attention."""

from __future__ import annotations

import math
import time

import numpy as np

from . import _validate as V
from . import reference
from .attention import attention
from .network import NeuronAstrocyteNetwork


def demo_inputs(L: int, D: int, seed: int):
    """Random queries, keys and values with moderate norms (|q~|^2, |k~|^2 <~ 1.7). Queries and keys
    share one direction with random strengths, so that Z_t varies across queries as in a trained
    transformer's head."""
    rng = np.random.default_rng(seed)
    root_s = (1.0 / math.sqrt(D)) ** 0.5  # x~ = x s^{1/2}
    e = rng.standard_normal(D)
    e /= np.linalg.norm(e)

    def draw(strength):
        noise = rng.standard_normal((L, D)) * (0.5 / math.sqrt(D))
        return (strength[:, None] * e + noise) / root_s

    q = draw(rng.uniform(-1.0, 1.0, L))
    k = draw(rng.normal(0.5, 0.3, L))
    v = rng.standard_normal((L, D))
    return q, k, v


def _rel(x, ref):
    return float(np.linalg.norm(x - ref) / np.linalg.norm(ref))


def run_demo(n_hidden: int, L: int, D: int, seed: int, out: str, num_threads: int = 0) -> int:
    """``tripartite demo``: simulate a network and compare it with the steady state and softmax.

    Draws L random tokens of dimension D (:func:`demo_inputs`), writes them into a default
    :class:`NeuronAstrocyteNetwork` with ``n_hidden`` hidden neurons in continuous time, reads every
    query, and prints a table: the network against the steady state with the same weights and
    both against softmax attention, and how the astrocyte's calcium a_t tracks the softmax
    normaliser Z_t. Then the steady state's error against softmax for m = 256 to 65536 (3 seeds
    each, the m^{-1/2} law), and, when matplotlib is installed, a figure of both written to ``out``
    (any format matplotlib writes, chosen by the extension).

    Parameters
    ----------
    n_hidden : int
        m, hidden neurons of the simulated network (>= 1).
    L : int
        Tokens, at least 2 (a correlation over the queries needs two).
    D : int
        Key and value dimension (>= 1).
    seed : int
        Seed of the inputs and the hidden weights (>= 0).
    out : str or path
        Where the figure is written.
    num_threads : int
        0 = all cores.

    Returns 0. The arguments are checked before any work (a ValueError names the argument); the
    command line also checks ``out``'s folder and format and that the run fits in memory.
    """
    V.positive_int(n_hidden, "n_hidden")
    if not V.is_int(L) or L < 2:
        raise ValueError(f"L must be an integer of at least 2 tokens, got {L!r}")
    V.positive_int(D, "D")
    V.seed_value(seed)
    V.threads(num_threads)
    t_start = time.perf_counter()
    q, k, v = demo_inputs(L, D, seed)
    net = NeuronAstrocyteNetwork(D, D, n_hidden, seed=seed, num_threads=num_threads)
    print(net)
    t0 = time.perf_counter()
    net.write(k, v)
    y_net, a_net = net.read(q, return_astrocyte=True)
    t_sim = time.perf_counter() - t0

    W = net.hidden_weights[0]
    y_ss, a_ss = attention(q.astype(np.float32), k.astype(np.float32), v.astype(np.float32), hidden_weights=W,
                           return_astrocyte=True, num_threads=num_threads)
    y_soft = reference.softmax_attention(q, k, v)
    Z = reference.softmax_normaliser(q, k)

    rows = [
        ("continuous-time network vs steady state (same W)", _rel(y_net, y_ss),
         f"O(tau_hidden/t_write), = {net.params['tau_hidden'] / net.params['t_write']:g} here"),
        ("steady state vs softmax attention", _rel(y_ss, y_soft), "random features, ~ m^-1/2"),
        ("continuous-time network vs softmax attention", _rel(y_net, y_soft), ""),
        ("corr(a_t, Z_t), network", float(np.corrcoef(a_net, Z)[0, 1]), "Pearson, over the queries"),
        ("corr(a_t, Z_t), steady state", float(np.corrcoef(a_ss, Z)[0, 1]), ""),
        ("median |a_t / Z_t - 1|, network", float(np.median(np.abs(a_net / Z - 1))), ""),
    ]
    print(f"\nsimulated {L} tokens written + {L} queries read = {net.time / 1000:g} s of network time "
          f"in {t_sim:.2f} s wall ({net.n_synapses:,} tripartite synapses)\n")
    width = max(len(r[0]) for r in rows)
    print(f"{'quantity':<{width}}  {'value':>10}  note")
    for name, value, note in rows:
        print(f"{name:<{width}}  {value:>10.4g}  {note}")

    ms = [256, 1024, 4096, 16384, 65536]  # the m^-1/2 law, whatever the network's own m
    errs = []
    for m in ms:
        e = [_rel(attention(q, k, v, n_hidden=m, seed=s, num_threads=num_threads), y_soft) for s in range(3)]
        errs.append(float(np.sqrt(np.mean(np.square(e)))))
    slope = float(np.polyfit(np.log(ms), np.log(errs), 1)[0])
    print("\nsteady state vs softmax, RMS relative error over 3 seeds:")
    for m, e in zip(ms, errs):
        print(f"  m = {m:>6}: {e:.4f}")
    print(f"  log-log slope {slope:.3f} (m^-1/2 law: -0.5)")

    from .plots import astrocyte_vs_normaliser, error_vs_m, figure

    try:
        fig, axes = figure(2)
    except ImportError:  # matplotlib is an optional extra
        print("\n(no figure: install matplotlib, e.g. pip install 'tripartite[plot]')")
        return 0
    astrocyte_vs_normaliser(axes[0], a_ss, Z, label=f"steady state, m = {n_hidden}", marker="x", s=14)
    astrocyte_vs_normaliser(axes[0], a_net, Z, label=f"continuous-time network, m = {n_hidden}")
    axes[0].set_title("astrocyte response vs softmax normaliser")
    axes[0].legend()
    error_vs_m(axes[1], ms, errs, label="steady state")
    axes[1].set_title(f"error vs hidden neurons (D = {D}, L = {L})")
    fig.savefig(out, dpi=120)
    print(f"\nfigure: {out}")
    print(f"total wall time {time.perf_counter() - t_start:.1f} s")
    return 0
