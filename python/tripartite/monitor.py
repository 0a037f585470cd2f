"""Monitors: record chosen variables of a network, for chosen indices, every n-th step.

Inside a window the core advances the network in closed form (see cpp/tripartite/window.hpp), so a
monitor does not slow the simulation down by stepping it: for each window it takes the state at
the window's start and the maps from there to each sampled step (the same maps the core uses),
and evaluates only the recorded entries. A hidden neuron's rate, its astrocyte weight and its
synapses move by those maps from their own values and the neuron's rate u of the window's input
alone; the calcium and the outputs need sums over all hidden neurons (g.h, g.u, h.h, h.u, u.u and
H h, H u). Monitored runs go in the core's segments as unmonitored ones do. The core hands over
each window's starting calcium and Gram sums (the ones its own calcium update takes) and, for a
monitor of the outputs, each read's H h and H u at its start (two more readouts of the synapses
in the same pass); each monitor carries its neurons and synapses through the windows from their
state before the run (in float64, a dot product for each neuron's u). While writing, the outputs
are the values the output neurons are clamped to. The state at a monitor's creation takes H h
from the core's pass over a head's weights, state and synapses (cpp/tripartite/monitor.hpp;
_window_sums_reference is the same in NumPy). Memory is bounded by samples x recorded indices.
"""

from __future__ import annotations

import math
from typing import Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import _core
from . import _validate as V
from . import reference

VARIABLES = ("calcium", "hidden", "astrocyte_weights", "synapses", "outputs")
# The variables of single neurons and synapses: each evolves by the window's maps from its own
# starting value and its neuron's rate of the window's input alone, so a run in the core's segments
# can carry the recorded entries through its windows itself (StateMonitor._local_start).
LOCAL = ("hidden", "astrocyte_weights", "synapses")


def _pairs(synapses, d_value: int, n_hidden: int) -> np.ndarray:
    """(k, 2) int64 (output d, hidden r) pairs from a non-empty list of integer pairs."""
    expect = f"a list of (output d, hidden r) integer pairs, e.g. [(0, 1)], got {synapses!r}"
    if isinstance(synapses, (str, bytes)):
        raise ValueError(f"synapses must be {expect}")
    try:
        items = [tuple(p) for p in synapses]
    except TypeError:  # not iterable, or a flat list of numbers
        raise ValueError(f"synapses must be {expect}") from None
    if not items or any(len(p) != 2 or not all(V.is_int(i) for i in p) for p in items):
        raise ValueError(f"synapses must be {expect}")
    if any(not (0 <= d < d_value and 0 <= r < n_hidden) for d, r in items):
        raise ValueError(f"synapses must be (output d < {d_value}, hidden r < {n_hidden}) pairs, got {[(int(d), int(r)) for d, r in items]}")
    return np.asarray(items, dtype=np.int64)


def _calcium(A: np.ndarray, z: np.ndarray) -> np.ndarray:
    """a at each sample, A (samples, 6) . z (the calcium and the five Gram sums at the window's
    start; z (6,) gives (samples,), z (heads, 6) gives (samples, heads)), summed term by term in
    order, leaving out the terms whose coefficient is 0 as the core does: a read's u.u term has
    none, and a query whose rates lie hundreds of units of log above the keys' overflows u.u to
    inf, which 0 * inf would turn into NaN. Each sample's value depends on its own row of A only
    (monitors sampling different steps agree where they meet)."""
    if z.ndim == 2:
        A = A[:, None, :]
    with np.errstate(invalid="ignore", over="ignore"):
        terms = np.where(A != 0, A * z, 0.0)
    a = terms[..., 0]
    for t in range(1, terms.shape[-1]):
        a = a + terms[..., t]
    return a


def _window_sums(net, hd: int, x: Optional[np.ndarray], with_outputs: bool):
    """What the samples of one window of head ``hd`` need, from the network's state at the
    window's start and the window's input x (D,) (None: no input), all float64 in true units:
    (sums, u, Hh, Hu) with sums = (g.h, g.u, h.h, h.u, u.u), u the rates of the input (m,), and
    with ``with_outputs`` Hh = H h, Hu = H u (else None). The core's pass
    (cpp/tripartite/monitor.hpp); :func:`_window_sums_reference` is the same in NumPy."""
    xs, c = _scaled_input(net, x)
    kernel = _core.monitor_window_float32 if net._dtype == np.float32 else _core.monitor_window_float64
    e_h, e_g = np.exp(net._scalars[hd, 3]), np.exp(net._scalars[hd, 2])
    sums, u, Hh, Hu = kernel(net._W[hd], xs, c, None if net._bias is None else net._bias[hd], net._h[hd], net._g[hd],
                             float(e_h), float(e_g), net._H[hd] if with_outputs else None, net.num_threads)
    return sums, u, None if Hh is None else Hh * e_g, None if Hu is None else Hu * e_g  # H's scale is g's


def _window_sums_reference(net, hd: int, x: Optional[np.ndarray], with_outputs: bool):
    """:func:`_window_sums` in NumPy, the readable version the core's pass is tested against (at the
    paper's m = 10^5 it converts W and H to float64 whole, 51 MB each, every window)."""
    with np.errstate(over="ignore", invalid="ignore"):
        h0 = net._h[hd].astype(np.float64) * np.exp(net._scalars[hd, 3])
        g0 = net._g[hd].astype(np.float64) * np.exp(net._scalars[hd, 2])
        if x is None:
            u = np.zeros_like(h0)
        else:
            bias = None if net._bias is None else net._bias[hd]
            u = np.exp(reference._log_features(x[None], net._W[hd], net.scale, bias)[0])
        sums = np.array([g0 @ h0, g0 @ u, h0 @ h0, h0 @ u, u @ u])
        if not with_outputs:
            return sums, u, None, None
        H = net._H[hd].astype(np.float64) * np.exp(net._scalars[hd, 2])
        return sums, u, H @ h0, H @ u


def _scaled_input(net, x: Optional[np.ndarray]) -> Tuple[Optional[np.ndarray], Union[float, np.ndarray]]:
    """x~ = x sqrt(s) in float64 and the rates' constant -|x~|^2 / 2 - ln(m) / 2 (as
    reference.log_features forms them): x (D,) gives a float, x (heads, D) one a row; (None, 0.0)
    without an input."""
    if x is None:
        return None, 0.0
    xs = np.asarray(x, dtype=np.float64) * math.sqrt(V.scale_value(net.scale, x.shape[-1]))
    c = -0.5 * (xs * xs).sum(axis=-1) - 0.5 * math.log(net.n_hidden)
    return np.ascontiguousarray(xs), float(c) if xs.ndim == 1 else c


class StateMonitor:
    """Recorded traces of one network (created by :meth:`NeuronAstrocyteNetwork.monitor`).

    Attributes (NumPy arrays, time first):

    - ``t`` (n,): sample times in ms;
    - ``calcium`` (n, len(heads)): astrocyte calcium a(t);
    - ``hidden`` (n, len(heads), len(hidden_indices)): hidden rates h_r(t);
    - ``astrocyte_weights`` (n, len(heads), len(hidden_indices)): g_r(t);
    - ``synapses`` (n, len(heads), len(synapse_indices)): H_dr(t) for the chosen (d, r);
    - ``outputs`` (n, len(heads), d_value): the output neurons' rates: clamped to v during writes,
      y = H h / a during reads (and in the "now" samples; 0 where a = 0), MODEL.md section 2;
    - ``window`` (n,): "write" or "read", the kind of window each sample lies in; "now" for the
      state at the monitor's creation (recorded if the step count is a multiple of ``every``).

    ``heads`` holds the recorded heads' indices (all by default).

    :meth:`NeuronAstrocyteNetwork.reset` clears the samples of every monitor attached and records
    the zero state at t = 0 afresh; :meth:`stop` detaches the monitor, keeping its samples.
    Checkpoints (:meth:`NeuronAstrocyteNetwork.save`) do not include monitors.

    Values are in true units (float64) and equal, up to rounding, what step-by-step integration
    with the network's integrator and dt gives at those steps.
    """

    def __init__(self, net, variables: Sequence[str], heads: Optional[Iterable[int]], hidden: Optional[Iterable[int]],
                 synapses: Optional[Iterable[Tuple[int, int]]], every: int) -> None:
        names = V.names(variables, "variables", VARIABLES, "variable")  # one name, as if in a tuple
        if not names:  # a monitor that records nothing is a mistake, not a request
            raise ValueError(f"variables must name at least one of {', '.join(VARIABLES)}, got {variables!r}")
        variables = names
        V.positive_int(every, "every")  # steps of dt
        self.variables = tuple(dict.fromkeys(variables))  # a name given twice is recorded once
        self.every = int(every)
        self.heads = np.arange(net.heads) if heads is None else V.indices(heads, "heads", net.heads, "")
        # Indices given are checked even when their variable is not recorded.
        self.hidden_indices = (np.arange(min(10, net.n_hidden)) if hidden is None
                               else V.indices(hidden, "hidden", net.n_hidden, "neuron"))
        self.synapse_indices = np.array([(0, 0)]) if synapses is None else _pairs(synapses, net.d_value, net.n_hidden)
        self._chunks: Dict[str, List[np.ndarray]] = {name: [] for name in ("t", "window") + self.variables}
        self._net = net

    # ----------------------------------------------------------------------------------------
    def _record_now(self, net) -> None:
        """A sample of the network's state now (at creation, and after a reset), if the step count
        is a multiple of ``every``: the recorded entries, the calcium, and the outputs y = H h / a
        (0 where a = 0), H h from the core's pass over each head (cpp/tripartite/monitor.hpp). Not
        NumPy's H @ h (_window_sums_reference): its BLAS threads spin on after the product, beside
        the core's, and the first run after a monitor of the outputs was made took twice as long
        (a 100-token write at m = 1e5, 2 threads: 0.087 s against 0.040 s)."""
        if net._step % self.every:
            return
        local = self._local_start(net)  # the recorded entries now, every recorded head
        sc, heads = net._scalars, self.heads
        with np.errstate(over="ignore", invalid="ignore"):
            a = sc[heads, 0] * np.exp(sc[heads, 1])
            out = {"calcium": a, "hidden": None if local is None else local["h"],
                   "astrocyte_weights": None if local is None else local["g"], "synapses": None if local is None else local["H"]}
            if "outputs" in self.variables:
                Hh = np.stack([_window_sums(net, hd, None, True)[2] for hd in heads])
                out["outputs"] = np.where(a[:, None] > 0, Hh / np.where(a > 0, a, 1.0)[:, None], 0.0)
        self._chunks["t"].append(np.array([net._now()]))
        self._chunks["window"].append(np.array(["now"]))
        for name in self.variables:
            self._chunks[name].append(out[name][None])

    def _local_start(self, net) -> Optional[Dict[str, np.ndarray]]:
        """The recorded neurons' and synapses' state now, in true units (float64), one row a recorded
        head: h and g at the hidden indices, h at the synapses' neurons, and the synapses; with the
        rows of W and the bias of those neurons (their rates of each window's input). A run takes it
        before the core runs and carries it through the windows (_record_local); None where no such
        variable is recorded."""
        if not set(LOCAL) & set(self.variables):
            return None
        heads, r = self.heads, self.hidden_indices
        d, rs = self.synapse_indices[:, 0], self.synapse_indices[:, 1]
        with np.errstate(over="ignore", invalid="ignore"):
            e_h = np.exp(net._scalars[heads, 3])[:, None]  # the stored h's and g's (and H's) scales
            e_g = np.exp(net._scalars[heads, 2])[:, None]
            local = {"h": net._h[np.ix_(heads, r)].astype(np.float64) * e_h,
                     "g": net._g[np.ix_(heads, r)].astype(np.float64) * e_g,
                     "h_syn": net._h[np.ix_(heads, rs)].astype(np.float64) * e_h,
                     "H": net._H[heads[:, None], d[None, :], rs[None, :]].astype(np.float64) * e_g}
        for key, neurons in (("", r), ("_syn", rs)):
            local["W" + key] = net._W[np.ix_(heads, neurons)].astype(np.float64)
            local["b" + key] = (np.zeros((len(heads), len(neurons))) if net._bias is None
                                else net._bias[np.ix_(heads, neurons)].astype(np.float64))
        return local

    def _record_local(self, net, kind: str, x: Optional[np.ndarray], v: Optional[np.ndarray], start_time: float,
                      start_step: int, steps: int, duration: float, start_sums: np.ndarray,
                      reads: Optional[np.ndarray], local: Optional[Dict[str, np.ndarray]],
                      maps: Optional[dict] = None) -> None:
        """Samples of one window of a run, all recorded heads at once: the calcium from the core's
        sums of the window's starting state, ``start_sums`` (heads, 6); while reading, the outputs
        from the core's H h and H u at the window's start, ``reads`` (heads, 2, d_value); and the
        neurons' and synapses' variables from ``local`` (_local_start, as the windows before left
        it), which then moves to the window's end by the same maps (every window, sampled or not).
        The recorded neurons' rates u of the window's input x (heads, D) are taken here, a dot
        product each, as reference.log_features forms them. ``maps``: the run's window maps by
        (kind, sampled steps), each computed once (window_trajectory's are the same for every
        window of a kind sampled at the same steps)."""
        first = (-start_step) % self.every or self.every
        samples = np.arange(first, steps + 1, self.every)
        if samples.size == 0 and local is None:
            return
        p = net._params
        writing = kind == "write"
        wanted = samples.tolist()
        if local is not None and (not wanted or wanted[-1] != steps):
            wanted.append(steps)  # the window's end: where the carried state goes next
        key = (writing, duration, steps, tuple(wanted))
        found = None if maps is None else maps.get(key)
        if found is None:
            found = _core.window_trajectory(
                net._integrator, duration, steps, 1 / p["tau_hidden"], 1 / p["tau_astro"],
                p["eta"] / p["t_write"] if writing else 0.0, p["leak"] if writing else 0.0, wanted,
            )
            if maps is not None:
                maps[key] = found  # read only from here on: the samples take slices of it
        M, A = found
        end = M[-1]
        M, A = M[:samples.size, :, :, None, None], A[:samples.size]  # maps (samples, 3, 3) over (heads, indices)
        out: Dict[str, np.ndarray] = {}
        if "calcium" in self.variables:
            out["calcium"] = _calcium(A, start_sums[self.heads])
        if "outputs" in self.variables and writing:  # clamped to the token's value
            out["outputs"] = np.broadcast_to(v[self.heads].astype(np.float64), (samples.size, len(self.heads), v.shape[-1])).copy()
        elif "outputs" in self.variables:  # y(s) = H h(s) / a(s), H held while reading
            Hh, Hu = reads[self.heads, 0], reads[self.heads, 1]
            a = out["calcium"] if "calcium" in out else _calcium(A, start_sums[self.heads])
            with np.errstate(over="ignore", invalid="ignore"):
                num = M[:, 1, 1] * Hh + M[:, 1, 2] * Hu
                out["outputs"] = np.where(a[..., None] > 0, num / np.where(a > 0, a, 1)[..., None], 0.0)
        if local is not None:
            with np.errstate(over="ignore", invalid="ignore"):
                if x is None:
                    u, u_syn = np.zeros_like(local["h"]), np.zeros_like(local["h_syn"])
                else:
                    xs, c = _scaled_input(net, x[self.heads])
                    u = np.exp(np.einsum("hkd,hd->hk", local["W"], xs) + c[:, None] + local["b"])
                    u_syn = np.exp(np.einsum("hkd,hd->hk", local["W_syn"], xs) + c[:, None] + local["b_syn"])
                h, g, h_syn, H = local["h"], local["g"], local["h_syn"], local["H"]
                vd = v[self.heads][:, self.synapse_indices[:, 0]].astype(np.float64) if writing else None
                if "hidden" in self.variables:
                    out["hidden"] = M[:, 1, 1] * h + M[:, 1, 2] * u
                if "astrocyte_weights" in self.variables:
                    out["astrocyte_weights"] = M[:, 0, 0] * g + M[:, 0, 1] * h + M[:, 0, 2] * u
                if "synapses" in self.variables:
                    if writing:
                        out["synapses"] = M[:, 0, 0] * H + vd * (M[:, 0, 1] * h_syn + M[:, 0, 2] * u_syn)
                    else:  # held while reading
                        out["synapses"] = np.broadcast_to(H, (samples.size,) + H.shape).copy()
                # to the window's end (g and H first: they take h at the window's start)
                g[:] = end[0, 0] * g + end[0, 1] * h + end[0, 2] * u
                if writing:
                    H[:] = end[0, 0] * H + vd * (end[0, 1] * h_syn + end[0, 2] * u_syn)
                h[:] = end[1, 1] * h + end[1, 2] * u
                h_syn[:] = end[1, 1] * h_syn + end[1, 2] * u_syn
        if samples.size == 0:
            return
        self._chunks["t"].append(start_time + samples * (duration / steps if steps else 0.0))
        self._chunks["window"].append(np.full(samples.size, kind))
        for name in self.variables:
            self._chunks[name].append(out[name])

    def _run_bytes(self, window_steps: Sequence[Tuple[int, int]]) -> Tuple[int, str]:
        """Memory a run adds, for (steps per window, number of such windows) pairs: its samples,
        kept (float64 values, the time and the window's 5-character name), and the largest
        window's transient arrays while it is recorded (its maps M and A, 15 doubles a sample,
        and up to four temporaries the size of its values). Returns (bytes, what)."""
        width = sum(math.prod(self._sample_shape(name)) for name in self.variables)
        samples, largest = 0, 0
        for steps, count in window_steps:
            per_window = steps // self.every + 1  # at most, wherever the window starts
            samples += per_window * count
            largest = max(largest, per_window if count else 0)
        kept = samples * (8 + 20 + 8 * width)
        transient = largest * 8 * (15 + 4 * width)
        what = (f"the samples of a monitor of {', '.join(self.variables)} ({width} values a sample, every = "
                f"{self.every} steps): {samples} samples")
        return kept + transient, what

    def _clear(self) -> None:
        """Forget all samples (a reset)."""
        for chunks in self._chunks.values():
            chunks.clear()

    def _get(self, name: str) -> np.ndarray:
        if name not in self._chunks:
            raise AttributeError(f"this monitor does not record {name!r}; it records {', '.join(self.variables)}")
        chunks = self._chunks[name]
        if chunks:
            return np.concatenate(chunks)
        return np.zeros((0,) + self._sample_shape(name))

    def _sample_shape(self, name: str) -> Tuple[int, ...]:
        """The shape of one sample of ``name`` (a recorded variable, or "t" and "window": ())."""
        heads = len(self.heads)
        return {"calcium": (heads,), "hidden": (heads, len(self.hidden_indices)),
                "astrocyte_weights": (heads, len(self.hidden_indices)),
                "synapses": (heads, len(self.synapse_indices)), "outputs": (heads, self._net.d_value)}.get(name, ())

    t = property(lambda self: self._get("t"), doc="Sample times in ms, (n,) float64.")
    window = property(lambda self: self._get("window"),
                      doc='The kind of window each sample lies in, (n,): "write", "read" or "now".')
    calcium = property(lambda self: self._get("calcium"), doc="Astrocyte calcium a(t), (n, len(heads)) float64.")
    hidden = property(lambda self: self._get("hidden"),
                      doc="Hidden rates h_r(t), (n, len(heads), len(hidden_indices)) float64.")
    astrocyte_weights = property(lambda self: self._get("astrocyte_weights"),
                                 doc="Neuron-to-astrocyte weights g_r(t), (n, len(heads), len(hidden_indices)) float64.")
    synapses = property(lambda self: self._get("synapses"),
                        doc="Synapses H_dr(t) for the chosen (d, r), (n, len(heads), len(synapse_indices)) float64.")
    outputs = property(lambda self: self._get("outputs"),
                       doc="Output neurons' rates (v while writing, H h / a while reading), (n, len(heads), d_value) float64.")

    @property
    def n_samples(self) -> int:
        """Number of samples recorded so far (the length of the time axis)."""
        return int(sum(len(c) for c in self._chunks["t"]))

    def stop(self) -> None:
        """Detach from the network (the recorded data stays)."""
        if self in self._net._monitors:
            self._net._monitors.remove(self)

    def __repr__(self) -> str:
        indices = f"heads={_abbreviated(self.heads.tolist())}"
        if {"hidden", "astrocyte_weights"} & set(self.variables):
            indices += f", hidden={_abbreviated(self.hidden_indices.tolist())}"
        if "synapses" in self.variables:
            indices += f", synapses={_abbreviated([(int(d), int(r)) for d, r in self.synapse_indices])}"
        n = self.n_samples
        samples = f"{n} sample{'' if n == 1 else 's'}"
        if n:
            samples += f", t = {self._chunks['t'][0][0]:g} to {self._chunks['t'][-1][-1]:g} ms"
        return f"StateMonitor(variables={self.variables}, {indices}, every={self.every} steps; {samples})"


def _abbreviated(items: list, shown: int = 3) -> str:
    """A list as Python writes it, or its first and last ``shown`` items and their count if long."""
    if len(items) <= 2 * shown + 1:
        return repr(items)
    head, tail = repr(items[:shown])[:-1], repr(items[-shown:])[1:]
    return f"{head}, ..., {tail} ({len(items)})"
