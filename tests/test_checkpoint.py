"""Checkpoints, Ctrl-C and resumption: a run stopped, saved, loaded and resumed is bitwise equal
to an uninterrupted run."""

import json
import signal
import zipfile

import numpy as np
import pytest

import tripartite
import tripartite.network
from tripartite import SimulationInterrupted

from conftest import InterruptAfterFirstReport, moderate_inputs


def state(net):
    return [net.synapses, net.astrocyte_weights, net.hidden_rates, net.calcium, np.array(net.time)]


def assert_bitwise(a, b):
    for x, y in zip(a, b):
        assert np.array_equal(x, y)


@pytest.mark.parametrize("integrator", ["exact", "rk4"])
def test_save_load_resume_is_bitwise(tmp_path, rng, integrator):
    q, k, v = moderate_inputs(rng, (2, 10, 8), (2, 10, 8), 3)
    kw = dict(heads=2, seed=3, integrator=integrator, dt=0.5, leak=0.001)
    whole = tripartite.NeuronAstrocyteNetwork(8, 3, 300, **kw)
    y_whole = whole.stream(q, k, v)

    first = tripartite.NeuronAstrocyteNetwork(8, 3, 300, **kw)
    y_a = first.stream(q[:, :4], k[:, :4], v[:, :4])
    first.save(tmp_path / "net.npz")
    second = tripartite.NeuronAstrocyteNetwork.load(tmp_path / "net.npz")
    assert repr(second) == repr(first)
    y_b = second.stream(q[:, 4:], k[:, 4:], v[:, 4:])
    assert np.array_equal(np.concatenate([y_a, y_b], axis=1), y_whole)
    assert_bitwise(state(second), state(whole))


def test_bias_and_explicit_weights_round_trip(tmp_path, rng):
    W = rng.standard_normal((1, 50, 4))
    b = rng.normal(size=(1, 50))
    net = tripartite.NeuronAstrocyteNetwork(4, 2, 50, hidden_weights=W, hidden_bias=b, dtype=np.float64)
    net.save(tmp_path / "n.npz")
    back = tripartite.NeuronAstrocyteNetwork.load(tmp_path / "n.npz")
    assert np.array_equal(back.hidden_weights, W) and np.array_equal(back.hidden_bias, b)


def test_damaged_and_foreign_files_are_refused(tmp_path, rng):
    net = tripartite.NeuronAstrocyteNetwork(4, 2, 50)
    net.write(*moderate_inputs(rng, (3, 4), (3, 4), 2)[1:])
    path = tmp_path / "net.npz"
    net.save(path)

    data = dict(np.load(path))
    data["synapses"] = data["synapses"] + 1e-3  # silently edited contents
    np.savez(tmp_path / "edited.npz", **data)
    with pytest.raises(ValueError, match="damaged"):
        tripartite.NeuronAstrocyteNetwork.load(tmp_path / "edited.npz")

    raw = path.read_bytes()
    (tmp_path / "truncated.npz").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ValueError, match="not a readable tripartite checkpoint"):
        tripartite.NeuronAstrocyteNetwork.load(tmp_path / "truncated.npz")

    data = dict(np.load(path))
    data["format"] = np.array(99)
    np.savez(tmp_path / "future.npz", **data)
    with pytest.raises(ValueError, match="checkpoint format 99"):
        tripartite.NeuronAstrocyteNetwork.load(tmp_path / "future.npz")

    np.savez(tmp_path / "other.npz", x=np.ones(3))
    with pytest.raises(ValueError, match="missing"):
        tripartite.NeuronAstrocyteNetwork.load(tmp_path / "other.npz")
    with pytest.raises(FileNotFoundError, match="no tripartite checkpoint at .*absent.npz"):
        tripartite.NeuronAstrocyteNetwork.load(tmp_path / "absent.npz")
    assert zipfile.is_zipfile(path)

    # a .npy file (one bare array): 'numpy.ndarray' object does not support the context manager protocol, before
    np.save(tmp_path / "array.npy", np.ones(3))
    with pytest.raises(ValueError, match=r"array.npy' is not a readable tripartite checkpoint: not a NumPy .npz "
                                         r"archive \(a single ndarray, as a .npy file holds\)"):
        tripartite.NeuronAstrocyteNetwork.load(tmp_path / "array.npy")


def test_checkpoint_weights_are_named_as_arrays_not_config(tmp_path):
    """NaN hidden weights in a checkpoint (checksum recomputed) are refused as an array of the file,
    not as 'config: hidden_weights' (they were scanned only by the constructor, under that prefix)."""
    net = tripartite.NeuronAstrocyteNetwork(4, 2, 50)
    net.save(tmp_path / "net.npz")
    data = dict(np.load(tmp_path / "net.npz"))
    data["hidden_weights"] = data["hidden_weights"].copy()
    data["hidden_weights"][0, 7, 1] = np.nan
    data["checksum"] = np.array(tripartite.NeuronAstrocyteNetwork._checksum(
        str(data["config"]), {k: v for k, v in data.items() if k not in ("config", "checksum", "format")}))
    np.savez(tmp_path / "nan.npz", **data)
    with pytest.raises(ValueError, match=r"nan.npz': hidden_weights must be finite, got nan at index \(0, 7, 1\)"):
        tripartite.NeuronAstrocyteNetwork.load(tmp_path / "nan.npz")


@pytest.mark.parametrize("protocol", ["write", "stream"])
def test_ctrl_c_stops_at_a_window_boundary_and_resumes_bitwise(rng, monkeypatch, protocol):
    D, Dv, m, L = 32, 32, 200_000, 8000
    k = rng.standard_normal((L, D)).astype(np.float32) * 0.4
    v = rng.standard_normal((L, Dv)).astype(np.float32)
    net = tripartite.NeuronAstrocyteNetwork(D, Dv, m, num_threads=1)
    bar = InterruptAfterFirstReport()
    with pytest.raises(SimulationInterrupted) as info:
        bar.run(monkeypatch, lambda: net.write(k, v, progress=True) if protocol == "write" else net.stream(k, k, v, progress=True))
    done = info.value.windows_done
    # stopped at a poll after the one that reported (and sent the signal), before the end
    assert bar.first_report is not None and 0 < bar.first_report < done < info.value.windows_total
    if protocol == "write":
        assert net.time == done * 100.0
        net.write(k[done:done + 3], v[done:done + 3])
        reference = tripartite.NeuronAstrocyteNetwork(D, Dv, m, num_threads=1)
        reference.write(k[: done + 3], v[: done + 3])
    else:
        assert done % 2 == 0 and net.time == done // 2 * 1100.0  # never between a token and its query
        n = done // 2
        net.stream(k[n:n + 2], k[n:n + 2], v[n:n + 2])
        reference = tripartite.NeuronAstrocyteNetwork(D, Dv, m, num_threads=1)
        reference.stream(k[: n + 2], k[: n + 2], v[: n + 2])
    assert_bitwise(state(net), state(reference))


@pytest.mark.parametrize("protocol", ["read", "stream"])
def test_ctrl_c_keeps_the_outputs_of_the_queries_done(rng, monkeypatch, protocol):
    """SimulationInterrupted from the core holds the outputs and calcium of the completed queries,
    shaped as the call would return them (2-D input: (done, Dv) and (done,)), equal to an
    uninterrupted run's; the network continues with the rest."""
    D, Dv, m, L = 32, 32, 200_000, 8000
    k = rng.standard_normal((L, D)).astype(np.float32) * 0.4
    v = rng.standard_normal((L, Dv)).astype(np.float32)
    net = tripartite.NeuronAstrocyteNetwork(D, Dv, m, num_threads=1)
    reference = tripartite.NeuronAstrocyteNetwork(D, Dv, m, num_threads=1)
    if protocol == "read":
        for n in (net, reference):
            n.write(k[:2], v[:2])
    bar = InterruptAfterFirstReport()
    call = ((lambda: net.read(k, progress=True)) if protocol == "read" else (lambda: net.stream(k, k, v, progress=True)))
    with pytest.raises(SimulationInterrupted) as info:
        bar.run(monkeypatch, call)
    exc = info.value
    done = exc.windows_done if protocol == "read" else exc.windows_done // 2
    assert 0 < done < L and exc.outputs.shape == (done, Dv) and exc.astrocyte.shape == (done,)
    n = done + 2
    y, a = (reference.read(k[:n], return_astrocyte=True) if protocol == "read"
            else reference.stream(k[:n], k[:n], v[:n], return_astrocyte=True))
    assert np.array_equal(exc.outputs, y[:done]) and np.array_equal(exc.astrocyte, a[:done])
    rest = net.read(k[done:n]) if protocol == "read" else net.stream(k[done:n], k[done:n], v[done:n])
    assert np.array_equal(np.concatenate((exc.outputs, rest), axis=-2), y)


def test_an_interrupted_write_has_no_outputs(rng, monkeypatch):
    D, Dv, m, L = 32, 32, 200_000, 8000
    k = rng.standard_normal((L, D)).astype(np.float32) * 0.4
    net = tripartite.NeuronAstrocyteNetwork(D, Dv, m, num_threads=1)
    with pytest.raises(SimulationInterrupted) as info:
        InterruptAfterFirstReport().run(monkeypatch, lambda: net.write(k, k, progress=True))
    assert info.value.outputs is None and info.value.astrocyte is None


class FailingBar:
    """A progress bar whose update raises (as a broken bar, or a SIGINT handler of the caller's own
    that raises while the core reports progress, would)."""

    def update(self, k):
        raise RuntimeError("the bar broke")

    def close(self):
        pass

    n = 0


def test_an_exception_while_reporting_progress_keeps_the_books(rng, monkeypatch):
    """The windows the core ran are counted before the exception reaches the caller: time and state
    agree with a run that completed (the core's state had advanced while the clock stayed at 0).
    The bar is updated when the core polls, at most every 0.1 s: here only once the whole call is
    done (a short run; a partial one would make the test depend on timing)."""
    q, k, v = moderate_inputs(rng, (12, 4), (12, 4), 2)
    net = tripartite.NeuronAstrocyteNetwork(4, 2, 50)
    monkeypatch.setattr(tripartite.network, "_progress_bar", lambda progress, total, what: FailingBar())
    with pytest.raises(RuntimeError, match="the bar broke"):
        net.write(k, v)
    monkeypatch.undo()
    assert net.time == len(k) * net.params["t_write"]
    whole = tripartite.NeuronAstrocyteNetwork(4, 2, 50)
    whole.write(k, v)
    assert_bitwise(state(net), state(whole))


def test_progress_bar_reports_every_window(capsys):
    pytest.importorskip("tqdm")
    net = tripartite.NeuronAstrocyteNetwork(4, 2, 50)
    net.write(np.ones((70, 4)), np.ones((70, 2)), progress=True)
    err = capsys.readouterr().err
    assert "70/70" in err and "tokens" in err
    net.write(np.ones((70, 4)), np.ones((70, 2)), progress=False)
    assert capsys.readouterr().err == ""


def _signal_after_each_core_call(monkeypatch, net):
    """SIGINT right after each return of the core, before the network has counted its windows."""
    kernel = net._kernel

    def kernel_then_signal(*args):
        result = kernel(*args)
        signal.raise_signal(signal.SIGINT)
        return result

    monkeypatch.setattr(net, "_kernel", kernel_then_signal)


@pytest.mark.parametrize("protocol", ["write", "stream"])
def test_ctrl_c_right_after_the_core_returns_keeps_the_books(rng, monkeypatch, protocol):
    # A SIGINT that lands after the core's last poll, before the network has counted the windows
    # it ran: Python's default handler raised KeyboardInterrupt there, and the network's time
    # stayed behind its state. Now the run is complete and stops with SimulationInterrupted.
    k = rng.standard_normal((6, 8)) * 0.4
    v = rng.standard_normal((6, 4))
    net = tripartite.NeuronAstrocyteNetwork(8, 4, 64)
    _signal_after_each_core_call(monkeypatch, net)
    handler = signal.getsignal(signal.SIGINT)
    with pytest.raises(SimulationInterrupted) as info:
        net.write(k, v) if protocol == "write" else net.stream(k, k, v)
    assert info.value.windows_done == info.value.windows_total
    reference = tripartite.NeuronAstrocyteNetwork(8, 4, 64)
    reference.write(k, v) if protocol == "write" else reference.stream(k, k, v)
    assert net.time == reference.time
    assert_bitwise(state(net), state(reference))
    assert signal.getsignal(signal.SIGINT) is handler  # the run's handler is gone


def test_an_interrupted_stream_still_warns_about_underflowed_reads(monkeypatch):
    # |x~|^2 = 1e4 in float32: some reads lose their products to underflow. An interrupted run
    # used to skip the warning; the exception also carries the count.
    # (the inputs of tests/test_large_norms.py's warning test, whose stream has such a read)
    D = 16
    q, k, v = moderate_inputs(np.random.default_rng(0), (8, D), (8, D), 4, norm2=1e4)
    kw = dict(t_write=20.0, t_read=50.0, tau_hidden=2.0, tau_astro=5.0, integrator="euler")
    net = tripartite.NeuronAstrocyteNetwork(D, 4, 1024, dtype=np.float32, **kw)
    _signal_after_each_core_call(monkeypatch, net)
    with pytest.warns(RuntimeWarning, match="underflow float32"):
        with pytest.raises(SimulationInterrupted) as info:
            net.stream(q, k, v)
    assert info.value.underflowed_reads > 0


@pytest.mark.parametrize("dt, loads", [(20.0, True), (30.0, False)])
def test_rk4_checkpoints_saved_under_the_old_step_limit_still_load(tmp_path, rng, dt, loads):
    """rk4's dt limit went from 2.5 to 1 x min(tau_hidden, tau_astro, 1/leak) on 2026-11-30. A
    checkpoint saved with a dt the old limit allowed (here 2 tau) loads as it was, with a warning;
    beyond the old limit it never was a valid network and is refused as before."""
    net = tripartite.NeuronAstrocyteNetwork(4, 2, 50, integrator="rk4", dt=10.0, tau_hidden=10.0, tau_astro=10.0,
                                            t_write=40.0, t_read=40.0)
    q, k, v = moderate_inputs(rng, (3, 4), (3, 4), 2)
    net.write(k, v)
    net.save(tmp_path / "ok.npz")
    contents = dict(np.load(tmp_path / "ok.npz"))
    config = json.loads(str(contents["config"]))
    config["dt"] = dt  # as an older version would have saved it
    contents["config"] = np.array(json.dumps(config, sort_keys=True))
    arrays = {key: value for key, value in contents.items() if key not in ("format", "config", "checksum")}
    contents["checksum"] = np.array(tripartite.NeuronAstrocyteNetwork._checksum(str(contents["config"]), arrays))
    np.savez(tmp_path / "old.npz", **contents)
    if not loads:
        with pytest.raises(ValueError, match=r"config: dt = 30.0 ms is unstable for the rk4 integrator: .* \(2.5 x min"):
            tripartite.NeuronAstrocyteNetwork.load(tmp_path / "old.npz")
        return
    with pytest.warns(RuntimeWarning, match=r"saved with integrator='rk4' and dt = 20.0 ms, above rk4's limit"):
        old = tripartite.NeuronAstrocyteNetwork.load(tmp_path / "old.npz")
    assert old.params["dt"] == dt and old.time == net.time
    old.read(q)  # it runs, as saved
    with pytest.raises(ValueError, match="unstable for the rk4 integrator"):  # a new network cannot take that dt
        tripartite.NeuronAstrocyteNetwork(4, 2, 50, integrator="rk4", dt=dt, tau_hidden=10.0, tau_astro=10.0,
                                          t_write=40.0, t_read=40.0)
