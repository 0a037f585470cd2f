"""The ``tripartite`` command."""

from __future__ import annotations

import argparse
import sys
from typing import List, Optional


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="tripartite", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="simulate a default network and compare it with attention")
    demo.add_argument("--n-hidden", type=int, default=16384, help="hidden neurons m (default 16384)")
    demo.add_argument("--tokens", type=int, default=128, help="tokens L (default 128)")
    demo.add_argument("--d", type=int, default=64, help="key/value dimension D (default 64)")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--out", default="tripartite-demo.png", help="where to write the figure")
    demo.add_argument("--num-threads", type=int, default=0)
    args = parser.parse_args(argv)
    if args.command == "demo":
        from .demo import run_demo

        return run_demo(args.n_hidden, args.tokens, args.d, args.seed, args.out, args.num_threads)
    return 1  # pragma: no cover


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
