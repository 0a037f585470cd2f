"""Bad input found by an audit of the argument checks: each case raises ValueError naming the
argument (and leaves state untouched), instead of being accepted silently or failing later with
a message that does not say what was wrong."""

import importlib.util
import re

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
    with pytest.raises(FileNotFoundError, match=r"no tripartite checkpoint at '.*old': .* load '.*old\.npz'"):
        NeuronAstrocyteNetwork.load(tmp_path / "old")
    with pytest.raises(FileNotFoundError, match=r"the file does not exist$"):
        NeuronAstrocyteNetwork.load(tmp_path / "absent")
    (tmp_path / "script.py").write_text("print('not a checkpoint')\n")
    with pytest.raises(ValueError, match=r"'.*script\.py' is not a readable tripartite checkpoint: not a NumPy \.npz archive$"):
        NeuronAstrocyteNetwork.load(tmp_path / "script.py")
    with pytest.raises(ValueError, match="path must be a str or os.PathLike, got None"):
        NeuronAstrocyteNetwork.load(None)


# 4. load checks the contents against the config, not only the checksum ------------------------------
def _crafted(tmp_path, rng, arrays=None, config=None, fmt=1):
    """A checkpoint with edited contents and a checksum that matches them."""
    import json

    net = NeuronAstrocyteNetwork(8, 4, 64, t_write=10.0, t_read=20.0)
    net.write(*moderate_inputs(rng, (3, 8), (3, 8), 4)[1:])
    path = tmp_path / "ck.npz"
    net.save(path)
    data = dict(np.load(path))
    cfg = json.loads(str(data.pop("config")))
    data.pop("checksum"), data.pop("format")
    (config or (lambda c: None))(cfg)
    data.update(arrays or {})
    cj = json.dumps(cfg, sort_keys=True)
    np.savez(path, format=np.array(fmt), config=np.array(cj), checksum=np.array(NeuronAstrocyteNetwork._checksum(cj, data)), **data)
    return path


@pytest.mark.parametrize(
    "arrays, config, fmt, match",
    [
        (dict(synapses=np.ones((1, 4, 1), np.float32)), None, 1, r"synapses must have shape \(1, 4, 64\)"),
        (dict(synapses=np.full((1, 4, 64), 1e300)), None, 1, "synapses must have .* dtype float32, got .* float64"),
        (dict(synapses=np.full((1, 4, 64), np.nan, np.float32)), None, 1, "synapses must be finite"),
        (dict(hidden=np.full((1, 64), np.inf, np.float32)), None, 1, "hidden must be finite"),
        (dict(scalars=np.zeros(6)), None, 1, r"scalars must have shape \(1, 6\)"),
        (dict(scalars=np.full((1, 6), np.nan)), None, 1, "scalars.* must be finite"),
        (dict(time=np.array(np.nan)), None, 1, "time must be finite"),
        (dict(time=np.array(-5.0)), None, 1, "time must be >= 0"),
        (dict(time=np.array([1.0, 2.0])), None, 1, r"time must have shape \(\)"),
        (dict(step=np.array(2.7)), None, 1, "step must be a non-negative integer"),
        (dict(step=np.array(-1)), None, 1, "step must be a non-negative integer"),
        (dict(extra=np.ones(2)), None, 1, r"unexpected \['extra'\]"),
        (None, lambda c: c.update(foo=1), 1, r"config keys: unexpected \['foo'\]"),
        (None, lambda c: c.pop("d_key"), 1, r"config keys: missing \['d_key'\]"),
        (None, lambda c: c.update(d_key=8.0), 1, "config: d_key must be a positive integer, got 8.0"),
        (None, lambda c: c.update(scale=None), 1, "scale must be a real number, got None"),
        (None, lambda c: c.update(tau_hidden=-1), 1, "ck.npz': config: tau_hidden must be positive"),
        (None, None, "x", "format must be an integer"),
        (None, None, [1, 1], "format must be an integer"),
    ],
)
def test_load_checks_contents(tmp_path, rng, arrays, config, fmt, match):
    path = _crafted(tmp_path, rng, arrays, config, fmt)
    with pytest.raises(ValueError, match=match):
        NeuronAstrocyteNetwork.load(path)


def test_load_refuses_a_config_that_is_not_a_json_object(tmp_path, rng):
    path = _crafted(tmp_path, rng)
    data = dict(np.load(path))
    for cj, match in (("[1, 2]", "config must be a JSON object, got list"), ("{not json", "config is not valid JSON")):
        data.update(config=np.array(cj), checksum=np.array(NeuronAstrocyteNetwork._checksum(cj, {
            k: v for k, v in data.items() if k not in ("config", "checksum", "format")})))
        np.savez(path, **data)
        with pytest.raises(ValueError, match=match):
            NeuronAstrocyteNetwork.load(path)


def test_load_of_a_reset_network_accepts_its_minus_inf_bounds(tmp_path):
    net = NeuronAstrocyteNetwork(8, 4, 64)
    assert np.isneginf(net._scalars[:, 4:]).all()  # the log-bounds of an empty network
    net.save(tmp_path / "empty.npz")
    NeuronAstrocyteNetwork.load(tmp_path / "empty.npz")


# 5. monitor arguments ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(heads=[0.7]), r"heads must be a list of integer indices, got \[0.7\]"),
        (dict(heads=[True]), "heads must be a list of integer indices"),
        (dict(heads=["1"]), "heads must be a list of integer indices"),
        (dict(heads=1), "heads must be a list of integer indices, got 1"),
        (dict(heads=[2**70]), r"heads must be indices in \[0, 2\)"),
        (dict(heads=[float("nan")]), "heads must be a list of integer"),
        (dict(variables=("hidden",), hidden=[1.9]), "hidden must be a list of integer neuron indices"),
        (dict(variables=("hidden",), hidden="12"), "hidden must be a list of integer"),
        (dict(variables=("hidden",), hidden=[None]), "hidden must be a list of integer"),
        (dict(variables=("calcium",), hidden=[640]), r"hidden must be neuron indices in \[0, 64\)"),
        (dict(variables=("synapses",), synapses=[0, 1, 2, 3]), r"synapses must be a list of \(output d, hidden r\) integer pairs"),
        (dict(variables=("synapses",), synapses=[(0, 1, 2)]), "synapses must be a list of"),
        (dict(variables=("synapses",), synapses=(0, 1)), "synapses must be a list of"),
        (dict(variables=("synapses",), synapses=[(0.5, 1.5)]), "synapses must be a list of"),
        (dict(variables=None), "variables must be a list of names"),
    ],
)
def test_monitor_arguments(kwargs, match):
    net = NeuronAstrocyteNetwork(8, 4, 64, heads=2, t_write=10.0, t_read=20.0)
    with pytest.raises(ValueError, match=match):
        net.monitor(**kwargs)
    assert not net._monitors


def test_monitor_takes_one_variable_name_as_a_string():
    net = NeuronAstrocyteNetwork(8, 4, 64, t_write=10.0, t_read=20.0)
    mon = net.monitor("calcium")
    assert mon.variables == ("calcium",) and mon.calcium.shape == (1, 1)
    assert net.monitor(("calcium", "calcium")).variables == ("calcium",)
    pairs = net.monitor(("synapses",), synapses=np.array([[0, 1], [3, 63]])).synapse_indices
    assert pairs.tolist() == [[0, 1], [3, 63]]


# 6. num_threads of a network, set after construction ----------------------------------------------
@pytest.mark.parametrize("bad", [-1, 1.5, "x", None, True])
def test_network_num_threads_attribute_is_checked(bad):
    net = NeuronAstrocyteNetwork(8, 4, 64, t_write=10.0, t_read=20.0)
    with pytest.raises(ValueError, match="num_threads must be a non-negative integer"):
        net.num_threads = bad
    assert net.num_threads == 0
    net.num_threads = np.int64(1)
    assert net.num_threads == 1 and type(net.num_threads) is int


# 7. flags must be bools, dtype must be given, feature_map a string -------------------------------
@pytest.mark.parametrize("kwargs, match", [
    (dict(causal="no"), "causal must be True or False, got 'no'"),
    (dict(causal=None), "causal must be True or False"),
    (dict(return_astrocyte="no"), "return_astrocyte must be True or False, got 'no'"),
    (dict(feature_map=np.array(["performer"])), "feature_map must be one of"),
])
def test_attention_flags_and_feature_map(qkv32, kwargs, match):
    with pytest.raises(ValueError, match=match):
        tripartite.attention(*qkv32, n_hidden=64, **kwargs)


def test_attention_accepts_numpy_bools(qkv32):
    y = tripartite.attention(*qkv32, n_hidden=64, causal=np.bool_(True))
    assert np.array_equal(y, tripartite.attention(*qkv32, n_hidden=64, causal=True))


def test_network_flags(rng):
    net = NeuronAstrocyteNetwork(8, 4, 64, t_write=10.0, t_read=20.0)
    q, k, v = moderate_inputs(rng, (3, 8), (3, 8), 4)
    with pytest.raises(ValueError, match="progress must be True or False \\(or None\\), got 'yes'"):
        net.write(k, v, progress="yes")
    with pytest.raises(ValueError, match="return_astrocyte must be True or False, got 'no'"):
        net.read(q, return_astrocyte="no")
    with pytest.raises(ValueError, match="progress must be True or False"):
        net.stream(q, k, v, progress=1)
    assert net.time == 0.0


@pytest.mark.parametrize("make, message", [
    (lambda: NeuronAstrocyteNetwork(8, 4, 64, dtype=None), "dtype must be float32 or float64, got None"),
    (lambda: tripartite.draw_hidden_weights(4, 4, dtype=None), "dtype must be float32 or float64, got None"),
    (lambda: NeuronAstrocyteNetwork(8, 4, 64, feature_map=np.array(["performer"])), "feature_map must be one of"),
])
def test_dtype_none_and_array_feature_map_are_refused(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_minilm_dtype_none_is_refused():
    from tripartite.transformer import MiniLM

    with pytest.raises(ValueError, match="dtype must be float32 or float64, got None"):
        MiniLM(dtype=None)


# 8. hidden weights with no rows are m = 0, refused like n_hidden=0 ------------------------------------
def test_attention_hidden_weights_without_rows(qkv32):
    with pytest.raises(ValueError, match=r"hidden_weights must have at least one row .* got shape \(0, 8\)"):
        tripartite.attention(*qkv32, hidden_weights=np.ones((0, 8)))


# 12. clear messages: thread counts, leading axes, the outputs' memory ------------------------------
def test_num_threads_upper_bound(qkv32):
    from tripartite import _validate

    for bad in (2**31, _validate.MAX_THREADS + 1):
        with pytest.raises(ValueError, match=f"num_threads must be at most {_validate.MAX_THREADS}"):
            tripartite.attention(*qkv32, n_hidden=64, num_threads=bad)
        with pytest.raises(ValueError, match="num_threads must be at most"):
            NeuronAstrocyteNetwork(8, 4, 64, num_threads=bad)


def test_leading_axes_of_weights_and_bias_are_explained(qkv32):
    q, k, v = (x[0] for x in qkv32)  # 2-D: no leading axes
    with pytest.raises(ValueError, match=r"hidden_weights of shape \(1, 64, 8\) has leading axes \(1,\).*\(\) of q, k, v"):
        tripartite.attention(q, k, v, hidden_weights=np.ones((1, 64, 8)))
    with pytest.raises(ValueError, match=r"hidden_bias of shape \(3, 64\) has leading axes \(3,\).*\(2,\) of q, k, v"):
        tripartite.attention(*qkv32, n_hidden=64, hidden_bias=np.ones((3, 64)))


def test_read_and_stream_check_the_outputs_memory(rng, monkeypatch):
    """One memory check per call counts the reads' outputs (and a stream's values): 49 more
    queries ask for at least their 49 x 64 float32 outputs more, a stream of 50 tokens for at
    least its 50 x 64 values more than the read; one byte below what a call asks for it is refused
    (the message naming the part), at it the call runs."""
    from tripartite import _validate

    q, k, v = moderate_inputs(rng, (50, 8), (50, 8), 64)
    kw = dict(t_write=10.0, t_read=20.0, num_threads=1)
    probe, net = NeuronAstrocyteNetwork(8, 64, 64, **kw), NeuronAstrocyteNetwork(8, 64, 64, **kw)
    asked = []
    check = _validate.check_memory
    monkeypatch.setattr(_validate, "check_memory", lambda n, what, *e: asked.append(n) or check(n, what, *e))
    monkeypatch.setattr(_validate, "available_memory", lambda: None)  # no limit: records what each call asks
    probe.read(q[:1])
    probe.read(q)
    probe.stream(q, k, v)
    one, read, stream = asked
    assert read - one >= 49 * 64 * 4 and stream - read >= 50 * 64 * 4
    monkeypatch.setattr(_validate, "available_memory", lambda: read - 1)
    with pytest.raises(MemoryError, match="the outputs of 50 queries"):
        net.read(q)
    monkeypatch.setattr(_validate, "available_memory", lambda: stream - 1)
    with pytest.raises(MemoryError, match=r"values of shape \(50, 64\) \(its checks and copy\)"):
        net.stream(q, k, v)
    assert net.time == 0.0
    monkeypatch.setattr(_validate, "available_memory", lambda: read)
    net.read(q)


# 10. the reference simulation and softmax check their arguments ------------------------------------
@pytest.mark.parametrize("kwargs, match", [
    (dict(dt=0), "dt must be positive"),
    (dict(dt=3.0), "dt must divide t_write"),
    (dict(tau_hidden=0), "tau_hidden must be positive"),
    (dict(tau_astro=-1.0), "tau_astro must be positive"),
    (dict(dt=5.0, tau_hidden=2.0), "unstable for the euler integrator"),
    (dict(dt=5.0, leak=1.0, integrator="rk4"), r"unstable for the rk4 integrator.*1/leak"),
    (dict(tau_hidden=1e200), r"t_write / tau_hidden must be in \[1e-100, 1e\+100\]"),  # zeros before, silently
    (dict(record_every=0), "record_every must be a positive integer"),
    (dict(record_every=2.0), "record_every must be a positive integer"),
    (dict(stream=True, queries=slice(0, 2)), "stream=True needs as many queries as keys"),
    (dict(values=slice(0, 2)), "values must have as many rows as keys"),
    (dict(hidden_weights=np.ones((16, 3))), r"keys must have shape \(rows, D\) with D = 3"),
])
def test_reference_simulate_checks_arguments(rng, kwargs, match):
    from tripartite import reference

    q, k, v = moderate_inputs(rng, (4, 8), (4, 8), 3)
    args = dict(keys=k, values=v, queries=q, hidden_weights=rng.standard_normal((16, 8)), t_write=10.0, t_read=10.0)
    for name in ("queries", "values"):
        if isinstance(kwargs.get(name), slice):
            kwargs = dict(kwargs, **{name: args[name][kwargs[name]]})
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        reference.simulate(args.pop("keys"), args.pop("values"), args.pop("queries"), args.pop("hidden_weights"), **args)


def test_reference_softmax_checks_causal_and_scale(rng):
    from tripartite import reference

    q, k, v = moderate_inputs(rng, (4, 8), (4, 8), 3)
    with pytest.raises(ValueError, match="causal attention needs Lq == Lk"):
        reference.softmax_attention(q[:2], k, v, causal=True)
    for scale in (0.0, -1.0):
        with pytest.raises(ValueError, match="scale must be positive"):
            reference.softmax_attention(q, k, v, scale=scale)
        with pytest.raises(ValueError, match="scale must be positive"):
            reference.softmax_normaliser(q, k, scale=scale)
    assert "softmax_normaliser" in reference.__all__


_Q, _K, _V = (np.random.default_rng(3).standard_normal(shape) for shape in ((4, 8), (4, 8), (4, 3)))
_W = np.random.default_rng(4).standard_normal((16, 8))


@pytest.mark.parametrize("call, match", [
    (lambda R: R.softmax_attention(_Q, _K, _V[:2]), r"v must have shape \(\.\.\., Lk, Dv\) with Lk = 4 \(from k\), got \(2, 3\)"),
    (lambda R: R.softmax_attention(_Q, _K[:, :5], _V), r"k must have shape \(\.\.\., Lk, D\) with D = 8 \(from q\), got \(4, 5\)"),
    (lambda R: R.softmax_attention(_Q[0], _K, _V), r"q must have shape \(\.\.\., Lq, D\), got \(8,\)"),
    (lambda R: R.softmax_attention(np.where(np.eye(4, 8) > 0, np.nan, _Q), _K, _V), r"q must be finite, got nan at index \(0, 0\)"),
    (lambda R: R.softmax_attention(_Q + 1j, _K, _V), "q must have a real numeric dtype"),
    (lambda R: R.softmax_attention(_Q, _K, _V, causal="yes"), "causal must be True or False, got 'yes'"),
    (lambda R: R.softmax_attention(np.stack([_Q] * 2), np.stack([_K] * 3), _V),
     r"leading axes of the inputs must broadcast against each other, got q \(2,\), k \(3,\), v \(\)"),
    (lambda R: R.softmax_attention(_Q, _K, _V, key_mask=np.ones(4)), "key_mask must be a bool array"),
    (lambda R: R.softmax_attention(_Q, _K, _V, key_mask=np.ones(3, bool)), r"key_mask .* with Lk = 4 \(from k\).* shape \(3,\)"),
    (lambda R: R.softmax_normaliser(_Q, np.inf * _K), "k must be finite"),
    (lambda R: R.random_feature_attention(_Q[:2], _K, _V, _W, causal=True), "causal attention needs Lq == Lk"),
    (lambda R: R.random_feature_attention(_Q, _K, _V, _W, causal=1), "causal must be True or False"),
    (lambda R: R.random_feature_attention(_Q, _K, _V, _W, return_astrocyte="yes"), "return_astrocyte must be True or False"),
    (lambda R: R.random_feature_attention(_Q, _K, _V, _W[:, :5]), r"hidden_weights must have shape \(\.\.\., m, D\) with D = 8"),
    (lambda R: R.random_feature_attention(_Q, _K, _V, _W, hidden_bias=np.zeros(15)),
     r"hidden_bias must have shape \(\.\.\., m\) with m = 16 \(from hidden_weights\), got \(15,\)"),
    (lambda R: R.log_features(_Q, _W, hidden_bias=np.full(16, np.nan)), "hidden_bias must be finite"),
    (lambda R: R.random_feature_attention(np.stack([_Q] * 3), np.stack([_K] * 3), np.stack([_V] * 3), np.stack([_W] * 2)),
     r"leading axes of the inputs must broadcast against each other, got q \(3,\), k \(3,\), v \(3,\), hidden_weights \(2,\)"),
])
def test_reference_attention_checks_its_inputs(call, match):
    from tripartite import reference

    with pytest.raises(ValueError, match=match):
        call(reference)


@pytest.mark.parametrize("dtype, remedy", [(np.float32, r"\(rescale the inputs or use float64\)"),
                                           (np.float64, r"\(rescale the inputs\)")])
def test_too_large_inputs_suggest_float64_only_when_it_would_help(dtype, remedy):
    q = np.full((2, 8, 8), 2.0**26 if dtype == np.float32 else 2.0**62, dtype=dtype)
    with pytest.raises(ValueError, match=f"q is too large: .* {np.dtype(dtype).name} log-rates lose all precision {remedy}$"):
        tripartite.attention(q, q, q, n_hidden=64)


# 12. the network's attributes, messages and clock (a usability audit) --------------------------------
def test_network_parameters_cannot_be_set_after_construction():
    net = NeuronAstrocyteNetwork(8, 4, 64)
    for name, value in (("dt", 0.5), ("tau_hidden", 0.5), ("leak", 0.1), ("eta", 2.0)):
        with pytest.raises(AttributeError, match=rf"{name} is fixed when the network is built .*{name}={value}\)"):
            setattr(net, name, value)
    with pytest.raises(AttributeError, match="time is read-only"):
        net.time = 3.0
    with pytest.raises(AttributeError, match="no attribute 'tau_hiden' to set"):
        net.tau_hiden = 2.0  # a typo is not a new attribute
    assert net.params["dt"] == 1.0 and net.params["tau_hidden"] == 10.0 and not hasattr(net, "tau_hiden")
    net.num_threads = 1  # the one attribute that may be set
    assert net.num_threads == 1


def test_network_messages_use_the_callers_shapes_and_name_the_sizes(rng):
    net = NeuronAstrocyteNetwork(8, 4, 64)
    keys = rng.standard_normal((5, 8))
    keys[3, 2] = np.nan
    with pytest.raises(ValueError, match=r"keys must be finite, got nan at index \(3, 2\)$"):
        net.write(keys, rng.standard_normal((5, 4)))  # 2-D input: a 2-D index
    with pytest.raises(ValueError, match=r"keys must have a real numeric dtype \(floating point or integer\), got dtype bool"):
        net.write(np.ones((5, 8), bool), rng.standard_normal((5, 4)))
    with pytest.raises(MemoryError, match=r"heads = 2 x d_value = 64 x n_hidden = 1000000000000\): .* GiB needed"):
        NeuronAstrocyteNetwork(64, 64, 10**12, heads=2)
    with pytest.raises(ValueError, match="variables must name at least one of"):
        net.monitor(variables=())


def test_network_time_is_windows_times_their_length_not_a_running_sum(rng, tmp_path):
    # 903 windows of 0.3 ms: added one by one they read 270.9000000000045, added seven per call (as
    # here) 270.8999999999997; the clock now multiplies the window counts by their lengths
    net = NeuronAstrocyteNetwork(4, 2, 16, t_write=0.3, t_read=0.3, dt=0.1, tau_hidden=0.5, tau_astro=0.5,
                                 integrator="exact")
    k, v = rng.standard_normal((903, 4)) * 0.3, rng.standard_normal((903, 2))
    for t in range(0, 903, 7):  # many calls, as a user stepping through a sequence would make
        net.write(k[t : t + 7], v[t : t + 7])
    assert net.time == 903 * 0.3
    net.save(tmp_path / "n.npz")
    loaded = NeuronAstrocyteNetwork.load(tmp_path / "n.npz")
    loaded.write(k[:1], v[:1])
    assert loaded.time == 903 * 0.3 + 0.3


def test_a_bias_beyond_double_precision_is_refused(rng):
    # |b| > 0.1 / eps(double) = 4.5e14: the log-rates' rounding would exceed 0.1 (an audit found y
    # off by 0.6 at a constant 1e16, in the network without a word, in attention with a misleading
    # underflow warning)
    q = rng.standard_normal((2, 4))
    with pytest.raises(ValueError, match=r"hidden_bias is too large: max \|hidden_bias\| = 1e\+15 exceeds 4.5e\+14"):
        tripartite.attention(q, q, q, n_hidden=8, hidden_bias=np.full(8, 1e15))
    with pytest.raises(ValueError, match=r"hidden_bias is too large: max \|hidden_bias\| = 1e\+16"):
        NeuronAstrocyteNetwork(4, 4, 8, hidden_bias=np.full((1, 8), -1e16))
    assert np.isfinite(tripartite.attention(q, q, q, n_hidden=8, hidden_bias=np.full(8, 1e14))).all()
    from tripartite import reference
    with pytest.raises(ValueError, match="hidden_bias is too large"):  # checked as the network checks it
        reference.simulate(q[:, :4], q[:, :4], q[:, :4], rng.standard_normal((8, 4)), hidden_bias=np.full(8, 1e15))


# 11. MiniLM and the study ---------------------------------------------------------------------------
def test_minilm_token_ids_must_be_in_the_vocabulary():
    from tripartite.transformer import MiniLM

    model = MiniLM()
    for bad in (-1, model._word.shape[0]):
        with pytest.raises(ValueError, match=rf"ids must be token ids in \[0, 30522\).*got {bad}"):
            model.hidden_states([np.array([101, bad, 102])])


def test_neuron_astrocyte_attention_arguments():
    from tripartite import minilm

    for kwargs, match in ((dict(n_hidden=2.7), "n_hidden must be a positive integer, got 2.7"),
                          (dict(n_hidden=8, seed=-1), "seed must be a non-negative integer"),
                          (dict(n_hidden=8, num_threads=1.5), "num_threads must be a non-negative integer")):
        with pytest.raises(ValueError, match=match):
            minilm.NeuronAstrocyteAttention(**kwargs)
    x = np.ones((2, 4, 8), np.float32)
    with pytest.raises(ValueError, match="layer must be a non-negative integer, got -1"):
        minilm.NeuronAstrocyteAttention(8)(x, x, x, -1)


@pytest.mark.parametrize("method", ["iid", "oprf+ort+shift"])
def test_neuron_astrocyte_attention_redraws_when_the_head_dimension_changes(rng, method):
    from tripartite import minilm

    x = (rng.standard_normal((3, 4, 32)) * 0.3).astype(np.float32)
    att = minilm.NeuronAstrocyteAttention(16, method=method)
    att(x, x, x, 0)
    y = att(x[..., :16], x[..., :16], x[..., :16], 0)  # same layer, D 32 -> 16
    fresh = minilm.NeuronAstrocyteAttention(16, method=method)(x[..., :16], x[..., :16], x[..., :16], 0)
    assert np.array_equal(y, fresh)


def test_run_minilm_checks_arguments_before_loading_or_creating_anything(tmp_path):
    from tripartite import minilm

    out = tmp_path / "out"
    for kwargs, match in ((dict(ms=[0.5], methods="iid"), "ms .*must be a positive integer, got 0.5"),
                          (dict(ms=[8], methods=["iid", "nope"]), r"method must be one of .*got 'nope' \(in methods="),
                          (dict(ms=[8], seed=-1), "seed must be a non-negative integer"),
                          (dict(ms=[8], figure_head=(0, -1)), "figure_head must be"),
                          (dict(ms=[8], num_threads=-1), "num_threads must be"),
                          (dict(ms=[8], pairs=tmp_path / "absent.tsv"), "absent.tsv")):
        with pytest.raises((ValueError, OSError), match=match):
            minilm.run_minilm(out=out, progress=False, **kwargs)
        assert not out.exists()


def test_spearman_refuses_nan():
    from tripartite import minilm

    with pytest.raises(ValueError, match="x must be finite"):
        minilm.spearman([1.0, np.nan, 3.0], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="one length"):
        minilm.spearman([1.0, 2.0, 3.0], [1.0, 2.0])


# 9. the command line checks its flags before any work ----------------------------------------------
SMALL_DEMO = ["demo", "--n-hidden", "256", "--tokens", "8", "--d", "4"]


_needs_matplotlib = pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None, reason="needs matplotlib")


@pytest.mark.parametrize("flags, named", [
    (["--d", "0"], "--d"),
    (["--tokens", "0"], "--tokens"),
    (["--tokens", "-1"], "--tokens"),
    (["--tokens", "1"], "--tokens"),
    (["--seed", "-1"], "--seed"),
    (["--n-hidden", "0"], "--n-hidden"),
    (["--num-threads", "-1"], "--num-threads"),
    (["--out", "/nonexistent-folder/demo.png"], "--out"),
    # not a figure format: refused before the run, not after it (where matplotlib says which it writes)
    pytest.param(["--out", "demo.txt"], "--out", marks=_needs_matplotlib),
    pytest.param(["--out", "demo"], "--out", marks=_needs_matplotlib),
])
def test_demo_flags(flags, named, capsys, tmp_path, monkeypatch):
    from tripartite.cli import main

    monkeypatch.chdir(tmp_path)  # the default figure would land here

    with pytest.raises(SystemExit) as exc:
        main(SMALL_DEMO + flags)
    assert exc.value.code == 2
    captured = capsys.readouterr()
    assert f"argument {named}" in captured.err and captured.out == ""  # nothing ran


def test_demo_tokens_beyond_memory(monkeypatch, tmp_path, capsys):
    from tripartite import _validate
    from tripartite.cli import main

    monkeypatch.setattr(_validate, "available_memory", lambda: 2_000_000)  # bytes: 300 tokens need 2.9 MB
    with pytest.raises(SystemExit):
        main(SMALL_DEMO + ["--tokens", "300", "--out", str(tmp_path / "d.png")])
    assert "argument --tokens" in capsys.readouterr().err and not (tmp_path / "d.png").exists()


@pytest.mark.parametrize("flags, named", [
    (["--seed", "-1"], "--seed"),
    (["--figure-head", "0", "-1"], "--figure-head"),
    (["--num-threads", "-2"], "--num-threads"),
    (["--pairs", "absent.tsv"], "--pairs"),
    (["--m", "0"], "--m"),
])
def test_minilm_flags_checked_before_the_model_loads_or_out_exists(tmp_path, flags, named, capsys):
    from tripartite.cli import main

    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exc:
        main(["minilm", "--out", str(out), "--no-progress", "--m", "8"] + flags)
    assert exc.value.code == 2 and f"argument {named}" in capsys.readouterr().err
    assert not out.exists()


def test_zero_dimensional_arrays_are_numbers(rng):
    # reference.softmax_attention(scale=np.array(0.5)) and simulate(dt=np.array(0.5)) worked before
    # the stricter checks (they used float()); a 0-d real array is again read as its number.
    from tripartite import reference
    q, k, v = (rng.standard_normal((3, 4)) for _ in range(3))
    assert np.array_equal(reference.softmax_attention(q, k, v, scale=np.array(0.5)),
                          reference.softmax_attention(q, k, v, scale=0.5))
    W = rng.standard_normal((8, 4))
    y1, _ = reference.simulate(k, v, q, W, dt=np.array(0.5), tau_hidden=np.array(10.0))
    y2, _ = reference.simulate(k, v, q, W, dt=0.5, tau_hidden=10.0)
    assert np.array_equal(y1, y2)
    with pytest.raises(ValueError, match="scale must be a real number"):
        reference.softmax_attention(q, k, v, scale=np.array([0.5]))
    with pytest.raises(ValueError, match="scale must be a real number"):
        reference.softmax_attention(q, k, v, scale=np.array(True))


def test_minilm_text_that_is_not_utf8_is_a_flag_error(tmp_path, capsys):
    from tripartite import cli
    binary = tmp_path / "binary.txt"
    binary.write_bytes(b"\xff\xfe\x00\x81")
    assert cli.main(["minilm", "--text", str(binary), "--out", str(tmp_path / "out")]) == 2
    assert "cannot read --text" in capsys.readouterr().err


# 12. one rule for integers: Python and NumPy ints are, bools (either kind) and integral floats are not
def test_integer_arguments_refuse_bools_of_both_kinds_and_accept_numpy_ints():
    from tripartite import _validate as V
    from tripartite import minilm

    for good in (0, 3, np.int64(3), np.uint8(3)):
        assert V.is_int(good) and type(V.non_negative_int(good, "x")) is int
    for bad in (True, np.True_, 3.0, np.float32(3), "3", None):
        assert not V.is_int(bad)
        with pytest.raises(ValueError, match="x must be a non-negative integer"):
            V.non_negative_int(bad, "x")
    with pytest.raises(ValueError, match="x must be a non-negative integer, got -1"):
        V.non_negative_int(-1, "x")
    x = np.ones((2, 4, 8), np.float32)
    with pytest.raises(ValueError, match="layer must be a non-negative integer, got " + re.escape(repr(np.True_))):
        minilm.NeuronAstrocyteAttention(8)(x, x, x, np.True_)
    net = NeuronAstrocyteNetwork(8, 4, 64, t_write=10.0, t_read=20.0)
    with pytest.raises(ValueError, match="synapses must be a list of"):
        net.monitor(("synapses",), synapses=[(np.True_, 1)])
    with pytest.raises(ValueError, match="seed must be a non-negative integer"):
        NeuronAstrocyteNetwork(8, 4, 64, t_write=10.0, t_read=20.0, seed=np.False_)
