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
    """Monitors raise SIGINT right after sampling the window for which when(kinds) is true, kinds
    being the kinds ("write", "read") of the windows sampled so far, this one last."""
    record, seen = StateMonitor._record_local, []

    def record_then_ctrl_c(self, net_, kind, *args, **kwargs):
        record(self, net_, kind, *args, **kwargs)
        seen.append(kind)
        if when(seen):
            signal.raise_signal(signal.SIGINT)

    monkeypatch.setattr(StateMonitor, "_record_local", record_then_ctrl_c)


def assert_same_traces(mon, other):
    for name in ("t", "window", "calcium", "synapses", "outputs"):
        assert np.array_equal(getattr(mon, name), getattr(other, name)), name


@pytest.mark.parametrize("window", ["write", "read"])
def test_ctrl_c_while_a_monitor_samples_ends_a_complete_run(rng, monkeypatch, window):
    """SIGINT raised inside the monitor's sampling of token 2's write (or read) window, which
    happens after the core has run the whole call, where Python's own handler would raise
    KeyboardInterrupt at once: the monitor samples every window, and SimulationInterrupted says the
    run is complete, with every output; the traces are those of an uninterrupted run."""
    (q, k, v), net, mon, y_whole, whole_mon = monitored_stream(rng)
    ctrl_c_on_record(monkeypatch, lambda kinds: kinds[-1] == window and kinds.count(window) == 3)
    handler = signal.getsignal(signal.SIGINT)
    exc = run_catching_ctrl_c(lambda: net.stream(q, k, v))
    assert signal.getsignal(signal.SIGINT) is handler  # the run's own handler is gone
    assert type(exc) is SimulationInterrupted and exc.windows_done == exc.windows_total == 12
    assert net.time == 6 * (FAST["t_write"] + FAST["t_read"]) and mon.t[-1] == net.time
    assert np.array_equal(exc.outputs, y_whole[0]) and np.array_equal(exc.astrocyte, y_whole[1])
    assert_same_traces(mon, whole_mon)


def test_ctrl_c_in_the_last_window_of_a_monitored_run_is_reported(rng, monkeypatch):
    """SIGINT from the progress bar's report of the last window: the run is complete, and
    SimulationInterrupted says so (as the core does for an unmonitored run)."""
    net = tripartite.NeuronAstrocyteNetwork(4, 2, 30, dtype=np.float64, **FAST)
    mon = net.monitor(("calcium", "outputs"), every=5)
    q, k, v = moderate_inputs(rng, (3, 4), (3, 4), 2)
    net.write(k, v)

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
def test_a_run_that_fails_in_the_core_leaves_no_samples(rng, monkeypatch, error):
    """An exception from the core's call (before it ran any window): no time passes, the monitor
    holds only its sample at creation, and the stream run again gives the uninterrupted traces."""
    (q, k, v), net, mon, y_whole, whole_mon = monitored_stream(rng)

    def failing_kernel(*args):
        raise error()

    monkeypatch.setattr(net, "_kernel", failing_kernel)
    with pytest.raises(error):
        net.stream(q, k, v)
    assert net.time == 0.0 and mon.n_samples == 1
    monkeypatch.undo()
    net.stream(q, k, v)
    assert_same_traces(mon, whole_mon)


def test_a_monitor_that_fails_keeps_the_network_s_time(rng, monkeypatch):
    """An exception from a monitor while it samples the run (here MemoryError at token 2's read):
    the run itself is complete, so the network's time counts every window, and the monitor keeps
    the samples of the windows before; a later run samples on from the network's time."""
    (q, k, v), net, mon, y_whole, whole_mon = monitored_stream(rng)
    record, calls = StateMonitor._record_local, []

    def failing(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 6:
            raise MemoryError()
        return record(self, *args, **kwargs)

    monkeypatch.setattr(StateMonitor, "_record_local", failing)
    with pytest.raises(MemoryError):
        net.stream(q, k, v)
    period = FAST["t_write"] + FAST["t_read"]
    assert net.time == 6 * period
    assert np.array_equal(mon.t, whole_mon.t[whole_mon.t <= 2 * period + FAST["t_write"]])
    monkeypatch.undo()
    net.stream(q[:1], k[:1], v[:1])
    assert mon.t[-1] == net.time == 7 * period and np.count_nonzero(mon.t > 6 * period) == len(range(183, 211, 3))  # dt = 1 ms
    assert not np.any((mon.t > 2 * period + FAST["t_write"]) & (mon.t <= 6 * period))  # the windows it missed


def test_ctrl_c_in_a_monitored_read_keeps_the_outputs_of_the_queries_done(rng, monkeypatch):
    """Ctrl-C in a long read with a monitor of the outputs (the core stops at a window boundary):
    the exception holds the outputs and calcium of the queries done, equal to an unmonitored
    network's, and the monitor's samples stop at the network's time, the same as those of a read of
    just those queries."""
    D, Dv, m, L = 32, 32, 200_000, 4000
    q = (rng.standard_normal((L, D)) * 0.4).astype(np.float32)
    k = (rng.standard_normal((3, D)) * 0.4).astype(np.float32)
    v = rng.standard_normal((3, Dv)).astype(np.float32)
    nets = [tripartite.NeuronAstrocyteNetwork(D, Dv, m, num_threads=1) for _ in range(2)]
    for net in nets:
        net.write(k, v)
    mon = nets[1].monitor(("calcium", "outputs"), every=100)
    with pytest.raises(SimulationInterrupted) as info:
        InterruptAfterFirstReport().run(monkeypatch, lambda: nets[1].read(q, return_astrocyte=True, progress=True))
    exc = info.value
    done = exc.windows_done
    assert 0 < done < L and mon.t[-1] == nets[1].time == 300.0 + done * 1000.0
    y, a = nets[0].read(q[:done], return_astrocyte=True)
    assert np.array_equal(exc.outputs, y) and np.array_equal(exc.astrocyte, a)
    fresh = tripartite.NeuronAstrocyteNetwork(D, Dv, m, num_threads=1)
    fresh.write(k, v)
    fresh_mon = fresh.monitor(("calcium", "outputs"), every=100)
    fresh.read(q[:done])
    assert np.array_equal(mon.t, fresh_mon.t)
    assert np.array_equal(mon.calcium, fresh_mon.calcium) and np.array_equal(mon.outputs, fresh_mon.outputs)


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
    with pytest.raises(MemoryError, match=r"the samples of a monitor of outputs \(64 values a sample, every = 1 steps\)") as info:
        net.stream(q, k, v)
    assert "the monitors' H h and H u of each read" in str(info.value)  # and the core's rows for them
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
@pytest.mark.parametrize("stream", [True, False], ids=["stream", "write-then-read"])
def test_monitors_in_the_core_s_segments_match_the_reference(rng, dtype, integrator, stream):
    """Monitored runs go in the core's segments: the calcium from the core's sums of each window's
    starting state, a read's outputs from its H h and H u (two more readouts in the pass over the
    synapses), the recorded neurons and synapses carried through the windows by the monitor from
    their state before the run. 40 tokens and 40 queries (80 windows: a stream, or all the writes
    and then all the reads) on two heads with a bias and a leak, m over two blocks, neurons and
    synapses on both sides of the block boundary, a monitor of every variable of head 1 every 3
    steps and a calcium monitor of both heads every 7: outputs bitwise those of an unmonitored
    network, the outputs while writing the values, every variable equal to reference.simulate's
    within the tolerance of the monitors' test above (the network's rounding and the maps'
    composition), and the last samples the network's state within it."""
    D, Dv, m, L, dt = 5, 3, _core.block_size + 52, 40, 0.5
    q, k, v = (float32_numbers(x) for x in moderate_inputs(rng, (2, L, D), (2, L, D), Dv))
    W = float32_numbers(rng.standard_normal((2, m, D)))
    b = float32_numbers(rng.normal(-0.3, 0.2, (2, m)))
    args = dict(heads=2, dtype=dtype, integrator=integrator, dt=dt, leak=0.01, hidden_weights=W, hidden_bias=b, **FAST)
    hidden, synapses = [0, 7, m - 1], [(0, 1), (2, m - 1), (1, _core.block_size + 2)]
    net, plain = (tripartite.NeuronAstrocyteNetwork(D, Dv, m, **args) for _ in range(2))
    mon = net.monitor(VARIABLES, heads=[1], hidden=hidden, synapses=synapses, every=3)
    both = net.monitor(every=7)
    if stream:
        y, y_plain = net.stream(q, k, v), plain.stream(q, k, v)
    else:
        net.write(k, v), plain.write(k, v)
        y, y_plain = net.read(q), plain.read(q)
    assert np.array_equal(y, y_plain)
    assert mon.n_samples == 1 + L * (20 + 40) // 3 and both.n_samples == 1 + L * (20 + 40) // 7
    _, _, trace = reference.simulate(k[1], v[1], q[1], W[1], stream=stream, integrator=integrator, dt=dt, leak=0.01,
                                     hidden_bias=b[1], record_every=3, **FAST)
    assert np.allclose(mon.t, trace["t"], rtol=0, atol=1e-9)
    writing = mon.window == "write"
    token = np.floor(mon.t[writing] / (FAST["t_write"] + FAST["t_read"] if stream else FAST["t_write"]) - 1e-9).astype(int)
    assert np.array_equal(mon.outputs[writing, 0], v[1, token])
    expected = dict(calcium=trace["calcium"], hidden=trace["hidden"][:, hidden],
                    astrocyte_weights=trace["astrocyte_weights"][:, hidden], outputs=trace["outputs"],
                    synapses=trace["synapses"][:, [d for d, _ in synapses], [r for _, r in synapses]])
    tol = network_tol(dtype, 2 * L, L * (FAST["t_write"] + FAST["t_read"]) / dt) + FAST["t_read"] / dt * EPS[np.float64]
    for name in VARIABLES:
        got, top = getattr(mon, name)[:, 0], np.max(np.abs(expected[name]))
        assert np.max(np.abs(got - expected[name])) <= tol * top, name
    # the last samples are the network's state at the end, within the same tolerance
    assert mon.t[-1] == net.time
    for got, state in ((mon.hidden, net.hidden_rates[1, hidden]), (mon.astrocyte_weights, net.astrocyte_weights[1, hidden]),
                       (mon.synapses, net.synapses[1, [d for d, _ in synapses], [r for _, r in synapses]])):
        assert np.max(np.abs(got[-1, 0] - state)) <= tol * np.max(np.abs(got))
    # the two calcium monitors' common steps (multiples of 21): the same values
    steps_mon, steps_both = np.rint(mon.t / dt).astype(int), np.rint(both.t / dt).astype(int)
    assert np.array_equal(both.calcium[steps_both % 21 == 0, 1], mon.calcium[steps_mon % 21 == 0, 0])


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


@pytest.mark.parametrize("variables", [("calcium",), ("calcium", "outputs")], ids=["calcium", "outputs"])
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
    net.write(k, v)
    _, a = net.read(q, return_astrocyte=True)
    assert np.all(np.isfinite(mon.calcium)) and np.all(np.isfinite(a)) and a.min() > 1e150
    ends = np.isin(mon.t, [3 * FAST["t_write"] + (i + 1) * FAST["t_read"] for i in range(2)])  # dt = 1 ms
    assert ends.sum() == 2
    assert np.all(np.abs(mon.calcium[ends, 0] / a - 1) <= 6 * 450 * EPS[np.float64])


def test_monitored_runs_take_no_pass_of_their_own(rng, monkeypatch):
    """The monitors take everything from the core's run and from their own entries: the core's
    pass over a head's weights, state and synapses (monitor._window_sums) runs only for the
    samples at a monitor's creation (the outputs' H h then), not once a window."""
    import tripartite.monitor as monitor_module

    q, k, v = moderate_inputs(rng, (2, 3, 4), (2, 3, 4), 2)
    calls = []
    original = monitor_module._window_sums

    def counted(net_, hd, x, with_outputs):
        calls.append(hd)
        return original(net_, hd, x, with_outputs)

    monkeypatch.setattr(monitor_module, "_window_sums", counted)
    net = tripartite.NeuronAstrocyteNetwork(4, 2, 30, heads=2, dtype=np.float64, **FAST)
    net.monitor(tripartite.monitor.VARIABLES, every=5), net.monitor(("hidden", "outputs"), heads=[1], every=7)
    assert sorted(calls) == [0, 1, 1]  # the samples at creation: the first monitor's two heads, the second's one
    calls.clear()
    net.stream(q, k, v)
    net.write(k, v)
    net.read(q)
    assert calls == []


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_core_s_h_h_and_h_u_of_each_read_against_the_monitor_s_pass(rng, dtype):
    """run_network's window_reads: for each read of a stream (each read taking two more readouts
    in the pass over the synapses), H h and H u at the window's start in true units, against the
    monitor's pass over the state (monitor._window_sums, tested against NumPy, sums in double)
    taken before each window of the same stream run one window a call (the same state bit for
    bit), on two heads, m over two blocks, a bias and a leak. The core sums each block's products
    in the dtype: within (block size + 4) eps of the sums of |H_dr| h_r (and |H_dr| u_r), the
    block's summation and the rounding of h and u. The outputs are bitwise those of the run
    without window_reads, whose write rows stay as they were."""
    import tripartite.monitor as monitor_module

    D, Dv, m, L, heads = 5, 3, _core.block_size + 52, 25, 2
    q, k, v = (np.ascontiguousarray(x, dtype=dtype) for x in moderate_inputs(rng, (heads, L, D), (heads, L, D), Dv))
    bias = rng.normal(-0.3, 0.2, (heads, m))
    kw = dict(heads=heads, dtype=dtype, leak=0.01, hidden_bias=bias, **FAST)
    a, b, c = (tripartite.NeuronAstrocyteNetwork(D, Dv, m, **kw) for _ in range(3))
    kernel = _core.run_network_float32 if dtype == np.float32 else _core.run_network_float64
    is_write, index = np.array([1, 0] * L, np.uint8), np.repeat(np.arange(L), 2)

    def run(net, keys, values, queries, kinds, idx, reads=None):
        return kernel(net._W, net._bias, net._H, net._g, net._h, net._scalars, keys, values, queries, kinds, idx,
                      net._params, net._integrator, net._write_steps, net._read_steps, 2, None, 2, None, reads)

    reads = np.full((heads, 2 * L, 2, Dv), 7.0)
    y = run(a, k, v, q, is_write, index, reads)[0]
    assert np.array_equal(y, run(c, k, v, q, is_write, index)[0])
    assert np.all(reads[:, is_write == 1] == 7.0)
    want, scale = np.zeros_like(reads), np.zeros_like(reads)  # the pass's H h, H u; sums of |H| h, |H| u
    none = (np.zeros((heads, 0, D), dtype), np.zeros((heads, 0, Dv), dtype))
    for i in range(2 * L):
        j = slice(index[i], index[i] + 1)
        if is_write[i]:
            run(b, np.ascontiguousarray(k[:, j]), np.ascontiguousarray(v[:, j]), none[0], is_write[i:i + 1], np.zeros(1, np.int64))
            continue
        for hd in range(heads):
            _, u, want[hd, i, 0], want[hd, i, 1] = monitor_module._window_sums(b, hd, q[hd, index[i]], True)
            H = np.abs(b._H[hd].astype(np.float64)) * np.exp(b._scalars[hd, 2])
            scale[hd, i, 0], scale[hd, i, 1] = H @ (b._h[hd].astype(np.float64) * np.exp(b._scalars[hd, 3])), H @ u
        run(b, none[0], none[1], np.ascontiguousarray(q[:, j]), is_write[i:i + 1], np.zeros(1, np.int64))
    reading = is_write == 0
    err = np.abs(reads[:, reading] - want[:, reading])
    assert np.all(err <= (_core.block_size + 4) * EPS[dtype] * scale[:, reading])


def test_a_monitored_run_in_chunks_records_the_same_bits(rng, monkeypatch):
    """A monitored run calls the core a chunk of windows at a time (network._MONITORED_CHUNK, 4096,
    so that the sums it hands over take bounded memory). Chunks of 6 windows: a stream of 13 tokens
    (26 windows: chunks of 6, 6, 6, 6 and 2), on two heads, gives the same outputs, state, time and
    samples of every variable, bit for bit, as one chunk; and a write then a read likewise."""
    D, Dv, m, L = 5, 3, _core.block_size + 52, 13
    q, k, v = moderate_inputs(rng, (2, L, D), (2, L, D), Dv)
    kw = dict(heads=2, dtype=np.float32, leak=0.01, **FAST)
    runs = []
    for chunk in (4096, 6):
        monkeypatch.setattr(tripartite.network, "_MONITORED_CHUNK", chunk)
        net = tripartite.NeuronAstrocyteNetwork(D, Dv, m, **kw)
        mon = net.monitor(VARIABLES, hidden=[0, m - 1], synapses=[(0, 1), (2, m - 1)], every=3)
        y = net.stream(q, k, v)
        net.write(k, v)
        y2 = net.read(q)
        runs.append([y, y2, net.synapses, net.astrocyte_weights, net.hidden_rates, net.calcium, net.time, mon.t, mon.window]
                    + [getattr(mon, name) for name in VARIABLES])
    for a, b in zip(*runs):
        assert np.array_equal(a, b)
