"""Results depend on the seed, never on the number of threads: bitwise."""

import numpy as np
import pytest

import tripartite

from conftest import moderate_inputs


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_attention_threads_bitwise(rng, causal, dtype):
    q, k, v = moderate_inputs(rng, (3, 70, 16), (3, 70, 16), 8)
    q, k, v = (x.astype(dtype) for x in (q, k, v))
    runs = [tripartite.attention(q, k, v, n_hidden=5000, causal=causal, num_threads=t, return_astrocyte=True) for t in (1, 2, 3)]
    for y, a in runs[1:]:
        assert np.array_equal(y, runs[0][0]) and np.array_equal(a, runs[0][1])


@pytest.mark.parametrize("causal", [False, True])
def test_attention_does_not_depend_on_how_blocks_are_grouped(rng, causal):
    """The task partials are folded in task order whether they are kept all at once or a few
    tasks at a time (a memory budget of 1 byte keeps one task per thread; 5 threads are more than
    this machine's cores)."""
    from tripartite import _core

    L = _core.chunk_size + 6  # two chunks
    q, k, v = moderate_inputs(rng, (3, L, 16), (3, L, 16), 8)
    m = 4 * _core.attention_block_size + 100  # 5 blocks per head: 3 tasks, the last of one block
    W = tripartite.draw_hidden_weights(m, 16, heads=3)
    args = (W, None, *(x.astype(np.float32) for x in (q, k, v)), 0.5, causal)
    ref = _core.attention_float32(*args, 1)
    for threads, budget in ((1, 1), (2, 1), (3, 1), (5, 1), (2, L * 9 * 8 * 4)):
        y, log_a, log_u = _core.attention_float32(*args, threads, partial_budget=budget)
        assert np.array_equal(y, ref[0]) and np.array_equal(log_a, ref[1]), (threads, budget)
        assert np.array_equal(log_u, ref[2]), (threads, budget)


@pytest.mark.parametrize("integrator", ["exact", "euler"])
def test_network_threads_bitwise(rng, integrator):
    q, k, v = moderate_inputs(rng, (2, 5, 16), (2, 5, 16), 8)
    results = []
    for threads in (1, 2, 3):
        net = tripartite.NeuronAstrocyteNetwork(16, 8, 6149, heads=2, integrator=integrator, num_threads=threads)
        y, a = net.stream(q, k, v, return_astrocyte=True)
        results.append((y, a, net.synapses, net.astrocyte_weights, net.hidden_rates))
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


def test_orthogonal_rows_are_orthogonal_within_blocks():
    W = tripartite.draw_hidden_weights(40, 16, feature_map="orthogonal", dtype=np.float64)[0]
    block = W[:16]
    gram = block @ block.T
    assert np.allclose(gram - np.diag(np.diag(gram)), 0, atol=1e-12)
    assert W.shape == (40, 16)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_network_results_do_not_depend_on_how_calls_are_split(rng, dtype):
    """The core advances windows in segments; the arithmetic per synapse does not depend on the
    segmentation, so one call, many calls and a monitored (window-by-window) run agree bitwise."""
    q, k, v = moderate_inputs(rng, (2, 13, 8), (2, 13, 8), 5)
    kw = dict(heads=2, dtype=dtype, leak=0.002)
    whole = tripartite.NeuronAstrocyteNetwork(8, 5, 2100, **kw)
    y_whole = whole.stream(q, k, v)
    parts = tripartite.NeuronAstrocyteNetwork(8, 5, 2100, **kw)
    y_parts = np.concatenate([parts.stream(q[:, a:b], k[:, a:b], v[:, a:b]) for a, b in ((0, 3), (3, 4), (4, 13))], axis=1)
    watched = tripartite.NeuronAstrocyteNetwork(8, 5, 2100, **kw)
    watched.monitor(every=100)
    y_watched = watched.stream(q, k, v)
    assert np.array_equal(y_whole, y_parts) and np.array_equal(y_whole, y_watched)
    for net in (parts, watched):
        assert np.array_equal(net.synapses, whole.synapses) and np.array_equal(net.calcium, whole.calcium)


def test_performer_weights_are_standard_normal_stream():
    """The chunked draw gives exactly the generator's stream (one draw of the whole matrix)."""
    W = tripartite.draw_hidden_weights(20000, 3, seed=9, dtype=np.float64)[0]
    rng = np.random.default_rng(np.random.SeedSequence(9, spawn_key=(0,)))
    assert np.array_equal(W, rng.standard_normal((20000, 3)))
