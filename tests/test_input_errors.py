"""Bad input found by an audit of the argument checks: each case raises ValueError naming the
argument (and leaves state untouched), instead of being accepted silently or failing later with
a message that does not say what was wrong."""

import numpy as np
import pytest

import tripartite
from tripartite import NeuronAstrocyteNetwork

from conftest import moderate_inputs


@pytest.fixture
def qkv32(rng):
    q, k, v = moderate_inputs(rng, (2, 5, 8), (2, 5, 8), 4)
    return q.astype(np.float32), k.astype(np.float32), v.astype(np.float32)


# 1. values that fit float64 but overflow the float32 compute dtype ---------------------------------
def test_network_float64_weights_overflowing_float32(rng):
    W = rng.standard_normal((1, 64, 8))
    W[0, 3, 2] = 1e300
    with pytest.raises(ValueError, match=r"hidden_weights does not fit in float32.*1e\+300"):
        NeuronAstrocyteNetwork(8, 4, 64, hidden_weights=W)
    NeuronAstrocyteNetwork(8, 4, 64, hidden_weights=W, dtype=np.float64)  # fits float64


def test_network_bias_overflowing_float32():
    b = np.zeros((1, 64))
    b[0, 0] = -1e300
    with pytest.raises(ValueError, match="hidden_bias does not fit in float32"):
        NeuronAstrocyteNetwork(8, 4, 64, hidden_bias=b)


def test_attention_float64_weights_and_bias_overflowing_float32(qkv32, rng):
    q, k, v = qkv32
    W = rng.standard_normal((64, 8))
    W[1, 1] = 1e300
    with pytest.raises(ValueError, match="hidden_weights does not fit in float32"):
        tripartite.attention(q, k, v, hidden_weights=W)
    with pytest.raises(ValueError, match="hidden_bias does not fit in float32"):
        tripartite.attention(q, k, v, n_hidden=64, hidden_bias=np.full(64, 1e300))


# 2. the weights and offsets returned cannot be made writeable ---------------------------------------
def test_hidden_weights_and_bias_cannot_be_made_writeable():
    net = NeuronAstrocyteNetwork(8, 4, 64, hidden_bias=np.zeros((1, 64)))
    W0 = net.hidden_weights.copy()
    for arr in (net.hidden_weights, net.hidden_bias):
        assert not arr.flags.writeable
        with pytest.raises(ValueError):
            arr.flags.writeable = True
        with pytest.raises(ValueError):
            arr[...] = np.nan
    assert np.array_equal(net.hidden_weights, W0) and not np.any(net.hidden_bias)
    assert np.shares_memory(net.hidden_weights, net._W)  # a view, not a copy per access


# 3. save writes exactly the path given, and load reads it back ----------------------------------------
def test_save_writes_the_path_given(tmp_path, rng):
    net = NeuronAstrocyteNetwork(8, 4, 64, t_write=10.0, t_read=20.0)
    net.write(*moderate_inputs(rng, (3, 8), (3, 8), 4)[1:])
    net.save(tmp_path / "ck")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck"]
    back = NeuronAstrocyteNetwork.load(tmp_path / "ck")
    assert np.array_equal(back.synapses, net.synapses) and back.time == net.time
    net.save(str(tmp_path / "ck.npz"))  # the usual name still works, unchanged
    assert NeuronAstrocyteNetwork.load(str(tmp_path / "ck.npz")).time == net.time
    with pytest.raises(ValueError, match="path must be a str or os.PathLike, got None"):
        net.save(None)


def test_load_names_the_npz_file_an_older_save_wrote(tmp_path):
    NeuronAstrocyteNetwork(8, 4, 64).save(tmp_path / "old.npz")  # what save("old") wrote before
    with pytest.raises(ValueError, match=r"load '.*old\.npz'"):
        NeuronAstrocyteNetwork.load(tmp_path / "old")
    with pytest.raises(ValueError, match="path must be a str or os.PathLike, got None"):
        NeuronAstrocyteNetwork.load(None)
