"""The neuron-astrocyte network in continuous time (MODEL.md section 2)."""

from __future__ import annotations

import contextvars
import hashlib
import json
import math
import os
import signal
import sys
import threading
import warnings
import zipfile
from typing import Any, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import _core
from . import _validate as V
from .monitor import StateMonitor
from .weights import FEATURE_MAPS, draw_hidden_weights

# Set by load() while it rebuilds a checkpoint whose rk4 dt only the limit before 2026-11-30 allowed.
_LOADING_MAX_STEP: contextvars.ContextVar = contextvars.ContextVar("tripartite_loading_max_step", default=None)

INTEGRATORS = ("euler", "rk4", "exact")
CHECKPOINT_FORMAT = 1
# What a checkpoint holds (besides the optional hidden_bias), and the keys of its config.
_CHECKPOINT_ARRAYS = ("format", "config", "checksum", "hidden_weights", "synapses", "astrocyte_weights", "hidden",
                      "scalars", "time", "step")
_CONFIG_KEYS = ("d_key", "d_value", "n_hidden", "heads", "seed", "feature_map", "scale", "dtype", "integrator", "dt",
                "tau_hidden", "tau_astro", "t_write", "t_read", "eta", "leak")

# Columns of the per-head scalar state kept by the core (see cpp/tripartite/network.hpp):
# stored values are relative to log-scales, true x = stored x * exp(scale).
_A, _SCALE_A, _SCALE_H, _SCALE_h, _BOUND_G, _BOUND_h = range(6)
# Windows per call of the core in a monitored run: the sums it hands over for the monitors (48
# bytes a head and window, and 16 d_value more for a monitor of the outputs) then take bounded
# memory however long the run (at 12 heads and d_value = 64: 2.4 MB a chunk, 53 MB with a monitor
# of the outputs). Even: a stream stops only after a read.
_MONITORED_CHUNK = 4096
assert _core.num_scalars == 6



def _in_true_units(prop):
    """Adds to a state property's docstring what reading the state in true units means (nothing
    under ``python -OO``, which drops docstrings)."""
    if prop.__doc__ is not None:
        prop.__doc__ += """

        True values in the network's dtype: below its smallest normal (1.2e-38 in float32) they
        read as 0 or subnormal (|k~|^2, |q~|^2 in the hundreds); the state itself is kept relative to
        a float64 scale, so this does not affect the simulation."""
    return prop


def state_bytes(heads: int, m: int, d_key: int, d_value: int, dtype: Any) -> int:
    """Bytes a network holds (its memory check, and the MiniLM study's): state and weights,
    (d_value + d_key + 4) numbers of its dtype per neuron, and the core's workspace for a segment
    of windows: per block of neurons and window, its readouts, five sums and two slots of maxima
    (d_value + 7 doubles); per window, two slots of scaled inputs, the values and the coefficients;
    and the rates of a short call, up to 8 numbers per neuron."""
    itemsize = np.dtype(dtype).itemsize
    seg = _core.segment_windows(heads, m, d_key, d_value)
    blocks = -(-m // _core.block_size)
    per_block = blocks * seg * (d_value + 7) * 8
    per_window = seg * ((2 * d_key + max(d_value, 1)) * itemsize + (2 + 9) * 8)
    workspace = per_block + per_window + m * _core.min_segment_windows * itemsize
    return int(heads * (m * (d_value + d_key + 4) * itemsize + workspace))


def scratch_bytes(threads: int, d_key: int, dtype: Any, window_reads: bool = False) -> int:
    """Bytes of the core's per-thread scratch during a run (its memory check, and the MiniLM
    study's): per thread, one block of neurons' packed weights and three vectors per window of the
    longest segment, (d_key + 3 x segment) values of the dtype per neuron of the block; with
    ``window_reads`` (a monitor of the outputs in a run with reads) two of those vectors have three
    rows a window, (d_key + 7 x segment)."""
    rows = (7 if window_reads else 3) * _core.max_segment_windows
    return int(threads * (d_key + rows) * _core.block_size * np.dtype(dtype).itemsize)


class NeuronAstrocyteNetwork:
    """A neuron-astrocyte network with one astrocyte per head, simulated in continuous time.

    Each head has ``n_hidden`` hidden neurons h with fixed random input weights W, tripartite
    synapses H (d_value x n_hidden) to the output neurons, neuron-to-astrocyte weights g and an
    astrocyte with calcium a. Times are in milliseconds::

        tau_hidden dh/dt = -h + u(t)                  u = phi(k~) while writing, phi(q~) while reading
        dH/dt = (eta/t_write) v h^T - leak H          while writing token (k, v)
        dg/dt = (eta/t_write) h   - leak g            while writing
        tau_astro da/dt = -a + g.h                    always
        y = H h / a                                   read at the end of each query's window

    Times are in ms; rates and calcium are dimensionless (values of phi and their sums and
    products, not Hz), and the outputs y are in the units of the values v.

    With leak = 0 and tau_hidden, tau_astro << t_write, t_read the outputs equal the paper's
    steady state (:func:`tripartite.attention` with the same hidden weights); the deviation is
    O(tau_hidden / t_write). The defaults have tau_hidden / t_write = 0.1, so the outputs deviate
    from the steady state by a few per cent to about 13 %, more for larger query and key norms
    (2.5 % in the demo; 2.1 % and 13.3 % at mean |q~|^2 = 1 and 8, relative Frobenius error); a
    smaller tau_hidden (or a longer t_write) lowers it in proportion (tau_hidden=1: 0.2 % and
    1.3 %; the "exact" integrator costs the same for any time constants, euler and rk4 need a dt
    below them).

    Parameters
    ----------
    d_key, d_value : int
        D (keys and queries) and Dv (values, output neurons).
    n_hidden : int
        m, hidden neurons per head; the network has heads * d_value * n_hidden synapses.
    heads : int
        Number of heads, one astrocyte each.
    seed : int
        Seed of the hidden weights (see :func:`tripartite.draw_hidden_weights`).
    feature_map : {"performer", "orthogonal"}
    scale : float, optional
        s, the factor of q.k; inputs enter as x~ = x s^{1/2}. Default 1/sqrt(d_key).
    dtype : float32 or float64
        Precision of the state arrays (scalar bookkeeping is always float64).
    tau_hidden, tau_astro : float
        Time constants of the hidden neurons and of the astrocyte (ms, > 0).
    t_write, t_read : float
        Duration of the window for each written token and each read query (ms, > 0). Each window
        must lie within 1e-100 to 1e100 times each time constant (and leak * t_write <= 1e100):
        beyond, the window maps leave double's range.
    eta : float
        Learning rate of the Hebbian and presynaptic rules (in [1e-100, 1e100]; 1 gives the
        paper's sums). It scales H, g and a alike: the outputs do not depend on it.
    leak : float
        Synaptic decay rate while writing (1/ms, >= 0); old tokens weigh exp(-leak * elapsed).
    dt : float
        Time step (ms) of "euler" and "rk4"; must divide t_write and t_read, and be <= tau_hidden,
        tau_astro and 1/leak (beyond that rk4's stages overshoot below zero, although it stays
        stable up to 2.78 times as much: negative calcium, outputs far off). "exact" solves each window in
        closed form and needs dt only to be no larger than the windows (and, for a monitor, which
        samples it every dt, to divide them). For every integrator a window may hold at most 1e8
        steps of dt.
    integrator : {"exact", "euler", "rk4"}
    num_threads : int
        0 = all cores. Results are bitwise independent of it.
    hidden_weights : array_like, shape (heads, n_hidden, d_key), optional
        Explicit hidden weights instead of drawing them from ``seed`` and ``feature_map``. Keys and
        queries are refused later if max |W| sqrt(d_key max |x~|^2) exceeds 0.1/eps of the dtype
        (the log-rates W x~ would lose all precision).
    hidden_bias : array_like, shape (heads, n_hidden), optional
        Per-neuron offsets of the log-rates (zero by default); see :func:`tripartite.attention`.

    The parameters are fixed once the network is built (``net.params`` lists them); of its
    public attributes only ``num_threads`` may be set, and setting any other raises AttributeError.
    """

    def __init__(
        self,
        d_key: int,
        d_value: int,
        n_hidden: int,
        *,
        heads: int = 1,
        seed: int = 0,
        feature_map: str = "performer",
        scale: Optional[float] = None,
        dtype: Any = np.float32,
        tau_hidden: float = 10.0,
        tau_astro: float = 100.0,
        t_write: float = 100.0,
        t_read: float = 1000.0,
        eta: float = 1.0,
        leak: float = 0.0,
        dt: float = 1.0,
        integrator: str = "exact",
        num_threads: int = 0,
        hidden_weights: Any = None,
        hidden_bias: Any = None,
    ) -> None:
        self._d_key = V.positive_int(d_key, "d_key")
        self._d_value = V.positive_int(d_value, "d_value")
        self._n_hidden = V.positive_int(n_hidden, "n_hidden")
        self._heads = V.positive_int(heads, "heads")
        self._seed = V.seed_value(seed)
        self._feature_map = V.choice(feature_map, "feature_map", FEATURE_MAPS)
        self._scale = V.scale_value(scale, self._d_key)
        self._dtype = V.float_dtype(dtype)
        self._params = dict(V.network_params(tau_hidden, tau_astro, t_write, t_read, eta, leak),
                            input_scale=math.sqrt(self._scale))
        self._integrator = V.choice(integrator, "integrator", INTEGRATORS)
        self._dt = V.positive(dt, "dt", "ms")
        self._write_steps, self._read_steps = V.time_steps(self._dt, self._integrator, self._params,
                                                           max_step=_LOADING_MAX_STEP.get())
        self.num_threads = num_threads  # checked by the property

        m, D, Dv, nh = self._n_hidden, self._d_key, self._d_value, self._heads
        V.check_memory(state_bytes(nh, m, D, Dv, self._dtype),
                       f"a network of {nh * Dv * m} synapses (heads = {nh} x d_value = {Dv} x n_hidden = {m})")
        self._w_max: Optional[float] = None  # max |W| of given weights, for the log-rates' precision check
        if hidden_weights is None:
            self._W = draw_hidden_weights(m, D, heads=nh, seed=self._seed, feature_map=self._feature_map, dtype=self._dtype)
        else:
            W = V.real_array(hidden_weights, "hidden_weights")
            if W.shape != (nh, m, D):
                raise ValueError(f"hidden_weights must have shape (heads, n_hidden, d_key) = {(nh, m, D)}, got {W.shape}")
            self._w_max = V.finite(W, "hidden_weights", self.num_threads, self._dtype, magnitude=True)
            self._W = np.array(W, dtype=self._dtype)
        self._W.flags.writeable = False
        self._bias = None
        if hidden_bias is not None:
            b = V.real_array(hidden_bias, "hidden_bias")
            if b.shape != (nh, m):
                raise ValueError(f"hidden_bias must have shape (heads, n_hidden) = {(nh, m)}, got {b.shape}")
            V.bias_magnitude(b, V.finite(b, "hidden_bias", self.num_threads, self._dtype, magnitude=True))
            self._bias = np.array(b, dtype=self._dtype)
            self._bias.flags.writeable = False
        self._H = np.zeros((nh, Dv, m), dtype=self._dtype)
        self._g = np.zeros((nh, m), dtype=self._dtype)
        self._h = np.zeros((nh, m), dtype=self._dtype)
        self._scalars = np.zeros((nh, 6))
        self._time_base, self._windows = 0.0, [0, 0]  # see _now
        self._step = 0  # integration steps of dt since the last reset (the monitors' clock)
        self._monitors: list = []
        self.reset()

    # ----------------------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget everything: synapses, weights to the astrocyte, rates and calcium to zero, time 0.

        Attached monitors stay attached but forget their samples too, and record the zero state
        at t = 0 afresh (as :meth:`monitor` records the state at its creation), so that their time
        axis keeps increasing."""
        self._H.fill(0)
        self._g.fill(0)
        self._h.fill(0)
        self._scalars[:] = 0.0
        self._scalars[:, _BOUND_G] = -np.inf
        self._scalars[:, _BOUND_h] = -np.inf
        self._time_base, self._windows = 0.0, [0, 0]
        self._step = 0
        for mon in self._monitors:
            mon._clear()
            mon._record_now(self)

    # ----------------------------------------------------------------------------------------
    def _shaped(self, x: Any, name: str, width: int, width_name: str) -> Tuple[np.ndarray, bool]:
        """``x`` as a (heads, L, width) array (its shape checked, its values not yet), and whether
        the caller gave 2-D input."""
        arr = V.real_array(x, name)
        two_d = arr.ndim == 2
        if two_d and self._heads == 1:
            arr = arr[None]
        expect = f"(L, {width_name}) or (heads, L, {width_name})" if self._heads == 1 else f"(heads, L, {width_name})"
        if arr.ndim != 3 or arr.shape[0] != self._heads or arr.shape[2] != width:
            raise ValueError(
                f"{name} must have shape {expect} with heads = {self._heads}, {width_name} = {width}, "
                f"got {np.asarray(x).shape}"
            )
        return arr, two_d

    def _checked(self, inputs: Sequence[Tuple[str, np.ndarray, bool]], n_write: int, n_read: int) -> List[np.ndarray]:
        """The inputs (name, shaped array, two_d) of a call of n_write writes and n_read reads, in
        the network's dtype, contiguous. First one memory check for the whole call, before any value
        is scanned (a broadcast view of a few bytes can stand for terabytes): each input's float64
        temporaries of its checks and its copy, the outputs of the reads (y in the network's dtype,
        log a_t and a_t in float64), the windows' schedule, the samples of attached monitors, and
        the core's per-thread scratch (num_threads can be set after the network is built, up to
        4096). Then the values: finite, and keys and queries within the log-rates' precision."""
        item = self._dtype.itemsize
        parts = [(arr.size * (8 + item), f"{name} of shape {arr[0].shape if two_d else arr.shape} (its checks and copy)")
                 for name, arr, two_d in inputs]
        if n_read:
            parts.append((self._heads * n_read * (self._d_value * item + 16),
                          f"the outputs of {n_read} queries ({self._heads} heads x {self._d_value} output neurons)"))
        parts.append((9 * (n_write + n_read), f"the schedule of {n_write + n_read} windows"))  # kind and index
        windows = [(self._window_steps(True), n_write), (self._window_steps(False), n_read)]
        parts += [mon._run_bytes(windows) for mon in self._monitors]
        if self._monitors:  # the core's sums for the monitors, a chunk of the run at a time
            chunk = min(n_write + n_read, _MONITORED_CHUNK)
            parts.append((48 * self._heads * chunk, f"the monitors' calcium sums (6 doubles a head and window, {chunk} windows)"))
        window_reads = bool(n_read) and self._monitors_outputs()
        if window_reads:  # and the core's workspace holds two more rows a window, per block of neurons
            seg = _core.segment_windows(self._heads, self._n_hidden, self._d_key, self._d_value)
            blocks = -(-self._n_hidden // _core.block_size)
            parts.append((16 * self._heads * self._d_value * chunk
                          + 2 * seg * self._heads * self._d_value * (blocks * 8 + self._dtype.itemsize),
                          f"the monitors' H h and H u of each read (2 x d_value doubles a head and window, {chunk} windows) "
                          "and the core's workspace for them"))
        threads = self.num_threads or _core.max_threads()
        parts.append((scratch_bytes(threads, self._d_key, self._dtype, window_reads),
                      f"the core's scratch for num_threads = {threads}"))
        V.check_memory(sum(n for n, _ in parts), "; ".join(what for _, what in parts))
        out = []
        for name, arr, two_d in inputs:
            largest = V.finite(arr[0] if two_d else arr, name, self.num_threads,  # indices as the caller gave them
                               magnitude=name == "values")
            if name == "values":
                V.value_magnitude(arr, name, self._dtype, largest)
            else:  # keys, queries: the inputs of the log-rates
                norm2 = V.input_norms(arr, name, self._scale, self._dtype)
                if self._w_max is not None:
                    V.log_rate_terms(self._w_max, norm2, name, self._d_key, self._dtype)
            out.append(np.ascontiguousarray(arr, dtype=self._dtype))
        return out

    def _empty(self, width: int) -> np.ndarray:
        return np.zeros((self._heads, 0, width), dtype=self._dtype)

    def _window_steps(self, write: bool) -> int:
        """Steps of dt in one window (for exact: the monitors' sampling grid)."""
        T = self._params["t_write" if write else "t_read"]
        return max(1, round(T / self._dt))

    def _run(self, keys, values, queries, is_write, index, progress, stop_multiple=1, what="windows", two_d=None):
        """Run the windows; two_d (whether the caller gave 2-D input) is None for write, which
        returns no outputs."""
        self._underflowed_reads = 0
        # In the main thread, while Python's default SIGINT handler is in place, Ctrl-C only sets a
        # flag for the run: the core polls it between windows and stops at a window boundary, and
        # a signal that lands between the core's return and the bookkeeping cannot interrupt it
        # there (the default handler would raise KeyboardInterrupt at an arbitrary point).
        caught: list = []
        previous = None
        if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
        try:
            result = self._run_windows(keys, values, queries, is_write, index, progress, stop_multiple, what, two_d,
                                       caught)
        except SimulationInterrupted as exc:
            exc.underflowed_reads = self._underflowed_reads
            self._warn_underflowed()  # the completed reads in exc.outputs
            self._warn_overflowed(exc.outputs)
            raise
        finally:
            if previous is not None:
                signal.signal(signal.SIGINT, previous)
        self._warn_underflowed()
        self._warn_overflowed(result[0])
        return result

    def _warn_overflowed(self, outputs: Optional[np.ndarray]) -> None:
        """Outputs beyond the dtype's range read inf (the inputs are finite: y = H h / a overflows
        where the calcium lies that far below H h, e.g. an astrocyte far slower than the windows)."""
        if outputs is None or outputs.size == 0:
            return
        n = outputs.size - int(np.count_nonzero(np.isfinite(outputs)))
        if n:
            dtype = np.dtype(self._dtype)
            warnings.warn(
                f"{n} outputs overflow {dtype.name} (|y| = |H h| / a beyond {np.finfo(dtype).max:.3g}: the calcium is "
                "that far below the synapses' products) and read inf"
                + (": use dtype=numpy.float64" if self._dtype == np.float32 else ""),
                RuntimeWarning,
                stacklevel=4,
            )

    def _warn_underflowed(self) -> None:
        """The reads the core found may have lost terms to underflow (issued after the state is up
        to date: with warnings turned into errors, the run itself is complete)."""
        if self._underflowed_reads:
            dtype = np.dtype(self._dtype).name
            warnings.warn(
                f"for {self._underflowed_reads} reads the products of hidden rates and synapses underflow {dtype} "
                "(the query's rates lie far below the stored ones: |q~|^2, |k~|^2 in the thousands); their outputs "
                "may have lost terms" + (": use dtype=numpy.float64" if self._dtype == np.float32 else ""),
                RuntimeWarning,
                stacklevel=4,
            )

    def _run_windows(self, keys, values, queries, is_write, index, progress, stop_multiple, what, two_d, caught):
        total = len(is_write)
        bar = _progress_bar(progress, total, what)
        try:
            raised: list = []

            def poll(n: int) -> bool:  # the core, between windows: report progress, stop on Ctrl-C
                try:
                    if bar is not None:
                        bar.update(n - bar.n)
                    return bool(caught)
                except BaseException as exc:  # the bar's, or a SIGINT handler of the caller's own:
                    raised.append(exc)  # stop at this boundary, count the windows done, then raise it
                    return True

            if not self._monitors:
                outputs, log_a, done, interrupted = self._kernel(keys, values, queries, is_write, index, poll,
                                                                 stop_multiple)
                self._advance(is_write[:done])
            else:
                outputs, log_a, done, interrupted = self._run_recorded(keys, values, queries, is_write, index, poll,
                                                                       stop_multiple, caught)
            if raised:
                raise raised[0]
            # Ctrl-C after the core's last poll: the run is complete, and stops here
            interrupted = interrupted or (bool(caught) and done % stop_multiple == 0)
        finally:
            if bar is not None:
                bar.close()
        if interrupted:
            done_outputs = (None, None)
            if two_d is not None:  # the completed queries: reads come in order of their index
                n = int(np.count_nonzero(np.asarray(is_write[:done]) == 0))
                done_outputs = self._shape_out(outputs[:, :n], log_a[:, :n], two_d, True)
            raise SimulationInterrupted(done, total, self._now(), stop_multiple, *done_outputs)
        return outputs, log_a

    def _run_recorded(self, keys, values, queries, is_write, index, poll, stop_multiple, caught):
        """A monitored run: the core runs it in chunks of _MONITORED_CHUNK windows (even: a stream
        stops only after a read), and hands over, for each window, the sums the monitors need (the
        calcium's, and each read's H h and H u for a monitor of the outputs), a chunk at a time so
        that they take bounded memory; each monitor takes its own neurons and synapses before the
        first chunk and carries them through all. Splitting a run changes no bit of the network's
        arithmetic (tests/test_determinism.py), nor of the samples. Returns what _kernel does for
        the whole run."""
        total = len(is_write)
        outputs = np.zeros((self._heads, queries.shape[1], self._d_value), dtype=self._dtype)
        log_a = np.full((self._heads, queries.shape[1]), -np.inf)
        starts = [mon._local_start(self) for mon in self._monitors]  # before the core moves the state
        with_reads = self._monitors_outputs()
        done, interrupted = 0, False
        while done < total and not interrupted:
            a, b = done, min(total, done + _MONITORED_CHUNK)
            kinds, idx = np.asarray(is_write[a:b]), np.asarray(index[a:b])
            # the chunk's tokens and queries: contiguous ranges of the run's (writes and reads come in order)
            (k0, k1), (q0, q1) = ((int(idx[sel].min()), int(idx[sel].max()) + 1) if sel.any() else (0, 0)
                                  for sel in (kinds != 0, kinds == 0))
            sub_index = np.where(kinds != 0, idx - k0, idx - q0)
            sums = np.empty((self._heads, b - a, 6))
            reads = np.zeros((self._heads, b - a, 2, self._d_value)) if with_reads and not kinds.all() else None
            y, la, n, interrupted = self._kernel(
                np.ascontiguousarray(keys[:, k0:k1]), np.ascontiguousarray(values[:, k0:k1]),
                np.ascontiguousarray(queries[:, q0:q1]), kinds, sub_index, lambda m, a=a: poll(a + m), stop_multiple,
                sums, reads)
            outputs[:, q0:q1], log_a[:, q0:q1] = y, la
            self._advance_recording(kinds[:n], sub_index[:n], keys[:, k0:k1], values[:, k0:k1], queries[:, q0:q1], sums,
                                    reads, starts)
            done += n
            interrupted = interrupted or (bool(caught) and done < total)  # Ctrl-C between chunks: stop here
        return outputs, log_a, done, interrupted

    def _monitors_outputs(self) -> bool:
        """Whether a monitor attached records the outputs (the core then hands over each read's H h
        and H u at its start)."""
        return any("outputs" in mon.variables for mon in self._monitors)

    def _advance_recording(self, is_write, index, keys, values, queries, sums: np.ndarray,
                           reads: Optional[np.ndarray], starts: Sequence[Optional[dict]]) -> None:
        """Advance the network's time through the windows the core has just run (``is_write`` their
        kinds, ``index`` their tokens), each monitor sampling each window on the way: the calcium
        from the core's sums of its starting state, ``sums`` (heads, windows, 6), the outputs of a
        read from the core's H h and H u at its start, ``reads`` (heads, windows, 2, d_value; None
        without a monitor of the outputs), its neurons and synapses from its state before the run,
        ``starts`` (StateMonitor._local_start, one a monitor), carried through the windows. The
        time counts every window run, even if a monitor raises."""
        recorded, maps = 0, {}  # the window maps, by kind and sampled steps: computed once a call
        try:
            for write in is_write:
                j = int(index[recorded])
                x = keys[:, j] if write else queries[:, j]
                v = values[:, j] if write else None
                for mon, local in zip(self._monitors, starts):
                    mon._record_local(self, "write" if write else "read", x, v, self._now(), self._step,
                                      self._window_steps(write), self._params["t_write" if write else "t_read"],
                                      sums[:, recorded], None if reads is None else reads[:, recorded], local, maps)
                self._advance(is_write[recorded:recorded + 1])
                recorded += 1
        finally:
            self._advance(is_write[recorded:])

    def _kernel(self, keys, values, queries, is_write, index, poll, stop_multiple, sums=None, reads=None):
        kernel = _core.run_network_float32 if self._dtype == np.float32 else _core.run_network_float64
        *result, underflowed = kernel(
            self._W, self._bias, self._H, self._g, self._h, self._scalars, keys, values, queries,
            np.ascontiguousarray(is_write, dtype=np.uint8), np.ascontiguousarray(index, dtype=np.int64),
            self._params, self._integrator, self._write_steps, self._read_steps, self.num_threads,
            poll, stop_multiple, sums, reads,
        )
        self._underflowed_reads += underflowed  # reads the core found may have lost terms to underflow
        return tuple(result)

    def _now(self) -> float:
        """Simulated time (ms): the windows written and read since the last reset (or load) times
        their lengths, one rounding each, not a running sum (900 windows of 0.3 ms added one by
        one read 270.0000000000045), plus the time a loaded checkpoint had reached."""
        return self._time_base + self._windows[0] * self._params["t_write"] + self._windows[1] * self._params["t_read"]

    def _advance(self, is_write) -> None:
        n_write = int(np.count_nonzero(is_write))
        n_read = len(is_write) - n_write
        self._windows[0] += n_write
        self._windows[1] += n_read
        self._step += n_write * self._window_steps(True) + n_read * self._window_steps(False)

    @staticmethod
    def _shape_out(outputs: np.ndarray, log_a: np.ndarray, two_d: bool, return_astrocyte: bool):
        with np.errstate(over="ignore"):
            a = np.exp(log_a)
        if two_d:
            outputs, a = outputs[0], a[0]
        return (outputs, a) if return_astrocyte else outputs

    def write(self, keys: Any, values: Any, *, progress: Optional[bool] = None) -> None:
        """Write tokens: for each (key, value) in turn, drive the hidden neurons with phi(k~) for
        t_write ms while the output neurons are clamped to v (Hebbian and presynaptic plasticity on).

        keys (L, D) and values (L, Dv) for one head, or (heads, L, D) and (heads, L, Dv).

        ``progress``: a progress bar (tqdm, if installed) over the windows; None (default) shows it
        when stderr is a terminal and the run has 64 windows or more, False never, True always.
        """
        progress = V.flag(progress, "progress", optional=True)
        k, k_2d = self._shaped(keys, "keys", self._d_key, "D")
        v, v_2d = self._shaped(values, "values", self._d_value, "Dv")
        if v.shape[1] != k.shape[1]:
            raise ValueError(f"values must have as many tokens as keys ({k.shape[1]}), got {v.shape[1]}")
        L = k.shape[1]
        k, v = self._checked([("keys", k, k_2d), ("values", v, v_2d)], L, 0)
        self._run(k, v, self._empty(self._d_key), np.ones(L, np.uint8), np.arange(L), progress, what="tokens")

    def read(
        self, queries: Any, *, return_astrocyte: bool = False, progress: Optional[bool] = None
    ) -> Union[np.ndarray, Tuple[np.ndarray, np.ndarray]]:
        """Read queries: drive the hidden neurons with phi(q~) for t_read ms each (no plasticity)
        and return the output neurons' rates y = H h / a at the end of each window.

        queries (Lq, D) for one head, or (heads, Lq, D). Returns outputs (Lq, Dv) or
        (heads, Lq, Dv), and with ``return_astrocyte`` the astrocyte's calcium a at the end of each
        window (float64, (Lq,) or (heads, Lq)). Near the steady state a = g . phi(q~) with
        g ~ eta sum_tau phi(k~_tau), so a ~ eta Z_t (Z_t = sum_tau exp(q~_t . k~_tau), the
        softmax denominator; :func:`tripartite.attention` returns the eta = 1 value); with
        leak > 0 the keys are weighted by exp(-leak * elapsed writing time), so a tracks a
        recency-weighted Z_t. Ctrl-C stops
        at a window boundary and raises :class:`SimulationInterrupted`, which holds the outputs of
        the queries completed. ``progress`` as in :meth:`write`.
        """
        return_astrocyte = V.flag(return_astrocyte, "return_astrocyte")
        progress = V.flag(progress, "progress", optional=True)
        q, two_d = self._shaped(queries, "queries", self._d_key, "D")
        Lq = q.shape[1]
        (q,) = self._checked([("queries", q, two_d)], 0, Lq)
        out, log_a = self._run(
            self._empty(self._d_key), self._empty(self._d_value), q, np.zeros(Lq, np.uint8), np.arange(Lq), progress,
            what="queries", two_d=two_d,
        )
        return self._shape_out(out, log_a, two_d, return_astrocyte)

    def stream(
        self,
        queries: Any,
        keys: Any,
        values: Any,
        *,
        return_astrocyte: bool = False,
        progress: Optional[bool] = None,
    ) -> Union[np.ndarray, Tuple[np.ndarray, np.ndarray]]:
        """The streaming (causal) protocol: write token t, then read query t, for t = 0..L-1.

        Shapes as in :meth:`write` and :meth:`read`, with as many queries as tokens; the calcium
        returned with ``return_astrocyte`` is as in :meth:`read` (~ eta times the causal Z_t, over
        the tokens written so far). Ctrl-C stops
        after a completed (token, query) pair and raises :class:`SimulationInterrupted`, which
        holds the completed queries' outputs. ``progress`` as in :meth:`write`.
        """
        return_astrocyte = V.flag(return_astrocyte, "return_astrocyte")
        progress = V.flag(progress, "progress", optional=True)
        q, two_d = self._shaped(queries, "queries", self._d_key, "D")
        k, k_2d = self._shaped(keys, "keys", self._d_key, "D")
        v, v_2d = self._shaped(values, "values", self._d_value, "Dv")
        if not (q.shape[1] == k.shape[1] == v.shape[1]):
            raise ValueError(
                f"stream needs as many queries, keys and values, got {q.shape[1]}, {k.shape[1]}, {v.shape[1]}"
            )
        L = q.shape[1]
        q, k, v = self._checked([("queries", q, two_d), ("keys", k, k_2d), ("values", v, v_2d)], L, L)
        is_write = np.tile(np.array([1, 0], np.uint8), L)
        index = np.repeat(np.arange(L), 2)
        # An interruption stops only after a read, so that a resumed stream starts with a token.
        out, log_a = self._run(k, v, q, is_write, index, progress, stop_multiple=2, two_d=two_d)
        return self._shape_out(out, log_a, two_d, return_astrocyte)

    # ----------------------------------------------------------------------------------------
    def monitor(
        self,
        variables: Sequence[str] = ("calcium",),
        *,
        heads: Optional[Iterable[int]] = None,
        hidden: Optional[Iterable[int]] = None,
        synapses: Optional[Iterable[Tuple[int, int]]] = None,
        every: int = 1,
    ) -> StateMonitor:
        """Record ``variables`` from now on, every ``every`` steps of dt (as Brian2's StateMonitor).

        Parameters
        ----------
        variables : tuple or list, a subset of {"calcium", "hidden", "astrocyte_weights", "synapses", "outputs"}
            A single name may be given as a string: ``monitor("calcium")`` is ``monitor(("calcium",))``.
        heads : list of integer indices of the heads to record (default: all)
        hidden : list of integer hidden-neuron indices for "hidden" and "astrocyte_weights" (default:
            the first 10)
        synapses : list of integer (output d, hidden r) pairs for "synapses" (default: [(0, 0)])

        Indices must be integers in range (floats, bools and strings are refused), and are checked
        even for a variable not recorded.
        every : record every this many steps of dt (the "exact" integrator samples its continuous
            solution on the same grid, so dt must then divide t_write and t_read, as for euler
            and rk4)

        Returns
        -------
        StateMonitor
            Its arrays grow as the network runs; ``monitor.stop()`` detaches it. The current
            state is recorded first (if the step count is a multiple of ``every``).

        Monitored runs go in the core's segments as unmonitored runs do: the core hands over the
        sums over all neurons that the calcium and the outputs need at each window's start, and
        each monitor carries its own neurons and synapses through the windows. See
        ``bench/monitor_cost.py`` and README.md, Monitors, for the costs at 6.4M synapses.
        """
        if self._integrator == "exact":  # euler and rk4 check it in the constructor
            V.whole_steps(self._dt, self._params, " for a monitor (it samples the exact solution every dt)")
        mon = StateMonitor(self, variables, heads, hidden, synapses, every)
        mon._record_now(self)
        self._monitors.append(mon)
        return mon

    def _config(self) -> dict:
        return dict(
            d_key=self._d_key, d_value=self._d_value, n_hidden=self._n_hidden, heads=self._heads, seed=self._seed,
            feature_map=self._feature_map, scale=self._scale, dtype=self._dtype.name, integrator=self._integrator,
            dt=self._dt, **{k: v for k, v in self._params.items() if k != "input_scale"},
        )

    def _arrays(self) -> dict:
        arrays = dict(hidden_weights=self._W, synapses=self._H, astrocyte_weights=self._g, hidden=self._h,
                      scalars=self._scalars, time=np.array(self._now()), step=np.array(self._step))
        if self._bias is not None:
            arrays["hidden_bias"] = self._bias
        return arrays

    @staticmethod
    def _checksum(config_json: str, arrays: dict) -> str:
        digest = hashlib.sha256(config_json.encode())
        for name in sorted(arrays):
            a = np.ascontiguousarray(arrays[name])
            digest.update(f"{name}:{a.dtype.str}:{a.shape}".encode())
            digest.update(a.tobytes())
        return digest.hexdigest()

    def save(self, path: Union[str, os.PathLike]) -> None:
        """Save the whole network (parameters, seed, hidden weights, synapses, astrocyte state,
        time) to one file in NumPy's ``.npz`` format, with a format version and a SHA-256 checksum
        of its contents. A network loaded from it continues bitwise as this one would. Monitors
        are not saved (keep what they recorded with ``numpy.savez``, from their arrays).

        The file is written at ``path`` exactly as given: unlike ``numpy.savez``, no ``.npz`` is
        appended (``net.save("ck")`` writes ``ck``, which :meth:`load` reads back as ``"ck"``)."""
        if not isinstance(path, (str, os.PathLike)):
            raise ValueError(f"path must be a str or os.PathLike, got {path!r}")
        config_json = json.dumps(self._config(), sort_keys=True)
        arrays = self._arrays()
        with open(path, "wb") as fh:  # a file object: np.savez appends .npz to a bare name
            np.savez(
                fh,
                format=np.array(CHECKPOINT_FORMAT),
                config=np.array(config_json),
                checksum=np.array(self._checksum(config_json, arrays)),
                **arrays,
            )

    @classmethod
    def load(cls, path: Union[str, os.PathLike], *, num_threads: int = 0) -> "NeuronAstrocyteNetwork":
        """Load a network saved by :meth:`save`, with no monitors (checkpoints do not include
        monitors or their samples: attach new ones with :meth:`monitor`). A damaged file, one from an incompatible
        checkpoint format, or one whose contents do not fit its config (wrong or extra keys, shapes
        other than the config implies, other dtypes, NaN or Inf in the state, negative time or step)
        raises ValueError naming the field; nothing is silently repaired or cast. A path that does
        not exist raises FileNotFoundError. ``num_threads`` is the loaded network's (see the
        constructor); checkpoints do not store it."""
        if not isinstance(path, (str, os.PathLike)):
            raise ValueError(f"path must be a str or os.PathLike, got {path!r}")
        num_threads = V.threads(num_threads)
        if not os.path.exists(path):  # like open() and save(): FileNotFoundError, not a bad value
            hint = ""
            if os.path.isfile(os.fspath(path) + ".npz"):
                hint = f" (earlier versions of save appended .npz: load {os.fspath(path) + '.npz'!r})"
            raise FileNotFoundError(f"no tripartite checkpoint at {os.fspath(path)!r}: the file does not exist{hint}")
        try:
            with open(path, "rb") as fh:
                archive = np.load(fh, allow_pickle=False)
                if not isinstance(archive, np.lib.npyio.NpzFile):  # a .npy file holds one bare array
                    raise ValueError(f"not a NumPy .npz archive (a single {type(archive).__name__}, as a .npy file holds)")
                with archive as f:
                    contents = {name: f[name] for name in f.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError, AttributeError, TypeError) as exc:
            # NumPy reads a file that is not .npy/.npz as a pickle, refused with allow_pickle=False:
            # its advice to allow pickles does not apply to a checkpoint
            reason = "not a NumPy .npz archive" if "pickled" in str(exc) else str(exc)
            raise ValueError(f"{os.fspath(path)!r} is not a readable tripartite checkpoint: {reason}") from None
        name = repr(os.fspath(path))
        missing = set(_CHECKPOINT_ARRAYS) - set(contents)
        fmt = contents.get("format")
        if fmt is not None and (fmt.shape != () or fmt.dtype.kind not in "iu"):
            raise ValueError(f"{name}: format must be an integer, got {fmt!r}")
        if fmt is not None and int(fmt) != CHECKPOINT_FORMAT:
            raise ValueError(
                f"{name} has checkpoint format {int(fmt)}; this version of tripartite reads format {CHECKPOINT_FORMAT}"
            )
        if missing:
            raise ValueError(f"{name} is not a tripartite checkpoint: missing {sorted(missing)}")
        unexpected = set(contents) - set(_CHECKPOINT_ARRAYS) - {"hidden_bias"}
        if unexpected:
            raise ValueError(f"{name} is not a tripartite checkpoint: unexpected {sorted(unexpected)}")
        for key in ("config", "checksum"):
            if contents[key].shape != () or contents[key].dtype.kind != "U":
                raise ValueError(f"{name}: {key} must be a string, got {contents[key]!r}")
        config_json = str(contents.pop("config"))
        checksum = str(contents.pop("checksum"))
        contents.pop("format")
        if cls._checksum(config_json, contents) != checksum:
            raise ValueError(f"{name} is damaged: its contents do not match the checksum saved with it")
        config = cls._checkpoint_config(name, config_json)
        cls._check_checkpoint_arrays(name, config, contents, num_threads)
        # An rk4 checkpoint may have been saved before rk4 took euler's limit (2026-11-30): it is
        # rebuilt under the old limit (the same network for a dt both allow) and, if its dt is
        # above today's, loaded as it was with a warning.
        token = _LOADING_MAX_STEP.set(V.LEGACY_MAX_STEP_RK4 if config["integrator"] == "rk4" else None)
        try:
            net = cls(
                config.pop("d_key"), config.pop("d_value"), config.pop("n_hidden"),
                hidden_weights=contents["hidden_weights"], hidden_bias=contents.get("hidden_bias"),
                num_threads=num_threads, **config,
            )
        except ValueError as exc:
            raise ValueError(f"{name}: config: {exc}") from None
        finally:
            _LOADING_MAX_STEP.reset(token)
        if net._integrator == "rk4" and net._dt > V.step_limit("rk4", net._params):
            warnings.warn(
                f"{name} was saved with integrator='rk4' and dt = {net._dt} ms, above rk4's limit since 2026-11-30 "
                "(min(tau_hidden, tau_astro, 1/leak)); it is loaded as saved, but at such steps rk4's stages overshoot "
                "below zero (negative calcium, outputs far off): rerun with a smaller dt or integrator='exact'",
                RuntimeWarning, stacklevel=2,
            )
        net._H[...] = contents["synapses"]
        net._g[...] = contents["astrocyte_weights"]
        net._h[...] = contents["hidden"]
        net._scalars[...] = contents["scalars"]
        net._time_base = float(contents["time"])
        net._step = int(contents["step"])
        return net

    @staticmethod
    def _checkpoint_config(name: str, config_json: str) -> dict:
        """The config of a checkpoint: a JSON object with exactly the keys :meth:`_config` writes.
        Its values are checked by the constructor (and the sizes and dtype here, first)."""
        try:
            config = json.loads(config_json)
        except ValueError as exc:
            raise ValueError(f"{name}: config is not valid JSON: {exc}") from None
        if not isinstance(config, dict):
            raise ValueError(f"{name}: config must be a JSON object, got {type(config).__name__}")
        missing, unexpected = set(_CONFIG_KEYS) - set(config), set(config) - set(_CONFIG_KEYS)
        if missing or unexpected:
            what = [f"{label} {sorted(keys)}" for label, keys in (("missing", missing), ("unexpected", unexpected)) if keys]
            raise ValueError(f"{name}: config keys: {' and '.join(what)}")
        if config["scale"] is None:  # None would mean the default, silently
            raise ValueError(f"{name}: config: scale must be a real number, got None")
        try:
            for key in ("d_key", "d_value", "n_hidden", "heads"):
                V.positive_int(config[key], key)
            V.float_dtype(config["dtype"])
        except ValueError as exc:
            raise ValueError(f"{name}: config: {exc}") from None
        return config

    @staticmethod
    def _check_checkpoint_arrays(name: str, config: dict, contents: dict, num_threads: int) -> None:
        """Shapes exactly as the config implies (no broadcasting), dtypes exactly as saved (no
        cast), finite weights and state, time finite and >= 0, step a non-negative integer. (The
        constructor that load() calls next checks the config's values, and scans the weights
        again.) Negative rates or calcium are not refused: rk4 checkpoints saved at steps above
        today's limit can hold them (its stages overshoot below zero), and load as saved."""
        h, m, D, Dv = config["heads"], config["n_hidden"], config["d_key"], config["d_value"]
        dtype = np.dtype(config["dtype"])
        expect = dict(hidden_weights=((h, m, D), dtype), synapses=((h, Dv, m), dtype), astrocyte_weights=((h, m), dtype),
                      hidden=((h, m), dtype), scalars=((h, _core.num_scalars), np.dtype(np.float64)),
                      time=((), np.dtype(np.float64)))
        if "hidden_bias" in contents:
            expect["hidden_bias"] = ((h, m), dtype)
        try:
            for key, (shape, dt) in expect.items():
                V.exact_array(contents[key], key, shape, dt)
                if key not in ("scalars", "time"):
                    V.finite(contents[key], key, num_threads)
            # scalars: calcium and log-scales finite; the log-bounds B_g, B_h may be -inf (nothing written yet)
            sc = contents["scalars"]
            V.finite(sc[:, :_BOUND_G], "scalars[:, :4]")
            bad = np.argwhere(np.isnan(sc) | (sc == np.inf))
            if bad.size:
                i, j = bad[0]
                raise ValueError(f"scalars must be finite (or -inf in the bounds, columns 4 and 5), got {sc[i, j]} at index ({i}, {j})")
            V.non_negative(float(contents["time"]), "time")
            step = contents["step"]
            if step.shape != () or step.dtype.kind not in "iu" or int(step) < 0:
                raise ValueError(f"step must be a non-negative integer, got {step!r}")
        except ValueError as exc:
            raise ValueError(f"{name}: {exc}") from None

    # ----------------------------------------------------------------------------------------
    @staticmethod
    def _readonly(x: np.ndarray) -> np.ndarray:
        x.flags.writeable = False
        return x

    def _true(self, stored: np.ndarray, column: int) -> np.ndarray:
        scale = self._scalars[:, column].reshape((-1,) + (1,) * (stored.ndim - 1))
        with np.errstate(over="ignore"):
            return self._readonly((stored * np.exp(scale)).astype(self._dtype))

    @property
    def hidden_weights(self) -> np.ndarray:
        """W, (heads, n_hidden, d_key), read-only: a view of the network's own array, which stays
        non-writeable, so NumPy refuses to make the view writeable (no copy)."""
        return self._W.view()

    @property
    def hidden_bias(self) -> Optional[np.ndarray]:
        """b, per-neuron log-rate offsets, (heads, n_hidden), or None; a read-only view as for
        :attr:`hidden_weights`."""
        return None if self._bias is None else self._bias.view()

    @property
    @_in_true_units
    def synapses(self) -> np.ndarray:
        """H, the tripartite synapses, (heads, d_value, n_hidden): a read-only copy."""
        return self._true(self._H, _SCALE_H)

    @property
    @_in_true_units
    def astrocyte_weights(self) -> np.ndarray:
        """g, the neuron-to-astrocyte weights, (heads, n_hidden): a read-only copy."""
        return self._true(self._g, _SCALE_H)

    @property
    @_in_true_units
    def hidden_rates(self) -> np.ndarray:
        """h, the hidden neurons' rates now, (heads, n_hidden): a read-only copy."""
        return self._true(self._h, _SCALE_h)

    @property
    def calcium(self) -> np.ndarray:
        """a, each astrocyte's calcium now, (heads,) float64."""
        with np.errstate(over="ignore"):
            return self._readonly(self._scalars[:, _A] * np.exp(self._scalars[:, _SCALE_A]))

    @property
    def n_synapses(self) -> int:
        """Number of tripartite synapses, heads * d_value * n_hidden."""
        return self._heads * self._d_value * self._n_hidden

    @property
    def time(self) -> float:
        """Simulated time since the last reset (ms)."""
        return self._now()

    @property
    def num_threads(self) -> int:
        """Threads of the core (0 = all cores); may be set, with the constructor's rule."""
        return self._num_threads

    @num_threads.setter
    def num_threads(self, value: int) -> None:
        self._num_threads = V.threads(value)

    @property
    def heads(self) -> int:
        """Number of heads, one astrocyte each."""
        return self._heads

    @property
    def d_key(self) -> int:
        """D, the dimension of keys and queries."""
        return self._d_key

    @property
    def d_value(self) -> int:
        """Dv, the dimension of values: the output neurons per head."""
        return self._d_value

    @property
    def n_hidden(self) -> int:
        """m, hidden neurons per head."""
        return self._n_hidden

    @property
    def dtype(self) -> np.dtype:
        """Precision of the state arrays (float32 or float64)."""
        return self._dtype

    @property
    def scale(self) -> float:
        """s, the factor of q.k (inputs enter as x~ = x s^{1/2})."""
        return self._scale

    @property
    def integrator(self) -> str:
        """The integrator: "exact", "euler" or "rk4"."""
        return self._integrator

    @property
    def params(self) -> dict:
        """Time constants and rates: tau_hidden, tau_astro, t_write, t_read, eta, leak, dt."""
        p = {k: v for k, v in self._params.items() if k != "input_scale"}
        p["dt"] = self._dt
        return p

    def __setattr__(self, name: str, value: Any) -> None:
        """Only ``num_threads`` may be set after construction. The parameters shape the window maps
        and the stability check, so setting one (``net.dt = 0.5``) would otherwise create a new
        attribute that the simulation never reads; this raises instead, as for any other name."""
        if name.startswith("_") or name == "num_threads":
            object.__setattr__(self, name, value)
            return
        if name in self.params:
            raise AttributeError(
                f"{name} is fixed when the network is built (net.params[{name!r}] = {self.params[name]!r}): "
                f"build a new one, NeuronAstrocyteNetwork(..., {name}={value!r})"
            )
        if isinstance(getattr(type(self), name, None), property):
            raise AttributeError(f"{name} is read-only: it is fixed when the network is built, or follows from its state")
        raise AttributeError(f"NeuronAstrocyteNetwork has no attribute {name!r} to set (only num_threads can be set)")

    def __repr__(self) -> str:
        p = self._params
        return (
            f"NeuronAstrocyteNetwork(d_key={self._d_key}, d_value={self._d_value}, n_hidden={self._n_hidden}, "
            f"heads={self._heads}, seed={self._seed}, feature_map={self._feature_map!r}, scale={self._scale:g}, "
            f"integrator={self._integrator!r}, dtype={self._dtype.name}, tau_hidden={p['tau_hidden']:g}, "
            f"tau_astro={p['tau_astro']:g}, t_write={p['t_write']:g}, t_read={p['t_read']:g}, eta={p['eta']:g}, "
            f"leak={p['leak']:g}, dt={self._dt:g}; {self.n_synapses} synapses, "
            f"{'a' if self._bias is not None else 'no'} hidden bias, time={self._now():g} ms)"
        )


class SimulationInterrupted(KeyboardInterrupt):
    """Ctrl-C during a run: the network stopped at a window boundary and can be resumed.

    Attributes:

    - ``windows_done`` and ``windows_total`` of the interrupted call, ``time`` (ms) of the network
      now. For :meth:`NeuronAstrocyteNetwork.stream` a window pair (write, read) is never split,
      so ``windows_done // 2`` tokens are complete.
    - ``outputs`` and ``astrocyte``: for :meth:`~NeuronAstrocyteNetwork.read` and
      :meth:`~NeuronAstrocyteNetwork.stream`, what the call would have returned for the queries
      it completed (the first ``done`` of them): outputs (done, Dv) for 2-D input with one head,
      else (heads, done, Dv), and the calcium a at the end of each of their windows, (done,) or
      (heads, done), float64, whether or not ``return_astrocyte`` was asked; None for
      :meth:`~NeuronAstrocyteNetwork.write`. A resumed call on the remaining queries continues
      them: ``numpy.concatenate((exc.outputs, rest), axis=-2)``.
    - ``underflowed_reads``: how many of the completed reads the core found may have lost terms to
      underflow (also warned about; see the network's numerics in README).
    """

    def __init__(self, windows_done: int, windows_total: int, time: float, stop_multiple: int = 1,
                 outputs: Optional[np.ndarray] = None, astrocyte: Optional[np.ndarray] = None) -> None:
        self.windows_done, self.windows_total, self.time = windows_done, windows_total, time
        self.outputs, self.astrocyte = outputs, astrocyte
        self.underflowed_reads = 0  # set by the run that raised it
        unit = "tokens (write + read)" if stop_multiple == 2 else "windows"
        super().__init__(
            f"stopped after {windows_done // stop_multiple} of {windows_total // stop_multiple} {unit}, at t = {time:g} ms; "
            "the network is at that window boundary and can be saved or resumed"
        )


def _progress_bar(progress: Optional[bool], total: int, what: str):
    """A tqdm bar when asked (progress=True), or by default when stderr is a terminal and the run
    is long enough to watch; None otherwise (or when tqdm is not installed)."""
    if progress is None:
        progress = total >= 64 and sys.stderr.isatty()
    if not progress:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, unit=" " + what, desc="tripartite")
