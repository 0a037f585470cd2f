"""Results depend on the seed, never on the number of threads: bitwise."""

import math

import numpy as np
import pytest

import tripartite
from tripartite import _core

from conftest import moderate_inputs

# Thread-count tests mean something only if the calls do run on several threads: the core must be
# built with OpenMP, and a call's flop estimate must exceed the cutoff below which it runs on one
# thread whatever num_threads says (_core.single_thread_work; the estimates cpp/bindings.cpp feeds
# it are mirrored here). The sizes below are at least 5x above it and give every thread several
# tasks.
needs_openmp = pytest.mark.skipif(
    not tripartite.openmp_enabled(), reason="core built without OpenMP: every call runs on one thread, nothing to compare"
)


def attention_work(heads, m, Lq, Lk, D, Dv):
    """(flop estimate, tasks) of one steady-state call: tasks of blocks_per_task blocks of attention_block_size neurons."""
    blocks = math.ceil(m / _core.attention_block_size)
    return 2.0 * heads * m * (Lq + Lk) * (D + Dv), heads * math.ceil(blocks / _core.blocks_per_task)


def network_work(heads, m, D, Dv):
    """(flop estimate, tasks) of one network call: one task per block of block_size neurons."""
    return float(heads * m * (D + 2 * Dv)), heads * math.ceil(m / _core.block_size)


def assert_runs_threaded(work_and_tasks, threads=3):
    work, tasks = work_and_tasks
    assert work >= 5 * _core.single_thread_work and tasks >= 2 * threads, (work, tasks)


@needs_openmp
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_attention_threads_bitwise(rng, causal, dtype):
    q, k, v = moderate_inputs(rng, (3, 70, 16), (3, 70, 16), 8)
    q, k, v = (x.astype(dtype) for x in (q, k, v))
    assert_runs_threaded(attention_work(3, 5000, 70, 70, 16, 8))
    runs = [tripartite.attention(q, k, v, n_hidden=5000, causal=causal, num_threads=t, return_astrocyte=True) for t in (1, 2, 3)]
    for y, a in runs[1:]:
        assert np.array_equal(y, runs[0][0]) and np.array_equal(a, runs[0][1])


@needs_openmp
@pytest.mark.parametrize("causal", [False, True], ids=["bidirectional", "causal"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_attention_threads_bitwise_bias_orthogonal_multichunk(rng, causal, dtype):
    """Hidden bias, orthogonal weights, several chunks of keys and queries, and (bidirectional)
    Lq != Lk."""
    heads, D, Dv, m = 2, 12, 19, 3000
    Lq, Lk = (150, 150) if causal else (150, 2 * _core.chunk_size + 20)
    q = moderate_inputs(rng, (heads, Lq, D), (heads, Lk, D), Dv)[0]
    _, k, v = moderate_inputs(rng, (heads, Lq, D), (heads, Lk, D), Dv)
    q, k, v = (x.astype(dtype) for x in (q, k, v))
    b = rng.normal(-0.3, 0.2, (heads, m))
    assert_runs_threaded(attention_work(heads, m, Lq, Lk, D, Dv))
    runs = [tripartite.attention(q, k, v, n_hidden=m, feature_map="orthogonal", hidden_bias=b, causal=causal, num_threads=t,
                                 return_astrocyte=True) for t in (1, 2, 3)]
    for y, a in runs[1:]:
        assert np.array_equal(y, runs[0][0]) and np.array_equal(a, runs[0][1])


@needs_openmp
@pytest.mark.parametrize("causal", [False, True])
def test_attention_does_not_depend_on_how_blocks_are_grouped(rng, causal):
    """The task partials are folded in task order whether they are kept all at once or a few
    tasks at a time (a memory budget of 1 byte keeps one task per thread; 5 threads are more than
    this machine's cores)."""
    L = _core.chunk_size + 6  # two chunks
    q, k, v = moderate_inputs(rng, (3, L, 16), (3, L, 16), 8)
    m = 4 * _core.attention_block_size + 100  # 5 blocks per head: 3 tasks, the last of one block
    W = tripartite.draw_hidden_weights(m, 16, heads=3)
    assert_runs_threaded(attention_work(3, m, L, L, 16, 8))
    args = (W, None, *(x.astype(np.float32) for x in (q, k, v)), 0.5, causal)
    ref = _core.attention_float32(*args, 1)
    for threads, budget in ((1, 1), (2, 1), (3, 1), (5, 1), (2, L * 9 * 8 * 4)):
        y, log_a, log_u = _core.attention_float32(*args, threads, partial_budget=budget)
        assert np.array_equal(y, ref[0]) and np.array_equal(log_a, ref[1]), (threads, budget)
        assert np.array_equal(log_u, ref[2]), (threads, budget)


@needs_openmp
@pytest.mark.parametrize("integrator", ["exact", "euler"])
def test_network_threads_bitwise(rng, integrator):
    heads, D, Dv, m = 3, 16, 16, 4 * _core.block_size + 5  # 5 blocks per head, the last of 5 neurons
    q, k, v = moderate_inputs(rng, (heads, 5, D), (heads, 5, D), Dv)
    assert_runs_threaded(network_work(heads, m, D, Dv))
    results = []
    for threads in (1, 2, 3):
        net = tripartite.NeuronAstrocyteNetwork(D, Dv, m, heads=heads, integrator=integrator, num_threads=threads)
        y, a = net.stream(q, k, v, return_astrocyte=True)
        results.append((y, a, net.synapses, net.astrocyte_weights, net.hidden_rates))
    for other in results[1:]:
        for x, y in zip(results[0], other):
            assert np.array_equal(x, y)


@needs_openmp
@pytest.mark.parametrize("integrator", ["exact", "euler", "rk4"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_network_threads_bitwise_bias_leak_monitor(rng, integrator, dtype):
    """Write then read, then a stream, with hidden bias, leak and a monitor of every variable (the
    core's sums and each read's H h and H u, the monitor's own entries): outputs, calcium, state
    and the recorded traces, bitwise."""
    heads, D, Dv, m = 3, 16, 16, 4 * _core.block_size + 5
    q, k, v = moderate_inputs(rng, (heads, 4, D), (heads, 4, D), Dv)
    b = rng.normal(-0.3, 0.2, (heads, m))
    assert_runs_threaded(network_work(heads, m, D, Dv))
    results = []
    for threads in (1, 2, 3):
        net = tripartite.NeuronAstrocyteNetwork(D, Dv, m, heads=heads, integrator=integrator, dtype=dtype, leak=0.001,
                                                hidden_bias=b, t_read=200.0, num_threads=threads)
        net.write(k[:, :3], v[:, :3])
        y1, a1 = net.read(q, return_astrocyte=True)
        mon = net.monitor(("calcium", "hidden", "astrocyte_weights", "synapses", "outputs"), hidden=[0, _core.block_size, m - 1],
                          synapses=[(0, 1), (Dv - 1, m - 1)], every=50)
        y2, a2 = net.stream(q, k, v, return_astrocyte=True)
        results.append((y1, a1, y2, a2, net.synapses, net.astrocyte_weights, net.hidden_rates, net.calcium,
                        mon.calcium, mon.hidden, mon.astrocyte_weights, mon.synapses, mon.outputs))
    for other in results[1:]:
        for x, y in zip(results[0], other):
            assert np.array_equal(x, y)


def test_same_seed_same_network(rng):
    q, k, v = moderate_inputs(rng, (5, 8), (5, 8), 4)
    outs = []
    for _ in range(2):
        net = tripartite.NeuronAstrocyteNetwork(8, 4, 300, seed=11)
        outs.append(net.stream(q, k, v))
    assert np.array_equal(outs[0], outs[1])
    other = tripartite.NeuronAstrocyteNetwork(8, 4, 300, seed=12).stream(q, k, v)
    assert not np.array_equal(outs[0], other)


def test_heads_do_not_depend_on_head_count():
    W2 = tripartite.draw_hidden_weights(100, 8, heads=2, seed=4)
    W5 = tripartite.draw_hidden_weights(100, 8, heads=5, seed=4)
    assert np.array_equal(W2, W5[:2])
    assert np.array_equal(tripartite.draw_hidden_weights(100, 8, seed=4, dtype=np.float64).astype(np.float32), W2[:1])


def chi2_cdf_even(x, k):
    """P(chi^2_k <= x) for even k: 1 - e^{-x/2} sum_{j < k/2} (x/2)^j / j!."""
    h = np.asarray(x, dtype=np.float64) / 2
    term, total = np.ones_like(h), np.zeros_like(h)
    for j in range(k // 2):
        total += term
        term = term * h / (j + 1)
    return 1 - np.exp(-h) * total


def test_orthogonal_rows_blocks_and_norms():
    """Block-orthogonal rows: every block of d rows, the partial last one too, is an orthonormal
    set of directions (Householder QR: to ~ d eps), different blocks are independent, and the
    squared row norms follow chi^2_d (the law of a Gaussian row's), checked with the
    Dvoretzky-Kiefer-Wolfowitz bound: P(sup |F_n - F| > e) <= 2 exp(-2 n e^2), e for 1e-6."""
    d = 16
    m = 200 * d + 5  # 200 full blocks and a partial one of 5 rows
    W = tripartite.draw_hidden_weights(m, d, feature_map="orthogonal", seed=3, dtype=np.float64)[0]
    assert W.shape == (m, d)
    norm2 = np.sum(W * W, axis=1)
    U = W / np.sqrt(norm2)[:, None]
    for start in range(0, m, d):
        block = U[start : start + d]
        assert np.max(np.abs(block @ block.T - np.eye(len(block)))) <= d * np.finfo(np.float64).eps, start  # measured <= 3.1 eps
    assert np.max(np.abs(U[:d] @ U[d : 2 * d].T)) > 0.1  # a new basis per block, not one repeated
    x = np.sort(norm2)
    F = chi2_cdf_even(x, d)
    i = np.arange(1, m + 1)
    ks = max(np.max(i / m - F), np.max(F - (i - 1) / m))
    assert ks <= math.sqrt(math.log(2 / 1e-6) / (2 * m))  # 0.048; measured 0.018 (chi^2_15 norms: 0.079)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_network_results_do_not_depend_on_how_calls_are_split(rng, dtype):
    """The core advances windows in segments; the arithmetic per synapse does not depend on the
    segmentation, so one call, many calls, a token a call, and a run with a monitor of every
    variable (each read taking two more readouts in the pass over the synapses for the monitor)
    agree bitwise."""
    q, k, v = moderate_inputs(rng, (2, 13, 8), (2, 13, 8), 5)
    kw = dict(heads=2, dtype=dtype, leak=0.002)
    whole = tripartite.NeuronAstrocyteNetwork(8, 5, 2100, **kw)
    y_whole = whole.stream(q, k, v)
    parts = tripartite.NeuronAstrocyteNetwork(8, 5, 2100, **kw)
    y_parts = np.concatenate([parts.stream(q[:, a:b], k[:, a:b], v[:, a:b]) for a, b in ((0, 3), (3, 4), (4, 13))], axis=1)
    tokens = tripartite.NeuronAstrocyteNetwork(8, 5, 2100, **kw)
    y_tokens = np.concatenate([tokens.stream(q[:, t:t + 1], k[:, t:t + 1], v[:, t:t + 1]) for t in range(13)], axis=1)
    watched = tripartite.NeuronAstrocyteNetwork(8, 5, 2100, **kw)
    watched.monitor(tripartite.monitor.VARIABLES, every=100)
    y_watched = watched.stream(q, k, v)
    assert np.array_equal(y_whole, y_parts) and np.array_equal(y_whole, y_tokens) and np.array_equal(y_whole, y_watched)
    for net in (parts, tokens, watched):
        assert np.array_equal(net.synapses, whole.synapses) and np.array_equal(net.calcium, whole.calcium)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_network_reads_do_not_depend_on_how_calls_are_split(rng, dtype):
    """Reads after a segment's last write go through register tiles (pairs of synapse rows, threes
    of reads, as many of each as are left at the edges). 40 queries in one call (a full segment of
    reads and a partial one), in pieces of 1, 4 and 35, and with a monitor of the outputs (segments
    of 10 reads, each with two more readouts) agree
    bitwise, on d_value = 7 (groups of 4 and 3 rows: row pairs and a single row) and 2100 hidden
    neurons (a block's tail)."""
    q, k, v = moderate_inputs(rng, (2, 40, 8), (2, 6, 8), 7)
    kw = dict(heads=2, dtype=dtype, leak=0.002)
    nets = [tripartite.NeuronAstrocyteNetwork(8, 7, 2100, **kw) for _ in range(3)]
    for net in nets:
        net.write(k, v)
    assert _core.segment_windows(2, 2100, 8, 7) == _core.max_segment_windows < 40
    y_whole = nets[0].read(q)
    y_parts = np.concatenate([nets[1].read(q[:, a:b]) for a, b in ((0, 1), (1, 5), (5, 40))], axis=1)
    nets[2].monitor(("calcium", "outputs"), every=250)
    y_watched = nets[2].read(q)
    assert np.array_equal(y_whole, y_parts) and np.array_equal(y_whole, y_watched)
    for net in nets[1:]:
        assert np.array_equal(net.calcium, nets[0].calcium) and np.array_equal(net.hidden_rates, nets[0].hidden_rates)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_network_reads_in_tiles_equal_reads_between_writes(rng, dtype):
    """The same reads taken by the two paths of the pass over the synapses: 10 queries followed by
    a token in one call of the core (the reads lie before the segment's last write, so each goes
    window by window through every synapse, its sums in memory), and the same 10 queries in a call
    of their own (after the last write: register tiles), then the token. Outputs, calcium and
    state agree bitwise."""
    q, k, v = moderate_inputs(rng, (2, 10, 8), (2, 7, 8), 7)
    kw = dict(heads=2, dtype=dtype, leak=0.002)
    mixed, tiled = (tripartite.NeuronAstrocyteNetwork(8, 7, 2100, **kw) for _ in range(2))
    for net in (mixed, tiled):
        net.write(k[:, :6], v[:, :6])
    q, k, v = (np.ascontiguousarray(x, dtype=dtype) for x in (q, k, v))
    is_write = np.array([0] * 10 + [1], np.uint8)
    index = np.array(list(range(10)) + [6])
    y_mixed, _ = mixed._run(k, v, q, is_write, index, False, two_d=False)
    y_tiled = tiled.read(q)
    tiled.write(k[:, 6:], v[:, 6:])
    assert np.array_equal(y_mixed, y_tiled)
    assert np.array_equal(mixed.synapses, tiled.synapses) and np.array_equal(mixed.calcium, tiled.calcium)
    assert np.array_equal(mixed.hidden_rates, tiled.hidden_rates) and mixed.time == tiled.time


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_network_long_calls_do_not_depend_on_how_they_are_split(rng, dtype):
    """A call longer than a segment takes each next segment's maxima in the pass over the one
    before (two slots of inputs and maxima): 70 tokens written in one call (segments of 32, 32
    and 6), in pieces of 1, 40 and 29 (a short call keeps its rates), and one window at a time
    (monitored), then a stream of 20 (40 windows), agree bitwise."""
    q, k, v = moderate_inputs(rng, (2, 20, 8), (2, 70, 8), 7)
    kw = dict(heads=2, dtype=dtype, leak=0.002)
    nets = [tripartite.NeuronAstrocyteNetwork(8, 7, 2100, **kw) for _ in range(3)]
    nets[0].write(k, v)
    for a, b in ((0, 1), (1, 41), (41, 70)):
        nets[1].write(k[:, a:b], v[:, a:b])
    for t in range(k.shape[1]):  # one window a call
        nets[2].write(k[:, t:t + 1], v[:, t:t + 1])
    ys = [net.stream(q, k[:, :20], v[:, :20]) for net in nets]
    for net, y in zip(nets[1:], ys[1:]):
        assert np.array_equal(y, ys[0])
        for name in ("synapses", "astrocyte_weights", "hidden_rates", "calcium"):
            assert np.array_equal(getattr(net, name), getattr(nets[0], name)), name


def test_performer_weights_are_standard_normal_stream():
    """The chunked draw gives exactly the generator's stream (one draw of the whole matrix)."""
    W = tripartite.draw_hidden_weights(20000, 3, seed=9, dtype=np.float64)[0]
    rng = np.random.default_rng(np.random.SeedSequence(9, spawn_key=(0,)))
    assert np.array_equal(W, rng.standard_normal((20000, 3)))


@needs_openmp
def test_key_mask_results_do_not_depend_on_the_thread_count(rng):
    L, D = 150, 16
    q, k, v = moderate_inputs(rng, (2, L, D), (2, L, D), 8)
    mask = rng.random((2, L)) > 0.5
    W = tripartite.draw_hidden_weights(5 * _core.attention_block_size + 17, D, heads=2, dtype=np.float32)
    assert_runs_threaded(attention_work(2, W.shape[1], L, L, D, 8))
    args = [x.astype(np.float32) for x in (q, k, v)]
    for causal in (False, True):
        ys = [tripartite.attention(*args, hidden_weights=W, causal=causal, key_mask=mask, num_threads=t) for t in (1, 2, 3)]
        assert all(np.array_equal(ys[0], y) for y in ys[1:])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_network_with_a_hidden_bias_does_not_depend_on_how_calls_are_split(rng, dtype):
    """With a hidden bias, a stream in one call, token by token, and as separate one-window writes
    and reads: the same bits (outputs, calcium, synapses, hidden rates). The bias's base-2 term
    is rounded once per call (tiles.hpp shifted_rates); computed inside each register tile, Clang's
    builds fused it into the tile's add for some tile heights and not others, and a write of two
    tokens and two writes of one differed in the last bits (two heads, m over two blocks)."""
    D, Dv, m, L = 5, 3, _core.block_size + 52, 6
    q, k, v = (rng.standard_normal((2, L, d)) * 0.4 for d in (D, D, Dv))
    W, b = rng.standard_normal((2, m, D)), rng.normal(-0.3, 0.2, (2, m))

    def network():
        return tripartite.NeuronAstrocyteNetwork(D, Dv, m, heads=2, dtype=dtype, hidden_weights=W, hidden_bias=b,
                                                 integrator="euler", dt=0.5, tau_hidden=2.0, tau_astro=5.0,
                                                 t_write=10.0, t_read=20.0)

    whole = network()
    y = whole.stream(q, k, v, return_astrocyte=True)
    tokens, windows = network(), network()
    y_tokens = [tokens.stream(q[:, i:i + 1], k[:, i:i + 1], v[:, i:i + 1], return_astrocyte=True) for i in range(L)]
    y_windows = []
    for i in range(L):
        windows.write(k[:, i:i + 1], v[:, i:i + 1])
        y_windows.append(windows.read(q[:, i:i + 1], return_astrocyte=True))
    for parts, net in ((y_tokens, tokens), (y_windows, windows)):
        assert all(np.array_equal(np.concatenate([p[j] for p in parts], axis=1), y[j]) for j in (0, 1))
        for name in ("synapses", "astrocyte_weights", "hidden_rates", "calcium"):
            assert np.array_equal(getattr(net, name), getattr(whole, name)), name


def test_a_large_network_with_a_monitor_of_the_outputs_gives_the_same_bits(rng):
    """1.5M hidden neurons at D = Dv = 64, float32 (0.8 GB a network; 733 blocks, segments of 22
    windows, 66 entries of the pass over the synapses with a monitor of the outputs): a stream of 4
    tokens, a short call that keeps its rates between the passes, gives the unmonitored network's
    outputs bitwise. (When a monitor of the outputs shortened segments to a third, 6 windows here,
    this call was two segments and read rates it had not computed: outputs off by 0.24. Short
    calls keep their rates only when they are one segment.)"""
    D = Dv = 64
    m = 1_500_000
    assert _core.segment_windows(1, m, D, Dv) == 22
    q, k = (rng.standard_normal((2, 4, D)) * 0.3).astype(np.float32)
    v = rng.standard_normal((4, Dv)).astype(np.float32)
    net = tripartite.NeuronAstrocyteNetwork(D, Dv, m)
    y = net.stream(q, k, v)
    del net
    net = tripartite.NeuronAstrocyteNetwork(D, Dv, m)
    mon = net.monitor(("calcium", "outputs"), every=100)
    assert np.array_equal(net.stream(q, k, v), y) and mon.t[-1] == net.time
