"""Bad input to the MiniLM study is refused up front, naming the argument (the project's standard:
ValueError or MemoryError before any work, without side effects). None of these tests loads the
model: where the point is that a check comes before loading, loading is made to fail."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from tripartite import _validate
from tripartite import minilm as M
from tripartite import transformer
from tripartite.cli import main

BIG_M = 10**12
GIB = 2**30


@pytest.fixture
def no_model(monkeypatch):
    """Loading the model fails the test: the checks must come first."""

    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded before the arguments were checked")

    monkeypatch.setattr(transformer, "MiniLM", refuse)


@pytest.fixture
def memory(monkeypatch):
    """16 GiB available, whatever the machine has (the check is skipped where the system does not say)."""
    monkeypatch.setattr(_validate, "available_memory", lambda: 16 * GIB)


@pytest.fixture
def no_references(monkeypatch):
    """The softmax references fail the test: the checks must come before them."""

    def refuse(*args, **kwargs):
        raise AssertionError("the references were computed before the arguments were checked")

    monkeypatch.setattr(M, "softmax_normaliser", refuse)
    monkeypatch.setattr(M, "softmax_attention", refuse)


def small_qkv(layers=1, heads=2, L=6, d=8, dtype=np.float32, seed=0):
    rng = np.random.default_rng(seed)
    return tuple((rng.standard_normal((layers, heads, L, d)) * 0.5).astype(dtype) for _ in range(3))


# 1. memory: refused before the model is loaded or out is created ------------------------------------
def test_run_minilm_refuses_an_m_beyond_memory_before_loading(tmp_path, no_model, memory, capsys):
    out = tmp_path / "o9"
    with pytest.raises(M.StudyMemoryError, match=rf"ms = \[{BIG_M}\]: the study at m = {BIG_M} .* GiB .*16.00 GiB"):
        M.run_minilm(ms=[BIG_M], methods="iid", network_methods=[], model_methods=[], out=out, progress=False)
    assert not out.exists() and capsys.readouterr().out == ""


def test_minilm_command_m_beyond_memory_is_a_one_line_error(tmp_path, no_model, memory, capsys):
    out = tmp_path / "o9"
    code = main(["minilm", "--m", str(BIG_M), "--methods", "iid", "--network-methods", "--model-methods",
                 "--out", str(out), "--no-progress"])
    captured = capsys.readouterr()
    assert code == 2 and captured.out == "" and not out.exists()
    assert captured.err.startswith("tripartite minilm: error: argument --m: ") and captured.err.count("\n") == 1
    assert f"m = {BIG_M}" in captured.err and "GiB" in captured.err


def test_run_minilm_memory_threshold(tmp_path, no_model, monkeypatch):
    # Refused one byte below the estimate; at the estimate the run goes on (to the model, refused here).
    asked = []
    check = _validate.check_memory
    monkeypatch.setattr(_validate, "check_memory", lambda n, what, *e: asked.append(n) or check(n, what, *e))
    kwargs = dict(ms=[10, 1000], methods="iid", network_methods=[], model_methods=[], out=tmp_path / "out",
                  progress=False, num_threads=1)
    monkeypatch.setattr(_validate, "available_memory", lambda: None)  # no limit: records the estimate
    with pytest.raises(AssertionError, match="the model was loaded"):
        M.run_minilm(**kwargs)
    need = asked[0]
    assert need > 2 * transformer.model_config()["weights_bytes"]  # the model (read, and kept) and the study at m = 1000
    monkeypatch.setattr(_validate, "available_memory", lambda: need - 1)
    with pytest.raises(MemoryError, match=r"ms = \[10, 1000\]: the study at m = 1000 "):
        M.run_minilm(**kwargs)
    monkeypatch.setattr(_validate, "available_memory", lambda: need)
    with pytest.raises(AssertionError, match="the model was loaded"):
        M.run_minilm(**kwargs)


def test_study_memory_estimate_covers_the_checks_inside(monkeypatch):
    # What the study asks of the memory checks inside it (hidden_draws, attention, the network)
    # stays within its up-front estimate, for every kind of run.
    asked = []
    check = _validate.check_memory

    def recording(n_bytes, what, *error):
        if not what.startswith("ms = "):  # the checks inside, not the study's own
            asked.append(n_bytes)
        check(n_bytes, what, *error)

    monkeypatch.setattr(_validate, "check_memory", recording)
    q, k, v = small_qkv(L=5)
    for name in ("iid", "orthogonal", "oprf", M.BEST):
        for mode in ("steady", "network-fast"):
            asked.clear()
            M.study_heads(q, k, v, [96], methods=[name], modes=[mode], num_threads=1)
            est = M._layer_bytes(96, [(M.METHODS[name], mode != "steady")], 2, 8, 8, 5, np.float32, 1)
            assert asked and max(asked) <= est, (name, mode, asked, est)


def test_study_heads_and_figure_data_refuse_an_m_beyond_memory_first(no_references, memory):
    q, k, v = small_qkv()
    with pytest.raises(MemoryError, match=rf"ms = \[8, {BIG_M}\]: the study at m = {BIG_M}"):
        M.study_heads(q, k, v, [8, BIG_M], methods="iid", modes="steady")
    with pytest.raises(MemoryError, match=rf"the study at m = {BIG_M}"):
        M.paper_figure_data(q, k, v, (0, 0), [BIG_M])


# 2. seeds and layers ----------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, match", [
    (dict(seed=-1), "seed must be a non-negative integer, got -1"),
    (dict(seed=1.5), "seed must be a non-negative integer, got 1.5"),
    (dict(num_threads=-1), "num_threads must be a non-negative integer"),
])
def test_study_heads_and_figure_data_check_seed_before_any_work(kwargs, match, no_references):
    q, k, v = small_qkv()
    with pytest.raises(ValueError, match=match):
        M.study_heads(q, k, v, [8], methods="iid", modes="steady", **kwargs)
    with pytest.raises(ValueError, match=match):
        M.paper_figure_data(q, k, v, (0, 0), [8], **kwargs)


def test_hidden_draws_names_seed_and_layer():
    iid = M.METHODS["iid"]
    with pytest.raises(ValueError, match="seed must be a non-negative integer, got -1"):
        M.hidden_draws(8, 4, 2, -1, 0, iid)
    with pytest.raises(ValueError, match="layer must be a non-negative integer, got -1"):
        M.hidden_draws(8, 4, 2, 0, -1, iid)
    with pytest.raises(ValueError, match="method must be a Method"):
        M.hidden_draws(8, 4, 2, 0, 0, "iid")


def test_whole_model_checks_before_encoding():
    class Model:
        def encode(self, *args, **kwargs):
            raise AssertionError("encoded before the arguments were checked")

    pairs = [("a", "b"), ("c", "d"), ("e", "f")]
    for kwargs, match in ((dict(seed=-1), "seed must be a non-negative integer"), (dict(ms=[0]), "ms must be a positive"),
                          (dict(methods=["nope"]), "method must be one of"), (dict(modes=["nope"]), "mode must be one of"),
                          (dict(num_threads=-1), "num_threads must be")):
        with pytest.raises(ValueError, match=match):
            M.whole_model(Model(), pairs, **{"ms": [8], **kwargs})


# 3. dtypes as attention() takes them ----------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["steady", "network-fast"])
@pytest.mark.parametrize("method", ["iid", "oprf"])
def test_replacement_takes_float16_and_integer_inputs_like_attention(mode, method):
    q, k, v = (x[0] for x in small_qkv(L=4))
    att = lambda *xs: M.NeuronAstrocyteAttention(32, method=method, mode=mode)(*xs, 0)  # noqa: E731
    y16 = att(q.astype(np.float16), k.astype(np.float16), v.astype(np.float16))
    y32 = att(*(x.astype(np.float16).astype(np.float32) for x in (q, k, v)))
    assert y16.dtype == np.float32 and np.array_equal(y16, y32)  # float16 is computed in float32
    ints = [np.round(x * 4).astype(np.int64) for x in (q, k, v)]
    y_int = att(*ints)
    assert y_int.dtype == np.float64 and np.array_equal(y_int, att(*(x.astype(np.float64) for x in ints)))


def test_replacement_names_nonfinite_inputs():
    q, k, v = (x[0] for x in small_qkv(L=4))
    k = k.copy()
    k[1, 2, 3] = np.nan
    with pytest.raises(ValueError, match=r"k must be finite, got nan at index \(1, 2, 3\)"):
        M.NeuronAstrocyteAttention(16, method=M.BEST)(q, k, v, 0)


# 4. zero-length sequences -------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["steady", "network"])
@pytest.mark.parametrize("method", ["iid", "oprf", M.BEST])
def test_replacement_of_an_empty_sequence_is_empty(method, mode):
    q, k, v = (x[0, :, :0] for x in small_qkv())
    y = M.NeuronAstrocyteAttention(16, method=method, mode=mode)(q, k, v, 0)
    assert y.shape == (2, 0, 8) and y.dtype == np.float32


# 5. helpers -------------------------------------------------------------------------------------------------
def test_oprf_parameter_checks():
    ok = np.ones((3, 4))
    with pytest.raises(ValueError, match=r"x must be finite, got nan at index \(0, 0\)"):
        M.oprf_parameter(np.full((3, 4), np.nan), ok)
    with pytest.raises(ValueError, match=r"y must be finite, got inf"):
        M.oprf_parameter(ok, np.full((3, 4), np.inf))
    with pytest.raises(ValueError, match=r"x must have shape \(\.\.\., L, D\) with L >= 1 and D >= 1, got \(0, 4\)"):
        M.oprf_parameter(np.ones((0, 4)), ok)
    with pytest.raises(ValueError, match=r"y must have shape \(\.\.\., Ly, D\) with D = 4 \(from x\), got \(3, 5\)"):
        M.oprf_parameter(ok, np.ones((3, 5)))
    with pytest.raises(ValueError, match="leading axes of x"):
        M.oprf_parameter(np.ones((2, 3, 4)), np.ones((3, 3, 4)))


@pytest.mark.parametrize("A", [0.3, 0.25, 0.125, np.array([0.0, 0.2])])
def test_oprf_weights_refuse_A_from_one_eighth(A):
    omega = np.ones((2, 3, 4))
    with pytest.raises(ValueError, match="A must be below 1/8 .*got max A = 0.(3|25|125|2)"):
        M.oprf_weights(omega, A)


def test_oprf_weights_checks():
    omega = np.ones((2, 3, 4))
    with pytest.raises(ValueError, match=r"A must be finite, got nan"):
        M.oprf_weights(omega, np.nan)
    with pytest.raises(ValueError, match=r"omega must be finite"):
        M.oprf_weights(np.full((3, 4), np.inf), 0.0)
    with pytest.raises(ValueError, match=r"A must have a shape that broadcasts to omega's leading axes \(2,\), got \(3,\)"):
        M.oprf_weights(omega, np.zeros(3))
    W, b = M.oprf_weights(omega, np.array([-0.1, 0.1]))  # below 1/8: finite
    assert np.isfinite(W).all() and np.isfinite(b).all()


def test_head_errors_checks():
    y, a = np.ones((2, 3, 4)), np.ones((2, 3))
    with pytest.raises(ValueError, match=r"y must be finite, got nan"):
        M.head_errors(y * np.nan, a, y, a)
    with pytest.raises(ValueError, match=r"Z must be finite"):
        M.head_errors(y, a, y, a * np.nan)
    with pytest.raises(ValueError, match=r"a must have shape \(\.\.\., L\) = \(2, 3\) \(from y\), got \(2, 4\)"):
        M.head_errors(y, np.ones((2, 4)), y, a)
    with pytest.raises(ValueError, match=r"y_soft must have the shape of y"):
        M.head_errors(y, a, y[:1], a)
    with pytest.raises(ValueError, match=r"Z must be positive"):
        M.head_errors(y, a, y, -a)
    with pytest.raises(ValueError, match=r"a must be non-negative"):
        M.head_errors(y, -a, y, a)


def test_spearman_needs_two_values_and_is_nan_for_constant_samples():
    for x in ([], [1.0]):
        with pytest.raises(ValueError, match=f"x and y must have at least 2 values for a rank correlation, got {len(x)}"):
            M.spearman(x, x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # documented NaN, without a warning
        assert np.isnan(M.spearman([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]))
    assert M.spearman([1.0, 2.0], [3.0, 5.0]) == pytest.approx(1.0)


# 7. documentation -------------------------------------------------------------------------------------------
def test_study_heads_documents_every_parameter():
    doc = M.study_heads.__doc__
    params = doc[doc.index("Parameters"):doc.index("Returns")]
    for name in ("q, k, v", "ms", "methods", "modes", "seed", "num_threads", "progress"):
        assert f"\n    {name} :" in params, name


def test_command_and_demo_have_docstrings():
    from tripartite import cli, demo

    assert cli.main.__doc__ and "minilm" in cli.main.__doc__
    assert demo.run_demo.__doc__ and "n_hidden" in demo.run_demo.__doc__


@pytest.mark.parametrize("kwargs, match", [
    (dict(n_hidden=0), "n_hidden must be a positive integer, got 0"),
    (dict(L=1), "L must be an integer of at least 2 tokens, got 1"),
    (dict(D=0), "D must be a positive integer, got 0"),
    (dict(seed=-1), "seed must be a non-negative integer"),
])
def test_run_demo_checks_its_arguments(kwargs, match, tmp_path, capsys):
    from tripartite.demo import run_demo

    args = {**dict(n_hidden=8, L=4, D=4, seed=0, out=str(tmp_path / "d.png")), **kwargs}
    with pytest.raises(ValueError, match=match):
        run_demo(**args)
    assert capsys.readouterr().out == "" and not (tmp_path / "d.png").exists()
