import subprocess
import sys

import pytest

from tripartite.cli import main


def test_demo_prints_table_and_writes_figure(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    out = tmp_path / "demo.png"
    assert main(["demo", "--n-hidden", "2048", "--tokens", "24", "--d", "16", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "corr(a_t, Z_t), network" in text and "log-log slope" in text
    assert out.stat().st_size > 10_000 and out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_module_entry_point_help():
    result = subprocess.run([sys.executable, "-m", "tripartite", "--help"], capture_output=True, text=True, check=True)
    assert "demo" in result.stdout


def test_bad_command_exits_nonzero():
    with pytest.raises(SystemExit) as exc:
        main(["nonsense"])
    assert exc.value.code == 2
