"""Monitors against the step-by-step reference: the same values at the same steps."""

import math
import signal

import numpy as np
import pytest

import tripartite
import tripartite.network
from tripartite import SimulationInterrupted, _core, reference
from tripartite.monitor import VARIABLES, StateMonitor

from conftest import EPS, InterruptAfterFirstReport, float32_numbers, moderate_inputs, network_tol

FAST = dict(tau_hidden=2.0, tau_astro=5.0, t_write=10.0, t_read=20.0)


@pytest.mark.parametrize("integrator", ["euler", "rk4"])
def test_monitor_matches_reference_trace(rng, integrator):
    D, Dv, m, L, dt, every = 5, 3, 40, 3, 0.5, 3
    q, k, v = moderate_inputs(rng, (L, D), (L, D), Dv)
    net = tripartite.NeuronAstrocyteNetwork(D, Dv, m, dtype=np.float64, integrator=integrator, dt=dt, leak=0.01, **FAST)
    mon = net.monitor(("calcium", "hidden", "astrocyte_weights", "synapses", "outputs"), hidden=[0, 7, 39],
                      synapses=[(0, 1), (2, 39)], every=every)
    net.stream(q, k, v)
    _, _, trace = reference.simulate(k, v, q, net.hidden_weights[0], stream=True, integrator=integrator, dt=dt,
                                     leak=0.01, record_every=every, **FAST)
    assert mon.n_samples == len(trace["t"])
    assert np.allclose(mon.t, trace["t"], rtol=0, atol=1e-9)
    scale = lambda x: np.max(np.abs(x))  # noqa: E731
    assert np.max(np.abs(mon.calcium[:, 0] - trace["calcium"])) <= 1e-12 * scale(trace["calcium"])
    assert np.max(np.abs(mon.hidden[:, 0] - trace["hidden"][:, [0, 7, 39]])) <= 1e-12 * scale(trace["hidden"])
    assert np.max(np.abs(mon.astrocyte_weights[:, 0] - trace["astrocyte_weights"][:, [0, 7, 39]])) <= 1e-12 * scale(trace["astrocyte_weights"])
    H_ref = trace["synapses"][:, [0, 2], [1, 39]]
    assert np.max(np.abs(mon.synapses[:, 0] - H_ref)) <= 1e-12 * scale(H_ref)
    assert np.max(np.abs(mon.outputs[:, 0] - trace["outputs"])) <= 1e-11 * scale(trace["outputs"])
    # the output neurons are clamped to the token's value while it is written (MODEL.md section 2)
    writing = mon.window == "write"
    token = np.floor(mon.t[writing] / (FAST["t_write"] + FAST["t_read"])).astype(int)
    assert writing.sum() > L and np.array_equal(mon.outputs[writing, 0], v[token])
    assert np.array_equal(trace["outputs"][writing], v[token])


@pytest.mark.parametrize("integrator", ["euler", "rk4"])
def test_monitor_of_one_head_with_bias_in_both_dtypes(rng, integrator):
    """Two heads, a monitor on head 1 only, a hidden bias, m = 2100 (two blocks): hidden neurons
    and synapses on both sides of the block boundary, float32 and float64 (weights and inputs
    rounded to float32 numbers: one reference for both), within network_tol of each trace's
    largest value."""
    D, Dv, m, L, dt, every = 5, 6, _core.block_size + 52, 3, 0.5, 3
    q, k, v = (float32_numbers(x) for x in moderate_inputs(rng, (2, L, D), (2, L, D), Dv))
    W = float32_numbers(rng.standard_normal((2, m, D)))
    b = float32_numbers(rng.normal(-0.3, 0.2, (2, m)))
    hidden, synapses = [0, 7, m - 1], [(0, 1), (5, m - 1), (3, _core.block_size + 2)]
    variables = ("calcium", "hidden", "astrocyte_weights", "synapses", "outputs")
    _, _, trace = reference.simulate(k[1], v[1], q[1], W[1], stream=True, integrator=integrator, dt=dt, leak=0.01,
                                     hidden_bias=b[1], record_every=every, **FAST)
    expected = dict(calcium=trace["calcium"], hidden=trace["hidden"][:, hidden],
                    astrocyte_weights=trace["astrocyte_weights"][:, hidden], outputs=trace["outputs"],
                    synapses=trace["synapses"][:, [d for d, _ in synapses], [r for _, r in synapses]])
    for dtype in (np.float32, np.float64):
        net = tripartite.NeuronAstrocyteNetwork(D, Dv, m, heads=2, dtype=dtype, integrator=integrator, dt=dt, leak=0.01,
                                                hidden_weights=W, hidden_bias=b, **FAST)
        mon = net.monitor(variables, heads=[1], hidden=hidden, synapses=synapses, every=every)
        net.stream(q, k, v)
        assert mon.n_samples == len(trace["t"]) and np.allclose(mon.t, trace["t"], rtol=0, atol=1e-9)
        # the network's rounding (network_tol), and the monitor's own: it reaches a sample by
        # composing up to t_read / dt step maps in double (window_trajectory), ~ eps64 each.
        # 1.4e-6 / 1.5e-14; measured over 10 seeds <= 1.8 eps32 and 9.9 eps64.
        tol = network_tol(dtype, 2 * L, L * (FAST["t_write"] + FAST["t_read"]) / dt) + FAST["t_read"] / dt * EPS[np.float64]
        for name in variables:
            got = getattr(mon, name)[:, 0]
            assert np.max(np.abs(got - expected[name])) <= tol * np.max(np.abs(expected[name])), (dtype, name)


def test_monitor_memory_is_bounded_by_the_request(rng):
    net = tripartite.NeuronAstrocyteNetwork(4, 2, 1000, heads=3)
    mon = net.monitor(("calcium", "hidden"), heads=[1], hidden=[5, 6], every=50)
    q, k, v = moderate_inputs(rng, (3, 4, 4), (3, 4, 4), 2)
    net.write(k, v)
    y = net.read(q)
    # 4 writes x 100 steps + 4 reads x 1000 steps, one sample per 50, plus the state at t = 0
    assert mon.calcium.shape == (1 + 4 * 2 + 4 * 20, 1) and mon.hidden.shape == (89, 1, 2)
    assert mon.t[-1] == net.time and set(mon.window) == {"now", "write", "read"}
    # the monitored run gives the same outputs as an unmonitored one
    other = tripartite.NeuronAstrocyteNetwork(4, 2, 1000, heads=3)
    other.write(k, v)
    assert np.array_equal(other.read(q), y)
    mon.stop()
    net.read(q)
    assert mon.calcium.shape[0] == 89
    with pytest.raises(AttributeError, match="does not record 'outputs'"):
        mon.outputs


def test_exact_integrator_monitor_samples_continuous_solution(rng):
    q, k, v = moderate_inputs(rng, (2, 4), (2, 4), 2)
    exact = tripartite.NeuronAstrocyteNetwork(4, 2, 30, dtype=np.float64, **FAST)
    rk4 = tripartite.NeuronAstrocyteNetwork(4, 2, 30, dtype=np.float64, integrator="rk4", dt=0.05, **FAST)
    m1 = exact.monitor(every=10)  # every 10 ms (dt = 1)
    m2 = rk4.monitor(every=200)  # every 10 ms
    exact.stream(q, k, v)
    rk4.stream(q, k, v)
    assert np.allclose(m1.t, m2.t) and np.allclose(m1.calcium, m2.calcium, rtol=1e-7)


@pytest.mark.parametrize(
    "kwargs, match",
    [(dict(variables=("voltage",)), r"variable must be one of .*got .voltage. \(in variables="), (dict(every=0), "every must be a positive integer"),
     (dict(heads=[3]), "heads must be indices"), (dict(variables=("hidden",), hidden=[100]), "hidden must be neuron indices"),
     (dict(variables=("synapses",), synapses=[(5, 0)]), "synapses must be")],
)
def test_monitor_bad_arguments(kwargs, match):
    net = tripartite.NeuronAstrocyteNetwork(4, 2, 30)
    with pytest.raises(ValueError, match=match):
        net.monitor(**kwargs)


def test_reset_clears_the_monitors_and_records_t_0_afresh(rng):
    """After reset a monitor holds only the zero state at t = 0, and then records what a monitor
    of a fresh network records: its time axis never goes back."""
    q, k, v = moderate_inputs(rng, (2, 4), (3, 4), 2)
    variables = ("calcium", "hidden", "outputs")
    net = tripartite.NeuronAstrocyteNetwork(4, 2, 30, dtype=np.float64, **FAST)
    mon = net.monitor(variables, every=3)
    net.write(k, v)
    net.reset()
    assert mon.t.tolist() == [0.0] and mon.window.tolist() == ["now"] and not mon.calcium.any() and not mon.hidden.any()
    net.stream(q, k[:2], v[:2])
    fresh = tripartite.NeuronAstrocyteNetwork(4, 2, 30, dtype=np.float64, **FAST)
    other = fresh.monitor(variables, every=3)
    fresh.stream(q, k[:2], v[:2])
    assert np.all(np.diff(mon.t) > 0)
    for name in ("t", "window") + variables:
        assert np.array_equal(getattr(mon, name), getattr(other, name)), name
    mon.stop()
    net.reset()  # a detached monitor keeps its samples
    assert mon.n_samples == other.n_samples


def test_monitor_repr_names_indices_and_time_span(rng):
    net = tripartite.NeuronAstrocyteNetwork(4, 2, 30, heads=2, t_write=5.0, t_read=5.0)
    mon = net.monitor(("calcium", "hidden", "synapses"), heads=[1], hidden=list(range(30)), synapses=[(0, 1), (1, 2)],
                      every=2)
    net.write(*moderate_inputs(rng, (2, 2, 4), (2, 2, 4), 2)[1:])
    assert repr(mon) == ("StateMonitor(variables=('calcium', 'hidden', 'synapses'), heads=[1], "
                         "hidden=[0, 1, 2, ..., 27, 28, 29] (30), synapses=[(0, 1), (1, 2)], every=2 steps; "
                         "6 samples, t = 0 to 10 ms)")
    assert repr(net.monitor(every=3)) == "StateMonitor(variables=('calcium',), heads=[0, 1], every=3 steps; 0 samples)"


@pytest.mark.parametrize("dt", [3.0, 0.7, 60.0])
def test_exact_monitor_needs_a_dt_that_divides_the_windows(dt):
    """A monitor samples the exact solution every dt: a dt that does not divide t_write = 100 and
    t_read = 1000 would put samples off the grid at uneven spacing; it is refused, and the
    network keeps no monitor."""
    net = tripartite.NeuronAstrocyteNetwork(4, 2, 8, dt=dt)
    with pytest.raises(ValueError, match=rf"dt must divide t_write = 100.0 ms into whole steps for a monitor.*got dt = {dt}"):
        net.monitor("calcium")
    assert net._monitors == []
    tripartite.NeuronAstrocyteNetwork(4, 2, 8, dt=2.5).monitor("calcium")  # divides both


def test_plot_helpers_draw_monitor_traces(tmp_path, rng):
    pytest.importorskip("matplotlib")
    from tripartite.plots import calcium_trace, figure, synapse_traces

    net = tripartite.NeuronAstrocyteNetwork(4, 2, 30, t_read=50.0)
    mon = net.monitor(("calcium", "synapses"), synapses=[(0, 0), (1, 2)], every=5)
    q, k, v = moderate_inputs(rng, (2, 4), (3, 4), 2)
    net.write(k, v)
    net.read(q)
    fig, axes = figure(2)
    calcium_trace(axes[0], mon)
    synapse_traces(axes[1], mon)
    assert len(axes[0].lines) == 1 and len(axes[1].lines) == 2 and len(axes[0].patches) == 1  # one shaded write span
    fig.savefig(tmp_path / "m.png")
    assert (tmp_path / "m.png").stat().st_size > 5000


def run_catching_ctrl_c(call):
    """The KeyboardInterrupt a call raises (None if none), caught here so that a plain one fails
    the test instead of stopping pytest."""
    try:
        call()
    except KeyboardInterrupt as exc:
        return exc
    return None


def monitored_stream(rng):
    L, D, Dv, m = 6, 4, 2, 30
    q, k, v = moderate_inputs(rng, (L, D), (L, D), Dv)
    whole = tripartite.NeuronAstrocyteNetwork(D, Dv, m, dtype=np.float64, **FAST)
    whole_mon = whole.monitor(("calcium", "synapses", "outputs"), every=3)
    y_whole = whole.stream(q, k, v, return_astrocyte=True)
    net = tripartite.NeuronAstrocyteNetwork(D, Dv, m, dtype=np.float64, **FAST)
    mon = net.monitor(("calcium", "synapses", "outputs"), every=3)
    return (q, k, v), net, mon, y_whole, whole_mon


def ctrl_c_on_record(monkeypatch, when):
    """Monitors raise SIGINT right after the sample for which when(kinds) is true, kinds being
    the kinds ("write", "read", ...) of the samples recorded so far, this one last."""
    record, seen = StateMonitor._record, []

    def record_then_ctrl_c(self, net_, kind, *args, **kwargs):
        record(self, net_, kind, *args, **kwargs)
        seen.append(kind)
        if when(seen):
            signal.raise_signal(signal.SIGINT)

    monkeypatch.setattr(StateMonitor, "_record", record_then_ctrl_c)


def assert_same_traces(mon, other):
    for name in ("t", "window", "calcium", "synapses", "outputs"):
        assert np.array_equal(getattr(mon, name), getattr(other, name)), name


@pytest.mark.parametrize("window", ["write", "read"])
def test_ctrl_c_while_a_monitor_samples_stops_a_stream_between_tokens(rng, monkeypatch, window):
    """SIGINT raised inside the monitor's sampling of token 2's write (or read) window, where
    Python's own handler would raise KeyboardInterrupt at once: the run finishes token 2 and
    raises SimulationInterrupted there, with the monitor at the network's time and the outputs of
    tokens 0-2, and a resumed stream gives the uninterrupted outputs and traces."""
    (q, k, v), net, mon, y_whole, whole_mon = monitored_stream(rng)
    ctrl_c_on_record(monkeypatch, lambda kinds: kinds[-1] == window and kinds.count(window) == 3)
    handler = signal.getsignal(signal.SIGINT)
    exc = run_catching_ctrl_c(lambda: net.stream(q, k, v))
    assert signal.getsignal(signal.SIGINT) is handler  # the run's own handler is gone
    assert type(exc) is SimulationInterrupted and exc.windows_done == 6 and exc.windows_total == 12
    period = FAST["t_write"] + FAST["t_read"]
    assert net.time == 3 * period and mon.t[-1] == net.time  # never between a token and its query
    assert np.array_equal(exc.outputs, y_whole[0][:3]) and np.array_equal(exc.astrocyte, y_whole[1][:3])
    monkeypatch.undo()
    y_rest = net.stream(q[3:], k[3:], v[3:])
    assert np.array_equal(y_rest, y_whole[0][3:])
    assert_same_traces(mon, whole_mon)


def test_ctrl_c_in_the_last_window_of_a_monitored_run_is_reported(rng, monkeypatch):
    """SIGINT from the progress bar's report of the last window: the run is complete, and
    SimulationInterrupted says so (as the core does for an unmonitored run)."""
    net = tripartite.NeuronAstrocyteNetwork(4, 2, 30, dtype=np.float64, **FAST)
    mon = net.monitor(("calcium", "outputs"), every=5)  # reads: window by window (without the outputs: in segments)
    assert not net._in_segments()
    q, k, v = moderate_inputs(rng, (3, 4), (3, 4), 2)
    net.write(k, v)  # writes only: in segments

    class Bar:
        n = 0

        def update(self, n):
            self.n += n
            if self.n == 3:
                signal.raise_signal(signal.SIGINT)

        def close(self):
            pass

    monkeypatch.setattr(tripartite.network, "_progress_bar", lambda progress, total, what: Bar())
    exc = run_catching_ctrl_c(lambda: net.read(q))
    assert type(exc) is SimulationInterrupted and exc.windows_done == exc.windows_total == 3
    assert net.time == 3 * (FAST["t_write"] + FAST["t_read"]) and mon.t[-1] == net.time


@pytest.mark.parametrize("error", [KeyboardInterrupt, MemoryError])
def test_a_window_that_fails_leaves_no_samples(rng, monkeypatch, error):
    """An exception between the monitor's sampling of a window and the end of its simulation
    (here from the core, in token 2's read window): the monitor keeps only the samples of the
    windows simulated, and a resumed stream gives the uninterrupted traces."""
    (q, k, v), net, mon, y_whole, whole_mon = monitored_stream(rng)
    kernel, calls = net._kernel, []

    def failing_kernel(*args):
        calls.append(1)
        if len(calls) == 6:
            raise error()
        return kernel(*args)

    monkeypatch.setattr(net, "_kernel", failing_kernel)
    with pytest.raises(error):
        net.stream(q, k, v)
    period = FAST["t_write"] + FAST["t_read"]
    assert net.time == 2 * period + FAST["t_write"]
    assert np.array_equal(mon.t, whole_mon.t[whole_mon.t <= net.time])
    monkeypatch.undo()
    # finish token 2 by hand, window by window as the stream (a run of reads alone goes in the
    # core's segments: the same samples within rounding, tested elsewhere, not bit for bit)
    monkeypatch.setattr(net, "_in_segments", lambda reads=True, writes=True: False)
    net.read(q[2:3])
    monkeypatch.undo()
    net.stream(q[3:], k[3:], v[3:])
    assert_same_traces(mon, whole_mon)


def test_ctrl_c_in_a_monitored_read_keeps_the_outputs_of_the_queries_done(rng, monkeypatch):
    """Two heads, (heads, L, D) input: SIGINT while the monitor samples query 2's window; the
    exception holds the first 3 queries' outputs (2, 3, Dv) and calcium (2, 3). (The window-by-
    window path, which a stream with a monitor of the outputs takes; a run of reads alone goes in
    the core's segments, and Ctrl-C there is the core's, below.)"""
    q, k, v = moderate_inputs(rng, (2, 5, 4), (2, 3, 4), 2)
    nets = [tripartite.NeuronAstrocyteNetwork(4, 2, 30, heads=2, dtype=np.float64, **FAST) for _ in range(2)]
    for net in nets:
        net.write(k, v)
    y, a = nets[0].read(q, return_astrocyte=True)
    mon = nets[1].monitor(("calcium", "outputs"), every=5)
    monkeypatch.setattr(nets[1], "_in_segments", lambda reads=True, writes=True: False)
    ctrl_c_on_record(monkeypatch, lambda kinds: len(kinds) == 3)
    exc = run_catching_ctrl_c(lambda: nets[1].read(q))
    assert type(exc) is SimulationInterrupted and exc.windows_done == 3
    assert exc.outputs.shape == (2, 3, 2) and exc.astrocyte.shape == (2, 3) and exc.astrocyte.dtype == np.float64
    assert np.array_equal(exc.outputs, y[:, :3]) and np.array_equal(exc.astrocyte, a[:, :3])
    assert mon.t[-1] == nets[1].time


def test_monitored_runs_check_the_samples_memory_before_running(rng, monkeypatch):
    """A run whose samples cannot fit raises MemoryError naming the monitor and its `every` before
    any window runs (it used to fail in NumPy mid-run, after writing the token)."""
    from tripartite import _validate

    # one thread: the core's scratch (0.85 MB a thread) stays far below the 10 MiB given
    net = tripartite.NeuronAstrocyteNetwork(8, 64, 32, t_write=10.0, t_read=10000.0, num_threads=1)
    mon = net.monitor("outputs")
    q, k, v = moderate_inputs(rng, (3, 8), (3, 8), 64)
    # 3 reads of 10^4 steps: ~3e4 samples of 64 doubles, about 16 MB kept
    monkeypatch.setattr(_validate, "available_memory", lambda: 10 * 2**20)
    with pytest.raises(MemoryError, match=r"the samples of a monitor of outputs \(64 values a sample, every = 1 steps\)"):
        net.stream(q, k, v)
    assert net.time == 0.0 and not net.synapses.any() and mon.n_samples == 1
    mon.stop()
    sparse = net.monitor("outputs", every=100)  # 300 samples fit
    net.stream(q, k, v)
    assert sparse.n_samples == 1 + 3 * 100  # now, then each read's 100 (no write spans a multiple of 100)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bias", [False, True])
def test_window_sums_of_the_core_against_numpy(rng, dtype, bias):
    """What a monitored window needs (monitor._window_sums: the input's rates u, the five sums
    g.h, g.u, h.h, h.u, u.u, and H h, H u) from the core's one pass, against the NumPy reference
    (monitor._window_sums_reference), all in true units, on a network with state (tokens written, a query read), m
    over two blocks and a tail, for an input and for none. The two sum in different orders: each
    sum within (n - 1) eps64 of the sum of its terms' magnitudes (n terms); each rate's log, a sum
    of n = D + 2 terms (D products, the constant, the bias), within (n - 1) n eps64 of its largest
    term's magnitude, and exp's rounding on top. The core's pass gives the same bits on 1, 2 and 3
    threads."""
    from tripartite.monitor import _scaled_input, _window_sums, _window_sums_reference

    D, Dv, m = 6, 5, 2 * _core.block_size + 77
    q, k, v = moderate_inputs(rng, (2, 4, D), (2, 4, D), Dv)
    b = rng.normal(-0.3, 0.2, (2, m)) if bias else None
    net = tripartite.NeuronAstrocyteNetwork(D, Dv, m, heads=2, dtype=dtype, hidden_bias=b, seed=3, **FAST)
    net.write(k[:, :3], v[:, :3])
    net.read(q[:, :1])
    eps = EPS[np.float64]
    for hd in (0, 1):
        for x in (q[hd, 2].astype(dtype), None):
            fast = _window_sums(net, hd, x, True)
            slow = _window_sums_reference(net, hd, x, True)
            h = net._h[hd].astype(np.float64) * np.exp(net._scalars[hd, 3])
            g = net._g[hd].astype(np.float64) * np.exp(net._scalars[hd, 2])
            u = np.abs(slow[1])
            magnitudes = [g @ h, g @ u, h @ h, h @ u, u @ u]
            for k_, scale in enumerate(magnitudes):
                assert abs(fast[0][k_] - slow[0][k_]) <= (m - 1) * eps * scale
            H = np.abs(net._H[hd].astype(np.float64)) * np.exp(net._scalars[hd, 2])  # true units
            assert np.all(np.abs(fast[2] - slow[2]) <= (m - 1) * eps * (H @ np.abs(h)))
            assert np.all(np.abs(fast[3] - slow[3]) <= (m - 1) * eps * (H @ u))
            if x is None:
                assert not fast[1].any() and not slow[1].any()
                continue
            xs, c = _scaled_input(net, x)
            terms = np.abs(net._W[hd].astype(np.float64) * xs).max(axis=1)
            terms = np.maximum(terms, abs(c))
            if bias:
                terms = np.maximum(terms, np.abs(net._bias[hd].astype(np.float64)))
            n = D + 2
            assert np.all(np.abs(fast[1] / slow[1] - 1) <= (n - 1) * n * eps * terms + 2 * eps)
            results = []
            for threads in (1, 2, 3):
                net.num_threads = threads
                results.append(_window_sums(net, hd, x, True))
            net.num_threads = 0
            for other in results[1:]:
                assert all(np.array_equal(a_, b_) for a_, b_ in zip(results[0], other))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("integrator", ["euler", "rk4"])
def test_monitors_without_outputs_run_in_segments_and_match_the_reference(rng, dtype, integrator):
    """Monitors of the calcium, hidden rates, astrocyte weights and synapses: the run goes in the
    core's segments (network._in_segments). The calcium comes from the core's sums of each
    window's starting state; the recorded neurons and synapses are carried through the windows by
    the monitor from their state before the run. A stream of 40 tokens (80 windows: segments of
    32, 32 and 16) on two heads with a bias and a leak, m over two blocks, neurons and synapses on
    both sides of the block boundary, a monitor of head 1 every 3 steps and a calcium monitor of
    both heads every 7: the same sample times as a monitor of the same variables and the outputs
    (window by window), and values equal to reference.simulate's within the tolerance of the
    monitors' test above (the network's rounding and the maps' composition; the window-by-window
    monitor's within twice that)."""
    D, Dv, m, L, dt = 5, 3, _core.block_size + 52, 40, 0.5
    q, k, v = (float32_numbers(x) for x in moderate_inputs(rng, (2, L, D), (2, L, D), Dv))
    W = float32_numbers(rng.standard_normal((2, m, D)))
    b = float32_numbers(rng.normal(-0.3, 0.2, (2, m)))
    args = dict(heads=2, dtype=dtype, integrator=integrator, dt=dt, leak=0.01, hidden_weights=W, hidden_bias=b, **FAST)
    hidden, synapses = [0, 7, m - 1], [(0, 1), (2, m - 1), (1, _core.block_size + 2)]
    local = ("calcium", "hidden", "astrocyte_weights", "synapses")
    net = tripartite.NeuronAstrocyteNetwork(D, Dv, m, **args)
    mon = net.monitor(local, heads=[1], hidden=hidden, synapses=synapses, every=3)
    both = net.monitor(every=7)
    assert net._in_segments() and _core.segment_windows(2, m, D, Dv) == 32
    y = net.stream(q, k, v)
    slow = tripartite.NeuronAstrocyteNetwork(D, Dv, m, **args)
    slow_mon = slow.monitor(local + ("outputs",), heads=[1], hidden=hidden, synapses=synapses, every=3)
    assert not slow._in_segments()
    y_slow = slow.stream(q, k, v)
    assert np.array_equal(y, y_slow)  # the same core arithmetic either way
    assert np.array_equal(mon.t, slow_mon.t) and np.array_equal(mon.window, slow_mon.window)
    assert mon.n_samples == 1 + L * (20 + 40) // 3 and both.n_samples == 1 + L * (20 + 40) // 7
    _, _, trace = reference.simulate(k[1], v[1], q[1], W[1], stream=True, integrator=integrator, dt=dt, leak=0.01,
                                     hidden_bias=b[1], record_every=3, **FAST)
    assert np.allclose(mon.t, trace["t"], rtol=0, atol=1e-9)
    expected = dict(calcium=trace["calcium"], hidden=trace["hidden"][:, hidden],
                    astrocyte_weights=trace["astrocyte_weights"][:, hidden],
                    synapses=trace["synapses"][:, [d for d, _ in synapses], [r for _, r in synapses]])
    tol = network_tol(dtype, 2 * L, L * (FAST["t_write"] + FAST["t_read"]) / dt) + FAST["t_read"] / dt * EPS[np.float64]
    for name in local:
        top = np.max(np.abs(expected[name]))
        got = getattr(mon, name)[:, 0]
        assert np.max(np.abs(got - expected[name])) <= tol * top, name
        assert np.max(np.abs(got - getattr(slow_mon, name)[:, 0])) <= 2 * tol * top, name
    # the last samples are the network's state at the end, within the same tolerance
    assert mon.t[-1] == net.time
    for got, state in ((mon.hidden, net.hidden_rates[1, hidden]), (mon.astrocyte_weights, net.astrocyte_weights[1, hidden]),
                       (mon.synapses, net.synapses[1, [d for d, _ in synapses], [r for _, r in synapses]])):
        assert np.max(np.abs(got[-1, 0] - state)) <= tol * np.max(np.abs(got))
    # the two calcium monitors' common steps (multiples of 21): the same values
    steps_mon, steps_both = np.rint(mon.t / dt).astype(int), np.rint(both.t / dt).astype(int)
    assert np.array_equal(both.calcium[steps_both % 21 == 0, 1], mon.calcium[steps_mon % 21 == 0, 0])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("integrator", ["euler", "rk4"])
def test_a_monitor_of_the_outputs_lets_runs_of_one_kind_go_in_segments(rng, monkeypatch, dtype, integrator):
    """A monitor of every variable: a write of 30 tokens and then a read of 12 queries each go in
    the core's segments (no call of the window-by-window path). While writing the outputs are the
    values; while reading y = H h / a, with H u taken after the run (H does not change while
    reading) and H h carried from the run's start. The same sample times, the same outputs while
    writing, and every variable within the tolerance of the tests above of reference.simulate
    (write all, then read all) and within twice that of the same runs forced window by window;
    a stream (writes and reads mixed) then goes window by window."""
    D, Dv, m, L, Lq, dt = 5, 3, _core.block_size + 52, 30, 12, 0.5
    q, k, v = (float32_numbers(x) for x in moderate_inputs(rng, (2, Lq, D), (2, L, D), Dv))
    W = float32_numbers(rng.standard_normal((2, m, D)))
    b = float32_numbers(rng.normal(-0.3, 0.2, (2, m)))
    args = dict(heads=2, dtype=dtype, integrator=integrator, dt=dt, leak=0.01, hidden_weights=W, hidden_bias=b, **FAST)
    hidden, synapses = [0, 7, m - 1], [(0, 1), (2, m - 1)]
    kw = dict(heads=[1], hidden=hidden, synapses=synapses, every=3)
    net, slow = (tripartite.NeuronAstrocyteNetwork(D, Dv, m, **args) for _ in range(2))
    mon, slow_mon = net.monitor(VARIABLES, **kw), slow.monitor(VARIABLES, **kw)
    assert net._in_segments(reads=False) and net._in_segments(writes=False) and not net._in_segments()
    by_window = []
    original = net._run_monitored
    monkeypatch.setattr(net, "_run_monitored", lambda *a: by_window.append(1) or original(*a))
    net.write(k, v)
    y = net.read(q)
    assert not by_window
    monkeypatch.setattr(slow, "_in_segments", lambda reads=True, writes=True: False)
    slow.write(k, v)
    assert np.array_equal(slow.read(q), y)
    assert np.array_equal(mon.t, slow_mon.t) and np.array_equal(mon.window, slow_mon.window)
    writing = mon.window == "write"
    token = np.ceil(mon.t[writing] / FAST["t_write"] - 1e-9).astype(int) - 1  # the token written at each sample
    assert np.array_equal(mon.outputs[writing, 0], v[1, token])
    assert np.array_equal(mon.outputs[writing], slow_mon.outputs[writing])
    _, _, trace = reference.simulate(k[1], v[1], q[1], W[1], integrator=integrator, dt=dt, leak=0.01, hidden_bias=b[1],
                                     record_every=3, **FAST)
    assert np.allclose(mon.t, trace["t"], rtol=0, atol=1e-9)
    expected = dict(calcium=trace["calcium"], hidden=trace["hidden"][:, hidden],
                    astrocyte_weights=trace["astrocyte_weights"][:, hidden], outputs=trace["outputs"],
                    synapses=trace["synapses"][:, [d for d, _ in synapses], [r for _, r in synapses]])
    tol = network_tol(dtype, L + Lq, (L * FAST["t_write"] + Lq * FAST["t_read"]) / dt) + FAST["t_read"] / dt * EPS[np.float64]
    for name in VARIABLES:
        got, top = getattr(mon, name)[:, 0], np.max(np.abs(expected[name]))
        assert np.max(np.abs(got - expected[name])) <= tol * top, name
        assert np.max(np.abs(got - getattr(slow_mon, name)[:, 0])) <= 2 * tol * top, name
    net.stream(q[:, :1], k[:, :1], v[:, :1])
    assert by_window


@pytest.mark.parametrize("variables", [("calcium",), ("calcium", "hidden", "synapses")], ids=["calcium", "neurons"])
def test_a_monitored_run_in_segments_stopped_by_ctrl_c_keeps_the_samples_of_the_windows_done(rng, monkeypatch,
                                                                                               variables):
    """Ctrl-C in a write monitored in segments: the monitor holds the samples of the windows done
    and none after (its last sample at the network's time), the same as a run of just those
    tokens; resumed, the rest follows."""
    D, Dv, m, L = 32, 32, 200_000, 8000
    k = rng.standard_normal((L, D)).astype(np.float32) * 0.4
    v = rng.standard_normal((L, Dv)).astype(np.float32)
    net = tripartite.NeuronAstrocyteNetwork(D, Dv, m, num_threads=1)
    mon = net.monitor(variables, every=25)
    assert net._in_segments()
    with pytest.raises(SimulationInterrupted) as info:
        InterruptAfterFirstReport().run(monkeypatch, lambda: net.write(k, v, progress=True))
    done = info.value.windows_done
    assert 0 < done < L and mon.t[-1] == net.time == done * 100.0
    fresh = tripartite.NeuronAstrocyteNetwork(D, Dv, m, num_threads=1)
    fresh_mon = fresh.monitor(variables, every=25)
    fresh.write(k[:done], v[:done])
    assert np.array_equal(mon.t, fresh_mon.t)
    assert all(np.array_equal(getattr(mon, name), getattr(fresh_mon, name)) for name in variables)
    net.write(k[done:done + 3], v[done:done + 3])
    fresh.write(k[done:done + 3], v[done:done + 3])
    assert all(np.array_equal(getattr(mon, name), getattr(fresh_mon, name)) for name in variables)
    assert mon.t[-1] == net.time


@pytest.mark.parametrize("variables", [("calcium",), ("calcium", "outputs")], ids=["segments", "window-by-window"])
def test_monitored_calcium_stays_finite_where_a_query_s_rates_overflow_u_dot_u(rng, variables):
    """A bias of 400 on every neuron, keys with |k~|^2 = 900 and queries with |q~|^2 = 1: each
    query's rates are ~e^400, so u.u overflows double to inf, while the true calcium stays finite
    (~1e191). A read's u.u term has coefficient 0; left in, 0 * inf made every read sample NaN.
    Both monitoring paths give the core's own a_t at the end of each read window, within the
    rounding of six exponentials of logs up to ~450 (450 eps64 relative each)."""
    D, Dv, m = 8, 3, 500
    q, k, _ = moderate_inputs(rng, (2, D), (3, D), Dv, norm2=1.0)
    k = k * math.sqrt(900.0)
    v = rng.standard_normal((3, Dv))
    net = tripartite.NeuronAstrocyteNetwork(D, Dv, m, dtype=np.float64, hidden_bias=np.full((1, m), 400.0), **FAST)
    mon = net.monitor(variables, every=5)
    assert net._in_segments() == ("outputs" not in variables)
    net.write(k, v)
    _, a = net.read(q, return_astrocyte=True)
    assert np.all(np.isfinite(mon.calcium)) and np.all(np.isfinite(a)) and a.min() > 1e150
    ends = np.isin(mon.t, [3 * FAST["t_write"] + (i + 1) * FAST["t_read"] for i in range(2)])  # dt = 1 ms
    assert ends.sum() == 2
    assert np.all(np.abs(mon.calcium[ends, 0] / a - 1) <= 6 * 450 * EPS[np.float64])


def test_monitors_of_one_window_share_the_core_s_pass(rng, monkeypatch):
    """Two monitors that make the run go window by window: the core's pass over each head
    (monitor._window_sums) runs once a window, not once a monitor, and each monitor records what
    it would record alone."""
    import tripartite.monitor as monitor_module

    q, k, v = moderate_inputs(rng, (2, 3, 4), (2, 3, 4), 2)
    calls = []
    original = monitor_module._window_sums

    def counted(net_, hd, x, with_outputs):
        calls.append(hd)
        return original(net_, hd, x, with_outputs)

    monkeypatch.setattr(monitor_module, "_window_sums", counted)
    net = tripartite.NeuronAstrocyteNetwork(4, 2, 30, heads=2, dtype=np.float64, **FAST)
    both = net.monitor(("calcium", "hidden"), every=5), net.monitor(("hidden", "outputs"), heads=[1], every=7)
    calls.clear()  # the samples at creation
    net.stream(q, k, v)
    # 6 windows: both heads, once each; a read's outputs for head 1 once more where the first
    # monitor's pass (no outputs) came first
    assert sorted(calls) == sorted([0, 1] * 6 + [1] * 3)
    for mon in both:
        alone = tripartite.NeuronAstrocyteNetwork(4, 2, 30, heads=2, dtype=np.float64, **FAST)
        ref = alone.monitor(mon.variables, heads=mon.heads, every=mon.every)
        if "outputs" not in mon.variables:  # alone it would run in segments: keep it window by window
            alone.monitor("outputs", every=1000)
        assert not alone._in_segments()
        alone.stream(q, k, v)
        for name in mon.variables:
            assert np.array_equal(getattr(mon, name), getattr(ref, name)), name
